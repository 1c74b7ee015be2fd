import { z } from 'zod';

/**
 * Service discovery, the NATS way: every Errand process answers the NATS micro-service protocol
 * (ADR-32), so `nats micro ls`, `nats micro info <name>` and any NATS client see which services
 * run, where and which version. Subjects are account-wide (`$SRV`, not under the Errand prefix):
 * each answer carries the deployment's `prefix` in its metadata, and readers keep their own.
 */
export const DISCOVERY_PREFIX = '$SRV';

export const DiscoveryVerb = { Ping: 'PING', Info: 'INFO', Stats: 'STATS' } as const;
export type DiscoveryVerb = (typeof DiscoveryVerb)[keyof typeof DiscoveryVerb];

/** The response types of ADR-32 (the `type` field). */
export const DiscoveryResponseType = {
  Ping: 'io.nats.micro.v1.ping_response',
  Info: 'io.nats.micro.v1.info_response',
  Stats: 'io.nats.micro.v1.stats_response',
} as const;

/** A service name as ADR-32 allows it: letters, digits, `-` and `_`. */
export const SERVICE_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * `$SRV.<verb>` (every service), `$SRV.<verb>.<name>` (every instance of a name) or
 * `$SRV.<verb>.<name>.<id>` (one instance): the three subjects each instance answers per verb.
 */
export function discoverySubject(verb: DiscoveryVerb, name?: string, id?: string): string {
  if (name !== undefined && !SERVICE_NAME.test(name)) throw new TypeError(`service name '${name}': letters, digits, _ and - only`);
  if (id !== undefined && (name === undefined || !SERVICE_NAME.test(id))) throw new TypeError(`service id '${id}': letters, digits, _ and - only, after a name`);
  return [DISCOVERY_PREFIX, verb, name, id].filter((t) => t !== undefined).join('.');
}

/**
 * What an Errand service puts in its discovery metadata (ADR-33: strings only). `prefix` tells
 * deployments sharing a NATS account apart; `role` is the NATS identity's role (`none` without
 * credentials); `started` is an ISO time.
 */
export const ServiceMetadataSchema = z.looseObject({
  prefix: z.string(),
  role: z.string(),
  hostname: z.string(),
  pid: z.string(),
  started: z.string(),
});
export type ServiceMetadata = z.infer<typeof ServiceMetadataSchema>;

/** The fields every discovery response has (ADR-32 "standard fields"). */
export const PingResponseSchema = z.looseObject({
  type: z.literal(DiscoveryResponseType.Ping),
  name: z.string().min(1),
  id: z.string().min(1),
  version: z.string(),
  metadata: z.record(z.string(), z.string()).default({}),
});
export type PingResponse = z.infer<typeof PingResponseSchema>;

export const InfoResponseSchema = PingResponseSchema.extend({
  type: z.literal(DiscoveryResponseType.Info),
  description: z.string().default(''),
  endpoints: z.array(z.looseObject({ name: z.string(), subject: z.string(), queue_group: z.string().optional(), metadata: z.record(z.string(), z.string()).nullish() })).default([]),
});
export type InfoResponse = z.infer<typeof InfoResponseSchema>;
