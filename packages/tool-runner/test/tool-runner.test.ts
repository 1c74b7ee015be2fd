// The tool-runner library in-process against a real nats-server: what it writes to the catalog,
// how it refuses calls its own policy forbids, what it does with a call a crashed runner started,
// and where a large result goes. (test/tools runs the service process end to end.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBucket, openObjectStore } from '@errand/nats';
import { callHash, catalogKeys, createCommandVerifier, decodeMessage, ErrandError, MESSAGE_VERSION, resourceNames, type CatalogRunner, type CatalogTool, type Message } from '@errand/protocols';
import { collect, createDeployment, recordingLogger, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { startToolRunner, ToolRunnerErrorCode, type ToolRunner } from '@errand/tool-runner';
import type { Tool } from '@errand/tools';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.stop();
});


/** A tool that records its calls and returns what `output` makes of the arguments. */
function tool(name: string, settings: Partial<Omit<Tool, 'definition' | 'run'>> = {}, output: (args: unknown, signal: AbortSignal) => Promise<unknown> | unknown = (args) => ({ echoed: args })) {
  const calls: unknown[] = [];
  const t: Tool = {
    definition: { name, description: `the ${name} tool`, parameters: { type: 'object', additionalProperties: true } },
    idempotent: true,
    destructive: false,
    defaultPolicy: 'auto',
    timeoutMs: 10_000,
    ...settings,
    run: async (args, { signal }) => (calls.push(args), output(args, signal)),
  };
  return { tool: t, calls };
}

let seq = 0;
function request(agentId: string, toolName: string, args: unknown, extra: Partial<Message<'tool.request'>> = {}): Message<'tool.request'> {
  seq += 1;
  return { v: MESSAGE_VERSION, kind: 'tool.request', key: `${agentId}:${seq}:0`, agentId, step: seq, at: Date.now(), callId: `c${seq}`, tool: toolName, args, attempt: 1, ...extra };
}

async function publish(d: Deployment, cmd: Message<'tool.request'>) {
  const { data, headers } = d.signed(cmd);
  await d.conn.js.publish(d.subjects.workTool(cmd.tool), data, { headers, msgID: cmd.key });
}

const start = (d: Deployment, tools: Tool[], more: Partial<Parameters<typeof startToolRunner>[0]> = {}) =>
  startToolRunner({ conn: d.conn, prefix: d.prefix, tools, verify: createCommandVerifier(d.keys.publicKey), ...more });

describe('startToolRunner', () => {
  it('refuses to start without a verify key', async () => {
    const d = await createDeployment(srv);
    const err = await startToolRunner({ conn: d.conn, prefix: d.prefix, tools: [], verify: undefined as never }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ErrandError);
    expect((err as ErrandError).code).toBe(ToolRunnerErrorCode.NoVerifyKey);
  });

  it('writes each tool to the catalog with its settings over the tool defaults, heartbeats itself, and leaves the catalog on stop', async () => {
    const d = await createDeployment(srv);
    const catalog = await openBucket(d.conn, resourceNames(d.prefix).buckets.tools);
    const a = tool('alpha', { defaultPolicy: 'auto', idempotent: true, timeoutMs: 1000 });
    const b = tool('beta', { destructive: true, defaultPolicy: 'ask', askIfArgs: { force: true } });
    const runner = await start(d, [a.tool, b.tool], { runnerId: 'r-cat', heartbeatMs: 100, settings: { alpha: { policy: 'deny', timeoutMs: 2500 } }, sources: { beta: 'mcp:files' } });
    try {
      const alpha = JSON.parse((await catalog.get(catalogKeys.tool('alpha')))!.string()) as CatalogTool;
      expect(alpha).toMatchObject({ policy: 'deny', idempotent: true, destructive: false, timeoutMs: 2500, source: 'builtin' });
      expect(alpha.definition.name).toBe('alpha');
      const beta = JSON.parse((await catalog.get(catalogKeys.tool('beta')))!.string()) as CatalogTool;
      expect(beta).toMatchObject({ policy: 'ask', destructive: true, askIfArgs: { force: true }, source: 'mcp:files' });
      // The runner's own entry is written again every heartbeat.
      const watch = await catalog.watch({ key: catalogKeys.runner('r-cat') });
      const beats: CatalogRunner[] = [];
      for await (const e of watch) {
        if (e.operation === 'PUT') beats.push(JSON.parse(e.string()) as CatalogRunner);
        if (beats.length === 3) break;
      }
      watch.stop();
      expect(beats[0]!.tools.sort()).toEqual(['alpha', 'beta']);
      expect(beats[0]!.heartbeatMs).toBe(100);
      expect(beats[2]!.heartbeatAt).toBeGreaterThan(beats[0]!.heartbeatAt);
      // update(): a tool no longer served leaves the catalog.
      await runner.update([a.tool]);
      expect((await catalog.get(catalogKeys.tool('beta')))?.operation).not.toBe('PUT');
    } finally {
      await runner.stop();
    }
    expect((await catalog.get(catalogKeys.runner('r-cat')))?.operation).not.toBe('PUT');
  });

  it("enforces its own policy: deny never runs, ask runs only with an approval of these exact arguments", async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('p1', 'tool'));
    const denied = tool('nope');
    const guarded = tool('guarded', { defaultPolicy: 'ask', destructive: true });
    const runner = await start(d, [denied.tool, guarded.tool], { settings: { nope: { policy: 'deny' } } });
    const answer = async (cmd: Message<'tool.request'>) => {
      await publish(d, cmd);
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.key).toBe(cmd.key);
      return r;
    };
    const evidence = (args: unknown) => ({ requestId: 'req-1', argsHash: callHash('guarded', args), by: { id: 'boss', channel: 'cli' }, at: Date.now() });
    try {
      expect((await answer(request('p1', 'nope', {}))).error?.code).toBe(ToolRunnerErrorCode.Denied);
      expect((await answer(request('p1', 'guarded', { path: 'a' }))).error?.code).toBe(ToolRunnerErrorCode.ApprovalRequired);
      const other = await answer(request('p1', 'guarded', { path: 'a' }, { approval: evidence({ path: 'b' }) }));
      expect(other.error?.code).toBe(ToolRunnerErrorCode.ApprovalRequired);
      expect(other.error?.message).toContain('approval of other arguments');
      expect(denied.calls).toEqual([]);
      expect(guarded.calls).toEqual([]);
      const ok = await answer(request('p1', 'guarded', { path: 'a' }, { approval: evidence({ path: 'a' }) }));
      expect(ok.error).toBeUndefined();
      expect(ok.result?.output).toEqual({ echoed: { path: 'a' } });
      expect(guarded.calls).toEqual([{ path: 'a' }]);
    } finally {
      results.stop();
      await runner.stop();
    }
  });

  it('does not run a non-idempotent call again that a crashed runner had started: the agent is told the effect is uncertain', async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('u1', 'tool'));
    // Runner A has a connection of its own, which the test cuts while A's call is running.
    const aConn = await srv.connect();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let aStarted!: () => void;
    const aRunning = new Promise<void>((r) => (aStarted = r));
    const a = tool('charge', { idempotent: false }, async () => (aStarted(), await released, 'charged by a'));
    const b = tool('charge', { idempotent: false }, () => 'charged by b');
    const runnerA = await startToolRunner({ conn: aConn, prefix: d.prefix, tools: [a.tool], verify: createCommandVerifier(d.keys.publicKey), runnerId: 'a', ackWaitMs: 1000 });
    let runnerB: ToolRunner | undefined;
    try {
      const cmd = request('u1', 'charge', { amount: 5 });
      await publish(d, cmd);
      await aRunning;
      await aConn.nc.close(); // A is gone mid-call: no result, no ack
      runnerB = await start(d, [b.tool], { runnerId: 'b', ackWaitMs: 1000 });
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.key).toBe(cmd.key);
      expect(r.error?.code).toBe(ToolRunnerErrorCode.EffectUncertain);
      expect(r.error?.retryable).toBe(false);
      expect(b.calls).toEqual([]);
      expect(a.calls).toEqual([{ amount: 5 }]);
      // An idempotent call is not guarded so: a new key runs on B.
      const next = request('u1', 'charge', { amount: 6 });
      await publish(d, next);
      const r2 = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r2.result?.output).toBe('charged by b');
    } finally {
      release();
      results.stop();
      await runnerB?.stop();
      await runnerA.stop().catch(() => {});
    }
  });

  it('stores a result larger than maxInlineResult in the object store and sends the model a preview and a reference', async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('l1', 'tool'));
    const big = 'abcdefghij'.repeat(50); // 500 characters
    const t = tool('dump', {}, (args) => ((args as { big?: boolean }).big ? big : 'small'));
    const runner = await start(d, [t.tool], { maxInlineResult: 100, previewChars: 20 });
    try {
      await publish(d, request('l1', 'dump', { big: false }));
      const small = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(small.result).toEqual({ output: 'small' });
      const cmd = request('l1', 'dump', { big: true });
      await publish(d, cmd);
      const r = decodeMessage((await results.next()).data, { expect: 'tool.result' });
      expect(r.result?.truncated).toBe(true);
      expect(r.result?.output).toBe(`${big.slice(0, 20)}… [480 more characters in the full result]`);
      const store = resourceNames(d.prefix).objectStores.results;
      const ref = r.result?.ref ?? '';
      expect(ref.startsWith(`obj://${store}/`)).toBe(true);
      const whole = await (await openObjectStore(d.conn, store)).getBlob(ref.slice(`obj://${store}/`.length));
      expect(new TextDecoder().decode(whole!)).toBe(big);
    } finally {
      results.stop();
      await runner.stop();
    }
  });

  it("hands every call a heartbeat and a logger bound to the agent and key; a ToolError from another copy of @errand/tools reaches the model as itself", async () => {
    const d = await createDeployment(srv);
    const results = collect(d.conn.nc, d.subjects.agentIn('h1', 'tool'));
    const logger = recordingLogger();
    let beats = 0;
    const t: Tool = {
      ...tool('beating').tool,
      run: (args, ctx) => {
        ctx.heartbeat?.();
        ctx.heartbeat?.();
        beats += 2;
        if ((args as { fail?: boolean }).fail) {
          // What a ToolError class of another installed copy looks like to this runner.
          const foreign = Object.assign(new Error('the shop is closed'), { name: 'ToolError', code: 'ERR_SHOP_CLOSED', retryable: true, toErrorInfo: () => ({ code: 'ERR_SHOP_CLOSED', message: 'the shop is closed', retryable: true }) });
          return Promise.reject(foreign);
        }
        ctx.log?.info({ marker: 'from the tool' }, 'tool says');
        return Promise.resolve('alive');
      },
    };
    const runner = await start(d, [t], { logger });
    try {
      const cmd = request('h1', 'beating', {});
      await publish(d, cmd);
      expect(decodeMessage((await results.next()).data, { expect: 'tool.result' }).result).toEqual({ output: 'alive' });
      expect(beats).toBe(2);
      expect(logger.entries.find((e) => e.fields.marker === 'from the tool')?.fields).toMatchObject({ tool: 'beating', agentId: 'h1', key: cmd.key });
      await publish(d, request('h1', 'beating', { fail: true }));
      expect(decodeMessage((await results.next()).data, { expect: 'tool.result' }).error).toEqual({ code: 'ERR_SHOP_CLOSED', message: 'the shop is closed', retryable: true });
    } finally {
      results.stop();
      await runner.stop();
    }
  });
});
