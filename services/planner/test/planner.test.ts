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
    await d.conn.js.publish(d.subjects.workPlan(), encodeMessage(request).data, { msgID: 'first' });
    // No host runs here: the test reads the agent's inbox (a work queue) with its own consumer.
    const jsm = await d.conn.jsm();
    await jsm.consumers.add(names.streams.inbox, { durable_name: 'test-reader', ack_policy: AckPolicy.Explicit, filter_subject: d.subjects.agentIn('agent-7', 'plan') });
    const inbox = await d.conn.js.consumers.get(names.streams.inbox, 'test-reader');
    const answer = await inbox.next({ expires: 10_000 });
    const result = decodeMessage(answer!.data, { expect: 'plan.result' });
    expect(result).toMatchObject({ key: 'agent-7:3:0', ref: 'plan-3', result: { message: { role: 'assistant', content: 'Four.' }, finishReason: 'stop' }, usage: { model: 'mock-1' } });
    expect(answer!.headers?.get(Header.MsgId)).toBe('result:agent-7:3:0');

    // The same command again (a re-published outbox after the duplicate window): no second model call.
    await d.conn.js.publish(d.subjects.workPlan(), encodeMessage(request).data, { msgID: 'second' });
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
});
