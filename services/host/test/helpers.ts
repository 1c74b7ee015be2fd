import { fileURLToPath } from 'node:url';
import {
  consumeMessages,
  ensureConsumer,
  openBucket,
  provision,
  type ErrandConnection,
  type KV,
  type MessageConsumer,
} from '@errand/nats';
import {
  createSubjects,
  decodeMessage,
  decodeRecord,
  encodeMessage,
  MESSAGE_VERSION,
  resourceSpecs,
  type AgentRecord,
  type AgentStatus,
  type Message,
  type ResourceOptions,
  type Subjects,
} from '@errand/protocols';
import { startProcess, uniquePrefix, type TestProcess, type TestServer } from '@errand/testing';

/** The built host service, run as a real process. */
export const hostMain = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** One Errand deployment on a test server: its own prefix, provisioned. */
export interface Deployment {
  prefix: string;
  subjects: Subjects;
  conn: ErrandConnection;
  agents: KV;
  /** Starts a host process and waits until it is ready. */
  startHost(env?: Record<string, string>): Promise<TestProcess>;
  /** Starts a host process without waiting (for one that should crash). */
  spawnHost(env?: Record<string, string>): TestProcess;
  record(agentId: string): Promise<AgentRecord | undefined>;
  /** Resolves when the agent's record reaches one of `statuses` (watching the KV key, bounded). */
  waitForStatus(agentId: string, statuses: AgentStatus[], timeoutMs?: number): Promise<AgentRecord>;
  /** Every journal entry of the agent, in stream order. */
  journal(agentId: string): Promise<Message<'event.step'>[]>;
  submit(body: Record<string, unknown>): Promise<string>;
  stopHosts(): Promise<void>;
}

export async function deploy(srv: TestServer, options: Partial<ResourceOptions> = {}): Promise<Deployment> {
  const prefix = uniquePrefix();
  const conn = await srv.connect({ reconnectTimeWaitMs: 100 });
  await provision(conn, { specs: resourceSpecs({ ...options, prefix }) });
  const subjects = createSubjects(prefix);
  const agents = await openBucket(conn, resourceSpecs({ prefix }).names.buckets.agents);
  const hosts: TestProcess[] = [];

  const spawnHost = (env: Record<string, string> = {}) => {
    const p = startProcess(process.execPath, [hostMain], {
      env: { ...process.env, NATS_URL: srv.url, ERRAND_PREFIX: prefix, LOG_LEVEL: 'info', ERRAND_HOST_ACK_WAIT_MS: '2000', ...env },
    });
    hosts.push(p);
    return p;
  };

  const record = async (agentId: string) => {
    const e = await agents.get(agentId);
    return e && e.operation === 'PUT' ? decodeRecord(e.value) : undefined;
  };

  return {
    prefix,
    subjects,
    conn,
    agents,
    spawnHost,
    async startHost(env = {}) {
      const p = spawnHost(env);
      await p.waitForLine(/"msg":"host ready"/);
      return p;
    },
    record,
    async waitForStatus(agentId, statuses, timeoutMs = 60_000) {
      const watch = await agents.watch({ key: agentId });
      const timer = setTimeout(() => watch.stop(), timeoutMs);
      try {
        for await (const e of watch) {
          if (e.operation !== 'PUT') continue;
          const r = decodeRecord(e.value);
          if (statuses.includes(r.status)) return r;
        }
      } finally {
        clearTimeout(timer);
        watch.stop();
      }
      const last = await record(agentId);
      throw new Error(`agent ${agentId} did not reach ${statuses.join('|')} within ${timeoutMs} ms (last: ${last?.status ?? 'no record'})`);
    },
    async journal(agentId) {
      const stream = resourceSpecs({ prefix }).names.streams.events;
      const consumer = await conn.js.consumers.get(stream, { filter_subjects: subjects.agentEvent(agentId, 'step') });
      const info = await consumer.info(true);
      const out: Message<'event.step'>[] = [];
      if (info.num_pending === 0) return out;
      const batch = await consumer.fetch({ max_messages: info.num_pending, expires: 5000 });
      for await (const m of batch) {
        out.push(decodeMessage(m.data, { expect: 'event.step' }));
        if (out.length >= info.num_pending) break;
      }
      return out;
    },
    async submit(body) {
      const reply = await conn.nc.request(subjects.submit(), new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000 });
      const answer = JSON.parse(reply.string()) as { agentId?: string; error?: { message: string } };
      if (!answer.agentId) throw new Error(`submit refused: ${answer.error?.message}`);
      return answer.agentId;
    },
    async stopHosts() {
      for (const h of hosts) h.signal('SIGTERM');
      await Promise.all(hosts.map((h) => h.exited));
    },
  };
}

/**
 * A tool runner for the test: serves `tool` (echo), counts how often each idempotency key's effect
 * ran, and answers into the agent's inbox under an id derived from the key.
 */
export async function echoToolRunner(d: Deployment, tool = 'echo'): Promise<{ effects: Map<string, number>; stop(): Promise<void> }> {
  const names = resourceSpecs({ prefix: d.prefix }).names;
  await ensureConsumer(d.conn, {
    stream: names.streams.work,
    name: `tool-${tool}`,
    filterSubject: d.subjects.workTool(tool),
    ackWaitMs: 30_000,
    maxAckPending: 1000,
    description: 'test tool runner',
  });
  const effects = new Map<string, number>();
  const runner: MessageConsumer = await consumeMessages({
    consumer: await d.conn.js.consumers.get(names.streams.work, `tool-${tool}`),
    expect: 'tool.request',
    deadLetter: { js: d.conn.js, subjects: d.subjects, origin: 'test-tools', maxPayload: 1024 * 1024 },
    handle: async (req) => {
      effects.set(req.key, (effects.get(req.key) ?? 0) + 1);
      const result: Message<'tool.result'> = {
        v: MESSAGE_VERSION,
        kind: 'tool.result',
        agentId: req.agentId,
        key: req.key,
        callId: req.callId,
        tool: req.tool,
        attempt: req.attempt,
        durationMs: 1,
        result: { output: { echoed: req.args } },
        at: Date.now(),
      };
      await d.conn.js.publish(d.subjects.agentIn(req.agentId, 'tool'), encodeMessage(result).data, { msgID: `result:${req.key}` });
    },
  });
  return { effects, stop: () => runner.stop() };
}

export function inputMessage(agentId: string, text: string): Message<'input'> {
  return { v: MESSAGE_VERSION, kind: 'input', agentId, text, by: { id: 'test', channel: 'test' }, at: Date.now() };
}
