import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { agents as builtInAgents } from '@errand/agent';
import { createClient } from '@errand/client';
import { createRegistry } from '@errand/core';
import { startMockLlm, type MockLlm, type MockStep } from '@errand/llm';
import { newAgentId, resourceNames, resourceSpecs, type AgentRecord } from '@errand/protocols';
import { readCatalog } from '@errand/runtime';
import { createDeployment, uniquePrefix, type Deployment, type TestCluster, type TestProcess } from '@errand/testing';
import { openBucket } from '@errand/nats';

const notesServer = fileURLToPath(new URL('../fixtures/mcp-notes-server.mjs', import.meta.url));

/**
 * The world of a cluster chaos test: `n` built-in agents, each asked `<tok>` to note one thing.
 * Each agent's script is two model calls — the first answers with one `notes__add_note` call,
 * the second (which must carry the tool's result) with the final answer — so a repeated model
 * call finds no step of its own left (`mock.failures`), and is counted by `modelCalls`. The tool
 * is a real MCP server (test/fixtures/mcp-notes-server.mjs) run by real tool-runners: it appends
 * `add_note <idempotency key> <text>` to one log file shared by every runner, whose lines are the
 * side effects.
 */
export interface ChaosWorld {
  readonly d: Deployment;
  readonly mock: MockLlm;
  readonly notesLog: string;
  /** `chaos#0007#` for agent 7: the text that tells its model calls apart. */
  token(i: number): string;
  /** The agent ids, by index (chosen before they are submitted). */
  readonly ids: string[];
  /**
   * Starts the services: the tool-runners first, then — once the catalog lists their tool with
   * both runners live, as a host's intake reads it — the hosts and planners (a host started
   * earlier could cache a catalog without the tool and give the first goals no tools).
   */
  startServices(layout: Layout): Promise<Services>;
  /** Submits every goal (under ids chosen up front, so a retried submit is the same goal). */
  submitAll(): Promise<void>;
  /** Submits the goals of agents `from` to `to` (exclusive). */
  submitRange(from: number, to: number): Promise<void>;
  /** Why a submit was sent again (no host answered, or one refused for a moment), and a resend answered `existing`: `<agent id>: <what>`. */
  readonly submitErrors: readonly string[];
  /** How many add_note effects each idempotency key has had. */
  effects(): Promise<Map<string, number>>;
  /** The pids of the tool-runners that ran each idempotency key's add_note calls, in order. */
  effectRunners(): Promise<Map<string, number[]>>;
  /** Resolves once at least `count` agents have had their tool call run (polls the log; bounded). */
  waitForEffects(count: number, timeoutMs: number): Promise<void>;
  /** Resolves once every agent has ended, or at the deadline: the records of those that ended (polls). */
  waitAllEnded(timeoutMs: number): Promise<Map<string, AgentRecord>>;
  /** Model requests per agent token: before the tool result (`plan`) and after it (`answer`). */
  modelCalls(): Map<string, { plan: number; answer: number }>;
  /** Replays every agent's journal and verifies it against its record; returns the failures. */
  verifyAll(): Promise<string[]>;
  /** Every line any process of the deployment printed that mentions `text` (for a finding's evidence). */
  evidence(text: string, processes: readonly TestProcess[]): string[];
  /**
   * The agents that did not end (`stragglers`) and those that ended other than done (`notDone`),
   * each printed as a FINDING with its evidence: the submits, journal, model requests, log lines.
   */
  reportEnds(records: Map<string, AgentRecord>, processes: readonly TestProcess[]): Promise<{ stragglers: string[]; notDone: string[] }>;
  stop(): Promise<void>;
}

/** Which node each service process connects to (two of each, on different nodes). */
export interface Layout {
  hosts: [number, number];
  planners: [number, number];
  runners: [number, number];
}
export interface Services {
  hosts: TestProcess[];
  planners: TestProcess[];
  runners: TestProcess[];
  all: TestProcess[];
}

export async function chaosWorld(cluster: TestCluster, n: number, label: string): Promise<ChaosWorld> {
  const token = (i: number) => `${label}#${String(i).padStart(4, '0')}#`;
  const steps: MockStep[] = [];
  for (let i = 0; i < n; i++) {
    const t = token(i);
    steps.push({ match: t, expect: { notContains: [`noted: note ${t}`] }, reply: { content: `Noting ${t}.`, toolCalls: [{ name: 'notes__add_note', arguments: { text: `note ${t}` } }] } });
    steps.push({ match: t, expect: { contains: [`noted: note ${t}`] }, reply: { content: `finished ${t}` } });
  }
  const mock = await startMockLlm({ steps });
  const tag = uniquePrefix(label);
  const notesLog = join(tmpdir(), `${tag}-notes.log`);
  const config = join(tmpdir(), `${tag}-config.json`);
  await writeFile(notesLog, '');
  await writeFile(config, JSON.stringify({ mcpServers: { notes: { command: process.execPath, args: [notesServer], env: { NOTES_LOG: notesLog, NOTES_BY_RUNNER: '1' } } } }));
  const d = await createDeployment(cluster, {
    env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_CONFIG: config, ERRAND_TOOLS: '', ERRAND_SUBMIT_RATE: '0', LOG_LEVEL: 'info' },
  });
  const ids: string[] = Array.from({ length: n }, () => newAgentId(Date.now()));
  const submitErrors: string[] = [];

  const effectRunners = async () => {
    const runners = new Map<string, number[]>();
    for (const line of (await readFile(notesLog, 'utf8')).split('\n')) {
      const m = /^add_note (\S+) .* by (\d+)$/.exec(line);
      if (m) runners.set(m[1]!, [...(runners.get(m[1]!) ?? []), Number(m[2])]);
    }
    return runners;
  };
  const effects = async () => new Map([...(await effectRunners())].map(([key, pids]) => [key, pids.length]));
  const registry = createRegistry(builtInAgents);
  const submitRange = async (from: number, to: number) => {
    // Each goal under an id chosen up front: a submit whose host or node dies before it answers
    // is sent again under the same id, which the intake takes as the same goal (existing), never a second.
    const submitOne = async (k: number) => {
      const deadline = Date.now() + 90_000;
      for (;;) {
        try {
          const reply = await d.conn.nc.request(d.subjects.submit(), new TextEncoder().encode(JSON.stringify({ goal: `${token(k)} note this one thing`, agentId: ids[k] })), { timeout: 10_000 });
          const answer = JSON.parse(reply.string()) as { agentId?: string; existing?: boolean; error?: { message: string } };
          if (!answer.agentId) throw new Error(`submit refused: ${answer.error?.message}`);
          if (answer.agentId !== ids[k]) throw new Error(`submitted ${ids[k]}, the host answered ${answer.agentId}`);
          if (answer.existing) submitErrors.push(`${ids[k]}: answered existing`);
          return;
        } catch (err) {
          const message = (err as Error).message;
          // No answer (the host or its node died), or a host that refused it for a transient
          // JetStream error while its node restarts or a leader is elected (the intake answers
          // those as refusals): the same goal again under the same id. Kept in `submitErrors`.
          if (!/timeout|no responders|503|disconnect|closed|jetstream is not enabled|jetstream not enabled|temporarily unavailable|offline|no suitable peers|leader|insufficient resources/i.test(message) || Date.now() > deadline) throw err;
          submitErrors.push(`${ids[k]}: ${message}`);
        }
      }
    };
    // In waves, so a host's intake is not asked for all of them in one instant.
    for (let i = from; i < to; i += 25) await Promise.all(Array.from({ length: Math.min(25, to - i) }, (_, j) => submitOne(i + j)));
  };

  const startServices = async (layout: Layout): Promise<Services> => {
    const runners = await Promise.all(layout.runners.map((node, i) => d.start('tool-runner', { ERRAND_RUNNER_ID: `runner-${i}` }, { node })));
    const catalog = await openBucket(d.conn, resourceNames(d.prefix).buckets.tools);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const tool = (await readCatalog(catalog)).find((t) => t.definition.name === 'notes__add_note');
      if (tool && tool.runners.length >= layout.runners.length) break;
      if (Date.now() > deadline) throw new Error(`the catalog did not list notes__add_note with ${layout.runners.length} live runners within 30 s: ${JSON.stringify(tool?.runners)}`);
      await sleep(100);
    }
    const [hosts, planners] = await Promise.all([
      Promise.all(layout.hosts.map((node) => d.start('host', {}, { node }))),
      Promise.all(layout.planners.map((node) => d.start('planner', {}, { node }))),
    ]);
    return { hosts, planners, runners, all: [...hosts, ...planners, ...runners] };
  };

  const world: ChaosWorld = {
    d,
    mock,
    startServices,
    notesLog,
    token,
    ids,
    async submitAll() {
      await submitRange(0, n);
    },
    submitRange,
    submitErrors,
    effects,
    effectRunners,
    async waitForEffects(count, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const agents = new Set([...(await effects()).keys()].map((k) => k.split(':')[0]));
        if (agents.size >= count) return;
        if (Date.now() > deadline) throw new Error(`only ${agents.size} of ${count} agents had their tool call run within ${timeoutMs} ms`);
        await sleep(100);
      }
    },
    async waitAllEnded(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      const ended = new Map<string, AgentRecord>();
      for (;;) {
        const open = ids.filter((id) => !ended.has(id));
        for (let i = 0; i < open.length; i += 50) {
          await Promise.all(
            open.slice(i, i + 50).map(async (id) => {
              const r = await d.record(id).catch(() => undefined); // a read during a leader election: try again next round
              if (r && ['done', 'failed', 'cancelled'].includes(r.status)) ended.set(id, r);
            }),
          );
        }
        if (ended.size === ids.length) return ended;
        if (Date.now() > deadline) return ended;
        await sleep(500);
      }
    },
    modelCalls() {
      const calls = new Map<string, { plan: number; answer: number }>();
      for (const r of mock.requests) {
        const text = r.messages.map((m) => `${m.content ?? ''}`).join('\n');
        const t = /[a-z]+#\d{4}#/.exec(text)?.[0];
        if (!t) continue;
        const c = calls.get(t) ?? { plan: 0, answer: 0 };
        if (text.includes(`noted: note ${t}`)) c.answer += 1;
        else c.plan += 1;
        calls.set(t, c);
      }
      return calls;
    },
    async verifyAll() {
      const client = await createClient(d.conn, d.prefix);
      const failures: string[] = [];
      for (let i = 0; i < ids.length; i += 20) {
        await Promise.all(
          ids.slice(i, i + 20).map(async (id) => {
            try {
              const { verification } = await client.replay(id, { registry });
              if (!verification?.ok) failures.push(`${id}: ${verification?.reason ?? 'no record to verify against'} ${verification?.diff.join(' ') ?? ''}`);
            } catch (err) {
              failures.push(`${id}: ${(err as Error).message}`);
            }
          }),
        );
      }
      return failures;
    },
    async reportEnds(records, processes) {
      const stragglers = world.ids.filter((id) => !records.has(id));
      for (const id of stragglers) {
        const r = await d.record(id).catch(() => undefined);
        console.error(`FINDING: agent ${id} (${world.token(world.ids.indexOf(id))}) had not ended: ${r ? `${r.status} at step ${r.step}` : 'no record'}; its submits: ${JSON.stringify(world.submitErrors.filter((e) => e.startsWith(id)))}\n  ${world.evidence(id, processes).join('\n  ')}`);
      }
      const notDone = [...records].filter(([, r]) => r.status !== 'done');
      for (const [id, r] of notDone) {
        const t = world.token(world.ids.indexOf(id));
        const asked = world.mock.requests.filter((q) => q.messages.some((m) => `${m.content ?? ''}`.includes(t))).map((q) => JSON.stringify(q.messages.slice(1)).slice(0, 1500));
        const journal = await d.journal(id).catch((err: Error) => [err.message]);
        console.error(`FINDING: agent ${id} (${t}) ended ${r.status}: ${JSON.stringify(r.error)}\n  journal: ${JSON.stringify(journal).slice(0, 4000)}\n  model requests: ${asked.join('\n    ')}\n  ${world.evidence(id, processes).slice(-20).join('\n  ')}`);
      }
      return { stragglers, notDone: notDone.map(([id, r]) => `${id}: ${r.status}`) };
    },
    evidence(text, processes) {
      return processes.flatMap((p) => `${p.stdout()}\n${p.stderr()}`.split('\n').filter((l) => l.includes(text)).map((l) => `[pid ${p.pid}] ${l}`));
    },
    async stop() {
      await d.stopAll();
      await mock.close();
      await rm(notesLog, { force: true });
      await rm(config, { force: true });
    },
  };
  return world;
}

type Replica = { name: string; current: boolean; offline?: boolean; active: number; lag?: number };

/** One entry behind, online and seen within the last two seconds: it answers the leader. */
const almostCurrent = (r: Replica): boolean => !r.offline && (r.lag ?? 0) <= 1 && r.active < 2e9;

/**
 * Waits until every stream of the deployment has all its replicas current (none offline or
 * lagging): what a rolling restart waits for before it takes down the next node (polls; bounded).
 */
export async function waitForStreamsCurrent(cluster: TestCluster, prefix: string, timeoutMs: number): Promise<void> {
  const conn = await cluster.connect({ reconnectTimeWaitMs: 100 });
  const jsm = await conn.jsm();
  const specs = resourceSpecs({ prefix, replicas: cluster.replicas });
  const names = [...specs.streams.map((s) => s.name), ...specs.buckets.map((b) => `KV_${b.bucket}`), ...specs.objectStores.map((o) => `OBJ_${o.bucket}`)];
  const started = Date.now();
  const deadline = started + timeoutMs;
  // Current, as the server says, is what it waits for. Only once half the time has passed does a
  // replica one entry behind do: nats-server 2.9.10 once left a restarted node's replica of an
  // idle stream at `current: false, lag: 1` for a whole minute (CI under load).
  const settleMs = Math.floor(timeoutMs / 2);
  let last = '';
  try {
    for (;;) {
      const lagging: string[] = [];
      let almost = 0;
      for (const name of names) {
        try {
          const info = await jsm.streams.info(name);
          const replicas: Replica[] = info.cluster?.replicas ?? [];
          if (!info.cluster?.leader) lagging.push(`${name}: no leader`);
          else if (replicas.length < cluster.replicas - 1 || replicas.some((r) => !r.current || r.offline)) {
            lagging.push(`${name}: ${JSON.stringify(replicas.map((r) => [r.name, r.current, r.offline ?? false, r.lag ?? 0]))}`);
            if (replicas.length >= cluster.replicas - 1 && replicas.every((r) => r.current || almostCurrent(r))) almost += 1;
          }
        } catch (err) {
          lagging.push(`${name}: ${(err as Error).message}`);
        }
      }
      if (lagging.length === 0) return;
      if (almost === lagging.length && Date.now() - started >= settleMs) {
        console.warn(`streams taken as current after ${Date.now() - started} ms with a replica one entry behind: ${lagging.join('; ')}`);
        return;
      }
      last = lagging.join('; ');
      if (Date.now() > deadline) throw new Error(`streams not current within ${timeoutMs} ms: ${last}`);
      await sleep(200);
    }
  } finally {
    await conn.close();
  }
}
