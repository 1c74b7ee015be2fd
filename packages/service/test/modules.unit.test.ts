import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importModule, ModuleImportError, resolveModuleFrom } from '../src/modules.js';

let project: string;

async function file(path: string, text: string): Promise<void> {
  await mkdir(dirname(join(project, path)), { recursive: true });
  await writeFile(join(project, path), text);
}

const url = (path: string) => pathToFileURL(join(project, path)).href;
const noFallback = () => Promise.reject(new Error('the fallback was not expected'));

beforeAll(async () => {
  // A user's project: packages in its node_modules, as npm installs them; none of it is
  // reachable from Errand's own files, so only a lookup from the project finds it.
  project = await mkdtemp(join(tmpdir(), 'errand-modules-'));
  await file('node_modules/@acme/agents/package.json', JSON.stringify({
    name: '@acme/agents',
    type: 'module',
    exports: {
      '.': { types: './dist/index.d.ts', require: './dist/index.cjs', import: './dist/index.js' },
      './extra': { default: './dist/extra.js' },
      './more/*': './dist/more/*.js',
      './hidden': null,
    },
  }));
  await file('node_modules/@acme/agents/dist/index.js', 'export const agents = [{ id: "acme", version: 1 }];\n');
  await file('node_modules/@acme/agents/dist/index.cjs', 'module.exports = { agents: "the require condition" };\n');
  await file('node_modules/@acme/agents/dist/extra.js', 'export const agents = [{ id: "extra", version: 1 }];\n');
  await file('node_modules/@acme/agents/dist/more/one.js', 'export const agents = [{ id: "one", version: 1 }];\n');
  await file('node_modules/@acme/broken/package.json', JSON.stringify({ name: '@acme/broken', type: 'module', exports: './dist/missing.js' }));
  await file('node_modules/@acme/throws/package.json', JSON.stringify({ name: '@acme/throws', type: 'module', exports: './index.js' }));
  await file('node_modules/@acme/throws/index.js', 'throw new Error("agents module exploded");\n');
  await file('node_modules/plain-main/package.json', JSON.stringify({ name: 'plain-main', type: 'module', main: 'lib/entry.js' }));
  await file('node_modules/plain-main/lib/entry.js', 'export const agents = [];\n');
  await file('agents/local.js', 'export const agents = [{ id: "local", version: 1 }];\n');
  await mkdir(join(project, 'src', 'deep'), { recursive: true });
});
afterAll(async () => {
  await rm(project, { recursive: true, force: true });
});

describe('modules named in a setting (ERRAND_AGENT_MODULES)', () => {
  it('finds a package in the node_modules of the working folder through its exports, with the import condition', async () => {
    expect(resolveModuleFrom('@acme/agents', project)).toBe(url('node_modules/@acme/agents/dist/index.js'));
    const mod = await importModule('@acme/agents', { cwd: project, fallback: noFallback });
    expect(mod.agents).toEqual([{ id: 'acme', version: 1 }]);
  });

  it('finds it from a subfolder too, in a parent folder\'s node_modules', () => {
    expect(resolveModuleFrom('@acme/agents', join(project, 'src', 'deep'))).toBe(url('node_modules/@acme/agents/dist/index.js'));
  });

  it('follows subpath exports and patterns; a package without exports by its main', () => {
    expect(resolveModuleFrom('@acme/agents/extra', project)).toBe(url('node_modules/@acme/agents/dist/extra.js'));
    expect(resolveModuleFrom('@acme/agents/more/one', project)).toBe(url('node_modules/@acme/agents/dist/more/one.js'));
    expect(resolveModuleFrom('plain-main', project)).toBe(url('node_modules/plain-main/lib/entry.js'));
  });

  it('takes a path relative to the working folder, or absolute', async () => {
    expect(resolveModuleFrom('./agents/local.js', project)).toBe(url('agents/local.js'));
    expect(resolveModuleFrom(join(project, 'agents/local.js'), '/')).toBe(url('agents/local.js'));
    expect((await importModule('./agents/local.js', { cwd: project, fallback: noFallback })).agents).toEqual([{ id: 'local', version: 1 }]);
  });

  it('imports a package not installed in the project through the fallback (Errand\'s own dependencies)', async () => {
    expect(resolveModuleFrom('@errand/not-in-this-project', project)).toBeUndefined();
    const asked: string[] = [];
    const mod = await importModule('@errand/not-in-this-project', { cwd: project, fallback: async (s) => (asked.push(s), { agents: ['from errand'] }) });
    expect(asked).toEqual(['@errand/not-in-this-project']);
    expect(mod.agents).toEqual(['from errand']);
  });

  it('refuses, saying where it looked and what to do: a package installed nowhere', async () => {
    const err = await importModule('@acme/nowhere', { cwd: project, fallback: () => Promise.reject(new Error("Cannot find package '@acme/nowhere'")) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModuleImportError);
    expect((err as ModuleImportError).code).toBe('ERR_MODULE_IMPORT');
    expect((err as Error).message).toContain(`'@acme/nowhere' is not installed in ${project}`);
    expect((err as Error).message).toContain('npm install @acme/nowhere');
  });

  it('refuses a missing file, an unexported or null subpath, an export to a missing file, and a module that throws', async () => {
    expect(() => resolveModuleFrom('./agents/nope.js', project)).toThrow(/'\.\/agents\/nope\.js' is not a file \(looked at .*agents\/nope\.js\)/);
    expect(() => resolveModuleFrom('@acme/agents/secret', project)).toThrow(/does not export '\.\/secret' for import/);
    expect(() => resolveModuleFrom('@acme/agents/hidden', project)).toThrow(/does not export '\.\/hidden'/);
    expect(() => resolveModuleFrom('@acme/broken', project)).toThrow(/exports '\.' as \.\/dist\/missing\.js, which does not exist \(is the package built\?\)/);
    const err = await importModule('@acme/throws', { cwd: project, fallback: noFallback }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModuleImportError);
    expect((err as Error).message).toMatch(/'@acme\/throws' \(file:.*\) failed to load: agents module exploded/);
  });

  it('leaves built-ins and URLs other than file: to the fallback', () => {
    expect(resolveModuleFrom('node:path', project)).toBeUndefined();
    expect(resolveModuleFrom(url('agents/local.js'), '/')).toBe(url('agents/local.js'));
  });
});
