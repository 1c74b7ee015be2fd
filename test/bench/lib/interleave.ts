/**
 * The agent-loop benchmarks' settings and their run order, shared by `turn.bench.ts` and
 * `peers/loop.peers.ts`: one warm-up run per system, then BENCH_REPEAT repetitions, each running
 * every system at one agent (BENCH_SOLO_AGENTS one after another) and at BENCH_AGENTS at once, so
 * that what the machine is doing at a time touches every system alike.
 */
import type { LoopOptions, LoopResult, LoopSystem } from './loop.js';

/** The settings from the environment: BENCH_AGENTS, BENCH_TURNS, BENCH_REPEAT, BENCH_SOLO_AGENTS. */
export const loopSettings = {
  agents: Number(process.env.BENCH_AGENTS ?? 1000),
  turns: Number(process.env.BENCH_TURNS ?? 10),
  repeat: Number(process.env.BENCH_REPEAT ?? 3),
  solo: Number(process.env.BENCH_SOLO_AGENTS ?? 20),
  concurrency: 64,
};

/** BENCH_SYSTEMS, lower-cased (a comma-separated list), or undefined for every system. */
export const chosenSystems = process.env.BENCH_SYSTEMS?.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

export type Repetition = { size: string; result: LoopResult }[];

/**
 * Warms up and runs `systems` as described above, pushing each repetition's results to
 * `repetitions` as they come (so a report can be written from what finished). A system that
 * throws is handed to `onError` and left out from then on; without `onError` the error ends the run.
 */
export async function runInterleaved(
  label: string,
  systems: readonly LoopSystem[],
  repetitions: Repetition[],
  onError?: (system: LoopSystem, err: unknown) => void,
): Promise<void> {
  const { agents, turns, repeat, solo, concurrency } = loopSettings;
  const failed = new Set<LoopSystem>();
  const attempt = async <T>(s: LoopSystem, run: () => Promise<T>): Promise<T | undefined> => {
    if (!onError) return run();
    try {
      return await run();
    } catch (err) {
      failed.add(s);
      onError(s, err);
      return undefined;
    }
  };
  // Warm-up, not reported: the first run of a system pays for JIT compilation and connections.
  for (const s of systems) await attempt(s, () => s.run({ agents: Math.min(agents, 50), turns, concurrency }));
  const sizes: { size: string; o: LoopOptions }[] = [
    { size: `1 (${solo} in turn)`, o: { agents: solo, turns, concurrency: 1 } },
    { size: String(agents), o: { agents, turns, concurrency } },
  ];
  for (let r = 0; r < repeat; r++) {
    const rep: Repetition = [];
    repetitions.push(rep);
    for (const { size, o } of sizes) {
      for (const s of systems) {
        if (failed.has(s)) continue;
        const result = await attempt(s, () => s.run(o));
        if (!result) continue;
        rep.push({ size, result });
        process.stdout.write(
          `${label} ${r + 1}/${repeat} ${s.name} @ ${size}: ${Math.round(result.stepsPerSecond)} steps/s, p50 ${result.turnP50Ms?.toFixed(2) ?? '–'} ms, ` +
            `client ${Math.round(result.clientCpuUsPerStep)} µs/step, server ${Math.round(result.serverCpuUsPerStep)} µs/step\n`,
        );
      }
    }
  }
}
