import { pino } from 'pino';
import type { Logger } from '@errand/protocols';

/**
 * The CLI's root logger: human-readable on a terminal, JSON lines otherwise, always on stderr so
 * that stdout carries only command output (and `--json` stays parseable).
 */
export function createLogger(level: string, service = 'cli'): Logger {
  const pretty = process.stderr.isTTY;
  return pino(
    {
      level,
      base: { service },
      redact: { paths: ['*.password', '*.token', '*.secret', '*.apiKey', 'headers.authorization'], censor: '[redacted]' },
    },
    pretty
      ? pino.transport({ target: 'pino-pretty', options: { destination: 2, ignore: 'pid,hostname', translateTime: 'HH:MM:ss' } })
      : pino.destination(2),
  ) as unknown as Logger;
}
