import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agents as exampleAgents } from '@errand/example-agents';
import { resourceNames } from '@errand/protocols';
import { createRegistry } from '@errand/core';
import { startHost, type Host } from '@errand/runtime';
import { createDeployment, inputMessage, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

// The built CLI, as a user runs it (`pnpm test` builds before testing).
const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let srv: TestServer;
let d: Deployment;
let host: Host;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
  host = await startHost({ conn: d.conn, registry: createRegistry(exampleAgents), prefix: d.prefix, gcIntervalMs: 0 });
});
afterAll(async () => {
  await host?.stop();
  await srv?.stop();
});

const errand = (args: string[]) => {
  const { ERRAND_PREFIX: _p, ...env } = process.env;
  // gc removes agents' records and events: the admin's job.
  return runProcess(process.execPath, [cli, ...args, '--prefix', d.prefix], { env: { ...env, ...d.env('admin') } });
};

/** Messages in the events stream on the agent's subjects. */
async function eventsOf(agentId: string): Promise<number> {
  const jsm = await d.conn.jsm();
  const info = await jsm.streams.info(resourceNames(d.prefix).streams.events, { subjects_filter: d.subjects.agentEventAll(agentId) });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

describe('errand gc', () => {
  let finished: string;
  let counting: string;
  beforeAll(async () => {
    finished = await d.submit({ goal: 'nap', agent: 'sleeper', input: { delayMs: 1 } });
    counting = await d.submit({ goal: 'count', agent: 'tally', input: { expect: 2 } });
    await d.send(inputMessage(counting, '1'));
    await d.waitForStatus(finished, ['done']);
    await d.waitForRecord(counting, (r) => r.step >= 2);
  });

  it('--dry-run lists what would go and removes nothing', async () => {
    const r = await errand(['gc', '--older-than', '0', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${finished}\nwould remove 1 finished agent (scanned 2; 1 still running or recent)\n`);
    expect(await d.record(finished)).toBeDefined();
    expect(await eventsOf(finished)).toBeGreaterThan(0);
  });

  it('keeps agents younger than --older-than', async () => {
    const r = await errand(['gc', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, dryRun: false, scanned: 2, removed: [], kept: 2 });
  });

  it('--older-than 0 --json removes every finished agent and leaves the running one', async () => {
    const r = await errand(['gc', '--older-than', '0', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, dryRun: false, scanned: 2, removed: [finished], kept: 1 });
    expect(await d.record(finished)).toBeUndefined();
    expect(await eventsOf(finished)).toBe(0);
    expect(await eventsOf(counting)).toBeGreaterThan(0);
    expect((await d.record(counting))?.status).toMatch(/running|waiting/);
    // The running agent still works.
    await d.send(inputMessage(counting, '2'));
    expect((await d.waitForStatus(counting, ['done'])).output).toMatchObject({ sum: 3 });
  });

  it('exits 2 on a duration it cannot read, saying what it expects', async () => {
    const r = await errand(['gc', '--older-than', 'nonsense']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/'nonsense' is invalid\. expected a number with a unit .*'30d'.*milliseconds/);
    expect(r.stdout).toBe('');
  });

  it('has help with examples', async () => {
    const r = await errand(['gc', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('errand gc --older-than 0 --json');
  });
});
