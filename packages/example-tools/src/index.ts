// Example tools written as functions, for a shop's order API. Serve them beside the built-ins:
//
//   SHOP_API_URL=https://shop.internal/api errand worker tool-runner --tools @errand/example-tools
//
// Each shows one thing to decide when writing a tool:
// - order_status reads: running it twice is harmless (idempotent), so it runs on its own (auto),
//   and a runner killed mid-call simply runs it again;
// - refund_order moves money: not idempotent, and a person approves each call with its exact
//   arguments (ask). It hands the call's idempotency key to the API, so even a retry the runner
//   cannot rule out is refunded once; a runner killed mid-call does not re-run it, the agent asks;
// - export_orders is long: it pages through the API, saying it is alive after each page
//   (ctx.heartbeat) — silent for 30 s, it is aborted as stuck rather than waiting its full limit.
//
// The module reads SHOP_API_URL (and SHOP_API_TOKEN) when a call runs: a tool module is the
// process's edge, like a service's main.
import { defineTool, ToolError } from '@errand/function-tools';
import { z } from 'zod';

interface ShopOptions {
  baseUrl: string;
  token: string | undefined;
}

function shop(): ShopOptions {
  const baseUrl = process.env.SHOP_API_URL;
  if (!baseUrl) throw new ToolError('ERR_NOT_CONFIGURED', 'the shop API is not configured on this tool-runner (SHOP_API_URL)');
  return { baseUrl: baseUrl.replace(/\/+$/, ''), token: process.env.SHOP_API_TOKEN || undefined };
}

/** One request to the shop's API; its failures become errors the model can read. */
async function shopRequest(path: string, init: { method?: string; body?: unknown; key: string; idempotent?: boolean; signal: AbortSignal }): Promise<unknown> {
  const { baseUrl, token } = shop();
  let res: Response;
  try {
    res = await fetch(`${baseUrl}${path}`, {
      method: init.method ?? 'GET',
      signal: init.signal,
      headers: {
        accept: 'application/json',
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        // The call's key on every request, so the shop's logs tie a request to an agent's step;
        // for a write, as the idempotency key: every attempt of one call, the API does the work once.
        'x-request-id': init.key,
        ...(init.idempotent ? { 'idempotency-key': init.key } : {}),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  } catch (err) {
    if (init.signal.aborted) throw err;
    throw new ToolError('ERR_NETWORK', `the shop API did not answer: ${(err as Error).message}`, true);
  }
  if (res.status === 404) throw new ToolError('ERR_NOT_FOUND', `no such order (${path})`);
  if (!res.ok) throw new ToolError('ERR_HTTP_STATUS', `the shop API answered ${res.status}`, res.status >= 500 || res.status === 429);
  return res.json();
}

const orderId = z.string().regex(/^[A-Za-z0-9-]{1,40}$/, 'an order id: letters, digits and -').describe('the order id, as in ORD-1234');

const Order = z.object({
  id: z.string(),
  status: z.enum(['placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded']),
  totalCents: z.number().int().nonnegative(),
  currency: z.string().length(3),
  customer: z.string(),
});

export const orderStatus = defineTool({
  name: 'order_status',
  description: 'Look up an order: its status, total and customer. Read-only.',
  input: z.object({ orderId }),
  output: Order,
  policy: 'auto',
  idempotent: true,
  timeoutMs: 15_000,
  // What the shop answers is checked against `output` by defineTool: an answer of another shape
  // reaches the model as ERR_TOOL_OUTPUT, never as half-read data.
  run: async ({ orderId }, ctx) => (await shopRequest(`/orders/${encodeURIComponent(orderId)}`, { key: ctx.key, signal: ctx.signal })) as z.input<typeof Order>,
});

export const refundOrder = defineTool({
  name: 'refund_order',
  description: 'Refund part or all of an order to the customer. Moves money: a person approves each call. Give the amount in cents and a short reason the customer will see.',
  input: z.object({
    orderId,
    amountCents: z.number().int().positive().max(1_000_000).describe('how much to refund, in cents'),
    reason: z.string().min(3).max(200).describe('why, in a sentence the customer will read'),
  }),
  output: z.object({ refundId: z.string(), status: z.enum(['pending', 'succeeded']), amountCents: z.number().int() }),
  policy: 'ask',
  idempotent: false,
  destructive: true,
  timeoutMs: 30_000,
  run: async ({ orderId, amountCents, reason }, ctx) => {
    ctx.log.info({ orderId, amountCents }, 'refunding');
    return (await shopRequest(`/orders/${encodeURIComponent(orderId)}/refunds`, { method: 'POST', body: { amountCents, reason }, key: ctx.key, idempotent: true, signal: ctx.signal })) as {
      refundId: string;
      status: 'pending' | 'succeeded';
      amountCents: number;
    };
  },
});

export const exportOrders = defineTool({
  name: 'export_orders',
  description: 'Count the orders placed since a date, by status, paging through all of them. Can take minutes on a large shop.',
  input: z.object({
    since: z.iso.date().describe('the first day, YYYY-MM-DD'),
    pageSize: z.number().int().min(10).max(500).default(100),
  }),
  output: z.object({ total: z.number().int(), byStatus: z.record(z.string(), z.number().int()) }),
  policy: 'auto',
  idempotent: true,
  timeoutMs: 15 * 60_000,
  heartbeatTimeoutMs: 30_000,
  run: async ({ since, pageSize }, ctx) => {
    const byStatus: Record<string, number> = {};
    let total = 0;
    // Bounded: a shop API that never says it is done would otherwise page forever.
    for (let page = 1; page <= 10_000; page++) {
      const body = (await shopRequest(`/orders?since=${since}&page=${page}&pageSize=${pageSize}`, { key: ctx.key, signal: ctx.signal })) as { orders: { status: string }[]; more: boolean };
      for (const o of body.orders) byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
      total += body.orders.length;
      ctx.heartbeat();
      if (!body.more) break;
    }
    return { total, byStatus };
  },
});

export default [orderStatus, refundOrder, exportOrders];
