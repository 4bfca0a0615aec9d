/**
 * `trainwatch sync DIR --url URL`: uploads native frames written to disk by the Python SDK — its offline
 * directory (`TRAINWATCH_MODE=offline`) or the spool an online run left behind — for clusters without a
 * route to the collector. `python -m trainwatch sync` does the same from Python (sdk/python/src/trainwatch/sync.py).
 *
 * Each `*.twb` file is one frame, sent byte for byte with `sendFrame`, so its idempotency key (source id +
 * sequence) is the one it was written with: syncing twice, or syncing what the live run already delivered,
 * stores nothing twice. An accepted frame is renamed `*.twb.sent`, a frame refused as invalid
 * `*.twb.rejected`; one that could not be delivered stays for the next sync.
 */
import { readdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DecodeError } from '../../protocol/bytes.js';
import { decodeFrameHeader } from '../../protocol/native.js';
import { sendFrame } from '../../protocol/native-client.js';
import { durationArg, fail } from '../common.js';

export const FRAME_SUFFIX = '.twb';
const SENT_SUFFIX = '.sent';

export interface SyncOptions {
  readonly url: string;
  readonly token?: string | undefined;
  /** Also send frames already marked `.sent`. */
  readonly resend?: boolean;
  /** How long to keep retrying one frame before leaving it for the next sync. */
  readonly giveUpAfterMs?: number;
  readonly baseDelayMs?: number;
  readonly onFrame?: (file: string, outcome: FrameOutcome) => void;
}

export type FrameOutcome =
  | { readonly result: 'sent'; readonly duplicate: boolean }
  | { readonly result: 'rejected' | 'failed'; readonly status: number; readonly error: string };

export interface SyncReport {
  frames: number;
  sent: number;
  duplicate: number;
  rejected: number;
  failed: number;
}

/** Frame files under `dir`, recursively, in upload order: directory by directory, then by sequence. */
export function findFrames(dir: string, includeSent = false): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    const entries = readdirSync(d, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(FRAME_SUFFIX) || (includeSent && e.name.endsWith(FRAME_SUFFIX + SENT_SUFFIX)))
        out.push(p);
    }
  };
  walk(dir);
  return out;
}

export async function syncDirectory(dir: string, opts: SyncOptions): Promise<SyncReport> {
  const files = findFrames(dir, opts.resend ?? false);
  const report: SyncReport = { frames: files.length, sent: 0, duplicate: 0, rejected: 0, failed: 0 };
  for (const file of files) {
    const frame = readFileSync(file);
    const base = file.endsWith(SENT_SUFFIX) ? file.slice(0, -SENT_SUFFIX.length) : file;
    try {
      decodeFrameHeader(frame);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      report.rejected++;
      opts.onFrame?.(file, {
        result: 'rejected',
        status: 0,
        error: `not a trainwatch frame: ${err.message}`,
      });
      continue;
    }
    const outcome = await sendFrame(
      {
        url: opts.url,
        token: opts.token,
        sourceId: 'trainwatch-sync', // unused: the frame carries its own idempotency key
        giveUpAfterMs: opts.giveUpAfterMs ?? 10 * 60_000,
        baseDelayMs: opts.baseDelayMs ?? 200,
      },
      frame,
    );
    if (outcome.ok) {
      report.sent++;
      if (outcome.duplicate) report.duplicate++;
      if (file !== base + SENT_SUFFIX) renameSync(file, base + SENT_SUFFIX);
      opts.onFrame?.(file, { result: 'sent', duplicate: outcome.duplicate });
    } else if (!outcome.retryable && outcome.status !== 401 && outcome.status !== 403) {
      report.rejected++;
      renameSync(file, `${base}.rejected`);
      opts.onFrame?.(file, { result: 'rejected', status: outcome.status, error: outcome.error });
    } else {
      report.failed++;
      opts.onFrame?.(file, { result: 'failed', status: outcome.status, error: outcome.error });
      // Bad credentials refuse every frame alike: stop instead of hammering the server.
      if (outcome.status === 401 || outcome.status === 403) break;
    }
  }
  return report;
}

export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('upload frames the Python SDK wrote offline (TRAINWATCH_MODE=offline) or left in its spool')
    .argument('<dir>', 'directory holding *.twb frames (searched recursively)')
    .requiredOption(
      '--url <url>',
      'trainwatch base URL, e.g. http://127.0.0.1:9470',
      process.env.TRAINWATCH_SERVER,
    )
    .option('--token <token>', 'ingest token (default: $TRAINWATCH_TOKEN)', process.env.TRAINWATCH_TOKEN)
    .option('--resend', 'also send frames already marked .sent', false)
    .option('--give-up-after <duration>', 'how long to keep retrying one frame', durationArg, 10 * 60_000)
    .action(
      async (dir: string, flags: { url: string; token?: string; resend: boolean; giveUpAfter: number }) => {
        try {
          const report = await syncDirectory(dir, {
            url: flags.url,
            token: flags.token,
            resend: flags.resend,
            giveUpAfterMs: flags.giveUpAfter,
            onFrame: (file, outcome) => {
              if (outcome.result !== 'sent')
                process.stdout.write(`${JSON.stringify({ file, ...outcome })}\n`);
            },
          });
          process.stdout.write(`${JSON.stringify({ done: report })}\n`);
          process.exit(report.failed === 0 && report.rejected === 0 ? 0 : 1);
        } catch (err) {
          fail(err);
        }
      },
    );
}
