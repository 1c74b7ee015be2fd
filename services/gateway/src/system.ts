// GET /api/system: the deployment as the gateway's connection sees it (@errand/client's
// systemStatus: server and durability, services found by NATS service discovery with their
// replicas, consumer backlogs, the newest dead letters). Mounted behind the gateway's auth.
import { Hono } from 'hono';
import { systemStatus, type SystemStatusOptions } from '@errand/client';
import type { ErrandConnection } from '@errand/nats';
import type { Logger } from '@errand/protocols';

export interface SystemRoutesDeps {
  conn: ErrandConnection;
  prefix: string;
  logger: Logger;
  /** Discovery wait and DLQ length (defaults: 300 ms, quiet after 100 ms, 20 entries). */
  options?: Omit<SystemStatusOptions, 'prefix'>;
}

/**
 * `GET /api/system` → the {@link import('@errand/client').SystemStatus} JSON (docs/gateway.md,
 * /work/notes/gateway-api.md). A NATS failure is answered 503 `ERR_NATS` with what to check.
 */
export function systemRoutes(deps: SystemRoutesDeps): Hono {
  const app = new Hono();
  app.get('/api/system', async (c) => {
    try {
      return c.json(await systemStatus(deps.conn, { ...deps.options, prefix: deps.prefix }));
    } catch (err) {
      deps.logger.warn({ err }, `GET /api/system: ${(err as Error).message}`);
      return c.json(
        { code: 'ERR_NATS', message: `the gateway could not read the system from NATS (${(err as Error).message}); check that the NATS server is up and runs JetStream` },
        503,
      );
    }
  });
  return app;
}
