/**
 * `trainwatch user create|list|passwd|disable|enable`: user accounts (`auth.users: true`) in the metadata store
 * the configuration names (the data directory's SQLite file, or PostgreSQL). Works while servers run against
 * the same store: a password change or a disabled user ends that user's sessions (servers notice within
 * their session cache interval). Every change is written to the audit log as actor `cli`.
 *
 * Passwords: `--password-stdin` reads the first line of standard input (`echo "$PW" | trainwatch user
 * create ...`); without it a random password is generated and printed once.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { AccessStore, Role, UserInfo } from '../../meta/index.js';
import { configFrom, orFail } from '../common.js';

interface StoreFlags {
  config?: string;
  dataDir?: string;
}

const ROLE_CHOICES: readonly Role[] = ['viewer', 'editor', 'admin'];

async function withAccess<T>(flags: StoreFlags, work: (access: AccessStore) => Promise<T>): Promise<T> {
  const config = configFrom({ config: flags.config, dataDir: flags.dataDir });
  const { openAccessAdmin } = await import('../../meta/index.js');
  const opened = await openAccessAdmin(config);
  try {
    return await work(opened.access);
  } finally {
    await opened.close();
  }
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML configuration file (for data_dir, or meta.kind: postgres)')
    .option('--data-dir <dir>', 'the data directory of the trainwatch server (default: ./data)');
}

function tenantArg(value: string): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(value))
    throw new InvalidArgumentError(
      'use 1-63 lowercase letters, digits, _ and -, starting with a letter or digit',
    );
  return value;
}

async function readPasswordLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (line === '') throw new Error('--password-stdin: standard input has no password line');
  return line;
}

/** The password to set: from stdin when asked, else a generated one (`generated` says to print it). */
async function passwordFor(
  fromStdin: boolean | undefined,
): Promise<{ password: string; generated: boolean }> {
  if (fromStdin) return { password: await readPasswordLine(), generated: false };
  const { generatePassword } = await import('../../meta/index.js');
  return { password: generatePassword(), generated: true };
}

async function audit(access: AccessStore, action: string, user: UserInfo, tenant = '*'): Promise<void> {
  await access.appendAudit([
    {
      timeMs: Date.now(),
      actor: 'cli',
      via: 'cli',
      tenant,
      action,
      target: user.name,
      ip: '',
      outcome: 'success',
    },
  ]);
}

function iso(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function table(users: readonly UserInfo[]): string {
  const rows = [
    ['NAME', 'ROLES', 'OPERATOR', 'DISABLED', 'CREATED', 'LAST LOGIN'],
    ...users.map((u) => [
      u.name,
      u.roles.map((r) => `${r.tenant}:${r.role}`).join(',') || '-',
      u.operator ? 'yes' : 'no',
      u.disabled ? 'yes' : 'no',
      iso(u.createdAtMs),
      iso(u.lastLoginAtMs),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return `${rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

async function existing(access: AccessStore, name: string): Promise<UserInfo> {
  const user = await access.userByName(name);
  if (!user) throw new Error(`no user ${JSON.stringify(name)} (see: trainwatch user list)`);
  return user;
}

export function registerUser(program: Command): void {
  const user = program
    .command('user')
    .description(
      'manage user accounts (auth.users: true) in the metadata store (data directory or PostgreSQL)',
    );

  storeOptions(
    user
      .command('create')
      .description(
        'create a user with a role in a tenant (a random password is printed unless --password-stdin)',
      )
      .argument('<name>', 'the user name (letters, digits, ., _, @, -)')
      .requiredOption('--tenant <tenant>', 'the tenant the role applies to', tenantArg)
      .addOption(
        new Option('--role <role>', 'the role in that tenant').choices([...ROLE_CHOICES]).default('viewer'),
      )
      .option('--operator', 'a cluster operator: admin of every tenant, and cluster routes')
      .option('--password-stdin', 'read the password from the first line of standard input'),
  ).action(
    orFail(
      async (
        name: string,
        flags: StoreFlags & { tenant: string; role: Role; operator?: boolean; passwordStdin?: boolean },
      ) => {
        const { password, generated } = await passwordFor(flags.passwordStdin);
        const created = await withAccess(flags, async (access) => {
          const u = await access.createUser({
            name,
            password,
            operator: flags.operator === true,
            roles: [{ tenant: flags.tenant, role: flags.role }],
          });
          await audit(access, 'user.create', u, flags.tenant);
          return u;
        });
        process.stdout.write(
          `created user ${created.name} (${flags.tenant}: ${flags.role}${created.operator ? ', operator' : ''})\n` +
            (generated ? `password: ${password}\n(Store it now: it is not shown again.)\n` : ''),
        );
      },
    ),
  );

  storeOptions(
    user
      .command('list')
      .description('list users, their roles per tenant, and whether they are disabled')
      .option('--tenant <tenant>', 'only users with a role in this tenant', tenantArg)
      .option('--json', 'print a JSON array'),
  ).action(
    orFail(async (flags: StoreFlags & { tenant?: string; json?: boolean }) => {
      const users = await withAccess(flags, (access) =>
        access.listUsers(flags.tenant === undefined ? {} : { tenant: flags.tenant }),
      );
      const shown = users.map(({ hasPassword: _h, externalId: _e, ...u }) => u);
      process.stdout.write(flags.json ? `${JSON.stringify(shown)}\n` : table(users));
    }),
  );

  storeOptions(
    user
      .command('passwd')
      .description(
        "set a user's password (a random one is printed unless --password-stdin); ends its sessions",
      )
      .argument('<name>', 'the user name')
      .option('--password-stdin', 'read the password from the first line of standard input'),
  ).action(
    orFail(async (name: string, flags: StoreFlags & { passwordStdin?: boolean }) => {
      const { password, generated } = await passwordFor(flags.passwordStdin);
      await withAccess(flags, async (access) => {
        const u = await existing(access, name);
        await access.setPassword(u.id, password);
        await audit(access, 'user.passwd', u);
      });
      process.stdout.write(
        `password of ${name} changed; its sessions ended\n` + (generated ? `password: ${password}\n` : ''),
      );
    }),
  );

  for (const [verb, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    storeOptions(
      user
        .command(verb)
        .description(
          disabled ? 'disable a user: it cannot sign in, and its sessions end' : 'enable a disabled user',
        )
        .argument('<name>', 'the user name'),
    ).action(
      orFail(async (name: string, flags: StoreFlags) => {
        await withAccess(flags, async (access) => {
          const u = await existing(access, name);
          await access.setDisabled(u.id, disabled);
          await audit(access, `user.${verb}`, u);
        });
        process.stdout.write(`${verb}d user ${name}\n`);
      }),
    );
  }
}
