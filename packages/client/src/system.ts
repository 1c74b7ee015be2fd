import { durabilityWarning, type ErrandConnection } from '@errand/nats';
import { createSubjects, discoverySubject, DiscoveryVerb, Header, PingResponseSchema, resourceNames } from '@errand/protocols';

/** What `jsm.streams.info` answers (nats.js's StreamInfo, which @errand/nats does not re-export). */
type StreamInfo = Awaited<ReturnType<Awaited<ReturnType<ErrandConnection['jsm']>>['streams']['info']>>;

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
  /** Every provisioned Errand stream, KV bucket and object store with its replicas, in provisioning order. */
  resources: ResourceHealth[];
  /**
   * The JetStream servers seen as leaders and replicas of those resources: the cluster's peers as
   * Errand's data sees them (the meta group itself needs the system account).
   */
  peers: PeerHealth[];
  /** The account's JetStream usage and limits; absent when it could not be read. */
  jetstream?: JetStreamUsage;
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

/** One replica of a stream that is not its leader, as the leader reports it. */
export interface ReplicaHealth {
  /** The server it is on. */
  name: string;
  /** Caught up with the leader. */
  current: boolean;
  /** The leader has lost it (its server is down or cut off). */
  offline: boolean;
  /** Operations it is behind the leader. */
  lag: number;
  /** Milliseconds since the leader last heard from it. */
  activeMs: number;
}

/** An Errand stream, KV bucket or object store, with its replication health. */
export interface ResourceHealth {
  /** `stream` (inbox, events, work, logs, dlq), `bucket` (KV) or `objects` (object store). */
  kind: 'stream' | 'bucket' | 'objects';
  /** The stream, bucket or object store name (`ERRAND_WORK`, `errand_agents`). */
  name: string;
  /** The JetStream stream behind it (`KV_errand_agents` for a bucket). */
  stream: string;
  /** Configured replicas. */
  replicas: number;
  /** The server leading it; absent while it has no leader (a majority of its servers is away). */
  leader?: string;
  /** The leader plus the replicas that are current: equal to `replicas` when healthy. */
  current: number;
  /** Its replicas other than the leader. */
  followers: ReplicaHealth[];
  messages: number;
  bytes: number;
  consumers: number;
  /** Set when its state could not be read (a leader election under way, a timeout). */
  error?: string;
}

/** A JetStream server as the Errand resources see it. */
export interface PeerHealth {
  name: string;
  /** Resources it leads. */
  leads: number;
  /** Resources it holds a replica of (not leading). */
  follows: number;
  /** Every replica it holds is current. */
  current: boolean;
  /** A leader reports it offline. */
  offline: boolean;
  /** The largest lag of its replicas. */
  lag: number;
  /** Milliseconds since a leader last heard from it (the largest over its replicas; 0 for a pure leader). */
  activeMs: number;
}

/** The account's JetStream usage against its limits (-1: unlimited). */
export interface JetStreamUsage {
  memory: number;
  storage: number;
  streams: number;
  consumers: number;
  limits: { maxMemory: number; maxStorage: number; maxStreams: number; maxConsumers: number };
  /** JetStream API requests and errors this account made since the server started. */
  api: { total: number; errors: number };
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
  /**
   * How long to collect discovery answers at most (default 1 s). The wait ends `quietMs` after the
   * last answer, so this bounds only a slow or busy deployment: 300 ms missed every service of a
   * deployment on a loaded machine.
   */
  discoveryMs?: number;
  /** Stop collecting once no new answer came for this long (default 150 ms). */
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
      stall: options.quietMs ?? 150,
      maxWait: options.discoveryMs ?? 1000,
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
  const resources: ResourceHealth[] = [];
  let dlqState: { first_seq: number; last_seq: number; messages: number } | undefined;
  const targets: { kind: ResourceHealth['kind']; name: string; stream: string }[] = [
    ...streams.map((stream) => ({ kind: 'stream' as const, name: stream, stream })),
    ...Object.values(names.buckets).map((bucket) => ({ kind: 'bucket' as const, name: bucket, stream: `KV_${bucket}` })),
    ...Object.values(names.objectStores).map((store) => ({ kind: 'objects' as const, name: store, stream: `OBJ_${store}` })),
  ];
  let firstError: unknown;
  for (const target of targets) {
    let info: StreamInfo | undefined;
    try {
      info = await jsm.streams.info(target.stream);
    } catch (err) {
      if (isNotFound(err)) continue;
      // One unreadable stream (a leader election under way) is reported, not fatal; all of them is.
      firstError ??= err;
      resources.push({ ...target, replicas: 0, current: 0, followers: [], messages: 0, bytes: 0, consumers: 0, error: (err as Error).message });
      continue;
    }
    resources.push(resourceHealth(target, info, conn.nc.info?.server_name));
    if (info.cluster?.name) clusterName = info.cluster.name;
    if (info.cluster?.leader) peers.add(info.cluster.leader);
    for (const r of info.cluster?.replicas ?? []) peers.add(r.name);
    if (target.kind !== 'stream') continue;
    const stream = target.stream;
    if (stream === names.streams.dlq) dlqState = info.state;
    for await (const c of jsm.consumers.list(stream)) {
      // Durable consumers are the services' work; ephemeral ones are readers (watches, SSE).
      if (!c.config.durable_name) continue;
      consumers.push({ stream, name: c.name, pending: c.num_pending, ackPending: c.num_ack_pending, redelivered: c.num_redelivered });
    }
  }
  if (firstError !== undefined && resources.every((r) => r.error)) throw firstError;
  const jetstream = await jsm.getAccountInfo().then(
    (a): JetStreamUsage => ({
      memory: a.memory,
      storage: a.storage,
      streams: a.streams,
      consumers: a.consumers,
      limits: { maxMemory: a.limits.max_memory, maxStorage: a.limits.max_storage, maxStreams: a.limits.max_streams, maxConsumers: a.limits.max_consumers },
      api: { total: a.api.total, errors: a.api.errors },
    }),
    () => undefined,
  );
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
    resources,
    peers: peerHealth(resources),
    ...(jetstream ? { jetstream } : {}),
    dlq,
  };
}

function resourceHealth(target: { kind: ResourceHealth['kind']; name: string; stream: string }, info: StreamInfo, serverName: string | undefined): ResourceHealth {
  // A server outside a cluster names no leader: the stream lives on the server this connection is on.
  const standalone = !info.cluster?.name && !info.cluster?.replicas?.length;
  const leader = info.cluster?.leader || (standalone ? (serverName ?? 'this server') : undefined);
  const followers: ReplicaHealth[] = (info.cluster?.replicas ?? []).map((r) => ({
    name: r.name,
    current: r.current,
    offline: r.offline === true,
    lag: r.lag ?? 0,
    activeMs: Math.round((r.active ?? 0) / 1e6),
  }));
  return {
    ...target,
    replicas: info.config.num_replicas || 1,
    ...(leader ? { leader } : {}),
    current: (leader ? 1 : 0) + followers.filter((r) => r.current && !r.offline).length,
    followers,
    messages: info.state.messages,
    bytes: info.state.bytes,
    consumers: info.state.consumer_count,
  };
}

function peerHealth(resources: ResourceHealth[]): PeerHealth[] {
  const peers = new Map<string, PeerHealth>();
  const peer = (name: string) => {
    let p = peers.get(name);
    if (!p) peers.set(name, (p = { name, leads: 0, follows: 0, current: true, offline: false, lag: 0, activeMs: 0 }));
    return p;
  };
  for (const r of resources) {
    if (r.leader) peer(r.leader).leads += 1;
    for (const f of r.followers) {
      const p = peer(f.name);
      p.follows += 1;
      p.current &&= f.current && !f.offline;
      p.offline ||= f.offline;
      p.lag = Math.max(p.lag, f.lag);
      p.activeMs = Math.max(p.activeMs, f.activeMs);
    }
  }
  return [...peers.values()].sort((a, b) => a.name.localeCompare(b.name));
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
