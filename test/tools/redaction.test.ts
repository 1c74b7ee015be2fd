import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm } from '@errand/llm';
import { openBucket, type ErrandConnection } from '@errand/nats';
import { resourceNames } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

// A value no pattern knows: only the tool-runner's own OPENAI_API_KEY can tell it is a secret.
const VALUE_SECRET = 'plain-secret-value-123456';
// Secrets only the patterns know (no process is configured with them).
const PATTERN_SECRET = 'ghp_PatternOnlySecret0123456789abcd';
const GOAL_SECRET = 'sk-proj-GoalSecret0123456789abcdef';
const MODEL_SECRET = 'xoxb-1234567890-0987654321-ModelSaidThis';
const SECRETS = [VALUE_SECRET, PATTERN_SECRET, GOAL_SECRET, MODEL_SECRET];

let srv: TestServer;
let mock: MockLlm;
let d: Deployment;
const logLines: string[] = [];

/** Every message stored on `subject` in `stream`, as text (msgpack keeps strings as UTF-8). Bounded. */
async function readStream(conn: ErrandConnection, stream: string, subject: string): Promise<string[]> {
  const info = await (await conn.jsm()).streams.info(stream, { subjects_filter: subject });
  if ((info.state.subjects ? Object.values(info.state.subjects).reduce((a, b) => a + b, 0) : 0) === 0) return [];
  const consumer = await conn.js.consumers.get(stream, { filter_subjects: subject });
  const out: string[] = [];
  const messages = await consumer.consume();
  const timer = setTimeout(() => void messages.close(), 15_000);
  try {
    for await (const m of messages) {
      out.push(Buffer.from(m.data).toString('utf8'));
      if (m.info.pending === 0) break;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
  return out;
}

beforeAll(async () => {
  srv = await startTestServer();
  mock = await startMockLlm({
    steps: [
      {
        // The goal's key was redacted at intake: the model never sees it.
        expect: { contains: ['Read secrets.txt'], notContains: [GOAL_SECRET] },
        reply: { toolCalls: [{ name: 'fs_read', arguments: { path: 'secrets.txt' } }] },
      },
      {
        expect: { contains: ['OPENAI_API_KEY=[redacted]', 'github: [redacted]'], notContains: [VALUE_SECRET, PATTERN_SECRET] },
        // A model that repeats secrets anyway (known to the planner by value, or by their format).
        reply: { content: `Read it. The keys were ${VALUE_SECRET} and ${MODEL_SECRET}.` },
      },
    ],
  });
  d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, OPENAI_API_KEY: VALUE_SECRET, ERRAND_MODEL: 'mock-1' } });
  const reader = await srv.connect();
  // Every shipped log line, live (the connection closes with the server).
  reader.nc.subscribe(`${d.prefix}.logs.>`, {
    callback: (_err, msg) => {
      if (msg) logLines.push(msg.string());
    },
  });
  await reader.nc.flush();
  await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner')]);
});
afterAll(async () => {
  await d?.stopAll();
  await mock?.close();
  await srv?.stop();
});

describe('secrets never leak', () => {
  it('a file with a configured secret and a pattern-only secret: neither reaches the model, the ledger, the journal, the events, the record or the logs', async () => {
    await writeFile(join(d.workspace, 'secrets.txt'), `OPENAI_API_KEY=${VALUE_SECRET}\ngithub: ${PATTERN_SECRET}\nmentioned again: ${VALUE_SECRET}\n`);
    const agentId = await d.submit({ goal: `Read secrets.txt; my own key is ${GOAL_SECRET}` });
    const done = await d.waitForStatus(agentId, ['done', 'failed']);
    expect(mock.failures).toEqual([]);
    expect(done.status).toBe('done');
    // The model's answer was redacted at the planner, by value and by pattern.
    expect(done.output).toMatchObject({ answer: 'Read it. The keys were [redacted] and [redacted].' });

    // The model request bodies the scripted server captured.
    expect(mock.requests).toHaveLength(2);
    const bodies = JSON.stringify(mock.requests);
    for (const s of SECRETS) expect(bodies).not.toContain(s);
    expect(bodies).toContain('mentioned again: [redacted]');

    // The tool result as the runner recorded it in the effects ledger (what the agent inbox got).
    const effects = await openBucket(d.conn, resourceNames(d.prefix).buckets.effects);
    const ledger: string[] = [];
    for await (const key of await effects.keys()) {
      const e = await effects.get(key);
      if (e?.operation === 'PUT') ledger.push(`${key} ${Buffer.from(e.value).toString('utf8')}`);
    }
    const toolEntry = ledger.find((l) => l.includes('OPENAI_API_KEY=[redacted]'));
    expect(toolEntry, `the tool result in the effects ledger (${ledger.length} entries)`).toBeDefined();
    for (const s of SECRETS) expect(ledger.join('\n')).not.toContain(s);

    // The journal, every event of the agent, and its record.
    const journal = JSON.stringify(await d.journal(agentId));
    expect(journal).toContain('OPENAI_API_KEY=[redacted]');
    const events = await readStream(d.conn, resourceNames(d.prefix).streams.events, `${d.prefix}.agent.${agentId}.ev.>`);
    expect(events.length).toBeGreaterThan(2);
    const record = JSON.stringify(await d.record(agentId));
    for (const s of SECRETS) {
      expect(journal).not.toContain(s);
      expect(events.join('\n')).not.toContain(s);
      expect(record).not.toContain(s);
    }

    // The logs stream, live and stored: the services logged the call, never a secret.
    const stored = await readStream(d.conn, resourceNames(d.prefix).streams.logs, `${d.prefix}.logs.>`);
    expect(stored.join('\n')).toMatch(/"msg":"tool call running"/);
    expect(logLines.join('\n')).toMatch(/"msg":"goal accepted"/);
    for (const s of SECRETS) {
      expect(stored.join('\n')).not.toContain(s);
      expect(logLines.join('\n')).not.toContain(s);
    }
  }, 60_000);
});
