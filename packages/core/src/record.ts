import { RECORD_FORMAT, type AgentRecord, type Subjects } from '@errand/protocols';
import type { AgentRegistry } from './agent-definition.js';

/** An event as a machine sees it. */
export type MachineEvent = { type: string; [key: string]: unknown };

/** The context of one step: which agent, which inbox message, when, and what it may run. */
export interface StepContext {
  readonly agentId: string;
  /** The inbox message's id (its Nats-Msg-Id, or stream and sequence). */
  readonly inboxId: string;
  readonly now: number;
  readonly subjects: Subjects;
  readonly registry: AgentRegistry;
}

/** A record before its first step: running, nothing pending, nothing sent. */
export function emptyRecord(ctx: StepContext, machine: { id: string; version: number }): AgentRecord {
  return {
    format: RECORD_FORMAT,
    agentId: ctx.agentId,
    machine: { id: machine.id, version: machine.version },
    status: 'running',
    step: 0,
    snapshot: undefined,
    goal: '',
    children: {},
    timers: {},
    pending: {},
    applied: [],
    outbox: [],
    deferred: [],
    createdAt: ctx.now,
    updatedAt: ctx.now,
  };
}
