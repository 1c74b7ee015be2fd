#!/usr/bin/env node
// The tool-runner service: wiring only. Configuration comes from the environment (see config.ts).
import { mkdir } from 'node:fs/promises';
import { runService } from '@errand/service';
import { startToolRunner } from '@errand/tool-runner';
import { fsTools, httpFetchTool, shellTool, type Tool } from '@errand/tools';
import { parseConfig } from './config.js';

await runService({
  name: 'errand-tool-runner',
  parseConfig,
  logLevel: (c) => c.logLevel,
  connect: (c) => c.connect,
  start: async ({ config, conn, logger }) => {
    await mkdir(config.workspace, { recursive: true });
    const all: Tool[] = [
      ...fsTools({ root: config.workspace, maxReadBytes: 512 * 1024, maxWriteBytes: 512 * 1024 }),
      httpFetchTool({ allowHosts: config.httpAllow, maxBytes: 512 * 1024, timeoutMs: 30_000, maxRedirects: 5 }),
      ...(config.shellAllow.length ? [shellTool({ allowCommands: config.shellAllow, cwd: config.workspace, timeoutMs: 120_000, maxOutputBytes: 64 * 1024 })] : []),
    ];
    return startToolRunner({
      conn,
      prefix: config.prefix,
      tools: all.filter((t) => config.tools.includes(t.definition.name)),
      settings: config.settings,
      concurrency: config.concurrency,
      ackWaitMs: config.ackWaitMs,
      logger,
      ...(config.runnerId ? { runnerId: config.runnerId } : {}),
    });
  },
});
