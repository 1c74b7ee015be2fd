import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { addUser, defaultDataDir, rotateUsers, serverAuthConfig, writeIdentities, writePrivateFile, type Identities } from '@errand/nats';
import { DEFAULT_PREFIX, ROLE_PURPOSE, ROLES, type Role } from '@errand/protocols';
import type { GlobalOptions } from '../context.js';
import { defaultCredsDir, loadCredentials, SIGNING_KEY_FILE, VERIFY_KEY_FILE, writeSigningKey, type DeploymentCredentials } from '../credentials.js';
import { ExitCode } from '../exit-codes.js';
import { CliError, printJson } from '../output.js';

interface CredsOptions extends GlobalOptions {
  dir?: string;
}

function parseRole(value: string): Role {
  if (!(ROLES as readonly string[]).includes(value)) throw new CliError(ExitCode.Usage, `no role '${value}'; roles are ${ROLES.join(', ')}`);
  return value as Role;
}

const dirOf = (opts: CredsOptions) => resolve(opts.dir ?? defaultCredsDir(defaultDataDir()));
const prefixOf = (opts: CredsOptions) => opts.prefix ?? process.env.ERRAND_PREFIX ?? DEFAULT_PREFIX;

async function existing(opts: CredsOptions): Promise<DeploymentCredentials> {
  const dir = dirOf(opts);
  const found = await loadCredentials(dir, { prefix: prefixOf(opts), create: false });
  if (!found) throw new CliError(ExitCode.NotFound, `no credentials in ${dir}; \`errand creds --dir ${dir}\` mints them`);
  return found;
}

function summary(c: DeploymentCredentials): Record<string, unknown> {
  return {
    dir: c.dir,
    prefix: c.identities.prefix,
    account: c.identities.account.publicKey,
    users: Object.values(c.identities.users).map((u) => ({ name: u.name, role: u.role, publicKey: u.publicKey, creds: c.credsFile(u.name) })),
    revoked: Object.keys(c.identities.revoked).length,
    signingKey: c.signingKeyFile,
    verifyKey: c.verifyKey,
    serverConfig: c.serverConfigFile,
  };
}

function describe(c: DeploymentCredentials): string {
  const lines = [`credentials for prefix '${c.identities.prefix}' in ${c.dir}`, ''];
  for (const u of Object.values(c.identities.users)) lines.push(`  ${u.name.padEnd(12)} ${u.role.padEnd(12)} ${c.credsFile(u.name)}`);
  lines.push(
    '',
    'Run each process with its own role:',
    `  hosts         NATS_CREDS=${c.credsFile('host')} ERRAND_SIGNING_KEY=${c.signingKeyFile} ERRAND_VERIFY_KEY=${c.verifyKey}`,
    `  planners      NATS_CREDS=${c.credsFile('planner')} ERRAND_VERIFY_KEY=${c.verifyKey}`,
    `  tool-runners  NATS_CREDS=${c.credsFile('tool-runner')} ERRAND_VERIFY_KEY=${c.verifyKey}`,
    `  notifiers     NATS_CREDS=${c.credsFile('notifier')} ERRAND_VERIFY_KEY=${c.verifyKey}`,
    `  people        NATS_CREDS=${c.credsFile('operator')} errand …   (provision and gc: admin.creds)`,
    `  applications  NATS_CREDS=${c.credsFile('submitter')}             (or a submitter of their own: errand creds add submitter <name>)`,
    '',
    `The nats-server must trust them: add the lines of ${c.serverConfigFile} to its config`,
    '(`errand creds server-config` prints them; deploy/nats/*.conf show where). Keep identities.json',
    `and ${SIGNING_KEY_FILE} secret: they mint credentials and sign commands.`,
  );
  return `${lines.join('\n')}\n`;
}

async function save(c: DeploymentCredentials, ids: Identities, opts: CredsOptions): Promise<DeploymentCredentials> {
  await writeIdentities(c.dir, ids);
  return (await loadCredentials(c.dir, { prefix: prefixOf(opts), create: false }))!;
}

export function registerCreds(program: Command): void {
  const creds = program
    .command('creds')
    .description("mint and manage a deployment's credentials: one NATS identity per role, the server's auth config, the command signing key")
    .option('--dir <dir>', 'the credentials folder (default: ~/.errand/creds, where `errand up` keeps its own)')
    .addHelpText(
      'after',
      `
Without a subcommand: mints the credentials in the folder when it has none (for --prefix), then
says what is there and how each process uses it. The folder is created with mode 0700 and every
file with mode 0600. The model is the one \`nsc\` uses — an operator, an account, users with
permissions in their JWTs — so the files work with any NATS tooling; the server needs only the
lines \`errand creds server-config\` prints (a memory resolver, nothing to run beside it).

Roles:
${ROLES.map((r) => `  ${r.padEnd(12)} ${ROLE_PURPOSE[r]}`).join('\n')}

Examples:
  $ errand creds --dir /etc/errand/creds --prefix errand
  $ errand creds server-config --dir /etc/errand/creds >> /etc/nats/server.conf
  $ errand creds add submitter billing-app --dir /etc/errand/creds
  $ errand creds rotate tool-runner --dir /etc/errand/creds      # new keys; the old .creds are revoked
  $ errand creds rotate --signing-key --dir /etc/errand/creds    # new command key; the old one is still accepted`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CredsOptions>();
      const dir = dirOf(opts);
      const c = (await loadCredentials(dir, { prefix: prefixOf(opts), create: true }))!;
      if (opts.json) printJson({ ok: true, created: c.created, ...summary(c) });
      else process.stdout.write(`${c.created ? 'minted ' : ''}${describe(c)}`);
    });

  creds
    .command('server-config')
    .description('print the lines a nats-server config needs to trust these credentials')
    .action(async (_opts: unknown, cmd: Command) => {
      const c = await existing(cmd.optsWithGlobals<CredsOptions>());
      process.stdout.write(serverAuthConfig(c.identities));
    });

  creds
    .command('add <role> <name>')
    .description('mint another user of a role (an application of its own, a second person)')
    .action(async (role: string, name: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CredsOptions>();
      const c = await existing(opts);
      let ids: Identities;
      try {
        ids = await addUser(c.identities, parseRole(role), name);
      } catch (err) {
        throw new CliError(ExitCode.Usage, (err as Error).message, { cause: err });
      }
      const saved = await save(c, ids, opts);
      if (opts.json) printJson({ ok: true, name, role, creds: saved.credsFile(name) });
      else process.stdout.write(`${name} (${role}): ${saved.credsFile(name)}\n`);
    });

  creds
    .command('rotate [users...]')
    .description('new keys for users (all when none is named): their old .creds are revoked; or a new command signing key')
    .option('--signing-key', 'rotate the command signing key instead; the old public key stays in ERRAND_VERIFY_KEY until --finish')
    .option('--finish', 'with --signing-key: drop the old public keys once every host signs with the new one')
    .addHelpText(
      'after',
      `
Rotating users changes the account JWT (its revocation list), so the server must load the new
server config: write it with \`errand creds server-config\` and reload or restart nats-server, then
give each process its new .creds. Rotating the signing key: restart hosts with the new key and
workers with the new ERRAND_VERIFY_KEY (it lists both keys), then run --signing-key --finish.`,
    )
    .action(async (users: string[], _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CredsOptions & { signingKey?: boolean; finish?: boolean }>();
      const c = await existing(opts);
      if (opts.signingKey) {
        const current = (await readFile(join(c.dir, VERIFY_KEY_FILE), 'utf8')).trim().split(',').filter(Boolean);
        const verify = opts.finish ? current[0]! : await writeSigningKey(c.dir, current);
        if (opts.finish) await writePrivateFile(join(c.dir, VERIFY_KEY_FILE), `${verify}\n`);
        if (opts.json) printJson({ ok: true, verifyKey: verify });
        else process.stdout.write(`ERRAND_VERIFY_KEY=${verify}\n`);
        return;
      }
      let ids: Identities;
      try {
        ids = await rotateUsers(c.identities, users);
      } catch (err) {
        throw new CliError(ExitCode.Usage, (err as Error).message, { cause: err });
      }
      const saved = await save(c, ids, opts);
      const rotated = users.length ? users : Object.keys(ids.users);
      if (opts.json) printJson({ ok: true, rotated, serverConfig: saved.serverConfigFile });
      else process.stdout.write(`new keys for ${rotated.join(', ')}; load ${saved.serverConfigFile} into the server (reload or restart) so the old ones are refused\n`);
    });
}
