import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

// `errand show` says what an agent waits for only while it waits (#17: a cancelled child still
// said "waiting for an answer … → errand answer"), and what a sleeping agent waits on: its timer.

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let srv: TestServer;
let home: string;
beforeAll(async () => {
  srv = await startTestServer();
  home = await mkdtemp(join(tmpdir(), 'errand-show-home-'));
});
afterAll(async () => {
  await srv?.stop();
  await rm(home, { recursive: true, force: true });
});

function errand(d: Deployment, args: string[]) {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args], { env: { ...rest, HOME: home, ...d.env('operator') } });
}

describe('errand show', () => {
  it('a child asking a question says so; cancelled with its parent, it says cancelled and nothing about waiting or answering', async () => {
    const mock = await startMockLlm({
      steps: [
        { match: 'child task: pick a city', reply: { toolCalls: [{ name: 'ask_human', arguments: { question: 'Which city?' } }] } },
        { match: 'plan a trip', reply: { toolCalls: [{ name: 'delegate', arguments: { goal: 'child task: pick a city' } }] } },
      ],
    });
    // Prices of a small model: each call costs a few thousandths of a cent.
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_PRICES: '{"mock-1":{"inputPerMTok":0.15,"outputPerMTok":0.6}}' } });
    try {
      await Promise.all([d.start('host'), d.start('planner')]);
      const parentId = await d.submit({ goal: 'plan a trip' });
      const parent = await d.waitForRecord(parentId, (r) => Object.keys(r.children).length > 0);
      const childId = Object.values(parent.children)[0]!.agentId;
      const asking = await d.waitForStatus(childId, ['waiting', 'done', 'failed']);
      expect(asking.waiting).toMatchObject({ kind: 'input', question: 'Which city?' });

      const shown = await errand(d, ['show', childId]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain(`parent: ${parentId}`);
      expect(shown.stdout).toContain(`started by ${parentId} (agent)`);
      expect(shown.stdout).toContain(`for an answer (${asking.waiting!.requestId}):\n  Which city?\n  → errand answer ${childId} "…"`);

      const cancelled = await errand(d, ['cancel', parentId]);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect((await d.waitForStatus(childId, ['cancelled', 'done', 'failed'])).status).toBe('cancelled');
      const after = await errand(d, ['show', childId]);
      expect(after.code, after.stderr).toBe(0);
      expect(after.stdout).toMatch(new RegExp(`^${childId}  cancelled `));
      expect(after.stdout).toContain(`parent: ${parentId}`);
      expect(after.stdout).not.toMatch(/^waiting|errand answer|errand approve|next timer/m);
      const json = JSON.parse((await errand(d, ['show', childId, '--json'])).stdout) as Record<string, unknown>;
      expect(json).toMatchObject({ agentId: childId, status: 'cancelled' });
      expect(json.waiting).toBeUndefined();
      // What it cost: shown with its digits, stored without float noise.
      const usage = json.usage as { inputTokens: number; outputTokens: number; costUsd: number };
      const cost = (usage.inputTokens * 0.15 + usage.outputTokens * 0.6) / 1e6;
      expect(usage.costUsd).toBe(Math.round(cost * 1e9) / 1e9);
      expect(String(usage.costUsd).length).toBeLessThan(12);
      expect(after.stdout).toMatch(/^usage: \d+ in \+ \d+ out tokens, \$0\.0000\d\d?$/m);
      expect(mock.failures).toEqual([]);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);

  it('a sleeping agent says when its timer fires; once it has woken and ended, no timer is shown', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
    try {
      await d.start('host');
      const sleeping = await d.submit({ goal: 'sleep long', agent: 'sleeper', input: { delayMs: 3_600_000 } });
      await d.waitForStatus(sleeping, ['running']);
      const shown = await errand(d, ['show', sleeping]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(/^next timer: \S+ \d{4}-\d\d-\d\dT\S+Z \(in (59m|1h)\)$/m);
      expect(shown.stdout).not.toMatch(/^waiting/m);

      const napped = await d.submit({ goal: 'sleep briefly', agent: 'sleeper', input: { delayMs: 50 } });
      await d.waitForStatus(napped, ['done']);
      const after = await errand(d, ['show', napped]);
      expect(after.stdout).toMatch(new RegExp(`^${napped}  done `));
      expect(after.stdout).not.toMatch(/next timer/);
    } finally {
      await d.stopAll();
    }
  }, 60_000);
});
