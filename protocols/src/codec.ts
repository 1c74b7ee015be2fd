import { Packr } from 'msgpackr';
import type { z } from 'zod';
import { jsonNestsDeeper, MAX_NESTING_DEPTH, msgpackNestsDeeper } from './depth.js';
import { CodecError, CodecErrorCode } from './errors.js';
import { Header } from './headers.js';
import { MESSAGE_VERSION, messageSchemas, type Message, type MessageInput, type MessageKind } from './messages.js';
import { MAX_MESSAGE_BYTES } from './resources.js';
import { isAgentId } from './subjects.js';

export const CONTENT_TYPE_HEADER = Header.ContentType;
export const JSON_CONTENT_TYPE = 'application/json';
export const MSGPACK_CONTENT_TYPE = 'application/msgpack';

export type WireFormat = 'msgpack' | 'json';
export const WIRE_FORMATS: readonly WireFormat[] = ['msgpack', 'json'];

/**
 * The `Content-Type` that names a wire format. Progress events carry it in both formats (a reader
 * in any language picks its decoder from the header, never by guessing); other messages send it
 * for JSON only, msgpack being the default.
 */
export function contentTypeOf(format: WireFormat): typeof JSON_CONTENT_TYPE | typeof MSGPACK_CONTENT_TYPE {
  return format === 'json' ? JSON_CONTENT_TYPE : MSGPACK_CONTENT_TYPE;
}

/**
 * Standard msgpack maps (no msgpackr records), so any language's msgpack library reads our bytes;
 * `undefined` properties are left out, as JSON does; 64-bit integers come back as numbers.
 */
// `skipValues` is supported at run time but missing from msgpackr's type declarations.
const packrOptions = { useRecords: false, skipValues: [undefined], int64AsType: 'number', mapsAsObjects: true } as const;
const packr = new Packr(packrOptions as ConstructorParameters<typeof Packr>[0]);
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

const OPEN_BRACE = 0x7b;

/**
 * The wire format of a body: what its `Content-Type` header names, else msgpack — except that a
 * body starting with `{` is JSON, so `nats pub`/`nats req` work without a header. (A msgpack map
 * never starts with that byte: in msgpack it is the whole positive integer 123.)
 */
export function formatOf(contentType: string | undefined | null, data?: Uint8Array): WireFormat {
  if (!contentType) return data !== undefined && data[0] === OPEN_BRACE ? 'json' : 'msgpack';
  const mime = contentType.split(';')[0]!.trim().toLowerCase();
  if (mime === JSON_CONTENT_TYPE || mime.endsWith('+json')) return 'json';
  if (mime === MSGPACK_CONTENT_TYPE || mime === 'application/x-msgpack' || mime === 'application/vnd.msgpack') return 'msgpack';
  throw new CodecError(
    CodecErrorCode.UnsupportedContentType,
    `unsupported Content-Type '${contentType}': send msgpack (no header) or '${JSON_CONTENT_TYPE}'`,
  );
}

export interface EncodeOptions {
  format: WireFormat;
  maxBytes: number;
}

export interface EncodedMessage {
  readonly data: Uint8Array;
  /** The header to send with it: set for JSON, absent for msgpack (the default). */
  readonly contentType: typeof JSON_CONTENT_TYPE | undefined;
}

/**
 * Encodes a message. The type system checks the shape; the receiver validates (validation happens
 * once, at the edge that receives). Throws {@link CodecError} `ERR_TOO_LARGE` over `maxBytes`.
 */
export function encodeMessage<K extends MessageKind>(message: MessageInput<K>, options: Partial<EncodeOptions> = {}): EncodedMessage {
  const format = options.format ?? 'msgpack';
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
  const data = format === 'json' ? textEncoder.encode(JSON.stringify(message)) : packr.pack(message);
  if (data.byteLength > maxBytes) {
    const m = message as { kind?: unknown; agentId?: unknown };
    throw new CodecError(
      CodecErrorCode.TooLarge,
      `${String(m.kind)} message is ${data.byteLength} bytes; the limit is ${maxBytes}. Store large payloads in the object store and send a reference`,
      { agentId: isAgentId(m.agentId) ? m.agentId : undefined },
    );
  }
  return { data, contentType: format === 'json' ? JSON_CONTENT_TYPE : undefined };
}

export interface DecodeOptions<K extends MessageKind> {
  /** The message's `Content-Type` header, if any. */
  contentType: string | undefined | null;
  /**
   * The kinds acceptable here (a tool runner accepts only `tool.request`). With exactly one kind, a
   * body without `kind` is read as that kind.
   */
  expect: K | readonly K[];
  maxBytes: number;
  /** The deepest the body may nest (objects and arrays; the body is level 1). */
  maxDepth: number;
}

/**
 * Decodes and validates one message. Size and nesting are checked on the bytes, before anything
 * parses or walks them, so no body can overflow the stack. Throws {@link CodecError}:
 * `ERR_TOO_LARGE`, `ERR_UNDECODABLE` (not msgpack/JSON, or not an object), `ERR_UNKNOWN_KIND`,
 * `ERR_UNSUPPORTED_VERSION`, `ERR_INVALID` (nested deeper than `maxDepth`, or schema violations
 * listed in `issues`), `ERR_UNSUPPORTED_CONTENT_TYPE`.
 */
export function decodeMessage<K extends MessageKind = MessageKind>(
  data: Uint8Array,
  options: Partial<DecodeOptions<K>> = {},
): Message<K> {
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
  if (data.byteLength > maxBytes) {
    throw new CodecError(CodecErrorCode.TooLarge, `message is ${data.byteLength} bytes; the limit is ${maxBytes}`);
  }
  const format = formatOf(options.contentType, data);
  const maxDepth = options.maxDepth ?? MAX_NESTING_DEPTH;
  if (format === 'json' ? jsonNestsDeeper(data, maxDepth) : msgpackNestsDeeper(data, maxDepth)) {
    throw new CodecError(
      CodecErrorCode.Invalid,
      `message nests deeper than ${maxDepth} levels of objects and arrays; flatten the data (or send it as a string or by reference)`,
      { issues: [`(message): nests deeper than ${maxDepth} levels`] },
    );
  }
  const body = parseBody(data, format);

  const expected = options.expect === undefined ? undefined : typeof options.expect === 'string' ? [options.expect] : options.expect;
  let kind = body.kind;
  if (kind === undefined && expected?.length === 1) kind = expected[0];
  const agentId = isAgentId(body.agentId) ? body.agentId : undefined;
  // Version first: a newer sender's new kind should say "upgrade", not "unknown kind".
  if (typeof body.v === 'number' && body.v > MESSAGE_VERSION) {
    throw new CodecError(
      CodecErrorCode.UnsupportedVersion,
      `${typeof kind === 'string' ? kind : 'message'} message has version ${body.v}; this Errand reads up to ${MESSAGE_VERSION}. Upgrade the receiving service`,
      { agentId },
    );
  }
  if (typeof kind !== 'string' || !Object.hasOwn(messageSchemas, kind)) {
    throw new CodecError(
      CodecErrorCode.UnknownKind,
      kind === undefined ? 'message has no kind' : `unknown message kind ${JSON.stringify(kind)}`,
      { agentId },
    );
  }
  if (expected !== undefined && !expected.includes(kind as K)) {
    throw new CodecError(
      CodecErrorCode.UnknownKind,
      `message kind '${kind}' is not accepted here; expected ${expected.map((k) => `'${k}'`).join(' or ')}`,
      { agentId },
    );
  }
  const schema = messageSchemas[kind as K] as unknown as z.ZodType<Message<K>>;
  const parsed = schema.safeParse(body.kind === undefined ? { ...body, kind } : body);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(message)'}: ${i.message}`);
    throw new CodecError(CodecErrorCode.Invalid, `invalid ${kind} message: ${issues.join('; ')}`, { agentId, issues });
  }
  return parsed.data;
}

function parseBody(data: Uint8Array, format: WireFormat): Record<string, unknown> {
  let body: unknown;
  try {
    body = format === 'json' ? JSON.parse(textDecoder.decode(data)) : packr.unpack(data);
  } catch (cause) {
    throw new CodecError(
      CodecErrorCode.Undecodable,
      `body is not valid ${format === 'json' ? 'JSON' : 'msgpack'} (${(cause as Error).message}); JSON senders must set '${CONTENT_TYPE_HEADER}: ${JSON_CONTENT_TYPE}'`,
      { cause },
    );
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new CodecError(CodecErrorCode.Undecodable, `body must be an object, got ${Array.isArray(body) ? 'an array' : body === null ? 'null' : typeof body}`);
  }
  return body as Record<string, unknown>;
}
