/**
 * Process helpers for the peer benchmark: free ports, servers started as children and always ended
 * with a bounded wait, and the processes of this machine's PostgreSQL cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A TCP port nothing listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A server process started by the bench, with the tail of its output for error messages. */
export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startServer(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ServerProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (b: Buffer): void => {
    tail = (tail + b.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('error', (e) => keep(Buffer.from(`\n${String(e)}\n`)));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  });
  return {
    child,
    pid: child.pid ?? -1,
    output: () => tail,
    async stop(graceMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `ready` every 100 ms until it resolves true; throws after `timeoutMs`, or as soon as `server` exits, with its output. */
export async function waitUntil(what: string, ready: () => Promise<boolean>, timeoutMs: number, server?: ServerProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server && (server.child.exitCode !== null || server.child.signalCode !== null)) throw new Error(`${what}: the process exited (${server.child.exitCode ?? server.child.signalCode}):\n${server.output()}`);
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms\n${server?.output() ?? ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Every process of the PostgreSQL cluster: the postmaster (a `postgres` process whose parent is
 * not one) and its children — background workers and the backends open right now.
 */
export function postgresPids(): number[] {
  const procs: { pid: number; ppid: number }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== 'postgres') continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      procs.push({ pid: Number(name), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) });
    } catch {
      // gone meanwhile
    }
  }
  const pg = new Set(procs.map((p) => p.pid));
  const roots = procs.filter((p) => !pg.has(p.ppid)).map((p) => p.pid);
  return procs.filter((p) => roots.includes(p.pid) || roots.includes(p.ppid)).map((p) => p.pid);
}
