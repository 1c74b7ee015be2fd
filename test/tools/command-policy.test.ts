import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { headers, publishMessage } from '@errand/nats';
import { callHash, createCommandSigner, decodeMessage, encodeMessage, generateCommandKeys, Header, MESSAGE_VERSION, type Message } from '@errand/protocols';
import { collect, createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

// Policy enforced where the tool runs: the tool-runner runs only commands a host of the deployment
// signed, and an `ask` tool only with approval evidence for the exact arguments — whatever a
// publisher, a custom machine or an agent message tries. Real nats-server, real service processes.

const rogueModule = fileURLToPath(new URL('../fixtures/rogue-agent.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

let srv: TestServer;
let home: string;
beforeAll(async () => {
  srv = await startTestServer();
  home = await mkdtemp(join(tmpdir(), 'errand-policy-home-'));
});
afterAll(async () => {
  await srv?.stop();
  await rm(home, { recursive: true, force: true });
});

const exists = (path: string) => access(path).then(() => true, () => false);


let seq = 0;
function toolRequest(tool: string, args: unknown, extra: Partial<Message<'tool.request'>> = {}): Message<'tool.request'> {
  seq += 1;
  return { v: MESSAGE_VERSION, kind: 'tool.request', key: `x1:${seq}:0`, agentId: 'x1', step: seq, at: Date.now(), callId: `c${seq}`, tool, args, attempt: 1, ...extra };
}

/** Publishes a command on the work subject as an attacker (or a host) would: signed or not, and how. */
async function publish(d: Deployment, req: Message<'tool.request'>, signature: { sign?: (body: Uint8Array) => string; body?: Message<'tool.request'> } = {}) {
  const signed = encodeMessage(req).data;
  const h = headers();
  if (signature.sign) h.set(Header.Signature, signature.sign(signed));
  // `body`: what is published instead of what was signed (altered on the way).
  const data = signature.body ? encodeMessage(signature.body).data : signed;
  await d.conn.js.publish(d.subjects.workTool(req.tool), data, { headers: h, msgID: req.key });
}

describe('the tool-runner enforces its own policy on signed commands', () => {
  it('refuses to start without the deployment verify key, saying how to get one', async () => {
    const d = await createDeployment(srv);
    try {
      const p = d.spawn('tool-runner', { ERRAND_VERIFY_KEY: '' });
      const exit = await p.exited;
      expect(exit.code).toBe(2);
      const said = p.stdout() + p.stderr();
      expect(said).toContain('ERRAND_VERIFY_KEY');
      expect(said).toContain('errand creds');
      expect(said).not.toContain(d.keys.signingKeyFile);
    } finally {
      await d.stopAll();
    }
  });

  it('a tool.request no host signed — unsigned, signed by another key, or altered after signing — is dead-lettered and nothing runs', async () => {
    const d = await createDeployment(srv);
    const victim = join(d.workspace, 'victim.txt');
    await writeFile(victim, 'precious');
    const dlq = collect(d.conn.nc, d.subjects.dlq('tool-fs_delete'));
    const results = collect(d.conn.nc, d.subjects.agentIn('x1', 'tool'));
    try {
      const runner = await d.start('tool-runner');
      const evidence = (args: unknown) => ({ requestId: 'tools-1', argsHash: callHash('fs_delete', args), by: { id: 'boss', channel: 'cli' }, at: Date.now() });
      const target = { path: 'victim.txt' };
      const other = createCommandSigner(generateCommandKeys().privateKeyPem);
      const attempts: [string, () => Promise<void>, RegExp][] = [
        ['unsigned', () => publish(d, toolRequest('fs_delete', target, { approval: evidence(target) })), /no signature/],
        ['another key', () => publish(d, toolRequest('fs_delete', target, { approval: evidence(target) }), { sign: other.sign }), /another key or altered/],
        [
          'altered',
          async () => {
            // A host signed a harmless approved call; its args were changed on the way.
            const harmless = toolRequest('fs_delete', { path: 'gone-anyway.txt' }, { approval: evidence({ path: 'gone-anyway.txt' }) });
            await publish(d, harmless, { sign: d.keys.signer.sign, body: { ...harmless, args: target, approval: evidence(target) } });
          },
          /another key or altered/,
        ],
      ];
      for (const [what, attempt, reason] of attempts) {
        await attempt();
        const dead = await dlq.next();
        expect(dead.headers?.get(Header.DeadLetterCode), what).toBe('ERR_BAD_SIGNATURE');
        expect(dead.headers?.get(Header.DeadLetterReason), what).toMatch(reason);
        expect(await exists(victim), what).toBe(true);
      }
      await runner.waitForLine(/dead-lettered: refused tool.request/);
      // None of them reached the tool: no result was ever sent.
      await publish(d, toolRequest('fs_list', {}), { sign: d.keys.signer.sign });
      const first = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(first.tool).toBe('fs_list');
      expect(first.error).toBeUndefined();
    } finally {
      dlq.stop();
      results.stop();
      await d.stopAll();
    }
  });

  it('a validly signed `ask` call runs only with evidence for its exact arguments; `deny` never runs', async () => {
    const d = await createDeployment(srv);
    const victim = join(d.workspace, 'victim.txt');
    const notes = join(d.workspace, 'notes.txt');
    await writeFile(victim, 'precious');
    await writeFile(notes, 'original');
    const results = collect(d.conn.nc, d.subjects.agentIn('x1', 'tool'));
    const answer = async (req: Message<'tool.request'>) => {
      await publish(d, req, { sign: d.keys.signer.sign });
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.key).toBe(req.key);
      return r;
    };
    try {
      await d.start('tool-runner', { ERRAND_TOOL_SETTINGS: JSON.stringify({ fs_list: { policy: 'deny' } }) });
      const by = { id: 'boss', channel: 'cli' };
      const target = { path: 'victim.txt' };

      const none = await answer(toolRequest('fs_delete', target));
      expect(none.error).toMatchObject({ code: 'ERR_APPROVAL_REQUIRED', retryable: false, message: expect.stringContaining('carries no approval') });
      const elsewhere = await answer(toolRequest('fs_delete', target, { approval: { requestId: 'tools-1', argsHash: callHash('fs_delete', { path: 'other.txt' }), by, at: 1 } }));
      expect(elsewhere.error).toMatchObject({ code: 'ERR_APPROVAL_REQUIRED', message: expect.stringContaining('other arguments') });
      const otherTool = await answer(toolRequest('fs_delete', target, { approval: { requestId: 'tools-1', argsHash: callHash('fs_read', target), by, at: 1 } }));
      expect(otherTool.error?.code).toBe('ERR_APPROVAL_REQUIRED');
      expect(await exists(victim)).toBe(true);

      // askIfArgs: fs_write is `auto`, but overwriting asks.
      const overwrite = await answer(toolRequest('fs_write', { path: 'notes.txt', content: 'clobbered', overwrite: true }));
      expect(overwrite.error?.code).toBe('ERR_APPROVAL_REQUIRED');
      expect(await readFile(notes, 'utf8')).toBe('original');
      const fresh = await answer(toolRequest('fs_write', { path: 'new.txt', content: 'hi' }));
      expect(fresh.error).toBeUndefined();

      const denied = await answer(toolRequest('fs_list', {}));
      expect(denied.error).toMatchObject({ code: 'ERR_TOOL_DENIED', retryable: false });

      const approved = await answer(toolRequest('fs_delete', target, { approval: { requestId: 'tools-1', argsHash: callHash('fs_delete', target), by, at: 1 } }));
      expect(approved.error).toBeUndefined();
      expect(await exists(victim)).toBe(false);
    } finally {
      results.stop();
      await d.stopAll();
    }
  });

  it('a custom machine that calls an `ask` tool without asking gets ERR_APPROVAL_REQUIRED, and nothing runs', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: `@errand/agent,${rogueModule}` } });
    const victim = join(d.workspace, 'victim.txt');
    await writeFile(victim, 'precious');
    try {
      await Promise.all([d.start('host'), d.start('tool-runner')]);
      // Naming an approval request it never made does not help either.
      for (const input of [{ path: 'victim.txt' }, { path: 'victim.txt', approval: 'tools-1' }]) {
        const agentId = await d.submit({ goal: 'delete it', agent: 'rogue', input });
        const done = await d.waitForStatus(agentId, ['done', 'failed']);
        expect(done.status).toBe('done');
        expect(done.output).toEqual({ code: 'ERR_APPROVAL_REQUIRED' });
        expect(await exists(victim)).toBe(true);
      }
    } finally {
      await d.stopAll();
    }
  });
});

describe('approvals of the built-in agent are bound to its request', () => {
  it('an approval via agent.message, without or with a wrong argsHash is ignored; the right one runs the call with evidence; the run replays', async () => {
    const mock = await startMockLlm({
      steps: [
        { reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'victim.txt' } }] } },
        { expect: { contains: ['victim.txt'] }, reply: { content: 'Deleted it.' } },
      ],
    });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    const victim = join(d.workspace, 'victim.txt');
    await writeFile(victim, 'precious');
    const hostDlq = collect(d.conn.nc, d.subjects.dlq('host'));
    try {
      const [host, , runner] = await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner')]);
      const agentId = await d.submit({ goal: 'delete victim.txt', tools: ['fs_delete'] });
      const waiting = await d.waitForRecord(agentId, (r) => (r.snapshot as { value: unknown }).value === 'awaitingApproval');
      const { requestId, argsHash } = { requestId: waiting.waiting!.requestId, argsHash: waiting.waiting!.argsHash! };
      expect(waiting.waiting).toMatchObject({ kind: 'approval', calls: [{ tool: 'fs_delete', args: { path: 'victim.txt' } }] });
      expect(argsHash).toBe(waiting.approvals?.find((a) => a.requestId === requestId)?.argsHash);
      const by = { id: 'boss', channel: 'test' };

      // Another agent "approving", with and without the hash: refused before the machine.
      for (const event of [{ type: 'approval', requestId, decision: 'approve' }, { type: 'approval', requestId, decision: 'approve', argsHash, by }]) {
        const message: Message<'agent.message'> = { v: MESSAGE_VERSION, kind: 'agent.message', agentId, from: 'mallory', event, at: Date.now() };
        await d.conn.js.publish(d.subjects.agentIn(agentId, 'message'), encodeMessage(message).data);
      }
      await host.waitForLine(/message refused: an agent.message may not carry a 'approval' event/);
      // A decision about other arguments.
      await d.send({ v: MESSAGE_VERSION, kind: 'approval', agentId, requestId, decision: 'approve', argsHash: 'f00d', by, at: Date.now() });
      await host.waitForLine(/message refused: the argsHash does not match approval request/);
      // No hash at all on the approval inbox: invalid, dead-lettered.
      await d.conn.js.publish(d.subjects.agentIn(agentId, 'approval'), new TextEncoder().encode(JSON.stringify({ v: 1, kind: 'approval', agentId, requestId, decision: 'approve', by, at: Date.now() })));
      const dead = await hostDlq.next();
      expect(dead.headers?.get(Header.DeadLetterCode)).toBe('ERR_INVALID');
      expect(dead.headers?.get(Header.DeadLetterReason)).toContain('argsHash');

      const still = (await d.record(agentId))!;
      expect((still.snapshot as { value: unknown }).value).toBe('awaitingApproval');
      expect(still.approvals?.find((a) => a.requestId === requestId)?.decision).toBeUndefined();
      expect(await exists(victim)).toBe(true);

      // The right decision arrives as a person's does, through a relay with its proof: a host that
      // checks identities (a server with credentials) records a relay's person as named, and any
      // other sender as itself, so a bare publish would be recorded as unverified.
      const relay = srv.auth ? await srv.connect({ credsFile: await srv.auth.credsFile('gateway', d.prefix) }) : d.conn;
      const approval: Message<'approval'> = { v: MESSAGE_VERSION, kind: 'approval', agentId, requestId, decision: 'approve', argsHash, by, at: Date.now() };
      await publishMessage(relay, d.subjects.agentIn(agentId, 'approval'), approval, { prover: relay.identity });
      const done = await d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.status).toBe('done');
      expect(done.output).toMatchObject({ answer: 'Deleted it.' });
      expect(await exists(victim)).toBe(false);
      expect(done.approvals?.find((a) => a.requestId === requestId)).toMatchObject({ decision: 'approve', by });
      const ran = await runner.waitForLine(/"msg":"approved call"/);
      expect(ran).toContain(`"requestId":"${requestId}"`);
      expect(ran).toContain('"by":"boss"');
      expect(mock.failures).toEqual([]);

      // The journal (approval included) replays to the stored snapshot.
      const { NATS_URL: _u, ERRAND_PREFIX: _p, ERRAND_AGENT_MODULES: _m, ...rest } = process.env;
      const r = await runProcess(process.execPath, [cli, 'replay', agentId, '--verify'], { env: { ...rest, HOME: home, ...d.env('operator') } });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`verified: replaying ${agentId} gives the stored snapshot`);
    } finally {
      hostDlq.stop();
      await d.stopAll();
      await mock.close();
    }
  });
});
