import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { consumeMessages, ensureConsumer, openBucket, prepareMessage, provision, publishMessage, readRecord, type ErrandConnection, type KV, type MessageConsumer } from '@errand/nats';
import {
  catalogKeys,
  createSubjects,
  decodeMessage,
  decodeRecord,
  MESSAGE_VERSION,
  messageIds,
  resourceSpecs,
  ROLES,
  type AgentRecord,
  type AgentStatus,
  type CatalogRunner,
  type CatalogTool,
  type ErrorInfo,
  type Message,
  type ResourceOptions,
  type Role,
  type Subjects,
  type ToolDefinition,
  type ToolPolicyName,
} from '@errand/protocols';
import { createCommandSigner, generateCommandKeys, type CommandSigner, type MessageInput } from '@errand/protocols';
import type { MsgHdrs } from '@errand/nats';
import { startProcess, type TestProcess } from './process.js';
import { uniquePrefix, type TestCluster, type TestServer } from './servers.js';

/** The built entry points of the services, run as real processes (`pnpm test` builds first). */
export const serviceMain = {
  host: fileURLToPath(new URL('../../../services/host/dist/main.js', import.meta.url)),
  planner: fileURLToPath(new URL('../../../services/planner/dist/main.js', import.meta.url)),
  'tool-runner': fileURLToPath(new URL('../../../services/tool-runner/dist/main.js', import.meta.url)),
  notifier: fileURLToPath(new URL('../../../services/notifier/dist/main.js', import.meta.url)),
  gateway: fileURLToPath(new URL('../../../services/gateway/dist/main.js', import.meta.url)),
} as const;
export type ServiceName = keyof typeof serviceMain;

/** What each service logs once it serves. */
const READY: Record<ServiceName, RegExp> = { host: /"msg":"host ready"/, planner: /"msg":"planner ready"/, 'tool-runner': /"msg":"tool runner ready"/, notifier: /"msg":"notifier ready"/, gateway: /"msg":"gateway ready"/ };

/** One Errand deployment on a test server: its own prefix, provisioned, its processes tracked. */
export interface Deployment {
  readonly prefix: string;
  readonly subjects: Subjects;
  readonly conn: ErrandConnection;
  readonly agents: KV;
  /** The workspace folder its tool-runners use (unless a test sets ERRAND_WORKSPACE). */
  readonly workspace: string;
  /**
   * The deployment's command-signing keys, generated for it: every service it starts gets
   * `ERRAND_SIGNING_KEY` (the file) and `ERRAND_VERIFY_KEY`; in-process hosts and runners take
   * `signer` and the public key the same way.
   */
  readonly keys: { readonly signingKeyFile: string; readonly publicKey: string; readonly signer: CommandSigner };
  /** A work command encoded and signed with the deployment's key, as a host publishes it (workers refuse unsigned ones). */
  signed(message: MessageInput<'plan.request' | 'tool.request' | 'notify.request' | 'timer.request'>): { data: Uint8Array; headers: MsgHdrs };
  /**
   * The environment of a CLI or `errand mcp` process acting as `role` of this deployment:
   * `NATS_URL`, `ERRAND_PREFIX` and, on a server that requires credentials, `NATS_CREDS` of that
   * role for this prefix. Spread it last over the rest of the environment.
   */
  env(role: Role): Record<string, string>;
  /**
   * Starts a service process and waits until it is ready. On a cluster it connects to node
   * `on.node` (alone: it learns the others from that node) or, without, to the list of every node.
   */
  start(service: ServiceName, env?: Record<string, string>, on?: { node?: number }): Promise<TestProcess>;
  /** Starts a service process without waiting (for one that should crash). */
  spawn(service: ServiceName, env?: Record<string, string>, on?: { node?: number }): TestProcess;
  record(agentId: string): Promise<AgentRecord | undefined>;
  /** Resolves when the agent's record reaches one of `statuses` (watching its KV key; bounded). */
  waitForStatus(agentId: string, statuses: AgentStatus[], timeoutMs?: number): Promise<AgentRecord>;
  /** Resolves with the first record of the agent that satisfies `test` (watching; bounded). */
  waitForRecord(agentId: string, test: (r: AgentRecord) => boolean, timeoutMs?: number): Promise<AgentRecord>;
  /** Every journal entry of the agent, in stream order. */
  journal(agentId: string): Promise<Message<'event.step'>[]>;
  /** Submits a goal as raw JSON on `<prefix>.submit` and returns the agent id. */
  submit(body: Record<string, unknown>): Promise<string>;
  /** Publishes an inbox message for an agent. */
  send(message: Message<'input' | 'control' | 'approval'>): Promise<void>;
  /** SIGTERMs every process this deployment started and waits for them; SIGKILLs those still running after `graceMs` (20 s). */
  stopAll(graceMs?: number): Promise<void>;
}

/**
 * A deployment on a test server, or on a test cluster: there its streams and buckets get the
 * cluster's replicas (unless `resources.replicas` says otherwise) and its processes connect to
 * every node or to a chosen one (`start(service, env, { node })`).
 */
export async function createDeployment(
  srv: TestServer | TestCluster,
  options: { resources?: Partial<ResourceOptions>; env?: Record<string, string> } = {},
): Promise<Deployment> {
  const prefix = uniquePrefix();
  const conn = await srv.connect({ reconnectTimeWaitMs: 100 });
  const replicas = 'replicas' in srv ? { replicas: srv.replicas } : {};
  const specs = resourceSpecs({ ...replicas, ...options.resources, prefix });
  await provision(conn, { specs });
  const subjects = createSubjects(prefix);
  const agents = await openBucket(conn, specs.names.buckets.agents);
  const processes: TestProcess[] = [];
  // Each deployment's tool-runners get their own workspace folder, never the repository's.
  const workspace = await mkdtemp(join(tmpdir(), 'errand-test-workspace-'));
  // Its own command-signing keys: hosts sign, workers verify (a test may override either variable).
  const generated = generateCommandKeys();
  const signingKeyFile = join(await mkdtemp(join(tmpdir(), 'errand-test-keys-')), 'signing.pem');
  await writeFile(signingKeyFile, generated.privateKeyPem, { mode: 0o600 });
  const keys = { signingKeyFile, publicKey: generated.publicKey, signer: createCommandSigner(generated.privateKeyPem) };
  options = { ...options, env: { ERRAND_SIGNING_KEY: signingKeyFile, ERRAND_VERIFY_KEY: generated.publicKey, ...options.env } };
  // On a server that requires credentials, each service connects as its own role, and so does
  // each CLI a test runs (`env(role)`); minted up front so `env` needs no await.
  const roleEnv = Object.fromEntries(await Promise.all(ROLES.map(async (role) => [role, await srv.env(role, prefix)] as const))) as Record<Role, Record<string, string>>;
  const creds: Partial<Record<ServiceName, string>> = {};
  for (const service of Object.keys(serviceMain) as ServiceName[]) creds[service] = roleEnv[service].NATS_CREDS;

  const urlOf = (node: number | undefined) => {
    if (node === undefined) return srv.url;
    if (!('nodes' in srv)) throw new RangeError('a service can be put on a node only on a test cluster');
    const n = srv.nodes[node];
    if (!n) throw new RangeError(`no node ${node}; the cluster has ${srv.nodes.length}`);
    return n.url;
  };
  const spawn = (service: ServiceName, env: Record<string, string> = {}, on: { node?: number } = {}) => {
    const p = startProcess(process.execPath, [serviceMain[service]], {
      env: { ...process.env, NATS_URL: urlOf(on.node), ...(creds[service] ? { NATS_CREDS: creds[service] } : {}), ERRAND_PREFIX: prefix, LOG_LEVEL: 'info', ERRAND_HOST_ACK_WAIT_MS: '2000', ERRAND_WORKSPACE: workspace, ...(service === 'gateway' ? { ERRAND_GATEWAY_PORT: '0' } : {}), ...options.env, ...env },
    });
    processes.push(p);
    return p;
  };
  const record = (agentId: string) => readRecord(agents, agentId);
  const waitForRecord = async (agentId: string, test: (r: AgentRecord) => boolean, timeoutMs = 60_000) => {
    const watch = await agents.watch({ key: agentId });
    const timer = setTimeout(() => watch.stop(), timeoutMs);
    try {
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const r = decodeRecord(e.value);
        if (test(r)) return r;
      }
    } finally {
      clearTimeout(timer);
      watch.stop();
    }
    const last = await record(agentId);
    throw new Error(`agent ${agentId}: no matching record within ${timeoutMs} ms (last: ${last ? `${last.status} at step ${last.step}` : 'no record'})`);
  };

  return {
    prefix,
    subjects,
    conn,
    agents,
    workspace,
    keys,
    signed(message) {
      const { data, headers } = prepareMessage(message, { signer: keys.signer });
      return { data, headers: headers! };
    },
    env: (role) => ({ ...roleEnv[role] }),
    spawn,
    async start(service, env = {}, on = {}) {
      const p = spawn(service, env, on);
      await p.waitForLine(READY[service]);
      return p;
    },
    record,
    waitForRecord,
    waitForStatus: (agentId, statuses, timeoutMs) => waitForRecord(agentId, (r) => statuses.includes(r.status), timeoutMs),
    async journal(agentId) {
      // The record is committed before its step's outbox (the journal entry among it) is
      // published, so read until the journal has reached the step the record is at.
      const target = (await record(agentId))?.step ?? 0;
      const consumer = await conn.js.consumers.get(specs.names.streams.events, { filter_subjects: subjects.agentEvent(agentId, 'step') });
      const out: Message<'event.step'>[] = [];
      if (target === 0) return out;
      const messages = await consumer.consume();
      const timer = setTimeout(() => void messages.close(), 15_000);
      try {
        for await (const m of messages) {
          out.push(decodeMessage(m.data, { expect: 'event.step' }));
          if (m.info.pending === 0 && out.some((j) => j.step >= target)) break;
        }
      } finally {
        clearTimeout(timer);
        await messages.close();
      }
      if (!out.some((j) => j.step >= target)) throw new Error(`journal of ${agentId} did not reach step ${target} (has ${out.map((j) => j.step).join(', ')})`);
      return out;
    },
    async submit(body) {
      const reply = await conn.nc.request(subjects.submit(), new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000 });
      const answer = JSON.parse(reply.string()) as { agentId?: string; error?: { message: string } };
      if (!answer.agentId) throw new Error(`submit refused: ${answer.error?.message}`);
      return answer.agentId;
    },
    async send(message) {
      const token = message.kind === 'control' ? 'control' : message.kind === 'approval' ? 'approval' : 'input';
      await publishMessage(conn, subjects.agentIn(message.agentId, token), message);
    },
    async stopAll(graceMs = 20_000) {
      for (const p of processes) p.signal('SIGTERM');
      // A drain that cannot finish (its NATS node gone for good) is cut short: a test's afterAll
      // must end every process within its own timeout.
      const timer = setTimeout(() => {
        for (const p of processes) p.signal('SIGKILL');
      }, graceMs);
      await Promise.all(processes.map((p) => p.exited));
      clearTimeout(timer);
    },
  };
}

/** What a scripted tool does with one request: an output, or an error. */
export type ToolBehaviour = (request: Message<'tool.request'>) => Promise<{ output: unknown } | { error: ErrorInfo }> | { output: unknown } | { error: ErrorInfo };

export interface TestToolRunner {
  /** How often each idempotency key's effect ran. */
  readonly effects: Map<string, number>;
  /** Every request, in arrival order. */
  readonly requests: Message<'tool.request'>[];
  stop(): Promise<void>;
}

/** How a test tool is listed in the catalog. */
export interface TestToolOptions {
  /** Default: `the <tool> tool`, any object as arguments. */
  definition: ToolDefinition;
  /** Default: auto. */
  policy: ToolPolicyName;
  askIfArgs: Record<string, unknown>;
  timeoutMs: number;
}

/**
 * A tool runner for tests: serves `tool` with `behaviour` (echo by default), counts each key's
 * effect, and answers into the agent's inbox under an id derived from the key. It lists the tool
 * and itself in the catalog as a tool-runner does (intake gives goals only catalog tools).
 */
export async function startTestToolRunner(
  d: Deployment,
  tool = 'echo',
  behaviour: ToolBehaviour = (r) => ({ output: { echoed: r.args } }),
  options: Partial<TestToolOptions> = {},
): Promise<TestToolRunner> {
  const names = resourceSpecs({ prefix: d.prefix }).names;
  const name = `test-tool-${tool}`;
  const catalog = await openBucket(d.conn, names.buckets.tools);
  const now = Date.now();
  const entry: CatalogTool = {
    v: 1,
    definition: options.definition ?? { name: tool, description: `the ${tool} tool`, parameters: { type: 'object', properties: {}, additionalProperties: true } },
    policy: options.policy ?? 'auto',
    idempotent: true,
    destructive: false,
    ...(options.askIfArgs ? { askIfArgs: options.askIfArgs } : {}),
    timeoutMs: options.timeoutMs ?? 60_000,
    source: 'test',
    updatedAt: now,
  };
  await catalog.put(catalogKeys.tool(tool), JSON.stringify(entry));
  // One heartbeat that stays fresh for the length of any test.
  const runnerEntry: CatalogRunner = { v: 1, runnerId: name, tools: [tool], heartbeatAt: now, heartbeatMs: 3_600_000, host: 'test', pid: process.pid };
  await catalog.put(catalogKeys.runner(name), JSON.stringify(runnerEntry));
  await ensureConsumer(d.conn, { stream: names.streams.work, name, filterSubject: d.subjects.workTool(tool), ackWaitMs: 30_000, maxAckPending: 1000, description: 'test tool runner' });
  const effects = new Map<string, number>();
  const requests: Message<'tool.request'>[] = [];
  const runner: MessageConsumer = await consumeMessages({
    consumer: await d.conn.js.consumers.get(names.streams.work, name),
    expect: 'tool.request',
    concurrency: 8,
    deadLetter: { js: d.conn.js, subjects: d.subjects, origin: 'test-tools', maxPayload: 1024 * 1024 },
    handle: async (req) => {
      requests.push(req);
      effects.set(req.key, (effects.get(req.key) ?? 0) + 1);
      const started = Date.now();
      const outcome = await behaviour(req);
      const result: Message<'tool.result'> = {
        v: MESSAGE_VERSION,
        kind: 'tool.result',
        agentId: req.agentId,
        key: req.key,
        callId: req.callId,
        tool: req.tool,
        attempt: req.attempt,
        durationMs: Date.now() - started,
        ...('error' in outcome ? { error: outcome.error } : { result: { output: outcome.output } }),
        at: Date.now(),
      };
      await publishMessage(d.conn, d.subjects.agentIn(req.agentId, 'tool'), result, { msgId: messageIds.result(req.key) });
    },
  });
  return {
    effects,
    requests,
    async stop() {
      await runner.stop();
      await catalog.delete(catalogKeys.runner(name)).catch(() => {});
    },
  };
}

export function inputMessage(agentId: string, text: string, extra: Partial<Message<'input'>> = {}): Message<'input'> {
  return { v: MESSAGE_VERSION, kind: 'input', agentId, text, by: { id: 'test', channel: 'test' }, at: Date.now(), ...extra };
}
