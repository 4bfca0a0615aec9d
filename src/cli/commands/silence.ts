/**
 * `trainwatch silence add|list|expire`: silences through a running server's Alertmanager-v2 API, as amtool
 * manages them. `--url` (or TRAINWATCH_URL) names the server; `--token` (or TRAINWATCH_TOKEN) authenticates.
 *
 *   trainwatch silence add 'alertname="GPUIdle"' 'job_id=~"llama-.*"' --duration 2h --comment "planned idle"
 *   trainwatch silence list [--expired]
 *   trainwatch silence expire <id>
 */
import os from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import { parseMatcher } from '../../alerting/index.js';
import { durationArg, orFail } from '../common.js';

interface ClientFlags {
  url: string;
  token?: string;
}

interface ApiSilence {
  id: string;
  status: { state: string };
  matchers: { name: string; value: string; isRegex: boolean; isEqual: boolean }[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

function clientOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'the trainwatch server', process.env.TRAINWATCH_URL ?? 'http://127.0.0.1:9470')
    .option('--token <token>', 'API token (default: $TRAINWATCH_TOKEN)');
}

async function call(flags: ClientFlags, method: string, path: string, body?: unknown): Promise<unknown> {
  const token = flags.token ?? process.env.TRAINWATCH_TOKEN;
  const res = await fetch(`${flags.url.replace(/\/+$/, '')}${path}`, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const parsed = text ? (JSON.parse(text) as unknown) : {};
  if (!res.ok) {
    const msg = (parsed as { error?: string }).error ?? text;
    throw new Error(`${method} ${path}: HTTP ${res.status}: ${msg}`);
  }
  return parsed;
}

function matcherText(m: ApiSilence['matchers'][number]): string {
  const op = m.isRegex ? (m.isEqual ? '=~' : '!~') : m.isEqual ? '=' : '!=';
  return `${m.name}${op}${JSON.stringify(m.value)}`;
}

function matcherArg(value: string, previous: string[] = []): string[] {
  try {
    parseMatcher(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return [...previous, value];
}

export function registerSilence(program: Command): void {
  const silence = program
    .command('silence')
    .description('silence alerts on a running trainwatch (Alertmanager-style)');

  clientOptions(
    silence
      .command('add')
      .description('mute alerts matching every matcher, e.g. alertname="GPUIdle" job_id=~"llama-.*"')
      .argument('<matchers...>', 'label matchers: name="value", name!="value", name=~"regex", name!~"regex"')
      .option('-d, --duration <duration>', 'how long from now', durationArg, 3_600_000)
      .option('--start <time>', 'start (RFC 3339; default now)')
      .option('--end <time>', 'end (RFC 3339; overrides --duration)')
      .option('-a, --author <name>', 'who silences', process.env.USER ?? os.userInfo().username)
      .requiredOption('--comment <text>', 'why'),
  ).action(
    orFail(
      async (
        matchers: string[],
        flags: ClientFlags & {
          duration: number;
          start?: string;
          end?: string;
          author: string;
          comment: string;
        },
      ) => {
        for (const m of matchers) matcherArg(m);
        const start = flags.start ? Date.parse(flags.start) : Date.now();
        const end = flags.end ? Date.parse(flags.end) : start + flags.duration;
        if (Number.isNaN(start) || Number.isNaN(end))
          throw new Error('--start and --end must be RFC 3339 times');
        const body = {
          matchers: matchers.map((s) => {
            const m = parseMatcher(s);
            return {
              name: m.name,
              value: m.value,
              isRegex: m.type.includes('~'),
              isEqual: !m.type.startsWith('!'),
            };
          }),
          startsAt: new Date(start).toISOString(),
          endsAt: new Date(end).toISOString(),
          createdBy: flags.author,
          comment: flags.comment,
        };
        const res = (await call(flags, 'POST', '/api/v2/silences', body)) as { silenceID: string };
        process.stdout.write(`${res.silenceID}\n`);
      },
    ),
  );

  clientOptions(
    silence
      .command('list')
      .description('list silences (active and pending; --expired for the expired ones too)')
      .option('--expired', 'include expired silences')
      .option('--json', 'print the API answer as JSON'),
  ).action(
    orFail(async (flags: ClientFlags & { expired?: boolean; json?: boolean }) => {
      const list = ((await call(flags, 'GET', '/api/v2/silences')) as ApiSilence[]).filter(
        (s) => flags.expired || s.status.state !== 'expired',
      );
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      const rows = [
        ['ID', 'STATE', 'MATCHERS', 'ENDS', 'CREATED BY', 'COMMENT'],
        ...list.map((s) => [
          s.id,
          s.status.state,
          s.matchers.map(matcherText).join(' '),
          s.endsAt,
          s.createdBy,
          s.comment,
        ]),
      ];
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      process.stdout.write(
        `${rows
          .map((r) =>
            r
              .map((v, c) => v.padEnd(widths[c]!))
              .join('  ')
              .trimEnd(),
          )
          .join('\n')}\n`,
      );
    }),
  );

  clientOptions(
    silence.command('expire').description('expire silences now').argument('<ids...>', 'silence ids'),
  ).action(
    orFail(async (ids: string[], flags: ClientFlags) => {
      for (const id of ids) await call(flags, 'DELETE', `/api/v2/silence/${encodeURIComponent(id)}`);
    }),
  );
}
