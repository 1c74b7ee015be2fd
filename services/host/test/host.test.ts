import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMessage, Header, MESSAGE_VERSION, resourceSpecs } from '@errand/protocols';
import { headers } from '@errand/nats';
import { startTestServer, type TestServer } from '@errand/testing';
import { deploy, echoToolRunner, inputMessage, type Deployment } from './helpers.js';

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  // The shortest duplicate window the server allows lets the test deliver one inbox message twice.
  d = await deploy(srv, { duplicateWindowMs: 100 });
  await d.startHost();
});
afterAll(async () => {
  await d?.stopHosts();
  await srv?.stop();
});

describe('the host', () => {
  it('answers a raw JSON request on errand.submit, and that agent runs to the end', async () => {
    const tools = await echoToolRunner(d);
    const reply = await d.conn.nc.request(d.subjects.submit(), '{"goal":"echo three times","agent":"pipeline","input":{"steps":3}}', { timeout: 10_000 });
    const answer = JSON.parse(reply.string()) as { v: number; kind: string; agentId: string };
    expect(answer).toMatchObject({ v: 1, kind: 'submit.reply', agentId: expect.stringMatching(/^a-/) });
    expect(reply.headers?.get(Header.ContentType)).toBe('application/json');

    const done = await d.waitForStatus(answer.agentId, ['done', 'failed']);
    expect(done.status).toBe('done');
    expect(done.output).toEqual({
      outputs: [{ echoed: { n: 1, previous: null } }, { echoed: { n: 2, previous: { echoed: { n: 1, previous: null } } } }, expect.anything()],
    });
    expect([...tools.effects.values()]).toEqual([1, 1, 1]);
    await tools.stop();
  });

  it('refuses an invalid submit with the reason, in JSON', async () => {
    const reply = await d.conn.nc.request(d.subjects.submit(), '{"goal":""}', { timeout: 10_000 });
    expect(JSON.parse(reply.string())).toMatchObject({ error: { code: 'ERR_INVALID', message: expect.stringMatching(/goal/) } });
    const unknown = await d.conn.nc.request(d.subjects.submit(), '{"goal":"x","agent":"nobody"}', { timeout: 10_000 });
    expect(JSON.parse(unknown.string())).toMatchObject({ error: { code: 'ERR_UNKNOWN_AGENT' } });
  });

  it('is idempotent when the caller chooses the agent id', async () => {
    const first = await d.submit({ goal: 'count', agent: 'tally', agentId: 'fixed-id-1', input: { expect: 1 } });
    await d.waitForStatus(first, ['running']);
    const again = await d.conn.nc.request(d.subjects.submit(), '{"goal":"count","agent":"tally","agentId":"fixed-id-1"}', { timeout: 10_000 });
    expect(JSON.parse(again.string())).toMatchObject({ agentId: 'fixed-id-1', existing: true });
  });

  it('applies the same inbox message once when it is delivered twice', async () => {
    const agentId = await d.submit({ goal: 'add two numbers', agent: 'tally', input: { expect: 2 } });
    await d.waitForStatus(agentId, ['running']);
    const five = encodeMessage(inputMessage(agentId, '5')).data;
    const subject = d.subjects.agentIn(agentId, 'input');
    const first = await d.conn.js.publish(subject, five, { msgID: 'input-five' });
    // Publish the repeat until the server stores it (once the 100 ms window has passed): the
    // stream then holds the same message twice, as after an outage longer than the window.
    let second = await d.conn.js.publish(subject, five, { msgID: 'input-five' });
    for (let i = 0; second.duplicate && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 25));
      second = await d.conn.js.publish(subject, five, { msgID: 'input-five' });
    }
    expect(second.duplicate).toBe(false);
    expect(second.seq).toBeGreaterThan(first.seq);
    await d.conn.js.publish(subject, encodeMessage(inputMessage(agentId, '7')).data, { msgID: 'input-seven' });
    const done = await d.waitForStatus(agentId, ['done']);
    expect(done.output).toEqual({ sum: 12, count: 2, seen: ['5', '7'] });
    // The repeat made the host re-publish step 2's outbox (it cannot know the first publish got
    // through); with this test's 100 ms window the stream stored that journal entry again, as it
    // would after an outage longer than the real 5-minute window. Readers key the journal by step.
    const journal = await d.journal(agentId);
    expect([...new Set(journal.map((j) => j.step))]).toEqual([1, 2, 3]);
    const twos = journal.filter((j) => j.step === 2);
    expect(twos.every((j) => JSON.stringify(j) === JSON.stringify(twos[0]))).toBe(true);
  });

  it('dead-letters an undecodable inbox message and keeps serving', async () => {
    const agentId = await d.submit({ goal: 'count', agent: 'tally', input: { expect: 1 } });
    await d.waitForStatus(agentId, ['running']);
    const h = headers();
    h.set(Header.ContentType, 'application/json');
    await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), new TextEncoder().encode('{"v":1,"kind":"input",'), { headers: h });
    // The body names another agent than the subject: refused too.
    await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), encodeMessage(inputMessage('someone-else', '1')).data);
    await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), encodeMessage(inputMessage(agentId, '3')).data);
    expect((await d.waitForStatus(agentId, ['done'])).output).toMatchObject({ sum: 3 });

    const dlq = resourceSpecs({ prefix: d.prefix }).names.streams.dlq;
    const consumer = await d.conn.js.consumers.get(dlq, { filter_subjects: d.subjects.dlq('host') });
    const dead = await consumer.fetch({ max_messages: 2, expires: 5000 });
    const reasons: string[] = [];
    for await (const m of dead) {
      reasons.push(`${m.headers?.get(Header.DeadLetterCode)}: ${m.headers?.get(Header.DeadLetterReason)}`);
      if (reasons.length === 2) break;
    }
    expect(reasons[0]).toMatch(/^ERR_UNDECODABLE: body is not valid JSON/);
    expect(reasons[1]).toMatch(/^ERR_INVALID: subject .* does not match the body/);
  });

  it('fails an agent whose machine throws, visibly, and keeps serving others', async () => {
    const agentId = await d.submit({ goal: 'explode', agent: 'thrower' });
    await d.waitForStatus(agentId, ['running']);
    await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), encodeMessage(inputMessage(agentId, 'boom')).data);
    const failed = await d.waitForStatus(agentId, ['failed']);
    expect(failed.error).toMatchObject({ code: 'ERR_MACHINE', message: expect.stringContaining('boom: the machine exploded on purpose') });

    const events = await d.conn.js.consumers.get(resourceSpecs({ prefix: d.prefix }).names.streams.events, {
      filter_subjects: d.subjects.agentEvent(agentId, 'failed'),
    });
    const ev = await events.next({ expires: 5000 });
    expect(ev?.subject).toBe(d.subjects.agentEvent(agentId, 'failed'));

    const next = await d.submit({ goal: 'still here', agent: 'tally', input: { expect: 1 } });
    await d.conn.js.publish(d.subjects.agentIn(next, 'input'), encodeMessage(inputMessage(next, '1')).data);
    expect((await d.waitForStatus(next, ['done'])).status).toBe('done');
  });

  it('pauses, holds events, resumes, and cancels', async () => {
    const agentId = await d.submit({ goal: 'count', agent: 'tally', input: { expect: 2 } });
    await d.waitForStatus(agentId, ['running']);
    const control = (action: 'pause' | 'resume' | 'cancel') =>
      d.conn.js.publish(
        d.subjects.agentIn(agentId, 'control'),
        encodeMessage({ v: MESSAGE_VERSION, kind: 'control', agentId, action, at: Date.now() }).data,
      );
    await control('pause');
    await d.waitForStatus(agentId, ['paused']);
    await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), encodeMessage(inputMessage(agentId, '4')).data);
    await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), encodeMessage(inputMessage(agentId, '6')).data);
    // Both inputs arrive while paused: they wait in the record, unapplied.
    const held = await d.waitForRecord(agentId, (r) => r.deferred.length === 2);
    expect(held.step).toBe(1);
    await control('resume');
    expect((await d.waitForStatus(agentId, ['done'])).output).toMatchObject({ sum: 10, count: 2 });

    const other = await d.submit({ goal: 'count', agent: 'tally', input: { expect: 5 } });
    await d.waitForStatus(other, ['running']);
    await d.conn.js.publish(
      d.subjects.agentIn(other, 'control'),
      encodeMessage({ v: MESSAGE_VERSION, kind: 'control', agentId: other, action: 'cancel', reason: 'changed my mind', at: Date.now() }).data,
    );
    const cancelled = await d.waitForStatus(other, ['cancelled']);
    expect(cancelled.error?.message).toBe('changed my mind');
  });
});
