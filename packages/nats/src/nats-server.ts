import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, credsAuthenticator } from '@nats-io/transport-node';
import { silentLogger, type Logger } from '@errand/protocols';
import { NatsError, NatsErrorCode } from './errors.js';
import { credsInfo } from './identity.js';

/** Where `errand up` keeps its server's data unless told otherwise. */
export function defaultDataDir(): string {
  return join(homedir(), '.errand', 'nats');
}

/** Places searched after `NATS_SERVER_BIN` and `PATH`. */
const WELL_KNOWN_BINARIES = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'];
const PID_FILE = 'errand-nats-server.pid';
const STDERR_LINES_KEPT = 60;

export interface FindNatsServerOptions {
  /** An explicit path; wins over everything else. */
  binary: string | undefined;
  /** Read for `NATS_SERVER_BIN` and `PATH` (pass `process.env` from the process edge). */
  env: Readonly<Record<string, string | undefined>>;
  /** Install locations searched last; `/usr/sbin/nats-server` and the like by default. */
  fallbacks: readonly string[];
}

/**
 * Finds the `nats-server` binary: `binary`, then `NATS_SERVER_BIN`, then `PATH`, then the usual
 * install folders. Throws {@link NatsError} `ERR_NATS_SERVER_NOT_FOUND` naming where it looked and
 * how to install it.
 */
export function findNatsServer(options: Partial<FindNatsServerOptions> = {}): string {
  const env = options.env ?? {};
  const candidates: string[] = [];
  if (options.binary) candidates.push(options.binary);
  if (env.NATS_SERVER_BIN) candidates.push(env.NATS_SERVER_BIN);
  for (const dir of (env.PATH ?? '').split(delimiter)) if (dir) candidates.push(join(dir, 'nats-server'));
  const fallbacks = options.fallbacks ?? WELL_KNOWN_BINARIES;
  candidates.push(...fallbacks);
  for (const c of candidates) {
    if (isExecutable(c)) return c;
    // An explicit choice that does not work must not silently fall back to another binary.
    if (c === options.binary || c === env.NATS_SERVER_BIN) {
      throw new NatsError(NatsErrorCode.ServerNotFound, `nats-server binary '${c}' does not exist or is not executable`);
    }
  }
  throw new NatsError(
    NatsErrorCode.ServerNotFound,
    `nats-server was not found (looked in PATH${fallbacks.length ? ` and ${fallbacks.join(', ')}` : ''}). ` +
      "Install Debian's package with `apt-get install nats-server`, set NATS_SERVER_BIN to the binary, " +
      'or set NATS_URL to use a server that is already running',
  );
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface ClusterOptions {
  name: string;
  /** The port for routes from the other nodes (fixed: the others must know it in advance). */
  port: number;
  /** Route URLs of the other nodes (`nats://127.0.0.1:6222`). */
  routes: readonly string[];
  /** Routes authenticate with this user and password (secret); other nodes must use the same. */
  auth?: { user: string; password: string };
}

export interface NatsServerOptions extends FindNatsServerOptions {
  host: string;
  /** A port, or 0 for a free one chosen by the server (kept across `restart()`). */
  port: number;
  /**
   * The JetStream data folder. `'temporary'` makes a fresh one under the OS temp folder that
   * `stop()` removes; the default is {@link defaultDataDir}, which persists across runs.
   */
  storeDir: string | 'temporary';
  /** Unique per node of a cluster. */
  serverName: string | undefined;
  cluster: ClusterOptions | undefined;
  /** How long to wait for the server to accept JetStream requests. */
  readyTimeoutMs: number;
  /** How long `stop()` waits for a clean exit before it kills. */
  stopTimeoutMs: number;
  logger: Logger;
  /** Extra command-line arguments for nats-server. */
  args: readonly string[];
  /**
   * Configuration text for the server (the auth block `errand creds` writes, a `tls {}` block),
   * written to `nats-server.conf` in the data folder and given with `-c`; the command-line
   * settings above (host, port, JetStream, cluster) still apply.
   */
  config: string | undefined;
  /**
   * How the start-up check connects when the config requires it: a `.creds` file the server
   * trusts, and the CA of its TLS certificate.
   */
  client: { credsFile?: string; caFile?: string } | undefined;
  /**
   * Ties the server's life to this process (Linux, /proc): a small watchdog process stops the
   * server (SIGTERM, SIGKILL after `stopTimeoutMs`) once this process is gone, even by `kill -9`.
   * Without it (or when the watchdog is killed too) the next start on the folder takes the orphan over.
   */
  supervise: boolean;
}

export function defaultNatsServerOptions(): NatsServerOptions {
  return {
    binary: undefined,
    env: {},
    fallbacks: WELL_KNOWN_BINARIES,
    host: '127.0.0.1',
    port: 0,
    storeDir: defaultDataDir(),
    serverName: undefined,
    cluster: undefined,
    readyTimeoutMs: 20_000,
    stopTimeoutMs: 10_000,
    logger: silentLogger,
    args: [],
    config: undefined,
    client: undefined,
    supervise: false,
  };
}

/** A running nats-server child process. */
export interface NatsServer extends AsyncDisposable {
  /** `nats://host:port` for clients. */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** The server's version, as it reported it. */
  readonly version: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /**
   * The pid of an orphaned server of this data folder that start-up stopped (one an earlier
   * `errand up` started and left running when it was killed), if there was one.
   */
  readonly orphanStopped: number | undefined;
  /** The last lines the server wrote to stderr, for error reports. */
  recentOutput(): string[];
  /** Stops cleanly (SIGTERM, SIGKILL after `stopTimeoutMs`); removes a temporary store. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would; the data stays for `restart()`. */
  kill(): Promise<void>;
  /** Starts the server again on the same port with the same data. */
  restart(): Promise<void>;
}

/**
 * Starts nats-server with JetStream and waits until it answers JetStream API requests (in a cluster:
 * until the meta leader is elected). Throws {@link NatsError}: `ERR_NATS_SERVER_NOT_FOUND`,
 * `ERR_NATS_SERVER_DATA_IN_USE` when another live server owns the data folder (an orphan Errand
 * provably started on this folder, whose starter is gone, is stopped instead: see the pid file's
 * {@link PidRecord}), and
 * `ERR_NATS_SERVER_START` (with the server's own last words) when it exits or is not ready in time.
 */
export async function startNatsServer(options: Partial<NatsServerOptions> = {}): Promise<NatsServer> {
  const o = { ...defaultNatsServerOptions(), ...options };
  const binary = findNatsServer(o);
  const temporary = o.storeDir === 'temporary';
  const storeDir = temporary ? await mkdtemp(join(tmpdir(), 'errand-nats-')) : o.storeDir;
  await mkdir(storeDir, { recursive: true });
  const logger = o.logger.child({ component: 'nats-server' });

  let port = o.port;
  let child: ChildProcess | undefined;
  let version = '';
  let output: string[] = [];
  let exited: Promise<void> = Promise.resolve();
  let orphanStopped: number | undefined;

  const launch = async (): Promise<void> => {
    orphanStopped = (await claimStoreDir(storeDir, o.stopTimeoutMs, logger)) ?? orphanStopped;
    const portsDir = await mkdtemp(join(tmpdir(), 'errand-nats-ports-'));
    const args = ['-a', o.host, '-p', port === 0 ? '-1' : String(port), '-js', '-sd', storeDir, '--ports_file_dir', portsDir];
    if (o.serverName) args.push('--server_name', o.serverName);
    if (o.cluster) {
      // Credentials in the route URLs: the listen URL sets what routes must present, the others what this node presents.
      const auth = o.cluster.auth ? `${encodeURIComponent(o.cluster.auth.user)}:${encodeURIComponent(o.cluster.auth.password)}@` : '';
      const withAuth = (url: string) => (auth ? url.replace(/^(nats(?:-route)?:\/\/)(?:[^@/]*@)?/, `$1${auth}`) : url);
      args.push('--cluster_name', o.cluster.name, '--cluster', `nats://${auth}${o.host}:${o.cluster.port}`);
      if (o.cluster.routes.length > 0) args.push('--routes', o.cluster.routes.map(withAuth).join(','));
    }
    if (o.config !== undefined) {
      const configFile = join(storeDir, 'nats-server.conf');
      await writeFile(configFile, o.config, { mode: 0o600 });
      await chmod(configFile, 0o600);
      args.unshift('-c', configFile);
    }
    args.push(...o.args);

    output = [];
    const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
      proc.once('error', (err) => {
        exitInfo = err.message;
        resolve();
      });
    });
    let partial = '';
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      output.push(...lines);
      if (output.length > STDERR_LINES_KEPT) output.splice(0, output.length - STDERR_LINES_KEPT);
    });

    const fail = (why: string) =>
      new NatsError(
        NatsErrorCode.ServerStartFailed,
        `nats-server ${why}.${output.length ? `\nIts last output:\n  ${output.slice(-15).join('\n  ')}` : ''}`,
      );
    try {
      const deadline = Date.now() + o.readyTimeoutMs;
      const portsFile = join(portsDir, `nats-server_${proc.pid}.ports`);
      // The server writes the ports file once it listens; there is no event to await, so poll it
      // (bounded by the deadline) while watching for an early exit.
      let url: string | undefined;
      while (url === undefined) {
        if (exitInfo !== undefined) throw fail(`exited during start-up (${exitInfo})`);
        if (Date.now() > deadline) throw fail(`did not start listening within ${o.readyTimeoutMs} ms`);
        url = await readClientUrl(portsFile);
        if (url === undefined) await sleep(20);
      }
      port = Number(new URL(url).port);
      version = await waitForJetStream(`nats://${o.host}:${port}`, o.client, deadline, () => exitInfo, fail);
    } catch (err) {
      proc.kill('SIGKILL');
      await exited;
      await releaseStoreDir(storeDir, proc.pid);
      throw err;
    } finally {
      await rm(portsDir, { recursive: true, force: true });
    }
    const record = await pidRecordFor(proc.pid!, binary, storeDir);
    const supervisor = o.supervise ? superviseServer(record, o.stopTimeoutMs) : undefined;
    await writeFile(join(storeDir, PID_FILE), `${JSON.stringify({ ...record, ...(supervisor ? { supervisor } : {}) })}\n`);
    logger.info({ url: `nats://${o.host}:${port}`, pid: proc.pid, storeDir, version }, 'nats-server ready');
  };

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    if (signal !== 'SIGKILL') {
      const timer = setTimeout(() => proc.kill('SIGKILL'), o.stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    } else {
      await exited;
    }
    await releaseStoreDir(storeDir, proc.pid);
  };

  await launch();

  const server: NatsServer = {
    get url() {
      return `nats://${o.host}:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    get version() {
      return version;
    },
    get pid() {
      return child?.pid;
    },
    get orphanStopped() {
      return orphanStopped;
    },
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    recentOutput: () => [...output],
    async stop() {
      await terminate('SIGTERM');
      logger.info({ storeDir }, 'nats-server stopped');
      if (temporary) await rm(storeDir, { recursive: true, force: true });
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async restart() {
      await terminate('SIGTERM');
      await launch();
    },
    [Symbol.asyncDispose]: () => server.stop(),
  };
  return server;
}

async function readClientUrl(portsFile: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(portsFile, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const ports = JSON.parse(text) as { nats?: string[] };
    return ports.nats?.[0];
  } catch {
    return undefined; // written but not complete yet
  }
}

/** Polls until the server answers a JetStream account request; returns the server version. */
async function waitForJetStream(
  url: string,
  client: NatsServerOptions['client'],
  deadline: number,
  exitInfo: () => string | undefined,
  fail: (why: string) => NatsError,
): Promise<string> {
  let lastError = '';
  while (Date.now() < deadline) {
    if (exitInfo() !== undefined) throw fail(`exited during start-up (${exitInfo()})`);
    const creds = client?.credsFile ? await readFile(client.credsFile) : undefined;
    const nc = await natsConnect({
      servers: url,
      timeout: 2000,
      reconnect: false,
      ...(creds ? { authenticator: credsAuthenticator(creds), ...replyPrefix(creds) } : {}),
      ...(client?.caFile ? { tls: { caFile: client.caFile } } : {}),
    }).catch((err: Error) => {
      lastError = err.message;
      return undefined;
    });
    if (nc) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2000 });
        await jsm.getAccountInfo();
        return nc.info?.version ?? 'unknown';
      } catch (err) {
        lastError = (err as Error).message;
      } finally {
        await nc.close().catch(() => {});
      }
    }
    await sleep(100);
  }
  throw fail(`did not get JetStream ready in time (last error: ${lastError})`);
}

function replyPrefix(creds: Uint8Array): { inboxPrefix?: string } {
  const { replyPrefix: prefix } = credsInfo(new TextDecoder().decode(creds));
  return prefix ? { inboxPrefix: prefix } : {};
}

/**
 * What the pid file in a data folder records about the server Errand started there, so that a later
 * `errand up` can tell its own orphan (the process that started it died by `kill -9`) from anything
 * else: the pid with the kernel's start time of that process (a reused pid has another), the binary
 * and folder it was started with, the user, and the process that started it.
 */
export interface PidRecord {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks since boot when the process started. */
  readonly startTime: string | undefined;
  readonly binary: string;
  readonly storeDir: string;
  readonly uid: number | undefined;
  readonly owner: { readonly pid: number; readonly startTime: string | undefined };
  /** The watchdog that stops the server when its owner dies (`supervise`), if one runs. */
  readonly supervisor?: number;
}

/** A process's start time (clock ticks after boot) and state from /proc, where there is one. */
async function procStat(pid: number): Promise<{ startTime: string; state: string } | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // `pid (comm) state ppid …`: comm may contain spaces and parentheses; fields follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  return state !== undefined && startTime !== undefined ? { state, startTime } : undefined;
}

async function procUid(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const uid = status && /^Uid:\s+(\d+)/m.exec(status)?.[1];
  return uid ? Number(uid) : undefined;
}

/** Alive and not a zombie (a killed orphan stays a zombie until its new parent reaps it). */
async function isRunning(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return false;
  const stat = await procStat(pid);
  return stat === undefined || stat.state !== 'Z';
}

/** Whether `pid` is still the process recorded (same start time), not a later one that reused the number. */
async function isSameProcess(pid: number, startTime: string | undefined): Promise<boolean> {
  if (!(await isRunning(pid))) return false;
  if (startTime === undefined) return true;
  return (await procStat(pid))?.startTime === startTime;
}

async function pidRecordFor(pid: number, binary: string, storeDir: string): Promise<PidRecord> {
  return {
    pid,
    startTime: (await procStat(pid))?.startTime,
    binary,
    storeDir,
    uid: process.getuid?.(),
    owner: { pid: process.pid, startTime: (await procStat(process.pid))?.startTime },
  };
}

function parsePidRecord(text: string): PidRecord | { pid: number; legacy: true } | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { pid: Number(trimmed), legacy: true };
  try {
    const r = JSON.parse(trimmed) as Partial<PidRecord>;
    if (!Number.isInteger(r.pid) || (r.pid as number) <= 0 || typeof r.binary !== 'string' || typeof r.storeDir !== 'string' || !r.owner) return undefined;
    return r as PidRecord;
  } catch {
    return undefined;
  }
}

/**
 * The watchdog of {@link NatsServerOptions.supervise}: a separate Node process (no native code) that
 * polls /proc every 500 ms and, once the owner is gone (its pid dead or reused), stops the server —
 * only the very process recorded (same start time) — then exits; it exits by itself when the server
 * does. Returns its pid, or undefined where there is no /proc to check with.
 */
function superviseServer(record: PidRecord, graceMs: number): number | undefined {
  if (record.startTime === undefined || record.owner.startTime === undefined) return undefined;
  const script = `
const fs = require('node:fs');
const [owner, ownerStart, server, serverStart, grace] = process.argv.slice(1);
const start = (pid) => { try { const t = fs.readFileSync('/proc/' + pid + '/stat', 'utf8'); const f = t.slice(t.lastIndexOf(')') + 2).split(' '); return f[0] === 'Z' ? undefined : f[19]; } catch { return undefined; } };
const signal = (sig) => { try { if (start(server) === serverStart) process.kill(Number(server), sig); } catch {} };
const tick = setInterval(() => {
  if (start(server) !== serverStart) process.exit(0);
  if (start(owner) === ownerStart) return;
  clearInterval(tick);
  signal('SIGTERM');
  const deadline = Date.now() + Number(grace);
  setInterval(() => {
    if (start(server) !== serverStart) process.exit(0);
    if (Date.now() > deadline) { signal('SIGKILL'); process.exit(0); }
  }, 100);
}, 500);`;
  const watchdog = spawn(
    process.execPath,
    ['-e', script, String(record.owner.pid), record.owner.startTime, String(record.pid), record.startTime, String(graceMs)],
    { stdio: 'ignore', detached: true },
  );
  watchdog.on('error', () => {});
  watchdog.unref();
  return watchdog.pid;
}

/**
 * Why the live process of `record` is an orphan Errand may stop, or undefined when it is not
 * provably one: the same process (start time), owned by this user, running `binary` with this data
 * folder (`-sd <storeDir>`), and the process that started it gone. Without /proc nothing is proven.
 */
async function provenOrphan(record: PidRecord, storeDir: string): Promise<boolean> {
  if (record.startTime === undefined || record.storeDir !== storeDir) return false;
  const stat = await procStat(record.pid);
  if (!stat || stat.state === 'Z' || stat.startTime !== record.startTime) return false;
  const uid = process.getuid?.();
  if (uid === undefined || (await procUid(record.pid)) !== uid || record.uid !== uid) return false;
  const cmdline = await readFile(`/proc/${record.pid}/cmdline`, 'utf8').catch(() => undefined);
  if (cmdline === undefined) return false;
  const argv = cmdline.split('\0');
  const sd = argv.indexOf('-sd');
  if (argv[0] !== record.binary || sd < 0 || argv[sd + 1] !== storeDir) return false;
  // Its starter still runs (another `errand up`, or this process): the server is in use, not orphaned.
  return !(await isSameProcess(record.owner.pid, record.owner.startTime));
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone (or throws when it stays). */
async function stopProcess(pid: number, startTime: string, graceMs: number): Promise<void> {
  const gone = async () => !(await isSameProcess(pid, startTime));
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await gone()) return true;
      await sleep(50);
    }
    return gone();
  };
  process.kill(pid, 'SIGTERM');
  if (await waitGone(graceMs)) return;
  process.kill(pid, 'SIGKILL');
  if (await waitGone(5000)) return;
  throw new NatsError(NatsErrorCode.ServerDataInUse, `the orphaned nats-server (pid ${pid}) did not exit after SIGKILL; stop it by hand`);
}

/**
 * Refuses a data folder that a live server is still using (two servers on one store corrupt it),
 * except an orphan of Errand's own: a server this user's Errand started on this folder whose
 * starter died (`kill -9` of `errand up`) is stopped (SIGTERM, SIGKILL after `graceMs`) and the
 * folder claimed. A stale pid file (its process gone, or the pid reused) is removed.
 */
async function claimStoreDir(storeDir: string, graceMs: number, logger: Logger): Promise<number | undefined> {
  const pidFile = join(storeDir, PID_FILE);
  if (!existsSync(pidFile)) return undefined;
  let stopped: number | undefined;
  const record = parsePidRecord(await readFile(pidFile, 'utf8').catch(() => ''));
  if (record && (await isRunning(record.pid))) {
    if ('legacy' in record) {
      if (await looksLikeNatsServer(record.pid)) throw dataInUse(record.pid, storeDir);
    } else if (await provenOrphan(record, storeDir)) {
      logger.warn({ pid: record.pid, storeDir }, 'taking over the nats-server an earlier errand up left running on this data folder: stopping it');
      await stopProcess(record.pid, record.startTime!, graceMs);
      stopped = record.pid;
    } else if (await isSameProcess(record.pid, record.startTime)) {
      throw dataInUse(record.pid, storeDir);
    }
  }
  await rm(pidFile, { force: true });
  return stopped;
}

function dataInUse(pid: number, storeDir: string): NatsError {
  return new NatsError(
    NatsErrorCode.ServerDataInUse,
    `another nats-server (pid ${pid}) is using the data folder ${storeDir}; stop it, or choose another folder (--data-dir), or point NATS_URL at it`,
  );
}

async function releaseStoreDir(storeDir: string, pid: number | undefined): Promise<void> {
  const pidFile = join(storeDir, PID_FILE);
  const owner = parsePidRecord(await readFile(pidFile, 'utf8').catch(() => ''));
  if (owner !== undefined && owner.pid === pid) await rm(pidFile, { force: true });
}

/** Where /proc exists, tells a live nats-server from an unrelated process that reused the pid. */
async function looksLikeNatsServer(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  return cmdline === undefined || cmdline.includes('nats-server');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
