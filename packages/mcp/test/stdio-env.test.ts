// What a stdio MCP server started by the tool-runner can see of the runner's environment: only
// what its config names, plus the few harmless variables the SDK always passes.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMcpServer, type McpToolSource } from '@errand/mcp';

const SECRET = 'sk-test-mcp-env-0123456789abcdefghij';
let source: McpToolSource | undefined;

beforeAll(() => {
  // The runner's own secrets; a server must not inherit them.
  process.env.OPENAI_API_KEY = SECRET;
  process.env.NATS_CREDS_TEST_ONLY = 'nats-creds-should-stay';
});
afterAll(async () => {
  await source?.close();
  delete process.env.OPENAI_API_KEY;
  delete process.env.NATS_CREDS_TEST_ONLY;
});

describe('stdio MCP servers', () => {
  it("get only the env their config names (plus PATH, HOME and the SDK's defaults), not the runner's", async () => {
    const server = fileURLToPath(new URL('./fixtures/env-server.mjs', import.meta.url));
    source = await connectMcpServer('envtest', { command: process.execPath, args: [server], env: { NOTES_TOKEN: 'named-in-config' } });
    const tool = source.tools().find((t) => t.definition.name === 'envtest__show_env')!;
    const env = JSON.parse((await tool.run({}, { signal: new AbortController().signal, key: 'k:1:0' })) as string) as Record<string, string>;
    expect(env.NOTES_TOKEN).toBe('named-in-config');
    expect(env.PATH).toBe(process.env.PATH);
    expect(JSON.stringify(env)).not.toContain(SECRET);
    expect(env.OPENAI_API_KEY).toBeUndefined();
    expect(env.NATS_CREDS_TEST_ONLY).toBeUndefined();
    // Nothing else of the runner's environment (vitest's own variables included) reaches the server.
    const ours = Object.keys(env).filter((k) => !['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER', 'NOTES_TOKEN'].includes(k));
    expect(ours).toEqual([]);
  });
});
