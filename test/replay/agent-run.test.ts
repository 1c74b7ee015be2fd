import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { MESSAGE_VERSION } from '@errand/protocols';
import { createDeployment, runProcess, startTestServer, startTestToolRunner, type TestServer } from '@errand/testing';
import { stateOf, toolDef } from '../agent/setup.js';

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

let srv: TestServer;
let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'errand-replay-home-'));
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.stop();
  await rm(home, { recursive: true, force: true });
});

describe('replay of a built-in agent run', () => {
  it('a run with a model retry, an approval, a host crash after a commit and a child agent replays with --verify to the stored snapshot', async () => {
    const mock = await startMockLlm({
      steps: [
        { match: 'REPLAY-PARENT', error: { status: 500 } },
        { match: 'REPLAY-PARENT', reply: { content: 'I will ask a helper.', toolCalls: [{ name: 'delegate', arguments: { goal: 'REPLAY-CHILD: name a prime' } }] } },
        { match: 'REPLAY-CHILD', reply: { content: 'seven' } },
        { match: 'REPLAY-PARENT', expect: { contains: ['seven'] }, reply: { toolCalls: [{ name: 'echo', arguments: { n: 7 } }] } },
        { match: 'REPLAY-PARENT', reply: { content: 'The helper said seven, and echo agreed.' } },
        // For the fork: the same question, asked again of another model with another system prompt.
        { match: 'REPLAY-PARENT', reply: { content: 'Seven.' } },
      ],
    });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    const echo = await startTestToolRunner(d, 'echo', (r) => ({ output: r.args }));
    try {
      await d.start('planner');
      // The first host dies right after its third commit, before publishing that step's commands.
      const doomed = d.spawn('host', { ERRAND_CRASH_AT: 'host.after-commit:3' });
      await doomed.waitForLine(/"msg":"host ready"/);
      const agentId = await d.submit({
        goal: 'REPLAY-PARENT: find a prime and echo it',
        input: { toolDefinitions: [toolDef('echo')], toolPolicies: { echo: 'ask' }, settings: { backoffBaseMs: 200 } },
      });
      expect((await doomed.exited).signal).toBe('SIGKILL');
      await d.start('host');

      const waiting = await d.waitForRecord(agentId, (r) => stateOf(r) === 'awaitingApproval');
      const approval = waiting.waiting!;
      if (!approval.argsHash) throw new Error(`an approval wait names no argsHash: ${JSON.stringify(approval)}`);
      await d.send({ v: MESSAGE_VERSION, kind: 'approval', agentId, requestId: approval.requestId, argsHash: approval.argsHash, decision: 'approve', by: { id: 'boss', channel: 'test' }, at: Date.now() });
      const done = await d.waitForStatus(agentId, ['done', 'failed'], 60_000);
      expect(done.error).toBeUndefined();
      expect(done.output).toMatchObject({ answer: 'The helper said seven, and echo agreed.' });
      expect(mock.failures).toEqual([]);
      const child = Object.values(done.children)[0]!;
      expect(child.status).toBe('done');

      const journal = await d.journal(agentId);
      const types = journal.map((j) => j.event.type);
      expect(types).toContain('retry.plan');
      expect(types).toContain('approval');
      expect(types).toContain('child.result');
      expect(types).toContain('tool.result');

      const { NATS_URL: _u, ERRAND_PREFIX: _p, ERRAND_AGENT_MODULES: _m, ...rest } = process.env;
      const env = { ...rest, HOME: home, ...d.env('operator') };
      for (const id of [agentId, child.agentId]) {
        const r = await runProcess(process.execPath, [cli, 'replay', id, '--verify'], { env });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`verified: replaying ${id} gives the stored snapshot`);
      }
      const parent = (await runProcess(process.execPath, [cli, 'replay', agentId], { env })).stdout;
      // The model's reasoning, the retry, the decision and the child's outcome, in short form.
      expect(parent).toContain('model error ERR_');
      expect(parent).toContain('"I will ask a helper." calls delegate(');
      expect(parent).toContain('approval');
      expect(parent).toContain(`child ${child.agentId} (call_1): done`);
      expect(parent).toContain('tool echo');

      // Fork after the tool result, where a model call is outstanding: the fork asks it again,
      // of another model with another system prompt, and finishes on its own answer.
      const at = journal.find((j) => j.event.type === 'tool.result')!.step;
      const before = await d.agents.get(agentId);
      const f = await runProcess(process.execPath, [cli, 'fork', agentId, '--at', String(at), '--model', 'mock-2', '--system', 'You are terse.'], { env });
      expect(f.stderr).toBe('');
      const fork = f.stdout.trim();
      const forked = await d.waitForStatus(fork, ['done', 'failed'], 30_000);
      expect(forked.output).toMatchObject({ answer: 'Seven.' });
      expect(forked.origin).toEqual({ agentId, step: at });
      const asked = mock.requests.at(-1)!;
      expect(asked.model).toBe('mock-2');
      expect(asked.messages[0]).toMatchObject({ role: 'system', content: 'You are terse.' });
      expect((await d.agents.get(agentId))?.revision).toBe(before?.revision);
      const diff = await runProcess(process.execPath, [cli, 'diff', agentId, fork], { env });
      expect(diff.stdout).toContain(`first divergence at step ${at + 1}`);
      expect((await runProcess(process.execPath, [cli, 'replay', fork, '--verify'], { env })).code).toBe(0);
    } finally {
      await echo.stop();
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);
});
