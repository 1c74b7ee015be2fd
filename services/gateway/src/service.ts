// The gateway service as a definition: `main.ts` runs it as a process, `errand up` beside the others.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { createClient } from '@errand/client';
import type { ServiceDefinition } from '@errand/service';
import { createGatewayApp } from './app.js';
import { callbackRoutes } from './callbacks.js';
import { parseConfig, type GatewayConfig } from './config.js';
import { lazyRegistry } from './registry.js';
import { systemRoutes } from './system.js';

export const gatewayService: ServiceDefinition<GatewayConfig> = {
  name: 'errand-gateway',
  parseConfig,
  logLevel: (c) => c.logLevel,
  connect: (c) => c.connect,
  // Neither ERRAND_GATEWAY_TOKENS nor ERRAND_NOTIFY_CHANNELS has a name that says secret: their secrets are named here.
  secrets: (c) => [
    ...c.users.map((u) => u.token),
    ...Object.values(c.channels).flatMap((ch) =>
      ch.type === 'slack' ? [ch.token, ch.signingSecret] : ch.type === 'telegram' ? [ch.token, ch.secretToken] : ch.type === 'webhook' ? [ch.secret] : [],
    ),
  ],
  start: async ({ config, conn, logger, redactor }) => {
    const client = await createClient(conn, config.prefix);
    const { app } = createGatewayApp({
      conn,
      client,
      prefix: config.prefix,
      logger,
      redactor,
      users: config.users,
      webDir: config.webDir,
      registry: lazyRegistry(config.agentModules),
      keepAliveMs: config.keepAliveMs,
      system: systemRoutes({ conn, prefix: config.prefix, logger }),
      callbacks: callbackRoutes({ conn, prefix: config.prefix, logger, channels: config.channels }),
    });
    const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', () => resolve());
      server.once('error', reject);
    });
    const port = (server.address() as AddressInfo).port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    logger.info({ url, port, users: config.users.map((u) => u.name) }, 'gateway ready');
    return {
      async stop() {
        // Open event streams would hold close() forever: end them with the server.
        const s = server as unknown as { closeAllConnections?: () => void };
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          s.closeAllConnections?.();
        });
      },
    };
  },
};
