import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@errand/service';
import { loadAgents } from '../src/service.js';

// ERRAND_AGENT_MODULES=@acme/agents: a package of the project errand runs in (its node_modules),
// which Errand's own files cannot reach — as with `npm i -g` of errand, or `npx errand` there.
let project: string;
beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), 'errand-agent-modules-'));
  const pkg = join(project, 'node_modules', '@acme', 'agents');
  await mkdir(join(pkg, 'dist'), { recursive: true });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: '@acme/agents', type: 'module', exports: { '.': { import: './dist/index.js' } } }));
  await writeFile(join(pkg, 'dist', 'index.js'), 'export const agents = [{ id: "acme-greeter", version: 3 }];\n');
  const none = join(project, 'node_modules', '@acme', 'no-agents');
  await mkdir(none, { recursive: true });
  await writeFile(join(none, 'package.json'), JSON.stringify({ name: '@acme/no-agents', type: 'module', exports: './index.js' }));
  await writeFile(join(none, 'index.js'), 'export const something = 1;\n');
});
afterAll(async () => {
  await rm(project, { recursive: true, force: true });
});

describe('the host\'s agent modules', () => {
  it('loads a package named in ERRAND_AGENT_MODULES from the project it runs in, beside Errand\'s own', async () => {
    const agents = await loadAgents(['@acme/agents', '@errand/example-agents'], project);
    expect(agents.map((a) => a.id)).toContain('acme-greeter');
    expect(agents.map((a) => a.id)).toContain('tally');
  });

  it('refuses a package installed nowhere, saying how to install it', async () => {
    const err = await loadAgents(['@acme/missing'], project).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^ERRAND_AGENT_MODULES: '@acme\/missing' is not installed in .*npm install @acme\/missing/);
  });

  it('refuses a module without an agents export, and a path that is no file', async () => {
    await expect(loadAgents(['@acme/no-agents'], project)).rejects.toThrow(/ERRAND_AGENT_MODULES: '@acme\/no-agents' has no 'agents' export/);
    await expect(loadAgents(['./agents.js'], project)).rejects.toThrow(/ERRAND_AGENT_MODULES: '\.\/agents\.js' is not a file/);
  });
});
