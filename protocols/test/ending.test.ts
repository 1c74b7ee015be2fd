import { describe, expect, it } from 'vitest';
import { AGENT_STATUSES, EVENT_MESSAGE_KINDS, isEndingEvent } from '@errand/protocols';

describe('isEndingEvent', () => {
  it('is done, failed, and the state event that says cancelled — nothing else', () => {
    const ending = EVENT_MESSAGE_KINDS.filter((kind) => kind !== 'event.state' && isEndingEvent({ kind }));
    expect(ending.sort()).toEqual(['event.done', 'event.failed']);
    const states = AGENT_STATUSES.filter((status) => isEndingEvent({ kind: 'event.state', status }));
    // A state event that says done or failed comes before the done/failed event of its step.
    expect(states).toEqual(['cancelled']);
    expect(isEndingEvent({ kind: 'goal' })).toBe(false);
  });
});
