import { ErrandError } from '@errand/protocols';

export const NatsErrorCode = {
  /** The first connection attempt failed (and `waitOnFirstConnect` was off). */
  ConnectFailed: 'ERR_NATS_CONNECT',
  /** The server has no JetStream, or it did not answer. */
  JetStreamUnavailable: 'ERR_JETSTREAM_UNAVAILABLE',
  /** An existing stream or bucket differs in a way that cannot be changed in place. */
  ProvisionConflict: 'ERR_PROVISION_CONFLICT',
  /** The server refused to create or update a stream. */
  ProvisionFailed: 'ERR_PROVISION_FAILED',
  /** No `nats-server` binary was found. */
  ServerNotFound: 'ERR_NATS_SERVER_NOT_FOUND',
  /** The embedded `nats-server` exited or did not become ready. */
  ServerStartFailed: 'ERR_NATS_SERVER_START',
  /** Another embedded server is using the same data folder. */
  ServerDataInUse: 'ERR_NATS_SERVER_DATA_IN_USE',
  /** The server refused the credentials (none given, unknown, revoked or expired). */
  AuthFailed: 'ERR_NATS_AUTH',
  /** Identities or credentials that cannot be read, minted or used as asked. */
  Identity: 'ERR_NATS_IDENTITY',
} as const;
export type NatsErrorCode = (typeof NatsErrorCode)[keyof typeof NatsErrorCode];

/** A failure of the NATS layer; `code` says which, the message says what to do about it. */
export class NatsError extends ErrandError {
  declare readonly code: NatsErrorCode;

  constructor(code: NatsErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'NatsError';
  }
}
