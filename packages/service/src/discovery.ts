import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { NatsConnection, Subscription } from '@errand/nats';
import { discoverySubject, DiscoveryResponseType, DiscoveryVerb, SERVICE_NAME, type Logger, type ServiceMetadata } from '@errand/protocols';

/** The Errand release a process runs: this package's version (every package is released together). */
export const ERRAND_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface DiscoveryOptions {
  /** The service's name (`errand-host`…): letters, digits, `-` and `_`. */
  name: string;
  /** SemVer. Default {@link ERRAND_VERSION}. */
  version?: string;
  description?: string;
  metadata: ServiceMetadata;
  logger?: Logger;
}

/** A service answering discovery; `stop()` unsubscribes (the service disappears from `nats micro ls`). */
export interface DiscoveryResponder {
  /** This instance's id: `$SRV.<verb>.<name>.<id>` reaches it alone. */
  readonly id: string;
  readonly name: string;
  stop(): void;
}

/** The metadata of an Errand service started now in this process. */
export function serviceMetadata(prefix: string, role: string | undefined, started = new Date()): ServiceMetadata {
  return { prefix, role: role ?? 'none', hostname: hostname(), pid: String(process.pid), started: started.toISOString() };
}

/**
 * Answers the NATS micro-service discovery protocol (ADR-32) on `nc`: `$SRV.PING|INFO|STATS`, for
 * every service, for `name` and for `name` + this instance's id, with the JSON responses the `nats`
 * CLI (`nats micro ls`, `nats micro info`) and every NATS client library read. The service has no
 * endpoints of its own there: Errand's work travels on JetStream, not on micro endpoints.
 * Throws TypeError for a name ADR-32 does not allow.
 */
export function answerDiscovery(nc: NatsConnection, o: DiscoveryOptions): DiscoveryResponder {
  if (!SERVICE_NAME.test(o.name)) throw new TypeError(`service name '${o.name}': letters, digits, _ and - only`);
  // 22 characters like a NUID; only needs to be unique among the instances of a name.
  const id = randomBytes(16).toString('hex').slice(0, 22);
  const standard = { name: o.name, id, version: o.version ?? ERRAND_VERSION, metadata: o.metadata };
  const encoder = new TextEncoder();
  const bodies: Record<DiscoveryVerb, () => Uint8Array> = {
    [DiscoveryVerb.Ping]: () => encoder.encode(JSON.stringify({ type: DiscoveryResponseType.Ping, ...standard })),
    [DiscoveryVerb.Info]: () => encoder.encode(JSON.stringify({ type: DiscoveryResponseType.Info, ...standard, description: o.description ?? '', endpoints: [] })),
    [DiscoveryVerb.Stats]: () => encoder.encode(JSON.stringify({ type: DiscoveryResponseType.Stats, ...standard, started: o.metadata.started, endpoints: [] })),
  };
  const subs: Subscription[] = [];
  for (const verb of Object.values(DiscoveryVerb)) {
    const body = bodies[verb]();
    for (const subject of [discoverySubject(verb), discoverySubject(verb, o.name), discoverySubject(verb, o.name, id)]) {
      subs.push(
        nc.subscribe(subject, {
          callback: (err, msg) => {
            if (err) return void o.logger?.warn({ err, subject }, 'service discovery subscription failed');
            // A request without a reply subject is nobody's question.
            if (msg.reply) msg.respond(body);
          },
        }),
      );
    }
  }
  return {
    id,
    name: o.name,
    stop() {
      for (const s of subs) s.unsubscribe();
    },
  };
}
