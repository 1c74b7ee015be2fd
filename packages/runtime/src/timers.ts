import { MESSAGE_VERSION, messageIds, silentLogger, type Logger, type Message, type Subjects } from '@errand/protocols';
import { publishMessage, type JetStreamClient, type JsMsg } from '@errand/nats';

export interface TimerFiringOptions {
  js: JetStreamClient;
  subjects: Subjects;
  logger: Logger;
  now: () => number;
}

/**
 * Handles one durable timer command from `errand.work.timer`. A timer not yet due is handed back to
 * JetStream with a delay until its due time (`nak(delay)`), so it waits in the stream — surviving
 * restarts of every process and of the server — not in a process's memory. A due timer is
 * published into the agent's inbox (under an id derived from its key, so a repeat is dropped) and
 * then acked. Cancelled or superseded timers still fire; the host ignores a firing whose key is no
 * longer in the agent's record.
 */
export function createTimerHandler(options: Pick<TimerFiringOptions, 'js' | 'subjects'> & Partial<TimerFiringOptions>) {
  const o = { logger: silentLogger, now: Date.now, ...options };
  return async (timer: Message<'timer.request'>, msg: JsMsg): Promise<void> => {
    if (timer.action === 'cancel') return;
    const wait = timer.dueAt - o.now();
    if (wait > 0) {
      msg.nak(wait);
      return;
    }
    const fired: Message<'timer.fired'> = {
      v: MESSAGE_VERSION,
      kind: 'timer.fired',
      agentId: timer.agentId,
      key: timer.key,
      timerId: timer.timerId,
      event: timer.event,
      dueAt: timer.dueAt,
      firedAt: o.now(),
    };
    await publishMessage(o.js, o.subjects.agentIn(timer.agentId, 'timer'), fired, { msgId: messageIds.timerFired(timer.key) });
    o.logger.debug({ agentId: timer.agentId, timerId: timer.timerId, lateMs: -wait }, 'timer fired');
  };
}
