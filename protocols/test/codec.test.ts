import { describe, expect, it } from 'vitest';
import { Packr, Unpackr } from 'msgpackr';
import {
  CodecError,
  CodecErrorCode,
  CONTENT_TYPE_HEADER,
  contentTypeOf,
  decodeMessage,
  encodeMessage,
  ErrandError,
  EVENT_MESSAGE_KINDS,
  formatOf,
  INBOX_MESSAGE_KINDS,
  JSON_CONTENT_TYPE,
  MAX_MESSAGE_BYTES,
  MESSAGE_KINDS,
  MESSAGE_VERSION,
  messageSchemas,
  MSGPACK_CONTENT_TYPE,
  WORK_MESSAGE_KINDS,
  type DecodeOptions,
  type MessageKind,
  type WireFormat,
} from '@errand/protocols';
import { AGENT, AT, samples } from './fixtures.js';

const FORMATS: readonly WireFormat[] = ['msgpack', 'json'];
const JSON_HEADER = { contentType: JSON_CONTENT_TYPE } as const;

/** A plain (schema-free) JSON body, as a non-Errand client would send it. */
const jsonBytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
/** A plain msgpack body from an independent packer (standard maps, no records). */
const msgpackBytes = (value: unknown): Uint8Array => new Packr({ useRecords: false }).pack(value);

/** A deep copy of the sample of `kind` with `patch` applied (a key set to undefined is removed). */
function variant(kind: MessageKind, patch: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(samples[kind]) as Record<string, unknown>;
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) delete copy[key];
    else copy[key] = value;
  }
  return copy;
}

/** Runs `fn`, which must throw a CodecError, and returns that error. */
function codecError(fn: () => unknown): CodecError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a CodecError to be thrown').toBeInstanceOf(CodecError);
  expect(thrown).toBeInstanceOf(ErrandError);
  expect(thrown).toBeInstanceOf(Error);
  expect((thrown as Error).name).toBe('CodecError');
  return thrown as CodecError;
}

function roundTrip(message: unknown, format: WireFormat): unknown {
  const encoded = encodeMessage(message as never, { format });
  return decodeMessage(encoded.data, { contentType: encoded.contentType });
}

describe('fixtures', () => {
  it('has exactly one sample for every entry of MESSAGE_KINDS', () => {
    expect(Object.keys(samples).sort()).toEqual([...MESSAGE_KINDS].sort());
    expect(new Set(MESSAGE_KINDS).size).toBe(MESSAGE_KINDS.length);
  });

  it.each(MESSAGE_KINDS)('the %s sample is filed under its own kind and passes its schema', (kind) => {
    expect(samples[kind].kind).toBe(kind);
    const parsed = messageSchemas[kind].safeParse(samples[kind]);
    expect(parsed.error?.issues ?? []).toEqual([]);
  });
});

describe('message kind catalogue', () => {
  it('MESSAGE_KINDS are exactly the keys of messageSchemas', () => {
    expect([...MESSAGE_KINDS].sort()).toEqual(Object.keys(messageSchemas).sort());
  });

  it('inbox, event, work, submit and schedule kinds partition MESSAGE_KINDS', () => {
    const submit = MESSAGE_KINDS.filter((k) => k.startsWith('submit.'));
    const schedule = MESSAGE_KINDS.filter((k) => k.startsWith('schedule.'));
    const groups: readonly string[] = [...INBOX_MESSAGE_KINDS, ...EVENT_MESSAGE_KINDS, ...WORK_MESSAGE_KINDS, ...submit, ...schedule];
    expect(new Set(groups).size).toBe(groups.length);
    expect([...groups].sort()).toEqual([...MESSAGE_KINDS].sort());
  });

  it('every event kind starts with "event." and only those do', () => {
    expect(EVENT_MESSAGE_KINDS.every((k) => k.startsWith('event.'))).toBe(true);
    expect(MESSAGE_KINDS.filter((k) => k.startsWith('event.')).sort()).toEqual([...EVENT_MESSAGE_KINDS].sort());
  });

  it('writes version 1', () => {
    expect(MESSAGE_VERSION).toBe(1);
  });
});

describe('round trip', () => {
  describe.each(FORMATS)('%s', (format) => {
    it.each(MESSAGE_KINDS)('%s decodes to a deep copy of what was encoded', (kind) => {
      const message = samples[kind];
      const encoded = encodeMessage(message, { format });
      const decoded = decodeMessage(encoded.data, { contentType: encoded.contentType });
      expect(decoded).toStrictEqual(message);
      expect(decoded).not.toBe(message);
    });

    it.each(MESSAGE_KINDS)('%s decodes when its own kind is the one expected', (kind) => {
      const encoded = encodeMessage(samples[kind], { format });
      expect(decodeMessage(encoded.data, { contentType: encoded.contentType, expect: kind })).toStrictEqual(samples[kind]);
    });

    it('leaves out properties whose value is undefined', () => {
      const decoded = roundTrip({ ...samples.control, reason: undefined, by: undefined }, format);
      expect(decoded).not.toHaveProperty('reason');
      expect(decoded).not.toHaveProperty('by');
      expect(decoded).toStrictEqual(variant('control', { reason: undefined, by: undefined }));
    });

    it('keeps strings with non-ASCII text, control characters and emoji intact', () => {
      const text = 'Zürich \u2014 日本語 \ud83d\ude80 "quoted" \\ back\\slash \u0000 nul\ttab\r\nnewline';
      expect(roundTrip(variant('input', { text }), format)).toMatchObject({ text });
    });

    it('keeps numbers: epoch ms beyond 32 bits, floats, zero and negative values in payloads', () => {
      const output = { big: Number.MAX_SAFE_INTEGER, float: 0.1 + 0.2, zero: 0, neg: -42, negFloat: -1.5e-7 };
      const decoded = roundTrip(variant('event.done', { at: 4_102_444_800_000, output }), format);
      expect(decoded).toMatchObject({ at: 4_102_444_800_000, output });
    });

    it('keeps the extra payload of machine events (loose objects)', () => {
      const event = { type: 'user.replied', text: 'yes', nested: { deep: [1, { x: null }] } };
      expect(roundTrip(variant('timer.fired', { event }), format)).toMatchObject({ event });
    });
  });

  it('decodes a body that is a view into a larger buffer (as NATS hands it over)', () => {
    for (const format of FORMATS) {
      const { data, contentType } = encodeMessage(samples['tool.request'], { format });
      const backing = new Uint8Array(data.byteLength + 64).fill(0xc1); // 0xc1 is never valid msgpack
      backing.set(data, 32);
      const view = backing.subarray(32, 32 + data.byteLength);
      expect(decodeMessage(view, { contentType })).toStrictEqual(samples['tool.request']);
    }
  });

  it('decodes a Node Buffer', () => {
    const { data } = encodeMessage(samples.goal);
    expect(decodeMessage(Buffer.from(data))).toStrictEqual(samples.goal);
  });

  it('drops fields the schema does not know (a newer minor sender stays readable)', () => {
    for (const format of FORMATS) {
      const decoded = roundTrip({ ...samples.approval, futureField: { x: 1 } }, format);
      expect(decoded).not.toHaveProperty('futureField');
      expect(decoded).toStrictEqual(samples.approval);
    }
  });
});

describe('encodeMessage', () => {
  it('defaults to msgpack with no Content-Type', () => {
    const encoded = encodeMessage(samples.goal);
    expect(encoded.contentType).toBeUndefined();
    expect(encoded.data).toBeInstanceOf(Uint8Array);
    expect(encoded.data).toEqual(encodeMessage(samples.goal, { format: 'msgpack' }).data);
  });

  it.each(MESSAGE_KINDS)('json: %s is readable JSON text with Content-Type application/json', (kind) => {
    const encoded = encodeMessage(samples[kind], { format: 'json' });
    expect(encoded.contentType).toBe('application/json');
    const text = new TextDecoder('utf-8', { fatal: true }).decode(encoded.data);
    expect(text.startsWith('{')).toBe(true);
    expect(JSON.parse(text)).toStrictEqual(JSON.parse(JSON.stringify(samples[kind])));
  });

  it.each(MESSAGE_KINDS)('msgpack: %s is a standard msgpack map that an independent unpacker reads', (kind) => {
    const encoded = encodeMessage(samples[kind], { format: 'msgpack' });
    expect(encoded.contentType).toBeUndefined();
    const first = encoded.data[0]!;
    const isMap = (first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf; // fixmap, map16, map32
    expect(isMap, `first byte 0x${first.toString(16)} is not a msgpack map marker`).toBe(true);
    expect(new Unpackr({ useRecords: false }).unpack(encoded.data)).toStrictEqual(samples[kind]);
  });

  it('msgpack and JSON encodings differ but carry the same data', () => {
    const m = encodeMessage(samples['plan.request'], { format: 'msgpack' });
    const j = encodeMessage(samples['plan.request'], { format: 'json' });
    expect(m.data).not.toEqual(j.data);
    expect(decodeMessage(m.data, { contentType: m.contentType })).toStrictEqual(
      decodeMessage(j.data, { contentType: j.contentType }),
    );
  });

  it('exports the header name and content types it uses', () => {
    expect(CONTENT_TYPE_HEADER).toBe('Content-Type');
    expect(JSON_CONTENT_TYPE).toBe('application/json');
    expect(MSGPACK_CONTENT_TYPE).toBe('application/msgpack');
  });

  it.each(FORMATS)('contentTypeOf(%s) names a type formatOf reads back as that format', (format) => {
    expect(contentTypeOf(format)).toBe(format === 'json' ? JSON_CONTENT_TYPE : MSGPACK_CONTENT_TYPE);
    expect(formatOf(contentTypeOf(format))).toBe(format);
    // Explicit msgpack wins over the `{` guess (a msgpack body never starts with it anyway).
    expect(formatOf(contentTypeOf(format), encodeMessage(samples['event.done'], { format }).data)).toBe(format);
  });
});

describe('decodeMessage: expect', () => {
  it('refuses a kind other than the expected one with ERR_UNKNOWN_KIND', () => {
    const { data } = encodeMessage(samples['tool.request']);
    const err = codecError(() => decodeMessage(data, { expect: 'plan.request' }));
    expect(err.code).toBe(CodecErrorCode.UnknownKind);
    expect(err.code).toBe('ERR_UNKNOWN_KIND');
    expect(err.message).toContain("'tool.request'");
    expect(err.message).toContain("'plan.request'");
    expect(err.agentId).toBe(AGENT);
  });

  it('accepts any of several expected kinds and names them all when refusing', () => {
    const { data } = encodeMessage(samples['tool.request']);
    expect(decodeMessage(data, { expect: ['plan.request', 'tool.request'] })).toStrictEqual(samples['tool.request']);
    const err = codecError(() => decodeMessage(data, { expect: ['goal', 'control'] }));
    expect(err.code).toBe('ERR_UNKNOWN_KIND');
    expect(err.message).toMatch(/'goal' or 'control'/);
  });

  it.each([
    ['json', jsonBytes({ goal: 'x' }), JSON_CONTENT_TYPE],
    ['msgpack', msgpackBytes({ goal: 'x' }), undefined],
  ] as const)('fills in v=1 and kind for a bare %s submit.request body', (_format, data, contentType) => {
    expect(decodeMessage(data, { contentType, expect: 'submit.request' })).toStrictEqual({
      v: 1,
      kind: 'submit.request',
      goal: 'x',
    });
  });

  it('still validates a bare submit.request body', () => {
    const err = codecError(() => decodeMessage(jsonBytes({ goal: '' }), { ...JSON_HEADER, expect: 'submit.request' }));
    expect(err.code).toBe('ERR_INVALID');
    expect(err.issues.some((i) => i.startsWith('goal:'))).toBe(true);
  });

  it('does not guess a kind when several are expected', () => {
    const err = codecError(() => decodeMessage(jsonBytes({ goal: 'x' }), { ...JSON_HEADER, expect: ['submit.request', 'goal'] }));
    expect(err.code).toBe('ERR_UNKNOWN_KIND');
    expect(err.message).toMatch(/no kind/);
  });

  it('fills in only the kind for other kinds: their v stays required', () => {
    const body = variant('control', { v: undefined, kind: undefined });
    const err = codecError(() => decodeMessage(jsonBytes(body), { ...JSON_HEADER, expect: 'control' }));
    expect(err.code).toBe('ERR_INVALID');
    expect(err.issues.some((i) => i.startsWith('v:'))).toBe(true);
    expect(decodeMessage(jsonBytes({ ...body, v: 1 }), { ...JSON_HEADER, expect: 'control' })).toStrictEqual(samples.control);
  });
});

describe('decodeMessage: typed errors', () => {
  const twoMegabytes = 2 * 1024 * 1024;

  interface ErrorCase {
    name: string;
    data: () => Uint8Array;
    options?: Partial<DecodeOptions<MessageKind>>;
    code: CodecErrorCode;
    /** The message must match this: it names the problem. */
    message: RegExp;
    /** An issue must match this (ERR_INVALID only). */
    issue?: RegExp;
    /** The error's agentId: set when the body carried a valid one. */
    agentId?: string;
  }

  const cases: ErrorCase[] = [
    {
      name: 'a goal without its goal',
      data: () => jsonBytes(variant('goal', { goal: undefined })),
      options: JSON_HEADER,
      code: 'ERR_INVALID',
      message: /invalid goal message: .*goal/,
      issue: /^goal: .*expected string/,
      agentId: AGENT,
    },
    {
      name: 'a wrong type (step: "three")',
      data: () => msgpackBytes(variant('tool.request', { step: 'three' })),
      code: 'ERR_INVALID',
      message: /invalid tool\.request message: .*step/,
      issue: /^step: .*expected number/,
      agentId: AGENT,
    },
    {
      name: 'a negative timestamp',
      data: () => msgpackBytes(variant('event.state', { at: -1 })),
      code: 'ERR_INVALID',
      message: /at/,
      issue: /^at: /,
      agentId: AGENT,
    },
    {
      name: 'a fractional timestamp',
      data: () => msgpackBytes(variant('event.state', { at: AT + 0.5 })),
      code: 'ERR_INVALID',
      message: /at/,
      issue: /^at: /,
      agentId: AGENT,
    },
    {
      name: 'a value outside an enum (control action)',
      data: () => msgpackBytes(variant('control', { action: 'explode' })),
      code: 'ERR_INVALID',
      message: /action/,
      issue: /^action: /,
      agentId: AGENT,
    },
    {
      name: 'a bad status deep in the task tree',
      data: () =>
        msgpackBytes(
          variant('event.plan', {
            tasks: [{ id: 't1', title: 'a', status: 'done', children: [{ id: 't1.1', title: 'b', status: 'finished' }] }],
          }),
        ),
      code: 'ERR_INVALID',
      message: /tasks\.0\.children\.0\.status/,
      issue: /^tasks\.0\.children\.0\.status: /,
      agentId: AGENT,
    },
    {
      name: 'a plan.request without messages',
      data: () => msgpackBytes(variant('plan.request', { messages: [] })),
      code: 'ERR_INVALID',
      message: /messages/,
      issue: /^messages: /,
      agentId: AGENT,
    },
    {
      name: 'a tool name with a dot',
      data: () => msgpackBytes(variant('tool.request', { tool: 'fs.read' })),
      code: 'ERR_INVALID',
      message: /tool/,
      issue: /^tool: /,
      agentId: AGENT,
    },
    {
      name: 'an unknown kind',
      data: () => msgpackBytes(variant('goal', { kind: 'goal.v2' })),
      code: 'ERR_UNKNOWN_KIND',
      message: /unknown message kind "goal\.v2"/,
      agentId: AGENT,
    },
    {
      name: 'a kind inherited from Object.prototype',
      data: () => msgpackBytes(variant('goal', { kind: 'constructor' })),
      code: 'ERR_UNKNOWN_KIND',
      message: /unknown message kind "constructor"/,
      agentId: AGENT,
    },
    {
      name: 'a kind that is not a string',
      data: () => msgpackBytes(variant('goal', { kind: 7 })),
      code: 'ERR_UNKNOWN_KIND',
      message: /unknown message kind 7/,
      agentId: AGENT,
    },
    {
      name: 'no kind at all (and no expect)',
      data: () => msgpackBytes(variant('goal', { kind: undefined })),
      code: 'ERR_UNKNOWN_KIND',
      message: /message has no kind/,
      agentId: AGENT,
    },
    {
      name: 'a truncated msgpack body',
      data: () => encodeMessage(samples.goal).data.slice(0, -5),
      code: 'ERR_UNDECODABLE',
      message: /not valid msgpack/,
    },
    {
      name: 'a msgpack body cut to its first byte',
      data: () => encodeMessage(samples.goal).data.slice(0, 1),
      code: 'ERR_UNDECODABLE',
      message: /not valid msgpack/,
    },
    {
      name: 'an empty body',
      data: () => new Uint8Array(0),
      code: 'ERR_UNDECODABLE',
      message: /not valid msgpack/,
    },
    {
      name: 'trailing bytes after a msgpack value',
      data: () => Uint8Array.from([...encodeMessage(samples.goal).data, 0xc0]),
      code: 'ERR_UNDECODABLE',
      message: /not valid msgpack/,
    },
    {
      name: 'plain text sent without a Content-Type (read as msgpack)',
      data: () => new TextEncoder().encode('hello'),
      code: 'ERR_UNDECODABLE',
      message: /not valid msgpack.*Content-Type: application\/json/,
    },
    {
      name: 'invalid JSON with a JSON Content-Type',
      data: () => new TextEncoder().encode('{"v":1,"kind":"goal",'),
      options: JSON_HEADER,
      code: 'ERR_UNDECODABLE',
      message: /not valid JSON/,
    },
    {
      name: 'JSON that is not UTF-8',
      data: () => Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), // {"\xff\xfe":1}
      options: JSON_HEADER,
      code: 'ERR_UNDECODABLE',
      message: /not valid JSON/,
    },
    {
      name: 'a JSON array',
      data: () => jsonBytes([samples.goal]),
      options: JSON_HEADER,
      code: 'ERR_UNDECODABLE',
      message: /must be an object, got an array/,
    },
    {
      name: 'a JSON number',
      data: () => jsonBytes(42),
      options: JSON_HEADER,
      code: 'ERR_UNDECODABLE',
      message: /must be an object, got number/,
    },
    {
      name: 'JSON null',
      data: () => jsonBytes(null),
      options: JSON_HEADER,
      code: 'ERR_UNDECODABLE',
      message: /must be an object, got null/,
    },
    {
      name: 'a msgpack array',
      data: () => msgpackBytes([1, 2, 3]),
      code: 'ERR_UNDECODABLE',
      message: /must be an object, got an array/,
    },
    {
      name: 'a msgpack string',
      data: () => msgpackBytes('goal'),
      code: 'ERR_UNDECODABLE',
      message: /must be an object, got string/,
    },
    {
      name: 'a 2 MB msgpack body',
      data: () => new Uint8Array(twoMegabytes),
      code: 'ERR_TOO_LARGE',
      message: new RegExp(`${twoMegabytes} bytes; the limit is ${MAX_MESSAGE_BYTES}`),
    },
    {
      name: 'a 2 MB JSON body',
      data: () => jsonBytes(variant('goal', { input: { blob: 'x'.repeat(twoMegabytes) } })),
      options: JSON_HEADER,
      code: 'ERR_TOO_LARGE',
      message: /bytes; the limit is 1048576/,
    },
    {
      name: 'a body over a custom maxBytes',
      data: () => encodeMessage(samples.control).data,
      options: { maxBytes: 16 },
      code: 'ERR_TOO_LARGE',
      message: /the limit is 16/,
    },
    {
      name: 'a newer version (v: 2)',
      data: () => msgpackBytes(variant('goal', { v: 2 })),
      code: 'ERR_UNSUPPORTED_VERSION',
      message: /goal message has version 2; this Errand reads up to 1/,
      agentId: AGENT,
    },
    {
      name: 'an older, unknown version (v: 0)',
      data: () => msgpackBytes(variant('goal', { v: 0 })),
      code: 'ERR_INVALID',
      message: /v: /,
      issue: /^v: /,
      agentId: AGENT,
    },
    {
      name: 'a version that is a string',
      data: () => jsonBytes(variant('goal', { v: '1' })),
      options: JSON_HEADER,
      code: 'ERR_INVALID',
      message: /v: /,
      issue: /^v: /,
      agentId: AGENT,
    },
    {
      name: 'Content-Type text/plain',
      data: () => encodeMessage(samples.goal, { format: 'json' }).data,
      options: { contentType: 'text/plain' },
      code: 'ERR_UNSUPPORTED_CONTENT_TYPE',
      message: /unsupported Content-Type 'text\/plain'/,
    },
    {
      name: 'an agent id with a dot',
      data: () => msgpackBytes(variant('control', { agentId: 'agt.1' })),
      code: 'ERR_INVALID',
      message: /agentId: agent id must be/,
      issue: /^agentId: .*'\.'/,
    },
    {
      name: 'an agent id that is a wildcard',
      data: () => msgpackBytes(variant('control', { agentId: '>' })),
      code: 'ERR_INVALID',
      message: /agentId/,
      issue: /^agentId: /,
    },
    {
      name: 'an invalid child id inside a valid parent message',
      data: () => msgpackBytes(variant('child.result', { childId: 'child 1' })),
      code: 'ERR_INVALID',
      message: /childId/,
      issue: /^childId: /,
      agentId: AGENT,
    },
    {
      name: 'an invalid parent agent id inside a goal',
      data: () => msgpackBytes(variant('goal', { parent: { agentId: 'a*', ref: 'r' } })),
      code: 'ERR_INVALID',
      message: /parent\.agentId/,
      issue: /^parent\.agentId: /,
      agentId: AGENT,
    },
    {
      name: 'a plan.result with both result and error',
      data: () =>
        msgpackBytes(variant('plan.result', { error: { code: 'ERR_MODEL', message: 'overloaded', retryable: true } })),
      code: 'ERR_INVALID',
      message: /exactly one of result or error/,
      issue: /exactly one of result or error/,
      agentId: AGENT,
    },
    {
      name: 'a plan.result with neither result nor error',
      data: () => msgpackBytes(variant('plan.result', { result: undefined })),
      code: 'ERR_INVALID',
      message: /exactly one of result or error/,
      issue: /exactly one of result or error/,
      agentId: AGENT,
    },
    {
      name: 'a tool.result with both result and error',
      data: () => msgpackBytes(variant('tool.result', { error: { code: 'ERR_IO', message: 'EIO', retryable: true } })),
      code: 'ERR_INVALID',
      message: /exactly one of result or error/,
      agentId: AGENT,
    },
    {
      name: 'a submit.reply with neither agentId nor error',
      data: () => msgpackBytes({ v: 1, kind: 'submit.reply' }),
      code: 'ERR_INVALID',
      message: /exactly one of agentId or error/,
    },
    {
      name: 'a submit.reply with both agentId and error',
      data: () => msgpackBytes({ ...samples['submit.reply'], error: { code: 'ERR_X', message: 'x' } }),
      code: 'ERR_INVALID',
      message: /exactly one of agentId or error/,
      agentId: 'weekly-incidents-2024-47',
    },
  ];

  it.each(cases)('$name → $code', ({ data, options, code, message, issue, agentId }) => {
    const err = codecError(() => decodeMessage(data(), options));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.agentId).toBe(agentId);
    if (code === 'ERR_INVALID') {
      expect(err.issues.length).toBeGreaterThan(0);
      if (issue) expect(err.issues.some((i) => issue.test(i)), `issues: ${JSON.stringify(err.issues)}`).toBe(true);
    } else {
      expect(err.issues).toEqual([]);
    }
  });

  it('lists every schema violation in issues, not just the first', () => {
    const body = variant('tool.request', { step: 'three', attempt: 0, tool: 'a b' });
    const err = codecError(() => decodeMessage(msgpackBytes(body)));
    expect(err.code).toBe('ERR_INVALID');
    for (const field of ['step', 'attempt', 'tool']) {
      expect(err.issues.some((i) => i.startsWith(`${field}: `)), `no issue for ${field}`).toBe(true);
    }
  });

  it('keeps the underlying parse error as the cause of ERR_UNDECODABLE', () => {
    const err = codecError(() => decodeMessage(new TextEncoder().encode('{'), JSON_HEADER));
    expect(err.code).toBe('ERR_UNDECODABLE');
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('accepts a body of exactly maxBytes and refuses one byte less of allowance', () => {
    const { data } = encodeMessage(samples.control);
    expect(decodeMessage(data, { maxBytes: data.byteLength })).toStrictEqual(samples.control);
    expect(codecError(() => decodeMessage(data, { maxBytes: data.byteLength - 1 })).code).toBe('ERR_TOO_LARGE');
  });

  it('checks the size before the Content-Type', () => {
    const err = codecError(() => decodeMessage(new Uint8Array(twoMegabytes), { contentType: 'text/plain' }));
    expect(err.code).toBe('ERR_TOO_LARGE');
  });
});

describe('encodeMessage: size limit', () => {
  const huge = 'x'.repeat(2 * 1024 * 1024);

  it.each(FORMATS)('%s: a message with a 2 MB field is ERR_TOO_LARGE and names the kind and agent', (format) => {
    const err = codecError(() => encodeMessage({ ...samples['event.done'], output: { log: huge } }, { format }));
    expect(err.code).toBe('ERR_TOO_LARGE');
    expect(err.message).toMatch(/^event\.done message is \d+ bytes; the limit is 1048576/);
    expect(err.message).toMatch(/object store/);
    expect(err.agentId).toBe(AGENT);
  });

  it('leaves agentId unset when the message has no valid agent id', () => {
    const err = codecError(() => encodeMessage({ v: 1, kind: 'submit.request', goal: huge }));
    expect(err.code).toBe('ERR_TOO_LARGE');
    expect(err.agentId).toBeUndefined();
  });

  it('honours a custom maxBytes, inclusive', () => {
    const size = encodeMessage(samples.control).data.byteLength;
    expect(encodeMessage(samples.control, { maxBytes: size }).data.byteLength).toBe(size);
    expect(codecError(() => encodeMessage(samples.control, { maxBytes: size - 1 })).code).toBe('ERR_TOO_LARGE');
  });
});

describe('formatOf', () => {
  it.each([
    [undefined, 'msgpack'],
    [null, 'msgpack'],
    ['', 'msgpack'],
    ['application/msgpack', 'msgpack'],
    ['application/x-msgpack', 'msgpack'],
    ['application/vnd.msgpack', 'msgpack'],
    ['application/json', 'json'],
    ['application/json; charset=utf-8', 'json'],
    ['  Application/JSON ; charset=UTF-8', 'json'],
    ['application/cloudevents+json', 'json'],
  ] as const)('%j → %s', (contentType, format) => {
    expect(formatOf(contentType)).toBe(format);
  });

  it.each(['text/plain', 'application/xml', 'application/octet-stream', 'application/jsonx', ';'])(
    '%j → ERR_UNSUPPORTED_CONTENT_TYPE',
    (contentType) => {
      const err = codecError(() => formatOf(contentType));
      expect(err.code).toBe(CodecErrorCode.UnsupportedContentType);
      expect(err.message).toContain(`'${contentType}'`);
    },
  );
});

describe('absent values', () => {
  // Both encoders drop undefined properties, so an optional field left undefined must decode.
  it.each(FORMATS)('%s: a tool.result whose tool returned undefined round trips', (format) => {
    const message = { ...samples['tool.result'], result: { output: undefined } };
    expect(() => roundTrip(message, format)).not.toThrow();
  });

  it.each(FORMATS)('%s: an event.done with no output round trips', (format) => {
    const message = { ...samples['event.done'], output: undefined };
    expect(() => roundTrip(message, format)).not.toThrow();
  });

  it.each(FORMATS)('%s: a tool.request without args is refused, naming the field', (format) => {
    const message = { ...samples['tool.request'], args: undefined };
    expect(() => roundTrip(message, format)).toThrow(/args/);
  });
});

describe('JSON without a Content-Type header', () => {
  it('a body that starts with { is read as JSON, so `nats pub` works without -H', () => {
    const body = new TextEncoder().encode(JSON.stringify(samples.control));
    expect(decodeMessage(body)).toEqual(samples.control);
  });
});

describe('decodeMessage: nesting depth', () => {
  /** `{"x":{"x":…{"x":1}…}}`, `levels` objects deep. */
  const nested = (levels: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < levels; i++) v = { x: v };
    return v;
  };
  const submit = (input: unknown) => ({ goal: 'deep', input });
  const packr = new Packr({ useRecords: false });
  const captureError = (f: () => unknown): CodecError => {
    try {
      f();
    } catch (err) {
      return err as CodecError;
    }
    throw new Error('expected an error');
  };

  /** msgpack of `{goal:'deep', input:{x:{x:…1}}}` written by hand: msgpackr's own packer would overflow. */
  const deepMsgpack = (levels: number): Uint8Array => {
    const str = (t: string) => [0xa0 | t.length, ...new TextEncoder().encode(t)];
    const head = [0x82, ...str('goal'), ...str('deep'), ...str('input')];
    const body: number[] = [];
    for (let i = 0; i < levels; i++) body.push(0x81, ...str('x'));
    return Uint8Array.from([...head, ...body, 0x01]);
  };

  it.each([
    ['json', (levels: number) => new TextEncoder().encode(`{"goal":"deep","input":${'{"x":'.repeat(levels)}1${'}'.repeat(levels)}}`), JSON_HEADER],
    ['msgpack', deepMsgpack, {}],
  ] as const)('refuses a %s body nested 2,000 deep with ERR_INVALID, not a stack overflow', (_f, bytes, header) => {
    const err = captureError(() => decodeMessage(bytes(2000), { ...header, expect: 'submit.request' }));
    expect(err).toBeInstanceOf(CodecError);
    expect(err.code).toBe(CodecErrorCode.Invalid);
    expect(err.message).toMatch(/nests deeper than 64 levels/);
  });

  it.each([
    ['json', (v: unknown) => jsonBytes(v), JSON_HEADER],
    ['msgpack', (v: unknown) => packr.pack(v) as Uint8Array, {}],
  ] as const)('counts the body as level 1: a %s body of exactly the limit decodes, one more level does not', (_f, bytes, header) => {
    // submit (1) → input (2) → …: input nested 62 more levels reaches 64.
    expect(decodeMessage(bytes(submit(nested(63))), { ...header, expect: 'submit.request' }).goal).toBe('deep');
    expect(() => decodeMessage(bytes(submit(nested(64))), { ...header, expect: 'submit.request' })).toThrowError(/nests deeper than 64/);
    expect(() => decodeMessage(bytes(submit(nested(10))), { ...header, expect: 'submit.request', maxDepth: 8 })).toThrowError(/nests deeper than 8/);
  });

  it('reads hand-written msgpack the same way: 63 levels of input decode, 64 do not', () => {
    expect(decodeMessage(deepMsgpack(63), { expect: 'submit.request' }).goal).toBe('deep');
    expect(() => decodeMessage(deepMsgpack(64), { expect: 'submit.request' })).toThrowError(/nests deeper than 64/);
  });

  it('is not fooled by brackets inside JSON strings, nor by arrays and long strings in msgpack', () => {
    const tricky = submit({ text: '[[[[{{{{"\\"[[[[', list: [[['a'.repeat(70_000)]], new Array(300).fill([1, [2]])] });
    expect(decodeMessage(jsonBytes(tricky), { ...JSON_HEADER, expect: 'submit.request', maxDepth: 8 }).input).toEqual(tricky.input);
    expect(decodeMessage(packr.pack(tricky) as Uint8Array, { expect: 'submit.request', maxDepth: 8 }).input).toEqual(tricky.input);
    expect(() => decodeMessage(packr.pack(tricky) as Uint8Array, { expect: 'submit.request', maxDepth: 4 })).toThrowError(/nests deeper than 4/);
  });
});
