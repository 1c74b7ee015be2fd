/**
 * What the Errand systems of the turn benchmark share: a fresh deployment per run and the driver
 * that starts agents and watches them to the end.
 *
 * Stable exports:
 * - `openDeployment(srv, admin)`: a fresh prefix on `srv`, provisioned; command-signing keys (the
 *   host signs, workers verify, as `createDeployment` in @errand/testing sets them up); `role(r)`
 *   opens a connection as role `r` of that prefix with its own credentials (admin's on a bare
 *   server); `close()` closes those connections and deletes every stream of the prefix.
 * - `driveAgents(...)`: publishes the goals (all at once over 64 publishers, or one after another
 *   when `concurrency` is 1), times each turn from the tool results arriving in the inbox, waits
 *   (bounded) until every agent's `done` event, and returns the run's {@link LoopResult}.
 * - `dropPrefix(conn, prefix)`: deletes the streams, buckets and object stores of a prefix.
 */
import { openBucket, provision, publishMessage, type ErrandConnection, type KV } from '@errand/nats';
import {
  createCommandSigner,
  createCommandVerifier,
  createSubjects,
  decodeMessage,
  generateCommandKeys,
  Header,
  messageIds,
  resourceNames,
  resourceSpecs,
  type CommandSigner,
  type CommandVerifier,
  type Message,
  type ResourceNames,
  type Role,
  type Subjects,
} from '@errand/protocols';
import { uniquePrefix, type TestServer } from '@errand/testing';
import { measureLoop, pool, runTimeoutMs, withTimeout, type LoopOptions, type LoopResult } from '../lib/loop.js';

export interface BenchDeployment {
  readonly prefix: string;
  readonly subjects: Subjects;
  readonly names: ResourceNames;
  readonly agents: KV;
  readonly keys: { readonly signer: CommandSigner; readonly verifier: CommandVerifier; readonly publicKey: string };
  /** A connection as `role` of this deployment (its own `.creds`), closed by `close()`. */
  role(role: Role, name: string): Promise<ErrandConnection>;
  /** The `.creds` file of `role` for this prefix (undefined on a server without credentials). */
  credsFile(role: Role): Promise<string | undefined>;
  close(): Promise<void>;
}

export async function openDeployment(srv: TestServer, admin: ErrandConnection, label: string): Promise<BenchDeployment> {
  const prefix = uniquePrefix(label);
  const specs = resourceSpecs({ prefix });
  await provision(admin, { specs });
  const generated = generateCommandKeys();
  const keys = { signer: createCommandSigner(generated.privateKeyPem), verifier: createCommandVerifier(generated.publicKey), publicKey: generated.publicKey };
  const opened: ErrandConnection[] = [];
  const credsFile = async (role: Role) => (srv.auth ? srv.auth.credsFile(role, prefix) : undefined);
  return {
    prefix,
    subjects: createSubjects(prefix),
    names: specs.names,
    agents: await openBucket(admin, specs.names.buckets.agents),
    keys,
    credsFile,
    async role(role, name) {
      const file = await credsFile(role);
      const conn = await srv.connect({ name, asyncTraces: false, ...(file ? { credsFile: file } : {}) });
      opened.push(conn);
      return conn;
    },
    async close() {
      await Promise.all(opened.map((c) => c.close().catch(() => {})));
      await dropPrefix(admin, prefix);
    },
  };
}

/** Deletes every stream, bucket and object store of `prefix` (what a run leaves behind). */
export async function dropPrefix(conn: ErrandConnection, prefix: string): Promise<void> {
  const names = resourceNames(prefix);
  const jsm = await conn.jsm();
  const all = [
    ...Object.values(names.streams),
    ...Object.values(names.buckets).map((b) => `KV_${b}`),
    ...Object.values(names.objectStores).map((b) => `OBJ_${b}`),
  ];
  for (const stream of all) await jsm.streams.delete(stream).catch(() => false);
}

export interface DriveOptions {
  system: string;
  admin: ErrandConnection;
  d: BenchDeployment;
  o: LoopOptions;
  /** The goal of agent `agentId`. */
  goal(agentId: string): Message<'goal'>;
  serverPids: readonly number[];
  note: string;
}

/**
 * Runs `o.agents` agents to the end and measures it: from the first goal's publish until the last
 * agent's `done` event. A turn ends when its tool result reaches the inbox (a core subscription
 * sees every publish); the first starts at the goal's publish. An agent that fails fails the run.
 */
export async function driveAgents(x: DriveOptions): Promise<LoopResult> {
  const { admin, d, o } = x;
  const ids = Array.from({ length: o.agents }, (_, i) => `a-${i}`);
  const turnStart = new Map<string, number>();
  const turns: number[] = [];
  let finished = 0;
  let resolveAll!: () => void;
  let rejectAll!: (err: unknown) => void;
  const all = new Promise<void>((resolve, reject) => {
    resolveAll = resolve;
    rejectAll = reject;
  });
  const solo = o.concurrency === 1;
  const start = async (i: number) => {
    const id = ids[i]!;
    turnStart.set(id, performance.now());
    await publishMessage(admin, d.subjects.agentIn(id, 'goal'), x.goal(id), { msgId: messageIds.goal(id) });
  };
  const agentOf = (subject: string) => {
    const p = d.subjects.parse(subject);
    return p.type === 'agent.in' || p.type === 'agent.ev' ? p.agentId : '';
  };
  const results = admin.nc.subscribe(d.subjects.agentInAll(undefined, 'tool'), {
    callback: (_err, m) => {
      const id = agentOf(m.subject);
      const now = performance.now();
      const t0 = turnStart.get(id);
      if (t0 !== undefined) turns.push(now - t0);
      turnStart.set(id, now);
    },
  });
  const done = admin.nc.subscribe(d.subjects.agentEventAll(undefined, 'done'), {
    callback: () => {
      finished += 1;
      if (finished === o.agents) resolveAll();
      else if (solo) start(finished).catch(rejectAll);
    },
  });
  const failed = admin.nc.subscribe(d.subjects.agentEventAll(undefined, 'failed'), {
    callback: (_err, m) => {
      let why: string;
      try {
        why = JSON.stringify(decodeMessage(m.data, { contentType: m.headers?.get(Header.ContentType) })).slice(0, 500);
      } catch {
        why = '(undecodable event)';
      }
      rejectAll(new Error(`${x.system}: agent ${agentOf(m.subject)} failed: ${why}`));
    },
  });
  await admin.nc.flush();
  try {
    return await measureLoop(
      x.system,
      o,
      x.serverPids,
      async () => {
        if (solo) await start(0);
        else await pool(o.agents, 64, start);
        await withTimeout(all, runTimeoutMs(o), `${x.system}: ${o.agents} agents × ${o.turns} turns (${finished} done)`);
        // Every agent must have done the work measured: a turn fewer is a different workload.
        if (turns.length < o.agents * o.turns) throw new Error(`${x.system}: ${turns.length} tool results for ${o.agents} agents × ${o.turns} turns`);
        return turns;
      },
      x.note,
    );
  } finally {
    results.unsubscribe();
    done.unsubscribe();
    failed.unsubscribe();
  }
}
