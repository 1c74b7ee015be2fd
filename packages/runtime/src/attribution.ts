import type { IdentityVerifier, MsgHdrs } from '@errand/nats';
import type { InboxMessage, Principal } from '@errand/protocols';

/**
 * Who did something, as the proof on the message shows (see `IDENTITY_HEADER` in @errand/nats) —
 * never as the message body claims. Services that speak for a person another system
 * authenticated (the notifier for a Slack or Telegram user, the gateway for a signed-in person)
 * vouch for the principal they name; any other identity is the principal itself.
 */

/**
 * Roles trusted to name whom they act for: the notifier and the gateway a person another system
 * authenticated, a host the schedule whose fire it submits (or cancels the previous run of).
 */
const RELAYS = new Set(['notifier', 'gateway', 'host']);

/**
 * Whether a proof shows a host (or the deployment's admin, who may do anything, and as whom a host
 * may run) sent the message: its goals and its agents' control messages stand as they are.
 */
export function fromHost(verifier: IdentityVerifier, data: Uint8Array, headers: MsgHdrs | undefined): boolean {
  const check = verifier.check(data, headers);
  return check.ok && (check.identity.role === 'host' || check.identity.role === 'admin');
}

export interface Attribution {
  /** Who it was, to record. */
  readonly principal: Principal | undefined;
  /** The key a per-identity limit counts against. */
  readonly key: string;
  /** False when no valid proof came with it (and the host could check one). */
  readonly verified: boolean;
}

/**
 * The principal behind a message: with no verifier (a host without credentials, `--insecure`)
 * the body's claim is all there is; with one, a valid proof decides, and a message without one is
 * recorded as unverified with what it claimed.
 */
export function attribute(
  verifier: IdentityVerifier | undefined,
  data: Uint8Array,
  headers: MsgHdrs | undefined,
  claimed: Principal | undefined,
): Attribution {
  if (!verifier) return { principal: claimed, key: 'anyone', verified: false };
  const check = verifier.check(data, headers);
  if (!check.ok) {
    return {
      principal: { id: 'unverified', channel: 'nats', ...(claimed ? { name: `claims ${claimed.name ?? claimed.id} (${claimed.channel}): ${check.reason}` } : { name: check.reason }) },
      key: 'unverified',
      verified: false,
    };
  }
  const { identity } = check;
  if (identity.role && RELAYS.has(identity.role) && claimed) return { principal: claimed, key: identity.name, verified: true };
  return { principal: { id: identity.name, channel: 'nats' }, key: identity.name, verified: true };
}

/**
 * A decision, answer or control message with `by` replaced by who proved to have sent it; a goal
 * with `submittedBy` replaced so, unless a host published it.
 */
export function attributeInbox(verifier: IdentityVerifier | undefined, message: InboxMessage, data: Uint8Array, headers: MsgHdrs | undefined): InboxMessage {
  if (!verifier) return message;
  if (message.kind === 'goal') {
    // A goal a host published (from its intake, which attributed the submit, or a parent's step)
    // stands as it is; one published straight to the inbox (a fork) is who proved sending it.
    if (fromHost(verifier, data, headers)) return message;
    return { ...message, submittedBy: attribute(verifier, data, headers, message.submittedBy).principal! };
  }
  if (message.kind !== 'approval' && message.kind !== 'input' && message.kind !== 'control') return message;
  if (message.kind === 'control' && message.by?.channel === 'agent') {
    // A parent agent's cancel of its child: believed only from a host, whose step sent it (and
    // whose identity proves nothing about a person). Anyone else claiming to be an agent is
    // recorded as who they proved to be, or as unverified with the claim.
    if (fromHost(verifier, data, headers)) return message;
    const proved = verifier.check(data, headers).ok;
    const { principal } = attribute(verifier, data, headers, proved ? undefined : message.by);
    return { ...message, by: principal! };
  }
  const { principal } = attribute(verifier, data, headers, message.by);
  return { ...message, by: principal! } as InboxMessage;
}
