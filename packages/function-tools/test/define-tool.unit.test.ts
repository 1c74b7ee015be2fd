// defineTool and the module loader, in-process: what the catalog gets, how arguments and results
// are checked, what the context carries, and every refusal of a definition or a module.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, FunctionToolError, FunctionToolErrorCode, ToolError, ToolErrorCode, type ToolRunContext } from '@errand/function-tools';
import { isFunctionTool, loadToolModules, toolsOfModule } from '@errand/function-tools/internal';
import { resolveModuleFrom } from '@errand/service';

const ctx = (extra: Partial<{ heartbeat: () => void }> = {}) => ({ signal: new AbortController().signal, key: 'agent-1:3:0', ...extra });

const weather = defineTool({
  name: 'weather',
  description: 'The forecast for a city',
  input: z.object({ city: z.string().min(1).describe('the city'), days: z.number().int().min(1).max(7).default(3) }),
  output: z.object({ city: z.string(), days: z.number() }),
  policy: 'auto',
  idempotent: true,
  run: ({ city, days }) => ({ city, days }),
});

/** What a refusal of defineTool says, or a failure of the test when it does not refuse. */
function refusal(make: () => unknown): FunctionToolError {
  try {
    make();
  } catch (err) {
    expect(err).toBeInstanceOf(FunctionToolError);
    return err as FunctionToolError;
  }
  throw new Error('defineTool accepted it');
}

describe('defineTool', () => {
  it('makes a tool the runner serves: the catalog gets the JSON Schema of the input (what the model may send), the policy, idempotency and time limit', () => {
    expect(isFunctionTool(weather)).toBe(true);
    expect(weather.definition).toEqual({
      name: 'weather',
      description: 'The forecast for a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', minLength: 1, description: 'the city' }, days: { type: 'integer', minimum: 1, maximum: 7, default: 3 } },
        required: ['city'],
      },
    });
    expect(weather).toMatchObject({ idempotent: true, destructive: false, defaultPolicy: 'auto', timeoutMs: 60_000 });
    const refund = defineTool({ name: 'refund', description: 'Refund', input: z.object({}), policy: 'ask', idempotent: false, destructive: true, timeoutMs: 5000, run: () => 'ok' });
    expect(refund).toMatchObject({ idempotent: false, destructive: true, defaultPolicy: 'ask', timeoutMs: 5000 });
  });

  it('runs with the parsed arguments (defaults applied) and returns the checked result', async () => {
    expect(await weather.run({ city: 'Lyon' }, ctx())).toEqual({ city: 'Lyon', days: 3 });
  });

  it('refuses arguments the input schema refuses, naming each field, without running: ERR_TOOL_ARGUMENTS, not retryable', async () => {
    const calls: unknown[] = [];
    const t = defineTool({ name: 't', description: 'd', input: z.object({ city: z.string(), days: z.number().max(7) }), policy: 'auto', idempotent: true, run: (a) => (calls.push(a), 'ran') });
    for (const bad of [{ days: 9 }, 'Lyon', null, [1]]) {
      const err = (await t.run(bad, ctx()).catch((e: unknown) => e)) as ToolError;
      expect(err).toBeInstanceOf(ToolError);
      expect(err.code).toBe(ToolErrorCode.InvalidArguments);
      expect(err.retryable).toBe(false);
    }
    const err = (await t.run({ days: 9 }, ctx()).catch((e: unknown) => e)) as ToolError;
    expect(err.message).toMatch(/^t: invalid arguments: city: .+; days: .+7/);
    expect(calls).toEqual([]);
  });

  it('checks the result against the output schema, and that it is JSON: ERR_TOOL_OUTPUT otherwise', async () => {
    const liar = defineTool({ name: 'liar', description: 'd', input: z.object({}), output: z.object({ n: z.number() }), policy: 'auto', idempotent: true, run: () => ({ n: 'one' }) as never });
    expect(await liar.run({}, ctx()).catch((e: ToolError) => e.code)).toBe(FunctionToolErrorCode.InvalidOutput);
    const big = defineTool({ name: 'big', description: 'd', input: z.object({}), policy: 'auto', idempotent: true, run: () => ({ n: 10n }) });
    const err = (await big.run({}, ctx()).catch((e: unknown) => e)) as ToolError;
    expect(err.code).toBe(FunctionToolErrorCode.InvalidOutput);
    expect(err.message).toContain('not JSON');
    const plain = defineTool({ name: 'plain', description: 'd', input: z.object({}), policy: 'auto', idempotent: true, run: () => ({ at: new Date(0), gone: undefined }) });
    expect(await plain.run({}, ctx())).toEqual({ at: '1970-01-01T00:00:00.000Z' });
    const nothing = defineTool({ name: 'nothing', description: 'd', input: z.object({}), policy: 'auto', idempotent: true, run: () => undefined });
    expect(await nothing.run({}, ctx())).toBeNull();
  });

  it("hands run the call's key, its signal, a heartbeat that reaches the runner and a logger", async () => {
    let seen: ToolRunContext | undefined;
    const t = defineTool({
      name: 'seer',
      description: 'd',
      input: z.object({}),
      policy: 'auto',
      idempotent: true,
      run: (_a, c) => {
        seen = c;
        c.heartbeat();
        c.heartbeat();
        c.log.info({ a: 1 }, 'works without a runner logger');
        return 'ok';
      },
    });
    const controller = new AbortController();
    let beats = 0;
    await t.run({}, { signal: controller.signal, key: 'a:1:0', heartbeat: () => beats++ });
    expect(seen?.key).toBe('a:1:0');
    controller.abort();
    expect(seen?.signal.aborted).toBe(true);
    expect(beats).toBe(2);
  });

  it('with heartbeatTimeoutMs: a call that stops heartbeating is aborted as stuck (ERR_TOOL_TIMEOUT, retryable); one that heartbeats finishes', async () => {
    let aborted = false;
    const stuck = defineTool({
      name: 'stuck',
      description: 'd',
      input: z.object({}),
      policy: 'auto',
      idempotent: true,
      heartbeatTimeoutMs: 50,
      run: (_a, c) =>
        new Promise((_resolve, reject) =>
          c.signal.addEventListener('abort', () => {
            aborted = true;
            reject(new Error('aborted'));
          }),
        ),
    });
    const err = (await stuck.run({}, ctx()).catch((e: unknown) => e)) as ToolError;
    expect(err.code).toBe(ToolErrorCode.Timeout);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('no heartbeat for 50 ms');
    expect(aborted).toBe(true);
    const alive = defineTool({
      name: 'alive',
      description: 'd',
      input: z.object({ steps: z.number() }),
      policy: 'auto',
      idempotent: true,
      heartbeatTimeoutMs: 1000,
      run: async ({ steps }, c) => {
        for (let i = 0; i < steps; i++) {
          await new Promise((r) => setImmediate(r));
          c.heartbeat();
        }
        return steps;
      },
    });
    expect(await alive.run({ steps: 20 }, ctx())).toBe(20);
  });

  it('refuses a definition it cannot serve, saying what to change', () => {
    const base = { name: 'ok_name', description: 'd', input: z.object({}), policy: 'auto' as const, idempotent: true, run: () => 1 };
    for (const name of ['my tool', 'a.b', 'x'.repeat(65), '', 'émoji']) {
      const err = refusal(() => defineTool({ ...base, name }));
      expect(err.code, name).toBe(FunctionToolErrorCode.InvalidName);
    }
    expect(refusal(() => defineTool({ ...base, name: 'my tool' })).message).toContain('whitespace');
    expect(refusal(() => defineTool({ ...base, name: 'x'.repeat(65) })).message).toContain('at most 64');
    expect(refusal(() => defineTool({ ...base, name: 'ask_human' })).message).toContain("one of the built-in agent's own tools");
    const cases: [Record<string, unknown>, string][] = [
      [{ description: '  ' }, 'description is required'],
      [{ input: { type: 'object' } }, '`input` must be a zod schema'],
      [{ input: z.string() }, 'must be an object schema'],
      [{ input: z.object({ when: z.date() }) }, 'cannot be written as JSON Schema'],
      [{ output: 'text' }, '`output`, when given, must be a zod schema'],
      [{ policy: 'sometimes' }, '`policy` must be one of auto, ask, deny'],
      [{ idempotent: undefined }, '`idempotent` must be true'],
      [{ timeoutMs: 0 }, '`timeoutMs` must be a whole number'],
      [{ heartbeatTimeoutMs: 1.5 }, '`heartbeatTimeoutMs` must be a whole number'],
      [{ run: 'go' }, '`run(args, ctx)` must be a function'],
    ];
    for (const [change, says] of cases) {
      const err = refusal(() => defineTool({ ...base, ...change } as never));
      expect(err.code).toBe(FunctionToolErrorCode.InvalidDefinition);
      expect(err.message).toContain('defineTool("ok_name")');
      expect(err.message).toContain(says);
    }
  });
});

describe('the tools of a module', () => {
  const a = defineTool({ name: 'a', description: 'd', input: z.object({}), policy: 'auto', idempotent: true, run: () => 1 });
  const b = defineTool({ name: 'b', description: 'd', input: z.object({}), policy: 'ask', idempotent: false, run: () => 2 });

  it('takes the default export (an array or one tool) and named tools, each once; other exports are left alone', () => {
    expect(toolsOfModule({ default: [a, b] }, 'm').map((t) => t.definition.name)).toEqual(['a', 'b']);
    expect(toolsOfModule({ default: a, b, schema: z.object({}), helper: () => 1 }, 'm').map((t) => t.definition.name)).toEqual(['a', 'b']);
    expect(toolsOfModule({ default: [a, b], a, b }, 'm')).toHaveLength(2);
    // A tool made by another copy of the package (a module installed apart from the runner) counts.
    const foreign = { ...a, definition: { ...a.definition, name: 'foreign' }, [Symbol.for('errand.function-tool')]: 1 };
    expect(toolsOfModule({ foreign }, 'm').map((t) => t.definition.name)).toEqual(['foreign']);
  });

  it('refuses a module without tools, a default export that is not tools, and two tools with one name', () => {
    const code = (exports: Record<string, unknown>) => {
      try {
        toolsOfModule(exports, './dist/x.js');
      } catch (err) {
        return [(err as FunctionToolError).code, (err as Error).message];
      }
      return ['accepted'];
    };
    expect(code({ helper: () => 1 })).toEqual([FunctionToolErrorCode.NoTools, expect.stringContaining('./dist/x.js exports no tools')]);
    expect(code({ default: { name: 'a' } })).toEqual([FunctionToolErrorCode.NoTools, expect.stringContaining('default export is an object that is not a defineTool result')]);
    expect(code({ default: [a, { name: 'b' }] })).toEqual([FunctionToolErrorCode.NoTools, expect.stringContaining("default export's item 1 is not a tool")]);
    const twin = defineTool({ name: 'a', description: 'another a', input: z.object({}), policy: 'auto', idempotent: true, run: () => 3 });
    expect(code({ default: [a], twin })).toEqual([FunctionToolErrorCode.DuplicateName, expect.stringContaining('two tools are named a (default[0] and twin)')]);
  });

  it('loads modules by path from a base folder; a missing file, a module that throws, or one without tools is refused by name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'errand-function-tools-'));
    await writeFile(join(dir, 'throws.mjs'), "throw new Error('SHOP_API_URL is not set');\n");
    await writeFile(join(dir, 'empty.mjs'), 'export const answer = 42;\n');
    const failure = (spec: string) => loadToolModules([spec], { base: dir, resolvePackage: resolveModuleFrom }).then(() => ['loaded'], (e: FunctionToolError) => [e.code, e.message]);
    expect(await failure('./missing.js')).toEqual([FunctionToolErrorCode.ModuleNotFound, `cannot find the tool module ./missing.js (looked at ${join(dir, 'missing.js')}); build it first (tsc) or fix the path`]);
    expect(await failure('@acme/no-such-tools')).toEqual([FunctionToolErrorCode.ModuleNotFound, expect.stringContaining('cannot find the tool package @acme/no-such-tools')]);
    expect(await failure('throws.mjs')).toEqual([FunctionToolErrorCode.ModuleNotFound, `cannot find the tool package throws.mjs from ${dir}; for the file ${join(dir, 'throws.mjs')}, write ./throws.mjs`]);
    expect(await failure('./throws.mjs')).toEqual([FunctionToolErrorCode.ModuleFailed, 'the tool module ./throws.mjs failed to load: Error: SHOP_API_URL is not set']);
    expect(await failure('./empty.mjs')).toEqual([FunctionToolErrorCode.NoTools, expect.stringContaining('./empty.mjs exports no tools')]);
  });
});
