import type { Logger } from '@errand/protocols';

/** A parsed `major.minor.patch` server version. */
export interface ServerVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly text: string;
}

/**
 * What the connected server can do. Errand uses nothing newer than nats-server 2.9 unless the
 * server reports it: each flag names the version that introduced it.
 */
export interface ServerFeatures {
  readonly version: ServerVersion;
  readonly jetstream: boolean;
  /** Whether the server runs in a cluster (replicas > 1 are possible). */
  readonly clustered: boolean;
  /** 2.10: S2 compression of stream storage. */
  readonly streamCompression: boolean;
  /** 2.10: metadata on streams and consumers. */
  readonly streamMetadata: boolean;
  /** 2.10: one consumer filtering several subjects. */
  readonly consumerMultipleFilters: boolean;
  /** 2.10: `sync_interval: always`, so an acknowledged write is on disk. */
  readonly configurableSync: boolean;
  /** 2.11: per-message TTL. */
  readonly messageTtl: boolean;
}

/** Parses a server version string such as `2.9.10` or `2.11.0-RC.1`. */
export function parseServerVersion(text: string): ServerVersion {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  if (!m) throw new TypeError(`cannot parse nats-server version '${text}'`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text };
}

function atLeast(v: ServerVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** Features from what the server says about itself in its INFO. */
export function serverFeatures(info: { version: string; jetstream?: boolean | undefined; cluster?: string | undefined }): ServerFeatures {
  const version = parseServerVersion(info.version);
  return {
    version,
    jetstream: info.jetstream === true,
    clustered: typeof info.cluster === 'string' && info.cluster.length > 0,
    streamCompression: atLeast(version, 2, 10),
    streamMetadata: atLeast(version, 2, 10),
    consumerMultipleFilters: atLeast(version, 2, 10),
    configurableSync: atLeast(version, 2, 10),
    messageTtl: atLeast(version, 2, 11),
  };
}

/**
 * The durability caveat of servers that cannot sync every write, or undefined for one that can:
 * before 2.10 JetStream syncs to disk every 60 s, so an OS crash or power loss can drop up to a
 * minute of writes that were already acknowledged.
 */
export function durabilityWarning(features: ServerFeatures): string | undefined {
  if (features.configurableSync) return undefined;
  return (
    `nats-server ${features.version.text} syncs JetStream to disk only every 60 s: an OS crash can lose the last minute of acknowledged writes. ` +
    'For production run nats-server >= 2.10 with `jetstream { sync_interval: always }` (see docs/operations.md)'
  );
}

/** Logs, once per call, the {@link durabilityWarning} when there is one. Returns whether it warned. */
export function warnAboutDurability(features: ServerFeatures, logger: Logger): boolean {
  const warning = durabilityWarning(features);
  if (warning === undefined) return false;
  logger.warn({ serverVersion: features.version.text }, warning);
  return true;
}
