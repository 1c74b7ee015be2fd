import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { ClientError, createClient } from '@errand/client';
import { decodeRecord, Header, resourceNames } from '@errand/protocols';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

/**
 * The submit edge: duplicate ids, deep and huge goals. The server allows 4 MiB payloads so that a
 * 2 MiB goal reaches the host (the client would refuse to send it to a default 1 MiB server).
 */

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer({ config: 'max_payload: 4MB' });
  d = await createDeployment(srv);
  await d.start('host');
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

/** The trace id of a W3C traceparent (`00-<trace>-<span>-01`). */
const traceIdOf = (traceparent: string | undefined) => traceparent?.split('-')[1];

interface Reply {
  agentId?: string;
  existing?: boolean;
  traceId?: string;
  error?: { code: string; message: string };
}

const encoder = new TextEncoder();
async function submitRaw(body: string | Uint8Array): Promise<Reply> {
  const reply = await d.conn.nc.request(d.subjects.submit(), typeof body === 'string' ? encoder.encode(body) : body, { timeout: 10_000 });
  return JSON.parse(reply.string()) as Reply;
}

/** The dead letters intake wrote, oldest first, as their code header and the subject they came on. */
async function deadLetters(): Promise<{ code: string | undefined; subject: string | undefined; reason: string | undefined }[]> {
  const names = resourceNames(d.prefix);
  const jsm = await d.conn.jsm();
  const info = await jsm.streams.info(names.streams.dlq);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(names.streams.dlq, { seq }).catch(() => undefined);
    if (!m) continue;
    out.push({ code: m.header.get(Header.DeadLetterCode), subject: m.header.get(Header.DeadLetterSubject), reason: m.header.get(Header.DeadLetterReason) });
  }
  return out;
}

describe('duplicate submits', () => {
  it('of 20 pairs fired at once with the same agentId, exactly one of each pair starts the agent; the other is told it exists, with the first trace', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `race-${i}`);
    const body = (agentId: string) => JSON.stringify({ agentId, goal: 'nap', agent: 'sleeper', input: { delayMs: 600_000 } });
    const replies = await Promise.all(ids.flatMap((id) => [submitRaw(body(id)), submitRaw(body(id))]));
    for (const id of ids) {
      const pair = replies.filter((r) => r.agentId === id);
      expect(pair).toHaveLength(2);
      const fresh = pair.filter((r) => !r.existing);
      const told = pair.filter((r) => r.existing === true);
      expect(fresh).toHaveLength(1);
      expect(told).toHaveLength(1);
      expect(fresh[0]!.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(told[0]!.traceId).toBe(fresh[0]!.traceId);
    }
    // The agent that runs is the first one's: its record carries that trace.
    for (const id of ids.slice(0, 3)) {
      const r = await d.waitForStatus(id, ['running']);
      expect(traceIdOf(r.trace)).toBe(replies.find((x) => x.agentId === id && !x.existing)!.traceId);
    }
  });

  it('later, a submit with the same id is told it exists, with the trace the agent began with', async () => {
    const first = await submitRaw(JSON.stringify({ agentId: 'later-1', goal: 'nap', agent: 'sleeper', input: { delayMs: 600_000 } }));
    expect(first.existing).toBeUndefined();
    const again = await submitRaw(JSON.stringify({ agentId: 'later-1', goal: 'something else', agent: 'sleeper' }));
    expect(again).toMatchObject({ agentId: 'later-1', existing: true, traceId: first.traceId });
    const e = await d.agents.get('later-1');
    expect(decodeRecord(e!.value).goal).toBe('nap');
  });
});

describe('deep and huge goals', () => {
  it('a goal nested 2,000 deep is refused with ERR_INVALID, dead-lettered with the reason, and the host keeps serving', async () => {
    const deep = `{"goal":"deep","agent":"sleeper","input":${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}}`;
    const r = await submitRaw(deep);
    expect(r.agentId).toBeUndefined();
    expect(r.error?.code).toBe('ERR_INVALID');
    expect(r.error?.message).toMatch(/nests deeper than 48 levels/);

    const arrays = await submitRaw(`{"goal":"deep","input":{"a":${'['.repeat(5000)}${']'.repeat(5000)}}}`);
    expect(arrays.error?.code).toBe('ERR_INVALID');

    const ok = await submitRaw(JSON.stringify({ goal: 'still here?', agent: 'sleeper', input: { delayMs: 10 } }));
    expect(ok.agentId).toBeDefined();
    await d.waitForStatus(ok.agentId!, ['done']);
  });

  it('a goal of 2 MiB is refused with ERR_TOO_LARGE, dead-lettered, and the host keeps serving', async () => {
    const r = await submitRaw(JSON.stringify({ goal: 'x'.repeat(2 * 1024 * 1024), agent: 'sleeper' }));
    expect(r.error?.code).toBe('ERR_TOO_LARGE');
    expect(r.error?.message).toMatch(/2097\d+ bytes; the limit is 1048576/);

    const ok = await submitRaw(JSON.stringify({ goal: 'still here?', agent: 'sleeper', input: { delayMs: 10 } }));
    await d.waitForStatus(ok.agentId!, ['done']);

    const letters = await deadLetters();
    expect(letters.filter((l) => l.subject === d.subjects.submit()).map((l) => l.code)).toEqual(['ERR_INVALID', 'ERR_INVALID', 'ERR_TOO_LARGE']);
    expect(letters.find((l) => l.code === 'ERR_TOO_LARGE')?.reason).toMatch(/limit is 1048576/);
  });

  it('a goal message nested 2,000 deep published straight into an inbox is dead-lettered by the host, which keeps serving', async () => {
    const deep = `{"v":1,"kind":"goal","agentId":"deep-inbox","goal":"deep","at":1,"input":${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}}`;
    await d.conn.js.publish(d.subjects.agentIn('deep-inbox', 'goal'), encoder.encode(deep));
    const ok = await submitRaw(JSON.stringify({ goal: 'still here?', agent: 'sleeper', input: { delayMs: 10 } }));
    await d.waitForStatus(ok.agentId!, ['done']);
    // The bad message is dead-lettered (asynchronously to the submit above): wait for it, bounded.
    let found: Awaited<ReturnType<typeof deadLetters>> = [];
    for (let i = 0; i < 50 && !found.length; i++) {
      found = (await deadLetters()).filter((l) => l.subject === d.subjects.agentIn('deep-inbox', 'goal'));
      if (!found.length) await d.conn.nc.flush();
    }
    expect(found.map((l) => l.code)).toEqual(['ERR_INVALID']);
    expect(await d.record('deep-inbox')).toBeUndefined();
  });

  it('the SDK and the CLI refuse a deep or huge goal before sending it, saying what is wrong', async () => {
    const client = await createClient(d.conn, d.prefix);
    let deep: unknown = 1;
    for (let i = 0; i < 2000; i++) deep = { a: deep };
    const deepErr = await client.submit('deep', { agent: 'sleeper', input: { deep } }).catch((e: unknown) => e);
    expect(deepErr).toBeInstanceOf(ClientError);
    expect(deepErr).toMatchObject({ reason: 'ERR_INVALID', message: expect.stringMatching(/nests deeper than 48/) });
    const hugeErr = await client.submit('x'.repeat(2 * 1024 * 1024), { agent: 'sleeper' }).catch((e: unknown) => e);
    expect(hugeErr).toMatchObject({ reason: 'ERR_TOO_LARGE', message: expect.stringMatching(/the limit is 1048576/) });

    const r = await runProcess(process.execPath, [cli, 'submit', 'deep', '--agent', 'sleeper', '--input', `{"a":${'['.repeat(2000)}${']'.repeat(2000)}}`], {
      env: { ...process.env, ...d.env('submitter') },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nests deeper than 48 levels/);
  });
});
