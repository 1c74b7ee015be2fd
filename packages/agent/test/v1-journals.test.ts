import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canonicalJson, createSubjects, type AgentRecord, type Message } from '@errand/protocols';
import { createRegistry, replayJournaled } from '@errand/core';
import { agents, assistantV1 } from '@errand/agent';

/**
 * Journals that `assistant@1` wrote while its chart still moved through one root `go` event raised
 * by its handlers (recorded at commit 0e341df, before the chart got real edges): 22 seeded runs
 * that together take every edge of the chart — model errors, back-off, compaction, loops, budgets
 * and daily caps, approvals decided, reminded, escalated and expired, people's answers and
 * interruptions, tool retries and deadlines, delegated children, re-plans given up, final answers.
 * The chart changed shape but not behaviour, and kept its version: so these journals must replay,
 * step by step, to what the host wrote then — the check `errand replay --verify` makes, and what a
 * host of the new chart needs to continue an agent the old one started (a rolling upgrade).
 */
interface RecordedRun {
  agentId: string;
  journal: Message<'event.step'>[];
  /** Per step: sha256 of the canonical JSON of everything the step sent (its outbox), message bodies included. */
  outboxes: string[];
  stored: Pick<AgentRecord, 'step' | 'status' | 'snapshot'>;
}

const runs: RecordedRun[] = readFileSync(new URL('./fixtures/assistant-v1-journals.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => JSON.parse(line) as RecordedRun);

const subjects = createSubjects('errand');
// Both versions, as a host registers them: each journal entry is replayed by the version it names.
const registry = createRegistry(agents);
/** As the record codec stores it: properties that are undefined are left out. */
const stored = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('journals of the go-router chart (assistant@1)', () => {
  it('are the recorded runs', () => {
    expect(runs).toHaveLength(22);
    expect(new Set(runs.flatMap((r) => r.journal.map((e) => e.state)))).toEqual(new Set(['planning', 'acting', 'backingOff', 'awaitingInput', 'awaitingApproval', 'done', 'failed']));
  });

  it.each(runs.map((r) => [r.agentId, r] as const))('%s replays to the stored snapshot, each step journaled as it was', (agentId, run) => {
    let record: AgentRecord | undefined;
    for (const [i, entry] of run.journal.entries()) {
      expect(assistantV1.version).toBe(entry.machine.version);
      record = replayJournaled(record, entry, { agentId, inboxId: entry.inboxId, now: entry.at, subjects, registry });
      // The step's own journal entry — event, state, status and the commands it sent (kinds, keys, subjects).
      const replayed = record.outbox.find((o) => o.message.kind === 'event.step')?.message;
      expect(stored(replayed), `step ${entry.step}`).toEqual(entry);
      // And every command exactly as it was sent: prompts, notification texts, timers, approvals.
      expect(createHash('sha256').update(canonicalJson(record.outbox)).digest('hex'), `outbox of step ${entry.step}`).toBe(run.outboxes[i]);
    }
    expect(record!.step).toBe(run.stored.step);
    expect(record!.status).toBe(run.stored.status);
    expect(stored(record!.snapshot)).toEqual(run.stored.snapshot);
  });
});
