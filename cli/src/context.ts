import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { connect, connectOptionsFromEnv, IdentityFiles, defaultDataDir, type ErrandConnection } from '@errand/nats';
import { DEFAULT_PREFIX, type Logger, type Role } from '@errand/protocols';
import { ExitCode } from './exit-codes.js';
import { CliError } from './output.js';

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
  source: '--server' | 'NATS_URL' | 'errand up';
}

/** The server given explicitly (`--server`, then `NATS_URL`), if any. */
export function explicitServer(options: GlobalOptions, env = process.env): string | undefined {
  return options.server ?? (env.NATS_URL || undefined);
}

/** Says once per process, on stderr (never on stdout, where --json goes), which server a command found by itself. */
let said = false;
function sayOnce(line: string): void {
  if (said) return;
  said = true;
  process.stderr.write(`${line}\n`);
}

/**
 * Where to connect, never a guess: `--server`, then `NATS_URL`, then the server of the `errand up`
 * running for this user — which it says on stderr, since nothing on the command line named it.
 * With none of them, throws `CliError` (exit 4) saying how to start one or name one.
 */
export async function resolveTarget(options: GlobalOptions, env = process.env, say: (line: string) => void = sayOnce): Promise<Target> {
  const prefix = options.prefix ?? env.ERRAND_PREFIX;
  if (options.server) return { servers: options.server, prefix: prefix ?? DEFAULT_PREFIX, source: '--server' };
  if (env.NATS_URL) return { servers: env.NATS_URL, prefix: prefix ?? DEFAULT_PREFIX, source: 'NATS_URL' };
  const up = await readUpState();
  if (up) {
    const target: Target = { servers: up.url, prefix: prefix ?? up.prefix, source: 'errand up', ...(up.credsDir ? { credsDir: up.credsDir } : {}) };
    say(`errand: using ${target.servers} (prefix ${target.prefix}), the NATS server of the errand up running as pid ${up.pid}`);
    return target;
  }
  throw new CliError(
    ExitCode.Unavailable,
    'no NATS server named and no errand up running: start one with `errand up` (in another terminal), or name yours with --server nats://host:4222 or NATS_URL',
  );
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
