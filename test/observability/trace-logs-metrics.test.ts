import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@errand/client';
import { startMockLlm } from '@errand/llm';
import { resourceNames } from '@errand/protocols';
import { createDeployment, freePort, startTestServer, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue === undefined ? undefined : Number(v.intValue));
};

/** A loopback OTLP/HTTP receiver: collects the spans exporters POST to /v1/traces (JSON). */
async function startOtlpReceiver() {
  const spans: OtlpSpan[] = [];
  const waiters = new Set<() => void>();
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => resolve(body));
    });
  const server = createServer((req, res) => {
    void read(req).then((body) => {
      if (req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/json') {
        res.writeHead(415).end();
        return;
      }
      const parsed = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of parsed.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      for (const w of [...waiters]) w();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    until(test: () => boolean, timeoutMs = 20_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!test()) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`OTLP receiver: condition not met within ${timeoutMs} ms (${spans.length} spans: ${[...new Set(spans.map((s) => s.name))].join(', ')})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('observability across services (real processes)', () => {
  it('one trace from submit through host, planner and tool runner: in log lines, in the logs stream, as OTLP spans; metrics count the steps', async () => {
    const mock = await startMockLlm({
      steps: [
        { reply: { toolCalls: [{ name: 'fs_write', arguments: { path: 'note.txt', content: 'traced' } }] } },
        { reply: { toolCalls: [{ name: 'fs_read', arguments: { path: 'note.txt' } }] } },
        { expect: { contains: ['traced'] }, reply: { content: 'The note says traced.' } },
      ],
    });
    const otlp = await startOtlpReceiver();
    const metricsPort = await freePort();
    const d = await createDeployment(srv, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url } });
    try {
      const host = await d.start('host', { ERRAND_METRICS_PORT: String(metricsPort) });
      const planner = await d.start('planner', { OPENAI_BASE_URL: mock.url });
      const runner = await d.start('tool-runner');
      const client = await createClient(d.conn, d.prefix);
      const { agentId, traceId } = await client.submit('Write a note and read it back', { tools: ['fs_write', 'fs_read'] });
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      const record = await d.waitForStatus(agentId, ['done', 'failed']);
      expect(record.status).toBe('done');
      expect(mock.failures).toEqual([]);
      // Submitting the same id again says the agent exists, and names its trace (not a new one).
      const again = await client.submit('Write a note and read it back', { agentId, tools: ['fs_write', 'fs_read'] });
      expect(again).toEqual({ agentId, existing: true, traceId });

      // Log lines of every service carry the trace id, bound with the agent id.
      const traced = (out: string) =>
        out
          .split('\n')
          .filter((l) => l.includes(traceId))
          .map((l) => JSON.parse(l) as { service: string; agentId?: string; traceId: string; msg: string });
      for (const [p, service] of [
        [host, 'host'],
        [planner, 'planner'],
        [runner, 'tool-runner'],
      ] as const) {
        const lines = traced(p.stdout());
        expect(lines.length, `${service} log lines with the trace id`).toBeGreaterThan(0);
        for (const l of lines) expect(l).toMatchObject({ service, agentId, traceId });
      }
      expect(traced(runner.stdout()).map((l) => l.msg)).toContain('tool call running');
      // A worker's lines also name the step that sent the command.
      expect(traced(planner.stdout()).every((l) => Number.isInteger((l as { step?: number }).step))).toBe(true);

      // The metrics endpoint counts exactly the steps this agent took.
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(text).toContain(`errand_steps_total{agent="assistant",outcome="commit"} ${record.step}`);
      expect(text).toMatch(/errand_commands_published_total\{kind="plan.request"\} 3/);
      expect(text).toMatch(/errand_consumer_pending\{consumer="host"\} 0/);

      // The same lines were shipped to the logs stream, one subject per service.
      const names = resourceNames(d.prefix);
      const consumer = await d.conn.js.consumers.get(names.streams.logs, { filter_subjects: d.subjects.logs() });
      const shipped = new Set<string>();
      const messages = await consumer.consume();
      const timer = setTimeout(() => void messages.close(), 15_000);
      for await (const m of messages) {
        if (m.string().includes(traceId)) shipped.add(m.subject);
        if (shipped.size === 3 || m.info.pending === 0) break;
      }
      clearTimeout(timer);
      await messages.close();
      expect([...shipped].sort()).toEqual([d.subjects.logs('host'), d.subjects.logs('planner'), d.subjects.logs('tool-runner')].sort());

      // Stopped, each service flushes its spans: step, model call and tool calls share the trace.
      await d.stopAll();
      const names2 = ['errand.submit', 'errand.step', 'errand.plan.request', 'errand.tool.request'];
      await otlp.until(() => names2.every((n) => otlp.spans.some((s) => s.name === n && s.traceId === traceId)));
      const mine = otlp.spans.filter((s) => s.traceId === traceId);
      // Every span but the submitter's root has its parent in the trace.
      const ids = new Set(mine.map((s) => s.spanId));
      const orphans = mine.filter((s) => s.name !== 'errand.submit' && !ids.has(s.parentSpanId ?? ''));
      expect(orphans.map((s) => s.name)).toEqual([]);
      const tools = mine.filter((s) => s.name === 'errand.tool.request');
      expect(tools.map((s) => attr(s, 'errand.tool')).sort()).toEqual(['fs_read', 'fs_write']);
      // Model calls carry OpenTelemetry's GenAI attributes.
      const plans = mine.filter((s) => s.name === 'errand.plan.request');
      expect(plans).toHaveLength(3);
      for (const p of plans) {
        expect(attr(p, 'gen_ai.request.model')).toBe('gpt-4o-mini');
        expect(attr(p, 'gen_ai.usage.input_tokens')).toBeGreaterThan(0);
      }
    } finally {
      await d.stopAll();
      await otlp.close();
      await mock.close();
    }
  });
});
