import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkToolName, FunctionToolError, FunctionToolErrorCode, isFunctionTool, type FunctionTool } from './define-tool.js';

/** The tools one module exports, and how it was named. */
export interface ToolModule {
  /** As it was given (`./dist/my-tools.js`, `@acme/tools`). */
  readonly specifier: string;
  readonly tools: readonly FunctionTool[];
}

const isPath = (spec: string) => spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..' || isAbsolute(spec);

/**
 * The tools of a module's exports: its default export (one tool or an array of tools) and every
 * named export made with defineTool; other named exports (schemas, helpers) are left alone. The
 * same tool exported twice counts once. Throws {@link FunctionToolError}: `ERR_NO_TOOLS` when
 * there is none, or the default export is something else; `ERR_DUPLICATE_TOOL` for two tools with
 * one name; `ERR_INVALID_TOOL_NAME`.
 */
export function toolsOfModule(exports: Readonly<Record<string, unknown>>, specifier: string): FunctionTool[] {
  const found: FunctionTool[] = [];
  const named = new Map<string, string>();
  const take = (value: unknown, where: string) => {
    if (found.includes(value as FunctionTool)) return;
    const tool = value as FunctionTool;
    const name = checkToolName(tool.definition?.name);
    const other = named.get(name);
    if (other) throw new FunctionToolError(FunctionToolErrorCode.DuplicateName, `${specifier}: two tools are named ${name} (${other} and ${where}); tool names must be unique`);
    named.set(name, where);
    found.push(tool);
  };
  const def = exports.default;
  if (Array.isArray(def)) {
    def.forEach((t, i) => {
      if (!isFunctionTool(t)) throw new FunctionToolError(FunctionToolErrorCode.NoTools, `${specifier}: the default export's item ${i} is not a tool made with defineTool (${describe(t)})`);
      take(t, `default[${i}]`);
    });
  } else if (isFunctionTool(def)) take(def, 'default');
  else if (def !== undefined) {
    throw new FunctionToolError(FunctionToolErrorCode.NoTools, `${specifier}: the default export is ${describe(def)}; export an array of tools made with defineTool (export default [weather, sendEmail]), or named tools`);
  }
  for (const [key, value] of Object.entries(exports)) if (key !== 'default' && isFunctionTool(value)) take(value, key);
  if (!found.length) {
    throw new FunctionToolError(
      FunctionToolErrorCode.NoTools,
      `${specifier} exports no tools: export them as \`export default [weather, sendEmail]\` or \`export const weather = defineTool({...})\` (defineTool from @errand/function-tools)`,
    );
  }
  return found;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return `a function${value.name ? ` (${value.name})` : ''}`;
  if (typeof value === 'object') return 'an object that is not a defineTool result';
  return `a ${typeof value}`;
}

/**
 * Imports the modules that hold function tools and returns their tools, in order. A path
 * (`./dist/my-tools.js`, `/srv/tools.js`) is taken from `base` (the working folder, or the config
 * file's folder); a package name (`@acme/tools`) is resolved from `base` too, as Node would for a
 * file there, by `resolvePackage` (the resolver every module setting of Errand shares:
 * `resolveModuleFrom` of @errand/service, which the tool-runner passes). Throws
 * {@link FunctionToolError}: `ERR_TOOL_MODULE_NOT_FOUND` (naming the path it looked at),
 * `ERR_TOOL_MODULE_FAILED` (the module threw, with its message), and those of
 * {@link toolsOfModule}, plus `ERR_DUPLICATE_TOOL` for one name in two modules.
 */
export async function loadToolModules(
  specifiers: readonly string[],
  options: { base: string; resolvePackage: (specifier: string, base: string) => string | undefined },
): Promise<ToolModule[]> {
  const modules: ToolModule[] = [];
  const owner = new Map<string, string>();
  for (const specifier of specifiers) {
    const target = locate(specifier, options.base, options.resolvePackage);
    if (isPath(specifier) && !existsSync(resolve(options.base, specifier))) {
      throw new FunctionToolError(FunctionToolErrorCode.ModuleNotFound, `cannot find the tool module ${specifier} (looked at ${resolve(options.base, specifier)}); build it first (tsc) or fix the path`);
    }
    let exports: Record<string, unknown>;
    try {
      exports = (await import(target)) as Record<string, unknown>;
    } catch (err) {
      // A defineTool that refused its definition says so itself (a bad name, say).
      // (By name: the module's defineTool may come from another copy of this package.)
      const refused = err instanceof Error && err.name === 'FunctionToolError' && typeof (err as { code?: unknown }).code === 'string';
      const code = refused ? ((err as FunctionToolError).code as FunctionToolErrorCode) : FunctionToolErrorCode.ModuleFailed;
      const why = refused ? err.message : `${(err as Error).name}: ${(err as Error).message}`;
      throw new FunctionToolError(code, `the tool module ${specifier} failed to load: ${why}`, { cause: err });
    }
    const tools = toolsOfModule(exports, specifier);
    for (const t of tools) {
      const name = t.definition.name;
      const other = owner.get(name);
      if (other !== undefined) throw new FunctionToolError(FunctionToolErrorCode.DuplicateName, `tool ${name} is defined in ${other} and in ${specifier}; tool names must be unique`);
      owner.set(name, specifier);
    }
    modules.push({ specifier, tools });
  }
  return modules;
}

/** The URL to import `specifier` by, seen from `base`. */
function locate(specifier: string, base: string, resolvePackage: (specifier: string, base: string) => string | undefined): string {
  if (typeof specifier !== 'string' || !specifier.trim()) throw new FunctionToolError(FunctionToolErrorCode.ModuleNotFound, 'an empty tool module name');
  if (isPath(specifier)) return pathToFileURL(resolve(base, specifier)).href;
  let url: string | undefined;
  try {
    url = resolvePackage(specifier, base);
  } catch (err) {
    // Found, but it does not export what is asked (or its entry file is missing).
    throw new FunctionToolError(FunctionToolErrorCode.ModuleNotFound, `the tool package ${specifier}: ${(err as Error).message}`, { cause: err });
  }
  if (url) return url;
  // `dist/tools.js` is a package name to Node; say so when a file of that name is there.
  const hint = existsSync(resolve(base, specifier)) ? `; for the file ${resolve(base, specifier)}, write ./${specifier}` : `: install it there (npm i ${specifier}), or name a file (./dist/tools.js)`;
  throw new FunctionToolError(FunctionToolErrorCode.ModuleNotFound, `cannot find the tool package ${specifier} from ${base}${hint}`);
}
