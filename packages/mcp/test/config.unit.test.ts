// The config file of MCP servers and the catalog names of their tools: pure, no server (files in a temp folder).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadErrandConfig, namespacedToolName } from '@errand/mcp';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'errand-mcp-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const file = async (name: string, content: unknown) => {
  const path = join(dir, name);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};

describe('loadErrandConfig', () => {
  it('reads stdio and Streamable HTTP servers with their settings; no servers is an empty map', async () => {
    const config = await loadErrandConfig(
      await file('ok.json', {
        mcpServers: {
          notes: { command: 'node', args: ['notes.mjs'], env: { TOKEN: 't' }, allowTools: ['read'], policies: { write: 'ask' }, toolTimeouts: { read: 500 } },
          remote: { url: 'http://127.0.0.1:9/mcp', headers: { authorization: 'Bearer x' }, timeoutMs: 1000 },
        },
      }),
    );
    expect(config.mcpServers.notes).toMatchObject({ command: 'node', args: ['notes.mjs'], allowTools: ['read'], policies: { write: 'ask' } });
    expect(config.mcpServers.remote).toMatchObject({ url: 'http://127.0.0.1:9/mcp', timeoutMs: 1000 });
    expect((await loadErrandConfig(await file('empty.json', {}))).mcpServers).toEqual({});
  });

  it('refuses a broken file naming the file, the field and what is wrong', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['both.json', { mcpServers: { s: { command: 'node', url: 'http://127.0.0.1/mcp' } } }, /mcpServers\.s: give either "command" \(stdio\) or "url"/],
      ['neither.json', { mcpServers: { s: {} } }, /give either "command"/],
      ['name.json', { mcpServers: { 'bad name': { command: 'node' } } }, /mcpServers\.bad name: Invalid key/],
      ['policy.json', { mcpServers: { s: { command: 'node', policies: { t: 'sometimes' } } } }, /mcpServers\.s\.policies\.t/],
      ['syntax.json', '{ not json', /cannot read the config file .*syntax\.json/],
    ];
    for (const [name, content, message] of cases) {
      const path = await file(name, content);
      const err = (await loadErrandConfig(path).catch((e: unknown) => e)) as Error;
      expect(err, name).toBeInstanceOf(Error);
      expect(err.message, name).toMatch(message);
      expect(err.message, name).toContain(name);
    }
    await expect(loadErrandConfig(join(dir, 'missing.json'))).rejects.toThrow(/cannot read the config file .*missing\.json/);
  });
});

describe('namespacedToolName', () => {
  it('joins server and tool with __, replaces what a function name may not contain, and keeps 64 characters', () => {
    expect(namespacedToolName('files', 'read')).toBe('files__read');
    expect(namespacedToolName('my.server', 'read file')).toBe('my_server__read_file');
    expect(namespacedToolName('s', 'x'.repeat(100))).toHaveLength(64);
  });
});
