import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { encodeMessage, Header, type CommandSigner, type MessageInput, type MessageKind, type WireFormat } from '@errand/protocols';
import type { ErrandConnection } from './connect.js';
import type { IdentityProver } from './proof.js';

/** How one Errand message is sent. */
export interface PublishMessageOptions {
  /** The `Nats-Msg-Id` (see `messageIds` in @errand/protocols): JetStream drops a repeat within its window. */
  msgId: string;
  /** W3C trace context, sent as the `traceparent` header. */
  traceparent: string;
  /** More headers to send. */
  headers: Readonly<Record<string, string>>;
  /** msgpack (default) or JSON; JSON sets `Content-Type: application/json`. */
  format: WireFormat;
  /** Signs the exact bytes sent (`Errand-Signature`): work commands from a host. */
  signer: Pick<CommandSigner, 'sign'>;
  /** Proves this identity sent the exact bytes sent (`Errand-Identity`, `Errand-Proof`): acts of people, relayed or direct. */
  prover: Pick<IdentityProver, 'prove'>;
}

/** An encoded message and the headers to send it with. */
export interface PreparedMessage {
  readonly data: Uint8Array;
  /** Undefined when no header is needed (a msgpack message with nothing else to say). */
  readonly headers: MsgHdrs | undefined;
}

/**
 * Encodes `message` and builds its headers: content type, `traceparent`, extra headers, then the
 * signature and identity proof of exactly the encoded bytes. For a request/reply (`submit`) as well
 * as for {@link publishMessage}. Throws `CodecError` (`ERR_TOO_LARGE`) from the codec.
 */
export function prepareMessage<K extends MessageKind>(
  message: MessageInput<K>,
  options: Partial<Omit<PublishMessageOptions, 'msgId'>> = {},
): PreparedMessage {
  const encoded = encodeMessage(message, options.format ? { format: options.format } : {});
  let h: MsgHdrs | undefined;
  const set = (name: string, value: string) => (h ??= natsHeaders()).set(name, value);
  if (options.traceparent) set(Header.Traceparent, options.traceparent);
  if (encoded.contentType) set(Header.ContentType, encoded.contentType);
  for (const [name, value] of Object.entries(options.headers ?? {})) set(name, value);
  // What is signed and proved is the exact bytes published: a re-published message is signed again.
  if (options.signer) set(Header.Signature, options.signer.sign(encoded.data));
  if (options.prover) for (const [name, value] of Object.entries(options.prover.prove(encoded.data))) set(name, value);
  return { data: encoded.data, headers: h };
}

/**
 * Publishes one Errand message to JetStream: encoded, with its content type, `Nats-Msg-Id`,
 * `traceparent`, extra headers, and a signature or identity proof of the bytes it sends. Resolves
 * with the stream's ack (`duplicate` when the id was seen within the window). Throws `CodecError`
 * before sending anything when the message cannot be encoded, and the client's error when the
 * stream does not take it.
 */
export async function publishMessage<K extends MessageKind>(
  target: ErrandConnection | JetStreamClient,
  subject: string,
  message: MessageInput<K>,
  options: Partial<PublishMessageOptions> = {},
): Promise<PubAck> {
  const js = 'publish' in target ? target : target.js;
  const { data, headers } = prepareMessage(message, options);
  return js.publish(subject, data, { ...(options.msgId !== undefined ? { msgID: options.msgId } : {}), ...(headers ? { headers } : {}) });
}
