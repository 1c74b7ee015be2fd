import { openBucket, type ErrandConnection, type KV } from '@errand/nats';
import {
  CONTENT_TYPE_HEADER,
  createSubjects,
  decodeMessage,
  decodeRecord,
  EVENT_MESSAGE_KINDS,
  Header,
  isEndingEvent,
  resourceNames,
  type AgentRecord,
  type Logger,
  type ProgressEvent,
} from '@errand/protocols';
import { isTerminal, type ProgressLine, type ProgressModel } from './progress.js';

export interface FollowOptions {
  conn: ErrandConnection;
  prefix: string;
  /** Fed with every record and event of the model's root agent and of its descendants. */
  model: ProgressModel;
  /**
   * `true`: replay, then follow until the root agent ends. `false`: stop as soon as what is stored
   * now has been replayed (records are read once).
   */
  live: boolean;
  /** Called once per event (repeats dropped), after it was folded into the model, with its log lines. */
  onEvent?: (event: ProgressEvent, lines: ProgressLine[]) => void;
  /** Called for each newer record of any agent of the tree, after it was folded into the model. */
  onRecord?: (record: AgentRecord, lines: ProgressLine[]) => void;
  /** Stops following (the promise then resolves; check `signal.aborted`). */
  signal?: AbortSignal;
  /**
   * How long to wait for the root's last events once its record says it ended: the record is
   * committed before its events are published, and a host that crashed in between publishes them
   * only when the agent is next touched. Default 3000 ms.
   */
  endGraceMs?: number;
  logger: Logger;
}

/** What is followed of one agent. */
interface Tracker {
  caughtUp: boolean;
  recordLoaded: boolean;
  revision: number;
  close(): Promise<void>;
}

/**
 * Replays an agent's progress events from the events stream (an ordered consumer from the first
 * message, filtered to the agent) so that a late watcher sees the whole history, reads its record,
 * and — when `live` — follows both until the agent ends. Child agents found in records and in
 * journaled `goal` commands are followed the same way, nested in the model.
 *
 * Resolves when the root agent ended and every followed agent's stored events were replayed
 * (`live`), when everything stored was replayed (not `live`), or when `signal` aborted. Rejects
 * when the stream or bucket cannot be read.
 */
export async function followAgent(o: FollowOptions): Promise<void> {
  const names = resourceNames(o.prefix);
  const subjects = createSubjects(o.prefix);
  const kv: KV = await openBucket(o.conn, names.buckets.agents);
  const { model } = o;
  const trackers = new Map<string, Tracker>();
  const seen = new Set<string>();
  let rootEnded = false;
  let stopped = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let finish!: () => void;
  let fail!: (err: unknown) => void;
  const finished = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });

  const settled = () => [...model.agents.keys()].every((id) => trackers.get(id)?.caughtUp && trackers.get(id)?.recordLoaded);
  const check = () => {
    if (stopped) return;
    if (o.signal?.aborted || ((rootEnded || !o.live) && settled())) {
      stopped = true;
      finish();
    }
  };

  const applyRecord = (t: Tracker, revision: number, data: Uint8Array) => {
    if (revision <= t.revision) return;
    t.revision = revision;
    let r: AgentRecord;
    try {
      r = decodeRecord(data);
    } catch (err) {
      o.logger.warn({ err }, 'unreadable agent record');
      return;
    }
    const lines = model.applyRecord(r);
    o.onRecord?.(r, lines);
    if (!stopped && r.agentId === model.rootId && isTerminal(r.status) && !rootEnded && graceTimer === undefined) {
      graceTimer = setTimeout(() => {
        rootEnded = true;
        check();
      }, o.endGraceMs ?? 3000);
    }
    trackNew();
  };

  const applyEvent = (e: ProgressEvent) => {
    const lines = model.applyEvent(e);
    o.onEvent?.(e, lines);
    // The ending event (done, failed, or the state that says cancelled) is the agent's last: hosts
    // publish it after the rest of its step (events read both as msgpack and as JSON, by Content-Type).
    if (e.agentId === model.rootId && isEndingEvent(e)) rootEnded = true;
    trackNew();
  };

  const track = async (agentId: string): Promise<void> => {
    const t: Tracker = { caughtUp: false, recordLoaded: false, revision: 0, close: async () => {} };
    trackers.set(agentId, t);
    // The consumer is created (and its backlog counted) before anything is read, so nothing
    // published from here on is missed, and "caught up" means every message stored at this moment.
    const consumer = await o.conn.js.consumers.get(names.streams.events, { filter_subjects: subjects.agentEventAll(agentId) });
    const backlog = (await consumer.info(true)).num_pending;
    const messages = await consumer.consume();
    const watch = o.live ? await kv.watch({ key: agentId }) : undefined;
    t.close = async () => {
      watch?.stop();
      await messages.close();
      await consumer.delete().catch(() => false);
    };
    // Found just as following ended: the close above may have run before this one was ready.
    if (stopped) return t.close();
    const first = await kv.get(agentId).catch(() => null);
    if (first && first.operation === 'PUT') applyRecord(t, first.revision, first.value);
    t.recordLoaded = true;
    if (backlog === 0) t.caughtUp = true;
    check();
    if (watch) {
      void (async () => {
        for await (const e of watch) if (e.operation === 'PUT') applyRecord(t, e.revision, e.value);
      })().catch(fail);
    }
    void (async () => {
      let delivered = 0;
      for await (const m of messages) {
        delivered++;
        const id = m.headers?.get(Header.MsgId) || `seq:${m.seq}`;
        if (!seen.has(id)) {
          seen.add(id);
          try {
            applyEvent(decodeMessage(m.data, { contentType: m.headers?.get(CONTENT_TYPE_HEADER), expect: EVENT_MESSAGE_KINDS }));
          } catch (err) {
            o.logger.warn({ err, subject: m.subject }, 'unreadable progress event');
          }
        }
        if (!t.caughtUp && (delivered >= backlog || m.info.pending === 0)) t.caughtUp = true;
        check();
      }
    })().catch(fail);
  };

  const trackNew = () => {
    if (stopped) return;
    for (const id of model.agents.keys()) if (!trackers.has(id)) track(id).catch(fail);
  };

  const onAbort = () => check();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    trackNew();
    await finished;
  } finally {
    stopped = true;
    clearTimeout(graceTimer);
    o.signal?.removeEventListener('abort', onAbort);
    await Promise.all([...trackers.values()].map((t) => t.close().catch(() => {})));
  }
  // The record is the truth at the end: fold in the latest of each (a watch may lag the events).
  for (const [id, t] of trackers) {
    const e = await kv.get(id).catch(() => null);
    if (e && e.operation === 'PUT') applyRecord(t, e.revision, e.value);
  }
}
