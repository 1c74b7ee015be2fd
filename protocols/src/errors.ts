/**
 * Errors raised in-process carry a stable string `code`; branch on the code (or the class), never
 * on message text. `agentId` is set whenever the failure concerns one agent.
 */
export class ErrandError extends Error {
  readonly code: string;
  readonly agentId: string | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; agentId?: string | undefined }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ErrandError';
    this.code = code;
    this.agentId = options?.agentId;
  }
}

/** Codes any service may answer a request with, beside its own. */
export const ErrorCode = {
  /**
   * Refused for a passing cause, not for what was asked: JetStream not ready or without a stream
   * leader (a node restarting), a consumer offline, a timeout inside the service. The same request
   * (for a submit: the same agent id) may be sent again after a short wait.
   */
  Unavailable: 'ERR_UNAVAILABLE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const SubjectErrorCode = {
  InvalidToken: 'ERR_INVALID_TOKEN',
  InvalidPrefix: 'ERR_INVALID_PREFIX',
  UnknownSubject: 'ERR_UNKNOWN_SUBJECT',
} as const;
export type SubjectErrorCode = (typeof SubjectErrorCode)[keyof typeof SubjectErrorCode];

/** A subject, a subject token (agent id, tool, channel…) or a prefix that Errand cannot use. */
export class SubjectError extends ErrandError {
  declare readonly code: SubjectErrorCode;

  constructor(code: SubjectErrorCode, message: string, options?: { agentId?: string }) {
    super(code, message, options);
    this.name = 'SubjectError';
  }
}

export const CodecErrorCode = {
  /** The body is larger than the codec's limit. */
  TooLarge: 'ERR_TOO_LARGE',
  /** The body is not valid msgpack / JSON, or is not an object. */
  Undecodable: 'ERR_UNDECODABLE',
  /** The body decoded but its `kind` is not one Errand knows (or not one allowed here). */
  UnknownKind: 'ERR_UNKNOWN_KIND',
  /** The message's `v` is newer than this build understands. */
  UnsupportedVersion: 'ERR_UNSUPPORTED_VERSION',
  /** The body decoded but does not match its schema (missing field, wrong type…). */
  Invalid: 'ERR_INVALID',
  /** A `Content-Type` other than msgpack or JSON. */
  UnsupportedContentType: 'ERR_UNSUPPORTED_CONTENT_TYPE',
  /** A work command without a valid signature of the deployment's host key: nothing of it runs. */
  BadSignature: 'ERR_BAD_SIGNATURE',
} as const;
export type CodecErrorCode = (typeof CodecErrorCode)[keyof typeof CodecErrorCode];

/** A message that cannot be encoded, decoded or validated. `issues` lists each schema violation. */
export class CodecError extends ErrandError {
  declare readonly code: CodecErrorCode;
  readonly issues: readonly string[];

  constructor(
    code: CodecErrorCode,
    message: string,
    options?: { cause?: unknown; agentId?: string | undefined; issues?: readonly string[] },
  ) {
    super(code, message, options);
    this.name = 'CodecError';
    this.issues = options?.issues ?? [];
  }
}
