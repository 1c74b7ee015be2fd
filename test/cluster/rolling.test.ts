import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster, type TestProcess } from '@errand/testing';
import { chaosWorld, waitForStreamsCurrent, type ChaosWorld } from './world.js';

const N = Number(process.env.ERRAND_ROLLING_AGENTS) || 100;

let cluster: TestCluster;
let w: ChaosWorld | undefined;
beforeAll(async () => {
  cluster = await startTestCluster();
}, 90_000);
afterAll(async () => {
  try {
    await w?.stop(); // every service process: SIGTERM, SIGKILL after 20 s
  } finally {
    await cluster?.stop();
  }
}, 60_000);

describe('rolling restart of a 3-node cluster', () => {
  it(`every nats-server restarted one at a time while ${N} agents run: all finish, effects and model calls once, journals verify`, async () => {
    w = await chaosWorld(cluster, N, 'rolling');
    const { d } = w;
    // Two of each, on different nodes; node 2 is the one that dies, node 0 hosts the processes that die.
    const services = await w.startServices({ hosts: [0, 1], planners: [1, 2], runners: [2, 0] });
    const procs: TestProcess[] = services.all;
    const started = Date.now();
    const doneNow = async () => (await Promise.all(w!.ids.map((id) => d.record(id).catch(() => undefined)))).filter((r) => r?.status === 'done').length;
    // A quarter of the goals first; each restart then happens while the next quarter is being
    // submitted, so agents start, call tools and finish across every restart.
    const quarter = Math.ceil(N / 4);
    await w.submitRange(0, quarter);
    await w.waitForEffects(Math.ceil(quarter / 2), 60_000);

    // One node at a time, as an operator upgrades them: stop it cleanly, start it on its data,
    // and wait until every stream has all its replicas current before taking down the next.
    const moments: string[] = [];
    const doneAtRestart: number[] = [];
    for (let i = 0; i < cluster.nodes.length; i++) {
      const submitting = w.submitRange(quarter * (i + 1), Math.min(N, quarter * (i + 2)));
      submitting.catch(() => {}); // awaited below; a rejection meanwhile is not unhandled
      const effects = (await w.effects()).size;
      doneAtRestart.push(await doneNow());
      const t = Date.now();
      await cluster.restart(i);
      await waitForStreamsCurrent(cluster, d.prefix, 60_000);
      await submitting;
      moments.push(`node ${i} restarted at ${t - started} ms (${effects} effects, ${doneAtRestart[i]} done), back and current after ${Date.now() - t} ms`);
    }
    // Every restart hit a run in progress.
    for (const done of doneAtRestart) expect(done).toBeLessThan(N);

    const records = await w.waitAllEnded(90_000);
    const { stragglers, notDone } = await w.reportEnds(records, procs);
    expect(stragglers).toEqual([]);
    expect(notDone).toEqual([]);
    for (let i = 0; i < N; i++) expect(records.get(w.ids[i]!)?.output).toMatchObject({ answer: `finished ${w.token(i)}` });

    // No process died: every tool call ran exactly once per key, one per agent.
    const effects = await w.effects();
    const twice = [...effects].filter(([, count]) => count !== 1);
    for (const [key] of twice) console.error(`FINDING: effect ${key} ran ${effects.get(key)} times\n  ${w.evidence(key.split(":")[0]!, procs).join('\n  ')}`);
    expect(twice).toEqual([]);
    const perAgent = new Map<string, number>();
    for (const key of effects.keys()) perAgent.set(key.split(':')[0]!, (perAgent.get(key.split(':')[0]!) ?? 0) + 1);
    expect(w.ids.filter((id) => perAgent.get(id) !== 1)).toEqual([]);

    const calls = w.modelCalls();
    const repeated = Array.from({ length: N }, (_, i) => w!.token(i)).filter((t) => calls.get(t)?.plan !== 1 || calls.get(t)?.answer !== 1);
    for (const t of repeated) console.error(`FINDING: model calls of ${t}: ${JSON.stringify(calls.get(t))} (agent ${w.ids[Number(t.split('#')[1])]})`);
    expect(repeated).toEqual([]);
    expect(w.mock.failures).toEqual([]);

    expect(await w.verifyAll()).toEqual([]);
    console.log(`rolling: ${N} agents done in ${Date.now() - started} ms (${w.submitErrors.length} submits sent again: ${JSON.stringify([...new Set(w.submitErrors.map((e) => e.replace(/^\S+: /, '')))])}); ${moments.join('; ')}`);
  }, 300_000);
});
