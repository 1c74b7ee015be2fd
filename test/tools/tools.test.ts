import { readFile, writeFile, mkdtemp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm, type MockStep } from '@errand/llm';
import { openBucket, openObjectStore } from '@errand/nats';
import { MESSAGE_VERSION, resourceNames } from '@errand/protocols';
import { readCatalog } from '@errand/runtime';
import { createDeployment, inputMessage, startTestServer, type Deployment, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

interface ToolWorld {
  d: Deployment;
  mock: MockLlm;
  workspace: string;
  stop(): Promise<void>;
}

async function world(steps: MockStep[], runnerEnv: Record<string, string> = {}, startRunner = true): Promise<ToolWorld> {
  const workspace = await mkdtemp(join(tmpdir(), 'errand-workspace-'));
  const mock = await startMockLlm({ steps });
  const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_WORKSPACE: workspace, ...runnerEnv } });
  await Promise.all([d.start('host'), d.start('planner'), startRunner ? d.start('tool-runner') : Promise.resolve()]);
  return { d, mock, workspace, stop: async () => (await d.stopAll(), await mock.close()) };
}

const stateOf = (r: { snapshot: unknown }) => (r.snapshot as { value: unknown }).value;

describe('the tool-runner, end to end', () => {
  it('registers its tools; an agent writes and reads workspace files and is told why a path is refused', async () => {
    const w = await world([
      { reply: { toolCalls: [{ name: 'fs_write', arguments: { path: 'notes/a.txt', content: 'hello' } }] } },
      {
        expect: { contains: ['"bytes":5'] },
        reply: { toolCalls: [{ name: 'fs_read', arguments: { path: 'notes/a.txt' } }, { name: 'fs_read', arguments: { path: '../../etc/passwd' } }] },
      },
      { expect: { contains: ['hello', "ERROR (ERR_OUTSIDE_WORKSPACE): '../../etc/passwd' contains '..'"] }, reply: { content: 'Wrote and read the note.' } },
    ]);
    try {
      const catalog = await readCatalog(await openBucket(w.d.conn, resourceNames(w.d.prefix).buckets.tools));
      expect(catalog.filter((t) => t.runners.length > 0).map((t) => `${t.definition.name}:${t.policy}`).sort()).toEqual([
        'fs_delete:ask',
        'fs_list:auto',
        'fs_read:auto',
        'fs_write:auto',
        'http_fetch:auto',
      ]);
      const agentId = await w.d.submit({ goal: 'Keep a note' });
      const done = await w.d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.output).toMatchObject({ answer: 'Wrote and read the note.' });
      expect(await readFile(join(w.workspace, 'notes/a.txt'), 'utf8')).toBe('hello');
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('an `ask` tool waits for approval of its exact arguments, runs when approved, and is reported denied when not', async () => {
    const w = await world([
      { match: 'DELETE-YES', reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'old.txt' } }] } },
      { match: 'DELETE-NO', reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'keep.txt' } }] } },
      { match: 'DELETE-YES', expect: { contains: ['"deleted":true'] }, reply: { content: 'Deleted.' } },
      { match: 'DELETE-NO', expect: { contains: ['a person denied this call'] }, reply: { content: 'Left it alone.' } },
    ]);
    try {
      await writeFile(join(w.workspace, 'old.txt'), 'x');
      await writeFile(join(w.workspace, 'keep.txt'), 'y');
      for (const [goal, decision] of [
        ['DELETE-YES', 'approve'],
        ['DELETE-NO', 'deny'],
      ] as const) {
        const agentId = await w.d.submit({ goal });
        const waiting = await w.d.waitForRecord(agentId, (r) => stateOf(r) === 'awaitingApproval');
        const a = waiting.waiting!;
        if (!a.argsHash) throw new Error(`an approval wait names no argsHash: ${JSON.stringify(a)}`);
        expect(a.summary).toMatch(/^fs_delete\(\{"path":"(old|keep)\.txt"\}\)$/);
        // A decision about other arguments is not taken.
        await w.d.send({ v: MESSAGE_VERSION, kind: 'approval', agentId, requestId: a.requestId, decision, argsHash: 'f00d', by: { id: 'x', channel: 'test' }, at: Date.now() });
        await w.d.send({ v: MESSAGE_VERSION, kind: 'approval', agentId, requestId: a.requestId, decision, argsHash: a.argsHash, by: { id: 'boss', channel: 'test' }, at: Date.now() });
        await w.d.waitForStatus(agentId, ['done', 'failed']);
      }
      await expect(readFile(join(w.workspace, 'old.txt'))).rejects.toThrow();
      expect(await readFile(join(w.workspace, 'keep.txt'), 'utf8')).toBe('y');
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it.each([
    ['an idempotent', true],
    ['a non-idempotent', false],
  ] as const)('%s tool call survives SIGKILL of its runner', async (_label, idempotent) => {
    const env = {
      ERRAND_SHELL_ALLOW: 'sleep',
      ERRAND_TOOL_ACK_WAIT_MS: '1500',
      ERRAND_TOOL_SETTINGS: JSON.stringify({ shell: { policy: 'auto', idempotent } }),
    };
    const steps: MockStep[] = [
      // Long enough that the first runner is surely still in the call when the test kills it.
      { reply: { toolCalls: [{ name: 'shell', arguments: { command: 'sleep', args: ['5'] } }] } },
      idempotent
        ? { expect: { contains: ['"exitCode":0'] }, reply: { content: 'Slept.' } }
        : { expect: { contains: ['The person answered: yes, it ran'] }, reply: { content: 'Good, it ran.' } },
    ];
    const w = await world(steps, env, false);
    try {
      const first = await w.d.start('tool-runner', { ERRAND_RUNNER_ID: 'first' });
      const agentId = await w.d.submit({ goal: 'Take a short nap' });
      // Once the call runs (for a non-idempotent tool: after its "started" mark is written).
      await first.waitForLine(/"msg":"tool call running"/);
      first.signal('SIGKILL');
      await first.exited;
      const second = await w.d.start('tool-runner', { ERRAND_RUNNER_ID: 'second' });
      if (idempotent) {
        // The second runner runs the call again. Its delivery count is no sign of that: under CI load
        // nats-server 2.9.10 once handed the redelivery over marked as delivery 1. What shows a re-run
        // is the dead runner's claim taken over.
        await second.waitForLine(/"msg":"command started"/);
        expect(second.stdout()).toContain('no longer renews its claim, and left no result: running it here');
        expect((await w.d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Slept.' });
      } else {
        const waiting = await w.d.waitForRecord(agentId, (r) => stateOf(r) === 'awaitingInput');
        expect(waiting.waiting?.question).toMatch(/may or may not have taken effect.*Did shell/);
        await w.d.send(inputMessage(agentId, 'yes, it ran'));
        expect((await w.d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Good, it ran.' });
        expect(second.stdout()).toContain('a call that was started before is delivered again: not re-running it');
      }
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  }, 60_000);

  it('a result over the size limit is stored whole; the model gets a preview and a reference', async () => {
    const w = await world([
      { reply: { toolCalls: [{ name: 'fs_read', arguments: { path: 'big.txt' } }] } },
      { expect: { contains: ['more characters in the full result'] }, reply: { content: 'It is long.' } },
    ]);
    try {
      const text = 'abcdefghij'.repeat(20_000);
      await writeFile(join(w.workspace, 'big.txt'), text);
      const agentId = await w.d.submit({ goal: 'Read the big file' });
      await w.d.waitForStatus(agentId, ['done', 'failed']);
      expect(w.mock.failures).toEqual([]);
      const journal = await w.d.journal(agentId);
      const resultStep = journal.find((j) => j.event.type === 'tool.result')!;
      const ref = resultStep.event.result as { ref: string; truncated: boolean };
      expect(ref.truncated).toBe(true);
      const name = ref.ref.replace(`obj://${resourceNames(w.d.prefix).objectStores.results}/`, '');
      const store = await openObjectStore(w.d.conn, resourceNames(w.d.prefix).objectStores.results);
      expect(new TextDecoder().decode((await store.getBlob(name))!)).toBe(text);
    } finally {
      await w.stop();
    }
  });

  it('a call over its timeout is aborted and reported; a cancel aborts a running shell call', async () => {
    const env = { ERRAND_SHELL_ALLOW: 'sleep', ERRAND_TOOL_SETTINGS: JSON.stringify({ shell: { policy: 'auto', timeoutMs: 300 } }) };
    const w = await world(
      [
        { match: 'TIMEOUT', reply: { toolCalls: [{ name: 'shell', arguments: { command: 'sleep', args: ['5'] } }] } },
        { match: 'TIMEOUT', expect: { contains: ['ERR_TOOL_TIMEOUT'] }, reply: { content: 'Too slow, giving up.' } },
      ],
      env,
    );
    try {
      const agentId = await w.d.submit({ goal: 'TIMEOUT', input: { settings: { maxToolAttempts: 1 } } });
      expect((await w.d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Too slow, giving up.' });
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
    const c = await world([{ reply: { toolCalls: [{ name: 'shell', arguments: { command: 'sleep', args: ['30'] } }] } }], { ERRAND_SHELL_ALLOW: 'sleep', ERRAND_TOOL_SETTINGS: JSON.stringify({ shell: { policy: 'auto' } }) }, false);
    try {
      const runner = await c.d.start('tool-runner');
      const agentId = await c.d.submit({ goal: 'Sleep long' });
      await runner.waitForLine(/"msg":"tool call running"/);
      await c.d.send({ v: MESSAGE_VERSION, kind: 'control', agentId, action: 'cancel', at: Date.now() });
      await c.d.waitForStatus(agentId, ['cancelled']);
      await runner.waitForLine(/command aborted \(agent cancelled\): no result sent/);
    } finally {
      await c.stop();
    }
  }, 60_000);
});
