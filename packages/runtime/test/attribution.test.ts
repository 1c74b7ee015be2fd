import { describe, expect, it } from 'vitest';
import { credsOf, headers, identityProver, identityVerifier, mintIdentities, mintUserIdentity } from '@errand/nats';
import { encodeMessage, MESSAGE_VERSION, type InboxMessage } from '@errand/protocols';
import { attribute, attributeInbox } from '../src/attribution.js';

const body = new TextEncoder().encode('{"kind":"approval","decision":"approve"}');
const claimed = { id: 'the-ceo', channel: 'cli' };

async function setup() {
  const ids = await mintIdentities({ prefix: 'errand' });
  const prover = async (role: 'operator' | 'notifier' | 'submitter', name: string = role) => identityProver(credsOf(await mintUserIdentity(ids, role, { name })))!;
  const withProof = (p: { prove(b: Uint8Array): Record<string, string> }, data: Uint8Array = body) => {
    const h = headers();
    for (const [k, v] of Object.entries(p.prove(data))) h.set(k, v);
    return h;
  };
  return { ids, prover, withProof, verifier: identityVerifier(ids.account.publicKey) };
}

describe('attribute: who sent it is what the proof shows', () => {
  it('an identity of the account is itself, whatever the body claims', async () => {
    const { prover, withProof, verifier } = await setup();
    const alice = await prover('operator', 'alice');
    expect(attribute(verifier, body, withProof(alice), claimed)).toEqual({ principal: { id: 'alice', channel: 'nats' }, key: 'alice', verified: true });
  });

  it('a relay (notifier, gateway) vouches for the person it names', async () => {
    const { prover, withProof, verifier } = await setup();
    const slackUser = { id: 'U7', channel: 'slack:ops', name: 'ana' };
    expect(attribute(verifier, body, withProof(await prover('notifier')), slackUser)).toEqual({ principal: slackUser, key: 'notifier', verified: true });
  });

  it('no proof, a body changed after signing, or an identity of another account is unverified, with why', async () => {
    const { prover, withProof, verifier } = await setup();
    expect(attribute(verifier, body, undefined, claimed)).toMatchObject({ verified: false, key: 'unverified', principal: { id: 'unverified', name: 'claims the-ceo (cli): no proof of identity' } });
    const altered = withProof(await prover('operator'), new TextEncoder().encode('{"decision":"deny"}'));
    expect(attribute(verifier, body, altered, claimed).principal?.name).toMatch(/the proof does not match the body/);
    const stranger = await mintIdentities({ prefix: 'errand' });
    const foreign = identityProver(credsOf(stranger.users.operator!))!;
    expect(attribute(verifier, body, withProof(foreign), claimed).principal?.name).toMatch(/issued by another account/);
  });

  it('without a verifier (no credentials, --insecure) the claim is all there is', () => {
    expect(attribute(undefined, body, undefined, claimed)).toEqual({ principal: claimed, key: 'anyone', verified: false });
  });
});

describe('attributeInbox: a goal stands as a host (or the admin) published it; anyone else is who proved sending it', () => {
  const goal = (submittedBy?: { id: string; channel: string }): InboxMessage => ({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'a-1', goal: 'tidy up', ...(submittedBy ? { submittedBy } : {}), at: 1 });
  it('keeps the submitter a host (or an admin-run host) attributed at intake; replaces a claim anyone else makes', async () => {
    const { ids, withProof, verifier } = await setup();
    const asRole = async (role: 'host' | 'admin' | 'operator' | 'gateway', name: string = role) => identityProver(credsOf(await mintUserIdentity(ids, role, { name })))!;
    const submitted = goal({ id: 'alice', channel: 'nats' });
    for (const role of ['host', 'admin'] as const) {
      const data = encodeMessage(submitted).data;
      expect(attributeInbox(verifier, submitted, data, withProof(await asRole(role), data))).toEqual(submitted);
    }
    // An operator's fork claiming the CEO is the operator; the gateway vouches for its person.
    const claim = goal(claimed);
    const data = encodeMessage(claim).data;
    expect(attributeInbox(verifier, claim, data, withProof(await asRole('operator', 'bob'), data))).toMatchObject({ submittedBy: { id: 'bob', channel: 'nats' } });
    expect(attributeInbox(verifier, claim, data, withProof(await asRole('gateway'), data))).toMatchObject({ submittedBy: claimed });
    expect(attributeInbox(verifier, claim, data, undefined)).toMatchObject({ submittedBy: { id: 'unverified', name: 'claims the-ceo (cli): no proof of identity' } });
  });
});
