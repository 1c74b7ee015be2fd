import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createAccount,
  createOperator,
  createUser,
  decode,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromSeed,
  type Account,
  type User,
} from '@nats-io/jwt';
import { inboxPrefixFor, rolePermissions, ROLES, type Role } from '@errand/protocols';
import { NatsError, NatsErrorCode } from './errors.js';

/**
 * NATS identities for one Errand deployment, in the model `nsc` uses: an operator signs two
 * accounts (the system account and the deployment's account), and the deployment's account signs
 * one user per role. The server trusts the operator and learns the accounts from its configuration
 * (a memory resolver), so the users need not be known to it: a user proves itself with its `.creds`
 * file, and its JWT carries the permissions of its role (see `rolePermissions` in protocols).
 *
 * Seeds are secrets. Everything is kept in one folder with mode 0700 and files with mode 0600.
 */

/** The version of `identities.json` this build writes and reads. */
const FORMAT = 1;

export interface KeyIdentity {
  readonly name: string;
  readonly publicKey: string;
  /** The NKey seed (secret). */
  readonly seed: string;
  readonly jwt: string;
}

export interface UserIdentity extends KeyIdentity {
  readonly role: Role;
}

export interface Identities {
  readonly format: number;
  /** The subject prefix the users' permissions are written for. */
  readonly prefix: string;
  readonly operator: KeyIdentity;
  readonly system: KeyIdentity;
  readonly account: KeyIdentity;
  /** By user name; one per role from the start (named after the role), more with {@link addUser}. */
  readonly users: Readonly<Record<string, UserIdentity>>;
  /** Public keys of users whose credentials were rotated away, with when (epoch seconds). */
  readonly revoked: Readonly<Record<string, number>>;
}

/** The account's limits: everything the server allows, JetStream included (off without these). */
const ACCOUNT_LIMITS = {
  subs: -1,
  conn: -1,
  leaf: -1,
  imports: -1,
  exports: -1,
  data: -1,
  payload: -1,
  wildcards: true,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
} as const;

async function accountJwt(name: string, seed: string, operatorSeed: string, revoked: Readonly<Record<string, number>>): Promise<string> {
  const claims: Partial<Account> = { limits: { ...ACCOUNT_LIMITS } };
  if (Object.keys(revoked).length) claims.revocations = { ...revoked };
  return encodeAccount(name, fromSeed(new TextEncoder().encode(seed)), claims, { signer: fromSeed(new TextEncoder().encode(operatorSeed)) });
}

const seedOf = (kp: { getSeed(): Uint8Array }) => new TextDecoder().decode(kp.getSeed());

async function mintUser(name: string, role: Role, prefix: string, accountSeed: string): Promise<UserIdentity> {
  const kp = createUser();
  const p = rolePermissions(role, { prefix, user: name });
  const claims: Partial<User> = {
    pub: { allow: [...p.pub.allow], deny: [...p.pub.deny] },
    sub: { allow: [...p.sub.allow], deny: [...p.sub.deny] },
    subs: -1,
    data: -1,
    payload: -1,
    tags: [`errand-role:${role}`],
    ...(p.respond ? { resp: { max: 1, ttl: 0 } } : {}),
  };
  const jwt = await encodeUser(name, kp, fromSeed(new TextEncoder().encode(accountSeed)), claims);
  return { name, role, publicKey: kp.getPublicKey(), seed: seedOf(kp), jwt };
}

/**
 * New identities for a deployment under `prefix`: operator, system account, account and one user
 * per role (named after it).
 */
export async function mintIdentities(options: { prefix: string; accountName?: string }): Promise<Identities> {
  const operatorKp = createOperator();
  const systemKp = createAccount();
  const accountKp = createAccount();
  const operatorSeed = seedOf(operatorKp);
  const operator: KeyIdentity = {
    name: 'errand',
    publicKey: operatorKp.getPublicKey(),
    seed: operatorSeed,
    jwt: await encodeOperator('errand', operatorKp, { system_account: systemKp.getPublicKey() }),
  };
  const system: KeyIdentity = {
    name: 'SYS',
    publicKey: systemKp.getPublicKey(),
    seed: seedOf(systemKp),
    jwt: await encodeAccount('SYS', systemKp, {}, { signer: operatorKp }),
  };
  const accountName = options.accountName ?? 'ERRAND';
  const accountSeed = seedOf(accountKp);
  const account: KeyIdentity = { name: accountName, publicKey: accountKp.getPublicKey(), seed: accountSeed, jwt: await accountJwt(accountName, accountSeed, operatorSeed, {}) };
  const users: Record<string, UserIdentity> = {};
  for (const role of ROLES) users[role] = await mintUser(role, role, options.prefix, accountSeed);
  return { format: FORMAT, prefix: options.prefix, operator, system, account, users, revoked: {} };
}

/**
 * A user of `role` signed by the deployment's account, for `prefix` (default: the identities'),
 * without recording it: for tests and tools that need a short-lived identity.
 */
export async function mintUserIdentity(ids: Identities, role: Role, options: { name?: string; prefix?: string } = {}): Promise<UserIdentity> {
  const name = options.name ?? role;
  assertUserName(name);
  return mintUser(name, role, options.prefix ?? ids.prefix, ids.account.seed);
}

/** Adds a user of `role` named `name` (an application's own submitter, a second operator). */
export async function addUser(ids: Identities, role: Role, name: string): Promise<Identities> {
  assertUserName(name);
  if (ids.users[name]) throw new NatsError(NatsErrorCode.Identity, `a user named '${name}' exists already; rotate it with \`errand creds rotate ${name}\``);
  return { ...ids, users: { ...ids.users, [name]: await mintUser(name, role, ids.prefix, ids.account.seed) } };
}

/**
 * New keys for the named users (every user when `names` is empty): their old `.creds` stop working
 * once the server has the new account JWT (its revocation list names the old keys). The operator
 * and account keys stay, so JetStream data stays where it is.
 */
export async function rotateUsers(ids: Identities, names: readonly string[] = []): Promise<Identities> {
  const chosen = names.length ? names : Object.keys(ids.users);
  const now = Math.floor(Date.now() / 1000);
  const users: Record<string, UserIdentity> = { ...ids.users };
  const revoked: Record<string, number> = { ...ids.revoked };
  for (const name of chosen) {
    const old = ids.users[name];
    if (!old) throw new NatsError(NatsErrorCode.Identity, `no user named '${name}' (have ${Object.keys(ids.users).join(', ')})`);
    revoked[old.publicKey] = now;
    users[name] = await mintUser(name, old.role, ids.prefix, ids.account.seed);
  }
  const account = { ...ids.account, jwt: await accountJwt(ids.account.name, ids.account.seed, ids.operator.seed, revoked) };
  return { ...ids, account, users, revoked };
}

function assertUserName(name: string): void {
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name)) {
    throw new NatsError(NatsErrorCode.Identity, `user name ${JSON.stringify(name)}: use 1-64 lower-case letters, digits, '_' or '-', starting with a letter or digit`);
  }
}

/** A user's `.creds` file (JWT and seed, the format every NATS client reads). */
export function credsOf(user: UserIdentity): string {
  return new TextDecoder().decode(fmtCreds(user.jwt, fromSeed(new TextEncoder().encode(user.seed))));
}

/**
 * The part of a nats-server configuration that makes it trust these identities. Paste it into the
 * server config (or `include` the file `errand creds` writes): no user can connect without creds.
 */
export function serverAuthConfig(ids: Identities): string {
  return [
    '# Errand: trust these identities (written by `errand creds`; keep it with the server config).',
    `operator: ${ids.operator.jwt}`,
    `system_account: ${ids.system.publicKey}`,
    'resolver: MEMORY',
    '# A user JWT with its permissions travels in the CONNECT line; leave room beyond the 4 KiB default.',
    'max_control_line: 16384',
    'resolver_preload: {',
    `  ${ids.account.publicKey}: ${ids.account.jwt}`,
    `  ${ids.system.publicKey}: ${ids.system.jwt}`,
    '}',
    '',
  ].join('\n');
}

/** File names in a credentials folder. */
export const IdentityFiles = {
  all: 'identities.json',
  serverConfig: 'server-auth.conf',
  creds: (user: string) => `${user}.creds`,
} as const;

/**
 * Writes the identities to `dir` (mode 0700): `identities.json` (all keys: keep it safe, it mints
 * and rotates), `server-auth.conf` and one `<user>.creds` per user (mode 0600 each).
 */
export async function writeIdentities(dir: string, ids: Identities): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const put = (name: string, text: string) => writePrivateFile(join(dir, name), text);
  for (const user of Object.values(ids.users)) await put(IdentityFiles.creds(user.name), credsOf(user));
  await put(IdentityFiles.serverConfig, serverAuthConfig(ids));
  await put(IdentityFiles.all, `${JSON.stringify(ids, null, 2)}\n`);
}

/** Reads what {@link writeIdentities} wrote; undefined when `dir` holds none. */
export async function readIdentities(dir: string): Promise<Identities | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, IdentityFiles.all), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const ids = JSON.parse(text) as Identities;
  if (ids.format !== FORMAT) {
    throw new NatsError(NatsErrorCode.Identity, `${IdentityFiles.all} has format ${String(ids.format)}; this Errand reads ${FORMAT}`);
  }
  return ids;
}

/** What a `.creds` file says about its user: name, public key, role (from its tags) and account. */
export interface CredsInfo {
  readonly name: string;
  readonly publicKey: string;
  readonly account: string;
  readonly role: Role | undefined;
  /**
   * The reply-inbox prefix a connection with these creds must use: its own (see `inboxPrefixFor`)
   * for an Errand role, whose permissions allow replies only there; none for other NATS users.
   */
  readonly replyPrefix: string | undefined;
  readonly jwt: string;
  /** The NKey seed (secret); absent in a file that holds only a JWT. */
  readonly seed: string | undefined;
}

const JWT_BLOCK = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9._-]+)\s*------END NATS USER JWT------/;
const SEED_BLOCK = /-----BEGIN USER NKEY SEED-----\s*(S[A-Z2-7]+)\s*------END USER NKEY SEED------/;

/** Reads a `.creds` file's text. Throws {@link NatsError} `ERR_NATS_IDENTITY`. */
export function credsInfo(creds: string): CredsInfo {
  const jwt = JWT_BLOCK.exec(creds)?.[1];
  if (!jwt) throw new NatsError(NatsErrorCode.Identity, 'not a NATS .creds file: it has no user JWT block');
  const claims = decode<User>(jwt);
  const tag = (claims.nats.tags ?? []).find((t) => t.startsWith('errand-role:'))?.slice('errand-role:'.length);
  const role = (ROLES as readonly string[]).includes(tag ?? '') ? (tag as Role) : undefined;
  const account = (claims.nats as { issuer_account?: string }).issuer_account ?? claims.iss;
  return { name: claims.name, publicKey: claims.sub, account, role, replyPrefix: role ? inboxPrefixFor(claims.name) : undefined, jwt, seed: SEED_BLOCK.exec(creds)?.[1] };
}

/** Writes a secret file: mode 0600, written beside and renamed, so a reader never sees half of it. */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
