import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { MESSAGE_VERSION, type ToolDefinition } from '@errand/protocols';
import { createDeployment, inputMessage, runProcess, startProcess, startTestServer, startTestToolRunner, type Deployment, type TestServer } from '@errand/testing';

// The built CLI, as a user runs it (`pnpm test` builds before testing).
const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let home: string;
let srv: TestServer;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'errand-watch-home-'));
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.stop();
  await rm(home, { recursive: true, force: true });
});

/** A user's environment pointed at one deployment (no `errand up` state, no other NATS settings). */
function envFor(d: Deployment): Record<string, string | undefined> {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...rest } = process.env;
  return { ...rest, HOME: home, ...d.env('operator') };
}

const errand = (d: Deployment, args: string[]) => runProcess(process.execPath, [cli, ...args], { env: envFor(d) });
const watching = (d: Deployment, args: string[]) => startProcess(process.execPath, [cli, ...args], { env: envFor(d) });

/** Runs the CLI on a pseudo-terminal (util-linux `script`), so its stdout is a TTY of a known size. */
function onTerminal(d: Deployment, args: string[]) {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = `stty cols 110 rows 40; exec ${[process.execPath, cli, ...args].map(quote).join(' ')}`;
  return startProcess('script', ['-qfec', command, '/dev/null'], { env: envFor(d) });
}

const control = (agentId: string, action: 'cancel') => ({ v: MESSAGE_VERSION, kind: 'control', agentId, action, reason: 'enough', at: Date.now() }) as const;
const toolDef = (name: string): ToolDefinition => ({ name, description: `the ${name} tool`, parameters: { type: 'object', properties: {}, additionalProperties: true } });

describe('errand watch', () => {
  it('on a non-TTY prints a readable line log: the history, then live events of the agent and its children; exit codes follow the outcome', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
    try {
      await d.start('host');
      // A parent with two children that each wait for one number: the test decides when they end.
      const parent = await d.submit({ goal: 'delegate two counts', agent: 'parent', input: { children: 2, childAgent: 'tally', childInput: { expect: 1 } } });
      const [c1, c2] = [`${parent}-child-1`, `${parent}-child-2`];
      await Promise.all([d.waitForStatus(c1, ['running']), d.waitForStatus(c2, ['running'])]);

      const w = watching(d, ['watch', parent]);
      // The history is replayed first: the parent's start and each child's.
      await w.waitForLine(/^\d\d:\d\d:\d\d step 1  xstate\.init  → waiting \(running\)$/);
      await w.waitForLine(/^\d\d:\d\d:\d\d \[child-1\] step 1  xstate\.init  → counting \(running\)$/);
      await w.waitForLine(/^\d\d:\d\d:\d\d \[child-2\] step 1  xstate\.init  → counting \(running\)$/);
      // Then it follows live.
      await d.send(inputMessage(c1, '5'));
      await w.waitForLine(/\[child-1\] done: \{"sum":5,"count":1,"seen":\["5"\]\}/);
      await d.send(inputMessage(c2, '7'));
      const exit = await w.exited;
      expect(exit.code, w.stderr()).toBe(0);
      const out = w.stdout();
      expect(out).toMatch(/^\d\d:\d\d:\d\d \[child-2\] step 2  input  → done \(done\)$/m);
      expect(out).toMatch(/^\d\d:\d\d:\d\d step 3  child\.result  → done \(done\)$/m);
      expect(out).toMatch(/^\d\d:\d\d:\d\d done: \{"results":\{"child-1":"done","child-2":"done"\}\}$/m);
      expect(out).toMatch(/^\d\d:\d\d:\d\d status done$/m);
      expect(out).not.toContain('\x1b[');

      // A late watcher of a finished agent gets its whole history at once, here as NDJSON.
      const json = await errand(d, ['watch', parent, '--json']);
      expect(json.code).toBe(0);
      const events = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; agentId: string; step?: number });
      expect(events.filter((e) => e.agentId === parent && e.kind === 'event.step').map((e) => e.step)).toEqual([1, 2, 3]);
      expect(new Set(events.map((e) => e.agentId))).toEqual(new Set([parent, c1, c2]));
      expect(events.filter((e) => e.kind === 'event.done')).toHaveLength(3);

      // Failed and cancelled agents end the watch with exit 1.
      const thrower = await d.submit({ goal: 'explode', agent: 'thrower' });
      await d.waitForStatus(thrower, ['running']);
      const w2 = watching(d, ['watch', thrower]);
      await w2.waitForLine(/step 1  xstate\.init/);
      await d.send(inputMessage(thrower, 'boom'));
      expect((await w2.exited).code).toBe(1);
      expect(w2.stdout()).toMatch(/failed: ERR_MACHINE: .*boom: the machine exploded on purpose/);

      const nap = await d.submit({ goal: 'nap', agent: 'sleeper', input: { delayMs: 600_000 } });
      await d.waitForStatus(nap, ['running']);
      const still = await errand(d, ['watch', nap, '--no-follow']);
      expect(still.code).toBe(0);
      expect(still.stdout).toMatch(/step 1  xstate\.init  → sleeping \(running\)/);
      const w3 = watching(d, ['watch', nap]);
      await w3.waitForLine(/step 1  xstate\.init/);
      await d.send(control(nap, 'cancel'));
      expect((await w3.exited).code).toBe(1);
      expect(w3.stdout()).toMatch(/status cancelled$/m);

      const missing = await errand(d, ['watch', 'no-such-agent']);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toContain('no agent no-such-agent');
      expect(missing.stderr).toContain('errand ls');
      expect((await errand(d, ['watch', 'not.an.id'])).code).toBe(2);
    } finally {
      await d.stopAll();
    }
  }, 90_000);

  it('on a pseudo-terminal redraws the tree in place: tasks, tool calls with status and duration, tokens and cost', async () => {
    const usage = { inputTokens: 100, outputTokens: 20 };
    const mock = await startMockLlm({
      steps: [
        {
          reply: {
            usage,
            toolCalls: [
              { name: 'update_plan', arguments: { tasks: [{ id: '1', title: 'Check Oslo', status: 'in_progress' }, { id: '2', title: 'Check Rome', status: 'pending' }] } },
              { name: 'weather', arguments: { city: 'Oslo' } },
              { name: 'weather', arguments: { city: 'Rome' } },
            ],
          },
        },
        { expect: { contains: ['Oslo: snow', 'Rome: sun'] }, reply: { usage, toolCalls: [{ name: 'update_plan', arguments: { tasks: [{ id: '1', title: 'Check Oslo', status: 'done' }, { id: '2', title: 'Check Rome', status: 'done' }] } }] } },
        { reply: { usage, content: 'Oslo has snow; Rome has sun.' } },
      ],
    });
    // $1000 / $2000 per million tokens: 100 + 20 tokens cost $0.14 a call.
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_PRICES: '{"mock-1":{"inputPerMTok":1000,"outputPerMTok":2000}}' } });
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const weather = await startTestToolRunner(d, 'weather', async (r) => {
      await held;
      const city = (r.args as { city: string }).city;
      return { output: `${city}: ${city === 'Oslo' ? 'snow' : 'sun'}` };
    });
    try {
      await Promise.all([d.start('host'), d.start('planner')]);
      const agentId = await d.submit({ goal: 'Compare the weather in Oslo and Rome', agent: 'assistant', input: { toolDefinitions: [toolDef('weather')] } });
      // Both calls are out and held by the tool runner.
      await d.waitForRecord(agentId, (r) => Object.values(r.pending).filter((p) => p.kind === 'tool.request').length === 2);

      const w = onTerminal(d, ['watch', agentId]);
      await w.waitForLine(/▸ weather +running/);
      await w.waitForLine(/waiting for 2 tool calls \(weather\)/);
      release();
      const exit = await w.exited;
      const out = w.stdout();
      if (process.env.ERRAND_TEST_DUMP) await writeFile(process.env.ERRAND_TEST_DUMP, out);
      expect(exit.code, out).toBe(0);

      // Drawn in place: the cursor hidden, moved up over the last frame and the rest erased, shown again.
      expect(out).toContain('\x1b[?25l');
      expect(out).toMatch(/\x1b\[\d+A\x1b\[J/);
      expect(out.endsWith('\x1b[?25h')).toBe(true);
      const frames = out.split('\x1b[J');
      expect(frames.length).toBeGreaterThan(2);
      const last = frames.at(-1)!.replace(/\r/g, '');
      expect(last).toMatch(new RegExp(`^✓ ${agentId} · assistant · done · state done · step \\d+ · [\\d.]+ m?s · 360 tokens · \\$0\\.42\\n`));
      expect(last).toContain('  goal: Compare the weather in Oslo and Rome\n');
      expect(last).toMatch(/ {2}tasks:\n {4}✓ Check Oslo\n {4}✓ Check Rome\n/);
      expect(last).toMatch(/ {2}tools:\n {4}✓ weather +ok +(\d+ ms|[\d.]+ s) +step 2\n {4}✓ weather +ok +(\d+ ms|[\d.]+ s) +step 2\n/);
      expect(last).toContain('  output: {"answer":"Oslo has snow; Rome has sun."');
      // Every line fits the terminal.
      for (const line of last.split('\n')) expect([...line].length).toBeLessThan(110);
      // An earlier frame showed the calls running and the plan in progress.
      const running = frames.find((f) => /▸ weather +running/.test(f))!.replace(/\r/g, '');
      expect(running).toMatch(/ {4}▸ Check Oslo\n {4}○ Check Rome\n/);
      expect(running).toContain('$0.14');

      // The same history as a line log (what a pipe or CI gets).
      const lines = await errand(d, ['watch', agentId]);
      expect(lines.code).toBe(0);
      expect(lines.stdout).toMatch(/^\d\d:\d\d:\d\d step \d+  plan  ▸ Check Oslo · ○ Check Rome$/m);
      expect(lines.stdout).toMatch(/^\d\d:\d\d:\d\d step \d+  tool weather requested$/m);
      expect(lines.stdout).toMatch(/^\d\d:\d\d:\d\d step \d+  tool weather ok (\d+ ms|[\d.]+ s)$/m);
      expect(lines.stdout).toMatch(/^\d\d:\d\d:\d\d step \d+  usage mock-1 100\+20 tokens \$0\.14 \(total 360 tokens \$0\.42\)$/m);
      expect(lines.stdout).toMatch(/^\d\d:\d\d:\d\d done: \{"answer":"Oslo has snow; Rome has sun\."/m);
      expect(mock.failures).toEqual([]);
    } finally {
      release();
      await weather.stop();
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);
});

describe('errand ls', () => {
  it('lists agents filtered by status, label and agent definition; --json is an array; nothing found says what to do', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
    try {
      await d.start('host');
      const core = await d.submit({ goal: 'count for core', agent: 'tally', labels: { team: 'core', env: 'prod' } });
      const web = await d.submit({ goal: 'count for web', agent: 'tally', labels: { team: 'web' } });
      const boom = await d.submit({ goal: 'explode for core', agent: 'thrower', labels: { team: 'core' } });
      await Promise.all([d.waitForStatus(core, ['running']), d.waitForStatus(web, ['running']), d.waitForStatus(boom, ['running'])]);
      await d.send(inputMessage(boom, 'boom'));
      await d.waitForStatus(boom, ['failed']);

      const ids = async (args: string[]) => {
        const r = await errand(d, ['ls', '--json', ...args]);
        expect(r.code, r.stderr).toBe(0);
        return (JSON.parse(r.stdout) as { agentId: string }[]).map((a) => a.agentId).sort();
      };
      expect(await ids([])).toEqual([core, web, boom].sort());
      expect(await ids(['--status', 'running'])).toEqual([core, web].sort());
      expect(await ids(['--status', 'failed,done'])).toEqual([boom]);
      expect(await ids(['--status', 'failed', '--status', 'running', '--label', 'team=core'])).toEqual([core, boom].sort());
      expect(await ids(['--label', 'team=core', '--label', 'env=prod'])).toEqual([core]);
      expect(await ids(['--agent', 'tally'])).toEqual([core, web].sort());
      expect(await ids(['--limit', '1'])).toHaveLength(1);

      const table = await errand(d, ['ls', '--label', 'team=core']);
      expect(table.code).toBe(0);
      const [head, ...rows] = table.stdout.trimEnd().split('\n');
      expect(head).toMatch(/^ID +AGENT +STATUS +STATE +STEP +UPDATED +LABELS +WAITING FOR +GOAL$/);
      expect(rows).toHaveLength(2);
      expect(rows.find((r) => r.startsWith(core))).toMatch(/tally +running +counting +1 +\d+s ago +team=core,env=prod +- +count for core$/);
      expect(rows.find((r) => r.startsWith(boom))).toMatch(/thrower +failed +listening +\d+ +\d+s ago +team=core +- +explode for core$/);

      const none = await errand(d, ['ls', '--status', 'paused', '--label', 'team=nobody']);
      expect(none.code).toBe(0);
      expect(none.stdout).toContain('no agents match (status paused, label team=nobody)');
      expect(JSON.parse((await errand(d, ['ls', '--status', 'paused', '--json'])).stdout)).toEqual([]);

      const wrong = await errand(d, ['ls', '--status', 'sleeping']);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toContain("'sleeping' is not a status; use running, waiting, paused, done, failed, cancelled");
      const help = await errand(d, ['ls', '--help']);
      expect(help.stdout).toContain('Examples:');
    } finally {
      await d.stopAll();
    }
  }, 60_000);
});
