import { readRecord, type KV } from '@errand/nats';
import { formatUsd, roundUsd } from '@errand/protocols';

export interface DigestCounts {
  running: number;
  waiting: number;
  paused: number;
  doneToday: number;
  failedToday: number;
  spentTodayUsd: number;
}

/**
 * Counts agents by what they are doing, and today's model spend, from the agent records — no
 * model call, no tokens, and nothing of any machine's own context. "Waiting" means waiting for a
 * person (a question, an approval, a budget decision: `record.waiting`, status `waiting`); the
 * spend is each agent's usage as its machine reported it (`record.usage`).
 */
export async function countAgents(agents: KV, now = Date.now()): Promise<DigestCounts> {
  const startOfDay = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate());
  const c: DigestCounts = { running: 0, waiting: 0, paused: 0, doneToday: 0, failedToday: 0, spentTodayUsd: 0 };
  const keys = await agents.keys();
  for await (const key of keys) {
    const r = await readRecord(agents, key);
    if (!r) continue;
    if (r.status === 'paused') c.paused += 1;
    else if (r.status === 'waiting') c.waiting += 1;
    else if (r.status === 'running') c.running += 1;
    else if (r.updatedAt >= startOfDay && r.status === 'done') c.doneToday += 1;
    else if (r.updatedAt >= startOfDay && r.status === 'failed') c.failedToday += 1;
    if (r.updatedAt >= startOfDay) c.spentTodayUsd = roundUsd(c.spentTodayUsd + (r.usage?.costUsd ?? 0));
  }
  return c;
}

export function digestText(c: DigestCounts): string {
  const agents = (n: number) => `${n} agent${n === 1 ? '' : 's'}`;
  return [
    `${agents(c.running)} running, ${c.waiting} waiting for you${c.paused ? `, ${c.paused} paused` : ''}`,
    `today: ${c.doneToday} done, ${c.failedToday} failed, ${formatUsd(c.spentTodayUsd)} spent`,
  ].join('; ');
}
