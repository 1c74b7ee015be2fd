// Modules a setting names (ERRAND_AGENT_MODULES): a file path, or a package found from the user's
// working folder — its node_modules and its parents', as `node` started there finds them — so an
// `errand` installed globally (or `npx errand` in a project) loads `@acme/agents` from the project
// it runs in, not only what lies beside Errand's own files.
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Why a named module could not be imported: not found, not exported, or it threw while loading. */
export class ModuleImportError extends Error {
  readonly code = 'ERR_MODULE_IMPORT';
  constructor(
    message: string,
    /** The specifier as the setting gave it. */
    readonly specifier: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ModuleImportError';
  }
}

/** The conditions Node's `import` matches in a package's `exports`, in its order of preference. */
const IMPORT_CONDITIONS = new Set(['node', 'import', 'default']);

const isFile = (path: string): boolean => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

/** `@scope/name/sub/path` → name `@scope/name`, subpath `./sub/path`; undefined when not a package name. */
export function splitPackageSpecifier(spec: string): { name: string; subpath: string } | undefined {
  const m = /^((?:@[^/@\s]+\/)?[^/@\s.][^/\s]*)(\/.*)?$/.exec(spec);
  if (!m || spec.includes('\\') || spec.startsWith('node:') || /^[a-z][a-z0-9+.-]*:/i.test(spec)) return undefined;
  return { name: m[1]!, subpath: m[2] ? `.${m[2]}` : '.' };
}

/** One target of `exports`, matched against {@link IMPORT_CONDITIONS}; `star` fills a pattern. */
function exportTarget(target: unknown, star: string | undefined): string | null | undefined {
  if (typeof target === 'string') return star === undefined ? target : target.replaceAll('*', star);
  if (target === null) return null;
  if (Array.isArray(target)) {
    for (const t of target) {
      const found = exportTarget(t, star);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof target === 'object') {
    for (const [condition, t] of Object.entries(target as Record<string, unknown>)) {
      if (!IMPORT_CONDITIONS.has(condition)) continue;
      const found = exportTarget(t, star);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** The file `subpath` of the package in `dir` maps to, per its `exports` (or `main`, or index.js). */
function packageEntry(dir: string, name: string, subpath: string, spec: string): string {
  let manifest: { exports?: unknown; main?: unknown };
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as typeof manifest;
  } catch (err) {
    throw new ModuleImportError(`'${spec}': ${join(dir, 'package.json')} cannot be read as JSON`, spec, { cause: err });
  }
  const { exports } = manifest;
  if (exports !== undefined && exports !== null) {
    const map: Record<string, unknown> =
      typeof exports === 'object' && !Array.isArray(exports) && Object.keys(exports).some((k) => k.startsWith('.'))
        ? (exports as Record<string, unknown>)
        : { '.': exports };
    let target: string | null | undefined;
    if (subpath in map) target = exportTarget(map[subpath], undefined);
    else {
      // A pattern (`"./agents/*": "./dist/agents/*.js"`): the longest matching prefix wins, as in Node.
      let best: { key: string; star: string } | undefined;
      for (const key of Object.keys(map)) {
        const at = key.indexOf('*');
        if (at < 0) continue;
        const prefix = key.slice(0, at);
        const suffix = key.slice(at + 1);
        if (subpath.length >= key.length && subpath.startsWith(prefix) && subpath.endsWith(suffix) && (!best || prefix.length > best.key.indexOf('*'))) {
          best = { key, star: subpath.slice(prefix.length, subpath.length - suffix.length) };
        }
      }
      if (best) target = exportTarget(map[best.key], best.star);
    }
    if (!target) throw new ModuleImportError(`'${spec}': the package ${name} in ${dir} does not export '${subpath}' for import (see "exports" in its package.json)`, spec);
    const file = resolve(dir, target);
    if (!isFile(file)) throw new ModuleImportError(`'${spec}': the package ${name} in ${dir} exports '${subpath}' as ${target}, which does not exist (is the package built?)`, spec);
    return file;
  }
  if (subpath !== '.') {
    const file = resolve(dir, subpath);
    if (isFile(file)) return file;
    throw new ModuleImportError(`'${spec}': ${file} does not exist (name the file with its extension)`, spec);
  }
  const main = typeof manifest.main === 'string' ? manifest.main : undefined;
  for (const candidate of main ? [main, `${main}.js`, join(main, 'index.js')] : ['index.js']) {
    const file = resolve(dir, candidate);
    if (isFile(file)) return file;
  }
  throw new ModuleImportError(`'${spec}': the package ${name} in ${dir} has no "exports", and no ${main ? `"main" file ${main}` : 'index.js'}`, spec);
}

/**
 * Where `spec` is found from the folder `from`: a path (relative to `from`) or a `file:` URL as
 * the file it names; a package name in `from`'s node_modules or a parent folder's, through the
 * package's `exports` (conditions node, import, default) or `main`. Returns the module's file URL,
 * or undefined when no such package is installed there (a built-in such as `node:fs` too).
 * Throws {@link ModuleImportError} when a named file does not exist or a package found there does
 * not export what is asked.
 */
export function resolveModuleFrom(spec: string, from: string): string | undefined {
  if (spec.startsWith('file:')) return spec;
  if (spec.startsWith('.') || isAbsolute(spec)) {
    const file = resolve(from, spec);
    if (!isFile(file)) throw new ModuleImportError(`'${spec}' is not a file (looked at ${file})`, spec);
    return pathToFileURL(file).href;
  }
  const parts = splitPackageSpecifier(spec);
  if (!parts) return undefined;
  for (let dir = resolve(from); ; ) {
    const candidate = join(dir, 'node_modules', parts.name);
    if (isFile(join(candidate, 'package.json'))) return pathToFileURL(packageEntry(candidate, parts.name, parts.subpath, spec)).href;
    const parent = resolve(dir, '..');
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Imports a module a setting names: found from `cwd` first ({@link resolveModuleFrom}); a package
 * not installed there is imported by `fallback` — the caller's own `(s) => import(s)`, so the
 * packages Errand itself depends on (`@errand/agent`) load wherever Errand is installed.
 * Throws {@link ModuleImportError} saying where it looked.
 */
export async function importModule(spec: string, options: { cwd: string; fallback: (spec: string) => Promise<unknown> }): Promise<Record<string, unknown>> {
  const url = resolveModuleFrom(spec, options.cwd);
  try {
    return (await (url ? import(url) : options.fallback(spec))) as Record<string, unknown>;
  } catch (err) {
    if (url) throw new ModuleImportError(`'${spec}' (${url}) failed to load: ${(err as Error).message}`, spec, { cause: err });
    throw new ModuleImportError(
      `'${spec}' is not installed in ${resolve(options.cwd)} (node_modules there or in a parent folder), and loading it beside Errand failed: ${(err as Error).message}. ` +
        `Install it in the project you run errand from (npm install ${splitPackageSpecifier(spec)?.name ?? spec}), or name its file by path (./dist/agents.js)`,
      spec,
      { cause: err },
    );
  }
}
