/**
 * Related alerts grouped under their likely cause. One hot GPU raises a temperature alert, gets throttled,
 * becomes the job's straggler and drags its throughput down: four alerts, one problem. The node/GPU alert
 * is the cause; the alerts that follow from it are folded beneath it.
 *
 * The rule, in order of likelihood as a cause:
 * - hardware faults (XID, ECC, NVLink/PCIe errors, a GPU fallen off the bus) come first;
 * - then the GPU's temperature, then its throttling (heat throttles a GPU; a throttled GPU is slow);
 * - then GPU memory (a leak, a nearly full GPU);
 * - consequences — a straggler rank, degraded throughput, slow steps, an idle GPU — never lead a group
 *   while a cause of theirs is active.
 * An alert folds under a cause when both are of the same job (or node), they were active at the same time,
 * and the alert is at the cause's place (same rank or GPU); a job-wide consequence (lower throughput) folds
 * under any alert that names a rank or GPU of the job, a straggler included: in synchronous training one
 * slow rank slows every step. Alerts that fit no cause lead their own group.
 */
import { alertName, alertStart } from './alerts.js';
import type { Alert } from './types.js';

export interface AlertGroup {
  /** The likely cause: the group's first alert. */
  readonly cause: Alert;
  /** Alerts that follow from it, in the order they started. */
  readonly consequences: Alert[];
}

const HARDWARE = /xid|ecc|nvlink|pcie|fell ?off|fallen|lost|retired|row ?remap/i;

/** 0 hardware … 3 memory: alerts that can be a cause; 4: consequences; 5: anything else (leads alone). */
export function causeRank(a: Alert): number {
  const name = alertName(a);
  if (HARDWARE.test(name)) return 0;
  if (/temperature|thermal/i.test(name)) return 1;
  if (/throttl/i.test(name)) return 2;
  if (/^GPUMemory/i.test(name)) return 3;
  if (/straggler|throughput|steptime|step_time|slowstep|GPUIdle|underutil/i.test(name)) return 4;
  return 5;
}

const CONSEQUENCE = 4;

/** Where an alert points within its job: a rank, a GPU, or '' for the whole job (or a whole node). */
export function placeOf(labels: Readonly<Record<string, string>>): string {
  if (labels.rank) return `rank ${labels.rank}`;
  if (labels.gpu_uuid) return `uuid ${labels.gpu_uuid}`;
  if (labels.node_id && labels.gpu !== undefined && labels.gpu !== '')
    return `node ${labels.node_id} gpu ${labels.gpu}`;
  return '';
}

function scopeOf(labels: Readonly<Record<string, string>>): string {
  const tenant = labels.tenant ?? '';
  if (labels.job_id) return `${tenant}\u0000job\u0000${labels.job_id}`;
  if (labels.node_id) return `${tenant}\u0000node\u0000${labels.node_id}`;
  return '';
}

function samePlace(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  if (a.gpu_uuid && b.gpu_uuid) return a.gpu_uuid === b.gpu_uuid;
  if (a.rank && b.rank) return a.rank === b.rank;
  if (a.node_id && b.node_id && a.gpu && b.gpu) return a.node_id === b.node_id && a.gpu === b.gpu;
  return false;
}

function overlap(a: Alert, b: Alert): boolean {
  const aEnd = a.resolvedAtMs ?? Number.POSITIVE_INFINITY;
  const bEnd = b.resolvedAtMs ?? Number.POSITIVE_INFINITY;
  return alertStart(a) <= bEnd && alertStart(b) <= aEnd;
}

/** Groups in the order of their causes' likelihood, then start; a consequence joins the earliest cause. */
export function groupAlerts(alerts: readonly Alert[]): AlertGroup[] {
  // Placed alerts before job-wide ones of the same kind: a straggler leads the throughput drop it causes,
  // whichever a detector noticed first.
  const jobWide = (a: Alert) => (placeOf(a.labels) === '' ? 1 : 0);
  const ordered = [...alerts].sort(
    (a, b) => causeRank(a) - causeRank(b) || jobWide(a) - jobWide(b) || alertStart(a) - alertStart(b),
  );
  const groups: AlertGroup[] = [];
  for (const a of ordered) {
    const rank = causeRank(a);
    const scope = scopeOf(a.labels);
    let home: AlertGroup | undefined;
    if (rank <= CONSEQUENCE && scope !== '') {
      const wholeJob = placeOf(a.labels) === '';
      home = groups.find((g) => {
        if (scopeOf(g.cause.labels) !== scope || !overlap(g.cause, a)) return false;
        const leader = causeRank(g.cause);
        // A cause leads alerts of its own kind or a later one at its place (XID + ECC, temperature +
        // throttling, a hot GPU's straggling).
        if (leader < CONSEQUENCE && leader <= rank && samePlace(g.cause.labels, a.labels)) return true;
        // A job-wide consequence (throughput, step time) follows any placed alert of the job: one slow
        // rank slows every synchronous step.
        return wholeJob && rank === CONSEQUENCE && leader <= CONSEQUENCE && placeOf(g.cause.labels) !== '';
      });
    }
    if (home) home.consequences.push(a);
    else groups.push({ cause: a, consequences: [] });
  }
  for (const g of groups) g.consequences.sort((a, b) => alertStart(a) - alertStart(b));
  return groups;
}
