// The traceparent crosses NATS in a message header and comes out as it went in: the receiver's
// span continues the sender's trace. A real nats-server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers } from '@errand/nats';
import { startSpan, TRACEPARENT, traceparentFrom } from '@errand/telemetry';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';
import type { ErrandConnection } from '@errand/nats';

let srv: TestServer;
let conn: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect();
});
afterAll(async () => {
  await conn?.close();
  await srv?.stop();
});

/** Publishes `value` (or nothing) as the traceparent header and returns what the receiver reads. */
async function roundTrip(value: string | undefined): Promise<string | undefined> {
  const subject = `${uniquePrefix()}.trace`;
  const sub = conn.nc.subscribe(subject, { max: 1 });
  const h = headers();
  if (value !== undefined) h.set(TRACEPARENT, value);
  conn.nc.publish(subject, 'x', { headers: h });
  for await (const m of sub) return traceparentFrom(m.headers);
  throw new Error('no message');
}

describe('traceparent through NATS headers', () => {
  it("arrives unchanged, and the receiver's span is in the sender's trace", async () => {
    const sender = startSpan('errand.step', undefined);
    const received = await roundTrip(sender.traceparent);
    expect(received).toBe(sender.traceparent);
    const receiver = startSpan('errand.tool.request', received);
    expect(receiver.traceId).toBe(sender.traceId);
    expect(receiver.traceparent).not.toBe(sender.traceparent);
    sender.end();
    receiver.end();
  });

  it('a missing or malformed header reads as no trace, so the receiver starts its own', async () => {
    expect(await roundTrip(undefined)).toBeUndefined();
    expect(await roundTrip('00-not-a-trace-01')).toBeUndefined();
    const own = startSpan('errand.tool.request', await roundTrip('bogus'));
    expect(own.traceId).toMatch(/^[0-9a-f]{32}$/);
    own.end();
  });
});
