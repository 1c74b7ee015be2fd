// A stdio MCP server's tools as Errand tools, at the package level: what is listed (names,
// policies, hints, timeouts, the allow-list), what a call sends and returns, how a tool error and
// a vanished server are reported, and tools/list_changed. test/tools/mcp.test.ts runs an agent
// through the whole system; this file drives connectMcpServer alone against a real server process.
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMcpServer, type McpServerConfig, type McpToolSource } from '@errand/mcp';
import { ToolError, type Tool } from '@errand/tools';

const serverFile = fileURLToPath(new URL('./fixtures/tools-server.mjs', import.meta.url));
const stdio = (more: Partial<McpServerConfig> = {}): McpServerConfig => ({ command: process.execPath, args: [serverFile], ...more });

let sources: McpToolSource[] = [];
afterEach(async () => {
  await Promise.all(sources.map((s) => s.close()));
  sources = [];
});
async function connect(config: McpServerConfig, name = 'files') {
  const source = await connectMcpServer(name, config);
  sources.push(source);
  return source;
}
const byName = (tools: Tool[]) => new Map(tools.map((t) => [t.definition.name, t]));
const run = (t: Tool | undefined, args: unknown, key = 'a1:1:0') => t!.run(args, { signal: new AbortController().signal, key });

describe('connectMcpServer (stdio)', () => {
  it("lists the server's tools under <server>__<tool> with policies and hints from their annotations, config over them", async () => {
    const source = await connect(stdio({ timeoutMs: 5000, toolTimeouts: { sum: 1234 }, policies: { echo: 'deny' } }));
    const tools = byName(source.tools());
    expect([...tools.keys()].sort()).toEqual(['files__delete_all', 'files__echo', 'files__exit', 'files__fail', 'files__learn', 'files__sum']);
    const echo = tools.get('files__echo')!;
    expect(echo.definition.description).toBe('Echo the arguments');
    expect(echo.definition.parameters).toMatchObject({ type: 'object', properties: { say: { type: 'string' } }, required: ['say'] });
    expect(echo).toMatchObject({ idempotent: true, destructive: false, defaultPolicy: 'deny', timeoutMs: 5000 });
    // No description: the title stands in. idempotentHint makes it idempotent.
    expect(tools.get('files__sum')).toMatchObject({ definition: { description: 'Add numbers' }, idempotent: true, defaultPolicy: 'auto', timeoutMs: 1234 });
    // destructiveHint: ask, not idempotent.
    expect(tools.get('files__delete_all')).toMatchObject({ idempotent: false, destructive: true, defaultPolicy: 'ask' });
    expect(tools.get('files__fail')).toMatchObject({ idempotent: false, destructive: false, defaultPolicy: 'auto', timeoutMs: 5000 });
  });

  it('offers only the allow-listed tools', async () => {
    const source = await connect(stdio({ allowTools: ['echo', 'sum', 'not_on_the_server'] }));
    expect(source.tools().map((t) => t.definition.name).sort()).toEqual(['files__echo', 'files__sum']);
  });

  it('a call passes the arguments and the idempotency key; structured output is returned as is, text otherwise', async () => {
    const tools = byName((await connect(stdio())).tools());
    const echoed = JSON.parse((await run(tools.get('files__echo'), { say: 'hi' }, 'agent-1:7:2')) as string) as { args: unknown; key: string };
    expect(echoed.args).toEqual({ say: 'hi' });
    expect(echoed.key).toBe('agent-1:7:2');
    expect(await run(tools.get('files__sum'), { a: 2, b: 3 })).toEqual({ total: 5 });
  });

  it("a tool's error becomes a ToolError the model sees (not retryable), with the server's text", async () => {
    const tools = byName((await connect(stdio())).tools());
    const err = await run(tools.get('files__fail'), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolError);
    expect((err as ToolError).toErrorInfo()).toMatchObject({ code: 'ERR_MCP_TOOL', message: 'the disk is full', retryable: false });
  });

  it('a server that goes away mid-call fails the call as retryable; the next call starts it again', async () => {
    const tools = byName((await connect(stdio())).tools());
    const first = JSON.parse((await run(tools.get('files__echo'), { say: 'one' })) as string) as { pid: number };
    const err = await run(tools.get('files__exit'), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolError);
    expect((err as ToolError).toErrorInfo()).toMatchObject({ code: 'ERR_MCP_CALL', retryable: true });
    const again = JSON.parse((await run(tools.get('files__echo'), { say: 'two' })) as string) as { pid: number; args: unknown };
    expect(again.args).toEqual({ say: 'two' });
    expect(again.pid).not.toBe(first.pid);
  });

  it("follows the server's tools/list_changed: listeners get the list read again", async () => {
    const source = await connect(stdio());
    const changed = new Promise<Tool[]>((resolve) => source.onChange(resolve));
    await run(byName(source.tools()).get('files__learn'), {});
    const tools = await changed;
    expect(tools.map((t) => t.definition.name)).toContain('files__learned');
    expect(source.tools()).toBe(tools);
    expect(await run(byName(tools).get('files__learned'), {})).toBe('learned');
  });

  it('a server that cannot start is an error at connect', async () => {
    await expect(connectMcpServer('broken', { command: process.execPath, args: ['-e', 'process.exit(3)'] })).rejects.toThrow();
  });
});
