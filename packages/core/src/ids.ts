import { createHash, randomBytes } from 'node:crypto';

/**
 * A new agent id: `a-` + milliseconds in base 36 + 8 random hex digits. Ids sort roughly by
 * creation time, and are single subject tokens and valid KV keys.
 */
export function newAgentId(now = Date.now()): string {
  return `a-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}

const MAX_READABLE_CHILD_ID = 100;

/**
 * The id of the child a parent spawns under `ref`: deterministic, so re-publishing the parent's
 * outbox after a crash addresses the same child. Readable (`<parent>-<ref>`) while short enough;
 * a hash of both beyond that.
 */
export function childAgentId(parentId: string, ref: string): string {
  const readable = `${parentId}-${ref}`;
  if (readable.length <= MAX_READABLE_CHILD_ID && /^[A-Za-z0-9_-]+$/.test(ref)) return readable;
  return `c-${createHash('sha256').update(`${parentId}\n${ref}`).digest('hex').slice(0, 32)}`;
}
