import { describe, expect, it } from 'vitest';
import {
  assertAgentId,
  assertPrefix,
  assertToken,
  createSubjects,
  DEFAULT_PREFIX,
  ErrandError,
  EVENT_KIND_OF,
  EVENT_KINDS,
  EVENT_MESSAGE_KINDS,
  INBOX_KIND_OF,
  INBOX_KINDS,
  INBOX_MESSAGE_KINDS,
  isAgentId,
  SubjectError,
  SubjectErrorCode,
  type ParsedSubject,
  type Subjects,
} from '@errand/protocols';

/** Runs `fn`, which must throw a SubjectError, and returns that error. */
function subjectError(fn: () => unknown): SubjectError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a SubjectError to be thrown').toBeInstanceOf(SubjectError);
  expect(thrown).toBeInstanceOf(ErrandError);
  expect((thrown as Error).name).toBe('SubjectError');
  return thrown as SubjectError;
}

/** Every builder call, the subject it must give under prefix 'errand', and what `parse` reads back (for concrete subjects). */
const builders: ReadonlyArray<{ call: string; build: (s: Subjects) => string; subject: string; parsed?: ParsedSubject }> = [
  { call: "agentIn('a1', 'goal')", build: (s) => s.agentIn('a1', 'goal'), subject: 'errand.agent.a1.in.goal', parsed: { type: 'agent.in', agentId: 'a1', kind: 'goal' } },
  { call: 'agentInAll()', build: (s) => s.agentInAll(), subject: 'errand.agent.*.in.>' },
  { call: "agentInAll('a1')", build: (s) => s.agentInAll('a1'), subject: 'errand.agent.a1.in.>' },
  { call: "agentEvent('a1', 'step')", build: (s) => s.agentEvent('a1', 'step'), subject: 'errand.agent.a1.ev.step', parsed: { type: 'agent.ev', agentId: 'a1', kind: 'step' } },
  { call: 'agentEventAll()', build: (s) => s.agentEventAll(), subject: 'errand.agent.*.ev.>' },
  { call: "agentEventAll('a1')", build: (s) => s.agentEventAll('a1'), subject: 'errand.agent.a1.ev.>' },
  { call: "agentStream('a1')", build: (s) => s.agentStream('a1'), subject: 'errand.agent.a1.stream', parsed: { type: 'agent.stream', agentId: 'a1' } },
  { call: 'workPlan()', build: (s) => s.workPlan(), subject: 'errand.work.plan', parsed: { type: 'work.plan' } },
  { call: "workTool('fs_read')", build: (s) => s.workTool('fs_read'), subject: 'errand.work.tool.fs_read', parsed: { type: 'work.tool', tool: 'fs_read' } },
  { call: 'workTool()', build: (s) => s.workTool(), subject: 'errand.work.tool.*' },
  { call: "workNotify('slack')", build: (s) => s.workNotify('slack'), subject: 'errand.work.notify.slack', parsed: { type: 'work.notify', channel: 'slack' } },
  { call: 'workNotify()', build: (s) => s.workNotify(), subject: 'errand.work.notify.*' },
  { call: 'workTimer()', build: (s) => s.workTimer(), subject: 'errand.work.timer', parsed: { type: 'work.timer' } },
  { call: 'submit()', build: (s) => s.submit(), subject: 'errand.submit', parsed: { type: 'submit' } },
  { call: "logs('host')", build: (s) => s.logs('host'), subject: 'errand.logs.host', parsed: { type: 'logs', service: 'host' } },
  { call: 'logs()', build: (s) => s.logs(), subject: 'errand.logs.*' },
  { call: "dlq('host')", build: (s) => s.dlq('host'), subject: 'errand.dlq.host', parsed: { type: 'dlq', origin: 'host' } },
  { call: 'dlq()', build: (s) => s.dlq(), subject: 'errand.dlq.*' },
];

const PREFIXES = ['errand', 'acme.errand', 'tenant-7.prod-eu'] as const;
const underPrefix = (prefix: string, subject: string) => subject.replace(/^errand\./, `${prefix}.`);

describe('createSubjects', () => {
  it("uses the default prefix 'errand'", () => {
    expect(DEFAULT_PREFIX).toBe('errand');
    expect(createSubjects().prefix).toBe('errand');
    expect(createSubjects(undefined).submit()).toBe('errand.submit');
  });

  it.each(builders)("$call → '$subject'", ({ build, subject }) => {
    expect(build(createSubjects())).toBe(subject);
  });

  describe.each(PREFIXES.slice(1))("with prefix '%s'", (prefix) => {
    it('keeps the prefix', () => {
      expect(createSubjects(prefix).prefix).toBe(prefix);
    });

    it.each(builders)('$call builds the same subject under the prefix', ({ build, subject }) => {
      expect(build(createSubjects(prefix))).toBe(underPrefix(prefix, subject));
    });
  });

  it('builds a subject for every inbox and event kind', () => {
    const s = createSubjects();
    for (const kind of INBOX_KINDS) expect(s.agentIn('a1', kind)).toBe(`errand.agent.a1.in.${kind}`);
    for (const kind of EVENT_KINDS) expect(s.agentEvent('a1', kind)).toBe(`errand.agent.a1.ev.${kind}`);
  });

  it.each([
    ['workTool', 'fs.read', 'tool name', "'.'"],
    ['workNotify', 'team chat', 'channel', 'whitespace'],
    ['logs', '*', 'service name', "'*'"],
    ['dlq', '>', 'dead-letter origin', "'>'"],
    ['workTool', '', 'tool name', 'non-empty'],
  ] as const)('%s(%j) throws ERR_INVALID_TOKEN naming the %s', (method, token, what, problem) => {
    const s = createSubjects();
    const err = subjectError(() => s[method](token));
    expect(err.code).toBe('ERR_INVALID_TOKEN');
    expect(err.message).toContain(what);
    expect(err.message).toContain(problem);
    expect(err.agentId).toBeUndefined();
  });
});

describe('parse', () => {
  describe.each(PREFIXES)("under '%s'", (prefix) => {
    const s = createSubjects(prefix);

    it.each(builders.filter((b) => b.parsed !== undefined))('inverts $call', ({ build, parsed }) => {
      expect(s.parse(build(s))).toEqual(parsed);
    });

    it.each(INBOX_KINDS)('inverts agentIn for inbox kind %s', (kind) => {
      expect(s.parse(s.agentIn('agt_9-Z', kind))).toEqual({ type: 'agent.in', agentId: 'agt_9-Z', kind });
    });

    it.each(EVENT_KINDS)('inverts agentEvent for event kind %s', (kind) => {
      expect(s.parse(s.agentEvent('agt_9-Z', kind))).toEqual({ type: 'agent.ev', agentId: 'agt_9-Z', kind });
    });

    it('reads an agent id that looks like a keyword', () => {
      for (const id of ['in', 'ev', 'stream', 'agent', 'work']) {
        expect(s.parse(s.agentIn(id, 'goal'))).toEqual({ type: 'agent.in', agentId: id, kind: 'goal' });
        expect(s.parse(s.agentStream(id))).toEqual({ type: 'agent.stream', agentId: id });
      }
    });
  });

  const rejected: ReadonlyArray<[string, string]> = [
    ['foreign subject', 'orders.created'],
    ['empty subject', ''],
    ['the bare prefix', 'errand'],
    ['the prefix with a trailing dot', 'errand.'],
    ['a longer first token', 'errandx.submit'],
    ['another prefix', 'acme.errand.submit'],
    ['a prefix in other case', 'ERRAND.submit'],
    ['an unknown area', 'errand.jobs.x'],
    ['submit with an extra token', 'errand.submit.now'],
    ['agent without id', 'errand.agent'],
    ['agent without direction', 'errand.agent.a1'],
    ['inbox without kind', 'errand.agent.a1.in'],
    ['inbox with an unknown kind', 'errand.agent.a1.in.bogus'],
    ['inbox with an event kind', 'errand.agent.a1.in.step'],
    ['events with an inbox kind', 'errand.agent.a1.ev.goal'],
    ['inbox with an extra token', 'errand.agent.a1.in.goal.extra'],
    ['events with an extra token', 'errand.agent.a1.ev.step.extra'],
    ['stream with an extra token', 'errand.agent.a1.stream.x'],
    ['an unknown direction', 'errand.agent.a1.out.goal'],
    ['a wildcard agent id', 'errand.agent.*.in.goal'],
    ['a full wildcard', 'errand.agent.*.in.>'],
    ['an empty agent id', 'errand.agent..in.goal'],
    ['work without command', 'errand.work'],
    ['an unknown work command', 'errand.work.build'],
    ['plan with an extra token', 'errand.work.plan.x'],
    ['timer with an extra token', 'errand.work.timer.x'],
    ['tool without name', 'errand.work.tool'],
    ['tool with two tokens', 'errand.work.tool.fs.read'],
    ['notify without channel', 'errand.work.notify'],
    ['logs without service', 'errand.logs'],
    ['logs with two tokens', 'errand.logs.a.b'],
    ['dlq without origin', 'errand.dlq'],
    ['dlq with two tokens', 'errand.dlq.a.b'],
  ];

  it.each(rejected)('rejects %s (%j) with ERR_UNKNOWN_SUBJECT', (_why, subject) => {
    const err = subjectError(() => createSubjects().parse(subject));
    expect(err.code).toBe(SubjectErrorCode.UnknownSubject);
    expect(err.code).toBe('ERR_UNKNOWN_SUBJECT');
    expect(err.message).toContain(JSON.stringify(subject));
    expect(err.message).toContain("under 'errand'");
  });

  it.each([
    ['the default prefix', 'errand.submit'],
    ['only the last prefix token', 'errand.agent.a1.in.goal'],
    ['only the first prefix token', 'acme.agent.a1.in.goal'],
    ['the prefix tokens swapped', 'errand.acme.submit'],
  ])("rejects %s under 'acme.errand' (%j)", (_why, subject) => {
    const err = subjectError(() => createSubjects('acme.errand').parse(subject));
    expect(err.code).toBe('ERR_UNKNOWN_SUBJECT');
  });
});

describe('agent ids', () => {
  const invalid: ReadonlyArray<[string, string, string]> = [
    ['a dot', 'agt.1', "'.'"],
    ['a star', 'agt*', "'*'"],
    ['a greater-than', 'agt>', "'>'"],
    ['a space', 'agt 1', 'whitespace'],
    ['a tab', 'agt\t1', 'whitespace'],
    ['a newline', 'agt\n1', 'whitespace'],
    ['a non-ASCII letter', 'agént', "'é'"],
    ['a slash', 'team/agt', "'/'"],
    ['a colon', 'agt:1', "':'"],
    ['nothing', '', 'non-empty'],
    ['129 characters', 'a'.repeat(129), '129 characters'],
  ];

  describe.each(invalid)('containing %s (%j)', (_why, id, problem) => {
    it('fails assertAgentId with ERR_INVALID_TOKEN naming the problem and carrying the id', () => {
      const err = subjectError(() => assertAgentId(id));
      expect(err.code).toBe(SubjectErrorCode.InvalidToken);
      expect(err.code).toBe('ERR_INVALID_TOKEN');
      expect(err.message).toContain('agent id');
      expect(err.message).toContain(problem);
      expect(err.agentId).toBe(id);
    });

    it('is refused by every builder that takes an agent id', () => {
      const s = createSubjects();
      const calls: Array<() => string> = [
        () => s.agentIn(id, 'goal'),
        () => s.agentInAll(id),
        () => s.agentEvent(id, 'step'),
        () => s.agentEventAll(id),
        () => s.agentStream(id),
      ];
      for (const call of calls) {
        const err = subjectError(call);
        expect(err.code).toBe('ERR_INVALID_TOKEN');
        expect(err.message).toContain(problem);
        expect(err.agentId).toBe(id);
      }
    });

    it('is not an agent id for isAgentId', () => {
      expect(isAgentId(id)).toBe(false);
    });
  });

  it.each(['a_1-B', 'A', '0', '-', '_', 'agt_7f3a-01', 'a'.repeat(128)])('accepts %j everywhere', (id) => {
    expect(assertAgentId(id)).toBe(id);
    expect(isAgentId(id)).toBe(true);
    expect(createSubjects().agentIn(id, 'goal')).toBe(`errand.agent.${id}.in.goal`);
    expect(createSubjects().agentStream(id)).toBe(`errand.agent.${id}.stream`);
  });

  it.each([undefined, null, 42, {}, ['a1']])('isAgentId(%j) is false for a non-string', (value) => {
    expect(isAgentId(value)).toBe(false);
  });

  it('assertAgentId refuses a non-string (from untyped callers)', () => {
    const err = subjectError(() => assertAgentId(42 as unknown as string));
    expect(err.code).toBe('ERR_INVALID_TOKEN');
    expect(err.agentId).toBe('42');
  });

  it("assertToken labels the value as 'token' by default and with the given name otherwise", () => {
    expect(assertToken('fs_read')).toBe('fs_read');
    expect(subjectError(() => assertToken('a.b')).message).toMatch(/^token "a\.b" contains '\.'/);
    expect(subjectError(() => assertToken('a.b', 'tool name')).message).toMatch(/^tool name "a\.b"/);
    expect(subjectError(() => assertToken('a.b')).agentId).toBeUndefined();
  });
});

describe('prefixes', () => {
  it.each([
    ['', 'non-empty'],
    ['a..b', 'non-empty'],
    ['.errand', 'non-empty'],
    ['errand.', 'non-empty'],
    ['a b', 'whitespace'],
    ['a.*', "'*'"],
    ['a.>', "'>'"],
    ['x'.repeat(129), '129 characters'],
  ])('%j throws ERR_INVALID_PREFIX from assertPrefix and createSubjects', (prefix, problem) => {
    for (const call of [() => assertPrefix(prefix), () => createSubjects(prefix)]) {
      const err = subjectError(call);
      expect(err.code).toBe(SubjectErrorCode.InvalidPrefix);
      expect(err.code).toBe('ERR_INVALID_PREFIX');
      expect(err.message).toContain('prefix');
      expect(err.message).toContain(problem);
    }
  });

  it.each(['errand', 'acme.errand', 'a-b.c-d', 'tenant1', 'a.b.c.d'])('%j is a valid prefix', (prefix) => {
    expect(assertPrefix(prefix)).toBe(prefix);
    expect(createSubjects(prefix).submit()).toBe(`${prefix}.submit`);
  });
});

describe('kind maps stay in step with the subject kinds', () => {
  it('INBOX_KIND_OF maps each inbox message kind to a distinct INBOX_KINDS token, covering all of them', () => {
    const tokens = Object.values(INBOX_KIND_OF);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(new Set(tokens)).toEqual(new Set(INBOX_KINDS));
    expect(tokens).toHaveLength(INBOX_KINDS.length);
    expect(Object.keys(INBOX_KIND_OF)).toEqual(INBOX_MESSAGE_KINDS);
  });

  it('EVENT_KIND_OF maps each event message kind to a distinct EVENT_KINDS token, covering all of them', () => {
    const tokens = Object.values(EVENT_KIND_OF);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(new Set(tokens)).toEqual(new Set(EVENT_KINDS));
    expect(tokens).toHaveLength(EVENT_KINDS.length);
    expect(Object.keys(EVENT_KIND_OF)).toEqual(EVENT_MESSAGE_KINDS);
  });

  it('each event message kind is "event." + its subject token', () => {
    for (const [kind, token] of Object.entries(EVENT_KIND_OF)) expect(kind).toBe(`event.${token}`);
  });

  it('routing a message kind to its subject and parsing it back gives the same token', () => {
    const s = createSubjects();
    for (const [, token] of Object.entries(INBOX_KIND_OF)) {
      expect(s.parse(s.agentIn('a1', token))).toEqual({ type: 'agent.in', agentId: 'a1', kind: token });
    }
    for (const [, token] of Object.entries(EVENT_KIND_OF)) {
      expect(s.parse(s.agentEvent('a1', token))).toEqual({ type: 'agent.ev', agentId: 'a1', kind: token });
    }
  });
});

describe('parse of malformed work, logs and dlq subjects', () => {
  it.each(['errand.work.tool.*', 'errand.work.notify.>', 'errand.logs.*', 'errand.dlq.*', 'errand.work.tool.'])(
    'parse(%j) throws ERR_UNKNOWN_SUBJECT like every other unknown subject',
    (subject) => {
      expect(subjectError(() => createSubjects().parse(subject)).code).toBe('ERR_UNKNOWN_SUBJECT');
    },
  );
});
