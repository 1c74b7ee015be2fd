import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord, RECORD_FORMAT, type AgentRecord } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { countAgents, digestText } from '../src/digest.js';

// The daily digest counts from the records alone: status `waiting` (set from record.waiting,
// whatever the machine) is "waiting for you", and the spend is record.usage — no machine's context.

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

const NOW = Date.UTC(2030, 0, 2, 12);
function record(agentId: string, patch: Partial<AgentRecord>): AgentRecord {
  return {
    format: RECORD_FORMAT, agentId, machine: { id: 'custom', version: 1 }, status: 'running', step: 1, snapshot: { value: 'whatever', context: { usage: { costUsd: 99 } } }, goal: 'g',
    children: {}, timers: {}, pending: {}, applied: [], outbox: [], deferred: [], createdAt: NOW - 1000, updatedAt: NOW - 1000, ...patch,
  };
}

describe('the digest', () => {
  it('counts waiting agents by their status and spend by record.usage, not by any machine context', async () => {
    const records = [
      record('r1', { usage: { inputTokens: 10, outputTokens: 5, costUsd: 0.5 } }),
      record('w1', { status: 'waiting', waiting: { kind: 'approval', requestId: 'x', since: NOW - 1000, calls: [{ tool: 't', args: {} }], argsHash: 'h' }, usage: { inputTokens: 1, outputTokens: 1, costUsd: 0.25 } }),
      record('w2', { status: 'waiting', waiting: { kind: 'input', requestId: 'q', since: NOW - 1000, question: '?' } }),
      record('p1', { status: 'paused', waiting: { kind: 'input', requestId: 'q', since: NOW - 1000, question: '?' } }),
      record('d1', { status: 'done', usage: { inputTokens: 1, outputTokens: 1, costUsd: 1 } }),
      // Ended yesterday: neither counted nor spent today.
      record('d0', { status: 'done', updatedAt: NOW - 86_400_000, usage: { inputTokens: 1, outputTokens: 1, costUsd: 7 } }),
    ];
    for (const r of records) await d.agents.put(r.agentId, encodeRecord(r));
    const c = await countAgents(d.agents, NOW);
    expect(c).toEqual({ running: 1, waiting: 2, paused: 1, doneToday: 1, failedToday: 0, spentTodayUsd: 1.75 });
    expect(digestText(c)).toBe('1 agent running, 2 waiting for you, 1 paused; today: 1 done, 0 failed, $1.75 spent');
  });
});
