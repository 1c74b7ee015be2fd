// The shapes of docs/../notes gateway-api contract, as the dashboard reads them. Written here (not
// imported from @errand/protocols) so the browser bundle carries no server code; only the fields
// the views use are listed, and every one may be missing from an older gateway.

export type AgentStatus = 'running' | 'waiting' | 'paused' | 'done' | 'failed' | 'cancelled';
export const AGENT_STATUSES: readonly AgentStatus[] = ['running', 'waiting', 'paused', 'done', 'failed', 'cancelled'];
export const TERMINAL: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

export interface ErrorInfo {
  code: string;
  message: string;
  retryable?: boolean;
}

export interface Waiting {
  kind: 'approval' | 'input' | 'budget';
  requestId: string;
  since: number;
  deadline?: number;
  question?: string;
  calls?: { tool: string; args: unknown }[];
  argsHash?: string;
  summary?: string;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export interface Budget {
  maxSteps?: number;
  maxTokens?: number;
  maxCostUsd?: number;
}

export interface AgentSummary {
  agentId: string;
  agent: string;
  goal: string;
  status: AgentStatus;
  state: unknown;
  step: number;
  labels: Record<string, string>;
  waiting?: Waiting;
  /** Who started it, as its host attributed the goal (absent in older records). */
  submittedBy?: { id: string; channel: string; name?: string };
  /** The last pause, resume or cancel, and who gave it. */
  control?: { action: 'cancel' | 'pause' | 'resume'; by?: { id: string; channel: string; name?: string }; reason?: string; at: number };
  output?: unknown;
  error?: ErrorInfo;
  children: Record<string, { agentId: string; status: AgentStatus }>;
  parent?: { agentId: string; ref?: string };
  createdAt: string;
  updatedAt: string;
  usage?: Usage;
  budget?: Budget;
}

export interface AgentDetail {
  agent: AgentSummary;
  record: { timers?: Record<string, { dueAt: number }>; pending?: Record<string, { kind: string }>; approvals?: unknown; origin?: unknown; parent?: unknown; trace?: unknown };
}

export interface Task {
  id: string;
  title: string;
  status: 'pending' | 'in_progress' | 'done' | 'failed' | 'cancelled';
  children?: Task[];
}

export interface CommandSummary {
  kind: string;
  key: string;
  subject: string;
}

interface EventBase {
  agentId: string;
  at: number;
}

export type ProgressEvent =
  | (EventBase & { kind: 'event.step'; step: number; inboxId: string; machine: { id: string; version: number }; event: { type: string; [k: string]: unknown }; state: unknown; status: AgentStatus; commands: CommandSummary[] })
  | (EventBase & { kind: 'event.state'; step: number; state: unknown; status: AgentStatus })
  | (EventBase & { kind: 'event.plan'; step: number; tasks: Task[] })
  | (EventBase & { kind: 'event.tool'; step: number; callId: string; tool: string; status: 'requested' | 'ok' | 'error' | 'retrying' | 'cancelled'; attempt: number; durationMs?: number; error?: ErrorInfo })
  | (EventBase & { kind: 'event.approval'; requestId: string; status: 'requested' | 'approved' | 'denied' | 'expired' | 'refused'; tool?: string; argsHash: string; by?: { id: string; name?: string }; reason?: string })
  | (EventBase & { kind: 'event.usage'; step: number; usage: { model: string; inputTokens: number; outputTokens: number; costUsd?: number }; total: Usage })
  | (EventBase & { kind: 'event.done'; output?: unknown; summary?: string })
  | (EventBase & { kind: 'event.failed'; error: ErrorInfo });

export type EventKind = ProgressEvent['kind'];
export const EVENT_KINDS: readonly EventKind[] = ['event.step', 'event.state', 'event.plan', 'event.tool', 'event.approval', 'event.usage', 'event.done', 'event.failed'];

export interface ReplayStep {
  step: number;
  event: { type: string; [k: string]: unknown };
  state: unknown;
  status?: AgentStatus;
  commands: CommandSummary[];
  summary?: string;
  matches?: boolean;
}

export interface ReplayResult {
  steps: ReplayStep[];
  verification?: { ok: boolean; firstDivergentStep?: number; [k: string]: unknown };
}

export interface StepView {
  step: number;
  event: string;
  state: unknown;
  status: AgentStatus;
  commands: string;
}

export interface RunCost {
  modelCalls: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  toolCalls: number;
  steps: number;
}

export interface RunDiff {
  a: string;
  b: string;
  firstDivergentStep?: number;
  rows: { step: number; a?: StepView; b?: StepView }[];
  cost: { a: RunCost; b: RunCost };
}

export interface SystemInfo {
  server: { version: string; jetstream: boolean; cluster?: string; durabilityWarning?: string };
  services: { name: string; id: string; version: string; host?: string; startedAt?: string | number; role?: string }[];
  replicas: Record<string, number>;
  consumers: { stream: string; name: string; pending: number; ackPending: number; redelivered: number }[];
  dlq: { seq: number; subject: string; origin: string; reason: string; at: string | number; agentId?: string }[];
}

export interface LogLine {
  level?: number | string;
  time?: number | string;
  msg?: string;
  service?: string;
  [k: string]: unknown;
}
