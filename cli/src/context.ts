import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { connect, connectOptionsFromEnv, IdentityFiles, DEFAULT_NATS_URL, defaultDataDir, type ErrandConnection } from '@errand/nats';
import { DEFAULT_PREFIX, type Logger, type Role } from '@errand/protocols';

/** Options every command that talks to NATS accepts. */
export interface GlobalOptions {
  server?: string;
  prefix?: string;
  json?: boolean;
  logLevel?: string;
}

/** What `errand up` leaves behind so other commands in other terminals find its server. */
interface UpState {
  url: string;
  prefix: string;
  pid: number;
  /** Its credentials folder (one `.creds` per role); absent when it runs `--insecure`. */
  credsDir?: string;
}

function upStatePath(dataDir = defaultDataDir()): string {
  return join(dirname(dataDir), 'up.json');
}

export async function writeUpState(state: UpState, dataDir?: string): Promise<void> {
  const path = upStatePath(dataDir);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(state, null, 2)}\n`);
}

export async function removeUpState(dataDir?: string): Promise<void> {
  await rm(upStatePath(dataDir), { force: true });
}

async function readUpState(): Promise<UpState | undefined> {
  try {
    const state = JSON.parse(await readFile(upStatePath(), 'utf8')) as UpState;
    process.kill(state.pid, 0);
    return state;
  } catch {
    return undefined;
  }
}

export interface Target {
  servers: string;
  prefix: string;
  /** The credentials folder of the `errand up` found, whose `<role>.creds` a command connects with. */
  credsDir?: string;
  /** Where the URL came from, for messages. */
  source: '--server' | 'NATS_URL' | 'errand up' | 'default';
}

/** The server given explicitly (`--server`, then `NATS_URL`), if any. */
export function explicitServer(options: GlobalOptions, env = process.env): string | undefined {
  return options.server ?? (env.NATS_URL || undefined);
}

/** Where to connect: `--server`, then `NATS_URL`, then a running `errand up`, then localhost:4222. */
export async function resolveTarget(options: GlobalOptions, env = process.env): Promise<Target> {
  const prefix = options.prefix ?? env.ERRAND_PREFIX;
  if (options.server) return { servers: options.server, prefix: prefix ?? DEFAULT_PREFIX, source: '--server' };
  if (env.NATS_URL) return { servers: env.NATS_URL, prefix: prefix ?? DEFAULT_PREFIX, source: 'NATS_URL' };
  const up = await readUpState();
  if (up) return { servers: up.url, prefix: prefix ?? up.prefix, source: 'errand up', ...(up.credsDir ? { credsDir: up.credsDir } : {}) };
  return { servers: DEFAULT_NATS_URL, prefix: prefix ?? DEFAULT_PREFIX, source: 'default' };
}

/**
 * Connects as `role` (a person's CLI is an `operator`; provisioning and gc need `admin`): with
 * NATS_CREDS when it is set, else with that role's `.creds` of the `errand up` found.
 */
export async function connectTo(target: Target, logger: Logger, name = 'errand-cli', role: Role = 'operator'): Promise<ErrandConnection> {
  const fromEnv = connectOptionsFromEnv(process.env);
  const creds = fromEnv.credsFile === undefined && target.credsDir ? { credsFile: join(target.credsDir, IdentityFiles.creds(role)) } : {};
  return connect({ ...fromEnv, ...creds, servers: target.servers, name, logger });
}
