import { hostname } from 'node:os';
import { isRevisionConflict, openBucket, openObjectStore, type ErrandConnection } from '@errand/nats';
import {
  callHash,
  canonicalJson,
  catalogKeys,
  createSubjects,
  effectKey,
  effectKeys,
  ErrandError,
  MESSAGE_VERSION,
  patternRedactor,
  resourceNames,
  silentLogger,
  type CatalogRunner,
  type CatalogTool,
  type CommandVerifier,
  type Logger,
  type Message,
  type Redactor,
  type ToolPolicyName,
} from '@errand/protocols';
import { ToolError, type Tool, type ToolContext } from '@errand/tools';
import { startCommandWorker, type CommandWorker } from '@errand/worker';

export const ToolRunnerErrorCode = {
  /** A runner died during this non-idempotent call: it may or may not have happened. */
  EffectUncertain: 'ERR_EFFECT_UNCERTAIN',
  Internal: 'ERR_TOOL_INTERNAL',
  /** An `ask` call (by policy or by its arguments) without an approval of exactly these arguments: nothing ran. */
  ApprovalRequired: 'ERR_APPROVAL_REQUIRED',
  /** The runner's policy for the tool is `deny`: nothing ran. */
  Denied: 'ERR_TOOL_DENIED',
  /** The command names another tool than the subject it came on: nothing ran. */
  WrongTool: 'ERR_TOOL_MISMATCH',
  /** The runner was started without the deployment's verify key. */
  NoVerifyKey: 'ERR_NO_VERIFY_KEY',
} as const;

/** Per-tool settings that override the tool's own defaults. */
export interface ToolSettings {
  policy?: ToolPolicyName;
  idempotent?: boolean;
  timeoutMs?: number;
}

export interface ToolRunnerOptions {
  conn: ErrandConnection;
  prefix: string;
  tools: readonly Tool[];
  settings: Readonly<Record<string, ToolSettings>>;
  runnerId: string;
  heartbeatMs: number;
  /** Calls in flight per tool. */
  concurrency: number;
  /** Between heartbeats of a long call before JetStream gives it to another runner. */
  ackWaitMs: number;
  /** On stop, how long calls in flight may finish before they are aborted and handed back to another runner. */
  stopGraceMs: number;
  logger: Logger;
  /** Where each tool comes from, for the catalog (`mcp:<server>`); `builtin` otherwise. */
  sources?: Readonly<Record<string, string>>;
  /**
   * Removes secrets from every result and error before it is stored (object store, effects
   * ledger) or sent, so the model, the record and the journal never see them. Patterns only unless given.
   */
  redactor: Redactor;
  /** Results larger than this (JSON characters) go to the object store; the model gets a preview. */
  maxInlineResult: number;
  previewChars: number;
  /**
   * The deployment's verify key(s): every command must carry a valid host signature, or it is
   * dead-lettered and nothing runs. Required — a runner that trusted anyone able to publish on the
   * work subjects would run destructive tools for them.
   */
  verify: CommandVerifier;
}

/**
 * What the runner's own policy (its settings over the tool's defaults — not the agent's record or
 * the catalog bucket, which others can write) asks of this call: `ask` when the policy is `ask` or
 * when the arguments match the tool's `askIfArgs`.
 */
export function policyForCall(entry: Pick<CatalogTool, 'policy' | 'askIfArgs'>, args: unknown): 'auto' | 'ask' | 'deny' {
  if (entry.policy !== 'auto') return entry.policy;
  const askIf = entry.askIfArgs;
  if (askIf === undefined || args === null || typeof args !== 'object' || Array.isArray(args)) return 'auto';
  const a = args as Record<string, unknown>;
  return Object.entries(askIf).every(([k, v]) => canonicalJson(a[k]) === canonicalJson(v)) ? 'ask' : 'auto';
}

export interface ToolRunner extends AsyncDisposable {
  /** Serves this set of tools from now on (new ones start, gone ones stop; the catalog follows). */
  update(tools: readonly Tool[], sources?: Readonly<Record<string, string>>): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Serves `tools`: writes each to the catalog (`tool.<name>`), heartbeats this runner
 * (`runner.<id>`), and runs calls from `errand.work.tool.<name>` through the command worker — once
 * per idempotency key, aborted at the tool's timeout or when the agent is cancelled. Before a call
 * of a non-idempotent tool runs, a "started" mark is written; a redelivered call that finds the
 * mark but no result is not re-run blindly: the agent is told the effect is uncertain.
 */
export async function startToolRunner(options: Pick<ToolRunnerOptions, 'conn' | 'prefix' | 'tools' | 'verify'> & Partial<ToolRunnerOptions>): Promise<ToolRunner> {
  if (!(options.verify as CommandVerifier | undefined)) {
    throw new ErrandError(ToolRunnerErrorCode.NoVerifyKey, 'a tool-runner needs the deployment\'s verify key (ERRAND_VERIFY_KEY) to tell commands a host issued from forged ones; `errand creds` prints it');
  }
  const o: ToolRunnerOptions = {
    settings: {},
    runnerId: `${hostname()}-${process.pid}`,
    heartbeatMs: 5000,
    concurrency: 16,
    ackWaitMs: 3_000,
    stopGraceMs: 10_000,
    logger: silentLogger,
    maxInlineResult: 64 * 1024,
    previewChars: 4000,
    redactor: patternRedactor,
    ...options,
  };
  const { conn } = o;
  const names = resourceNames(o.prefix);
  const subjects = createSubjects(o.prefix);
  const log = o.logger.child({ component: 'tool-runner', runnerId: o.runnerId });
  const catalog = await openBucket(conn, names.buckets.tools);
  const effects = await openBucket(conn, names.buckets.effects);
  const results = await openObjectStore(conn, names.objectStores.results);

  /** A result too large for a message is stored whole; the model gets its beginning and a reference. */
  const fit = async (key: string, raw: unknown): Promise<{ output: unknown; truncated?: boolean; ref?: string }> => {
    const output = o.redactor.redactDeep(raw);
    const text = typeof output === 'string' ? output : JSON.stringify(output ?? null);
    if (text.length <= o.maxInlineResult) return { output };
    const name = effectKey(key);
    await results.putBlob({ name, description: `result of ${key}` }, new TextEncoder().encode(text));
    return { output: `${text.slice(0, o.previewChars)}… [${text.length - o.previewChars} more characters in the full result]`, truncated: true, ref: `obj://${names.objectStores.results}/${name}` };
  };

  const entryOf = (tool: Tool, source: string): CatalogTool => {
    const s = o.settings[tool.definition.name] ?? {};
    return {
      v: 1,
      definition: tool.definition,
      policy: s.policy ?? tool.defaultPolicy,
      idempotent: s.idempotent ?? tool.idempotent,
      destructive: tool.destructive,
      ...(tool.askIfArgs ? { askIfArgs: { ...tool.askIfArgs } } : {}),
      timeoutMs: s.timeoutMs ?? tool.timeoutMs,
      source,
      updatedAt: Date.now(),
    };
  };
  /** What runs under each name: looked up per call, so an updated tool takes effect at once. */
  const served = new Map<string, { tool: Tool; entry: CatalogTool; worker: CommandWorker }>();

  const beat = async () => {
    const runner: CatalogRunner = {
      v: 1,
      runnerId: o.runnerId,
      tools: [...served.keys()],
      heartbeatAt: Date.now(),
      heartbeatMs: o.heartbeatMs,
      host: hostname(),
      pid: process.pid,
    };
    await catalog.put(catalogKeys.runner(o.runnerId), JSON.stringify(runner));
  };

  const startWorker = (name: string) =>
    startCommandWorker({
      conn,
      prefix: o.prefix,
      name: `tool-${name}`,
      filterSubject: subjects.workTool(name),
      expect: 'tool.request',
      concurrency: o.concurrency,
      ackWaitMs: o.ackWaitMs,
      stopGraceMs: o.stopGraceMs,
      logger: log,
      verify: o.verify,
      execute: async (cmd, { signal, msg, log: callLog }) => {
        const current = served.get(name);
        const started = Date.now();
        const result = (outcome: { output: unknown; truncated?: boolean; ref?: string } | { error: Message<'tool.result'>['error'] & object }): Message<'tool.result'> => ({
          v: MESSAGE_VERSION,
          kind: 'tool.result',
          agentId: cmd.agentId,
          key: cmd.key,
          callId: cmd.callId,
          tool: cmd.tool,
          attempt: cmd.attempt,
          durationMs: Date.now() - started,
          ...('error' in outcome ? { error: o.redactor.redactDeep(outcome.error) } : { result: outcome }),
          at: Date.now(),
        });
        if (!current) return result({ error: { code: 'ERR_TOOL_UNAVAILABLE', message: `${name} is no longer served by this runner`, retryable: true } });
        const { tool, entry } = current;
        // The runner's own policy, checked on every call before anything runs.
        if (cmd.tool !== name) {
          callLog.warn({ tool: name, named: cmd.tool }, 'refused: the command names another tool than its subject');
          return result({ error: { code: ToolRunnerErrorCode.WrongTool, message: `a call of ${cmd.tool} arrived on ${name}'s subject; nothing ran`, retryable: false } });
        }
        const policy = policyForCall(entry, cmd.args);
        if (policy === 'deny') {
          callLog.warn({ tool: name }, 'refused: the policy is deny');
          return result({ error: { code: ToolRunnerErrorCode.Denied, message: `${name} is denied by this tool-runner's policy; nothing ran`, retryable: false } });
        }
        if (policy === 'ask') {
          const evidence = cmd.approval;
          if (evidence?.argsHash !== callHash(name, cmd.args)) {
            callLog.warn({ tool: name, evidence: evidence ? 'for other arguments' : 'none' }, 'refused: no approval of these exact arguments');
            const what = evidence ? 'carries an approval of other arguments' : 'carries no approval';
            return result({
              error: { code: ToolRunnerErrorCode.ApprovalRequired, message: `${name} runs only with a person's approval of these exact arguments; this call ${what}, so nothing ran`, retryable: false },
            });
          }
          callLog.info({ tool: name, requestId: evidence.requestId, by: evidence.by.id, channel: evidence.by.channel }, 'approved call');
        }
        if (!entry.idempotent) {
          try {
            await effects.create(effectKeys.started(cmd.key), String(Date.now()));
          } catch (err) {
            if (!isRevisionConflict(err)) throw err;
            callLog.warn({ tool: name }, 'a call that was started before is delivered again: not re-running it');
            return result({
              error: {
                code: ToolRunnerErrorCode.EffectUncertain,
                message: `the runner stopped while ${name} was running; it may or may not have taken effect, and ${name} is not safe to run twice`,
                retryable: false,
              },
            });
          }
        }
        callLog.info({ tool: name, idempotent: entry.idempotent }, 'tool call running');
        const limit = cmd.timeoutMs ?? entry.timeoutMs;
        const timeout = AbortSignal.timeout(limit);
        const callSignal = AbortSignal.any([signal, timeout]);
        // A tool that says it is still working: JetStream hears at once (the consumer's own
        // heartbeats go on regardless; a tool may also watch its own silence, as function tools can).
        const heartbeat = () => {
          try {
            msg.working();
          } catch {
            // the connection is away: the consumer's heartbeats resume with it
          }
        };
        const context: ToolContext = { signal: callSignal, key: cmd.key, heartbeat, log: callLog.child({ tool: name }) };
        try {
          return result(await fit(cmd.key, await raceAbort(tool.run(cmd.args, context), callSignal)));
        } catch (err) {
          if (signal.aborted) throw err; // cancelled or shutting down: the worker decides
          if (timeout.aborted) return result({ error: { code: 'ERR_TOOL_TIMEOUT', message: `${name} took longer than ${limit} ms and was aborted`, retryable: true } });
          if (isToolError(err)) return result({ error: err.toErrorInfo() });
          callLog.error({ err, tool: name }, 'tool failed unexpectedly');
          return result({ error: { code: ToolRunnerErrorCode.Internal, message: `${name} failed: ${(err as Error).message}`, retryable: false } });
        }
      },
    });

  let sources = o.sources ?? {};
  const update = async (tools: readonly Tool[], newSources?: Readonly<Record<string, string>>) => {
    if (newSources) sources = newSources;
    const wanted = new Map(tools.map((t) => [t.definition.name, t]));
    for (const [name, s] of served) {
      if (wanted.has(name)) continue;
      served.delete(name);
      await s.worker.stop();
      await catalog.delete(catalogKeys.tool(name)).catch(() => {});
    }
    for (const [name, tool] of wanted) {
      const entry = entryOf(tool, sources[name] ?? 'builtin');
      await catalog.put(catalogKeys.tool(name), JSON.stringify(entry));
      const existing = served.get(name);
      if (existing) served.set(name, { ...existing, tool, entry });
      else served.set(name, { tool, entry, worker: await startWorker(name) });
    }
    await beat();
  };

  await update(o.tools);
  const heartbeat = setInterval(() => void beat().catch((err: unknown) => log.warn({ err }, 'heartbeat failed')), o.heartbeatMs);
  log.info({ tools: [...served.values()].map((s) => `${s.entry.definition.name}:${s.entry.policy}`) }, 'tool runner ready');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(heartbeat);
      await Promise.all([...served.values()].map((s) => s.worker.stop()));
      await catalog.delete(catalogKeys.runner(o.runnerId)).catch(() => {});
    })());
  return { update, stop, [Symbol.asyncDispose]: stop };
}

/**
 * A failure the model should read. By its name and shape as well as its class: a module of function
 * tools brings its own copy of @errand/tools when installed apart from the runner.
 */
function isToolError(err: unknown): err is ToolError {
  if (err instanceof ToolError) return true;
  const e = err as Partial<ToolError> | null;
  return err instanceof Error && e?.name === 'ToolError' && typeof e.code === 'string' && typeof e.toErrorInfo === 'function';
}

/** Rejects when `signal` aborts even if the tool ignores it. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

