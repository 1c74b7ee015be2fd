import { AckPolicy, type JsMsg } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSubjects,
  encodeMessage,
  Header,
  JSON_CONTENT_TYPE,
  resourceSpecs,
  type Message,
  type ResourceSpecs,
  type Subjects,
} from '@errand/protocols';
import { consumeMessages, ConsumeErrorCode, provision, type DeadLetterTarget, type ErrandConnection } from '@errand/nats';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

let srv: TestServer;
let conn: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect();
});
afterAll(() => srv.stop());

interface Setup {
  specs: ResourceSpecs;
  subjects: Subjects;
  target: DeadLetterTarget;
}

async function setup(): Promise<Setup> {
  const prefix = uniquePrefix();
  const specs = resourceSpecs({ prefix });
  await provision(conn, { specs });
  const subjects = createSubjects(prefix);
  const jsm = await conn.jsm();
  await jsm.consumers.add(specs.names.streams.work, {
    durable_name: 'tools',
    ack_policy: AckPolicy.Explicit,
    filter_subject: subjects.workTool(),
  });
  return { specs, subjects, target: { js: conn.js, subjects, origin: 'tool-runner', maxPayload: conn.nc.info!.max_payload } };
}

function toolRequest(callId: string): Message<'tool.request'> {
  return {
    v: 1,
    kind: 'tool.request',
    key: `a1:1:${callId}`,
    agentId: 'a1',
    step: 1,
    at: Date.now(),
    callId,
    tool: 'fs_read',
    args: { path: 'notes.txt' },
    attempt: 1,
  };
}

/** Collects handled messages and lets a test await the n-th. */
function collector() {
  const seen: Message<'tool.request'>[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    seen,
    add(m: Message<'tool.request'>) {
      seen.push(m);
      for (const w of waiters.filter((w) => seen.length >= w.n)) w.resolve();
    },
    until(n: number) {
      return seen.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));
    },
  };
}

async function deadLetters(specs: ResourceSpecs, count: number) {
  const consumer = await conn.js.consumers.get(specs.names.streams.dlq);
  const out: JsMsg[] = [];
  const messages = await consumer.fetch({ max_messages: count, expires: 5000 });
  for await (const m of messages) out.push(m);
  return out;
}

describe('consumeMessages and the dead-letter stream', () => {
  it('dead-letters what does not decode or validate, with the reason, and goes on with the next good message', async () => {
    const { specs, subjects, target } = await setup();
    const got = collector();
    const consumer = await consumeMessages({
      consumer: await conn.js.consumers.get(specs.names.streams.work, 'tools'),
      expect: 'tool.request',
      deadLetter: target,
      handle: async (m) => got.add(m),
    });

    const subject = subjects.workTool('fs_read');
    const good = encodeMessage(toolRequest('c1')).data;
    const truncated = good.subarray(0, good.length - 5);
    const jsonHeaders = headers();
    jsonHeaders.set(Header.ContentType, JSON_CONTENT_TYPE);
    const { agentId: _drop, ...withoutAgent } = toolRequest('c3');

    await conn.js.publish(subject, truncated);
    await conn.js.publish(subject, encodeMessage(toolRequest('c2'), { format: 'json' }).data, { headers: jsonHeaders });
    await conn.js.publish(subject, encodeMessage({ ...toolRequest('x'), kind: 'plan.request' } as never).data);
    await conn.js.publish(subject, encodeMessage(withoutAgent as never).data);
    await conn.js.publish(subject, new TextEncoder().encode('{not json'), { headers: jsonHeaders });
    await conn.js.publish(subject, good);

    await got.until(2);
    await consumer.stop();
    expect(got.seen.map((m) => m.callId)).toEqual(['c2', 'c1']);

    const dead = await deadLetters(specs, 4);
    expect(dead.map((d) => d.headers?.get(Header.DeadLetterCode))).toEqual([
      'ERR_UNDECODABLE',
      'ERR_UNKNOWN_KIND',
      'ERR_INVALID',
      'ERR_UNDECODABLE',
    ]);
    const [first, , invalid, badJson] = dead;
    expect(first!.subject).toBe(subjects.dlq('tool-runner'));
    expect(first!.data).toEqual(truncated);
    expect(first!.headers?.get(Header.DeadLetterSubject)).toBe(subject);
    expect(first!.headers?.get(Header.DeadLetterStream)).toBe(specs.names.streams.work);
    expect(first!.headers?.get(Header.DeadLetterReason)).toMatch(/not valid msgpack/);
    expect(invalid!.headers?.get(Header.DeadLetterReason)).toMatch(/agentId/);
    expect(badJson!.headers?.get(Header.ContentType)).toBe(JSON_CONTENT_TYPE);

    // Everything was acked: the work queue is empty.
    const info = await (await conn.jsm()).streams.info(specs.names.streams.work);
    expect(info.state.messages).toBe(0);
  });

  it('retries a failing handler, then dead-letters the message with the last error', async () => {
    const { specs, subjects, target } = await setup();
    let attempts = 0;
    const got = collector();
    const consumer = await consumeMessages({
      consumer: await conn.js.consumers.get(specs.names.streams.work, 'tools'),
      expect: 'tool.request',
      deadLetter: target,
      maxDeliveries: 3,
      retryDelayMs: () => 10,
      handle: async (m) => {
        if (m.callId === 'poison') {
          attempts += 1;
          throw new Error(`tool crashed (attempt ${attempts})`);
        }
        got.add(m);
      },
    });
    await conn.js.publish(subjects.workTool('fs_read'), encodeMessage(toolRequest('poison')).data);
    const [dead] = await deadLetters(specs, 1);
    await conn.js.publish(subjects.workTool('fs_read'), encodeMessage(toolRequest('after')).data);
    await got.until(1);
    await consumer.stop();

    expect(attempts).toBe(3);
    expect(dead!.headers?.get(Header.DeadLetterCode)).toBe(ConsumeErrorCode.HandlerFailed);
    expect(dead!.headers?.get(Header.DeadLetterReason)).toBe('handler failed 3 times; last error: tool crashed (attempt 3)');
    expect(dead!.headers?.get(Header.DeadLetterDeliveries)).toBe('3');
    expect(dead!.headers?.get(Header.DeadLetterAgentId)).toBe('a1');
    expect(got.seen.map((m) => m.callId)).toEqual(['after']);
  });

  it('tries a handler that failed on a passing error again in place, with the message still its first delivery; any other failure is nak\'ed', async () => {
    const { specs, subjects, target } = await setup();
    const deliveries: string[] = [];
    const got = collector();
    const consumer = await consumeMessages({
      consumer: await conn.js.consumers.get(specs.names.streams.work, 'tools'),
      expect: 'tool.request',
      deadLetter: target,
      maxDeliveries: 2,
      retryDelayMs: () => 10,
      retryInPlace: (err) => (err as Error).name === 'TimeoutError',
      handle: async (m, msg) => {
        deliveries.push(`${m.callId}#${msg.info.deliveryCount}`);
        const tries = deliveries.filter((d) => d.startsWith(`${m.callId}#`)).length;
        if (m.callId === 'passing' && tries < 3) throw Object.assign(new Error('timeout'), { name: 'TimeoutError' });
        if (m.callId === 'bug' && tries < 2) throw new TypeError('x is undefined');
        got.add(m);
      },
    });
    await conn.js.publish(subjects.workTool('fs_read'), encodeMessage(toolRequest('passing')).data);
    await got.until(1);
    await conn.js.publish(subjects.workTool('fs_read'), encodeMessage(toolRequest('bug')).data);
    await got.until(2);
    await consumer.stop();
    // Three tries of one delivery (no redelivery needed), then a bug retried only by redelivery.
    expect(deliveries).toEqual(['passing#1', 'passing#1', 'passing#1', 'bug#1', 'bug#2']);
  });

  it('handles messages concurrently up to the limit', async () => {
    const { specs, subjects, target } = await setup();
    let active = 0;
    let peak = 0;
    const got = collector();
    const release: (() => void)[] = [];
    const consumer = await consumeMessages({
      consumer: await conn.js.consumers.get(specs.names.streams.work, 'tools'),
      expect: 'tool.request',
      deadLetter: target,
      concurrency: 3,
      handle: async (m) => {
        active += 1;
        peak = Math.max(peak, active);
        // Hold each handler until three run at once (with a concurrency of 1 this never happens
        // and the test times out, which is the failure it should be).
        await new Promise<void>((resolve) => {
          release.push(resolve);
          if (release.length === 3) release.splice(0).forEach((r) => r());
        });
        active -= 1;
        got.add(m);
      },
    });
    for (let i = 0; i < 6; i++) await conn.js.publish(subjects.workTool('fs_read'), encodeMessage(toolRequest(`c${i}`)).data);
    await got.until(6);
    await consumer.stop();
    expect(peak).toBe(3);
  });

  it('heartbeats a slow handler so a short ack wait does not hand its message to another consumer', async () => {
    const { specs, subjects, target } = await setup();
    const jsm = await conn.jsm();
    const ackWaitMs = 1000;
    // A work queue takes one consumer per subject: one subject each, and not setup()'s.
    await jsm.consumers.delete(specs.names.streams.work, 'tools');
    for (const name of ['beating', 'silent']) {
      await jsm.consumers.add(specs.names.streams.work, { durable_name: name, ack_policy: AckPolicy.Explicit, filter_subject: subjects.workTool(name), ack_wait: ackWaitMs * 1_000_000 });
      await conn.js.publish(subjects.workTool(name), encodeMessage({ ...toolRequest(name), tool: name }).data);
    }

    // Without heartbeats the message comes back while its first handler still runs: the handler
    // waits for that second delivery, which is what a short ack wait alone would do to a slow step.
    let redelivered!: () => void;
    const second = new Promise<void>((resolve) => (redelivered = resolve));
    const silentDeliveries: number[] = [];
    const silent = await consumeMessages({
      consumer: await conn.js.consumers.get(specs.names.streams.work, 'silent'),
      expect: 'tool.request',
      deadLetter: target,
      concurrency: 2,
      handle: async (_m, msg) => {
        silentDeliveries.push(msg.info.deliveryCount);
        if (msg.info.deliveryCount > 1) return redelivered();
        await second;
      },
    });
    await second;
    await silent.stop();
    expect(silentDeliveries.slice(0, 2)).toEqual([1, 2]);

    // With heartbeats every fifth of the ack wait (a loaded machine may hold a timer back), a
    // handler three ack waits long keeps its message.
    const deliveries: number[] = [];
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const beating = await consumeMessages({
      consumer: await conn.js.consumers.get(specs.names.streams.work, 'beating'),
      expect: 'tool.request',
      deadLetter: target,
      concurrency: 2,
      heartbeatMs: ackWaitMs / 5,
      handle: async (_m, msg) => {
        deliveries.push(msg.info.deliveryCount);
        // The scenario itself, not a wait for something: a step that takes three ack waits.
        await new Promise((resolve) => setTimeout(resolve, ackWaitMs * 3));
        finished();
      },
    });
    await done;
    await beating.stop();
    // The ack is a plain publish: wait (bounded) until the server has taken it, then read the count.
    let info = await jsm.consumers.info(specs.names.streams.work, 'beating');
    for (let i = 0; i < 50 && info.num_ack_pending > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      info = await jsm.consumers.info(specs.names.streams.work, 'beating');
    }
    expect(deliveries).toEqual([1]);
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
  });
});
