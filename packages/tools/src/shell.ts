import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { objectArgs, stringArg, ToolError, ToolErrorCode, type Tool } from './tool.js';

export interface ShellOptions {
  /** Commands (argv[0]) that may run; nothing else does. */
  allowCommands: readonly string[];
  /** The workspace: bind-mounted read-write at {@link SANDBOX_WORKSPACE}, the working folder of every command. */
  cwd: string;
  timeoutMs: number;
  maxOutputBytes: number;
  /** The bubblewrap binary (default `bwrap`, looked up on PATH). */
  bwrapPath?: string;
  /** Let commands reach the network (bwrap `--share-net`). Off by default: the sandbox has only its own loopback. */
  network?: boolean;
  /** Variables the sandbox gets besides PATH, HOME and LANG (names and values, e.g. from ERRAND_SHELL_ENV). */
  env?: Readonly<Record<string, string>>;
}

/** Where the workspace is inside the sandbox; commands see this path, never the host's. */
export const SANDBOX_WORKSPACE = '/workspace';

const SANDBOX_UID = 1000;
const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin';
// What bwrap itself is started with: /proc/1/environ of the sandbox is bwrap's environment, so it
// must hold nothing the runner knows (API keys), only what finding the binary needs.
const BWRAP_ENV = { PATH: SANDBOX_PATH };
// Read-only host files commands commonly need: the dynamic linker's cache, Debian's alternatives
// (awk, editor, …) and, with the network allowed, name resolution and CA certificates. Not
// /etc/passwd: the sandbox gets a generated one naming only its own user.
const ETC_ALWAYS = ['/etc/ld.so.cache', '/etc/alternatives', '/etc/localtime'];
const ETC_NETWORK = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl', '/etc/ca-certificates'];
const PASSWD = `root:x:0:0::/nonexistent:/usr/sbin/nologin\nsandbox:x:${SANDBOX_UID}:${SANDBOX_UID}::/tmp:/usr/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n`;
const GROUP = `root:x:0:\nsandbox:x:${SANDBOX_UID}:\nnogroup:x:65534:\n`;

/**
 * The bwrap options of one sandbox (everything before `--`). They reach bwrap through a file
 * descriptor (`--args 3`), so the sandbox's `/proc/1/cmdline` shows neither host paths nor the
 * values of passed variables; fd 4 and 5 carry the generated /etc/passwd and /etc/group.
 */
function sandboxArgs(o: Pick<ShellOptions, 'cwd' | 'network' | 'env'>): string[] {
  const a = ['--unshare-all', '--unshare-user', '--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_UID), '--die-with-parent', '--new-session', '--cap-drop', 'ALL'];
  if (o.network) a.push('--share-net');
  a.push('--ro-bind', '/usr', '/usr');
  for (const dir of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    // Merged-/usr systems have these as links into /usr; older ones as folders of their own.
    if (existsSync(`/usr/${dir}`)) a.push('--symlink', `usr/${dir}`, `/${dir}`);
  }
  for (const p of [...ETC_ALWAYS, ...(o.network ? ETC_NETWORK : [])]) a.push('--ro-bind-try', p, p);
  a.push('--ro-bind-data', '4', '/etc/passwd', '--ro-bind-data', '5', '/etc/group');
  a.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--bind', o.cwd, SANDBOX_WORKSPACE, '--chdir', SANDBOX_WORKSPACE);
  // Everything above is mounted; the root itself (a tmpfs bwrap made) goes read-only.
  a.push('--remount-ro', '/');
  a.push('--clearenv', '--setenv', 'PATH', SANDBOX_PATH, '--setenv', 'HOME', '/tmp', '--setenv', 'LANG', 'C.UTF-8');
  for (const [name, value] of Object.entries(o.env ?? {})) a.push('--setenv', name, value);
  return a;
}

interface Sandboxed {
  child: ReturnType<typeof spawn>;
}

function spawnSandboxed(bwrap: string, o: Pick<ShellOptions, 'cwd' | 'network' | 'env'>, argv: readonly string[]): Sandboxed {
  const child = spawn(bwrap, ['--args', '3', '--', ...argv], { env: BWRAP_ENV, stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'] });
  const feed = (fd: number, text: string) => {
    const s = child.stdio[fd] as NodeJS.WritableStream & { on(e: 'error', l: () => void): void };
    // bwrap may exit before reading (it is missing, or refuses an option): nothing to report here.
    s.on('error', () => {});
    s.end(text);
  };
  feed(3, sandboxArgs(o).join('\0') + '\0');
  feed(4, PASSWD);
  feed(5, GROUP);
  return { child };
}

/** Whether bubblewrap can make this sandbox here. `detail` is for the operator's log, not for the model. */
export interface SandboxProbe {
  ok: boolean;
  /** Why not, in words fit for the model and the log (no host paths). */
  reason?: string;
  /** bwrap's own message, for the operator. */
  detail?: string;
}

/**
 * Tries the sandbox once: runs `true` inside it with the same options every call uses. Resolves
 * (never rejects) with whether it worked — a missing bwrap, a kernel without user namespaces or a
 * workspace that cannot be mounted all come back as `ok: false`.
 */
export function probeShellSandbox(o: Pick<ShellOptions, 'cwd' | 'network' | 'env' | 'bwrapPath'>): Promise<SandboxProbe> {
  return new Promise((resolve) => {
    const { child } = spawnSandboxed(o.bwrapPath ?? 'bwrap', o, ['true']);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => void (stderr.length < 2000 && (stderr += c.toString('utf8'))));
    child.stdout!.resume();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: err.code === 'ENOENT' ? 'bubblewrap (bwrap) is not installed' : `bubblewrap (bwrap) cannot be started (${err.code ?? 'error'})`, detail: err.message });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ ok: true });
      resolve({ ok: false, reason: `bubblewrap (bwrap) could not create the sandbox (${signal ? `killed by ${signal}` : `exit ${code}`})`, detail: stderr.trim() });
    });
  });
}

// Programs whose job is to run another program: allowing them would allow everything.
const LAUNCHERS = new Set(['env', 'xargs', 'nice', 'nohup', 'timeout', 'stdbuf', 'setsid', 'time', 'flock', 'ionice', 'taskset', 'chrt', 'watch', 'sudo', 'su', 'doas', 'unshare', 'nsenter', 'strace', 'ltrace', 'script', 'busybox', 'chroot', 'runuser', 'parallel']);
// Options of common commands that run a program they name. Long options also match GNU's
// unambiguous abbreviations (`--to-comm`), so they are compared by prefix.
const RUNS_PROGRAM: Record<string, { exact?: readonly string[]; long?: readonly string[]; short?: string }> = {
  find: { exact: ['-exec', '-execdir', '-ok', '-okdir'] },
  tar: { long: ['--to-command', '--use-compress-program', '--checkpoint-action', '--info-script', '--new-volume-script', '--rsh-command', '--rmt-command'], short: 'IF' },
  git: { exact: ['-c'], long: ['--config-env', '--upload-pack', '--receive-pack', '--exec', '--exec-path'] },
  rsync: { long: ['--rsh', '--rsync-path'], short: 'e' },
  zip: { exact: ['-TT'], long: ['--unzip-command'] },
  man: { long: ['--pager', '--html'], short: 'PH' },
};

/** The argument that would make `command` run another program, if any. */
function programArgument(command: string, argv: readonly string[]): string | undefined {
  const rule = RUNS_PROGRAM[command];
  if (!rule) return undefined;
  for (const arg of argv) {
    if (rule.exact?.includes(arg)) return arg;
    if (arg.startsWith('--') && arg.length > 2) {
      const name = arg.split('=')[0]!;
      if (name.length >= 4 && rule.long?.some((l) => l.startsWith(name))) return arg;
    } else if (rule.short && /^-[A-Za-z]/.test(arg) && [...arg.slice(1)].some((ch) => rule.short!.includes(ch))) {
      return arg;
    }
  }
  return undefined;
}

/**
 * `shell`: runs an allow-listed command with arguments inside a bubblewrap sandbox — no shell in
 * between, so no expansion or chaining. The sandbox sees the workspace (read-write, at
 * `/workspace`), /usr read-only, fresh /proc, /dev and /tmp, no network (unless `network`), no
 * host environment (only PATH, HOME, LANG and `env`). Where bwrap is missing or cannot build the
 * sandbox, every call is refused with `ERR_SANDBOX_UNAVAILABLE`: it never runs unsandboxed.
 * Off unless configured; `ask` by default. At its timeout or when the agent is cancelled the
 * sandbox is killed with everything in it (its own PID namespace); output is capped.
 */
export function shellTool(o: ShellOptions): Tool {
  const bwrap = o.bwrapPath ?? 'bwrap';
  let sandbox: Promise<SandboxProbe> | undefined;
  return {
    definition: {
      name: 'shell',
      description: `Run a command (no shell: a program and its arguments) in a sandbox: the workspace is the current folder (${SANDBOX_WORKSPACE}), ${o.network ? 'the network is reachable' : 'there is no network'}, nothing else of the machine is visible. Allowed: ${o.allowCommands.join(', ')}.`,
      parameters: { type: 'object', properties: { command: { type: 'string' }, args: { type: 'array', items: { type: 'string' } } }, required: ['command'] },
    },
    idempotent: false,
    destructive: true,
    defaultPolicy: 'ask',
    timeoutMs: o.timeoutMs,
    async run(args, { signal }) {
      const a = objectArgs(args, 'shell');
      const command = stringArg(a, 'command', 'shell');
      if (a.args !== undefined && !(Array.isArray(a.args) && a.args.every((x) => typeof x === 'string'))) {
        throw new ToolError(ToolErrorCode.InvalidArguments, "shell: 'args' must be an array of strings");
      }
      const argv = (a.args as string[] | undefined) ?? [];
      if (!o.allowCommands.includes(command)) throw new ToolError(ToolErrorCode.CommandNotAllowed, `command '${command}' is not allowed (allowed: ${o.allowCommands.join(', ') || 'none'})`);
      // `env` alone only prints the environment; with arguments it runs a program.
      if (LAUNCHERS.has(command) && !(command === 'env' && argv.length === 0)) throw new ToolError(ToolErrorCode.CommandNotAllowed, `command '${command}' runs other programs and is never allowed; ask for the program itself to be allowed`);
      const bad = programArgument(command, argv);
      if (bad !== undefined) throw new ToolError(ToolErrorCode.CommandNotAllowed, `'${command} ${bad}' would run another program; that is not allowed — run an allowed command directly`);
      if (argv.some((x) => x.includes('\0'))) throw new ToolError(ToolErrorCode.InvalidArguments, 'shell: arguments cannot contain NUL characters');
      const ready = await (sandbox ??= probeShellSandbox({ ...o, bwrapPath: bwrap }));
      if (!ready.ok) {
        throw new ToolError(
          ToolErrorCode.SandboxUnavailable,
          `shell is refused on this runner: ${ready.reason}. Commands run only inside the sandbox; the operator must install bubblewrap (Debian: apt-get install bubblewrap) and allow user namespaces`,
        );
      }
      return new Promise((resolve, reject) => {
        const { child } = spawnSandboxed(bwrap, o, [command, ...argv]);
        let out = '';
        let capped = false;
        const take = (chunk: Buffer) => {
          if (out.length < o.maxOutputBytes) out += chunk.toString('utf8');
          if (out.length > o.maxOutputBytes) ((out = out.slice(0, o.maxOutputBytes)), (capped = true));
        };
        child.stdout!.on('data', take);
        child.stderr!.on('data', take);
        let why: ToolError | undefined;
        // Killing bwrap kills the sandbox's init (--die-with-parent), and with it the kernel kills
        // every process in the sandbox's PID namespace: nothing a command started survives.
        const kill = (err: ToolError) => {
          why ??= err;
          child.kill('SIGKILL');
        };
        const timer = setTimeout(() => kill(new ToolError(ToolErrorCode.Timeout, `'${command}' ran longer than ${o.timeoutMs} ms and was killed`)), o.timeoutMs);
        const onAbort = () => kill(new ToolError(ToolErrorCode.Cancelled, `'${command}' was cancelled`));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
        child.once('error', (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          reject(new ToolError(ToolErrorCode.SandboxUnavailable, `cannot start the sandbox for '${command}' (${err.code ?? 'error'})`));
        });
        child.once('close', (code) => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          if (why) return reject(why);
          // bwrap's own complaints could name the workspace's host path: show the sandbox's instead.
          if (code !== 0) return reject(new ToolError(ToolErrorCode.CommandFailed, `'${command}' exited ${code}: ${out.slice(-2000).split(o.cwd).join(SANDBOX_WORKSPACE)}`));
          resolve({ exitCode: code, output: out, truncated: capped });
        });
      });
    },
  };
}
