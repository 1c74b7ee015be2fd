import { SubjectError, SubjectErrorCode } from './errors.js';

/** The subject prefix used when none is configured. */
export const DEFAULT_PREFIX = 'errand';

/** What an agent's inbox accepts; one subject token per kind so permissions can say who sends what. */
export const INBOX_KINDS = ['goal', 'plan', 'tool', 'approval', 'input', 'timer', 'control', 'child', 'message'] as const;
export type InboxKind = (typeof INBOX_KINDS)[number];

/** Progress events an agent publishes. `step` is the journal. */
export const EVENT_KINDS = ['step', 'state', 'plan', 'tool', 'approval', 'usage', 'done', 'failed'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

const TOKEN = /^[A-Za-z0-9_-]+$/;
const MAX_TOKEN_LENGTH = 128;

/**
 * Checks one subject token (an agent id, tool name, channel, service or origin). Allowed are ASCII
 * letters, digits, `_` and `-`: that keeps a token a single NATS subject token, a valid KV key and
 * a valid OpenAI function name. Throws {@link SubjectError} `ERR_INVALID_TOKEN` naming what is wrong.
 */
export function assertToken(value: string, what = 'token'): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new SubjectError(SubjectErrorCode.InvalidToken, `${what} must be a non-empty string`);
  }
  if (value.length > MAX_TOKEN_LENGTH) {
    throw new SubjectError(
      SubjectErrorCode.InvalidToken,
      `${what} is ${value.length} characters long; at most ${MAX_TOKEN_LENGTH} are allowed`,
    );
  }
  if (!TOKEN.test(value)) {
    const bad = [...value].find((c) => !/[A-Za-z0-9_-]/.test(c)) ?? '';
    const shown = /\s/.test(bad) ? 'whitespace' : `'${bad}'`;
    throw new SubjectError(
      SubjectErrorCode.InvalidToken,
      `${what} ${JSON.stringify(value)} contains ${shown}; use only letters, digits, '_' and '-'`,
    );
  }
  return value;
}

/** Checks an agent id (see {@link assertToken}); the error carries the offending id. */
export function assertAgentId(agentId: string): string {
  try {
    return assertToken(agentId, 'agent id');
  } catch (err) {
    if (err instanceof SubjectError) {
      throw new SubjectError(err.code, err.message, { agentId: String(agentId) });
    }
    throw err;
  }
}

/** True when `value` is a usable agent id. */
export function isAgentId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TOKEN_LENGTH && TOKEN.test(value);
}

const PREFIX_TOKEN = /^[a-z0-9-]+$/;

/**
 * Checks a subject prefix: one or more dot-separated tokens of lower-case letters, digits and `-`
 * (`errand`, `acme.errand`). Stream and bucket names are derived from it by joining the tokens with
 * `_` (and upper-casing for streams), so `_` and upper case are refused: they would let two
 * prefixes map to one stream name.
 */
export function assertPrefix(prefix: string): string {
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new SubjectError(SubjectErrorCode.InvalidPrefix, 'subject prefix must be a non-empty string');
  }
  for (const token of prefix.split('.')) {
    let problem: string | undefined;
    if (token.length === 0) problem = 'has an empty part; parts must be non-empty';
    else if (token.length > MAX_TOKEN_LENGTH) problem = `has a part of ${token.length} characters; at most ${MAX_TOKEN_LENGTH} are allowed`;
    else if (!PREFIX_TOKEN.test(token)) {
      const bad = [...token].find((c) => !/[a-z0-9-]/.test(c)) ?? '';
      problem = `contains ${/\s/.test(bad) ? 'whitespace' : `'${bad}'`}`;
    }
    if (problem !== undefined) {
      throw new SubjectError(
        SubjectErrorCode.InvalidPrefix,
        `invalid subject prefix ${JSON.stringify(prefix)}: it ${problem}; use dot-separated parts of lower-case letters, digits and '-'`,
      );
    }
  }
  return prefix;
}

/** Where a subject belongs, as {@link Subjects.parse} reads it. */
export type ParsedSubject =
  | { readonly type: 'agent.in'; readonly agentId: string; readonly kind: InboxKind }
  | { readonly type: 'agent.ev'; readonly agentId: string; readonly kind: EventKind }
  | { readonly type: 'agent.stream'; readonly agentId: string }
  | { readonly type: 'work.plan' }
  | { readonly type: 'work.tool'; readonly tool: string }
  | { readonly type: 'work.notify'; readonly channel: string }
  | { readonly type: 'work.timer' }
  | { readonly type: 'work.schedule'; readonly scheduleId: string }
  | { readonly type: 'submit' }
  | { readonly type: 'logs'; readonly service: string }
  | { readonly type: 'dlq'; readonly origin: string };

/**
 * Builders and a parser for every Errand subject under one prefix. This is the only place a subject
 * string is written; services couple through it.
 */
export interface Subjects {
  readonly prefix: string;
  /** `<p>.agent.<id>.in.<kind>`: stream ERRAND_INBOX. */
  agentIn(agentId: string, kind: InboxKind): string;
  /** `<p>.agent.<id>.in.>` (every agent's when `agentId` is omitted; one kind when `kind` is given). */
  agentInAll(agentId?: string, kind?: InboxKind): string;
  /** `<p>.agent.<id>.ev.<kind>`: stream ERRAND_EVENTS. */
  agentEvent(agentId: string, kind: EventKind): string;
  /** `<p>.agent.<id>.ev.>` (every agent's when `agentId` is omitted; one kind when `kind` is given). */
  agentEventAll(agentId?: string, kind?: EventKind): string;
  /** `<p>.agent.<id>.stream`: core NATS, ephemeral token streaming. */
  agentStream(agentId: string): string;
  /** `<p>.work.plan`: planner commands. */
  workPlan(): string;
  /** `<p>.work.tool.<tool>` (every tool when omitted: `<p>.work.tool.*`). */
  workTool(tool?: string): string;
  /** `<p>.work.notify.<channel>` (every channel when omitted). */
  workNotify(channel?: string): string;
  /** `<p>.work.timer`: durable timers. */
  workTimer(): string;
  /** `<p>.work.schedule.<id>` (every schedule when omitted): a schedule's durable tick for its next fire. */
  workSchedule(scheduleId?: string): string;
  /** `<p>.submit`: core request/reply goal intake. */
  submit(): string;
  /** `<p>.logs.<service>` (every service when omitted). */
  logs(service?: string): string;
  /** `<p>.dlq.<origin>` (every origin when omitted). */
  dlq(origin?: string): string;
  /** Reads a subject under this prefix; throws `ERR_UNKNOWN_SUBJECT` for anything else. */
  parse(subject: string): ParsedSubject;
}

/** Subjects for `prefix` (default `errand`). Throws {@link SubjectError} for an invalid prefix. */
export function createSubjects(prefix: string = DEFAULT_PREFIX): Subjects {
  assertPrefix(prefix);
  const p = prefix;
  const depth = prefix.split('.').length;
  const inboxKinds = new Set<string>(INBOX_KINDS);
  const eventKinds = new Set<string>(EVENT_KINDS);
  const known = (kinds: Set<string>, kind: string, what: string) => {
    if (!kinds.has(kind)) throw new SubjectError(SubjectErrorCode.InvalidToken, `unknown ${what} '${kind}'; one of ${[...kinds].join(', ')}`);
    return kind;
  };
  const unknown = (subject: string, why: string) =>
    new SubjectError(SubjectErrorCode.UnknownSubject, `${JSON.stringify(subject)} is not an Errand subject under '${p}': ${why}`);

  return {
    prefix,
    agentIn: (agentId, kind) => `${p}.agent.${assertAgentId(agentId)}.in.${known(inboxKinds, kind, 'inbox kind')}`,
    agentInAll: (agentId, kind) =>
      `${p}.agent.${agentId === undefined ? '*' : assertAgentId(agentId)}.in.${kind === undefined ? '>' : known(inboxKinds, kind, 'inbox kind')}`,
    agentEvent: (agentId, kind) => `${p}.agent.${assertAgentId(agentId)}.ev.${known(eventKinds, kind, 'event kind')}`,
    agentEventAll: (agentId, kind) =>
      `${p}.agent.${agentId === undefined ? '*' : assertAgentId(agentId)}.ev.${kind === undefined ? '>' : known(eventKinds, kind, 'event kind')}`,
    agentStream: (agentId) => `${p}.agent.${assertAgentId(agentId)}.stream`,
    workPlan: () => `${p}.work.plan`,
    workTool: (tool) => `${p}.work.tool.${tool === undefined ? '*' : assertToken(tool, 'tool name')}`,
    workNotify: (channel) => `${p}.work.notify.${channel === undefined ? '*' : assertToken(channel, 'channel')}`,
    workTimer: () => `${p}.work.timer`,
    workSchedule: (scheduleId) => `${p}.work.schedule.${scheduleId === undefined ? '*' : assertToken(scheduleId, 'schedule id')}`,
    submit: () => `${p}.submit`,
    logs: (service) => `${p}.logs.${service === undefined ? '*' : assertToken(service, 'service name')}`,
    dlq: (origin) => `${p}.dlq.${origin === undefined ? '*' : assertToken(origin, 'dead-letter origin')}`,
    parse(subject) {
      const token = (value: string, what: string) => {
        if (!TOKEN.test(value) || value.length > MAX_TOKEN_LENGTH) throw unknown(subject, `invalid ${what} '${value}'`);
        return value;
      };
      const tokens = subject.split('.');
      if (tokens.slice(0, depth).join('.') !== p) throw unknown(subject, 'wrong prefix');
      const [head, a, b, c, ...extra] = tokens.slice(depth);
      const fail = () => unknown(subject, 'unexpected shape');
      switch (head) {
        case 'agent': {
          if (a === undefined || !isAgentId(a)) throw unknown(subject, 'missing or invalid agent id');
          if (b === 'stream' && c === undefined) return { type: 'agent.stream', agentId: a };
          if (c === undefined || extra.length > 0) throw fail();
          if (b === 'in' && inboxKinds.has(c)) return { type: 'agent.in', agentId: a, kind: c as InboxKind };
          if (b === 'ev' && eventKinds.has(c)) return { type: 'agent.ev', agentId: a, kind: c as EventKind };
          throw unknown(subject, `unknown agent subject kind '${b}.${c}'`);
        }
        case 'work':
          if (a === 'plan' && b === undefined) return { type: 'work.plan' };
          if (a === 'timer' && b === undefined) return { type: 'work.timer' };
          if (a === 'tool' && b !== undefined && c === undefined) return { type: 'work.tool', tool: token(b, 'tool name') };
          if (a === 'notify' && b !== undefined && c === undefined) return { type: 'work.notify', channel: token(b, 'channel') };
          if (a === 'schedule' && b !== undefined && c === undefined) return { type: 'work.schedule', scheduleId: token(b, 'schedule id') };
          throw fail();
        case 'submit':
          if (a === undefined) return { type: 'submit' };
          throw fail();
        case 'logs':
          if (a !== undefined && b === undefined) return { type: 'logs', service: token(a, 'service name') };
          throw fail();
        case 'dlq':
          if (a !== undefined && b === undefined) return { type: 'dlq', origin: token(a, 'dead-letter origin') };
          throw fail();
        default:
          throw fail();
      }
    },
  };
}
