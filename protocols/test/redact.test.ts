import { describe, expect, it } from 'vitest';
import { createRedactor, isSecretName, patternRedactor, redactDeep, REDACTED, redactSecrets, SECRET_PATTERNS } from '@errand/protocols';

// Fake secrets in the shape of the real ones (none of them is valid anywhere).
const seed = `SUA${'B'.repeat(19)}${'C2'.repeat(18)}`; // 58 characters
const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJBQkNERUZHSElKS0xNTk9QIiwiaWF0IjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl';
const pem = ['-----BEGIN RSA PRIVATE KEY-----', 'MIIEowIBAAKCAQEAx4Vt0Kq3bq8Zq0cRXy1+abc/def==', 'ZmFrZWtleWZha2VrZXk=', '-----END RSA PRIVATE KEY-----'].join('\n');

/** [what, text, what must be gone, what must stay]. */
const TRUE_POSITIVES: [string, string, string, string][] = [
  ['OpenAI key', 'key is sk-abcdef0123456789', 'sk-abcdef0123456789', 'key is '],
  ['OpenAI short key', 'sk-abc123def456', 'abc123def456', ''],
  ['OpenAI project key', 'use sk-proj-AbC_dEf-0123456789xyz now', 'AbC_dEf-0123456789xyz', ' now'],
  ['Anthropic key', 'sk-ant-api03-AbCdEf0123456789_-xyz', 'api03-AbCdEf0123456789', ''],
  ['GitHub PAT (classic)', 'ghp_abcdefghijklmnopqrstuvwxyz0123', 'ghp_abcdefghijklmnop', ''],
  ['GitHub OAuth', 'gho_ABCDEFGHIJKLMNOPQRSTUV123', 'gho_ABCDEFGHIJ', ''],
  ['GitHub fine-grained', 'github_pat_11ABCDEFG0123456789_abcdefghijklmnop', 'github_pat_11ABCDEFG', ''],
  ['Slack bot token', 'xoxb-1234567890-0987654321-AbCdEfGhIj', 'xoxb-1234567890', ''],
  ['Slack user token', 'xoxp-1234-5678-abcdefabcdef', 'xoxp-1234', ''],
  ['Slack app token', 'xapp-1-A0123456789-0123456789-abcdef', 'xapp-1-A0123456789', ''],
  ['AWS access key id', 'AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMPLE', ''],
  ['AWS secret (env)', 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'wJalrXUtnFEMI', 'AWS_SECRET_ACCESS_KEY='],
  ['Telegram bot token', 'bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9 ok', 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9', ' ok'],
  ['Bearer token', 'curl -H "Bearer abc.def-123_xyz"', 'abc.def-123_xyz', 'Bearer '],
  ['Bearer, letters only but long', 'Bearer abcdefghijklmnopqrstuvwxyz', 'abcdefghijklmnopqrstuvwxyz', 'Bearer '],
  ['Authorization header', 'Authorization: Bearer 0123456789abcdef', '0123456789abcdef', 'Authorization: Bearer '],
  ['Authorization basic', 'authorization: Basic dXNlcjpwYXNz', 'dXNlcjpwYXNz', 'authorization: Basic '],
  ['Authorization JSON', '{"authorization": "tok_12345678"}', 'tok_12345678', '"authorization": "'],
  ['Cookie header', 'Cookie: session=abcdef123456; theme=dark', 'abcdef123456', 'Cookie: '],
  ['NKey user seed', `seed ${seed}`, seed, 'seed '],
  ['NKey account seed', `SA${'A'.repeat(56)}`, 'A'.repeat(56), ''],
  ['NKey operator seed', `SO${'Q'.repeat(56)}`, 'Q'.repeat(56), ''],
  ['JWT', `token ${jwt}`, 'c2lnbmF0dXJl', 'token '],
  ['PEM block', `before\n${pem}\nafter`, 'MIIEowIBAAKCAQEA', 'before\n'],
  ['PEM block cut off', `key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA`, 'b3BlbnNzaC1rZXktdjEAAAAA', 'key:\n'],
  ['NATS creds seed block', '-----BEGIN USER NKEY SEED-----\nSUAXXX\n------END USER NKEY SEED------', 'SUAXXX', ''],
  ['OPENAI_API_KEY=', 'OPENAI_API_KEY=plain-secret-value-123456\nPATH=/usr/bin', 'plain-secret-value', 'OPENAI_API_KEY='],
  ['export NAME_TOKEN="…"', 'export SLACK_BOT_TOKEN="some token value"', 'some token value', 'export SLACK_BOT_TOKEN="'],
  ['NAME_SECRET=', 'SIGNING_SECRET=s3cr3t-value', 's3cr3t-value', 'SIGNING_SECRET='],
  ['NAME_PASSWORD=', 'DB_PASSWORD=hunter2hunter2', 'hunter2hunter2', 'DB_PASSWORD='],
  ['NAME_PASSWD=', "MYSQL_PASSWD='p@ss w0rd'", 'p@ss w0rd', "MYSQL_PASSWD='"],
  ['NAME_CREDENTIALS=', 'GOOGLE_CREDENTIALS={abc:def}', '{abc:def}', 'GOOGLE_CREDENTIALS='],
  ['NAME_KEY=', 'STRIPE_KEY=rk_live_0123456789', 'rk_live_0123456789', 'STRIPE_KEY='],
  ['JSON "api_key"', '{"api_key": "abcd-1234-efgh"}', 'abcd-1234-efgh', '{"api_key": "'],
  ['YAML password', 'db:\n  password: correct-horse-battery', 'correct-horse-battery', '  password: '],
  ['camelCase apiKey', "{ apiKey: 'abcdef123456' }", 'abcdef123456', '{ apiKey: '],
  ['query string token', 'https://x.io/cb?access_token=abc123def&state=1', 'abc123def', '&state=1'],
  ['password in URL', 'postgres://app:hunter2hunter2@db.internal:5432/app', 'hunter2hunter2', 'postgres://app:'],
  ['password in URL, no user', 'redis://:s3cret-pass@cache:6379', 's3cret-pass', 'redis://:'],
  ['password in nats URL', 'NATS_URL=nats://svc:pa55word@127.0.0.1:4222', 'pa55word', 'nats://svc:'],
];

/** Text that looks a little like a secret and must stay as it is. */
const NEAR_MISSES: [string, string][] = [
  ['a task name', 'task-list and desk-organizer'],
  ['sk- with too little after it', 'sk-abc'],
  ['bearer in prose', 'Send a bearer token in the Authorization header. bearer authentication'],
  ['a URL with a port', 'http://example.com:8080/path?q=1'],
  ['a URL with a user only', 'ssh://git@github.com/org/repo'],
  ['code comparisons', 'if (token == null) return; const f = (token) => token.trim();'],
  ['lower-case *_key', 'primary_key: id, sort_key: name'],
  ['a count of tokens', '{"inputTokens": 120, "maxTokens": 4000, "tokens": 12}'],
  ['a path named passwd', "ERROR (ERR_OUTSIDE_WORKSPACE): '../../etc/passwd' contains '..'"],
  ['a short ghp_', 'ghp_short'],
  ['an ordinary upper-case word', 'SUMMARY: ALL TESTS PASSED'],
  ['a timestamp with a colon', '20240101:123456'],
  ['a JWT-looking word', 'eyJhbGciOi is where a JWT starts'],
  ['a PEM public key', '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----'],
  ['an idempotency key', '{"key": "a-123:4:0", "idempotencyKey": "x-y-z-1234"}'],
];

describe('the secret patterns', () => {
  it.each(TRUE_POSITIVES)('%s is redacted', (_what, text, gone, stays) => {
    const out = redactSecrets(text);
    expect(out).not.toContain(gone);
    expect(out).toContain(REDACTED);
    expect(out.startsWith(stays) || out.includes(stays)).toBe(true);
  });

  it.each(NEAR_MISSES)('%s stays', (_what, text) => {
    expect(redactSecrets(text)).toBe(text);
  });

  it('keeps the parts around a secret: names, users, schemes and quotes', () => {
    expect(redactSecrets('OPENAI_API_KEY=sk-abcdef0123456789')).toBe(`OPENAI_API_KEY=${REDACTED}`);
    expect(redactSecrets('postgres://app:pw123456@db/x')).toBe(`postgres://app:${REDACTED}@db/x`);
    expect(redactSecrets('Authorization: Bearer 0123456789abcdef')).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(redactSecrets('{"password": "x y z"}')).toBe(`{"password": "${REDACTED}"}`);
    expect(redactSecrets(`a\n${pem}\nb`)).toBe(`a\n${REDACTED}\nb`);
    expect(redactSecrets('token: abc123 and ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaa')).toBe(`token: ${REDACTED} and ${REDACTED}`);
  });

  it('every pattern has a true positive above', () => {
    const covered = new Set<string>();
    for (const [, text] of TRUE_POSITIVES) {
      for (const p of SECRET_PATTERNS) {
        p.regex.lastIndex = 0;
        if (p.regex.test(text)) covered.add(p.name);
      }
    }
    expect(SECRET_PATTERNS.map((p) => p.name).filter((n) => !covered.has(n))).toEqual([]);
  });

  it('redacting twice changes nothing more', () => {
    for (const [, text] of TRUE_POSITIVES) {
      const once = redactSecrets(text);
      expect(redactSecrets(once)).toBe(once);
    }
  });
});

describe('a Redactor with secret values', () => {
  const r = createRedactor({ secrets: ['plain-secret-value-123456', 'short', '', undefined, 'with "quotes" \\ and more'] });

  it('finds a registered value anywhere, in any format, and skips values under 8 characters', () => {
    expect(r.size).toBe(2);
    expect(r.redact('x=plain-secret-value-123456;')).toBe(`x=${REDACTED};`);
    expect(r.redact('ABCplain-secret-value-123456DEF')).toBe(`ABC${REDACTED}DEF`);
    expect(r.redact('a short word')).toBe('a short word');
    // Without the value, the pattern-only form cannot know it.
    expect(redactSecrets('the value plain-secret-value-123456')).toBe('the value plain-secret-value-123456');
  });

  it('returns the very same string and object when there is nothing to find', () => {
    const text = 'nothing to see here '.repeat(50);
    expect(r.redact(text)).toBe(text);
    const value = { a: [1, 'two', { b: 'three' }], c: null, d: true };
    expect(r.redactDeep(value)).toBe(value);
  });

  it('redactDeep: strings, keys and secret-named fields, copying only what changed', () => {
    const shared = { untouched: 'yes' };
    const input = {
      goal: 'use plain-secret-value-123456',
      list: ['sk-abcdefghijklmnopqrstuvwx123456', 1, null, shared],
      ['sk-abcdefghijklmnopqrstuvwx123456']: { token: 'short' },
      config: { apiKey: 'abc', DB_PASSWORD: 'x', password: '', count: 3 },
    };
    const out = r.redactDeep(input) as Record<string, unknown>;
    expect(out).toEqual({
      goal: `use ${REDACTED}`,
      list: [REDACTED, 1, null, { untouched: 'yes' }],
      [REDACTED]: { token: REDACTED },
      config: { apiKey: REDACTED, DB_PASSWORD: REDACTED, password: '', count: 3 },
    });
    expect((out.list as unknown[])[3]).toBe(shared);
    expect(input.goal).toBe('use plain-secret-value-123456'); // the input is not changed
  });

  it('redactDeep handles very deep input without recursion, and cycles', () => {
    let deep: Record<string, unknown> = { leaf: 'plain-secret-value-123456' };
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    let out = r.redactDeep(deep);
    for (let i = 0; i < 100_000; i++) out = out.d as Record<string, unknown>;
    expect(out).toEqual({ leaf: REDACTED });
    const cyclic: Record<string, unknown> = { name: 'x', secret: 'value-that-is-long' };
    cyclic.self = cyclic;
    expect(r.redactDeep(cyclic)).toEqual({ name: 'x', secret: REDACTED, self: '[circular]' });
  });

  it('an Error with a secret becomes its plain form without it', () => {
    const err = new Error('login as admin:plain-secret-value-123456 failed');
    // redactDeep is typed as returning its input's type, but an Error with a secret comes back as its plain form.
    const out = r.redactDeep<{ err: unknown }>({ err }) as { err: { type: string; message: string; stack: string } };
    expect(out.err.type).toBe('Error');
    expect(out.err.message).toBe(`login as admin:${REDACTED} failed`);
    expect(out.err.stack).not.toContain('plain-secret-value');
    const clean = new Error('nothing here');
    expect(r.redactDeep({ clean }).clean).toBe(clean);
  });

  it('redactJsonLine: a log line stays JSON, found through its escapes; a clean line is returned as is', () => {
    const line = `${JSON.stringify({ msg: 'env:\nOPENAI_API_KEY=abcdefgh12345678\nPATH=/bin', quoted: 'x with "quotes" \\ and more', nested: { apiKey: 'k' } })}\n`;
    const out = r.redactJsonLine(line);
    expect(out.endsWith('\n')).toBe(true);
    expect(JSON.parse(out)).toEqual({ msg: `env:\nOPENAI_API_KEY=${REDACTED}\nPATH=/bin`, quoted: `x ${REDACTED}`, nested: { apiKey: REDACTED } });
    const plain = `${JSON.stringify({ level: 30, msg: 'host ready' })}\n`;
    expect(r.redactJsonLine(plain)).toBe(plain);
    // A token right after an escaped newline is found too (no word boundary in the escaped text).
    expect(r.redactJsonLine(JSON.stringify({ msg: 'a\nsk-abcdef0123456789' }))).not.toContain('sk-abcdef');
  });

  it('with() adds values; the pattern-only exports keep working', () => {
    expect(patternRedactor.size).toBe(0);
    expect(r.with(['another-secret-99']).redact('another-secret-99 plain-secret-value-123456')).toBe(`${REDACTED} ${REDACTED}`);
    expect(redactDeep({ a: 'ghp_abcdefghijklmnopqrstuvwxyz0123' })).toEqual({ a: REDACTED });
  });

  it('names that are secret', () => {
    for (const n of ['OPENAI_API_KEY', 'apiKey', 'client_secret', 'DB_PASSWORD', 'SLACK_BOT_TOKEN', 'GOOGLE_CREDENTIALS', 'authorization', 'STRIPE_KEY']) expect(isSecretName(n)).toBe(true);
    for (const n of ['key', 'idempotencyKey', 'maxTokens', 'primary_key', 'tokens', 'goal']) expect(isSecretName(n)).toBe(false);
  });
});
