import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  connect,
  credsOf,
  mintIdentities,
  mintUserIdentity,
  serverAuthConfig,
  startNatsServer,
  type ConnectOptions,
  type ErrandConnection,
  type Identities,
  type NatsServer,
} from '@errand/nats';
import type { Role } from '@errand/protocols';
import { freePort } from './free-port.js';

/** A subject prefix no other test uses (`t-3fa9c1d2`), so files and tests never share streams. */
export function uniquePrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** The identities a test server with `auth` trusts, and `.creds` files of any role for any prefix. */
export interface TestAuth {
  readonly identities: Identities;
  /**
   * A `.creds` file of `role` for a deployment under `prefix`, for a user named `name` (default:
   * the role's name); minted once per triple, in a temp folder.
   */
  credsFile(role: Role, prefix: string, name?: string): Promise<string>;
}

export interface TestServerOptions {
  /**
   * Require credentials, as `errand up` does: an operator, an account and users per role.
   * Default: on, unless `ERRAND_TEST_AUTH=0` is set (a run of the suite without identities).
   */
  auth: boolean;
  /** Configuration text added to the server's (a `tls {}` block, say). */
  config: string;
  /** How the start-up check and `connect()` reach a server with `config` (its CA). */
  client: { caFile?: string };
}

/** A nats-server for one test file, with a temporary store that `stop()` removes. */
export interface TestServer extends AsyncDisposable {
  readonly server: NatsServer;
  readonly url: string;
  /** Set when the server requires credentials; `connect()` then uses the `admin` identity unless told otherwise. */
  readonly auth: TestAuth | undefined;
  /**
   * The environment of a CLI or `errand mcp` process acting as `role` of the deployment under
   * `prefix`: `NATS_URL`, `ERRAND_PREFIX` and, when the server requires credentials, `NATS_CREDS`
   * (a `.creds` file of that role for that prefix). Spread it over the rest of the environment.
   */
  env(role: Role, prefix: string): Promise<Record<string, string>>;
  /** Connects to it; every connection is closed by `stop()`. */
  connect(options?: Partial<ConnectOptions>): Promise<ErrandConnection>;
  /** Stops it cleanly and starts it again on the same port with the same data. */
  restart(): Promise<void>;
  /** SIGKILLs it (data stays; `restart()` brings it back). */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

function tracker() {
  const connections = new Set<ErrandConnection>();
  return {
    async open(options: Partial<ConnectOptions>): Promise<ErrandConnection> {
      // A test wants to see where a failed request was made; a benchmark passes asyncTraces: false.
      const conn = await connect({ name: 'errand-test', asyncTraces: true, ...options });
      connections.add(conn);
      return conn;
    },
    async closeAll(): Promise<void> {
      await Promise.all([...connections].map((c) => c.close().catch(() => {})));
      connections.clear();
    },
  };
}

/**
 * Starts a real nats-server with JetStream on a free loopback port and a temporary store.
 * `await using srv = await startTestServer()` or call `stop()` in `afterAll`.
 */
export async function startTestServer(options: Partial<TestServerOptions> = {}): Promise<TestServer> {
  const auth = (options.auth ?? process.env.ERRAND_TEST_AUTH !== '0') ? await testAuth() : undefined;
  const adminCreds = auth ? await auth.auth.credsFile('admin', 'errand') : undefined;
  const config = [auth ? serverAuthConfig(auth.auth.identities) : '', options.config ?? ''].join('\n');
  const client = { ...(adminCreds ? { credsFile: adminCreds } : {}), ...options.client };
  let server: NatsServer;
  try {
    server = await startNatsServer({
      port: 0,
      storeDir: 'temporary',
      env: process.env,
      ...(auth || options.config ? { config, client } : {}),
    });
  } catch (err) {
    await auth?.cleanup();
    throw err;
  }
  const conns = tracker();
  const stop = async () => {
    await conns.closeAll();
    await server.stop();
    await auth?.cleanup();
  };
  return {
    server,
    get url() {
      return server.url;
    },
    auth: auth?.auth,
    async env(role, prefix) {
      return { NATS_URL: server.url, ERRAND_PREFIX: prefix, ...(auth ? { NATS_CREDS: await auth.auth.credsFile(role, prefix) } : {}) };
    },
    connect: (opts = {}) =>
      conns.open({
        servers: server.url,
        ...(adminCreds ? { credsFile: adminCreds } : {}),
        ...(options.client?.caFile ? { tls: { caFile: options.client.caFile } } : {}),
        ...opts,
      }),
    restart: () => server.restart(),
    kill: () => server.kill(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function testAuth(): Promise<{ auth: TestAuth; cleanup(): Promise<void> }> {
  const identities = await mintIdentities({ prefix: 'errand' });
  const dir = await mkdtemp(join(tmpdir(), 'errand-test-creds-'));
  const files = new Map<string, Promise<string>>();
  const credsFile = (role: Role, prefix: string, name: string = role) => {
    const id = `${name}:${role}@${prefix}`;
    let file = files.get(id);
    if (!file) {
      file = (async () => {
        const user = await mintUserIdentity(identities, role, { name, prefix });
        const path = join(dir, `${name}-${role}-${prefix}.creds`);
        await writeFile(path, credsOf(user), { mode: 0o600 });
        return path;
      })();
      files.set(id, file);
    }
    return file;
  };
  return { auth: { identities, credsFile }, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A cluster of nats-servers on loopback (routes between them, JetStream with replicas). */
export interface TestCluster extends AsyncDisposable {
  readonly nodes: readonly NatsServer[];
  /** Every node's client URL. */
  readonly urls: readonly string[];
  /** Every node's client URL, comma-separated (what `NATS_URL` takes). */
  readonly url: string;
  /** The replicas a deployment on it provisions its streams and buckets with (the cluster's size). */
  readonly replicas: number;
  /** Set when the cluster requires credentials (as {@link TestServer.auth}); every node trusts the same operator. */
  readonly auth: TestAuth | undefined;
  /**
   * `NATS_URL`, `ERRAND_PREFIX` and (with auth) `NATS_CREDS` of `role` under `prefix`. With
   * `node`, `NATS_URL` is that node's URL alone: the process connects there, and learns the other
   * nodes from it (the server's cluster gossip) to fail over; without, the list of every node.
   */
  env(role: Role, prefix: string, node?: number): Promise<Record<string, string>>;
  /** Connects with every node as a seed (or to node `node` alone), so the client fails over. */
  connect(options?: Partial<ConnectOptions> & { node?: number }): Promise<ErrandConnection>;
  /** SIGKILLs node `i`. */
  kill(i: number): Promise<void>;
  /** Restarts node `i` on its ports with its data (after a kill, or stopping it cleanly first). */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

export interface TestClusterOptions {
  size: number;
  /** How long to wait for the cluster to place a replicated stream. */
  readyTimeoutMs: number;
  /** Require credentials on every node, as {@link TestServerOptions.auth} (same default). */
  auth: boolean;
}

/**
 * Starts `size` (3) nodes on loopback with full-mesh routes (authenticated with a random user and
 * password) and JetStream, and waits until the cluster can place a stream with `size` replicas.
 * With auth (the default) every node trusts the same fresh operator and account (memory
 * resolver, as `startTestServer`), so `createDeployment(cluster)` runs each service as its role.
 */
export async function startTestCluster(options: Partial<TestClusterOptions> = {}): Promise<TestCluster> {
  const size = options.size ?? 3;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const auth = (options.auth ?? process.env.ERRAND_TEST_AUTH !== '0') ? await testAuth() : undefined;
  const adminCreds = auth ? await auth.auth.credsFile('admin', 'errand') : undefined;
  const name = uniquePrefix('cluster');
  const routeAuth = { user: 'route', password: randomBytes(16).toString('hex') };
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
  const started = await Promise.allSettled(
    clusterPorts.map((port, i) =>
      startNatsServer({
        port: 0,
        storeDir: 'temporary',
        env: process.env,
        serverName: `${name}_n${i + 1}`,
        cluster: { name, port, routes: routes.filter((_, j) => j !== i), auth: routeAuth },
        readyTimeoutMs,
        ...(auth ? { config: serverAuthConfig(auth.auth.identities), client: { credsFile: adminCreds! } } : {}),
      }),
    ),
  );
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    await auth?.cleanup();
    throw failed.reason;
  }
  const nodes = started.map((r) => (r as PromiseFulfilledResult<NatsServer>).value);
  const conns = tracker();
  const creds = adminCreds ? { credsFile: adminCreds } : {};
  const cluster: TestCluster = {
    nodes,
    get urls() {
      return nodes.map((n) => n.url);
    },
    get url() {
      return cluster.urls.join(',');
    },
    replicas: size,
    auth: auth?.auth,
    async env(role, prefix, i) {
      return {
        NATS_URL: i === undefined ? cluster.url : node(nodes, i).url,
        ERRAND_PREFIX: prefix,
        ...(auth ? { NATS_CREDS: await auth.auth.credsFile(role, prefix) } : {}),
      };
    },
    connect: ({ node: i, ...opts } = {}) => conns.open({ servers: i === undefined ? cluster.urls : node(nodes, i).url, ...creds, ...opts }),
    kill: (i) => node(nodes, i).kill(),
    restart: (i) => node(nodes, i).restart(),
    async stop() {
      await conns.closeAll();
      await Promise.all(nodes.map((n) => n.stop()));
      await auth?.cleanup();
    },
    [Symbol.asyncDispose]: () => cluster.stop(),
  };
  try {
    await waitForReplicas(cluster, size, readyTimeoutMs);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

function node(nodes: readonly NatsServer[], i: number): NatsServer {
  const n = nodes[i];
  if (!n) throw new RangeError(`no node ${i}; the cluster has ${nodes.length}`);
  return n;
}

/**
 * JetStream in a fresh cluster answers before every peer has joined the meta group; placing a
 * replicated stream is the real readiness check. Retries (bounded) until one can be created.
 */
async function waitForReplicas(cluster: TestCluster, replicas: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const conn = await cluster.connect({ waitOnFirstConnect: true });
  const jsm = await conn.jsm();
  const stream = `READY_${randomBytes(4).toString('hex')}`;
  let last = '';
  try {
    while (Date.now() < deadline) {
      try {
        await jsm.streams.add({ name: stream, subjects: [`${stream}.probe`], num_replicas: replicas });
        await jsm.streams.delete(stream);
        return;
      } catch (err) {
        last = (err as Error).message;
        await sleep(250);
      }
    }
    throw new Error(`the cluster could not place an R${replicas} stream within ${timeoutMs} ms: ${last}`);
  } finally {
    await conn.close();
  }
}
