import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer, topLevelKeys } from '@errand/testing';

// `errand logs --json` as a user pipes it into jq: one JSON object a line, no blank lines, each key once (#17).

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let srv: TestServer;
let d: Deployment;
let home: string;
beforeAll(async () => {
  srv = await startTestServer();
  home = await mkdtemp(join(tmpdir(), 'errand-logs-home-'));
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
  await rm(home, { recursive: true, force: true });
});

function errand(args: string[]) {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args], { env: { ...rest, HOME: home, ...d.env('operator') } });
}

describe('errand logs --json', () => {
  it('prints one JSON object a line with each key once: no blank lines, no second component or pid', async () => {
    await d.start('host');
    const agentId = await d.submit({ goal: 'count', agent: 'tally', input: { expect: 1 } });
    await d.waitForStatus(agentId, ['running', 'waiting']);
    const r = await errand(['logs', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    const lines = r.stdout.slice(0, -1).split('\n');
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) {
      expect(line, 'a blank line').not.toBe('');
      const keys = topLevelKeys(line);
      expect(keys, line).toEqual([...new Set(keys)]);
      expect(JSON.parse(line)).toMatchObject({ service: 'host', level: expect.any(Number), msg: expect.any(String) });
    }
    // Lines of a nested component name the path.
    expect(lines.map((l) => (JSON.parse(l) as { component?: string }).component).filter((c) => c?.includes('.'))).not.toEqual([]);
  }, 60_000);
});
