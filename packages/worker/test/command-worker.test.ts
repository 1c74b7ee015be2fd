// The exactly-once core every service builds on, against a real nats-server: a command runs once
// per idempotency key, its result is stored before it is sent, a cancel reaches it, a stopping
// worker hands it back, and a command no host signed never runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers, openBucket, type Msg } from '@errand/nats';
import {
  createCommandSigner,
  createCommandVerifier,
  decodeMessage,
  encodeMessage,
  generateCommandKeys,
  Header,
  MESSAGE_VERSION,
  resourceNames,
  type Message,
} from '@errand/protocols';
import { metrics, newTraceparent, TRACEPARENT, traceIdOf } from '@errand/telemetry';
import { collect, createDeployment, recordingLogger, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { effectKey, startCommandWorker, type CommandWorker } from '@errand/worker';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.stop();
});


/** A promise with its resolve function outside, to await what another callback does. */
function signal<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

let seq = 0;
function toolRequest(agentId: string, extra: Partial<Message<'tool.request'>> = {}): Message<'tool.request'> {
  seq += 1;
  return { v: MESSAGE_VERSION, kind: 'tool.request', key: `${agentId}:${seq}:0`, agentId, step: seq, at: Date.now(), callId: `c${seq}`, tool: 'echo', args: { n: seq }, attempt: 1, ...extra };
}

function resultOf(cmd: Message<'tool.request'>, output: unknown): Message<'tool.result'> {
  return { v: MESSAGE_VERSION, kind: 'tool.result', agentId: cmd.agentId, key: cmd.key, callId: cmd.callId, tool: cmd.tool, attempt: cmd.attempt, durationMs: 1, result: { output }, at: Date.now() };
}

/** Publishes a command signed with the deployment's key; each publish is a new stream message (its own msgID). */
let publishes = 0;
async function publish(d: Deployment, cmd: Message<'tool.request'>, extraHeaders: Record<string, string> = {}) {
  const { data, headers: h } = d.signed(cmd);
  for (const [k, v] of Object.entries(extraHeaders)) h.set(k, v);
  publishes += 1;
  await d.conn.js.publish(d.subjects.workTool(cmd.tool), data, { headers: h, msgID: `${cmd.key}#${publishes}` });
}

/** A worker serving the `echo` tool subject of `d`, with a name of its own (its durable consumer). */
function echoWorker(d: Deployment, name: string, execute: Parameters<typeof startCommandWorker<'tool.request'>>[0]['execute'], more: { stopGraceMs?: number; ackWaitMs?: number; logger?: ReturnType<typeof recordingLogger>; subject?: string } = {}) {
  const { subject, ...options } = more;
  return startCommandWorker({
    conn: d.conn,
    prefix: d.prefix,
    name,
    filterSubject: subject ?? d.subjects.workTool('echo'),
    expect: 'tool.request',
    verify: createCommandVerifier(d.keys.publicKey),
    ackWaitMs: 5_000,
    execute,
    ...options,
  });
}

const commandsCounted = async (worker: string, outcome: string) =>
  (await metrics.commands.get()).values.find((v) => v.labels.worker === worker && v.labels.outcome === outcome)?.value ?? 0;

describe('startCommandWorker', () => {
  it('a command that runs longer than the ack wait heartbeats and runs once', async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('w9', 'tool'));
    const deliveries: number[] = [];
    const worker = await echoWorker(
      d,
      'long',
      async (cmd, { msg }) => {
        deliveries.push(msg.info.deliveryCount);
        // The scenario itself: a command three ack waits long.
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        return resultOf(cmd, 'slow');
      },
      { ackWaitMs: 1_000 },
    );
    try {
      await publish(d, toolRequest('w9'));
      await results.next();
      expect(deliveries).toEqual([1]);
    } finally {
      results.stop();
      await worker.stop();
    }
  });

  it('an unmarked copy is looked up when it reached the stream long after its step, and one replayed within the minute is answered from the effects bucket without running', async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('w2', 'tool'));
    const runs: string[] = [];
    const log = recordingLogger();
    const worker = await echoWorker(
      d,
      'replayed',
      async (cmd) => {
        runs.push(cmd.key);
        return resultOf(cmd, { ran: runs.length });
      },
      { logger: log },
    );
    const effects = await openBucket(d.conn, resourceNames(d.prefix).buckets.effects);
    const storedOutput = async (key: string) => decodeMessage((await effects.get(effectKey(key)))!.value, { expect: 'tool.result' }).result?.output;
    try {
      // A command sent two minutes ago and stored only now: not a first copy, whatever its headers.
      const old = toolRequest('w2', { at: Date.now() - 120_000 });
      await publish(d, old);
      await results.next();
      // Once its run is over (a copy that comes while it runs waits for it and sends nothing itself).
      await log.waitFor((e) => e.msg === 'command done');
      await publish(d, old);
      await results.next();
      expect(runs).toEqual([old.key]);
      await log.waitFor((e) => e.msg === 'repeat of a completed command: answered from the effects bucket');

      // The same fresh command replayed unmarked within the minute (as nats-server 2.9 let through
      // across a node restart) looks like a first copy, but its claim finds the running mark: it
      // is answered from the effects bucket, not run again.
      const fresh = toolRequest('w2');
      await publish(d, fresh);
      await results.next();
      // (Or, when it arrives before the first copy's run has quite ended, it waits for that run.)
      const repeats = () => log.entries.filter((e) => e.msg === 'repeat of a completed command: answered from the effects bucket').length;
      await publish(d, fresh);
      await log.waitFor((e) => repeats() >= 2 || e.msg.startsWith('a copy of a command this worker is running or holding'));
      expect(runs).toEqual([old.key, fresh.key]);
      expect(await storedOutput(fresh.key)).toEqual({ ran: 2 });
    } finally {
      results.stop();
      await worker.stop();
    }
  });

  it('runs a command once per idempotency key: a repeat is answered from the effects bucket under the same trace, without running', async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('w1', 'tool'));
    const runs: string[] = [];
    const log = recordingLogger();
    const worker = await echoWorker(
      d,
      'once',
      async (cmd) => {
        runs.push(cmd.key);
        return resultOf(cmd, { ran: runs.length });
      },
      { logger: log },
    );
    try {
      const cmd = toolRequest('w1');
      const trace = newTraceparent();
      await publish(d, cmd, { [TRACEPARENT]: trace });
      const first = await results.next();
      // Once its run is over (a copy that comes while it runs waits for it and sends nothing itself).
      await log.waitFor((e) => e.msg === 'command done');
      // The same key again, as a host re-publishing a stored outbox sends it (after a crash, or a second host).
      await publish(d, cmd, { [Header.Republished]: '1' });
      const second = await results.next();
      expect(runs).toEqual([cmd.key]);
      const a = decodeMessage(first.data, { expect: 'tool.result' });
      const b = decodeMessage(second.data, { expect: 'tool.result' });
      expect(a.result?.output).toEqual({ ran: 1 });
      expect(b).toEqual(a);
      // Both answers go under the key's message id, so the agent's inbox keeps only one.
      expect(first.headers?.get('Nats-Msg-Id')).toBe(`result:${cmd.key}`);
      expect(second.headers?.get('Nats-Msg-Id')).toBe(`result:${cmd.key}`);
      // The result continues the command's trace (a child span of it).
      expect(traceIdOf(first.headers?.get(TRACEPARENT))).toBe(traceIdOf(trace));
      expect(first.headers?.get(TRACEPARENT)).not.toBe(trace);
      // Counted once the worker is done with each (after the answer went out).
      await log.waitFor((e) => e.msg === 'command done');
      await log.waitFor((e) => e.msg === 'repeat of a completed command: answered from the effects bucket');
      expect(await commandsCounted('once', 'repeat')).toBe(1);
      expect(await commandsCounted('once', 'ok')).toBe(1);
    } finally {
      results.stop();
      await worker.stop();
    }
  });

  it('stores a result in the effects bucket before it sends it to the agent', async () => {
    const d = await createDeployment(srv);
    const bucket = resourceNames(d.prefix).buckets.effects;
    const cmd = toolRequest('w2');
    // One callback for both subjects: the server delivers one connection's publishes in order.
    const seen: string[] = [];
    const resultSeen = signal();
    const onMsg = (err: Error | null, m: Msg) => {
      if (err) return;
      seen.push(m.subject.startsWith('$KV.') ? 'stored' : 'sent');
      if (!m.subject.startsWith('$KV.')) resultSeen.resolve();
    };
    const subs = [d.conn.nc.subscribe(`$KV.${bucket}.${effectKey(cmd.key)}`, { callback: onMsg }), d.conn.nc.subscribe(d.subjects.agentIn('w2', 'tool'), { callback: onMsg })];
    await d.conn.nc.flush();
    const worker = await echoWorker(d, 'store-first', async (c) => resultOf(c, 'done'));
    try {
      await publish(d, cmd);
      await resultSeen.promise;
      expect(seen).toEqual(['stored', 'sent']);
      const stored = await (await openBucket(d.conn, bucket)).get(effectKey(cmd.key));
      expect(decodeMessage(stored!.value, { expect: 'tool.result' }).result?.output).toBe('done');
    } finally {
      for (const s of subs) s.unsubscribe();
      await worker.stop();
    }
  });

  it('a cancel of the agent aborts its running command, and nothing is sent or stored for it', async () => {
    const d = await createDeployment(srv);
    const log = recordingLogger();
    const results = collect(d.conn.nc, d.subjects.agentIn('w3', 'tool'));
    const running = signal();
    const aborted = signal<unknown>();
    const slow = toolRequest('w3', { args: { slow: true } });
    const worker = await echoWorker(
      d,
      'cancel',
      async (cmd, { signal: abort }) => {
        if ((cmd.args as { slow?: boolean }).slow) {
          running.resolve();
          await new Promise((_, reject) => abort.addEventListener('abort', () => (aborted.resolve(abort.reason), reject(abort.reason)), { once: true }));
        }
        return resultOf(cmd, 'quick');
      },
      { logger: log },
    );
    try {
      await publish(d, slow);
      await running.promise;
      await d.send({ v: MESSAGE_VERSION, kind: 'control', agentId: 'w3', action: 'cancel', at: Date.now() });
      expect(String(await aborted.promise)).toContain('agent w3 was cancelled');
      await log.waitFor((e) => e.msg === 'command aborted (agent cancelled): no result sent');
      // The next thing the agent receives is the result of a later command, not of the cancelled one.
      const quick = toolRequest('w3');
      await publish(d, quick);
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.key).toBe(quick.key);
      const effects = await openBucket(d.conn, resourceNames(d.prefix).buckets.effects);
      expect(await effects.get(effectKey(slow.key))).toBeNull();
      expect(await commandsCounted('cancel', 'aborted')).toBe(1);
    } finally {
      results.stop();
      await worker.stop();
    }
  });

  it('a worker that stops hands an unfinished command back, and another worker of the service finishes it', async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('w4', 'tool'));
    const cmd = toolRequest('w4');
    const aRunning = signal();
    const aAborted = signal<unknown>();
    const ranBy: string[] = [];
    const a = await echoWorker(
      d,
      'handover',
      async (_c, { signal: abort }) => {
        ranBy.push('a');
        aRunning.resolve();
        return new Promise((_, reject) => abort.addEventListener('abort', () => (aAborted.resolve(abort.reason), reject(abort.reason)), { once: true }));
      },
      { stopGraceMs: 100 },
    );
    let b: CommandWorker | undefined;
    try {
      await publish(d, cmd);
      await aRunning.promise;
      // A second replica joins the same durable consumer, then the first one shuts down.
      b = await echoWorker(d, 'handover', async (c, { msg }) => (ranBy.push('b'), resultOf(c, { by: 'b', deliveries: msg.info.deliveryCount })));
      await a.stop();
      expect(String(await aAborted.promise)).toContain('the worker is stopping');
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.key).toBe(cmd.key);
      expect(r.result?.output).toEqual({ by: 'b', deliveries: 2 });
      expect(ranBy).toEqual(['a', 'b']);
    } finally {
      results.stop();
      await a.stop();
      await b?.stop();
    }
  });

  it('a copy delivered elsewhere while its first worker still runs it waits as long as that worker renews its claim, and is answered from its result: the command runs once', async () => {
    // The same signed command on a second subject, served by a second worker: what a copy delivered
    // to another worker looks like (the first one's heartbeats lost in an outage, a server that lost
    // its consumer state and delivers it again).
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('w10', 'tool'));
    const cmd = toolRequest('w10');
    const logger = recordingLogger();
    const ran: string[] = [];
    const started = signal();
    const finish = signal();
    const execute = (name: string) => async (c: Message<'tool.request'>) => {
      ran.push(name);
      started.resolve();
      await finish.promise;
      return resultOf(c, { by: name });
    };
    // takeoverWaitMs is 1 s at this ack wait; the command runs three times that.
    const a = await echoWorker(d, 'claim-a', execute('a'), { ackWaitMs: 1_000, logger });
    const copies = d.subjects.workTool('echo-copies');
    const b = await echoWorker(d, 'claim-b', execute('b'), { ackWaitMs: 1_000, logger, subject: copies });
    try {
      await publish(d, cmd);
      await started.promise;
      const { data, headers: h } = d.signed(cmd);
      await d.conn.js.publish(copies, data, { headers: h, msgID: `${cmd.key}#copy` });
      const waiting = await logger.waitFor((e) => e.msg.startsWith('a copy of a command another worker started'));
      // The scenario: the first worker keeps running for three takeover waits.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      finish.resolve();
      await logger.waitFor((e) => e.msg === 'repeat of a completed command: answered from the effects bucket' && e.fields.worker === waiting.fields.worker);
      expect(ran).toHaveLength(1);
      expect(logger.entries.filter((e) => e.msg.startsWith('the worker that started it no longer renews'))).toEqual([]);
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.result?.output).toEqual({ by: ran[0] });
    } finally {
      finish.resolve();
      results.stop();
      await a.stop();
      await b.stop();
    }
  });

  it('a copy whose claim nobody renews (its worker died) is taken over and run', async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('w11', 'tool'));
    const cmd = toolRequest('w11');
    // A worker that died mid-call left its running mark, and no result.
    const effects = await openBucket(d.conn, resourceNames(d.prefix).buckets.effects);
    await effects.create(`running.${effectKey(cmd.key)}`, 'a-worker-that-died');
    const logger = recordingLogger();
    const w = await echoWorker(d, 'takeover', async (c) => resultOf(c, 'ran here'), { ackWaitMs: 1_000, logger });
    try {
      await publish(d, cmd);
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.result?.output).toBe('ran here');
      expect(logger.entries.map((e) => e.msg)).toContain('the worker that started it no longer renews its claim, and left no result: running it here');
    } finally {
      results.stop();
      await w.stop();
    }
  });

  it('with a verify key, an unsigned or wrongly signed command is dead-lettered with the reason and never runs', async () => {
    const d = await createDeployment(srv);
    const dlq = collect(d.conn.nc, d.subjects.dlq('signed-only'));
    const results = collect(d.conn.nc, d.subjects.agentIn('w5', 'tool'));
    const runs: string[] = [];
    const worker = await echoWorker(d, 'signed-only', async (cmd) => (runs.push(cmd.key), resultOf(cmd, 'ran')));
    const other = createCommandSigner(generateCommandKeys().privateKeyPem);
    const raw = async (cmd: Message<'tool.request'>, sign?: (body: Uint8Array) => string) => {
      const data = encodeMessage(cmd).data;
      const h = headers();
      if (sign) h.set(Header.Signature, sign(data));
      await d.conn.js.publish(d.subjects.workTool('echo'), data, { headers: h, msgID: cmd.key });
    };
    try {
      const cases: [string, () => Promise<void>, RegExp][] = [
        ['unsigned', () => raw(toolRequest('w5')), /no signature/],
        ['another key', () => raw(toolRequest('w5'), other.sign), /another key or altered/],
        ['garbage signature', () => raw(toolRequest('w5'), () => 'not-a-signature'), /malformed/],
      ];
      for (const [what, attempt, reason] of cases) {
        await attempt();
        const dead = await dlq.next();
        expect(dead.headers?.get(Header.DeadLetterCode), what).toBe('ERR_BAD_SIGNATURE');
        expect(dead.headers?.get(Header.DeadLetterReason), what).toMatch(reason);
      }
      // A signed command after them runs, and is the first (and only) thing that ran or answered.
      const good = toolRequest('w5');
      await publish(d, good);
      expect(decodeMessage((await results.next()).data, { expect: 'tool.result' }).key).toBe(good.key);
      expect(runs).toEqual([good.key]);
      expect(await commandsCounted('signed-only', 'refused')).toBe(3);
    } finally {
      dlq.stop();
      results.stop();
      await worker.stop();
    }
  });
});
