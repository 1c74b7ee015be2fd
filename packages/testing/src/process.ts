import { spawn } from 'node:child_process';

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child process whose output a test can read and await. */
export interface TestProcess {
  readonly pid: number | undefined;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the first stdout or stderr line matching `pattern`; rejects if the process exits first or after `timeoutMs`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ProcessExit>;
  signal(signal: NodeJS.Signals): void;
}

export interface StartProcessOptions {
  env: Record<string, string | undefined>;
  cwd: string;
}

/**
 * Starts `command args` with piped output (stdin closed, as in CI). An Errand service or `errand up`
 * started here stops within a second of this test process's end (`ERRAND_WATCH_PID`, unless `env`
 * names another), so a test file killed at its timeout leaves no service running behind it.
 */
export function startProcess(command: string, args: readonly string[], options: Partial<StartProcessOptions> = {}): TestProcess {
  const child = spawn(command, args, {
    env: { ERRAND_WATCH_PID: String(process.pid), ...(options.env ?? process.env) },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const watchers = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  const lines: string[] = [];
  const feed = (chunk: string, into: 'out' | 'err') => {
    if (into === 'out') out += chunk;
    else err += chunk;
    for (const line of chunk.split('\n')) {
      lines.push(line);
      for (const w of watchers) {
        if (w.pattern.test(line)) {
          watchers.delete(w);
          w.resolve(line);
        }
      }
    }
  };
  child.stdout.setEncoding('utf8').on('data', (c: string) => feed(c, 'out'));
  child.stderr.setEncoding('utf8').on('data', (c: string) => feed(c, 'err'));
  const exited = new Promise<ProcessExit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));

  return {
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    signal: (sig) => {
      child.kill(sig);
    },
    waitForLine(pattern, timeoutMs = 30_000) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const watcher = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          watchers.delete(watcher);
          reject(new Error(`no output line matched ${pattern} within ${timeoutMs} ms.\nstdout:\n${out}\nstderr:\n${err}`));
        }, timeoutMs);
        watchers.add(watcher);
        void exited.then((e) => {
          if (!watchers.has(watcher)) return;
          watchers.delete(watcher);
          clearTimeout(timer);
          reject(new Error(`process exited (${e.code ?? e.signal}) before printing ${pattern}.\nstdout:\n${out}\nstderr:\n${err}`));
        });
      });
    },
  };
}

/** Runs a command to completion and returns its exit and output. */
export async function runProcess(
  command: string,
  args: readonly string[],
  options: Partial<StartProcessOptions> = {},
): Promise<ProcessExit & { stdout: string; stderr: string }> {
  const p = startProcess(command, args, options);
  const exit = await p.exited;
  return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
}
