// Agents as the API shows them: the client SDK's summary (with `waiting`), and the list's filters
// and cursor pages.
import { summarize, type AgentSummary } from '@errand/client';
import type { AgentRecord } from '@errand/protocols';

export type ApiAgentSummary = AgentSummary;

/**
 * The summary. A record written before the runtime kept `waiting` says nothing of what it waits
 * for: an approval the runtime keeps open in `record.approvals` is shown as the wait it is.
 */
export function summaryOf(r: AgentRecord): ApiAgentSummary {
  const s = summarize(r);
  if (s.waiting || r.status !== 'waiting') return s;
  const open = [...(r.approvals ?? [])].reverse().find((a) => a.decision === undefined);
  return open ? { ...s, waiting: { kind: open.calls.length === 0 ? 'budget' : 'approval', requestId: open.requestId, argsHash: open.argsHash, since: open.requestedAt } } : s;
}

/** The order of the list: most recently updated first, then by id, so a cursor is a position. */
export function compareAgents(a: { updatedAt: string; agentId: string }, b: { updatedAt: string; agentId: string }): number {
  return b.updatedAt.localeCompare(a.updatedAt) || (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0);
}

export function encodeCursor(last: { updatedAt: string; agentId: string }): string {
  return Buffer.from(JSON.stringify([last.updatedAt, last.agentId])).toString('base64url');
}

export function decodeCursor(cursor: string): { updatedAt: string; agentId: string } | undefined {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return { updatedAt: v[0], agentId: v[1] };
  } catch {
    // not a cursor of ours
  }
  return undefined;
}

export interface ListParams {
  statuses: string[];
  labels: [string, string][];
  agent: string | undefined;
  q: string | undefined;
  limit: number;
  after: { updatedAt: string; agentId: string } | undefined;
}

/** One page of `all` (in any order) after the cursor's position. */
export function page(all: readonly ApiAgentSummary[], p: ListParams): { agents: ApiAgentSummary[]; nextCursor?: string } {
  const q = p.q?.toLowerCase();
  const matching = all
    .filter((s) => (p.statuses.length === 0 || p.statuses.includes(s.status)) && (!p.agent || s.agent === p.agent))
    .filter((s) => p.labels.every(([k, v]) => s.labels[k] === v))
    .filter((s) => !q || s.goal.toLowerCase().includes(q) || s.agentId.toLowerCase().includes(q))
    .sort(compareAgents);
  const from = p.after ? matching.findIndex((s) => compareAgents(s, p.after!) > 0) : 0;
  const rest = from < 0 ? [] : matching.slice(from);
  const agents = rest.slice(0, p.limit);
  return { agents, ...(rest.length > p.limit ? { nextCursor: encodeCursor(agents.at(-1)!) } : {}) };
}
