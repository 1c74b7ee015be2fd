// errand status against a real 3-node cluster with Errand provisioned at replicas 3 and a host and
// a planner running as processes: healthy with every stream and bucket at 3 current replicas and a
// leader; one node SIGKILLed: degraded (exit 1) naming the missing replicas; restarted: healthy.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SystemStatus } from '@errand/client';
import { resourceNames } from '@errand/protocols';
import { assess } from '../src/commands/status.js';
import { createDeployment, freePort, runProcess, startTestCluster, startTestServer, type Deployment, type TestCluster, type TestServer } from '@errand/testing';

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));
let cluster: TestCluster;
let d: Deployment;
let dir: string;
let metricsPort: number;

interface Report {
  healthy: boolean;
  problems: { severity: string; what: string; fix: string }[];
  server: { version: string; cluster?: { name: string; peers: string[] } };
  resources: { kind: string; name: string; replicas: number; leader?: string; current: number; followers: { name: string; current: boolean; offline: boolean }[]; error?: string }[];
  peers: { name: string; current: boolean; offline: boolean }[];
  services: { name: string; version: string }[];
  replicas: Record<string, number>;
  consumers: { stream: string; name: string; pending: number; ackPending: number; redelivered: number }[];
}

/** The CLI as a person with the operator's credentials (admin for provisioning), on every node's URL. */
const errand = (args: string[], role: 'operator' | 'admin' = 'operator') => {
  const { ERRAND_PREFIX: _p, NATS_CREDS: _c, NATS_URL: _u, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args, '--prefix', d.prefix], { env: { ...rest, HOME: dir, ...d.env(role) } });
};
async function status(): Promise<{ code: number | null; report: Report; stderr: string }> {
  const r = await errand(['status', '--json', '--sample-ms', '0']);
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`errand status --json exited ${r.code} without a report: ${r.stderr}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'errand-status-'));
  cluster = await startTestCluster();
  // Provisioned at the cluster's 3 replicas; what deploy/README.md tells an operator to run then changes nothing.
  d = await createDeployment(cluster);
  const provisioned = await errand(['provision', '--replicas', '3', '--json'], 'admin');
  expect(provisioned.code, provisioned.stderr).toBe(0);
  metricsPort = await freePort();
  await d.start('host', { ERRAND_METRICS_PORT: String(metricsPort) });
  // The planner never calls its model here: nothing is submitted.
  await d.start('planner', { OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' });
}, 120_000);
afterAll(async () => {
  await d?.stopAll();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('errand status on a 3-node cluster', () => {
  it('healthy: every stream and bucket has 3 current replicas and a leader, the host and planner are listed, the host process is ready', async () => {
    const { code, report, stderr } = await status();
    expect(code, `${stderr}\n${JSON.stringify(report.problems)}`).toBe(0);
    expect(report.healthy).toBe(true);
    expect(report.problems.filter((p) => p.severity === 'degraded')).toEqual([]);
    const names = resourceNames(d.prefix);
    expect(report.resources.map((r) => r.name).sort()).toEqual([...Object.values(names.streams), ...Object.values(names.buckets), ...Object.values(names.objectStores)].sort());
    for (const r of report.resources) {
      expect(r, r.name).toMatchObject({ replicas: 3, current: 3, leader: expect.any(String) });
      expect(r.followers).toHaveLength(2);
    }
    expect(report.server.cluster?.peers).toEqual(cluster.nodes.map((_, i) => expect.stringMatching(new RegExp(`_n${i + 1}$`))));
    expect(report.peers.every((p) => p.current && !p.offline)).toBe(true);
    expect(report.replicas).toMatchObject({ 'errand-host': 1, 'errand-planner': 1 });
    expect(report.services.every((s) => /^\d+\.\d+\.\d+/.test(s.version))).toBe(true);
    expect(report.consumers.length).toBeGreaterThan(0);
    // A planner and a host but no tool-runner: a warning, not a degradation.
    expect(report.problems).toContainEqual(expect.objectContaining({ severity: 'warning', what: expect.stringContaining('errand-tool-runner') }));

    const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'ready' }]);

    // The table a person reads: problems first, then the sections.
    const human = await errand(['status', '--sample-ms', '0']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^healthy: /);
    expect(human.stdout).toMatch(/streams and buckets\n {2}KIND +NAME +REPLICAS/);
    expect(human.stdout).toMatch(/_agents +3\/3 /);
  }, 60_000);

  it('a node killed: degraded (exit 1) with the missing replicas named; restarted: healthy again', async () => {
    const killed = 2;
    const name = (await status()).report.peers.find((p) => p.name.endsWith(`_n${killed + 1}`))!.name;
    await cluster.kill(killed);
    let last: Awaited<ReturnType<typeof status>> | undefined;
    await expect
      .poll(
        async () => {
          last = await status();
          return last.code === 1 && last.report.resources.some((r) => r.current < r.replicas);
        },
        { timeout: 45_000, interval: 500 },
      )
      .toBe(true);
    const degraded = last!.report;
    expect(degraded.healthy).toBe(false);
    expect(degraded.problems[0]!.severity).toBe('degraded');
    expect(degraded.problems.some((p) => /of 3 replicas current/.test(p.what) && p.what.includes(name))).toBe(true);
    const human = await errand(['status', '--sample-ms', '0']);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^DEGRADED: /);
    expect(human.stdout).toContain('✗');

    await cluster.restart(killed);
    await expect
      .poll(
        async () => {
          last = await status();
          return last.code === 0 && last.report.resources.every((r) => r.current === 3 && r.leader);
        },
        { timeout: 90_000, interval: 1000 },
      )
      .toBe(true);
    expect(last!.report.healthy).toBe(true);
  }, 180_000);
});

describe('what errand status calls a problem (assess, no server)', () => {
  const healthy: SystemStatus = {
    server: { version: '2.9.10', jetstream: true, cluster: { name: 'c', peers: ['n1', 'n2', 'n3'] }, durabilityWarning: 'nats-server 2.9.10 syncs every 60 s' },
    services: [],
    replicas: { 'errand-host': 2, 'errand-planner': 1, 'errand-tool-runner': 1 },
    consumers: [],
    resources: [{ kind: 'stream', name: 'E_WORK', stream: 'E_WORK', replicas: 3, leader: 'n1', current: 3, followers: [], messages: 0, bytes: 0, consumers: 1 }],
    peers: [],
    dlq: [],
  };
  it('the durability warning and a growing backlog are warnings: still healthy', () => {
    const problems = assess(healthy, [{ stream: 'E_WORK', name: 'planner', from: 1, to: 5, overMs: 1000 }], 'e');
    expect(problems.map((p) => p.severity)).toEqual(['warning', 'warning']);
    expect(problems[0]!.what).toBe('the backlog of planner (E_WORK) grew from 1 to 5 in 1.0 s');
    expect(problems[1]!.fix).toContain('sync_interval: always');
  });
  it('no host, no leader, missing replicas, nothing provisioned: degraded, first, each with what to do', () => {
    const { leader: _leader, ...leaderless } = healthy.resources[0]!;
    const s: SystemStatus = {
      ...healthy,
      replicas: {},
      resources: [
        { ...leaderless, name: 'A', current: 0 },
        { ...healthy.resources[0]!, name: 'B', current: 2, followers: [{ name: 'n3', current: false, offline: true, lag: 4, activeMs: 9000 }] },
        { ...healthy.resources[0]!, name: 'C', replicas: 1, current: 1 },
      ],
    };
    const problems = assess(s, [], 'e');
    const degraded = problems.filter((p) => p.severity === 'degraded');
    expect(problems.slice(0, degraded.length)).toEqual(degraded);
    expect(degraded.map((p) => p.what)).toEqual(['A has no leader', 'B: 2 of 3 replicas current (n3 offline)', 'no errand-host is alive: no agent progresses']);
    expect(problems.some((p) => p.severity === 'warning' && p.what.startsWith('C has 1 replica') && p.fix === 'run `errand provision --prefix e --replicas 3`')).toBe(true);
    expect(assess({ ...healthy, resources: [] }, [], 'e')[0]).toMatchObject({ severity: 'degraded', fix: expect.stringContaining('errand provision --prefix e --replicas 3') });
  });
});

describe('errand status on a single server (as errand up runs it)', () => {
  let srv: TestServer;
  let single: Deployment;
  beforeAll(async () => {
    srv = await startTestServer();
    single = await createDeployment(srv);
  });
  afterAll(async () => {
    await single?.stopAll();
    await srv?.stop();
  });
  const statusOf = async () => {
    const { ERRAND_PREFIX: _p, NATS_CREDS: _c, NATS_URL: _u, ...rest } = process.env;
    const r = await runProcess(process.execPath, [cli, 'status', '--json', '--sample-ms', '0', '--prefix', single.prefix], { env: { ...rest, HOME: dir, ...single.env('operator') } });
    return { code: r.code, report: JSON.parse(r.stdout) as Report };
  };

  it('every stream and bucket 1/1 led by the server itself; no host: degraded; a host: healthy', async () => {
    const before = await statusOf();
    expect(before.code).toBe(1);
    expect(before.report.problems.filter((p) => p.severity === 'degraded').map((p) => p.what)).toEqual(['no errand-host is alive: no agent progresses']);
    for (const r of before.report.resources) expect(r, r.name).toMatchObject({ replicas: 1, current: 1, leader: expect.any(String) });
    await single.start('host');
    const after = await statusOf();
    expect(after.code, JSON.stringify(after.report.problems)).toBe(0);
    expect(after.report.replicas['errand-host']).toBe(1);
  }, 60_000);
});
