import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The process's Prometheus metrics. One registry per process: in `errand up` every service shares
 * it (the `service` label tells them apart where it matters). Libraries record; the service edge
 * serves `/metrics` with {@link startMetricsServer}.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'errand_process_' });

const seconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const metrics = {
  steps: new Counter({ name: 'errand_steps_total', help: 'Agent steps, by agent definition and outcome (commit, duplicate, ignore, error).', labelNames: ['agent', 'outcome'], registers: [registry] }),
  stepSeconds: new Histogram({ name: 'errand_step_duration_seconds', help: 'Time to load, decide, commit and publish one step.', labelNames: ['outcome'], buckets: seconds, registers: [registry] }),
  commandsPublished: new Counter({ name: 'errand_commands_published_total', help: 'Commands and events the host published after a committed step, by kind.', labelNames: ['kind'], registers: [registry] }),
  commands: new Counter({ name: 'errand_commands_total', help: 'Commands a worker finished, by worker and outcome (ok, error, repeat, aborted, failed).', labelNames: ['worker', 'outcome'], registers: [registry] }),
  commandSeconds: new Histogram({ name: 'errand_command_duration_seconds', help: 'Time a worker took to run a command.', labelNames: ['worker'], buckets: seconds, registers: [registry] }),
  toolCalls: new Counter({ name: 'errand_tool_calls_total', help: 'Tool calls run, by tool and outcome (ok, error).', labelNames: ['tool', 'outcome'], registers: [registry] }),
  toolSeconds: new Histogram({ name: 'errand_tool_call_duration_seconds', help: 'Tool call duration.', labelNames: ['tool'], buckets: seconds, registers: [registry] }),
  modelTokens: new Counter({ name: 'errand_model_tokens_total', help: 'Model tokens, by model and type (input, output).', labelNames: ['model', 'type'], registers: [registry] }),
  modelCost: new Counter({ name: 'errand_model_cost_usd_total', help: 'Model cost in USD, by model.', labelNames: ['model'], registers: [registry] }),
  redeliveries: new Counter({ name: 'errand_consumer_redeliveries_total', help: 'Messages delivered again (a handler failed or a process died), by consumer.', labelNames: ['consumer'], registers: [registry] }),
  deadLettered: new Counter({ name: 'errand_dead_lettered_total', help: 'Messages sent to the dead-letter stream, by consumer.', labelNames: ['consumer'], registers: [registry] }),
};

type PendingSource = () => Promise<number>;
const pendingSources = new Map<string, PendingSource>();

/** Messages waiting for each consumer, read from the server when scraped. */
new Gauge({
  name: 'errand_consumer_pending',
  help: 'Messages not yet delivered to the consumer, as the server reports them at scrape time.',
  labelNames: ['consumer'],
  registers: [registry],
  async collect() {
    this.reset();
    await Promise.all(
      [...pendingSources].map(async ([consumer, read]) => {
        try {
          this.set({ consumer }, await read());
        } catch {
          // the server is away: no sample rather than a wrong one
        }
      }),
    );
  },
});

/** Reports a consumer's pending count at scrape time; returns the function that stops it. */
export function watchConsumerPending(consumer: string, read: PendingSource): () => void {
  pendingSources.set(consumer, read);
  return () => {
    if (pendingSources.get(consumer) === read) pendingSources.delete(consumer);
  };
}

/**
 * Whether a process can take work: `ready` false carries the reason a person (or a probe's log)
 * reads, such as "reconnecting to NATS" or "draining: stopping on SIGTERM".
 */
export type Readiness = { ready: true } | { ready: false; reason: string };

export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  /** `http://host:port`, the root the health paths hang off. */
  readonly base: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  /** 0: any free port. */
  port: number;
  /** Default 0.0.0.0. */
  host?: string;
  /** Read on every `GET /readyz`; without it the process is ready as long as it answers. */
  readiness?: () => Readiness;
}

/** The paths a metrics server answers; deploy/k8s probes and systemd checks use them. */
export const HealthPath = { live: '/healthz', ready: '/readyz', metrics: '/metrics' } as const;

/**
 * Serves on `host:port`: `GET /metrics` (Prometheus text format); `GET /healthz` (liveness: 200
 * `{"status":"ok"}` whenever the event loop gets to answer); `GET /readyz` (readiness: 200
 * `{"status":"ready"}`, or 503 `{"code":"ERR_NOT_READY","message":…}` with the reason from
 * `readiness`). Anything else is 404.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const host = options.host ?? '0.0.0.0';
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const get = req.method === 'GET';
    if (get && path === HealthPath.live) {
      json(res, 200, { status: 'ok' });
      return;
    }
    if (get && path === HealthPath.ready) {
      let r: Readiness;
      try {
        r = options.readiness?.() ?? { ready: true };
      } catch (err) {
        r = { ready: false, reason: `could not tell: ${(err as Error).message}` };
      }
      if (r.ready) json(res, 200, { status: 'ready' });
      else json(res, 503, { code: 'ERR_NOT_READY', message: r.reason });
      return;
    }
    if (!get || path !== HealthPath.metrics) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`Errand serves Prometheus metrics at GET ${HealthPath.metrics}, liveness at ${HealthPath.live} and readiness at ${HealthPath.ready}\n`);
      return;
    }
    registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch((err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`could not collect metrics: ${(err as Error).message}\n`));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const base = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  return {
    port,
    base,
    url: `${base}${HealthPath.metrics}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
