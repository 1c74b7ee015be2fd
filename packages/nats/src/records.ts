import type { KV } from '@nats-io/kv';
import { decodeRecord, type AgentRecord } from '@errand/protocols';

/** An agent record as read from the agents bucket, with the revision a compare-and-set needs. */
export interface StoredRecord {
  readonly record: AgentRecord;
  readonly revision: number;
}

/**
 * Reads an agent's record from the agents bucket, with its revision: undefined when there is none
 * (never written, deleted or purged). Throws `CodecError` for a record this build cannot read, and
 * the client's error when the bucket cannot be read.
 */
export async function readStoredRecord(agents: KV, agentId: string): Promise<StoredRecord | undefined> {
  const entry = await agents.get(agentId);
  if (!entry || entry.operation !== 'PUT') return undefined;
  return { record: decodeRecord(entry.value), revision: entry.revision };
}

/** Reads an agent's record: undefined when there is none (never written, deleted or purged). See {@link readStoredRecord}. */
export async function readRecord(agents: KV, agentId: string): Promise<AgentRecord | undefined> {
  return (await readStoredRecord(agents, agentId))?.record;
}
