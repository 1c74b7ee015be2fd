/**
 * `jetstream-floor` and `jetstream-floor-cached`: the hand-written JetStream loop of the same shape
 * as an Errand agent's turn — the floor the runtime is measured against.
 *
 * Stable exports: `createJetStreamFloor(srv, { cached })` → a {@link LoopSystem} named
 * `jetstream-floor` (or `jetstream-floor-cached`), on `srv`'s nats-server, as its admin.
 *
 * Per step: the pull consumer of the inbox stream delivers the agent's message, the loop reads
 * the agent's ~600-byte state (KV get; the cached variant keeps the revision in memory instead),
 * writes it back with that revision (CAS), publishes the next step's message to the stream
 * (awaiting its ack, with a `Nats-Msg-Id`) and acks. Model step then tool step make a turn. The
 * consumer works `concurrency` messages at once, as Errand's host does (one message per agent is
 * pending at a time, so one agent's steps never overlap). Each run provisions a fresh prefix
 * (the inbox stream and agents bucket exactly as Errand's) so runs do not see each other.
 */
import { ensureConsumer, openBucket, provision, type ErrandConnection, type JsMsg, type KV } from '@errand/nats';
import { createSubjects, resourceSpecs } from '@errand/protocols';
import { uniquePrefix, type TestServer } from '@errand/testing';
import { measureLoop, pool, runTimeoutMs, withTimeout, type LoopOptions, type LoopResult, type LoopSystem } from '../lib/loop.js';
import { dropPrefix } from './errand-common.js';

const STATE = new Uint8Array(600).fill(7); // about an agent's record
const MESSAGE_BYTES = 200; // about a small plan/tool result

export function createJetStreamFloor(srv: TestServer, options: { cached?: boolean } = {}): LoopSystem {
  const cached = options.cached ?? false;
  const name = cached ? 'jetstream-floor-cached' : 'jetstream-floor';
  let conn: ErrandConnection | undefined;
  return {
    name,
    async setup() {
      conn = await srv.connect({ name: `bench-${name}`, asyncTraces: false });
    },
    async teardown() {
      await conn?.close();
      conn = undefined;
    },
    async run(o: LoopOptions): Promise<LoopResult> {
      if (!conn) throw new Error(`${name}: run() before setup()`);
      return runFloor(conn, srv.server.pid, name, cached, o);
    },
  };
}

async function runFloor(conn: ErrandConnection, serverPid: number | undefined, name: string, cached: boolean, o: LoopOptions): Promise<LoopResult> {
  const prefix = uniquePrefix('floor');
  const specs = resourceSpecs({ prefix });
  await provision(conn, { specs });
  const subjects = createSubjects(prefix);
  const kv: KV = await openBucket(conn, specs.names.buckets.agents);
  const consumerName = 'floor';
  await ensureConsumer(conn, { stream: specs.names.streams.inbox, name: consumerName, filterSubject: subjects.agentInAll(), ackWaitMs: 30_000, maxAckPending: 10_000, description: 'turn bench floor' });
  const ids = Array.from({ length: o.agents }, (_, i) => `f-${i}`);
  const revisions = new Map<string, number>();
  await pool(o.agents, 64, async (i) => {
    revisions.set(ids[i]!, await kv.put(ids[i]!, STATE));
  });
  const lastStepSteps = o.turns * 2;
  const turnStart = new Map<string, number>();
  const turns: number[] = [];

  const message = (step: number) => {
    const m = new Uint8Array(MESSAGE_BYTES);
    new DataView(m.buffer).setUint32(0, step);
    return m;
  };
  // Step n's message arrives on `in.plan` for model steps (odd) and `in.tool` for tool steps (even).
  const publishStep = async (id: string, step: number) => {
    await conn.js.publish(subjects.agentIn(id, step % 2 ? 'plan' : 'tool'), message(step), { msgID: `${id}:${step}` });
  };
  const start = async (i: number) => {
    turnStart.set(ids[i]!, performance.now());
    await publishStep(ids[i]!, 1);
  };

  let finished = 0;
  let resolveAll!: () => void;
  let rejectAll!: (err: unknown) => void;
  const all = new Promise<void>((resolve, reject) => {
    resolveAll = resolve;
    rejectAll = reject;
  });
  const solo = o.concurrency === 1;

  const step = async (msg: JsMsg) => {
    const parsed = subjects.parse(msg.subject);
    if (parsed.type !== 'agent.in') throw new Error(`floor: unexpected subject ${msg.subject}`);
    const id = parsed.agentId;
    const n = new DataView(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).getUint32(0);
    const revision = cached ? revisions.get(id)! : (await kv.get(id))!.revision;
    const next = await kv.update(id, STATE, revision);
    if (cached) revisions.set(id, next);
    if (n < lastStepSteps) await publishStep(id, n + 1);
    if (n % 2 === 0) {
      const now = performance.now();
      turns.push(now - turnStart.get(id)!);
      turnStart.set(id, now);
    }
    msg.ack();
    if (n === lastStepSteps) {
      finished += 1;
      if (finished === o.agents) resolveAll();
      else if (solo) await start(finished);
    }
  };

  const consumer = await conn.js.consumers.get(specs.names.streams.inbox, consumerName);
  const messages = await consumer.consume({ max_messages: Math.max(10, o.concurrency * 2) });
  const inflight = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const msg of messages) {
      const p: Promise<void> = step(msg)
        .catch((err: unknown) => rejectAll(err))
        .finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= o.concurrency) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  })();

  try {
    return await measureLoop(
      name,
      o,
      serverPid ? [serverPid] : [],
      async () => {
        if (solo) await start(0);
        else await pool(o.agents, 64, start);
        await withTimeout(all, runTimeoutMs(o), `${name}: ${o.agents} agents × ${o.turns} turns`);
        return turns;
      },
      `${cached ? 'revision cached (no get)' : 'KV get'} + KV update with revision + publish (acked) + ack per step; ${o.concurrency} in flight; admin connection`,
    );
  } finally {
    await messages.close();
    await loop;
    await dropPrefix(conn, prefix);
  }
}
