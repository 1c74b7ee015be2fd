import { ErrandError } from '@errand/protocols';

export const ReplayErrorCode = {
  /** The agent has no journal entries (or the file none). */
  EmptyJournal: 'ERR_EMPTY_JOURNAL',
  /** Steps are missing between two journal entries. */
  JournalGap: 'ERR_JOURNAL_GAP',
  /** The registry lacks the machine version that took a step. */
  MachineVersion: 'ERR_MACHINE_VERSION',
  /** A step asked for (`--step`, `--at`) is not in the journal. */
  NoSuchStep: 'ERR_NO_SUCH_STEP',
  /** A fork at a step where the agent had already ended. */
  CannotFork: 'ERR_CANNOT_FORK',
  /** An export file that cannot be read. */
  BadExport: 'ERR_BAD_EXPORT',
} as const;
export type ReplayErrorCode = (typeof ReplayErrorCode)[keyof typeof ReplayErrorCode];

/** Why a journal could not be replayed; `step` is the entry it stopped at, when there is one. */
export class ReplayError extends ErrandError {
  readonly step: number | undefined;

  constructor(code: ReplayErrorCode, message: string, options: { agentId?: string; step?: number; cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'ReplayError';
    this.step = options.step;
  }
}
