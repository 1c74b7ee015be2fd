// Bench-only agents for the host process benchmarks (recovery, scale-out), loaded by a real host
// through ERRAND_AGENT_MODULES=<this file>. Plain JavaScript: the host runs from dist with node.
import { assign, setup } from 'xstate';
import { defineAgent, errandActions } from '@errand/core';

/** The tool the benches' in-process worker serves. */
export const BENCH_TOOL = 'bench-noop';

const turnsOf = (input) => {
  const n = Number(input?.input?.turns);
  return Number.isInteger(n) && n > 0 ? n : 10;
};

/**
 * `bench-relay`: calls the tool `bench-noop` `input.turns` times in a row and finishes. Its record
 * stays the same size whatever the turn (a counter, no history), so the benches measure the
 * runtime, not a growing context. The context factory reads its input defensively: a factory that
 * throws when XState calls it without input would add its own cost to every step.
 */
export const relay = defineAgent({
  id: 'bench-relay',
  version: 1,
  description: `calls ${BENCH_TOOL} input.turns times in a row`,
  machine: setup({ actions: errandActions }).createMachine({
    id: 'bench-relay',
    context: ({ input }) => ({ turns: turnsOf(input), n: 0 }),
    initial: 'calling',
    states: {
      calling: {
        entry: { type: 'errand.tool', params: ({ context }) => ({ callId: `c${context.n + 1}`, tool: BENCH_TOOL, args: { n: context.n + 1 } }) },
        on: {
          'tool.result': {
            guard: ({ context, event }) => event.callId === `c${context.n + 1}`,
            target: 'next',
            actions: assign({ n: ({ context }) => context.n + 1 }),
          },
        },
      },
      next: {
        always: [{ guard: ({ context }) => context.n >= context.turns, target: 'done' }, { target: 'calling' }],
      },
      done: { type: 'final' },
    },
    output: ({ context }) => ({ n: context.n }),
  }),
});

export const agents = [relay];
