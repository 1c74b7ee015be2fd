/**
 * Restate 1.7: restate-server (the binary the npm registry ships in @restatedev/restate-server-
 * linux-x64) as a child process on free ports with its own data dir, and this process as the
 * service deployment (an HTTP/2 endpoint, registered through the admin API). One virtual object
 * per agent; its handler runs the turns as `ctx.run('model')` + `ctx.run('tool')`, each a
 * journaled step the server has stored before the handler goes on. Agents are invoked through
 * the ingress with @restatedev/restate-sdk-clients.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as restate from '@restatedev/restate-sdk';
import * as clients from '@restatedev/restate-sdk-clients';
import { runTimeoutMs, withTimeout, type LoopOptions, type LoopResult, type LoopSystem } from '../lib/loop.js';
import { model, runAgents, tool, type AgentState, type TurnClock } from './measure.js';
import { freePort, startServer, waitUntil, type ServerProcess } from './proc.js';

// @restatedev/restate-sdk 1.14 and later call Promise.withResolvers (Node 22); this repo runs on
// Node 20, so the bench supplies it (the SDK otherwise fails every invocation with a TypeError).
if (typeof (Promise as { withResolvers?: unknown }).withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value<T>() {
      let resolve!: (v: T | PromiseLike<T>) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

/** The server binary inside the platform package (resolved through the wrapper package, as its own launcher does). */
function restateServerBinary(): string {
  const require = createRequire(createRequire(import.meta.url).resolve('@restatedev/restate-server/package.json'));
  return join(dirname(require.resolve(`@restatedev/restate-server-${process.platform}-${process.arch}/package.json`)), 'bin', 'restate-server');
}

export function restateSystem(): LoopSystem & { version(): string } {
  let server: ServerProcess | undefined;
  let endpoint: Http2Server | undefined;
  const sessions = new Set<ServerHttp2Session>();
  let dir = '';
  let ingressUrl = '';
  let version = '';
  /** The clock of the run in progress: the handler reports its turns to it. */
  let clock: TurnClock | undefined;

  const agent = restate.object({
    name: 'agent',
    handlers: {
      async run(ctx: restate.ObjectContext, input: { turns: number }): Promise<AgentState> {
        let s: AgentState = { agent: ctx.key, turn: 0, last: 'goal' };
        for (let i = 0; i < input.turns; i++) {
          const before: AgentState = s;
          clock?.modelStep(s.agent, s.turn);
          s = await ctx.run('model', () => model(before));
          const called: AgentState = s;
          s = await ctx.run('tool', () => tool(called));
        }
        return s;
      },
    },
  });

  return {
    name: 'restate-virtual-object',
    version: () => `restate-server ${version}`,
    async setup() {
      dir = await mkdtemp(join(tmpdir(), 'bench-restate-'));
      const [ingress, admin, fabric] = [await freePort(), await freePort(), await freePort()];
      const bin = restateServerBinary();
      server = startServer(bin, ['--no-logo', '--listen-mode', 'tcp', '--base-dir', dir, '--node-name', 'bench'], {
        cwd: dir,
        env: {
          RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${ingress}`,
          RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${admin}`,
          RESTATE_BIND_ADDRESS: `127.0.0.1:${fabric}`,
          RESTATE_ADVERTISED_ADDRESS: `http://127.0.0.1:${fabric}`,
          RESTATE_LOG_FILTER: 'warn',
        },
      });
      const adminUrl = `http://127.0.0.1:${admin}`;
      ingressUrl = `http://127.0.0.1:${ingress}`;
      await waitUntil('restate-server admin', async () => (await fetch(`${adminUrl}/health`)).ok, 30_000, server);
      await waitUntil('restate-server ingress', async () => (await fetch(`${ingressUrl}/restate/health`)).ok, 30_000, server);
      version = String(((await (await fetch(`${adminUrl}/version`)).json()) as { version?: string }).version ?? '?');

      endpoint = createHttp2Server(restate.createEndpointHandler({ services: [agent] }));
      endpoint.on('session', (session: ServerHttp2Session) => {
        sessions.add(session);
        session.once('close', () => sessions.delete(session));
      });
      const port = await new Promise<number>((resolve, reject) => {
        endpoint!.once('error', reject);
        endpoint!.listen(0, '127.0.0.1', () => {
          const a = endpoint!.address();
          resolve(typeof a === 'object' && a ? a.port : 0);
        });
      });
      const reg = await fetch(`${adminUrl}/deployments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uri: `http://127.0.0.1:${port}`, force: true }),
        signal: AbortSignal.timeout(30_000),
      });
      if (!reg.ok) throw new Error(`registering the deployment: ${reg.status} ${await reg.text()}`);
    },
    async run(o: LoopOptions): Promise<LoopResult> {
      const ingress = clients.connect({ url: ingressUrl });
      return runAgents(
        this.name,
        o,
        server ? [server.pid] : [],
        async (c, agents) => {
          clock = c;
          for (const a of agents) c.start(a);
          await withTimeout(
            Promise.all(
              agents.map(async (a) => {
                const s = await ingress.objectClient(agent, a).run({ turns: o.turns });
                if (s.turn !== o.turns) throw new Error(`Restate agent ${a} ended at turn ${s.turn}`);
                c.done(a);
              }),
            ),
            runTimeoutMs(o),
            'Restate agents',
          );
        },
        `ctx.run per step in one virtual-object handler per agent; endpoint in this process (HTTP/2); ${o.concurrency === 1 ? '1 agent' : 'every agent'} in flight (Restate has no worker concurrency to set); default server config (WAL fsync on)`,
      );
    },
    async teardown() {
      // The server first: it holds HTTP/2 sessions open to the endpoint, which close() would wait for.
      await server?.stop(10_000);
      server = undefined;
      for (const s of sessions) s.destroy();
      await withTimeout(new Promise<void>((resolve) => (endpoint ? endpoint.close(() => resolve()) : resolve())), 5000, 'closing the Restate endpoint');
      endpoint = undefined;
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
