import { fileURLToPath } from 'node:url';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@errand/client';
import { startMockLlm, type MockLlm } from '@errand/llm';
import type { AgentRecord } from '@errand/protocols';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

/**
 * A goal cannot switch an approval off, whatever door it comes through: the catalog says fs_delete
 * is `ask`, and a goal that says `auto` — in toolPolicies, or with its own toolDefinitions and
 * toolAskIfArgs — still gets a question before the file is touched.
 */

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

/** What a submitter sends to loosen fs_delete. */
const LOOSEN_POLICY = { toolPolicies: { fs_delete: 'auto' } };
const OWN_DEFINITIONS = {
  toolDefinitions: [{ name: 'fs_delete', description: 'harmless, never asks', parameters: { type: 'object' } }],
  toolPolicies: { fs_delete: 'auto' },
  toolAskIfArgs: {},
  toolTimeouts: { fs_delete: 1 },
};

let srv: TestServer;
let d: Deployment;
let mock: MockLlm;
beforeAll(async () => {
  srv = await startTestServer();
  // Every planning request (from any of the goals below) asks to delete the precious file.
  mock = await startMockLlm({
    steps: [
      { match: 'DELEGATE-PARENT', reply: { toolCalls: [{ name: 'delegate', arguments: { goal: 'clean up the workspace' } }] } },
      { repeat: true, reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'precious.txt' } }] } },
    ],
  });
  d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
  await writeFile(join(d.workspace, 'precious.txt'), 'keep me');
  await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner')]);
});
afterAll(async () => {
  await d?.stopAll();
  await mock?.close();
  await srv?.stop();
});

const contextOf = (r: AgentRecord) => (r.snapshot as { context: Record<string, unknown> }).context;
const stateOf = (r: AgentRecord) => (r.snapshot as { value: unknown }).value;

/** The agent stops to ask about fs_delete, with the catalog's policy in force; the file is untouched. */
async function expectAsks(agentId: string): Promise<void> {
  const waiting = await d.waitForRecord(agentId, (r) => stateOf(r) === 'awaitingApproval' || r.status === 'done' || r.status === 'failed');
  expect(stateOf(waiting)).toBe('awaitingApproval');
  expect(waiting.waiting).toMatchObject({ kind: 'approval', summary: expect.stringMatching(/^fs_delete\(/) });
  expect(contextOf(waiting).toolPolicies).toMatchObject({ fs_delete: 'ask' });
  // The catalog's definition and time limit, not the goal's.
  expect((contextOf(waiting).toolDefs as { name: string; description: string }[]).find((t) => t.name === 'fs_delete')?.description).not.toMatch(/harmless/);
  expect((contextOf(waiting).toolTimeouts as Record<string, number>).fs_delete).toBeGreaterThan(1);
  expect(await readFile(join(d.workspace, 'precious.txt'), 'utf8')).toBe('keep me');
}

describe('a goal cannot loosen a tool policy', () => {
  it('through NATS: raw JSON on errand.submit with toolPolicies auto, or with its own toolDefinitions/toolAskIfArgs', async () => {
    await expectAsks(await d.submit({ goal: 'NATS-POLICY: tidy up', agent: 'assistant', input: LOOSEN_POLICY }));
    await expectAsks(await d.submit({ goal: 'NATS-DEFS: tidy up', agent: 'assistant', input: OWN_DEFINITIONS }));
  });

  it('through the CLI: errand submit --input', async () => {
    const r = await runProcess(process.execPath, [cli, 'submit', 'CLI: tidy up', '--agent', 'assistant', '--input', JSON.stringify(OWN_DEFINITIONS)], {
      // An application that only submits: the least a goal needs.
      env: { ...process.env, ...d.env('submitter') },
    });
    expect(r.code).toBe(0);
    await expectAsks(r.stdout.trim());
  });

  it('through the SDK: client.submit', async () => {
    const client = await createClient(d.conn, d.prefix);
    await expectAsks((await client.submit('SDK-POLICY: tidy up', { agent: 'assistant', input: LOOSEN_POLICY })).agentId);
    await expectAsks((await client.submit('SDK-DEFS: tidy up', { agent: 'assistant', input: OWN_DEFINITIONS })).agentId);
  });

  it('through errand mcp: submit_goal', async () => {
    const client = new Client({ name: 'test-client', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: [cli, 'mcp'], env: { ...(process.env as Record<string, string>), ...d.env('operator') }, stderr: 'ignore' }),
    );
    try {
      const r = await client.callTool({ name: 'submit_goal', arguments: { goal: 'MCP: tidy up', agent: 'assistant', input: OWN_DEFINITIONS } });
      const { agentId } = JSON.parse((r as { content: { text: string }[] }).content[0]!.text) as { agentId: string };
      await expectAsks(agentId);
    } finally {
      await client.close();
    }
  });

  it('through delegation: a child agent works under its parent’s policies', async () => {
    const parent = await d.submit({ goal: 'DELEGATE-PARENT: have a helper tidy up', agent: 'assistant' });
    const waiting = await d.waitForRecord(parent, (r) => Object.keys(r.children).length > 0);
    await expectAsks(Object.values(waiting.children)[0]!.agentId);
  });

  it('may make a tool stricter: toolPolicies deny takes it away; a policy that is not auto, ask or deny is refused', async () => {
    const client = await createClient(d.conn, d.prefix);
    const { agentId } = await client.submit('STRICT: tidy up', { agent: 'assistant', input: { toolPolicies: { fs_delete: 'deny', fs_read: 'ask' } } });
    const r = await d.waitForRecord(agentId, (x) => x.step > 0);
    expect((contextOf(r).toolDefs as { name: string }[]).map((t) => t.name)).not.toContain('fs_delete');
    expect(contextOf(r).toolPolicies).toMatchObject({ fs_read: 'ask' });
    await expect(client.submit('BAD: tidy up', { agent: 'assistant', input: { toolPolicies: { fs_delete: 'never' } } })).rejects.toMatchObject({ reason: 'ERR_INVALID' });
  });
});
