import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { ErrandError } from './errors.js';

/**
 * Command signatures: the host signs every work command it publishes (the exact encoded body,
 * carried in the `Errand-Signature` header) with the deployment's Ed25519 key, and workers verify
 * it before anything runs. A command nobody's host issued — published straight on a work subject,
 * signed with another key, or altered after signing — is refused.
 *
 * Keys as text: the private key is a PKCS#8 PEM file the host reads (`ERRAND_SIGNING_KEY` names
 * it); the public key is a short string, `ed25519:<base64url of the 32 raw bytes>`, that fits in an
 * environment variable (`ERRAND_VERIFY_KEY`). Pure: no I/O; Node's crypto signs and verifies in
 * tens of microseconds, and the parsed keys are kept in the signer and verifier.
 */

/** The prefix of a public key's text form. */
export const PUBLIC_KEY_PREFIX = 'ed25519:';

export const SignatureErrorCode = {
  /** A key's text is not an Ed25519 key in the expected form. */
  InvalidKey: 'ERR_INVALID_KEY',
} as const;
export type SignatureErrorCode = (typeof SignatureErrorCode)[keyof typeof SignatureErrorCode];

/** A signing or verify key that cannot be used. The message never contains the key itself. */
export class SignatureError extends ErrandError {
  declare readonly code: SignatureErrorCode;

  constructor(code: SignatureErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'SignatureError';
  }
}

/** A freshly generated key pair, in its text forms. */
export interface CommandKeyPair {
  /** PKCS#8 PEM: write it to a file only the host can read (mode 0600). */
  readonly privateKeyPem: string;
  /** `ed25519:<base64url>`: give it to every worker as `ERRAND_VERIFY_KEY`. */
  readonly publicKey: string;
}

/** Generates a new Ed25519 key pair for signing commands (`errand creds`, `errand up`, tests). */
export function generateCommandKeys(): CommandKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey: publicKeyText(publicKey) };
}

function publicKeyText(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  return `${PUBLIC_KEY_PREFIX}${jwk.x}`;
}

/** Parses a private key PEM. Throws {@link SignatureError} `ERR_INVALID_KEY`. */
function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new SignatureError(SignatureErrorCode.InvalidKey, 'the signing key is not a PEM private key; generate one with `errand creds` (or let `errand up` write it)', { cause });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SignatureError(SignatureErrorCode.InvalidKey, `the signing key is a ${String(key.asymmetricKeyType)} key, not Ed25519; generate one with \`errand creds\``);
  }
  return key;
}

/** Parses one public key in its text form (`ed25519:<base64url>`). Throws {@link SignatureError} `ERR_INVALID_KEY`. */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim();
  const x = t.startsWith(PUBLIC_KEY_PREFIX) ? t.slice(PUBLIC_KEY_PREFIX.length) : '';
  if (!/^[A-Za-z0-9_-]{43}$/.test(x)) {
    throw new SignatureError(SignatureErrorCode.InvalidKey, `a verify key looks like '${PUBLIC_KEY_PREFIX}' followed by 43 base64url characters (as \`errand creds\` prints it); got ${t.length} characters that do not`);
  }
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch (cause) {
    throw new SignatureError(SignatureErrorCode.InvalidKey, 'the verify key is not a valid Ed25519 public key; copy it again from `errand creds`', { cause });
  }
}

/** Signs command bodies with one private key. */
export interface CommandSigner {
  /** The matching public key, in its text form. */
  readonly publicKey: string;
  /** The signature of exactly these bytes, as the `Errand-Signature` header value (base64url). */
  sign(body: Uint8Array): string;
}

/** A signer for a PKCS#8 PEM private key. Throws {@link SignatureError} `ERR_INVALID_KEY`. */
export function createCommandSigner(privateKeyPem: string): CommandSigner {
  const key = parsePrivateKey(privateKeyPem);
  const publicKey = publicKeyText(createPublicKey(key));
  return { publicKey, sign: (body) => sign(null, body, key).toString('base64url') };
}

/** Why a command was refused, in words for the dead-letter reason and the log. */
export type SignatureCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Verifies command bodies against the deployment's public key(s). */
export interface CommandVerifier {
  /** The accepted keys, in their text form. */
  readonly publicKeys: readonly string[];
  /** Whether `signature` (the header value, or nothing) signs exactly `body` with one of the keys. */
  check(body: Uint8Array, signature: string | undefined | null): SignatureCheck;
}

/**
 * A verifier for one public key, or several (comma-separated, or a list) while keys are rotated.
 * Throws {@link SignatureError} `ERR_INVALID_KEY` when a key does not parse or none is given.
 */
export function createCommandVerifier(publicKeys: string | readonly string[]): CommandVerifier {
  const texts = (typeof publicKeys === 'string' ? publicKeys.split(',') : [...publicKeys]).map((k) => k.trim()).filter(Boolean);
  if (texts.length === 0) throw new SignatureError(SignatureErrorCode.InvalidKey, 'no verify key given; `errand creds` prints the deployment\'s (ERRAND_VERIFY_KEY)');
  const keys = texts.map(parsePublicKey);
  return {
    publicKeys: texts,
    check(body, signature) {
      if (!signature) return { ok: false, reason: 'the command carries no signature: only a host of this deployment may issue work commands' };
      const sig = /^[A-Za-z0-9_-]{86}$/.test(signature) ? Buffer.from(signature, 'base64url') : undefined;
      if (sig === undefined || sig.length !== 64) return { ok: false, reason: 'the command\'s signature is malformed (not 64 bytes of base64url)' };
      for (const key of keys) if (verify(null, body, key, sig)) return { ok: true };
      return { ok: false, reason: 'the command\'s signature does not match its body under this deployment\'s verify key: it was signed by another key or altered after signing' };
    },
  };
}

/** The public key (text form) of a PKCS#8 PEM private key. Throws {@link SignatureError} `ERR_INVALID_KEY`. */
export function publicKeyOf(privateKeyPem: string): string {
  return createCommandSigner(privateKeyPem).publicKey;
}
