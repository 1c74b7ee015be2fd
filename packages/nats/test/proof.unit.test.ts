import { describe, expect, it } from 'vitest';
import { fromPublic, fromSeed } from '@nats-io/nkeys';
import { credsOf, headers, IDENTITY_HEADER, identityProver, identityVerifier, mintIdentities, mintUserIdentity, PROOF_HEADER } from '@errand/nats';

/** Proofs are Ed25519 over the nkey's key: what nkeys signs, Errand checks, and the other way round. */
describe('identity proofs', () => {
  it("are plain Ed25519 signatures of the identity's nkey, interchangeable with nkeys' own", async () => {
    const ids = await mintIdentities({ prefix: 'errand' });
    const user = await mintUserIdentity(ids, 'operator', { name: 'alice' });
    const creds = credsOf(user);
    const seed = /-----BEGIN USER NKEY SEED-----\s+(\S+)/.exec(creds)![1]!;
    const body = new TextEncoder().encode('{"kind":"approval","decision":"approve"}');
    const verifier = identityVerifier(ids.account.publicKey);

    // Errand's proof verifies with nkeys.
    const proof = identityProver(creds)!.prove(body);
    const kp = fromSeed(new TextEncoder().encode(seed));
    expect(fromPublic(kp.getPublicKey()).verify(body, Buffer.from(proof[PROOF_HEADER]!, 'base64url'))).toBe(true);

    // A signature nkeys made (another client's) is a valid proof here; the same one over other bytes is not.
    const h = headers();
    h.set(IDENTITY_HEADER, proof[IDENTITY_HEADER]!);
    h.set(PROOF_HEADER, Buffer.from(kp.sign(body)).toString('base64url'));
    expect(verifier.check(body, h)).toMatchObject({ ok: true, identity: { name: 'alice', role: 'operator' } });
    expect(verifier.check(new TextEncoder().encode('{"kind":"approval","decision":"deny"}'), h)).toEqual({ ok: false, reason: 'the proof does not match the body' });
  });
});
