import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, createClient } from '@errand/client';
import { startMockLlm } from '@errand/llm';
import { approvalHash } from '@errand/protocols';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

// record.waiting end to end: the built-in agent (host, planner and tool-runner processes, a
// scripted model) says what it waits for, `errand ls --status waiting` and `errand show` find it,
// the client refuses decisions about other requests or arguments and anything for an ended agent.

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

let srv: TestServer;
let home: string;
beforeAll(async () => {
  srv = await startTestServer();
  home = await mkdtemp(join(tmpdir(), 'errand-waiting-home-'));
});
afterAll(async () => {
  await srv?.stop();
  await rm(home, { recursive: true, force: true });
});

const exists = (path: string) => access(path).then(() => true, () => false);
/** The CLI as a user runs it against the deployment (no `errand up` state, no other NATS settings). */
function errand(d: Deployment, args: string[]) {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args], { env: { ...rest, HOME: home, ...d.env('operator') } });
}
const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (err: unknown) => (err instanceof ClientError ? err.code : String(err)));

describe('an agent that waits for a person says so in its record', () => {
  it('the built-in agent waiting for approval: status waiting with the exact calls; ls --status waiting and show find it; approved, it runs again', async () => {
    const mock = await startMockLlm({
      steps: [
        { match: 'delete victim.txt', reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'victim.txt' } }] } },
        { match: 'delete victim.txt', expect: { contains: ['victim.txt'] }, reply: { content: 'Deleted it.' } },
      ],
    });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    const victim = join(d.workspace, 'victim.txt');
    await writeFile(victim, 'precious');
    try {
      await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner')]);
      const client = await createClient(d.conn, d.prefix);
      const agentId = await d.submit({ goal: 'delete victim.txt', tools: ['fs_delete'] });

      const waiting = await d.waitForStatus(agentId, ['waiting', 'done', 'failed']);
      expect(waiting.status).toBe('waiting');
      const calls = [{ tool: 'fs_delete', args: { path: 'victim.txt' } }];
      expect(waiting.waiting).toMatchObject({ kind: 'approval', calls, argsHash: approvalHash(calls), summary: 'fs_delete({"path":"victim.txt"})' });
      const w = waiting.waiting!;
      expect(w.deadline).toBeGreaterThan(w.since);
      expect(waiting.approvals?.find((a) => a.requestId === w.requestId)).toMatchObject({ argsHash: w.argsHash });

      // What needs me? The client, `ls --status waiting` (JSON and table) and `show`.
      expect((await client.list({ status: 'waiting' })).map((a) => a.agentId)).toEqual([agentId]);
      expect(await client.get(agentId)).toMatchObject({ status: 'waiting', waiting: w });
      const listed = await errand(d, ['ls', '--status', 'waiting', '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout)).toMatchObject([{ agentId, status: 'waiting', waiting: { kind: 'approval', requestId: w.requestId, calls } }]);
      const table = await errand(d, ['ls', '--status', 'waiting']);
      const [head, row] = table.stdout.trimEnd().split('\n');
      expect(head).toMatch(/^ID +AGENT +STATUS +STATE +STEP +UPDATED +LABELS +WAITING FOR +GOAL$/);
      expect(row).toMatch(new RegExp(`^${agentId} +assistant +waiting! +awaitingApproval +\\d+ +\\d+s ago +- +approval: fs_delete +delete victim\\.txt$`));
      const shown = await errand(d, ['show', agentId]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain(`for approval (${w.requestId}) of 1 tool call:\n  fs_delete\n    {\n      "path": "victim.txt"\n    }\n  → errand approve ${agentId} | errand deny ${agentId}`);
      expect(shown.stdout).toMatch(/^waiting since \S+ \(\d+s ago\), deadline \S+ \(in \d+[smhd]\) for approval/m);

      // Decisions about another request or other arguments, and an answer to no question: refused, nothing sent.
      const by = { id: 'boss', channel: 'test' };
      expect(await codeOf(client.decide(agentId, 'approve', by, w.requestId, approvalHash([{ tool: 'fs_delete', args: { path: 'other.txt' } }])))).toBe('ERR_ARGS_CHANGED');
      expect(await codeOf(client.decide(agentId, 'approve', by, 'tools-99'))).toBe('ERR_NOTHING_PENDING');
      expect(await codeOf(client.answer(agentId, 'yes', by, { requestId: 'q-1' }))).toBe('ERR_NOTHING_PENDING');
      expect(await exists(victim)).toBe(true);

      expect(await client.decide(agentId, 'approve', by, w.requestId, w.argsHash)).toEqual({ requestId: w.requestId });
      const done = await d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.status).toBe('done');
      expect(done.waiting).toBeUndefined();
      expect(done.usage).toMatchObject({ inputTokens: expect.any(Number), outputTokens: expect.any(Number) });
      expect(await exists(victim)).toBe(false);
      // The step that applied the decision went back to running; the one before it waited.
      const journal = await d.journal(agentId);
      const decided = journal.findIndex((e) => e.event.type === 'approval');
      expect(journal[decided - 1]!.status).toBe('waiting');
      expect(journal[decided]!.status).toBe('running');

      // Ended: nothing pending, nothing to answer or cancel, and show no longer says it waits.
      expect(await codeOf(client.decide(agentId, 'approve', by))).toBe('ERR_NOTHING_PENDING');
      expect(await codeOf(client.answer(agentId, 'more?', by))).toBe('ERR_AGENT_ENDED');
      expect(await codeOf(client.control(agentId, 'cancel', by))).toBe('ERR_AGENT_ENDED');
      const after = await errand(d, ['show', agentId]);
      expect(after.stdout).not.toMatch(/^waiting|errand approve/m);
      const cancelDone = await errand(d, ['cancel', agentId]);
      expect(cancelDone.code).not.toBe(0);
      expect(cancelDone.stderr).toContain(`agent ${agentId} has finished`);
      expect(mock.failures).toEqual([]);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);

  it('a question (ask_human): an input wait with the question; cancelled, it waits for nothing and show does not say it does', async () => {
    const mock = await startMockLlm({ steps: [{ match: 'pick a city', reply: { toolCalls: [{ name: 'ask_human', arguments: { question: 'Which city should I pick?' } }] } }] });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    try {
      await Promise.all([d.start('host'), d.start('planner')]);
      const agentId = await d.submit({ goal: 'pick a city' });
      const asking = await d.waitForStatus(agentId, ['waiting', 'done', 'failed']);
      expect(asking.waiting).toMatchObject({ kind: 'input', question: 'Which city should I pick?' });
      const shown = await errand(d, ['show', agentId]);
      expect(shown.stdout).toContain(`for an answer (${asking.waiting!.requestId}):\n  Which city should I pick?\n  → errand answer ${agentId} "…"`);
      const cancelled = await errand(d, ['cancel', agentId]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      const ended = await d.waitForStatus(agentId, ['cancelled']);
      expect(ended.waiting).toBeUndefined();
      const after = await errand(d, ['show', agentId]);
      expect(after.stdout).toContain(`${agentId}  cancelled`);
      expect(after.stdout).not.toMatch(/^waiting|errand answer/m);
      const told = await errand(d, ['tell', agentId, 'Oslo']);
      expect(told.code).not.toBe(0);
      expect(told.stderr).toContain(`agent ${agentId} has been cancelled`);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 60_000);
});
