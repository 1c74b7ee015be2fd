/** What `errand`'s exit status means; scripts may rely on these. */
export const ExitCode = {
  Ok: 0,
  /** The operation failed (or the agent failed). */
  Failed: 1,
  /** The command line was wrong. */
  Usage: 2,
  /** The thing named does not exist. */
  NotFound: 3,
  /** NATS could not be reached or lacks what Errand needs. */
  Unavailable: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
