/**
 * `trainwatch token create|list|revoke`: API tokens in the metadata store the configuration names
 * (`meta.kind`): the data directory's SQLite file, or PostgreSQL. Works while servers run against the same
 * store. With SQLite (WAL mode allows a second writer process) a server sees a new or revoked token at its
 * next request; with PostgreSQL, servers see a new token within about a second of its first use and a
 * revocation within their token refresh interval (5 s by default; src/meta/postgres/token-cache.ts).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { TENANT_RE, TOKEN_SCOPES, type TokenAdmin, type TokenInfo } from '../../meta/tokens.js';
import { configFrom, orFail } from '../common.js';

interface TokenFlags {
  config?: string;
  dataDir?: string;
}

/**
 * Opens the metadata store the configuration names (its driver loaded only for token commands) and runs
 * `work` on its tokens.
 */
async function withStore<T>(flags: TokenFlags, work: (tokens: TokenAdmin) => Promise<T>): Promise<T> {
  const config = configFrom({ config: flags.config, dataDir: flags.dataDir });
  const { openTokenAdmin } = await import('../../meta/index.js');
  const tokens = await openTokenAdmin(config);
  try {
    return await work(tokens);
  } finally {
    await tokens.close();
  }
}

function tenantArg(value: string): string {
  if (!TENANT_RE.test(value))
    throw new InvalidArgumentError(
      'use 1-63 lowercase letters, digits, _ and -, starting with a letter or digit',
    );
  return value;
}

function dataDirOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML configuration file (for data_dir, or meta.kind: postgres)')
    .option('--data-dir <dir>', 'the data directory of the trainwatch server (default: ./data)');
}

function iso(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function table(tokens: readonly TokenInfo[]): string {
  const rows = [
    ['ID', 'TENANT', 'SCOPE', 'NAME', 'CREATED', 'LAST USED', 'REVOKED'],
    ...tokens.map((t) => [
      t.id,
      t.tenant,
      t.scope,
      t.name || '-',
      iso(t.createdAtMs),
      iso(t.lastUsedAtMs),
      iso(t.revokedAtMs),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function registerToken(program: Command): void {
  const token = program
    .command('token')
    .description(
      'manage API tokens (ingest, read, admin) in the metadata store (data directory or PostgreSQL)',
    )
    .addHelpText(
      'after',
      '\nSend a token as "Authorization: Bearer <token>". The tenant of every request comes from its token.',
    );

  dataDirOptions(
    token
      .command('create')
      .description('create a token and print it (its secret is shown only once)')
      .requiredOption('--tenant <tenant>', 'the tenant the token reads or writes', tenantArg)
      .addOption(
        new Option('--scope <scope>', 'what the token may do')
          .choices([...TOKEN_SCOPES])
          .makeOptionMandatory(),
      )
      .option('--name <name>', 'a note saying who or what uses the token', '')
      .option('--json', 'print {id, token, tenant, scope, name} as JSON'),
  ).action(
    orFail(
      async (
        flags: TokenFlags & {
          tenant: string;
          scope: (typeof TOKEN_SCOPES)[number];
          name: string;
          json?: boolean;
        },
      ) => {
        const { token: secret, info } = await withStore(flags, (s) =>
          s.create({ tenant: flags.tenant, scope: flags.scope, name: flags.name }),
        );
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({ id: info.id, token: secret, tenant: info.tenant, scope: info.scope, name: info.name })}\n`,
          );
        } else {
          process.stdout.write(
            `${secret}\n` +
              `(token ${info.id}: tenant ${info.tenant}, scope ${info.scope}. Store it now: it is not shown again.)\n`,
          );
        }
      },
    ),
  );

  dataDirOptions(
    token
      .command('list')
      .description('list tokens (never their secrets)')
      .option('--tenant <tenant>', 'only this tenant', tenantArg)
      .option('--all', 'include revoked tokens')
      .option('--json', 'print a JSON array'),
  ).action(
    orFail(async (flags: TokenFlags & { tenant?: string; all?: boolean; json?: boolean }) => {
      const tokens = await withStore(flags, (s) =>
        s.list({ tenant: flags.tenant, includeRevoked: flags.all }),
      );
      process.stdout.write(flags.json ? `${JSON.stringify(tokens)}\n` : table(tokens));
    }),
  );

  dataDirOptions(
    token
      .command('revoke')
      .description('revoke a token by its id; requests using it are refused from then on')
      .argument('<id>', 'the token id (16 hex digits, as `token list` shows; or the whole token)'),
  ).action(
    orFail(async (idArg: string, flags: TokenFlags) => {
      const id = /^twk_([0-9a-f]{16})_/.exec(idArg)?.[1] ?? idArg;
      const info = await withStore(flags, (s) => s.revoke(id));
      if (!info) throw new Error(`no token with id ${JSON.stringify(id)} (see: trainwatch token list)`);
      process.stdout.write(`revoked token ${info.id} (tenant ${info.tenant}, scope ${info.scope})\n`);
    }),
  );
}
