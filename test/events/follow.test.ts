import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@errand/client';
import { startMockLlm, type MockLlm } from '@errand/llm';
import { DeliverPolicy } from '@errand/nats';
import { credsInfo } from '@errand/nats/internal';
import {
  decodeMessage,
  Header,
  isEndingEvent,
  JSON_CONTENT_TYPE,
  MESSAGE_VERSION,
  MSGPACK_CONTENT_TYPE,
  resourceNames,
  type ProgressEvent,
  type WireFormat,
} from '@errand/protocols';
import { createDeployment, inputMessage, runProcess, startProcess, startTestServer, startTestToolRunner, type Deployment, type TestProcess, type TestServer, type TestToolRunner } from '@errand/testing';
import { readSse } from '../../services/gateway/test/helpers.js';

// Progress any client can read (#17): events carry Content-Type in both formats, a deployment can
// write them as JSON, every reader takes both, the ending event is an agent's last, and the Python
// example (examples/python/follow.py, nats-py) follows an agent to its end and resumes from a
// stream sequence.
//
// These deployments run on a server without credentials; one test runs the Python follower on a
// server of its own that requires them, connecting as the submitter (nats-py's `nkeys` extra, which
// this machine's package index does not carry, or PyNaCl, which follow.py signs with instead).

const exec = promisify(execFile);
const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));
const followPy = fileURLToPath(new URL('../../examples/python/follow.py', import.meta.url));
const TOKEN = 'follow-token-0123456789abcdef';

let srv: TestServer;
let mock: MockLlm;
let home: string;
/** One deployment per event format, each with a host, a planner and test tools; the JSON one with a gateway. */
const deployments = {} as Record<WireFormat, { d: Deployment; tools: TestToolRunner[]; host: TestProcess; gatewayUrl?: string }>;
/** Holds the `slow` tool's call until the test lets it answer (after the agent was cancelled). */
const slow = gate();
const slowCalled = gate();

function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

const plan = { name: 'update_plan', arguments: { tasks: [{ id: '1', title: 'Check Oslo', status: 'in_progress' }] } };
const weatherCall = { name: 'weather', arguments: { city: 'Oslo' } };
/** A run with a plan, a tool call and an answer, for the goal named `tag`. */
const run = (tag: string) => [
  { match: tag, reply: { content: 'Checking.', toolCalls: [plan, weatherCall] } },
  { match: tag, reply: { content: 'Oslo has snow.' } },
];

beforeAll(async () => {
  srv = await startTestServer({ auth: false });
  home = await mkdtemp(join(tmpdir(), 'errand-events-home-'));
  mock = await startMockLlm({
    steps: [
      ...run('END-DONE'),
      { match: 'END-FAILED', error: { status: 400, message: 'the model refuses this request' } },
      { match: 'END-CANCELLED', reply: { toolCalls: [{ name: 'slow', arguments: {} }] } },
      ...run('READERS-JSON'),
      ...run('PY-msgpack'),
      ...run('PY-json'),
      ...run('DOC-PY'),
    ],
  });
  for (const format of ['msgpack', 'json'] as const) {
    const env: Record<string, string> = { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_GATEWAY_TOKENS: `alice:${TOKEN}` };
    // msgpack is the default: that deployment does not set it.
    if (format === 'json') env.ERRAND_EVENT_FORMAT = 'json';
    const d = await createDeployment(srv, { env });
    const tools = [await startTestToolRunner(d, 'weather', (r) => ({ output: `${(r.args as { city: string }).city}: snow` }))];
    if (format === 'msgpack') {
      tools.push(
        await startTestToolRunner(d, 'slow', async () => {
          slowCalled.open();
          await slow.wait;
          return { output: 'too late' };
        }),
      );
    }
    const [host] = await Promise.all([d.start('host'), d.start('planner')]);
    deployments[format] = { d, tools, host };
    if (format === 'json') {
      const gateway = await d.start('gateway');
      deployments.json.gatewayUrl = (JSON.parse(await gateway.waitForLine(/"msg":"gateway ready"/)) as { url: string }).url;
    }
  }
});

afterAll(async () => {
  slow.open();
  for (const { d, tools } of Object.values(deployments)) {
    await Promise.all(tools.map((t) => t.stop()));
    await d.stopAll();
  }
  await mock?.close();
  await srv?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

interface StoredEvent {
  seq: number;
  subject: string;
  contentType: string | undefined;
  data: Uint8Array;
  event: ProgressEvent;
}

const decode = (data: Uint8Array, contentType: string | undefined) => decodeMessage(data, { contentType }) as ProgressEvent;

/** Every event of the agent stored now, in stream order. */
async function storedEvents(d: Deployment, agentId: string): Promise<StoredEvent[]> {
  const consumer = await d.conn.js.consumers.get(resourceNames(d.prefix).streams.events, { filter_subjects: d.subjects.agentEventAll(agentId) });
  const backlog = (await consumer.info(true)).num_pending;
  const out: StoredEvent[] = [];
  if (backlog === 0) return out;
  const messages = await consumer.consume();
  const timer = setTimeout(() => void messages.close(), 15_000);
  try {
    for await (const m of messages) {
      const contentType = m.headers?.get(Header.ContentType) || undefined;
      out.push({ seq: m.seq, subject: m.subject, contentType, data: m.data, event: decode(m.data, contentType) });
      if (out.length >= backlog) break;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
  return out;
}

/**
 * Follows an agent live from its first event (an ordered consumer, as a client in any language
 * would) and resolves with what it read up to and including the ending event.
 */
async function followToEnd(d: Deployment, agentId: string): Promise<{ read: Promise<StoredEvent[]> }> {
  const consumer = await d.conn.js.consumers.get(resourceNames(d.prefix).streams.events, { filter_subjects: d.subjects.agentEventAll(agentId), deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume();
  const read = (async () => {
    const out: StoredEvent[] = [];
    const timer = setTimeout(() => void messages.close(), 60_000);
    try {
      for await (const m of messages) {
        const contentType = m.headers?.get(Header.ContentType) || undefined;
        const event = decode(m.data, contentType);
        out.push({ seq: m.seq, subject: m.subject, contentType, data: m.data, event });
        if (isEndingEvent(event)) break;
      }
    } finally {
      clearTimeout(timer);
      await messages.close();
    }
    return out;
  })();
  return { read };
}

/**
 * Resolves once the hosts have applied and acknowledged every inbox message (a host acks a step
 * only after publishing its events), and `also` holds. Bounded: 15 s.
 */
async function hostsIdle(d: Deployment, also: () => Promise<boolean> = async () => true): Promise<void> {
  const jsm = await d.conn.jsm();
  const inbox = resourceNames(d.prefix).streams.inbox;
  let last = '';
  for (let i = 0; i < 300; i++) {
    const info = await jsm.consumers.info(inbox, 'host');
    const also_ = await also();
    if (info.num_pending === 0 && info.num_ack_pending === 0 && also_) return;
    last = `${info.num_pending} pending, ${info.num_ack_pending} unacknowledged${also_ ? '' : ', the awaited condition not met'}`;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the hosts did not finish their inbox messages within 15 s: ${last}`);
}

const kindsOf = (events: readonly StoredEvent[]) => events.map((e) => e.event.kind);

describe('the ending event is an agent\'s last event', () => {
  it('done, failed and cancelled: a live follower stops at it, and nothing of the agent is stored after it', async () => {
    const { d } = deployments.msgpack;
    const ids = { done: 'end-done', failed: 'end-failed', cancelled: 'end-cancelled' } as const;
    const followers = {
      done: await followToEnd(d, ids.done),
      failed: await followToEnd(d, ids.failed),
      cancelled: await followToEnd(d, ids.cancelled),
    };
    await d.submit({ agentId: ids.done, goal: 'END-DONE: the weather in Oslo' });
    await d.submit({ agentId: ids.failed, goal: 'END-FAILED: anything' });
    await d.submit({ agentId: ids.cancelled, goal: 'END-CANCELLED: something slow' });

    await slowCalled.wait;
    await d.send({ v: MESSAGE_VERSION, kind: 'control', agentId: ids.cancelled, action: 'cancel', reason: 'enough', at: Date.now() });
    expect((await d.waitForStatus(ids.done, ['done', 'failed', 'cancelled'])).status).toBe('done');
    expect((await d.waitForStatus(ids.failed, ['done', 'failed', 'cancelled'])).status).toBe('failed');
    expect((await d.waitForStatus(ids.cancelled, ['done', 'failed', 'cancelled'])).status).toBe('cancelled');
    // The cancelled agent's tool answers late (the only message to this deployment's inboxes from
    // here on); the host ignores the answer and publishes nothing.
    const jsm = await d.conn.jsm();
    const inbox = resourceNames(d.prefix).streams.inbox;
    const before = (await jsm.streams.info(inbox)).state.last_seq;
    slow.open();
    await hostsIdle(d, async () => (await jsm.streams.info(inbox)).state.last_seq > before);

    const expected = { done: 'event.done', failed: 'event.failed', cancelled: 'event.state' } as const;
    for (const outcome of ['done', 'failed', 'cancelled'] as const) {
      const followed = await followers[outcome].read;
      const stored = await storedEvents(d, ids[outcome]);
      const last = stored.at(-1)!;
      expect(last.event.kind, `${outcome}: ${kindsOf(stored).join(', ')}`).toBe(expected[outcome]);
      if (outcome === 'cancelled') expect(last.event).toMatchObject({ kind: 'event.state', status: 'cancelled' });
      // Exactly one ending event, the last; the follower that stopped there read every event.
      expect(stored.filter((e) => isEndingEvent(e.event))).toHaveLength(1);
      expect(followed.map((e) => e.seq)).toEqual(stored.map((e) => e.seq));
      // The last step's journal entry and state change came before it.
      const finalStatus = outcome === 'cancelled' ? 'cancelled' : outcome;
      expect(stored.some((e) => e.event.kind === 'event.state' && e.event.status === finalStatus)).toBe(true);
      if (outcome !== 'cancelled') expect(stored.some((e) => e.event.kind === 'event.step' && e.event.status === finalStatus)).toBe(true);
      // msgpack is the default, and says so.
      for (const e of stored) expect(e.contentType, `${e.subject} at ${e.seq}`).toBe(MSGPACK_CONTENT_TYPE);
    }
  });
});

describe('ERRAND_EVENT_FORMAT=json', () => {
  it('writes every event as JSON with its Content-Type, and the client, `errand watch`, replay and the gateway read them to the end', async () => {
    const { d, gatewayUrl } = deployments.json;
    const agentId = 'readers-json';
    await d.submit({ agentId, goal: 'READERS-JSON: the weather in Oslo' });
    expect((await d.waitForStatus(agentId, ['done', 'failed', 'cancelled'])).output).toMatchObject({ answer: 'Oslo has snow.' });
    await hostsIdle(d);
    const stored = await storedEvents(d, agentId);
    expect(kindsOf(stored)).toEqual(expect.arrayContaining(['event.step', 'event.state', 'event.plan', 'event.tool', 'event.usage', 'event.done']));
    expect(stored.at(-1)!.event.kind).toBe('event.done');
    for (const e of stored) {
      expect(e.contentType, `${e.subject} at ${e.seq}`).toBe(JSON_CONTENT_TYPE);
      // Plain JSON text any language parses, the same event the codec validates.
      expect(JSON.parse(new TextDecoder().decode(e.data))).toEqual(JSON.parse(JSON.stringify(e.event)));
    }

    // The client SDK: watch ends by itself at the ending event, having read them all.
    const client = await createClient(d.conn, d.prefix);
    const watched: ProgressEvent[] = [];
    for await (const e of client.watch(agentId)) watched.push(e);
    expect(watched.map((e) => e.kind)).toEqual(kindsOf(stored));
    expect(watched).toEqual(stored.map((e) => e.event));

    // The CLI: `errand watch --json` prints each event and exits 0 (the agent is done).
    const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...rest } = process.env;
    const watch = await runProcess(process.execPath, [cli, 'watch', agentId, '--json'], { env: { ...rest, HOME: home, ...d.env('operator') } });
    expect(watch.code, watch.stderr).toBe(0);
    const printed = watch.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { kind?: string });
    expect(printed.map((e) => e.kind).filter((k) => k?.startsWith('event.'))).toEqual(kindsOf(stored));

    // Replay reads the JSON journal (the step events) and reaches the stored record.
    const journal = await client.journal(agentId);
    expect(journal.map((j) => j.step)).toEqual(stored.filter((e) => e.event.kind === 'event.step').map((e) => (e.event as { step: number }).step));
    const replay = await runProcess(process.execPath, [cli, 'replay', agentId], { env: { ...rest, HOME: home, ...d.env('operator') } });
    expect(replay.code, `${replay.stdout}\n${replay.stderr}`).toBe(0);

    // The gateway's server-sent events: ids are the stream sequences, data the decoded events.
    const response = await fetch(`${gatewayUrl}/api/agents/${agentId}/events`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(response.status).toBe(200);
    const { events } = await readSse(response, (es) => es.some((e) => e.event === 'event.done'));
    const sse = events.filter((e) => e.id !== undefined);
    expect(sse.map((e) => Number(e.id))).toEqual(stored.map((e) => e.seq));
    expect(sse.map((e) => e.event)).toEqual(kindsOf(stored));
    expect(JSON.parse(sse.at(-1)!.data)).toMatchObject({ kind: 'event.done', agentId, output: { answer: 'Oslo has snow.' } });
  });
});

/** python3 with nats-py and msgpack (installed with pip into a cache folder when missing), or why not. */
async function pythonWithDeps(): Promise<{ env: Record<string, string | undefined> } | { skip: string }> {
  const target = process.env.ERRAND_PYTHON_DEPS || join(tmpdir(), 'errand-python-deps');
  const env = { ...process.env, PYTHONPATH: [target, process.env.PYTHONPATH].filter(Boolean).join(':'), PYTHONDONTWRITEBYTECODE: '1' };
  const importable = (modules = 'nats, msgpack') =>
    exec('python3', ['-c', `import ${modules}`], { env, timeout: 30_000 }).then(
      () => true,
      () => false,
    );
  const pip = (...packages: string[]) =>
    exec('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--retries', '0', '--timeout', '15', '--target', target, ...packages], { env, timeout: 180_000 });
  // PyNaCl lets follow.py sign with credentials where nats-py's nkeys extra is missing; the test
  // that needs it says so when it cannot be had.
  const withSigner = async () => {
    if (!(await importable('nacl.signing'))) await pip('pynacl').catch(() => undefined);
    return { env };
  };
  try {
    await exec('python3', ['--version'], { timeout: 30_000 });
  } catch (err) {
    return { skip: `python3 is not available (${(err as Error).message.split('\n')[0]}); install Debian's python3 to run the Python follower example` };
  }
  if (await importable()) return withSigner();
  try {
    await pip('nats-py', 'msgpack');
  } catch (err) {
    return { skip: `pip could not install nats-py and msgpack into ${target} (${(err as Error).message.split('\n').slice(0, 3).join(' ')}); install them (python3 -m pip install nats-py msgpack) to run the Python follower example` };
  }
  return (await importable()) ? withSigner() : { skip: `nats-py and msgpack were installed into ${target} but python3 cannot import them` };
}

interface PyLine {
  seq: number;
  subject: string;
  kind: string;
  contentType: string;
  event: Record<string, unknown>;
}

async function exitOf(p: TestProcess): Promise<{ code: number | null; lines: PyLine[]; stderr: string }> {
  const { code } = await p.exited;
  const lines = p
    .stdout()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as PyLine);
  return { code, lines, stderr: p.stderr() };
}

describe('the Python follower example (examples/python/follow.py, nats-py)', () => {
  let python: Awaited<ReturnType<typeof pythonWithDeps>>;
  beforeAll(async () => {
    python = await pythonWithDeps();
    // Said in the output, not only as a skipped test: a missing toolchain must be visible.
    if ('skip' in python) process.stderr.write(`SKIPPED the Python follower tests: ${python.skip}\n`);
  }, 240_000);

  it.for(['json', 'msgpack'] as const)('reads %s events live to the final one, and resumes from a sequence after a disconnect with no gap and no repeat', async (format, ctx) => {
    if ('skip' in python) return ctx.skip(python.skip);
    const { env } = python;
    const { d } = deployments[format];
    const agentId = `py-${format}`;
    const py = (args: string[]) => startProcess('python3', [followPy, agentId, '--server', srv.url, '--prefix', d.prefix, '--timeout', '45', ...args], { env });

    // Started before the agent exists: it waits for the first events, reads three, and disconnects.
    const first = py(['--max', '3']);
    await d.submit({ agentId, goal: `PY-${format}: the weather in Oslo` });
    const a = await exitOf(first);
    expect(a.code, a.stderr).toBe(0);
    expect(a.lines).toHaveLength(3);
    expect(a.stderr).toContain(`resume with --after ${a.lines[2]!.seq}`);

    // A new connection resumes after the last sequence it handled and reads to the ending event.
    const b = await exitOf(py(['--after', String(a.lines[2]!.seq)]));
    expect(b.code, b.stderr).toBe(0);
    const lines = [...a.lines, ...b.lines];

    await hostsIdle(d);
    const stored = await storedEvents(d, agentId);
    // No gap, no repeat: exactly the agent's events, in stream order, the ending event last.
    expect(lines.map((l) => l.seq)).toEqual(stored.map((e) => e.seq));
    expect(lines.at(-1)!.kind).toBe('event.done');
    expect(lines.at(-1)!.event).toMatchObject({ kind: 'event.done', agentId, output: { answer: 'Oslo has snow.' } });
    // Python decoded each body (by its Content-Type) to the same event the Node codec reads.
    for (const [i, l] of lines.entries()) {
      expect(l.contentType).toBe(format === 'json' ? JSON_CONTENT_TYPE : MSGPACK_CONTENT_TYPE);
      expect(l.subject).toBe(stored[i]!.subject);
      expect(l.event).toEqual(JSON.parse(JSON.stringify(stored[i]!.event)));
    }
  });

  it('the Python example in docs/protocol.md follows an agent to its ending event, and resumes after a sequence', async (ctx) => {
    if ('skip' in python) return ctx.skip(python.skip);
    const doc = await readFile(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8');
    const section = doc.slice(doc.indexOf('## Following an agent from any language'));
    const snippet = /```python\n([\s\S]*?)```/.exec(section)?.[1];
    expect(snippet, 'a python block in the section').toBeDefined();
    const { d } = deployments.msgpack;
    const agentId = 'doc-py';
    await d.submit({ agentId, goal: 'DOC-PY: the weather in Oslo' });
    expect((await d.waitForStatus(agentId, ['done', 'failed', 'cancelled'])).status).toBe('done');
    await hostsIdle(d);
    // The snippet is written for the default prefix and a local server: point it at this deployment.
    const script = snippet!
      .replace('nats://127.0.0.1:4222', srv.url)
      .replace('f"errand.agent.', `f"${d.prefix}.agent.`)
      .replace('"ERRAND_EVENTS"', `"${resourceNames(d.prefix).streams.events}"`);
    const dir = await mkdtemp(join(tmpdir(), 'errand-doc-snippet-'));
    try {
      await writeFile(join(dir, 'follow_doc.py'), script);
      const stored = await storedEvents(d, agentId);
      const all = await runProcess('python3', [join(dir, 'follow_doc.py'), agentId], { env: python.env });
      expect(all.code, all.stderr).toBe(0);
      const printed = all.stdout.trim().split('\n').map((l) => l.split(' '));
      expect(printed).toEqual(stored.map((e) => [String(e.seq), e.event.kind]));
      const rest = await runProcess('python3', [join(dir, 'follow_doc.py'), agentId, String(stored[2]!.seq)], { env: python.env });
      expect(rest.code, rest.stderr).toBe(0);
      expect(rest.stdout.trim().split('\n').map((l) => l.split(' '))).toEqual(stored.slice(3).map((e) => [String(e.seq), e.event.kind]));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('follows an agent on a deployment with credentials, as the submitter identity (--creds, --inbox-prefix)', async (ctx) => {
    if ('skip' in python) return ctx.skip(python.skip);
    const { env } = python;
    // nats-py signs the server's challenge with its nkeys extra, or follow.py does with PyNaCl.
    const signer = await exec('python3', ['-c', 'import nacl.signing'], { env, timeout: 30_000 }).then(
      () => undefined,
      () => exec('python3', ['-c', 'import nkeys'], { env, timeout: 30_000 }).then(
        () => undefined,
        () => 'neither PyNaCl nor nkeys is importable (pip install pynacl)',
      ),
    );
    if (signer) {
      process.stderr.write(`SKIPPED the Python follower with credentials: ${signer}\n`);
      return ctx.skip(signer);
    }
    // A server of its own that, as a deployment does, lets in only users of its operator.
    const secured = await startTestServer();
    try {
      const d = await createDeployment(secured, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents', ERRAND_EVENT_FORMAT: 'json' } });
      try {
        await d.start('host');
        const agentId = 'py-creds';
        await d.submit({ agentId, goal: 'add two numbers', agent: 'tally', input: { expect: 1 } });
        await d.send(inputMessage(agentId, '5'));
        expect((await d.waitForStatus(agentId, ['done'])).status).toBe('done');
        const credsFile = d.env('submitter').NATS_CREDS!;
        const { replyPrefix } = credsInfo(await readFile(credsFile, 'utf8'));
        const follow = (creds: string) => runProcess('python3', [followPy, agentId, '--server', secured.url, '--prefix', d.prefix, '--timeout', '30', '--creds', creds, '--inbox-prefix', replyPrefix!], { env });
        const r = await follow(credsFile);
        expect(r.code, r.stderr).toBe(0);
        const kinds = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as PyLine).kind);
        expect(kinds.at(-1)).toBe('event.done');
        expect(kinds).toContain('event.step');
        // Another operator's credentials are refused by the server: the follower exits non-zero.
        const stranger = await startTestServer();
        try {
          const strangerCreds = stranger.env('submitter', d.prefix).then((e) => e.NATS_CREDS!);
          const refused = await follow(await strangerCreds);
          expect(refused.code, refused.stderr).toBe(5);
          expect(refused.stderr).toContain(`${secured.url} refused the connection: authorization failed (the credentials in`);
        } finally {
          await stranger.stop();
        }
      } finally {
        await d.stopAll();
      }
    } finally {
      await secured.stop();
    }
  }, 120_000);

  it('refuses bad arguments with a clear message', async (ctx) => {
    if ('skip' in python) return ctx.skip(python.skip);
    const r = await runProcess('python3', [followPy, 'some-agent', '--after', '-1'], { env: python.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--after must be 0 or more');
    const creds = await runProcess('python3', [followPy, 'some-agent', '--creds', '/nonexistent.creds'], { env: python.env });
    expect(creds.code).toBe(2);
    expect(creds.stderr).toContain('with --creds give --inbox-prefix too');
  });
});

describe('a deployment that changes its event format', () => {
  it('holds both formats in one agent\'s events, and the client and the Python follower read each by its Content-Type', async () => {
    // Last in the file: it replaces the JSON deployment's host with a msgpack one.
    const { d, host } = deployments.json;
    const agentId = 'mixed-formats';
    // The example agent `tally` waits for two numbers as input, then ends with their sum.
    await d.submit({ agentId, goal: 'add two numbers', agent: 'tally', input: { expect: 2 } });
    await d.send(inputMessage(agentId, '3'));
    await d.waitForRecord(agentId, (r) => r.step >= 2);
    host.signal('SIGTERM');
    await host.exited;
    await d.start('host', { ERRAND_EVENT_FORMAT: 'msgpack' });
    await d.send(inputMessage(agentId, '4'));
    expect((await d.waitForStatus(agentId, ['done', 'failed', 'cancelled'])).output).toMatchObject({ sum: 7 });
    await hostsIdle(d);

    const stored = await storedEvents(d, agentId);
    expect(new Set(stored.map((e) => e.contentType))).toEqual(new Set([JSON_CONTENT_TYPE, MSGPACK_CONTENT_TYPE]));
    expect(stored.at(-1)).toMatchObject({ contentType: MSGPACK_CONTENT_TYPE, event: { kind: 'event.done' } });

    const client = await createClient(d.conn, d.prefix);
    const watched: ProgressEvent[] = [];
    for await (const e of client.watch(agentId)) watched.push(e);
    expect(watched).toEqual(stored.map((e) => e.event));

    const python = await pythonWithDeps();
    if ('skip' in python) return;
    const r = await runProcess('python3', [followPy, agentId, '--server', srv.url, '--prefix', d.prefix, '--timeout', '45'], { env: python.env });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as PyLine);
    expect(lines.map((l) => [l.seq, l.contentType])).toEqual(stored.map((e) => [e.seq, e.contentType]));
    expect(lines.map((l) => l.event)).toEqual(stored.map((e) => JSON.parse(JSON.stringify(e.event))));
  });
});
