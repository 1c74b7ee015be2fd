import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { fromPublic, fromSeed } from '@nats-io/nkeys';
import { ROLES, type Role } from '@errand/protocols';
import { credsInfo, type CredsInfo } from './identity.js';

/**
 * Who sent a message, as the server saw them. NATS does not tell a subscriber which identity
 * published a message, so a message that matters — a submit, a decision, an answer, a cancel —
 * carries a proof: the sender's user JWT and a signature of the exact body made with the seed in
 * its `.creds` file, the same key the server authenticated the connection with. A host checks the
 * JWT was issued by its own account and the signature matches, and so knows the identity without
 * trusting anything the body claims.
 */

/** The header with the sender's user JWT. */
export const IDENTITY_HEADER = 'Errand-Identity';
/** The header with the signature of the body (base64url) made with that user's key. */
export const PROOF_HEADER = 'Errand-Proof';

/** Signs bodies as the identity of a `.creds` file. */
export interface IdentityProver {
  readonly name: string;
  readonly role: Role | undefined;
  /** The account that issued the identity: the one a host trusts. */
  readonly account: string;
  /** The headers that prove `body` came from this identity. */
  prove(body: Uint8Array): Record<string, string>;
}

/** A prover for the identity in a `.creds` file's text; undefined when it has no seed. */
export function identityProver(creds: string): IdentityProver | undefined {
  return proverOf(credsInfo(creds));
}

/**
 * Signatures are Ed25519 over the nkey's own key, made and checked by Node's OpenSSL: nkeys (pure
 * JavaScript, and deriving the key pair from the seed on every call) took about 25 ms per signature
 * and 20 ms per check, and a host makes and checks them for every goal it takes in.
 */
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** PKCS#8 DER of an Ed25519 private key, up to the 32 bytes of its seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The 32 key bytes of an nkey already checked by nkeys: base32 of prefix byte(s), key, CRC16. */
function nkeyBytes(encoded: string, prefixBytes: number): Buffer {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of encoded) {
    value = (value << 5) | BASE32.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out.slice(prefixBytes, prefixBytes + 32));
}

/** The Ed25519 private key of an nkey seed (`S…`); throws when nkeys does not take the seed. */
function privateKeyOfSeed(seed: string): KeyObject {
  fromSeed(new TextEncoder().encode(seed));
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, nkeyBytes(seed, 2)]), format: 'der', type: 'pkcs8' });
}

/** The Ed25519 public key of a public nkey (`U…`, `A…`); throws when nkeys does not take it. */
function publicKeyOf(nkey: string): KeyObject {
  fromPublic(nkey);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: nkeyBytes(nkey, 1).toString('base64url') }, format: 'jwk' });
}

/** A prover for read creds; undefined when they hold no seed. */
export function proverOf(info: CredsInfo): IdentityProver | undefined {
  if (!info.seed) return undefined;
  const key = privateKeyOfSeed(info.seed);
  const jwt = info.jwt;
  return {
    name: info.name,
    role: info.role,
    account: info.account,
    prove: (body) => ({ [IDENTITY_HEADER]: jwt, [PROOF_HEADER]: sign(null, body, key).toString('base64url') }),
  };
}

/** An identity a proof established. */
export interface ProvenIdentity {
  readonly name: string;
  readonly publicKey: string;
  readonly role: Role | undefined;
}

export type ProofCheck = { readonly ok: true; readonly identity: ProvenIdentity } | { readonly ok: false; readonly reason: string };

export interface IdentityVerifier {
  /** Checks the proof headers of `body`; never throws. */
  check(body: Uint8Array, headers: { get(name: string): string } | undefined): ProofCheck;
}

/**
 * Verifies proofs made by identities of `account` (the account public key; a host takes it from
 * its own credentials). Verified JWTs are remembered, so a busy sender costs one signature check
 * per message.
 */
export function identityVerifier(account: string, now: () => number = Date.now): IdentityVerifier {
  type Known = { identity: ProvenIdentity; key: KeyObject; exp: number | undefined };
  const known = new Map<string, Known | string>();
  const readJwt = (jwt: string): Known | string => {
    const cached = known.get(jwt);
    if (cached !== undefined) return cached;
    let result: Known | string;
    try {
      const [head, payload, sig] = jwt.split('.');
      if (!head || !payload || !sig) throw new Error('not a JWT');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
        iss?: string;
        sub?: string;
        name?: string;
        exp?: number;
        nats?: { type?: string; tags?: string[]; issuer_account?: string };
      };
      if (claims.nats?.type !== 'user' || !claims.sub || !claims.iss) result = 'not a user JWT';
      else if ((claims.nats.issuer_account ?? claims.iss) !== account || claims.iss !== account) result = 'issued by another account';
      else if (!verify(null, Buffer.from(`${head}.${payload}`), publicKeyOf(claims.iss), Buffer.from(sig, 'base64url'))) result = 'the JWT signature does not match its issuer';
      else {
        const tag = (claims.nats.tags ?? []).find((t) => t.startsWith('errand-role:'))?.slice('errand-role:'.length);
        const role = (ROLES as readonly string[]).includes(tag ?? '') ? (tag as Role) : undefined;
        result = { identity: { name: claims.name ?? claims.sub, publicKey: claims.sub, role }, key: publicKeyOf(claims.sub), exp: claims.exp };
      }
    } catch (err) {
      result = `unreadable identity: ${(err as Error).message}`;
    }
    if (known.size > 1000) known.clear();
    known.set(jwt, result);
    return result;
  };
  return {
    check(body, headers) {
      const jwt = headers?.get(IDENTITY_HEADER);
      const proof = headers?.get(PROOF_HEADER);
      if (!jwt || !proof) return { ok: false, reason: 'no proof of identity' };
      const read = readJwt(jwt);
      if (typeof read === 'string') return { ok: false, reason: read };
      if (read.exp !== undefined && read.exp * 1000 < now()) return { ok: false, reason: 'the identity has expired' };
      let valid = false;
      try {
        valid = verify(null, body, read.key, Buffer.from(proof, 'base64url'));
      } catch {
        valid = false;
      }
      return valid ? { ok: true, identity: read.identity } : { ok: false, reason: 'the proof does not match the body' };
    },
  };
}
