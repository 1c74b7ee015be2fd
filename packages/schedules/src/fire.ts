import { ClientError, ClientErrorCode, type ErrandClient } from '@errand/client';
import { CodecError, ErrorCode, silentLogger, TERMINAL_STATUSES, type Logger, type Principal } from '@errand/protocols';
import { scheduledAgentId, type ScheduleFire, type ScheduleRecord } from './record.js';

/** Refusals the intake marks as passing: the fire is tried again (under the same agent id), not recorded as refused. */
const PASSING_REFUSALS: ReadonlySet<string> = new Set([ErrorCode.Unavailable, 'ERR_RATE_LIMITED']);

/**
 * A previous run with no record yet counts as running for this long after its fire: the intake
 * answers a submit when the goal is published, before the host's first step writes the record.
 * Past it, a missing record is one that retention removed long after the run ended.
 */
const RECORD_PENDING_MS = 60_000;

/** Who a schedule's goals are submitted by: the schedule itself. */
export function schedulePrincipal(scheduleId: string): Principal {
  return { id: `schedule:${scheduleId}`, channel: 'schedule' };
}

export interface FireOptions {
  now: () => number;
  logger?: Logger;
  /** A fire asked for by `trigger`, not by the cron expression. */
  manual?: boolean;
}

/**
 * Fires `record` for `fireAt`: applies the overlap policy to its previous run, then submits the
 * goal through the intake under the fire's deterministic agent id, so a fire handled twice starts
 * one agent (the second submit is answered `existing`). Resolves with what happened, to be
 * recorded. A refusal of the goal itself (an unknown agent definition, an invalid goal) is an
 * outcome (`refused`); anything passing (no host answered, JetStream unavailable, rate limited)
 * throws, and the caller tries the same fire again later.
 */
export async function fireSchedule(client: ErrandClient, record: ScheduleRecord, fireAt: number, options: FireOptions): Promise<ScheduleFire> {
  const logger = options.logger ?? silentLogger;
  const manual = options.manual === true;
  const agentId = scheduledAgentId(record.id, fireAt, manual);
  const base = { at: fireAt, ...(manual ? { manual: true as const } : {}) };
  const by = schedulePrincipal(record.id);

  const previous = record.lastRun?.agentId;
  if (previous !== undefined && previous !== agentId && record.overlap !== 'allow') {
    const status = await runningStatus(client, previous, record.lastRun!.handledAt, options.now());
    if (status !== undefined) {
      if (record.overlap === 'skip') {
        return { ...base, handledAt: options.now(), outcome: 'skipped-overlap', reason: `the previous run ${previous} is still ${status} (overlap policy skip)` };
      }
      try {
        await client.control(previous, 'cancel', by, `schedule ${record.id}: the next fire replaces it (overlap policy cancel-previous)`);
        logger.info({ scheduleId: record.id, agentId: previous }, 'cancelled the previous run (overlap policy cancel-previous)');
      } catch (err) {
        // It ended meanwhile (or never got a record): nothing to cancel.
        if (!(err instanceof ClientError && (err.code === ClientErrorCode.AgentEnded || err.code === ClientErrorCode.NotFound))) throw err;
      }
    }
  }

  try {
    const reply = await client.submit(record.goal, {
      agentId,
      ...(record.agent !== undefined ? { agent: record.agent } : {}),
      ...(record.input !== undefined ? { input: record.input } : {}),
      labels: { ...record.labels, schedule: record.id, 'scheduled-for': new Date(fireAt).toISOString() },
      submittedBy: by,
    });
    return { ...base, handledAt: options.now(), agentId, outcome: reply.existing ? 'existing' : 'started' };
  } catch (err) {
    if (err instanceof ClientError && err.code === ClientErrorCode.Refused && !PASSING_REFUSALS.has(err.reason ?? '')) {
      return { ...base, handledAt: options.now(), agentId, outcome: 'refused', reason: err.message };
    }
    throw err;
  }
}

/** The status of a run that has not ended, or undefined for one that has (or whose record is long gone). */
async function runningStatus(client: ErrandClient, agentId: string, firedAt: number, now: number): Promise<string | undefined> {
  let record;
  try {
    record = await client.record(agentId);
  } catch (err) {
    // A record this build cannot read (a newer host wrote it): take it as running, the safe side for skip.
    if (!(err instanceof CodecError)) throw err;
    return 'running (its record is unreadable here)';
  }
  if (record === undefined) return now - firedAt < RECORD_PENDING_MS ? 'starting' : undefined;
  return TERMINAL_STATUSES.has(record.status) ? undefined : record.status;
}
