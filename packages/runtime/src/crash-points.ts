/**
 * Named places in a step where a process can be made to die (`ERRAND_CRASH_AT=host.after-commit`),
 * so tests — and anyone who wants to watch recovery — can kill a host exactly there.
 * `intake.after-claim`: a submit with a chosen agent id has claimed it, its goal is not yet published.
 * `schedule.after-fire`: a schedule's fire has submitted its agent, the fire is not yet recorded.
 */
export const CRASH_POINTS = ['intake.after-claim', 'host.after-load', 'host.after-transition', 'host.after-commit', 'host.after-publish', 'host.before-ack', 'schedule.after-fire'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export function isCrashPoint(value: string): value is CrashPoint {
  return (CRASH_POINTS as readonly string[]).includes(value);
}

/** Called at each crash point; the service decides what it does (the host SIGKILLs itself). */
export type CrashHook = (point: CrashPoint) => void;
