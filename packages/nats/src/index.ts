// The public door of @errand/nats: what other packages use. The building blocks behind it (stream
// configs, feature detection, defaults) are for this package's tests: `@errand/nats/internal`.
export { NatsError, NatsErrorCode } from './errors.js';
export { durabilityWarning, type ServerFeatures, type ServerVersion } from './features.js';
export {
  connect,
  connectOptionsFromEnv,
  DEFAULT_NATS_URL,
  type ConnectOptions,
  type ErrandConnection,
} from './connect.js';
export {
  provision,
  type ProvisionChange,
  type ProvisionItem,
  type ProvisionOptions,
  type ProvisionReport,
} from './provision.js';
export {
  defaultDataDir,
  findNatsServer,
  startNatsServer,
  type ClusterOptions,
  type FindNatsServerOptions,
  type NatsServer,
  type NatsServerOptions,
  type PidRecord,
} from './nats-server.js';
export {
  addUser,
  credsOf,
  IdentityFiles,
  mintIdentities,
  mintUserIdentity,
  readIdentities,
  rotateUsers,
  serverAuthConfig,
  writeIdentities,
  writePrivateFile,
  type CredsInfo,
  type Identities,
  type KeyIdentity,
  type UserIdentity,
} from './identity.js';
export { IDENTITY_HEADER, identityProver, identityVerifier, PROOF_HEADER, type IdentityProver, type IdentityVerifier, type ProofCheck, type ProvenIdentity } from './proof.js';
export { prepareMessage, publishMessage, type PreparedMessage, type PublishMessageOptions } from './publish.js';
export { readAllRecords, readRecord, readRecordFromLeader, readStoredRecord, type StoredRecord } from './records.js';
export { deadLetter, type DeadLetterReason, type DeadLetterTarget, type DeadMessage } from './dead-letter.js';
export {
  consumeMessages,
  isNatsUnavailable,
  isPassingFailure,
  ConsumeErrorCode,
  type ConsumeMessagesOptions,
  type MessageConsumer,
} from './consume.js';
export { ensureConsumer, isRevisionConflict, openBucket, openObjectStore, purgeOldKvMarkers, type DurableConsumerSpec } from './jetstream.js';
export type { ObjectStore } from '@nats-io/obj';
// The NATS client types other packages work with; @nats-io/* itself is imported only here.
export type { Consumer, JetStreamClient, JsMsg } from '@nats-io/jetstream';
export { DeliverPolicy } from '@nats-io/jetstream';
export type { KV, KvEntry } from '@nats-io/kv';
export { KvWatchInclude } from '@nats-io/kv';
export { headers } from '@nats-io/transport-node';
export type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
