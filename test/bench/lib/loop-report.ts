/**
 * The table of a loop benchmark: repetitions of several systems folded into medians, each with its
 * ratio to the floor of the same repetition, written as test/bench/results/<name>.json and .md.
 *
 * Stable exports: `LoopRow`, `summarize(repetitions, floor)`, `writeLoopReport(name, title,
 * natsVersion, rows)`. The JSON keeps every repetition's raw results beside the medians.
 */
import { writeReport } from '../report.js';
import type { LoopResult } from './loop.js';
import { median } from './stats.js';

/** One line of the table: the medians of one system at one size over the repetitions. */
export interface LoopRow {
  system: string;
  /** As shown: `1` or `1 (20 in turn)` or `1000`. */
  agents: string;
  stepsPerSecond: number;
  turnP50Ms: number | undefined;
  turnP99Ms: number | undefined;
  clientCpuUsPerStep: number;
  serverCpuUsPerStep: number;
  /** Median over repetitions of (steps/s ÷ the floor's steps/s at the same size in that repetition). */
  timesFloor: number | undefined;
  note: string;
  runs: LoopResult[];
}

/**
 * Folds repetitions into rows. `repetitions[r]` holds every result of repetition r; results are
 * grouped by system and `size` (the label of the size they ran at), and each is compared with the
 * result of the system named `floor` at the same size in the same repetition.
 */
export function summarize(repetitions: readonly (readonly { size: string; result: LoopResult }[])[], floor: string): LoopRow[] {
  const groups = new Map<string, { size: string; system: string; runs: LoopResult[]; ratios: number[] }>();
  for (const rep of repetitions) {
    for (const { size, result } of rep) {
      const id = `${result.system}\u0000${size}`;
      let g = groups.get(id);
      if (!g) groups.set(id, (g = { size, system: result.system, runs: [], ratios: [] }));
      g.runs.push(result);
      const base = rep.find((x) => x.size === size && x.result.system === floor);
      if (base) g.ratios.push(result.stepsPerSecond / base.result.stepsPerSecond);
    }
  }
  return [...groups.values()].map((g) => {
    const m = (f: (r: LoopResult) => number | undefined) => {
      const v = g.runs.map(f).filter((x): x is number => x !== undefined);
      return v.length ? median(v) : undefined;
    };
    return {
      system: g.system,
      agents: g.size,
      stepsPerSecond: m((r) => r.stepsPerSecond)!,
      turnP50Ms: m((r) => r.turnP50Ms),
      turnP99Ms: m((r) => r.turnP99Ms),
      clientCpuUsPerStep: m((r) => r.clientCpuUsPerStep)!,
      serverCpuUsPerStep: m((r) => r.serverCpuUsPerStep)!,
      timesFloor: g.ratios.length ? median(g.ratios) : undefined,
      note: g.runs[0]?.note ?? '',
      runs: g.runs,
    };
  });
}

const ms = (v: number | undefined) => (v === undefined ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(1));

/** Writes the rows (see {@link writeReport}) as: system | agents | steps/s | turn p50 | turn p99 | client µs/step | server µs/step | × floor | note. */
export async function writeLoopReport(name: string, title: string, natsVersion: string, rows: readonly LoopRow[]): Promise<void> {
  await writeReport(name, title, natsVersion, rows, {
    header: ['system', 'agents', 'steps/s', 'turn p50 ms', 'turn p99 ms', 'client µs/step', 'server µs/step', '× floor', 'note'],
    align: ['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---'],
    cells: (r) => [
      r.system,
      r.agents,
      Math.round(r.stepsPerSecond),
      ms(r.turnP50Ms),
      ms(r.turnP99Ms),
      Math.round(r.clientCpuUsPerStep),
      Math.round(r.serverCpuUsPerStep),
      r.timesFloor === undefined ? '–' : r.timesFloor.toFixed(2),
      r.note,
    ],
  });
}
