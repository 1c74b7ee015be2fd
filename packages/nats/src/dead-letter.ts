import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { Header, messageIds, type Subjects } from '@errand/protocols';

/** Room kept for the dead-letter headers when the original body is close to max_payload. */
const HEADER_ROOM = 4096;

/** The message that could not be processed, as a consumer saw it. */
export interface DeadMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers?: MsgHdrs | undefined;
  readonly stream?: string | undefined;
  readonly seq?: number | undefined;
  readonly deliveries?: number | undefined;
}

/** Why: a stable code and words a person can act on. */
export interface DeadLetterReason {
  readonly code: string;
  readonly message: string;
  readonly agentId?: string | undefined;
}

export interface DeadLetterTarget {
  readonly js: JetStreamClient;
  readonly subjects: Subjects;
  /** Who gives up on the message (a service or consumer name): the last token of the DLQ subject. */
  readonly origin: string;
  /** The server's max_payload, to cut a body that would not fit beside the headers. */
  readonly maxPayload: number;
}

/** Builds a {@link DeadMessage} from a JetStream message. */
export function deadMessageOf(msg: JsMsg): DeadMessage {
  return {
    subject: msg.subject,
    data: msg.data,
    headers: msg.headers,
    stream: msg.info.stream,
    seq: msg.seq,
    deliveries: msg.info.deliveryCount,
  };
}

/**
 * Publishes the original bytes to `<prefix>.dlq.<origin>` with the reason and provenance in
 * `Errand-Dead-Letter-*` headers, and waits for the stream to store it. A repeat for the same
 * stream sequence is de-duplicated, so a crash before the caller acks does not double it.
 */
export async function deadLetter(target: DeadLetterTarget, message: DeadMessage, reason: DeadLetterReason): Promise<void> {
  const h = natsHeaders();
  h.set(Header.DeadLetterReason, oneLine(reason.message));
  h.set(Header.DeadLetterCode, reason.code);
  h.set(Header.DeadLetterSubject, message.subject);
  h.set(Header.DeadLetterConsumer, target.origin);
  h.set(Header.DeadLetterAt, new Date().toISOString());
  if (reason.agentId) h.set(Header.DeadLetterAgentId, reason.agentId);
  if (message.stream) h.set(Header.DeadLetterStream, message.stream);
  if (message.seq !== undefined) h.set(Header.DeadLetterSequence, String(message.seq));
  if (message.deliveries !== undefined) h.set(Header.DeadLetterDeliveries, String(message.deliveries));
  const contentType = message.headers?.get(Header.ContentType);
  if (contentType) h.set(Header.ContentType, contentType);

  let data = message.data;
  const room = target.maxPayload - HEADER_ROOM;
  if (data.byteLength > room) {
    h.set(Header.DeadLetterTruncated, String(data.byteLength));
    data = data.subarray(0, Math.max(0, room));
  }
  const msgID =
    message.stream !== undefined && message.seq !== undefined ? messageIds.deadLetter(target.origin, message.stream, message.seq) : undefined;
  await target.js.publish(target.subjects.dlq(target.origin), data, { headers: h, ...(msgID ? { msgID } : {}) });
}

/** Header values are single lines. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 2000);
}
