import { AckPolicy } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm } from '@errand/llm';
import { decodeMessage, encodeMessage, Header, MESSAGE_VERSION, resourceNames, type Message } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestProcess, type TestServer } from '@errand/testing';

let srv: TestServer;
let mock: MockLlm;
let d: Deployment;
let planner: TestProcess;
beforeAll(async () => {
  srv = await startTestServer();
  mock = await startMockLlm({ steps: [{ expect: { contains: ['What is 2 + 2?'] }, reply: { content: 'Four.' } }] });
  d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
  planner = await d.start('planner');
});
afterAll(async () => {
  await d?.stopAll();
  await mock?.close();
  await srv?.stop();
});

const request: Message<'plan.request'> = {
  v: MESSAGE_VERSION,
  kind: 'plan.request',
  key: 'agent-7:3:0',
  ref: 'plan-3',
  agentId: 'agent-7',
  step: 3,
  at: Date.now(),
  messages: [{ role: 'user', content: 'What is 2 + 2?' }],
  tools: [],
};

describe('the planner service', () => {
  it('answers a plan command with the model, and a repeat of its key from the effects bucket without calling again', async () => {
    const names = resourceNames(d.prefix);
    // Commands are signed as a host signs them: the planner verifies (ERRAND_VERIFY_KEY).
    const first = d.signed(request);
    await d.conn.js.publish(d.subjects.workPlan(), first.data, { msgID: 'first', headers: first.headers });
    // No host runs here: the test reads the agent's inbox (a work queue) with its own consumer.
    const jsm = await d.conn.jsm();
    await jsm.consumers.add(names.streams.inbox, { durable_name: 'test-reader', ack_policy: AckPolicy.Explicit, filter_subject: d.subjects.agentIn('agent-7', 'plan') });
    const inbox = await d.conn.js.consumers.get(names.streams.inbox, 'test-reader');
    const answer = await inbox.next({ expires: 10_000 });
    const result = decodeMessage(answer!.data, { expect: 'plan.result' });
    expect(result).toMatchObject({ key: 'agent-7:3:0', ref: 'plan-3', result: { message: { role: 'assistant', content: 'Four.' }, finishReason: 'stop' }, usage: { model: 'mock-1' } });
    expect(answer!.headers?.get(Header.MsgId)).toBe('result:agent-7:3:0');

    // The same command again (a re-published outbox after the duplicate window): no second model call.
    const again = d.signed(request);
    again.headers.set(Header.Republished, '1');
    await d.conn.js.publish(d.subjects.workPlan(), again.data, { msgID: 'second', headers: again.headers });
    await planner.waitForLine(/repeat of a completed command: answered from the effects bucket/);
    expect(mock.requests).toHaveLength(1);
    expect(mock.failures).toEqual([]);
  });

  it('dead-letters a plan command that does not validate', async () => {
    const { messages: _m, ...broken } = request;
    await d.conn.js.publish(d.subjects.workPlan(), encodeMessage({ ...broken, key: 'agent-7:4:0' } as never).data);
    const dlq = await d.conn.js.consumers.get(resourceNames(d.prefix).streams.dlq, { filter_subjects: d.subjects.dlq('planner') });
    const dead = await dlq.next({ expires: 10_000 });
    expect(dead?.headers?.get(Header.DeadLetterCode)).toBe('ERR_INVALID');
    expect(dead?.headers?.get(Header.DeadLetterReason)).toMatch(/messages/);
  });

  it('refuses a plan command no host signed: dead-lettered, no model call', async () => {
    const calls = mock.requests.length;
    await d.conn.js.publish(d.subjects.workPlan(), encodeMessage({ ...request, key: 'agent-7:5:0' }).data);
    const dlq = await d.conn.js.consumers.get(resourceNames(d.prefix).streams.dlq, { filter_subjects: d.subjects.dlq('planner') });
    let dead = await dlq.next({ expires: 10_000 });
    // The previous test's entry comes first on this subject.
    if (dead?.headers?.get(Header.DeadLetterCode) === 'ERR_INVALID') dead = await dlq.next({ expires: 10_000 });
    expect(dead?.headers?.get(Header.DeadLetterCode)).toBe('ERR_BAD_SIGNATURE');
    expect(dead?.headers?.get(Header.DeadLetterReason)).toMatch(/no signature/);
    expect(mock.requests).toHaveLength(calls);
  });
});

describe('daily cost caps per label', () => {
  it('refuses a call once a label spent its cap today, counted across planners, unless a person allowed it', async () => {
    const capMock = await startMockLlm({
      steps: [
        { reply: { content: 'first', usage: { inputTokens: 1000, outputTokens: 1000 } } },
        { reply: { content: 'allowed over the cap', usage: { inputTokens: 10, outputTokens: 10 } } },
      ],
    });
    const cd = await createDeployment(srv, {
      env: {
        OPENAI_BASE_URL: capMock.url,
        ERRAND_MODEL: 'mock-1',
        ERRAND_PRICES: '{"mock-1": {"inputPerMTok": 1000, "outputPerMTok": 1000}}',
        ERRAND_DAILY_CAPS: '{"team=research": 1.5}',
      },
    });
    try {
      // Two planner replicas share the work and the ledger.
      await Promise.all([cd.start('planner'), cd.start('planner')]);
      const names = resourceNames(cd.prefix);
      const jsm = await cd.conn.jsm();
      await jsm.consumers.add(names.streams.inbox, { durable_name: 'reader', ack_policy: AckPolicy.Explicit, filter_subject: cd.subjects.agentInAll('agent-8') });
      const inbox = await cd.conn.js.consumers.get(names.streams.inbox, 'reader');
      const ask = async (n: number, extra: Partial<Message<'plan.request'>> = {}) => {
        const { data, headers } = cd.signed({ ...request, agentId: 'agent-8', key: `agent-8:${n}:0`, labels: { team: 'research' }, ...extra });
        await cd.conn.js.publish(cd.subjects.workPlan(), data, { headers });
        const m = await inbox.next({ expires: 10_000 });
        m!.ack();
        return decodeMessage(m!.data, { expect: 'plan.result' });
      };
      const first = await ask(1);
      expect(first.usage).toMatchObject({ costUsd: 2 });
      const refused = await ask(2);
      expect(refused.error).toMatchObject({
        code: 'ERR_DAILY_BUDGET',
        retryable: false,
        message: 'label team=research spent $2.00 of its $1.50 daily cap',
      });
      const allowed = await ask(3, { overDailyCap: true });
      expect(allowed.result?.message.content).toBe('allowed over the cap');
      expect(capMock.requests).toHaveLength(2);
    } finally {
      await cd.stopAll();
      await capMock.close();
    }
  });
});
