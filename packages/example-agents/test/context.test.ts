import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { agents } from '@errand/example-agents';

/**
 * XState computes a machine's initial snapshot without input in some paths (an actor created with
 * none, an inert actor for `transition`). A context factory that reads `input.x` throws there; the
 * throw is caught, but its stack trace is paid each time. Every example's factory is safe
 * (the built-in agent's: `packages/agent/test/machine.test.ts`).
 */
describe('context factories without input', () => {
  it.each(agents.map((d) => [`${d.id}@${d.version}`, d] as const))('%s builds a snapshot, no error', (_name, d) => {
    const snapshot = createActor(d.machine).getSnapshot() as { status: string; error?: unknown };
    expect(snapshot.error).toBeUndefined();
    expect(snapshot.status).toBe('active');
  });
});
