/**
 * The detector engine's state, saved and restored (the layer between the series registry, engine-series.ts,
 * and the ingest path, engine.ts): the JSON snapshot ({@link EngineState.snapshot} / restore), the binary state
 * file (encodeState / decodeState, written in slices that yield), and the hand-over of single bus partitions
 * between processors (encodePartitions / restorePartition / dropPartitions). A restored engine continues
 * exactly as the one that saved the state would have (engine.test.ts checks it). Separate because it is the
 * one part that must know every column and family, and none of it runs per sample.
 */
import type { AlertTrackerSnapshot, Severity } from '../../alerting/contract.js';
import type { LabelSet } from '../../model/labels.js';
import { DerivedAccumulator, type DerivedSnapshot } from '../derived.js';
import { StateFormatError, StateReader, StateWriter } from '../state.js';
import type { DetectorName } from './config.js';
import { EngineSeries, type MemberAlert, SLOT_BITS, SLOT_MASK } from './engine-series.js';
import { type JobSnapshot, jobKey } from './job-signals.js';
import type { JobState } from './job-state.js';
import type { DetectorFamily } from './types.js';

export interface EngineSnapshot {
  readonly version: 1;
  readonly jobs: JobSnapshot[];
  readonly derived?: [string, string, DerivedSnapshot][];
  readonly series: { l: LabelSet; t: number; v: number | null; d: Record<string, unknown> }[];
  readonly members: [string, [string, number][]][];
  readonly alerts: AlertTrackerSnapshot;
}

/**
 * The bus partition the data of a series (its tenant and labels, `tenant` set) goes to; a job's is asked with
 * `{ tenant, job_id }`. Undefined: not known (such series stay with the engine that has them).
 */
export type PartitionOf = (tenant: string, labels: LabelSet) => number | undefined;

/** The state of some partitions, by {@link EngineState.selectPartitions}. */
interface Selection {
  readonly jobs: JobState[];
  readonly members: [string, MemberAlert][];
  readonly alerts: AlertTrackerSnapshot[number][];
  readonly accs: DerivedAccumulator[];
  readonly drefs: number[];
}

export abstract class EngineState extends EngineSeries {
  snapshot(): EngineSnapshot {
    const order: number[] = [];
    for (let d = 0; d < this.drefLimit; d++) if (this.infos[d] !== undefined) order.push(d);
    order.sort((a, b) => this.createdSeq[a]! - this.createdSeq[b]!);
    const series: EngineSnapshot['series'] = [];
    for (const d of order) {
      const info = this.infos[d]!;
      const data: Record<string, unknown> = {};
      const start = this.detStart[d]!;
      for (let i = 0; i < this.detCount[d]!; i++) {
        const entry = this.detArena[start + i]!;
        const family = this.families[entry >>> SLOT_BITS]! as DetectorFamily;
        const saved = family.save(entry & SLOT_MASK);
        if (saved !== undefined) data[`${i}:${family.detector}`] = saved;
      }
      const v = this.lastVs[d]!;
      series.push({ l: info.labels, t: this.lastTs[d]!, v: Number.isFinite(v) ? v : null, d: data });
    }
    return {
      version: 1,
      jobs: [...this.jobs.values()].map((j) => j.snapshot()),
      derived: [...this.derived.values()].map((d) => [d.tenant, d.jobId, d.snapshot()]),
      series,
      members: [...this.memberAlerts].map(([fp, m]) => [fp, [...m.members]]),
      alerts: this.tracker.snapshot(),
    };
  }

  /**
   * The state in the binary state file (state.ts, format version 2): the content of {@link snapshot}, encoded
   * so that a million series take a fraction of a second and little memory. Yields after every slice of
   * series: the caller may give the event loop a turn then, provided nothing changes the engine until the
   * generator is done.
   *
   * `section(JSON {jobs, members, alerts})`, `uvarint(n)` n×`[string tenant, string job, derived buckets]`,
   * `uvarint(series)` then per series in creation order: `uvarint(labels)` labels×`[name ref, value ref]`
   * (a ref is `uvarint(id·2 + new)`, a new string following it; ids count strings as they first appear),
   * `f64 lastT, f64 lastV`, `uvarint(entries)` entries×`[uvarint kind, section(detector state)]`.
   */
  *encodeState(w: StateWriter, slice = 2048): Generator<void, void> {
    const all: Selection = {
      jobs: [...this.jobs.values()],
      members: [...this.memberAlerts],
      alerts: [...this.tracker.snapshot()],
      accs: [...this.derived.values()],
      drefs: [],
    };
    for (let d = 0; d < this.drefLimit; d++) if (this.infos[d] !== undefined) all.drefs.push(d);
    yield* this.encodeSelection(w, all, slice);
  }

  /**
   * The state of the given bus partitions only, one {@link encodeState}-format record per partition (restored
   * by {@link decodeState} / {@link restorePartition}): what a processor hands over when a partition leaves
   * it. Partitions holding nothing get an empty record. Yields between slices like {@link encodeState}; the
   * records are in `out` once the generator is done.
   */
  *encodePartitions(
    partitions: ReadonlySet<number>,
    partitionOf: PartitionOf,
    out: Map<number, Uint8Array>,
    slice = 2048,
  ): Generator<void, void> {
    const selections = this.selectPartitions(partitions, partitionOf);
    const w = new StateWriter();
    for (const [p, sel] of selections) {
      yield* this.encodeSelection(w, sel, slice);
      out.set(p, w.take());
    }
  }

  /** {@link encodePartitions} in one go (tests, small engines). */
  snapshotPartitions(partitions: ReadonlySet<number>, partitionOf: PartitionOf): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>();
    for (const _ of this.encodePartitions(partitions, partitionOf, out));
    return out;
  }

  /**
   * Merges the state of partitions this engine does not hold (a record of {@link encodePartitions}) into it:
   * the engine keeps every other partition's state and continues the restored jobs and alerts exactly where
   * their previous owner left them. Reports nothing (the alert hub knows the restored alerts).
   */
  restorePartition(state: Uint8Array): { series: number; alerts: number } {
    return this.decodeState(new StateReader(state));
  }

  /**
   * Forgets everything of the given partitions (their series, jobs, derived buckets and open alerts) without
   * reporting anything: another processor owns them now and continues their alerts, so ending them here would
   * resolve alerts that still hold, and keeping them would raise e.g. JobAbsent for jobs this engine no longer
   * sees. Series and alerts whose partition is unknown (`partitionOf` undefined) are kept.
   */
  dropPartitions(partitions: ReadonlySet<number>, partitionOf: PartitionOf): void {
    const selections = this.selectPartitions(partitions, partitionOf);
    const droppedAlerts = new Set<string>();
    for (const sel of selections.values()) {
      for (const d of sel.drefs) this.forget(d, Number.NaN, false);
      for (const job of sel.jobs) {
        this.jobs.delete(job.key);
        this.derived.delete(job.key);
      }
      for (const acc of sel.accs) this.derived.delete(jobKey(acc.tenant, acc.jobId));
      for (const [fp] of sel.members) this.memberAlerts.delete(fp);
      for (const a of sel.alerts) droppedAlerts.add(a.fingerprint);
    }
    if (droppedAlerts.size > 0)
      this.tracker.restore(this.tracker.snapshot().filter((a) => !droppedAlerts.has(a.fingerprint)));
  }

  /**
   * What belongs to each of `partitions`: one pass over jobs, series and alerts. A series of a job belongs to
   * the job's partition (computed once per job); any other series and alert by its own labels.
   */
  private selectPartitions(
    partitions: ReadonlySet<number>,
    partitionOf: PartitionOf,
  ): Map<number, Selection> {
    const out = new Map<number, Selection>();
    for (const p of partitions) out.set(p, { jobs: [], members: [], alerts: [], accs: [], drefs: [] });
    const jobPart = new Map<JobState, number | undefined>();
    const ofJob = (job: JobState) => {
      let p = jobPart.get(job);
      if (p === undefined && !jobPart.has(job)) {
        p = partitionOf(job.tenant, { tenant: job.tenant, job_id: job.jobId });
        jobPart.set(job, p);
      }
      return p;
    };
    for (const job of this.jobs.values()) {
      const p = ofJob(job);
      if (p !== undefined) out.get(p)?.jobs.push(job);
    }
    for (const acc of this.derived.values()) {
      const job = this.jobs.get(jobKey(acc.tenant, acc.jobId));
      const p = job ? ofJob(job) : partitionOf(acc.tenant, { tenant: acc.tenant, job_id: acc.jobId });
      if (p !== undefined) out.get(p)?.accs.push(acc);
    }
    for (let d = 0; d < this.drefLimit; d++) {
      const info = this.infos[d];
      if (info === undefined) continue;
      const job = info.job as JobState | undefined;
      const p = job ? ofJob(job) : partitionOf(info.tenant, info.labels);
      if (p !== undefined) out.get(p)?.drefs.push(d);
    }
    const alertPart = (labels: LabelSet) => {
      const tenant = labels.tenant ?? '';
      const jobId = labels.job_id;
      const job = jobId !== undefined ? this.jobs.get(jobKey(tenant, jobId)) : undefined;
      return job ? ofJob(job) : partitionOf(tenant, labels);
    };
    for (const a of this.tracker.snapshot()) {
      const p = alertPart(a.labels);
      if (p !== undefined) out.get(p)?.alerts.push(a);
    }
    for (const m of this.memberAlerts) {
      const p = alertPart(m[1].id.labels);
      if (p !== undefined) out.get(p)?.members.push(m);
    }
    return out;
  }

  /**
   * The binary state of a selection (format at {@link encodeState}): series in creation order, as derived
   * member ids follow it.
   */
  private *encodeSelection(w: StateWriter, sel: Selection, slice: number): Generator<void, void> {
    const header = {
      jobs: sel.jobs.map((j) => j.snapshot()),
      members: sel.members.map(([fp, m]) => [fp, [...m.members]]),
      alerts: sel.alerts,
    };
    w.section(() => w.string(JSON.stringify(header)));
    const accs = sel.accs;
    w.uvarint(accs.length);
    for (let i = 0; i < accs.length; i++) {
      const acc = accs[i]!;
      w.string(acc.tenant);
      w.string(acc.jobId);
      acc.write(w);
      if (i % 256 === 255) yield;
    }
    const order = sel.drefs;
    order.sort((a, b) => this.createdSeq[a]! - this.createdSeq[b]!);
    w.uvarint(order.length);
    const ids = new Map<string, number>();
    const ref = (str: string) => {
      const id = ids.get(str);
      if (id !== undefined) {
        w.uvarint(id * 2);
        return;
      }
      w.uvarint(ids.size * 2 + 1);
      w.string(str);
      ids.set(str, ids.size);
    };
    for (let i = 0; i < order.length; i++) {
      const d = order[i]!;
      const labels = this.infos[d]!.labels;
      let n = 0;
      for (const _ in labels) n++;
      w.uvarint(n);
      for (const k in labels) {
        ref(k);
        ref(labels[k]!);
      }
      w.float(this.lastTs[d]!);
      w.float(this.lastVs[d]!);
      const start = this.detStart[d]!;
      const count = this.detCount[d]!;
      w.uvarint(count);
      for (let e = start; e < start + count; e++) {
        const entry = this.detArena[e]!;
        const kind = entry >>> SLOT_BITS;
        w.uvarint(kind);
        const family = this.families[kind]! as DetectorFamily;
        w.section(() => family.write(entry & SLOT_MASK, w));
      }
      if (i % slice === slice - 1) yield;
    }
  }

  /** Restores what {@link encodeState} wrote (with the configuration of now). Reports nothing. */
  decodeState(r: StateReader): { series: number; alerts: number } {
    const header = r.section('engine header', (h) => JSON.parse(h.string('engine header'))) as Pick<
      EngineSnapshot,
      'jobs' | 'members' | 'alerts'
    >;
    for (const js of header.jobs) this.jobFor(js.tenant, js.jobId).restore(js);
    const derivedAt: [string, string, number][] = [];
    const accCount = r.uvarint('derived');
    for (let i = 0; i < accCount; i++) {
      const tenant = r.string('derived tenant');
      const jobId = r.string('derived job');
      // Members are registered with the series below: come back to these bytes then.
      derivedAt.push([tenant, jobId, r.pos]);
      new DerivedAccumulator(tenant, jobId, this.lastTOf).read(r);
    }
    const alertsOpen = header.alerts.length > 0;
    const strings: string[] = [];
    const str = (): string => {
      const v = r.uvarint('string ref');
      if (v % 2 === 0) {
        const s = strings[v / 2];
        if (s === undefined) throw new StateFormatError('state file refers to an unknown string');
        return s;
      }
      const s = r.string('string');
      strings.push(s);
      return s;
    };
    const seriesCount = r.uvarint('series');
    for (let i = 0; i < seriesCount; i++) {
      const n = r.uvarint('labels');
      const labels: Record<string, string> = {};
      for (let k = 0; k < n; k++) {
        const name = str();
        labels[name] = str();
      }
      const tenant = labels.tenant ?? '';
      const lastT = r.float('lastT');
      const lastV = r.float('lastV');
      const name = labels.__name__;
      const d = name === undefined ? -1 : this.seriesFor(tenant, labels, name, true);
      if (d >= 0) {
        this.lastTs[d] = lastT;
        this.lastVs[d] = lastV;
      }
      const entries = r.uvarint('detector entries');
      for (let e = 0; e < entries; e++) {
        const kind = r.uvarint('detector kind');
        r.section('detector state', (sr) => {
          if (d < 0 || e >= this.detCount[d]!) return;
          const entry = this.detArena[this.detStart[d]! + e]!;
          if (entry >>> SLOT_BITS !== kind) return;
          (this.families[kind]! as DetectorFamily).read(entry & SLOT_MASK, sr);
        });
      }
      if (d >= 0 && alertsOpen) {
        const start = this.detStart[d]!;
        for (let e = start; e < start + this.detCount[d]!; e++) {
          const entry = this.detArena[e]!;
          this.families[entry >>> SLOT_BITS]!.assumeActive(entry & SLOT_MASK);
        }
      }
    }
    const end = r.pos;
    for (const [tenant, jobId, at] of derivedAt) {
      const acc = this.derived.get(jobKey(tenant, jobId));
      if (!acc) continue;
      r.pos = at;
      acc.read(r);
    }
    r.pos = end;
    this.restoreAlerts(header.alerts, header.members);
    return { series: seriesCount, alerts: header.alerts.length };
  }

  /** Restores a snapshot taken by {@link snapshot} (with the configuration of now). Reports nothing. */
  restore(s: EngineSnapshot): void {
    if (s.version !== 1) throw new Error(`unsupported detector state version ${String(s.version)}`);
    for (const js of s.jobs) this.jobFor(js.tenant, js.jobId).restore(js);
    const alertsOpen = s.alerts.length > 0;
    for (const rec of s.series) {
      const tenant = rec.l.tenant ?? '';
      const name = rec.l.__name__;
      if (name === undefined) continue;
      // The snapshot's label objects are the engine's own from here (shared: nothing else holds them).
      const d = this.seriesFor(tenant, rec.l, name, true);
      this.lastTs[d] = rec.t ?? Number.NEGATIVE_INFINITY;
      this.lastVs[d] = rec.v ?? Number.NaN;
      const start = this.detStart[d]!;
      for (let i = 0; i < this.detCount[d]!; i++) {
        const entry = this.detArena[start + i]!;
        const family = this.families[entry >>> SLOT_BITS]! as DetectorFamily;
        const slot = entry & SLOT_MASK;
        const data = rec.d[`${i}:${family.detector}`];
        if (data !== undefined) family.load(slot, data);
        if (alertsOpen) family.assumeActive(slot);
      }
    }
    for (const [tenant, jobId, ds] of s.derived ?? []) this.derived.get(jobKey(tenant, jobId))?.restore(ds);
    this.restoreAlerts(s.alerts, s.members);
  }

  /** Adds restored alerts to those open (a partition's alerts join the other partitions' alerts). */
  private restoreAlerts(alerts: AlertTrackerSnapshot, memberList: EngineSnapshot['members']): void {
    if (alerts.length > 0) {
      const incoming = new Set(alerts.map((a) => a.fingerprint));
      const kept =
        this.tracker.size > 0 ? this.tracker.snapshot().filter((a) => !incoming.has(a.fingerprint)) : [];
      this.tracker.restore([...kept, ...alerts]);
    }
    for (const [fp, members] of memberList) {
      const a = alerts.find((x) => x.fingerprint === fp);
      if (!a) continue;
      const rule = this.identity(
        a.origin as DetectorName,
        a.name,
        (a.labels.severity ?? 'warning') as Severity,
        a.forMs,
        a.keepFiringForMs,
        {},
      ).rule;
      this.memberAlerts.set(fp, {
        id: { fingerprint: fp, labels: a.labels, rule },
        members: new Map(members),
      });
    }
  }
}
