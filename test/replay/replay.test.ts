import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, runProcess, startTestServer, startTestToolRunner, type Deployment, type TestServer, type TestToolRunner } from '@errand/testing';

// The built CLI, as a user runs it (`pnpm test` builds first).
const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));
const changedPipeline = fileURLToPath(new URL('../fixtures/pipeline-changed.mjs', import.meta.url));
const pipelineV2 = fileURLToPath(new URL('../fixtures/pipeline-v2.mjs', import.meta.url));

let srv: TestServer;
let d: Deployment;
let echo: TestToolRunner;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'errand-replay-'));
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
  echo = await startTestToolRunner(d, 'echo');
  await d.start('host');
});
afterAll(async () => {
  await echo?.stop();
  await d?.stopAll();
  await srv?.stop();
  await rm(dir, { recursive: true, force: true });
});

function errand(args: string[], env: Record<string, string> = {}) {
  const { NATS_URL: _u, ERRAND_PREFIX: _p, ERRAND_AGENT_MODULES: _m, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args], { env: { ...rest, HOME: dir, ...d.env('operator'), ...env } });
}

async function finishedPipeline(goal = 'three calls'): Promise<string> {
  const agentId = await d.submit({ goal, agent: 'pipeline', input: { steps: 3 } });
  expect((await d.waitForStatus(agentId, ['done', 'failed'])).status).toBe('done');
  return agentId;
}

describe('errand replay, export, fork and diff (host process, built CLI)', () => {
  it('replay --verify of a finished run matches the stored snapshot; --step prints the snapshot there', async () => {
    const agentId = await finishedPipeline();
    const r = await errand(['replay', agentId, '--verify']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`replay of ${agentId} (pipeline@1, steps 1–4)`);
    expect(r.stdout).toContain('step 3  tool echo call-2: ok');
    expect(r.stdout).toContain(`verified: replaying ${agentId} gives the stored snapshot`);

    const at = await errand(['replay', agentId, '--step', '2', '--json']);
    expect(at.code).toBe(0);
    const json = JSON.parse(at.stdout) as { steps: { step: number }[]; snapshot: { context: { outputs: unknown[] } } };
    expect(json.steps.map((s) => s.step)).toEqual([1, 2]);
    expect(json.snapshot.context.outputs).toHaveLength(1);

    const missing = await errand(['replay', agentId, '--step', '9']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('has no step 9');
  });

  it('every command has help with examples; replay needs an agent or a file', async () => {
    for (const c of ['replay', 'export', 'fork', 'diff']) {
      const h = await errand([c, '--help']);
      expect(h.code).toBe(0);
      expect(h.stdout).toContain('Examples:');
    }
    const none = await errand(['replay']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('name an agent');
    const unknown = await errand(['replay', 'no-such-agent']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('errand ls');
  });

  it('a changed machine makes --verify fail with a diff naming the first diverging step', async () => {
    const agentId = await finishedPipeline();
    const r = await errand(['replay', agentId, '--verify'], { ERRAND_AGENT_MODULES: changedPipeline });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('verification failed: step 2 diverges');
    expect(r.stdout).toContain('final snapshot (- stored, + replayed):');
    expect(r.stderr).toContain('first diverging step: 2');
  });

  it('a journal whose machine version the registry lacks is refused with the version to load', async () => {
    const agentId = await finishedPipeline();
    const r = await errand(['replay', agentId], { ERRAND_AGENT_MODULES: pipelineV2 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('was taken by machine pipeline@1, which is not registered here (have pipeline@2)');
    expect(r.stderr).toContain('ERRAND_AGENT_MODULES');
  });

  it('a fork at step 2 with a corrected tool result takes another path; the original is unchanged; diff names step 3', async () => {
    const original = await finishedPipeline();
    const before = await d.agents.get(original);
    const replayed = JSON.parse((await errand(['replay', original, '--json'])).stdout) as { steps: { step: number; event: Record<string, unknown> }[] };
    const step3 = replayed.steps.find((s) => s.step === 3)!.event;
    const edited = join(dir, 'corrected.json');
    await writeFile(edited, JSON.stringify({ ...step3, result: { output: 'corrected by a person' } }));

    const f = await errand(['fork', original, '--at', '2', '--event', edited, '--json']);
    expect(f.stderr).toBe('');
    expect(f.code).toBe(0);
    const fork = (JSON.parse(f.stdout) as { agentId: string }).agentId;
    const done = await d.waitForStatus(fork, ['done', 'failed']);
    expect(done.status).toBe('done');
    expect(done.origin).toEqual({ agentId: original, step: 2 });
    const outputs = (done.output as { outputs: unknown[] }).outputs;
    expect(outputs[1]).toBe('corrected by a person');
    // The third call ran for the fork with the corrected output as its input.
    expect(echo.requests.find((q) => q.agentId === fork)?.args).toEqual({ n: 3, previous: 'corrected by a person' });

    // The original is untouched.
    const after = await d.agents.get(original);
    expect(after?.revision).toBe(before?.revision);

    const diff = await errand(['diff', original, fork]);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toContain('first divergence at step 3');
    expect(diff.stdout).toContain('corrected by a person');
    const diffJson = JSON.parse((await errand(['diff', original, fork, '--json'])).stdout) as { firstDivergentStep: number };
    expect(diffJson.firstDivergentStep).toBe(3);

    // The fork's own journal replays to its stored snapshot.
    const v = await errand(['replay', fork, '--verify']);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`fork of ${original} at step 2`);
  });

  it('an exported run replays offline (no server) with the same output as online', async () => {
    const agentId = await finishedPipeline();
    const file = join(dir, `${agentId}.jsonl`);
    const ex = await errand(['export', agentId, '-o', file]);
    expect(ex.code).toBe(0);
    expect(ex.stderr).toContain(`exported 4 steps of ${agentId}`);
    const online = await errand(['replay', agentId, '--verify']);
    // Nothing listens on this address: --file must not connect at all.
    const offline = await errand(['replay', '--file', file, '--verify'], { NATS_URL: 'nats://127.0.0.1:9' });
    expect(offline.stderr).toBe('');
    expect(offline.code).toBe(0);
    expect(offline.stdout).toBe(online.stdout);
  });

  it('the export of an agent whose goal holds an API key does not contain the key', async () => {
    const key = 'sk-abcdefghijklmnopqrstuvwx123456';
    const agentId = await finishedPipeline(`call the API with ${key} please`);
    const file = join(dir, 'secret.jsonl');
    expect((await errand(['export', agentId, '-o', file])).code).toBe(0);
    const text = await readFile(file, 'utf8');
    expect(text).toContain('[redacted]');
    expect(text).not.toContain(key);
    expect(text).not.toContain('abcdefghijklmnopqrstuvwx123456');
    // Still a valid export: it replays.
    expect((await errand(['replay', '--file', file])).code).toBe(0);
  });
});
