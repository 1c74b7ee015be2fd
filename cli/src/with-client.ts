import type { Command } from 'commander';
import { ClientError, ClientErrorCode, createClient, type ErrandClient } from '@errand/client';
import { ReplayError, ReplayErrorCode } from '@errand/replay';
import { connectTo, resolveTarget, type GlobalOptions } from './context.js';
import { ExitCode } from './exit-codes.js';
import { createLogger } from './logger.js';
import { CliError } from './output.js';

/** A client or replay error as the CLI reports it: an exit code that means something, and what to do. */
export function cliErrorOf(err: unknown): unknown {
  if (err instanceof ClientError) {
    const exit = err.code === ClientErrorCode.NotFound ? ExitCode.NotFound : err.code === ClientErrorCode.NoHost ? ExitCode.Unavailable : ExitCode.Failed;
    const hint =
      err.code === ClientErrorCode.NotFound ? ' (`errand ls` lists the agents)' : err.code === ClientErrorCode.NothingPending ? ` (\`errand show ${err.agentId}\` says what it waits for)` : '';
    return new CliError(exit, `${err.message}${hint}`, { cause: err });
  }
  if (err instanceof ReplayError) {
    const exit =
      err.code === ReplayErrorCode.NoSuchStep || err.code === ReplayErrorCode.EmptyJournal
        ? ExitCode.NotFound
        : err.code === ReplayErrorCode.BadExport || err.code === ReplayErrorCode.CannotFork
          ? ExitCode.Usage
          : ExitCode.Failed;
    return new CliError(exit, err.message, { cause: err });
  }
  return err;
}

/** Runs `fn` with a client of the deployment the command names; errors become {@link cliErrorOf}'s. */
export async function withClient<T>(cmd: Command, fn: (client: ErrandClient, opts: GlobalOptions) => Promise<T>): Promise<T> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const target = await resolveTarget(opts);
  const conn = await connectTo(target, createLogger(opts.logLevel ?? 'error'));
  try {
    return await fn(await createClient(conn, target.prefix), opts);
  } catch (err) {
    throw cliErrorOf(err);
  } finally {
    await conn.close();
  }
}
