import { describe, expect, it } from 'vitest';
import {
  createSubjects,
  defaultResourceOptions,
  INBOX_KINDS,
  EVENT_KINDS,
  MAX_MESSAGE_BYTES,
  resourceNames,
  resourceSpecs,
  SubjectError,
  type StreamSpec,
} from '@errand/protocols';

/**
 * True when some concrete subject matches both NATS subject filters: filters are compared token by
 * token, `*` matches exactly one token and `>` (last token only) matches one or more.
 */
function filtersOverlap(a: string, b: string): boolean {
  const go = (x: readonly string[], y: readonly string[]): boolean => {
    if (x[0] === '>') return y.length > 0;
    if (y[0] === '>') return x.length > 0;
    if (x.length === 0 || y.length === 0) return x.length === y.length;
    if (x[0] === '*' || y[0] === '*' || x[0] === y[0]) return go(x.slice(1), y.slice(1));
    return false;
  };
  return go(a.split('.'), b.split('.'));
}

/** A concrete subject (no wildcards) is captured by a filter when the two overlap. */
const captures = (filter: string, subject: string) => filtersOverlap(filter, subject);

const streamFor = (streams: readonly StreamSpec[], subject: string) =>
  streams.filter((st) => st.subjects.some((f) => captures(f, subject))).map((st) => st.name);

describe('the overlap checker used below', () => {
  it.each([
    ['a.b', 'a.b', true],
    ['a.b', 'a.c', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a.b.c', false],
    ['a.>', 'a', false],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a.*', true],
    ['a.*.c', 'a.b.*', true],
    ['a.*.c', 'a.b.d', false],
    ['>', 'x', true],
    ['a.b', 'a.b.c', false],
    ['*.in.>', 'x.ev.>', false],
  ] as const)('%s vs %s → %s (both ways)', (a, b, expected) => {
    expect(filtersOverlap(a, b)).toBe(expected);
    expect(filtersOverlap(b, a)).toBe(expected);
  });
});

describe('resourceNames', () => {
  it("derives upper-case stream and lower-case bucket names from 'errand'", () => {
    expect(resourceNames('errand')).toEqual({
      streams: {
        inbox: 'ERRAND_INBOX',
        events: 'ERRAND_EVENTS',
        work: 'ERRAND_WORK',
        logs: 'ERRAND_LOGS',
        dlq: 'ERRAND_DLQ',
      },
      buckets: { agents: 'errand_agents', tools: 'errand_tools', effects: 'errand_effects', limits: 'errand_limits', schedules: 'errand_schedules' },
      objectStores: { results: 'errand_results' },
    });
  });

  it("replaces dots with underscores for 'acme.errand'", () => {
    expect(resourceNames('acme.errand')).toEqual({
      streams: {
        inbox: 'ACME_ERRAND_INBOX',
        events: 'ACME_ERRAND_EVENTS',
        work: 'ACME_ERRAND_WORK',
        logs: 'ACME_ERRAND_LOGS',
        dlq: 'ACME_ERRAND_DLQ',
      },
      buckets: { agents: 'acme_errand_agents', tools: 'acme_errand_tools', effects: 'acme_errand_effects', limits: 'acme_errand_limits', schedules: 'acme_errand_schedules' },
      objectStores: { results: 'acme_errand_results' },
    });
  });

  it("defaults to the prefix 'errand'", () => {
    expect(resourceNames()).toEqual(resourceNames('errand'));
  });

  it('gives names that are valid JetStream stream / KV bucket names', () => {
    for (const prefix of ['errand', 'acme.errand', 'tenant-7.prod-eu']) {
      const names = resourceNames(prefix);
      for (const name of [...Object.values(names.streams), ...Object.values(names.buckets)]) {
        expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
      }
    }
  });

  it.each(['', 'a..b', 'a b', 'a.*'])('refuses the invalid prefix %j with ERR_INVALID_PREFIX', (prefix) => {
    expect(() => resourceNames(prefix)).toThrow(SubjectError);
    expect(() => resourceNames(prefix)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_PREFIX' }));
    expect(() => resourceSpecs({ prefix })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_PREFIX' }));
  });
});

describe('resourceSpecs', () => {
  it('has the five streams and five buckets, named by resourceNames', () => {
    const specs = resourceSpecs();
    expect(specs.names).toEqual(resourceNames('errand'));
    expect(specs.streams.map((s) => s.name)).toEqual(['ERRAND_INBOX', 'ERRAND_EVENTS', 'ERRAND_WORK', 'ERRAND_LOGS', 'ERRAND_DLQ']);
    expect(specs.buckets.map((b) => b.bucket)).toEqual(['errand_agents', 'errand_tools', 'errand_effects', 'errand_limits', 'errand_schedules']);
  });

  it.each([
    ['ERRAND_INBOX', 'workqueue'],
    ['ERRAND_WORK', 'workqueue'],
    ['ERRAND_EVENTS', 'limits'],
    ['ERRAND_LOGS', 'limits'],
    ['ERRAND_DLQ', 'limits'],
  ])('%s uses %s retention', (name, retention) => {
    expect(resourceSpecs().streams.find((s) => s.name === name)?.retention).toBe(retention);
  });

  it('subscribes the streams to the expected subject filters', () => {
    expect(Object.fromEntries(resourceSpecs().streams.map((s) => [s.name, s.subjects]))).toEqual({
      ERRAND_INBOX: ['errand.agent.*.in.>'],
      ERRAND_EVENTS: ['errand.agent.*.ev.>'],
      ERRAND_WORK: ['errand.work.>'],
      ERRAND_LOGS: ['errand.logs.*'],
      ERRAND_DLQ: ['errand.dlq.*'],
    });
  });

  describe.each(['errand', 'acme.errand', 'tenant-7.prod-eu'])("under prefix '%s'", (prefix) => {
    const { streams } = resourceSpecs({ prefix });
    const s = createSubjects(prefix);

    it('every stream subject starts with the prefix', () => {
      for (const stream of streams) {
        expect(stream.subjects.length).toBeGreaterThan(0);
        for (const subject of stream.subjects) expect(subject.startsWith(`${prefix}.`), subject).toBe(true);
      }
    });

    it("no two streams' subject filters overlap", () => {
      const filters = streams.flatMap((st) => st.subjects.map((f) => ({ stream: st.name, f })));
      for (const [i, a] of filters.entries()) {
        for (const b of filters.slice(i + 1)) {
          expect(filtersOverlap(a.f, b.f), `${a.stream} '${a.f}' overlaps ${b.stream} '${b.f}'`).toBe(false);
        }
      }
    });

    it('captures every durable subject in exactly the right stream', () => {
      const { names } = resourceSpecs({ prefix });
      const expected: Array<[string, string]> = [
        ...INBOX_KINDS.map((k): [string, string] => [s.agentIn('a1', k), names.streams.inbox]),
        ...EVENT_KINDS.map((k): [string, string] => [s.agentEvent('a1', k), names.streams.events]),
        [s.workPlan(), names.streams.work],
        [s.workTool('fs_read'), names.streams.work],
        [s.workNotify('slack'), names.streams.work],
        [s.workTimer(), names.streams.work],
        [s.logs('host'), names.streams.logs],
        [s.dlq('host'), names.streams.dlq],
      ];
      for (const [subject, stream] of expected) expect(streamFor(streams, subject), subject).toEqual([stream]);
    });

    it('leaves the core-NATS subjects (submit, token stream) out of every stream', () => {
      expect(streamFor(streams, s.submit())).toEqual([]);
      expect(streamFor(streams, s.agentStream('a1'))).toEqual([]);
    });
  });

  it("keeps 'errand' and 'acme.errand' apart: distinct names, no overlapping filters", () => {
    const a = resourceSpecs({ prefix: 'errand' });
    const b = resourceSpecs({ prefix: 'acme.errand' });
    const namesA = [...a.streams.map((s) => s.name), ...a.buckets.map((x) => x.bucket)];
    const namesB = [...b.streams.map((s) => s.name), ...b.buckets.map((x) => x.bucket)];
    expect(namesA.filter((n) => namesB.includes(n))).toEqual([]);
    for (const fa of a.streams.flatMap((s) => s.subjects)) {
      for (const fb of b.streams.flatMap((s) => s.subjects)) expect(filtersOverlap(fa, fb), `${fa} vs ${fb}`).toBe(false);
    }
  });

  it('defaults to one replica and file storage everywhere', () => {
    const { streams, buckets } = resourceSpecs();
    for (const x of [...streams, ...buckets]) {
      expect(x.replicas).toBe(1);
      expect(x.storage).toBe('file');
    }
  });

  it.each([1, 3, 5])('propagates replicas: %i to every stream and bucket', (replicas) => {
    const { streams, buckets } = resourceSpecs({ replicas });
    expect(streams).toHaveLength(5);
    expect(buckets).toHaveLength(5);
    for (const x of [...streams, ...buckets]) expect(x.replicas).toBe(replicas);
  });

  it("propagates storage: 'memory' to every stream and bucket", () => {
    const { streams, buckets } = resourceSpecs({ storage: 'memory' });
    for (const x of [...streams, ...buckets]) expect(x.storage).toBe('memory');
  });

  it.each([0, 6, 1.5, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses replicas: %s with a RangeError', (replicas) => {
    expect(() => resourceSpecs({ replicas })).toThrow(RangeError);
    expect(() => resourceSpecs({ replicas })).toThrow(/replicas must be an integer from 1 to 5/);
  });

  it('has a positive duplicate window on every stream, never longer than the stream\'s max age', () => {
    for (const stream of resourceSpecs().streams) {
      expect(stream.duplicateWindowMs).toBeGreaterThan(0);
      if (stream.maxAgeMs > 0) expect(stream.duplicateWindowMs).toBeLessThanOrEqual(stream.maxAgeMs);
    }
  });

  it('caps message size at MAX_MESSAGE_BYTES (1 MiB), except the DLQ which is unlimited (-1) so a dead letter and its headers fit', () => {
    expect(MAX_MESSAGE_BYTES).toBe(1024 * 1024);
    for (const stream of resourceSpecs().streams) {
      if (stream.name === 'ERRAND_DLQ') expect(stream.maxMsgSize).toBe(-1);
      else expect(stream.maxMsgSize).toBe(MAX_MESSAGE_BYTES);
    }
  });

  it('gives buckets one value of history, a TTL only for effects (7 days) and limits (1 day), and a positive value size no larger than a message', () => {
    for (const bucket of resourceSpecs().buckets) {
      expect(bucket.history).toBe(1);
      expect(bucket.ttlMs).toBe(bucket.bucket.endsWith('_effects') ? 7 * 24 * 3600 * 1000 : bucket.bucket.endsWith('_limits') ? 24 * 3600 * 1000 : 0);
      expect(bucket.maxValueSize).toBeGreaterThan(0);
      expect(bucket.maxValueSize).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    }
  });

  it('applies the tunable options to the streams they concern', () => {
    const specs = resourceSpecs({
      duplicateWindowMs: 120_000,
      logsMaxAgeMs: 1000,
      logsMaxBytes: 2048,
      dlqMaxAgeMs: 3000,
      eventsMaxBytes: 4096,
      workMaxBytes: 8192,
      dlqMaxBytes: 16384,
    });
    const byName = Object.fromEntries(specs.streams.map((s) => [s.name, s]));
    for (const name of ['ERRAND_INBOX', 'ERRAND_EVENTS', 'ERRAND_WORK']) {
      expect(byName[name]?.duplicateWindowMs).toBe(120_000);
    }
    // The server refuses a duplicate window longer than max age, so those two are cut to their max age.
    expect(byName.ERRAND_LOGS).toMatchObject({ maxAgeMs: 1000, maxBytes: 2048, duplicateWindowMs: 1000 });
    expect(byName.ERRAND_DLQ).toMatchObject({ maxAgeMs: 3000, maxBytes: 16384, duplicateWindowMs: 3000 });
    expect(byName.ERRAND_EVENTS).toMatchObject({ maxBytes: 4096 });
    expect(byName.ERRAND_WORK).toMatchObject({ maxBytes: 8192 });
  });

  it('keeps work queues and the journal unbounded by age, bounds work and dead letters by bytes, and refuses new work rather than dropping it', () => {
    const byName = Object.fromEntries(resourceSpecs().streams.map((s) => [s.name, s]));
    expect(byName.ERRAND_INBOX).toMatchObject({ maxAgeMs: 0, maxBytes: -1, discard: 'new' });
    expect(byName.ERRAND_WORK).toMatchObject({ maxAgeMs: 0, maxBytes: 1024 * 1024 * 1024, discard: 'new' });
    expect(byName.ERRAND_DLQ).toMatchObject({ maxBytes: 256 * 1024 * 1024, discard: 'old' });
    expect(byName.ERRAND_EVENTS).toMatchObject({ maxAgeMs: 0, maxBytes: -1, discard: 'old' });
  });

  it('returns fresh default options each time', () => {
    const first = defaultResourceOptions();
    first.replicas = 5;
    expect(defaultResourceOptions().replicas).toBe(1);
    expect(resourceSpecs().streams[0]?.replicas).toBe(1);
  });
});

describe('prefixes that would share stream names', () => {
  // '.' becomes '_' and stream names are upper-cased, so '_' and upper case are refused in prefixes.
  it.each(['a_b', 'Errand'])('%j is refused, so it cannot collide with another prefix', (prefix) => {
    expect(() => resourceNames(prefix)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_PREFIX' }));
  });
});
