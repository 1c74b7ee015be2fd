import { metrics, watchConsumerPending } from '@errand/telemetry';
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import {
  CodecError,
  decodeMessage,
  ErrandError,
  Header,
  silentLogger,
  type Logger,
  type Message,
  type MessageKind,
} from '@errand/protocols';
import { deadLetter, deadMessageOf, type DeadLetterTarget } from './dead-letter.js';

export const ConsumeErrorCode = {
  /** The handler threw on every one of `maxDeliveries` attempts. */
  HandlerFailed: 'ERR_HANDLER_FAILED',
} as const;

export interface ConsumeMessagesOptions<K extends MessageKind> {
  /** A JetStream pull consumer (`js.consumers.get(stream, name)`). */
  consumer: Consumer;
  /** The message kinds this consumer accepts; anything else is dead-lettered. */
  expect: K | readonly K[];
  /** Where undecodable, invalid or repeatedly failing messages go. */
  deadLetter: DeadLetterTarget;
  /**
   * Handles one valid message. Returning acks it; throwing naks it for redelivery after
   * `retryDelayMs`, until `maxDeliveries`, after which it is dead-lettered with the error.
   * The handler may ack, nak or heartbeat (`msg.working()`) itself.
   */
  handle(message: Message<K>, msg: JsMsg): Promise<void>;
  /**
   * Checks a decoded message against its envelope (for example that the subject names the same
   * agent as the body); throwing a {@link CodecError} dead-letters it at once.
   */
  validate?(message: Message<K>, msg: JsMsg): void;
  /** How many messages are handled at once. */
  concurrency: number;
  maxDeliveries: number;
  /**
   * Failures that must never dead-letter the message: it is retried (with the back-off) until it
   * can be handled — for one that another process may handle, such as a machine version this host
   * lacks during a rolling upgrade.
   */
  keepRetrying?(err: unknown): boolean;
  /**
   * Failures that pass (JetStream without a leader while a node restarts, a timeout): the handler
   * is tried again here, with back-off, while the message is heartbeated, for up to
   * `retryInPlaceMs` — instead of a nak that leaves its redelivery to the server (nats-server
   * 2.9.10 was seen never to redeliver a message nak'ed with a delay across a node restart).
   * After that time it is nak'ed as any failure. Unset: none is retried in place.
   */
  retryInPlace?(err: unknown): boolean;
  /** How long a message is retried in place; default 30 s. */
  retryInPlaceMs?: number;
  /** Delay before a failed message is redelivered, by how often it was delivered so far. */
  retryDelayMs(deliveries: number): number;
  /**
   * While a handler runs, tell JetStream every this many ms that it is still being worked on
   * (`msg.working()`), so a consumer can have a short ack wait — a dead process's messages come
   * back soon — without a slow handler's message going to another process meanwhile. Unset: none.
   */
  heartbeatMs?: number;
  /**
   * Creates the durable consumer again when the server says it is gone (deleted, or lost with a
   * server's store): the pull loop keeps asking for it and resumes once it exists. Unset: the
   * loop waits for someone else to create it.
   */
  recreate?(): Promise<unknown>;
  logger: Logger;
}

/**
 * Whether a failure passes: anything NATS or JetStream threw on the way (no leader while a node
 * restarts, a timeout, a consumer offline), not an {@link ErrandError} (a refusal, a conflict this
 * code decided) nor a bug (a TypeError and its kin). Worth trying again as it is.
 */
export function isPassingFailure(err: unknown): boolean {
  return !(err instanceof ErrandError) && !(err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError);
}

/** nats.js errors that say the server or JetStream did not answer (yet), not that it refused. */
const UNAVAILABLE_NAMES = new Set(['TimeoutError', 'RequestError', 'NoResponders', 'NoRespondersError', 'ConnectionError', 'JetStreamNotEnabled', 'JetStreamStatusError']);
const UNAVAILABLE_API = /temporarily unavailable|not enabled|no suitable peers|insufficient resources|leader|offline|timeout/i;

/**
 * Whether `err` (or its cause) is NATS or JetStream not answering yet — a timeout, no responders,
 * JetStream not enabled or without a leader — as opposed to a refusal (a permission, a bad
 * request) or any other failure. Narrower than {@link isPassingFailure}: for deciding to wait at
 * start-up, where anything else should stop the process at once.
 */
export function isNatsUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (UNAVAILABLE_NAMES.has(e.name)) return true;
    if (e.name === 'JetStreamApiError' || e.name === 'JetStreamError') return (e as { status?: unknown }).status === 503 || UNAVAILABLE_API.test(e.message);
  }
  return false;
}

export function defaultConsumeMessagesOptions(): Pick<
  ConsumeMessagesOptions<MessageKind>,
  'concurrency' | 'maxDeliveries' | 'retryDelayMs' | 'logger'
> {
  return {
    concurrency: 1,
    maxDeliveries: 5,
    retryDelayMs: (deliveries) => Math.min(30_000, 500 * 2 ** (deliveries - 1)),
    logger: silentLogger,
  };
}

/** A running consumer loop. */
export interface MessageConsumer {
  /** Stops pulling, lets in-flight handlers finish, and resolves when all are done. */
  stop(): Promise<void>;
  /** Resolves when the loop has ended (after `stop()` or when the consumer goes away). */
  readonly done: Promise<void>;
}

/**
 * Pulls messages from a consumer, validates each with the protocol codec, and hands valid ones to
 * `handle` with bounded concurrency. A message that does not decode or validate is published to
 * the dead-letter stream with the reason and acked: it is never silently dropped, and the loop
 * goes on with the next one.
 */
export async function consumeMessages<K extends MessageKind>(
  options: Pick<ConsumeMessagesOptions<K>, 'consumer' | 'expect' | 'deadLetter' | 'handle'> & Partial<ConsumeMessagesOptions<K>>,
): Promise<MessageConsumer> {
  const o = { ...defaultConsumeMessagesOptions(), ...options } as ConsumeMessagesOptions<K>;
  const logger = o.logger.child({ component: 'consumer', origin: o.deadLetter.origin });
  const pullOptions = { max_messages: Math.max(10, o.concurrency * 2) };
  let messages = await o.consumer.consume(pullOptions);
  let closing = false;
  const inflight = new Set<Promise<void>>();
  const origin = o.deadLetter.origin;
  const stopWatching = watchConsumerPending(origin, async () => (await o.consumer.info()).num_pending);
  // One ticker heartbeats every message whose handler is running (not a timer per message).
  const beating = new Set<JsMsg>();
  const ticker = o.heartbeatMs
    ? setInterval(() => {
        for (const m of beating) {
          try {
            m.working();
          } catch {
            // The connection is closed or draining: nothing to tell; an outage only buffers these.
          }
        }
      }, o.heartbeatMs)
    : undefined;
  ticker?.unref();
  // A consumer deleted under us, or not found after a leader election or a server restart: the pull
  // loop retries on its own; recreating it (one attempt at a time) lets it resume.
  // Once created again, the pull starts afresh at once (the old one would wait for missed heartbeats).
  let recreating = false;
  let restart = false;
  const watchStatus = (current: typeof messages) =>
    void (async () => {
      for await (const s of current.status()) {
        if ((s.type !== 'consumer_deleted' && s.type !== 'consumer_not_found') || recreating) continue;
        logger.warn({ status: s.type }, o.recreate ? 'the consumer is gone: creating it again' : 'the consumer is gone: waiting for it to be created again');
        if (!o.recreate) continue;
        recreating = true;
        o.recreate()
          .then(
            async () => {
              logger.info({}, 'consumer created again');
              if (!closing && current === messages) {
                restart = true;
                await current.close();
              }
            },
            (err: unknown) => logger.warn({ err }, 'could not create the consumer again; retrying when the server next says it is missing'),
          )
          .finally(() => (recreating = false));
      }
    })().catch((err: unknown) => logger.debug({ err }, 'consumer status stream ended'));

  const process = async (msg: JsMsg): Promise<void> => {
    if (msg.info.redelivered) metrics.redeliveries.inc({ consumer: origin });
    let message: Message<K>;
    try {
      message = decodeMessage<K>(msg.data, { contentType: msg.headers?.get(Header.ContentType), expect: o.expect });
      o.validate?.(message, msg);
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      await deadLetter(o.deadLetter, deadMessageOf(msg), err);
      msg.ack();
      metrics.deadLettered.inc({ consumer: origin });
      logger.warn({ subject: msg.subject, seq: msg.seq, code: err.code, agentId: err.agentId }, `dead-lettered: ${err.message}`);
      return;
    }
    if (ticker) beating.add(msg);
    try {
      const since = Date.now();
      for (let attempt = 1; ; attempt++) {
        try {
          await o.handle(message, msg);
          break;
        } catch (err) {
          if (closing || !o.retryInPlace?.(err) || Date.now() - since >= (o.retryInPlaceMs ?? 30_000)) throw err;
          const delay = Math.min(2_000, 100 * 2 ** Math.min(attempt, 5));
          logger.warn({ err: (err as Error).message, subject: msg.subject, seq: msg.seq, agentId: (message as { agentId?: string }).agentId, attempt, retryInMs: delay }, 'handler failed on a passing error; trying again here');
          if (!ticker) msg.working();
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
      msg.ack();
    } catch (err) {
      const deliveries = msg.info.deliveryCount;
      const agentId = (message as { agentId?: string }).agentId;
      if (deliveries >= o.maxDeliveries && !o.keepRetrying?.(err)) {
        const reason = {
          code: err instanceof ErrandError ? err.code : ConsumeErrorCode.HandlerFailed,
          message: `handler failed ${deliveries} times; last error: ${(err as Error).message}`,
          agentId,
        };
        await deadLetter(o.deadLetter, deadMessageOf(msg), reason);
        msg.ack();
        metrics.deadLettered.inc({ consumer: origin });
        logger.error({ err, subject: msg.subject, seq: msg.seq, agentId, deliveries }, 'handler keeps failing; dead-lettered');
      } else {
        const delay = o.retryDelayMs(deliveries);
        msg.nak(delay);
        logger.warn({ err, subject: msg.subject, seq: msg.seq, agentId, deliveries, retryInMs: delay }, 'handler failed; will retry');
      }
    } finally {
      beating.delete(msg);
    }
  };

  const loop = (async () => {
    for (;;) {
      watchStatus(messages);
      for await (const msg of messages) {
        const p: Promise<void> = process(msg)
          .catch((err: unknown) => {
            // Publishing to the DLQ failed (NATS down): leave the message unacked for redelivery.
            logger.error({ err, subject: msg.subject, seq: msg.seq }, 'could not process message; it will be redelivered');
          })
          .finally(() => inflight.delete(p));
        inflight.add(p);
        if (inflight.size >= o.concurrency) await Promise.race(inflight);
      }
      if (closing || !restart) break;
      // Closed after the consumer was created again: pull from it afresh.
      restart = false;
      messages = await o.consumer.consume(pullOptions);
    }
    await Promise.all(inflight);
  })()
    .catch((err: unknown) => {
      // The pull loop ended with an error (the connection closed under it): nothing more is taken;
      // say so rather than leave an unhandled rejection to crash the process.
      logger.error({ err }, 'the consumer stopped taking messages');
    })
    .finally(() => {
      clearInterval(ticker);
      stopWatching();
    });

  let stopping: Promise<void> | undefined;
  return {
    done: loop,
    stop: () =>
      (stopping ??= (async () => {
        closing = true;
        await messages.close();
        await loop;
      })()),
  };
}
