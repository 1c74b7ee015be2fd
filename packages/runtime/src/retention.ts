import { CodecError, createSubjects, Header, resourceNames, silentLogger, TERMINAL_STATUSES, type AgentStatus, type Logger, type Subjects } from '@errand/protocols';
import { isRevisionConflict, openBucket, openObjectStore, purgeOldKvMarkers, readStoredRecord, type ErrandConnection, type KV, type ObjectStore } from '@errand/nats';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** How long finished agents are kept when nothing else is configured. */
export const DEFAULT_RETENTION_MS = 30 * DAY;
/** How often a host sweeps when nothing else is configured. */
export const DEFAULT_GC_INTERVAL_MS = HOUR;

/**
 * A finished agent's last events (its final journal entry, `done`/`failed`, its new state) are
 * published just after its record is committed. An agent that ended less than this long ago is
 * removed only once they are stored, so that none arrives after its journal was purged. Past this,
 * a host must have crashed between commit and publish, and the agent goes anyway.
 */
const SETTLE_MS = MINUTE;

/** What {@link parseDuration} accepts, for error messages. */
export const DURATION_FORMAT = "a number with a unit — '30d', '12h', '45m', '90s' — or a whole number of milliseconds";

const UNITS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY };

/**
 * Reads a duration: `30d`, `12h`, `45m`, `90s`, `250ms` (a non-negative number, decimals allowed,
 * with a unit) or a plain whole number of milliseconds. Returns milliseconds (rounded). Throws
 * `RangeError` saying what is expected; callers at the edge wrap it in their own error.
 */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  const [, amount = '', unit] = match ?? [];
  if (!match || (unit === undefined && !/^\d+$/.test(amount))) {
    throw new RangeError(`expected ${DURATION_FORMAT}, got ${JSON.stringify(text)}`);
  }
  const ms = Math.round(Number(amount) * UNITS[unit ?? 'ms']!);
  if (!Number.isSafeInteger(ms)) throw new RangeError(`the duration ${JSON.stringify(text)} is too long`);
  return ms;
}

/** How far a sweep has got: records read, then agents removed. */
export interface GcProgress {
  scanned: number;
  removed: number;
}

export interface GcOptions {
  conn: ErrandConnection;
  /** Subject prefix of the deployment. */
  prefix: string;
  /** Finished agents whose record was last updated longer ago than this are removed (0: every finished agent). */
  olderThanMs: number;
  /** The clock (epoch ms); default `Date.now()`. */
  now: number;
  /** Decide, report, remove nothing. */
  dryRun: boolean;
  logger: Logger;
  /** Called after each record read and each agent removed. */
  onProgress: (progress: GcProgress) => void;
  /** Stops the sweep between two agents; what was removed until then is reported. */
  signal: AbortSignal | undefined;
  /** Records read (and agents removed) at once. */
  concurrency: number;
  /** Delete markers of records older than this are purged from the bucket (default 30 min). */
  markerAgeMs: number;
}

export interface GcResult {
  /** Agent records read. */
  scanned: number;
  /** The agents removed (with `dryRun`: those that would be). */
  removed: string[];
  /** Agents left: running or waiting, finished too recently, or tied to a running relative. */
  kept: number;
}

export function defaultGcOptions(): Omit<GcOptions, 'conn' | 'olderThanMs'> {
  return { prefix: 'errand', now: Date.now(), dryRun: false, logger: silentLogger, onProgress: () => {}, signal: undefined, concurrency: 16, markerAgeMs: 30 * 60 * 1000 };
}

/** What a sweep remembers of one record: enough to decide, and the revision to delete it by. */
interface Seen {
  revision: number;
  status: AgentStatus;
  updatedAt: number;
  parent: string | undefined;
  children: string[];
  /** The events of the last step: subject and `Nats-Msg-Id`. */
  lastEvents: { subject: string; msgId: string }[];
}

/**
 * Removes finished agents: an agent goes only when its status is terminal (done, failed, cancelled),
 * its record was last updated before `now - olderThanMs`, its parent (if any) is gone or finished,
 * and none of its children is still running (a running child reports to its parent when it ends).
 * A running, waiting or paused agent is never touched.
 *
 * Removal is, per agent: delete its record with a revision check (a record that changed since it
 * was read is skipped), then purge its journal and progress events from the events stream and
 * whatever still waits in its inbox (by the subject filters of exactly its id, so an agent whose id
 * is a prefix of another's keeps its own), then delete its large tool results from the results
 * object store (named `<agentId>.<step>.<n>`; hashed names cannot be attributed and expire by the
 * store's TTL). Several hosts may sweep at once: the revision check lets one of them remove each
 * agent; purging twice is harmless.
 *
 * Throws what NATS throws (an unreachable server, a missing bucket); an agent whose removal failed
 * half-way is retried by the next sweep only if its record is still there.
 */
export async function collectGarbage(options: Pick<GcOptions, 'conn' | 'olderThanMs'> & Partial<GcOptions>): Promise<GcResult> {
  const o = { ...defaultGcOptions(), ...options };
  if (!Number.isFinite(o.olderThanMs) || o.olderThanMs < 0) throw new RangeError(`olderThanMs must be 0 or more, got ${o.olderThanMs}`);
  const names = resourceNames(o.prefix);
  const subjects = createSubjects(o.prefix);
  const log = o.logger.child({ component: 'gc' });
  const agents = await openBucket(o.conn, names.buckets.agents);
  const progress: GcProgress = { scanned: 0, removed: 0 };

  // Pass 1: read every record. Parents and children must be known before anything is decided.
  const seen = new Map<string, Seen>();
  const unreadable = new Set<string>();
  const ids: string[] = [];
  for await (const id of await agents.keys()) ids.push(id);
  await inBatches(ids, o.concurrency, o.signal, async (id) => {
    // A record this build cannot read (a newer Errand wrote it) is not ours to judge.
    const read = await readStoredRecord(agents, id).catch((err: unknown) => {
      if (err instanceof CodecError) return err;
      throw err;
    });
    if (read === undefined) return;
    if (read instanceof CodecError) {
      unreadable.add(id);
      log.warn({ agentId: id, err: read.message }, 'agent record unreadable; kept');
    } else {
      const { record: r, revision } = read;
      seen.set(id, {
        revision,
        status: r.status,
        updatedAt: r.updatedAt,
        parent: r.parent?.agentId,
        children: Object.values(r.children).map((c) => c.agentId),
        lastEvents: r.outbox.filter((e) => isEventSubject(subjects, e.subject)).map((e) => ({ subject: e.subject, msgId: e.msgId })),
      });
    }
    progress.scanned++;
    o.onProgress({ ...progress });
  });

  // Decisions need every record: an agent whose parent was not read yet would look orphaned.
  if (o.signal?.aborted) return { scanned: progress.scanned, removed: [], kept: progress.scanned };

  // Terminal is final (a step never changes a finished agent), so these decisions hold while we remove.
  const cutoff = o.now - o.olderThanMs;
  const finished = (id: string | undefined) => {
    if (id === undefined) return true;
    const a = seen.get(id);
    return a === undefined ? !unreadable.has(id) : TERMINAL_STATUSES.has(a.status);
  };
  const doomed = [...seen].filter(
    ([, a]) => TERMINAL_STATUSES.has(a.status) && a.updatedAt < cutoff && finished(a.parent) && a.children.every((c) => finished(c)),
  );

  const removed: string[] = [];
  if (o.dryRun) {
    removed.push(...doomed.map(([id]) => id));
  } else if (doomed.length > 0) {
    const jsm = await o.conn.jsm();
    const results = await resultObjectsByAgent(o.conn, names.objectStores.results, log);
    await inBatches(doomed, o.concurrency, o.signal, async ([id, a]) => {
      if (a.updatedAt >= o.now - SETTLE_MS && !(await allStored(jsm, names.streams.events, a.lastEvents))) {
        log.debug({ agentId: id }, 'agent ended a moment ago and its last events are not stored yet; kept for the next sweep');
        return;
      }
      if (!(await deleteRecord(agents, id, a.revision))) {
        log.debug({ agentId: id }, 'agent record changed or vanished while being removed; skipped');
        return;
      }
      await jsm.streams.purge(names.streams.events, { filter: subjects.agentEventAll(id) });
      await jsm.streams.purge(names.streams.inbox, { filter: subjects.agentInAll(id) });
      for (const name of results.objects.get(id) ?? []) await results.store?.delete(name);
      removed.push(id);
      progress.removed++;
      o.onProgress({ ...progress });
    });
  }
  if (!o.dryRun && !o.signal?.aborted) {
    // The markers removed records left: keys read in pass 1, less the ones removed just now, are live.
    const liveKeys = new Set(ids);
    for (const id of removed) liveKeys.delete(id);
    await purgeOldKvMarkers(o.conn, names.buckets.agents, { liveKeys, olderMs: o.markerAgeMs, now: o.now, signal: o.signal }).catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, 'could not purge old delete markers of agent records; the next sweep tries again'),
    );
  }
  return { scanned: progress.scanned, removed, kept: progress.scanned - removed.length };
}


function isEventSubject(subjects: Subjects, subject: string): boolean {
  try {
    return subjects.parse(subject).type === 'agent.ev';
  } catch {
    return false;
  }
}

/** True when the last message stored on each subject is the one with that `Nats-Msg-Id`. */
async function allStored(jsm: Awaited<ReturnType<ErrandConnection['jsm']>>, stream: string, events: Seen['lastEvents']): Promise<boolean> {
  for (const e of events) {
    const stored = await jsm.streams.getMessage(stream, { last_by_subj: e.subject }).catch(() => null);
    if (stored?.header?.get(Header.MsgId) !== e.msgId) return false;
  }
  return true;
}

/** Deletes a record only at the revision it was read at. False when it changed or is gone. */
async function deleteRecord(agents: KV, id: string, revision: number): Promise<boolean> {
  try {
    await agents.delete(id, { previousSeq: revision });
    return true;
  } catch (err) {
    if (isRevisionConflict(err)) return false;
    throw err;
  }
}

/**
 * The results object store's objects by the agent whose command produced them. Their names are the
 * command keys `<agentId>:<step>:<n>` with `:` turned into `.` (see `effectKey` in @errand/protocols).
 */
async function resultObjectsByAgent(
  conn: ErrandConnection,
  bucket: string,
  log: Logger,
): Promise<{ store: ObjectStore | undefined; objects: Map<string, string[]> }> {
  const objects = new Map<string, string[]>();
  let store: ObjectStore;
  try {
    store = await openObjectStore(conn, bucket);
  } catch (err) {
    // A deployment provisioned before the store existed has no large results to remove.
    log.debug({ bucket, err: (err as Error).message }, 'no results object store; skipping large results');
    return { store: undefined, objects };
  }
  for (const info of await store.list()) {
    // `h.<sha-256>`: a key that needed hashing; whose it is cannot be told (the TTL removes it).
    if (/^h\.[0-9a-f]{64}$/.test(info.name)) continue;
    const agentId = info.name.split('.')[0]!;
    objects.set(agentId, [...(objects.get(agentId) ?? []), info.name]);
  }
  return { store, objects };
}

/** Runs `fn` over `items`, `concurrency` at a time, stopping between batches once `signal` aborts. */
async function inBatches<T>(items: readonly T[], concurrency: number, signal: AbortSignal | undefined, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length && !signal?.aborted; i += concurrency) {
    await Promise.all(items.slice(i, i + concurrency).map(fn));
  }
}
