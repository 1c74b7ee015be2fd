import type { Logger } from '@errand/protocols';
import { createServiceLogger, processRedactor } from '@errand/service';

/**
 * The CLI's root logger: the services' logger (pretty on a terminal, JSON lines otherwise,
 * secrets redacted) on stderr, so that stdout carries only command output and `--json` stays
 * parseable. Nothing is shipped to NATS: a command's own diagnostics stay with the person.
 */
export function createLogger(level: string, service = 'cli'): Logger {
  return createServiceLogger(service, level, { fd: 2, shipLevel: 'silent', redactor: processRedactor(process.env) }).logger;
}
