/**
 * `errand-builtin`: what a user gets — the built-in agent (`assistant`, @errand/agent) with the
 * real planner service and the real tool-runner, against a loopback model server.
 *
 * Stable exports: `createErrandBuiltin(srv)` → a {@link LoopSystem} named `errand-builtin`, and
 * `noopTool`, the one tool it serves.
 *
 * Each run gets a fresh deployment and starts, in this process: a host (`startHost` with the
 * built-in agents, the run's concurrency, signing commands), the planner as the service it is
 * (`startService(plannerService, env)`: its configuration parsed from the environment a process
 * would get, the real `openai` client, streaming) against {@link startLoopbackLlm} (which calls
 * `noop` until the history has `turns` tool results, then answers), and `startToolRunner` with
 * `noopTool` — planner and runner at the run's concurrency, verifying every command. Each role
 * connects with its own credentials. Every service logs at info as a deployment does: its lines
 * are shipped to the logs stream (not printed). The loopback model server's CPU is in the client
 * CPU.
 */
import { agents as builtInAgents, assistant } from '@errand/agent';
import { createRegistry } from '@errand/core';
import type { ErrandConnection } from '@errand/nats';
import { MESSAGE_VERSION, type ToolDefinition } from '@errand/protocols';
import { startHost } from '@errand/runtime/internal';
import { createServiceLogger, startService } from '@errand/service';
import type { TestServer } from '@errand/testing';
import type { Tool } from '@errand/tools';
// The planner service and @errand/tool-runner are not dependencies of the repository root or of
// test/; their sources are imported directly.
import { plannerService } from '../../../services/planner/src/index.js';
import { startToolRunner } from '../../../packages/tool-runner/src/index.js';
import type { LoopOptions, LoopResult, LoopSystem } from '../lib/loop.js';
import { driveAgents, openDeployment } from './errand-common.js';
import { startLoopbackLlm, type LoopbackLlm } from './loopback-llm.js';

const noopDefinition: ToolDefinition = {
  name: 'noop',
  description: 'does nothing and says so',
  parameters: { type: 'object', properties: { n: { type: 'number' } }, additionalProperties: true },
};

/** A tool that does nothing: answers `{ ok: true, n }` at once. */
export const noopTool: Tool = {
  definition: noopDefinition,
  idempotent: true,
  destructive: false,
  defaultPolicy: 'auto',
  timeoutMs: 60_000,
  run: async (args) => ({ ok: true, n: (args as { n?: unknown } | null)?.n ?? null }),
};

/** The services' log level (BENCH_LOG_LEVEL, default info as deployed): `warn` shows what logging costs. */
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';

export function createErrandBuiltin(srv: TestServer): LoopSystem {
  const name = 'errand-builtin';
  let admin: ErrandConnection | undefined;
  let llm: LoopbackLlm | undefined;
  return {
    name,
    async setup() {
      admin = await srv.connect({ name: `bench-${name}`, asyncTraces: false });
      llm = await startLoopbackLlm();
    },
    async teardown() {
      await llm?.close();
      await admin?.close();
      llm = undefined;
      admin = undefined;
    },
    async run(o: LoopOptions): Promise<LoopResult> {
      if (!admin || !llm) throw new Error(`${name}: run() before setup()`);
      llm.turns = o.turns;
      const d = await openDeployment(srv, admin, 'builtin');
      const stops: (() => Promise<void>)[] = [];
      // As a service process logs: info and up (BENCH_LOG_LEVEL), shipped to NATS (a deployment's stdout is not this bench's).
      const serviceLogger = (conn: ErrandConnection, service: string) => {
        const { logger, shipper } = createServiceLogger(service, LOG_LEVEL, { stdout: false });
        shipper.attach(conn.nc, d.subjects.logs(service));
        return logger;
      };
      try {
        const hostConn = await d.role('host', 'bench-host');
        const host = await startHost({
          conn: hostConn,
          registry: createRegistry(builtInAgents),
          prefix: d.prefix,
          concurrency: o.concurrency,
          gcIntervalMs: 0,
          logger: serviceLogger(hostConn, 'host'),
          signer: d.keys.signer,
          verifier: d.keys.verifier,
        });
        stops.push(() => host.stop());
        const plannerCreds = await d.credsFile('planner');
        const planner = await startService(
          plannerService,
          {
            NATS_URL: srv.url,
            ...(plannerCreds ? { NATS_CREDS: plannerCreds } : {}),
            ERRAND_PREFIX: d.prefix,
            OPENAI_BASE_URL: llm.baseURL,
            ERRAND_VERIFY_KEY: d.keys.publicKey,
            ERRAND_PLANNER_CONCURRENCY: String(o.concurrency),
            LOG_LEVEL: LOG_LEVEL,
          },
          { logger: (service, level, redactor) => createServiceLogger(service, level, { stdout: false, redactor }) },
        );
        stops.push(() => planner.stop());
        const toolConn = await d.role('tool-runner', 'bench-tool-runner');
        const runner = await startToolRunner({
          conn: toolConn,
          prefix: d.prefix,
          tools: [noopTool],
          verify: d.keys.verifier,
          concurrency: o.concurrency,
          logger: serviceLogger(toolConn, 'tool-runner'),
        });
        stops.push(() => runner.stop());
        return await driveAgents({
          system: name,
          admin,
          d,
          o,
          goal: (agentId) => ({
            v: MESSAGE_VERSION,
            kind: 'goal',
            agentId,
            goal: 'turn bench: call noop until told to stop',
            agent: assistant.id,
            input: { toolDefinitions: [noopDefinition], toolPolicies: { noop: 'auto' }, toolTimeouts: { noop: noopTool.timeoutMs } },
            at: Date.now(),
          }),
          serverPids: srv.server.pid ? [srv.server.pid] : [],
          note: `in process: host, planner service (real openai client, streaming, loopback model server in this process), tool-runner; concurrency ${o.concurrency}; each role its own creds; signed commands; ${LOG_LEVEL} logs shipped to NATS`,
        });
      } finally {
        for (const stop of stops.reverse()) await stop().catch(() => {});
        await d.close();
      }
    },
  };
}
