import type { AgentRecord } from '@errand/protocols';
import { differences, sameValue } from './canonical.js';
import type { ReplayResult } from './fold.js';

export interface Verification {
  readonly ok: boolean;
  /** The first step whose replayed state differs from the journal's (or the last step, when only the final snapshot differs). */
  readonly firstDivergentStep: number | undefined;
  /** In words: what differs and where. */
  readonly reason: string | undefined;
  /** `- path: stored` / `+ path: replayed` lines for the final snapshot. */
  readonly diff: readonly string[];
}

/**
 * Checks a full replay against the stored record: every step's state and status equal the
 * journal's, and the replayed final snapshot equals the stored one (compared as the record codec
 * stores it). `stored` may be a snapshot kept at a checkpoint of an export.
 */
export function verifyReplay(result: ReplayResult, stored: Pick<AgentRecord, 'step' | 'status' | 'snapshot'>): Verification {
  const last = result.steps.at(-1)!;
  const diff = differences(stored.snapshot, result.record.snapshot);
  if (result.firstDivergence) {
    const d = result.firstDivergence;
    return {
      ok: false,
      firstDivergentStep: d.step,
      reason:
        `step ${d.step} diverges: the journal has state ${JSON.stringify(d.journal.state)} (${d.journal.status}), ` +
        `the machine now gives ${JSON.stringify(d.replayed.state)} (${d.replayed.status})`,
      diff,
    };
  }
  if (stored.step !== last.step) {
    return {
      ok: false,
      firstDivergentStep: undefined,
      reason: `the stored record is at step ${stored.step} but the journal ends at step ${last.step} (is a step still being published? try again)`,
      diff,
    };
  }
  if (!sameValue(stored.snapshot, result.record.snapshot) || stored.status !== result.record.status) {
    return {
      ok: false,
      firstDivergentStep: last.step,
      reason: `every step's state matches the journal, but the replayed final snapshot (${result.record.status}) differs from the stored one (${stored.status})`,
      diff,
    };
  }
  return { ok: true, firstDivergentStep: undefined, reason: undefined, diff: [] };
}
