/**
 * What every peer shares: the loop's shape (turns of a model step then a tool step, the agent's
 * state carried from one to the next), per-turn timing, and how a run's agents are started
 * (all at once, or one after another when `concurrency` is 1 — see LoopOptions).
 */
import { measureLoop, type LoopOptions, type LoopResult } from '../lib/loop.js';

/** The agent's state: what a model call and a tool call read and grow. Fixed-size per turn. */
export interface AgentState {
  agent: string;
  turn: number;
  last: string;
}

/** The instant model: decides the next tool call. */
export function model(s: AgentState): AgentState {
  return { ...s, last: `call:${s.agent}:${s.turn}` };
}

/** The no-op tool: answers the call; the turn is done. */
export function tool(s: AgentState): AgentState {
  return { ...s, turn: s.turn + 1, last: `result:${s.agent}:${s.turn}` };
}

/**
 * Per-turn latency. A turn ends when the agent's next model step starts (every peer starts a step
 * only once the previous one is recorded, so the tool's result is durable by then) or when the
 * agent's run is reported done; the first turn starts when the agent is submitted.
 */
export class TurnClock {
  private readonly last = new Map<string, number>();
  readonly samples: number[] = [];

  start(agent: string): void {
    this.last.set(agent, performance.now());
  }

  /** Called as a model step starts: the turn before it (if any) has ended. */
  modelStep(agent: string, turn: number): void {
    if (turn > 0) this.mark(agent);
  }

  done(agent: string): void {
    this.mark(agent);
    this.last.delete(agent);
  }

  private mark(agent: string): void {
    const now = performance.now();
    const t = this.last.get(agent);
    if (t !== undefined) this.samples.push(now - t);
    this.last.set(agent, now);
  }
}

let runs = 0;

/**
 * Runs and measures `o.agents` agents through `o.turns` turns with `drive(clock, agents)`, which
 * submits the agents it is given and resolves once they are all done. With `concurrency` 1 the
 * agents go one after another (a lone agent's latency); otherwise all are handed over at once.
 */
export async function runAgents(
  system: string,
  o: LoopOptions,
  serverPids: readonly number[],
  drive: (clock: TurnClock, agents: string[]) => Promise<void>,
  note?: string,
): Promise<LoopResult> {
  const run = ++runs;
  const agents = Array.from({ length: o.agents }, (_, i) => `r${run}-a${i}`);
  const clock = new TurnClock();
  return measureLoop(
    system,
    o,
    serverPids,
    async () => {
      if (o.concurrency === 1) for (const a of agents) await drive(clock, [a]);
      else await drive(clock, agents);
      if (clock.samples.length !== o.agents * o.turns) throw new Error(`${system}: ${clock.samples.length} turns timed, expected ${o.agents * o.turns}`);
      return clock.samples;
    },
    note,
  );
}
