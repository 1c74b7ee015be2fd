import { readStoredRecord, type IdentityVerifier, type KV, type MsgHdrs } from '@errand/nats';
import type { AgentRecord, Message } from '@errand/protocols';
import { fromHost } from './attribution.js';

/**
 * A goal that names a parent agent starts one of that agent's children, which only the parent's
 * own step does: its host stores the record that lists the child, then publishes the goal. Others
 * may publish goals too (an operator's `errand fork`, the gateway's fork), and without this check
 * one of them could start an agent under a parent that never asked for it, or take a child's place
 * before the parent starts it (child ids follow from the parent's id and the ref) and answer the
 * parent with results of its own.
 */
export interface ChildGoalCheck {
  /** Checks who sent a message; a goal a host (or the admin) proved sending stands. None without credentials. */
  identities: IdentityVerifier | undefined;
  /** The agents bucket. */
  agents: KV;
  /**
   * The parent's record as the stream's leader has it (a read from a replica may not have caught
   * up with the write that listed the child yet). Undefined when it has none.
   */
  readFromLeader: (agentId: string) => Promise<AgentRecord | undefined>;
}

/** Why `goal` is refused, or undefined when its parent started it (or it names no parent). */
export async function refuseChildGoal(c: ChildGoalCheck, goal: Message<'goal'>, data: Uint8Array, headers: MsgHdrs | undefined): Promise<string | undefined> {
  const parent = goal.parent;
  if (!parent) return undefined;
  if (c.identities && fromHost(c.identities, data, headers)) return undefined;
  // Not proved by a host (or a host of an older version, which did not prove its goals): the
  // parent's record must list this agent as the child of that ref.
  const lists = (record: AgentRecord | undefined) => record?.children[parent.ref]?.agentId === goal.agentId;
  if (lists((await readStoredRecord(c.agents, parent.agentId).catch(() => undefined))?.record)) return undefined;
  if (lists(await c.readFromLeader(parent.agentId))) return undefined;
  return `a goal for ${goal.agentId} names ${parent.agentId} as its parent (ref ${parent.ref}), which did not start it: only an agent's own step starts its children`;
}
