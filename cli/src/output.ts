import { ErrandError } from '@errand/protocols';
import { NatsErrorCode } from '@errand/nats';
import { ExitCode } from './exit-codes.js';
import { terminalSafe } from './terminal-safe.js';

/** Thrown by a command to end with a specific exit code and message. */
export class CliError extends ErrandError {
  readonly exitCode: ExitCode;

  constructor(exitCode: ExitCode, message: string, options?: { cause?: unknown }) {
    super('ERR_CLI', message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

const unavailable = new Set<string>([NatsErrorCode.ConnectFailed, NatsErrorCode.JetStreamUnavailable, NatsErrorCode.ServerNotFound]);

/** A service setting that cannot be used (`ConfigError` of @errand/service): the message says which and why. */
function isConfigError(err: unknown): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === 'ERR_CONFIG';
}

/** The server answered, but the stream or bucket is not there: nothing provisioned under that prefix. */
function isMissingResource(err: unknown): boolean {
  return err instanceof Error && (err.name === 'StreamNotFoundError' || /stream not found|bucket not found/i.test(err.message)) && !(err instanceof ErrandError);
}

/** The exit code for an error that reached the command's edge. */
export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (isConfigError(err)) return ExitCode.Usage;
  if (isMissingResource(err)) return ExitCode.Unavailable;
  if (err instanceof ErrandError && unavailable.has(err.code)) return ExitCode.Unavailable;
  return ExitCode.Failed;
}

/** Prints an error once, at the edge: as JSON with `--json`, as a sentence otherwise. */
export function printError(err: unknown, json: boolean): void {
  if (isMissingResource(err)) {
    err = new CliError(
      ExitCode.Unavailable,
      `this NATS server has no Errand ${(err as Error).name === 'StreamNotFoundError' ? 'stream' : 'bucket'} for the prefix (${(err as Error).message}): start \`errand up\`, run \`errand provision\`, or check --server/--prefix`,
    );
  }
  // A CliError wrapping a typed error reports the wrapped code (ERR_AGENT_NOT_FOUND beats ERR_CLI).
  const source = err instanceof CliError && err.cause instanceof ErrandError ? err.cause : err;
  const code = source instanceof ErrandError || isConfigError(source) ? (source as { code: string }).code : 'ERR_UNEXPECTED';
  const message = err instanceof Error ? err.message : String(err);
  if (json) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: { code, message } })}\n`);
  } else {
    // Messages can quote what an agent or a server said: shown, never obeyed by the terminal.
    process.stderr.write(`errand: ${terminalSafe(message, { multiline: true })}${code === 'ERR_UNEXPECTED' && err instanceof Error && err.stack ? `\n${terminalSafe(err.stack, { multiline: true })}` : ''}\n`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
