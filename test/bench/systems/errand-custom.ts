/**
 * `errand-custom`: the runtime's own cost of an agent's turn — a custom statechart that, each
 * turn, sends a plan command and, on its result, a tool command; after `turns` turns it is done.
 *
 * Stable exports: `createErrandCustom(srv)` → a {@link LoopSystem} named `errand-custom`, and
 * `turnAgent`, its agent definition (`bench-turn`, input `{ turns }`).
 *
 * Each run gets a fresh deployment (prefix, streams, signing keys) with, in this process: one host
 * (`startHost`, concurrency = the run's, signing its commands, verifying its timers) and two
 * command workers (`startCommandWorker`) verifying every command's signature — `planner` answering
 * plan commands with a fixed result and `tool-noop` answering tool commands with a no-op result,
 * each at the run's concurrency. Each role connects with its own credentials (host, planner,
 * tool-runner); the bench publishes the goals and watches as admin. Loggers are silent: this is
 * the runtime's cost, not its logs'.
 */
import { assign, setup } from 'xstate';
import { createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import type { ErrandConnection } from '@errand/nats';
import { MESSAGE_VERSION, type Message } from '@errand/protocols';
import { startHost } from '@errand/runtime/internal';
import type { TestServer } from '@errand/testing';
// @errand/worker is not a dependency of the repository root or of test/; its source is imported directly.
import { startCommandWorker } from '../../../packages/worker/src/index.js';
import type { LoopOptions, LoopResult, LoopSystem } from '../lib/loop.js';
import { driveAgents, openDeployment } from './errand-common.js';

type PlanResult = { type: 'plan.result'; ref?: string };
type ToolResult = { type: 'tool.result'; callId: string };

/**
 * `bench-turn`: plan, then call `noop`, `input.turns` times, then done. The context factory does
 * not throw without an input (XState calls it again without one on every transition).
 */
export const turnAgent = defineAgent({
  id: 'bench-turn',
  version: 1,
  description: 'the turn benchmark: plan command, then tool command, input.turns times',
  machine: setup({
    types: {} as { input: AgentInput; context: { turns: number; done: number }; events: PlanResult | ToolResult },
    actions: errandActions,
  }).createMachine({
    id: 'bench-turn',
    context: ({ input }) => ({ turns: Number((input as AgentInput | undefined)?.input.turns ?? 10), done: 0 }),
    initial: 'planning',
    states: {
      planning: {
        entry: { type: 'errand.plan', params: ({ context }) => ({ ref: `p${context.done}`, messages: [{ role: 'user' as const, content: `turn ${context.done + 1}` }], tools: [] }) },
        on: { 'plan.result': { guard: ({ context, event }) => event.ref === `p${context.done}`, target: 'acting' } },
      },
      acting: {
        entry: { type: 'errand.tool', params: ({ context }) => ({ callId: `c${context.done}`, tool: 'noop', args: { n: context.done } }) },
        on: {
          'tool.result': {
            guard: ({ context, event }) => event.callId === `c${context.done}`,
            target: 'next',
            actions: assign({ done: ({ context }) => context.done + 1 }),
          },
        },
      },
      next: { always: [{ guard: ({ context }) => context.done >= context.turns, target: 'finished' }, { target: 'planning' }] },
      finished: { type: 'final' },
    },
    output: ({ context }) => ({ turns: context.done }),
  }),
});

/**
 * `signed: false` (`errand-custom-unsigned`) runs the same without command signatures: what
 * signing every command and checking it in the worker costs, shown beside the signed run. A
 * deployment signs (a tool-runner refuses unsigned commands).
 */
export function createErrandCustom(srv: TestServer, options: { signed?: boolean; claimed?: boolean } = {}): LoopSystem {
  const signed = options.signed ?? true;
  // `claimed: false` (`errand-custom-unclaimed`): workers without the "running" mark each command
  // is claimed with (one KV create per command, #16) — what that claim costs, not a way to deploy.
  const claimed = options.claimed ?? true;
  const name = !claimed ? 'errand-custom-unclaimed' : signed ? 'errand-custom' : 'errand-custom-unsigned';
  let admin: ErrandConnection | undefined;
  return {
    name,
    async setup() {
      admin = await srv.connect({ name: `bench-${name}`, asyncTraces: false });
    },
    async teardown() {
      await admin?.close();
      admin = undefined;
    },
    async run(o: LoopOptions): Promise<LoopResult> {
      if (!admin) throw new Error(`${name}: run() before setup()`);
      const d = await openDeployment(srv, admin, 'custom');
      const stops: (() => Promise<void>)[] = [];
      try {
        const host = await startHost({
          conn: await d.role('host', 'bench-host'),
          registry: createRegistry([turnAgent]),
          prefix: d.prefix,
          concurrency: o.concurrency,
          gcIntervalMs: 0,
          signer: signed ? d.keys.signer : undefined,
          verifier: signed ? d.keys.verifier : undefined,
        });
        stops.push(() => host.stop());
        const planner = await startCommandWorker({
          conn: await d.role('planner', 'bench-planner'),
          prefix: d.prefix,
          name: 'planner',
          filterSubject: d.subjects.workPlan(),
          expect: 'plan.request',
          concurrency: o.concurrency,
          verify: signed ? d.keys.verifier : undefined,
          markRunning: claimed,
          execute: async (cmd): Promise<Message<'plan.result'>> => ({
            v: MESSAGE_VERSION,
            kind: 'plan.result',
            agentId: cmd.agentId,
            key: cmd.key,
            ...(cmd.ref !== undefined ? { ref: cmd.ref } : {}),
            result: { message: { role: 'assistant', content: 'next' }, finishReason: 'stop' },
            at: Date.now(),
          }),
        });
        stops.push(() => planner.stop());
        const tool = await startCommandWorker({
          conn: await d.role('tool-runner', 'bench-tool-runner'),
          prefix: d.prefix,
          name: 'tool-noop',
          filterSubject: d.subjects.workTool('noop'),
          expect: 'tool.request',
          concurrency: o.concurrency,
          verify: signed ? d.keys.verifier : undefined,
          markRunning: claimed,
          execute: async (cmd): Promise<Message<'tool.result'>> => ({
            v: MESSAGE_VERSION,
            kind: 'tool.result',
            agentId: cmd.agentId,
            key: cmd.key,
            callId: cmd.callId,
            tool: cmd.tool,
            attempt: cmd.attempt,
            durationMs: 0,
            result: { output: null },
            at: Date.now(),
          }),
        });
        stops.push(() => tool.stop());
        return await driveAgents({
          system: name,
          admin,
          d,
          o,
          goal: (agentId) => ({ v: MESSAGE_VERSION, kind: 'goal', agentId, goal: 'turn bench', agent: turnAgent.id, input: { turns: o.turns }, at: Date.now() }),
          serverPids: srv.server.pid ? [srv.server.pid] : [],
          note: `in process: host + plan and tool workers (concurrency ${o.concurrency}), each role its own connection and creds; commands ${signed ? 'signed and verified' : 'NOT signed'}; silent loggers`,
        });
      } finally {
        for (const stop of stops.reverse()) await stop().catch(() => {});
        await d.close();
      }
    },
  };
}
