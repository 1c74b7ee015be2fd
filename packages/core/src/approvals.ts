import { APPROVALS_KEPT, callHash, type AgentRecord, type Message, type Principal } from '@errand/protocols';
import type { MachineEvent } from './record.js';

/**
 * The runtime's approval bookkeeping: the requests a machine asked (kept in the record), the
 * decisions people made on them, and the evidence a tool command carries. The machine never
 * decides what counts as approved.
 */

/** Why an arriving `approval` message may not reach the machine, or undefined when it may. */
export function approvalRefusal(record: AgentRecord, requestId: string, argsHash: string): { reason: string; refused?: boolean } | undefined {
  // A decision applies only to a request the agent made and that is still open, about exactly
  // the arguments the person was shown; anything else never reaches the machine.
  const open = record.approvals?.find((a) => a.requestId === requestId);
  if (!open) return { reason: `the agent has no approval request '${requestId}'`, refused: true };
  if (open.decision) return { reason: `approval request '${requestId}' is already ${open.decision === 'expired' ? 'expired' : 'decided'}` };
  if (open.argsHash !== argsHash) {
    return { reason: `the argsHash does not match approval request '${requestId}': the decision was about other arguments`, refused: true };
  }
  return undefined;
}

/**
 * Records a person's decision on the agent's open request. Done where the event is applied (not
 * where the message arrives), so replaying the journal, and a decision deferred while paused,
 * keep the same bookkeeping. Events from other agents (`from`) never decide anything.
 */
export function settleApproval(record: AgentRecord, event: MachineEvent, now: number): void {
  if (event.type !== 'approval' || event.from !== undefined) return;
  const open = record.approvals?.find((a) => a.requestId === event.requestId && a.argsHash === event.argsHash && a.decision === undefined);
  if (!open || (event.decision !== 'approve' && event.decision !== 'deny')) return;
  open.decision = event.decision;
  if (event.by !== undefined) open.by = event.by as Principal;
  open.decidedAt = now;
}

/** Keeps an approval request the machine asks (replacing an older one of the same id), bounded. */
export function recordApprovalRequest(record: AgentRecord, requestId: string, argsHash: string, calls: readonly { tool: string; args: unknown }[], now: number): void {
  const kept = (record.approvals ?? []).filter((a) => a.requestId !== requestId);
  kept.push({ requestId, argsHash, calls: calls.map((c) => callHash(c.tool, c.args)), requestedAt: now });
  record.approvals = kept.slice(-APPROVALS_KEPT);
}

/** Marks an open request expired (the machine says its deadline passed). */
export function expireApprovalRequest(record: AgentRecord, requestId: unknown, now: number): void {
  const open = record.approvals?.find((a) => a.requestId === requestId && a.decision === undefined);
  if (open) (open.decision = 'expired'), (open.decidedAt = now);
}

/**
 * The evidence a tool command carries: only when the machine names a request that a person
 * approved and that asked about exactly this call.
 */
export function approvalEvidence(record: AgentRecord, requestId: string | undefined, tool: string, args: unknown, now: number): Message<'tool.request'>['approval'] {
  if (requestId === undefined) return undefined;
  const approved = record.approvals?.find((a) => a.requestId === requestId && a.decision === 'approve');
  const argsHash = callHash(tool, args);
  if (!approved || !approved.calls.includes(argsHash)) return undefined;
  return { requestId, argsHash, by: approved.by ?? { id: 'unknown', channel: 'unknown' }, at: approved.decidedAt ?? now };
}
