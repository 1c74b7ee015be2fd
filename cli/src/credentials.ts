import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IdentityFiles, mintIdentities, readIdentities, writeIdentities, writePrivateFile, type Identities } from '@errand/nats';
import { generateCommandKeys, publicKeyOf, type Role } from '@errand/protocols';

/**
 * A deployment's credentials folder, as `errand creds` and `errand up` keep it: the NATS identities
 * (one `.creds` per role, the server's auth config) and the key hosts sign commands with.
 *
 *   identities.json        every NATS key (operator, accounts, users): keep it safe, it mints and rotates
 *   server-auth.conf       what the nats-server config needs to trust them
 *   <user>.creds           one per user (NATS_CREDS of a service or a person)
 *   command-signing.pem    the hosts' private signing key (ERRAND_SIGNING_KEY; hosts only)
 *   command-verify.key     the public key(s) workers check with (ERRAND_VERIFY_KEY)
 */
export interface DeploymentCredentials {
  readonly dir: string;
  readonly identities: Identities;
  /** Path of a user's `.creds` file (a role's user is named after the role). */
  credsFile(user: string): string;
  readonly signingKeyFile: string;
  /** The public key(s) for `ERRAND_VERIFY_KEY`, comma-separated while a rotation rolls out. */
  readonly verifyKey: string;
  readonly serverConfigFile: string;
  /** True when this call created them. */
  readonly created: boolean;
}

export const SIGNING_KEY_FILE = 'command-signing.pem';
export const VERIFY_KEY_FILE = 'command-verify.key';

/** The folder `errand up` keeps credentials in: next to its data folder (`~/.errand/creds`). */
export function defaultCredsDir(dataDir: string): string {
  return join(dataDir, '..', 'creds');
}

/** Writes a new signing key; the previous public keys stay accepted (`keep`) until the rotation is done. */
export async function writeSigningKey(dir: string, keep: readonly string[] = []): Promise<string> {
  const keys = generateCommandKeys();
  await writePrivateFile(join(dir, SIGNING_KEY_FILE), keys.privateKeyPem);
  const verify = [keys.publicKey, ...keep.filter((k) => k !== keys.publicKey)].join(',');
  await writePrivateFile(join(dir, VERIFY_KEY_FILE), `${verify}\n`);
  return verify;
}

/** Reads the credentials in `dir`, minting what is missing (for `prefix`) when `create` is set. */
export async function loadCredentials(dir: string, options: { prefix: string; create: boolean }): Promise<DeploymentCredentials | undefined> {
  let identities = await readIdentities(dir);
  let created = false;
  if (!identities) {
    if (!options.create) return undefined;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    identities = await mintIdentities({ prefix: options.prefix });
    await writeIdentities(dir, identities);
    created = true;
  }
  let verifyKey = (await readFile(join(dir, VERIFY_KEY_FILE), 'utf8').catch(() => '')).trim();
  const pem = await readFile(join(dir, SIGNING_KEY_FILE), 'utf8').catch(() => undefined);
  if (pem === undefined) {
    if (!options.create && !created) return undefined;
    verifyKey = await writeSigningKey(dir);
  } else if (!verifyKey) {
    verifyKey = publicKeyOf(pem);
    await writePrivateFile(join(dir, VERIFY_KEY_FILE), `${verifyKey}\n`);
  }
  const ids = identities;
  return {
    dir,
    identities: ids,
    credsFile: (user) => join(dir, IdentityFiles.creds(user)),
    signingKeyFile: join(dir, SIGNING_KEY_FILE),
    verifyKey,
    serverConfigFile: join(dir, IdentityFiles.serverConfig),
    created,
  };
}

/** What each service of a deployment needs in its environment to connect and sign or verify. */
export function serviceEnv(creds: DeploymentCredentials, role: Role): Record<string, string> {
  const env: Record<string, string> = { NATS_CREDS: creds.credsFile(role), ERRAND_VERIFY_KEY: creds.verifyKey };
  if (role === 'host') env.ERRAND_SIGNING_KEY = creds.signingKeyFile;
  return env;
}
