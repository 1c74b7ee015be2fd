import { describe, expect, it } from 'vitest';
import { agentMachine } from '@errand/agent';

/**
 * The built-in agent's chart as a visualiser sees it. Stately's inspector serialises the machine's
 * config (functions become `{ type: name }`); XState's `toJSON()` definition lists the event
 * transitions but leaves out eventless (`always`) ones, so both are read here.
 */
type Json = Record<string, unknown>;
const config = JSON.parse(JSON.stringify(agentMachine.config, (_k, v: unknown) => (typeof v === 'function' ? { type: v.name } : v))) as Json;

interface Edge {
  from: string;
  event: string;
  guard: string | undefined;
  /** Undefined: the event is handled where the agent is (actions only, no move). */
  to: string | undefined;
  reenter: boolean;
  actions: string[];
}

const list = <T,>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
const nameOf = (x: unknown): string => (typeof x === 'string' ? x : ((x as { type?: string }).type ?? '?'));

function edgesOf(from: string, node: Json): Edge[] {
  const transitions: [string, unknown][] = [
    ...list(node.always as unknown).map((t): [string, unknown] => ['always', t]),
    ...Object.entries((node.on ?? {}) as Json).flatMap(([event, ts]) => list(ts as unknown).map((t): [string, unknown] => [event, t])),
  ];
  return transitions.map(([event, raw]) => {
    const t = (typeof raw === 'string' ? { target: raw } : raw) as Json;
    return {
      from,
      event,
      guard: t.guard === undefined ? undefined : nameOf(t.guard),
      to: t.target === undefined ? undefined : String(t.target).replace(/^\./, ''),
      reenter: t.reenter === true,
      actions: list(t.actions as unknown).map(nameOf),
    };
  });
}

const states = config.states as Record<string, Json>;
const edges: Edge[] = [...edgesOf('(any state)', config), ...Object.entries(states).flatMap(([name, node]) => edgesOf(name, node))];
const show = (e: Edge) => `${e.from} --${e.event}${e.guard ? ` [${e.guard}]` : ''}--> ${e.to ?? '(stays)'}${e.reenter ? ' (re-entered)' : ''}`;

describe('the built-in agent chart', () => {
  it('has the planner loop states, planning first, done and failed final', () => {
    expect(config.initial).toBe('planning');
    expect(Object.keys(states)).toEqual(['planning', 'backingOff', 'acting', 'awaitingInput', 'awaitingApproval', 'done', 'failed']);
    expect(Object.entries(states).filter(([, s]) => s.type === 'final').map(([n]) => n)).toEqual(['done', 'failed']);
  });

  it('moves only along named, guarded edges: no root router event, every move an edge of its state', () => {
    expect(edges.map(show)).toEqual([
      '(any state) --stuck.check--> (stays)',
      '(any state) --control.budget--> (stays)',
      '(any state) --tool.watchdog--> (stays)',
      'planning --always [budgetReached]--> awaitingApproval',
      'planning --plan.result [staleAnswer]--> (stays)',
      'planning --plan.result [dailyCapReached]--> awaitingApproval',
      'planning --plan.result [modelRetryable]--> backingOff',
      'planning --plan.result [contextTooLong]--> planning (re-entered)',
      'planning --plan.result [modelFailed]--> failed',
      'planning --plan.result [finalAnswer]--> done',
      'planning --plan.result [repeatsCall]--> planning (re-entered)',
      'planning --plan.result [repeatsCallAfterReflecting]--> awaitingInput',
      'planning --plan.result [callsNeedApproval]--> awaitingApproval',
      'planning --plan.result--> acting',
      'planning --input [interrupts]--> planning (re-entered)',
      'planning --input--> (stays)',
      'backingOff --retry.plan--> planning',
      'backingOff --input [interrupts]--> planning',
      'backingOff --input--> (stays)',
      'acting --always [roundAwaitsPerson]--> awaitingInput',
      'acting --always [roundStuck]--> awaitingInput',
      'acting --always [replansExhausted]--> failed',
      'acting --always [roundOver]--> planning',
      'acting --tool.result--> (stays)',
      'acting --child.result--> (stays)',
      'acting --retry.tool--> (stays)',
      'acting --tool.deadline--> (stays)',
      'acting --input [interrupts]--> planning',
      'acting --input--> (stays)',
      'awaitingInput --input [answersQuestion]--> planning',
      'awaitingApproval --approval.reminder [reminderDue]--> (stays)',
      'awaitingApproval --approval.deadline [deadlineEscalates]--> (stays)',
      'awaitingApproval --approval.deadline [callsExpired]--> acting',
      'awaitingApproval --approval.deadline [budgetExpired]--> failed',
      'awaitingApproval --approval [callsDecided]--> acting',
      'awaitingApproval --approval [budgetDenied]--> failed',
      'awaitingApproval --approval [budgetApproved]--> planning',
      'awaitingApproval --control.budget--> planning',
    ]);
  });

  it('names every guard and action it uses, and implements each', () => {
    const { guards, actions } = agentMachine.implementations;
    for (const e of edges) {
      if (e.guard !== undefined) expect(guards, show(e)).toHaveProperty([e.guard]);
      for (const a of e.actions) expect(actions, `${show(e)}: ${a}`).toHaveProperty([a]);
    }
    for (const [name, s] of Object.entries(states)) for (const a of list(s.entry as unknown).map(nameOf)) expect(actions, `${name} entry: ${a}`).toHaveProperty([a]);
    // The `done` path reports usage before and counts it after the answer, like every model answer.
    expect(edges.find((e) => e.guard === 'finalAnswer')?.actions).toEqual(['reportUsage', 'finish', 'countUsage']);
  });

  it('reaches every state from planning, and an end from every state', () => {
    const moves = edges.filter((e) => e.to !== undefined && e.from !== '(any state)');
    const reach = (from: string, next: (s: string) => string[]) => {
      const seen = new Set([from]);
      for (const queue = [from]; queue.length; ) for (const n of next(queue.shift()!)) if (!seen.has(n)) (seen.add(n), queue.push(n));
      return seen;
    };
    expect(reach('planning', (s) => moves.filter((e) => e.from === s).map((e) => e.to!))).toEqual(new Set(Object.keys(states)));
    for (const s of Object.keys(states)) {
      const ends = reach(s, (x) => moves.filter((e) => e.from === x).map((e) => e.to!));
      expect(ends.has('done') || ends.has('failed'), s).toBe(true);
    }
  });

  it("exports its event edges in XState's definition (toJSON) as well", () => {
    const definition = JSON.parse(JSON.stringify(agentMachine.toJSON())) as { states: Record<string, { transitions: { eventType: string; target?: string[]; guard?: unknown }[] }> };
    const fromDefinition = Object.entries(definition.states).flatMap(([name, s]) =>
      s.transitions.map((t) => `${name} --${t.eventType}${t.guard ? ` [${nameOf(t.guard)}]` : ''}--> ${t.target?.map((id) => id.replace('#agent.', '')).join(',') ?? '(stays)'}`),
    );
    const fromConfig = edges.filter((e) => e.from !== '(any state)' && e.event !== 'always').map((e) => show({ ...e, reenter: false }));
    expect(fromDefinition.sort()).toEqual(fromConfig.sort());
    expect(JSON.stringify(definition)).not.toMatch(/"eventType":"go"/);
  });
});
