/** NATS header names that are part of the wire contract. */
export const Header = {
  /** JetStream de-duplication id; Errand uses `<agentId>:<step>:<n>` for commands. */
  MsgId: 'Nats-Msg-Id',
  ContentType: 'Content-Type',
  /** W3C trace context of the step, command or request that sent the message. */
  Traceparent: 'traceparent',
  /** A work command's Ed25519 signature by the deployment's host key (base64url; see command-signature.ts). */
  Signature: 'Errand-Signature',
  /**
   * Set on a command a host publishes again from a stored outbox (after a crash, or by another
   * host): the command may have run already, so a worker looks for its recorded result first. A
   * command without it is the first copy ever published, and on its first delivery cannot have run.
   */
  Republished: 'Errand-Republished',
  /** Why a message was dead-lettered, in words. */
  DeadLetterReason: 'Errand-Dead-Letter-Reason',
  /** The stable error code (`ERR_INVALID`, `ERR_UNDECODABLE`, `ERR_HANDLER_FAILED` …). */
  DeadLetterCode: 'Errand-Dead-Letter-Code',
  /** The subject the message was originally published to. */
  DeadLetterSubject: 'Errand-Dead-Letter-Subject',
  /** Stream and sequence it was consumed from. */
  DeadLetterStream: 'Errand-Dead-Letter-Stream',
  DeadLetterSequence: 'Errand-Dead-Letter-Sequence',
  /** How many times it had been delivered. */
  DeadLetterDeliveries: 'Errand-Dead-Letter-Deliveries',
  /** The consumer (service) that gave up on it. */
  DeadLetterConsumer: 'Errand-Dead-Letter-Consumer',
  /** The agent it concerned, when known. */
  DeadLetterAgentId: 'Errand-Dead-Letter-Agent-Id',
  /** Set when the body was cut to fit; the original size in bytes. */
  DeadLetterTruncated: 'Errand-Dead-Letter-Truncated',
  DeadLetterAt: 'Errand-Dead-Letter-At',
} as const;
