/**
 * Action hooks (the brief's auto-throttling and re-scheduling): when a matching alert fires, call a webhook
 * or run a command with the alert and its job's details, e.g. to requeue the job or cordon the node. Off
 * unless configured. Runs through the outbox like any notification, once per alert episode (a dedup key of
 * action, fingerprint and start time), so restarts and replays never run an action twice.
 */
import { spawn } from 'node:child_process';
import type { JobInfo } from '../../model/job.js';
import type { Alert, AlertGroup, DeliveryOutcome, Notifier } from '../notifier.js';
import { absoluteUrl, postJson } from './http.js';

export type JobLookup = (tenant: string, jobId: string) => JobInfo | undefined;

export interface ActionPayload {
  readonly action: string;
  readonly status: 'firing' | 'resolved';
  readonly alert: Alert & { readonly dashboardUrl: string };
  readonly job: JobInfo | null;
}

export function actionPayload(name: string, group: AlertGroup, jobs: JobLookup | undefined): ActionPayload {
  const alert = group.alerts[0]!;
  const jobId = alert.labels.job_id;
  return {
    action: name,
    status: alert.state === 'resolved' ? 'resolved' : 'firing',
    alert: { ...alert, dashboardUrl: absoluteUrl(group, alert) },
    job: jobId && jobs ? (jobs(alert.labels.tenant ?? '', jobId) ?? null) : null,
  };
}

export class WebhookActionNotifier implements Notifier {
  readonly name = 'action-webhook';

  constructor(
    private readonly action: string,
    private readonly url: string,
    private readonly headers: Readonly<Record<string, string>>,
    private readonly jobs: JobLookup | undefined,
  ) {}

  send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome> {
    return postJson(this.url, actionPayload(this.action, group, this.jobs), signal, this.headers);
  }
}

/** Exit status 75 (EX_TEMPFAIL) asks for a retry; any other failure is permanent. */
export const EX_TEMPFAIL = 75;

export class CommandActionNotifier implements Notifier {
  readonly name = 'action-command';

  constructor(
    private readonly action: string,
    private readonly path: string,
    private readonly args: readonly string[],
    private readonly timeoutMs: number,
    private readonly jobs: JobLookup | undefined,
  ) {}

  send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome> {
    const payload = actionPayload(this.action, group, this.jobs);
    const a = payload.alert;
    const env: Record<string, string> = {
      ...process.env,
      TW_ACTION: this.action,
      TW_STATUS: payload.status,
      TW_ALERTNAME: a.name,
      TW_SEVERITY: a.labels.severity ?? '',
      TW_TENANT: a.labels.tenant ?? '',
      TW_JOB_ID: a.labels.job_id ?? '',
      TW_NODE_ID: a.labels.node_id ?? '',
      TW_RANK: a.labels.rank ?? '',
      TW_GPU: a.labels.gpu ?? '',
      TW_URL: a.dashboardUrl,
      TW_SUMMARY: a.annotations.summary ?? '',
    };
    return new Promise((resolve) => {
      let settled = false;
      const done = (o: DeliveryOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      let stderr = '';
      const child = spawn(this.path, [...this.args], { env, stdio: ['pipe', 'ignore', 'pipe'] });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        done({ kind: 'retryable', reason: `${this.path} did not finish within ${this.timeoutMs} ms` });
      }, this.timeoutMs);
      const onAbort = () => {
        child.kill('SIGKILL');
        done({ kind: 'retryable', reason: `${this.path}: aborted` });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      child.stderr!.on('data', (d: Buffer) => {
        if (stderr.length < 500) stderr += d.toString();
      });
      child.on('error', (err) =>
        done({ kind: 'permanent', reason: `cannot run ${this.path}: ${err.message}` }),
      );
      child.on('exit', (code, sig) => {
        if (code === 0) return done({ kind: 'delivered' });
        const reason = `${this.path} exited with ${code ?? sig}${stderr ? `: ${stderr.trim().slice(0, 300)}` : ''}`;
        done(code === EX_TEMPFAIL ? { kind: 'retryable', reason } : { kind: 'permanent', reason });
      });
      child.stdin!.on('error', () => {
        // A command that does not read its stdin is fine.
      });
      child.stdin!.end(JSON.stringify(payload));
    });
  }
}
