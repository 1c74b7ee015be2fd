/** Knobs of the loop; every one can be set per goal under `input.settings`. */
export interface AgentSettings {
  /** Retries of a failed model call that is worth retrying (5xx, 429, timeouts). */
  maxModelRetries: number;
  /** Attempts of a tool call that failed transiently, before the failure goes to the model. */
  maxToolAttempts: number;
  /** Consecutive failed rounds after which the model is asked for a different strategy. */
  strategyAfterFailures: number;
  /** How often the model may revise its plan after a step failed for good, before the run fails. */
  maxReplans: number;
  /** The same call (tool and arguments) this many times is a loop. */
  loopRepeats: number;
  /** Planning rounds in a row without a new successful result before the model is asked to reflect. */
  idleRoundsLimit: number;
  /** History size (characters) above which older messages are compacted. */
  compactAtChars: number;
  /** Messages kept verbatim at the end when compacting. */
  keepRecent: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Characters of a tool result given to the model. */
  maxResultChars: number;
  /** Added to a tool's timeout before a call with no answer at all counts as failed (no live runner?). */
  toolDeadlineGraceMs: number;
  /** How long a person has to decide an approval; a reminder goes out halfway. */
  approvalTimeoutMs: number;
  /** What happens when nobody decided in time: deny, or ask the next channel of `escalateTo`. */
  approvalTimeoutOutcome: 'deny' | 'escalate';
  /** Notify `stuck` when no planning step has happened for this long (0: never). */
  stuckAfterMs: number;
  /** Channels to escalate to, in order (for example telegram, then slack, then a webhook). */
  escalateTo: string[];
}

export function defaultAgentSettings(): AgentSettings {
  return {
    maxModelRetries: 6,
    maxToolAttempts: 3,
    strategyAfterFailures: 3,
    maxReplans: 3,
    loopRepeats: 3,
    idleRoundsLimit: 6,
    compactAtChars: 60_000,
    keepRecent: 12,
    backoffBaseMs: 1000,
    backoffMaxMs: 5 * 60_000,
    maxResultChars: 8000,
    toolDeadlineGraceMs: 30_000,
    approvalTimeoutMs: 24 * 3600_000,
    approvalTimeoutOutcome: 'deny',
    stuckAfterMs: 0,
    escalateTo: [],
  };
}
