import { spawn } from 'node:child_process';
import { objectArgs, stringArg, ToolError, ToolErrorCode, type Tool } from './tool.js';

export interface ShellOptions {
  /** Commands (argv[0]) that may run; nothing else does. */
  allowCommands: readonly string[];
  /** Working folder of every command. */
  cwd: string;
  timeoutMs: number;
  maxOutputBytes: number;
}

/**
 * `shell`: runs an allow-listed command with arguments — no shell in between, so no expansion or
 * chaining. Off unless configured; `ask` by default. Aborted (SIGKILL) at its timeout or when the
 * agent is cancelled; output is capped.
 */
export function shellTool(o: ShellOptions): Tool {
  return {
    definition: {
      name: 'shell',
      description: `Run a command (no shell: a program and its arguments). Allowed: ${o.allowCommands.join(', ')}.`,
      parameters: { type: 'object', properties: { command: { type: 'string' }, args: { type: 'array', items: { type: 'string' } } }, required: ['command'] },
    },
    idempotent: false,
    destructive: true,
    defaultPolicy: 'ask',
    timeoutMs: o.timeoutMs,
    async run(args, { signal }) {
      const a = objectArgs(args, 'shell');
      const command = stringArg(a, 'command', 'shell');
      const argv = Array.isArray(a.args) ? a.args.map(String) : [];
      if (!o.allowCommands.includes(command)) throw new ToolError(ToolErrorCode.CommandNotAllowed, `command '${command}' is not allowed (allowed: ${o.allowCommands.join(', ') || 'none'})`);
      return new Promise((resolve, reject) => {
        const child = spawn(command, argv, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let capped = false;
        const take = (chunk: Buffer) => {
          if (out.length < o.maxOutputBytes) out += chunk.toString('utf8');
          if (out.length > o.maxOutputBytes) ((out = out.slice(0, o.maxOutputBytes)), (capped = true));
        };
        child.stdout.on('data', take);
        child.stderr.on('data', take);
        let why: ToolError | undefined;
        const kill = (err: ToolError) => {
          why = err;
          child.kill('SIGKILL');
        };
        const timer = setTimeout(() => kill(new ToolError(ToolErrorCode.Timeout, `'${command}' ran longer than ${o.timeoutMs} ms and was killed`)), o.timeoutMs);
        const onAbort = () => kill(new ToolError(ToolErrorCode.Cancelled, `'${command}' was cancelled`));
        signal.addEventListener('abort', onAbort, { once: true });
        child.once('error', (err) => reject(new ToolError(ToolErrorCode.CommandFailed, `cannot run '${command}': ${err.message}`)));
        child.once('close', (code) => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          if (why) return reject(why);
          if (code !== 0) return reject(new ToolError(ToolErrorCode.CommandFailed, `'${command}' exited ${code}: ${out.slice(-2000)}`));
          resolve({ exitCode: code, output: out, truncated: capped });
        });
      });
    },
  };
}
