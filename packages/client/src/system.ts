import { durabilityWarning, type ErrandConnection } from '@errand/nats';
import { createSubjects, discoverySubject, DiscoveryVerb, Header, PingResponseSchema, resourceNames } from '@errand/protocols';

/**
 * What a deployment looks like from one connection: the server, the services alive (NATS service
 * discovery), the backlogs of Errand's durable consumers and the newest dead letters. The gateway
 * serves it as `GET /api/system`; `errand status` prints it.
 */
export interface SystemStatus {
  server: {
    version: string;
    /** The server this connection is on (`server_name`). */
    name?: string;
    jetstream: boolean;
    /** When the server is clustered: its cluster's name and the JetStream peers seen (leaders and replicas of Errand's streams). */
    cluster?: { name: string; peers: string[] };
    /** Set when the server cannot sync every acknowledged write to disk (nats-server < 2.10: every 60 s). */
    durabilityWarning?: string;
  };
  /** Every instance that answered `$SRV.PING` for this prefix, by name then start. */
  services: ServiceInstance[];
  /** Instances per service name. */
  replicas: Record<string, number>;
  /** The durable consumers of Errand's streams, by stream then name. */
  consumers: ConsumerBacklog[];
  /** The newest dead letters first. */
  dlq: DeadLetterEntry[];
}

/** One running service, as it answered service discovery. */
export interface ServiceInstance {
  /** `errand-host`, `errand-planner`…: the name `nats micro ls` shows. */
  name: string;
  id: string;
  version: string;
  /** The machine it runs on. */
  host?: string;
  pid?: number;
  /** ISO time it started. */
  startedAt?: string;
  /** The role of the NATS identity it connected with (absent without credentials). */
  role?: string;
}

export interface ConsumerBacklog {
  stream: string;
  name: string;
  /** Messages not yet delivered to it. */
  pending: number;
  /** Delivered and not yet acknowledged (in flight). */
  ackPending: number;
  /** Delivered more than once and not yet acknowledged. */
  redelivered: number;
}

export interface DeadLetterEntry {
  /** Its sequence in the DLQ stream. */
  seq: number;
  /** The subject the message was published on (the DLQ subject when not recorded). */
  subject: string;
  /** Who gave up on it: a service or consumer name. */
  origin: string;
  /** Why, in words a person can act on. */
  reason: string;
  /** The stable code of the reason (`ERR_…`), when recorded. */
  code?: string;
  /** ISO time it was dead-lettered. */
  at: string;
  agentId?: string;
}

export interface SystemStatusOptions {
  /** The deployment's subject prefix: only its services and streams are reported. */
  prefix: string;
  /** How long to collect discovery answers at most (default 300 ms). */
  discoveryMs?: number;
  /** Stop collecting once no new answer came for this long (default 100 ms). */
  quietMs?: number;
  /** How many dead letters (default 20). */
  dlqLimit?: number;
}

/**
 * Collects the {@link ServiceInstance}s of `prefix` that answer `$SRV.PING` within the bounded
 * wait. Answers of other deployments (another prefix on the same account) and anything that is
 * not an ADR-32 ping response are left out. Nobody answering is an empty list, not an error.
 */
export async function discoverServices(conn: ErrandConnection, options: Pick<SystemStatusOptions, 'prefix' | 'discoveryMs' | 'quietMs'>): Promise<ServiceInstance[]> {
  const found: ServiceInstance[] = [];
  try {
    const replies = await conn.nc.requestMany(discoverySubject(DiscoveryVerb.Ping), undefined, {
      strategy: 'stall',
      stall: options.quietMs ?? 100,
      maxWait: options.discoveryMs ?? 300,
    });
    for await (const m of replies) {
      let body: unknown;
      try {
        body = m.json();
      } catch {
        continue;
      }
      const p = PingResponseSchema.safeParse(body);
      if (!p.success || p.data.metadata.prefix !== options.prefix) continue;
      const md = p.data.metadata;
      const pid = Number(md.pid);
      found.push({
        name: p.data.name,
        id: p.data.id,
        version: p.data.version,
        ...(md.hostname ? { host: md.hostname } : {}),
        ...(Number.isInteger(pid) && pid > 0 ? { pid } : {}),
        ...(md.started ? { startedAt: md.started } : {}),
        ...(md.role && md.role !== 'none' ? { role: md.role } : {}),
      });
    }
  } catch {
    // No responders (nothing runs), or the wait ended on an error: what arrived is the answer.
  }
  return found.sort((a, b) => a.name.localeCompare(b.name) || (a.startedAt ?? '').localeCompare(b.startedAt ?? '') || a.id.localeCompare(b.id));
}

/**
 * The deployment's {@link SystemStatus} as `conn` sees it. Streams that do not exist (an
 * unprovisioned prefix) add nothing. Throws only what JetStream management calls throw for
 * reasons other than a missing stream (no permission, no JetStream).
 */
export async function systemStatus(conn: ErrandConnection, options: SystemStatusOptions): Promise<SystemStatus> {
  const names = resourceNames(options.prefix);
  const subjects = createSubjects(options.prefix);
  const jsm = await conn.jsm();
  const streams = [names.streams.inbox, names.streams.events, names.streams.work, names.streams.logs, names.streams.dlq];

  const servicesP = discoverServices(conn, options);
  const peers = new Set<string>();
  let clusterName: string | undefined;
  const consumers: ConsumerBacklog[] = [];
  let dlqState: { first_seq: number; last_seq: number; messages: number } | undefined;
  for (const stream of streams) {
    const info = await jsm.streams.info(stream).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!info) continue;
    if (stream === names.streams.dlq) dlqState = info.state;
    if (info.cluster?.name) clusterName = info.cluster.name;
    if (info.cluster?.leader) peers.add(info.cluster.leader);
    for (const r of info.cluster?.replicas ?? []) peers.add(r.name);
    for await (const c of jsm.consumers.list(stream)) {
      // Durable consumers are the services' work; ephemeral ones are readers (watches, SSE).
      if (!c.config.durable_name) continue;
      consumers.push({ stream, name: c.name, pending: c.num_pending, ackPending: c.num_ack_pending, redelivered: c.num_redelivered });
    }
  }
  consumers.sort((a, b) => a.stream.localeCompare(b.stream) || a.name.localeCompare(b.name));

  const dlq: DeadLetterEntry[] = [];
  const limit = options.dlqLimit ?? 20;
  if (dlqState && dlqState.messages > 0 && limit > 0) {
    // Newest first, by sequence; deleted ones are skipped, within a bounded number of reads.
    const first = dlqState.first_seq;
    for (let seq = dlqState.last_seq, reads = 0; seq >= first && dlq.length < limit && reads < limit * 4; seq--, reads++) {
      const m = await jsm.streams.getMessage(names.streams.dlq, { seq }).catch(() => null);
      if (!m) continue;
      const h = m.header;
      const original = h?.get(Header.DeadLetterSubject) || m.subject;
      const origin = h?.get(Header.DeadLetterConsumer) || m.subject.split('.').at(-1) || 'unknown';
      const code = h?.get(Header.DeadLetterCode) || undefined;
      const agentId = h?.get(Header.DeadLetterAgentId) || agentOf(subjects, original);
      dlq.push({
        seq: m.seq,
        subject: original,
        origin,
        reason: h?.get(Header.DeadLetterReason) || 'no reason recorded',
        ...(code ? { code } : {}),
        at: h?.get(Header.DeadLetterAt) || m.time.toISOString(),
        ...(agentId ? { agentId } : {}),
      });
    }
  }

  const services = await servicesP;
  const replicas: Record<string, number> = {};
  for (const s of services) replicas[s.name] = (replicas[s.name] ?? 0) + 1;
  const info = conn.nc.info;
  const cluster = conn.features.clustered || clusterName ? (info?.cluster ?? clusterName) : undefined;
  const warning = durabilityWarning(conn.features);
  return {
    server: {
      version: conn.features.version.text,
      ...(info?.server_name ? { name: info.server_name } : {}),
      jetstream: conn.features.jetstream,
      ...(cluster ? { cluster: { name: cluster, peers: [...peers].sort() } } : {}),
      ...(warning ? { durabilityWarning: warning } : {}),
    },
    services,
    replicas,
    consumers,
    dlq,
  };
}

/** The agent a subject is about (`<prefix>.agent.<id>.…`), if it is one of this prefix's. */
function agentOf(subjects: ReturnType<typeof createSubjects>, subject: string): string | undefined {
  try {
    const p = subjects.parse(subject);
    return 'agentId' in p ? p.agentId : undefined;
  } catch {
    return undefined;
  }
}

/** JetStream's "stream not found" (API error 10059), read from the error's code, never its text. */
function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === 10059;
}
