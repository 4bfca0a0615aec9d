/**
 * The processor: consumes every bus partition in offset order, appends samples to storage, applies job
 * events to the job store, and checkpoints.
 *
 * Checkpoint protocol (docs/durability.md): every `checkpointIntervalMs`, the processor asks storage to make
 * everything appended so far durable *and* to record the bus positions it covers; only after that resolves does
 * it commit those positions to the bus and let the bus drop segments below them. After a crash it resumes at
 * storage's covered positions, so a record is either covered by storage's durable state or replayed — never
 * lost — and replays are harmless because appends are idempotent.
 *
 * Stream analysis (optional, {@link ProcessorAnalysis}): each record is also handed to the detector engine,
 * which raises alerts within the processing of the offending batch and computes the derived per-job series
 * (appended to storage). The engine's state is checkpointed per bus partition, each with the offset it covers,
 * in a {@link PartitionStateStore} (files in the state directory, or PostgreSQL when scaled out). On assign,
 * the processor loads each partition's state into the engine (merged with the partitions it holds) and reads
 * the partition from the lower of storage's and the state's positions, giving storage every record and the
 * engine only those at or after the state's offset. On revoke it stops the partition's loop, saves its state,
 * commits, then drops it from the engine: the next owner continues its detectors and open alerts.
 *
 * Order invariant: a partition's state is saved before offsets are committed, and the committed offset never
 * passes the saved state's offset (nor storage's covered position), so the bus is truncated only below both
 * and neither ever misses a record.
 *
 * This file holds the lifecycle: the consumer group, each partition's loop, assign and revoke with the
 * state hand-over, and the checkpoint; how one record is applied is in record-applier.ts.
 */
import type { BusEntry } from '../bus/index.js';
import { Errors, type TrainwatchError } from '../model/errors.js';
import { type ProcessorAnalysis, RecordApplier, sleep } from './record-applier.js';
import { readState, removeState } from './state.js';

export type { ProcessorAnalysis, ProcessorOptions } from './record-applier.js';

export const PROCESSOR_GROUP = 'processor';

export class Processor extends RecordApplier {
  /**
   * Joins the processor consumer group. Partitions arrive through the rebalance listener: each assigned
   * partition is read from the greater of storage's covered position and the group's committed offset (the
   * lower of that and the detector state's position while the engine catches up), in its own loop.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const analysis = this.opts.analysis;
    if (analysis && analysis.migrateLegacyState !== false) await this.migrateSingleState(analysis);
    this.member = await this.bus.join(PROCESSOR_GROUP, {
      onAssigned: (partitions, member) => {
        this.member = member;
        return this.assign(partitions);
      },
      onRevoked: (partitions, lost) => this.revoke(partitions, lost),
    });
    this.checkpointTimer = setInterval(() => void this.checkpoint(), this.opts.checkpointIntervalMs);
    if (analysis) {
      void this.caughtUp.then(() => {
        if (!this.running) return;
        this.live = true;
        analysis.onCaughtUp?.();
      });
      this.tickTimer = setInterval(() => {
        if (this.gate) return;
        void this.tick(analysis);
      }, analysis.tickMs ?? 1000);
      this.tickTimer.unref?.();
    }
  }

  private async tick(analysis: ProcessorAnalysis): Promise<void> {
    try {
      analysis.engine.tick(Date.now(), this.live);
      await this.appendDerived();
    } catch (err) {
      this.logger.error({ err }, 'detector tick failed');
    }
  }

  /** New partitions: where to resume each, then one consume loop each. */
  private async assign(partitions: readonly number[]): Promise<void> {
    const member = this.member!;
    const covered = this.storage.coveredPositions();
    const targets: number[] = [];
    for (const p of partitions) {
      this.ownership.set(p, ++this.assignments);
      const start = await member.startOffset(p);
      const storageFrom = Math.max(covered.get(p) ?? 0, await member.committed(p), start);
      let from = storageFrom;
      const saved = await this.restorePartition(p);
      if (saved !== undefined) {
        const engineFrom = saved;
        if (engineFrom < start)
          this.logger.warn(
            { partition: p, engineFrom, busStart: start },
            'detector state is older than the bus retains; detectors miss the records in between',
          );
        from = Math.min(storageFrom, Math.max(engineFrom, start));
        this.analysisFrom.set(p, Math.max(engineFrom, start));
      } else {
        this.analysisFrom.set(p, from);
      }
      this.positions.set(p, from);
      targets.push(await member.endOffset(p));
    }
    const replay = partitions.reduce((n, p, i) => n + targets[i]! - this.positions.get(p)!, 0);
    this.logger.info(
      { partitions, records: replay },
      'processor assigned partitions; replaying from checkpoint',
    );
    const first = !this.firstAssignment;
    this.firstAssignment = true;
    let pending = partitions.length;
    if (pending === 0 && first) this.caughtUpResolve?.();
    partitions.forEach((p, i) => {
      const abort = new AbortController();
      const loop = this.consume(p, targets[i]!, abort.signal, () => {
        if (--pending === 0 && first) this.caughtUpResolve?.();
      });
      this.loops.set(p, { abort, done: loop });
    });
  }

  /**
   * Partitions leaving this processor: their loops stop after the record in hand, then (unless they were
   * already taken away) a checkpoint makes what was read durable and commits it, so the next owner resumes
   * exactly there.
   */
  private async revoke(partitions: readonly number[], lost: boolean): Promise<void> {
    const stopping = partitions.map((p) => this.loops.get(p)).filter((l) => l !== undefined);
    for (const l of stopping) l.abort.abort();
    await Promise.all(stopping.map((l) => l.done));
    // The forced checkpoint flushes alert changes (persistAlerts), saves the state of every owned partition
    // (these included) with its offset, then commits: the next owner loads exactly what was applied here.
    if (!lost) await this.checkpoint(true);
    const engine = this.opts.analysis?.engine;
    if (engine) {
      // Not while a checkpoint encodes the engine; the state of these partitions lives on with their new owner
      // (lost: the new owner restores the last saved state and replays from the committed offset).
      while (this.gate) await this.gate;
      engine.dropPartitions(new Set(partitions), this.partitionOf);
    }
    for (const p of partitions) {
      this.loops.delete(p);
      this.positions.delete(p);
      this.analysisFrom.delete(p);
      this.statePositions.delete(p);
      this.ownership.delete(p);
    }
    this.logger.info({ partitions, lost }, 'processor released partitions');
  }

  /**
   * The member was fenced: its partitions are already owned elsewhere, though the bus revokes them only when
   * the member rejoins (after its next heartbeat, or after a slow revoke). Until then this processor must not
   * treat them as its own: no more records analysed, no state saved, no alert changes flushed for them (the
   * new owner continues their alerts). They are released at once as lost; the revoke that follows finds
   * nothing left of them.
   */
  private async releaseFenced(): Promise<void> {
    const partitions = [...this.ownership.keys()].sort((a, b) => a - b);
    if (partitions.length > 0) await this.revoke(partitions, true);
  }

  /**
   * Loads partition `p`'s saved detector state into the engine (merged with the partitions it holds); returns
   * the offset it covers, or undefined without one (the engine then starts the partition afresh).
   */
  private async restorePartition(p: number): Promise<number | undefined> {
    const analysis = this.opts.analysis;
    const store = this.stateStore;
    if (!analysis || !store) return undefined;
    try {
      const saved = await store.load(PROCESSOR_GROUP, p);
      if (!saved) return undefined;
      // Not in the middle of a checkpoint's encoding of the engine.
      while (this.gate) await this.gate;
      const restored = analysis.engine.restorePartition(saved.state);
      this.statePositions.set(p, saved.offset);
      this.logger.info(
        { partition: p, offset: saved.offset, savedAtMs: saved.savedAtMs, ...restored },
        'detector state of partition restored',
      );
      return saved.offset;
    } catch (err) {
      this.logger.error(
        { err, partition: p },
        'cannot restore the detector state of a partition; its detectors start afresh from the storage checkpoint',
      );
      return undefined;
    }
  }

  /**
   * Earlier builds kept one state file for every partition (`state.bin`, or `state.json`): restored once,
   * written out as per-partition states, then removed. A crash in between repeats this harmlessly (the store
   * refuses to move a partition's offset backwards).
   */
  private async migrateSingleState(analysis: ProcessorAnalysis): Promise<void> {
    try {
      const state = readState(analysis.stateDir);
      if (!state) return;
      const restored = state.restoreInto(analysis.engine);
      const offsets = new Map(state.positions);
      const parts = new Set(offsets.keys());
      const encoded = analysis.engine.snapshotPartitions(parts, this.partitionOf);
      analysis.engine.dropPartitions(parts, this.partitionOf);
      for (const [p, bytes] of encoded)
        await this.stateStore!.save(PROCESSOR_GROUP, p, offsets.get(p)!, bytes, state.savedAtMs);
      removeState(analysis.stateDir);
      this.logger.info(
        { savedAtMs: state.savedAtMs, format: state.version, partitions: parts.size, ...restored },
        'single detector state file migrated to per-partition states',
      );
    } catch (err) {
      this.logger.error(
        { err, dir: analysis.stateDir },
        'cannot migrate the detector state; detectors start afresh from the storage checkpoint',
      );
    }
  }

  private closeGate(): void {
    this.gate = new Promise<void>((resolve) => {
      this.releaseGate = resolve;
    });
  }

  private openGate(): void {
    const release = this.releaseGate;
    this.gate = undefined;
    this.releaseGate = undefined;
    release?.();
  }

  /** Leaves the group (a final checkpoint covers what was read) and stops consuming. */
  async stop(): Promise<void> {
    if (!this.running) return;
    clearInterval(this.checkpointTimer);
    clearInterval(this.tickTimer);
    // Leaving the group revokes every partition: loops stop, and the revoke's checkpoint commits what was read.
    await this.member?.leave();
    this.running = false;
    await Promise.all([...this.loops.values()].map((l) => l.done));
    await this.checkpointing;
  }

  /**
   * Persists job metadata, the detector state (when due, or `force`), then storage, and commits the bus
   * positions both cover. The detector state goes first: a crash in between leaves it ahead of storage, which
   * the restart handles (storage replays, the engine skips what it has seen).
   */
  checkpoint(force = false): Promise<void> {
    // A forced checkpoint (revoke, stop) must cover what was read up to now, not the snapshot of one in flight.
    if (this.checkpointing)
      return force ? this.checkpointing.then(() => this.checkpoint(true)) : this.checkpointing;
    this.checkpointing = (async () => {
      try {
        const positions = new Map(this.positions);
        const owners = new Map(this.ownership);
        await this.jobs.flush();
        const analysis = this.opts.analysis;
        // A partition without saved state (newly assigned, nothing to load) is not committed until it has one.
        let unsaved = false;
        for (const p of positions.keys()) if (!this.statePositions.has(p)) unsaved = true;
        if (
          analysis &&
          positions.size > 0 &&
          (force || unsaved || Date.now() - this.lastStateSaveMs >= analysis.stateIntervalMs) &&
          (await analysis.persistAlerts?.()) !== false
        ) {
          // Only records the engine has seen count: during a replay it may be behind the read position.
          // Only partitions still owned as when this checkpoint began: one revoked while it waited above (on
          // PostgreSQL, say) has had its series dropped from the engine (a lost revoke does not wait for this
          // checkpoint), and its empty state saved under its offset would replace what its new owner restores.
          // From the gate's closing below nothing is dropped or restored until the state is encoded.
          const enginePositions = new Map<number, number>();
          for (const [p, offset] of positions)
            if (this.ownership.get(p) === owners.get(p))
              enginePositions.set(p, Math.max(offset, this.analysisFrom.get(p) ?? 0));
          // The engine must not change while its state is written in slices: records wait (they are safe in
          // the bus), HTTP and everything else keep being served between slices.
          const encoded = new Map<number, Uint8Array>();
          this.closeGate();
          try {
            for (const _ of analysis.engine.encodePartitions(
              new Set(enginePositions.keys()),
              this.partitionOf,
              encoded,
            ))
              await new Promise<void>((resolve) => setImmediate(resolve));
          } finally {
            this.openGate();
          }
          // The bytes are a copy: the engine moves on while they are written.
          const savedAtMs = Date.now();
          await Promise.all(
            [...encoded].map(async ([p, bytes]) => {
              const offset = enginePositions.get(p)!;
              if (await this.stateStore!.save(PROCESSOR_GROUP, p, offset, bytes, savedAtMs)) {
                // Revoked (or revoked and assigned again) meanwhile: the entry would outlive that ownership.
                if (this.ownership.get(p) === owners.get(p)) this.statePositions.set(p, offset);
              } else
                this.logger.warn(
                  { partition: p, offset },
                  'a newer detector state of the partition is stored; it was rebalanced away',
                );
            }),
          );
          this.lastStateSaveMs = Date.now();
          this.metrics.stateSaves.inc();
        }
        await this.storage.checkpoint(positions);
        // Storage now holds everything read before `positions`. A storage that records positions (the embedded
        // TSDB) says so itself; a remote one is durable once it acknowledged and keeps none.
        const covered = this.storage.coveredPositions();
        const member = this.member;
        let fenced = false;
        for (const [p, read] of positions) {
          const storageOffset = Math.min(covered.get(p) ?? read, read);
          let offset = storageOffset;
          if (analysis) {
            const stateOffset = this.statePositions.get(p);
            if (stateOffset === undefined) continue;
            offset = Math.min(storageOffset, stateOffset);
          }
          if (!member?.assignment.has(p)) continue;
          try {
            await member.commit(p, offset);
          } catch (err) {
            // Refused for a partition the member still lists as its own: the group moved on without this
            // member (fenced: its session or rebalance timed out), and every partition it holds is already
            // another processor's, which continues from the last saved state and commit.
            if (member.assignment.has(p) && (err as TrainwatchError).kind?.code === Errors.conflict.code) {
              this.logger.warn({ err, partition: p }, 'commit refused: this processor was fenced');
              fenced = true;
              break;
            }
            // Taken away by a rebalance meanwhile: the new owner resumes from the last commit and replays.
            this.logger.warn({ err, partition: p }, 'commit refused; partition was rebalanced away');
          }
        }
        if (fenced) await this.releaseFenced();
      } catch (err) {
        this.logger.error({ err }, 'processor checkpoint failed; will retry at the next interval');
      } finally {
        this.checkpointing = undefined;
      }
    })();
    return this.checkpointing;
  }

  private async consume(
    partition: number,
    replayTarget: number,
    signal: AbortSignal,
    onCaughtUp: () => void,
  ): Promise<void> {
    let caughtUp = false;
    const member = this.member!;
    // Half a megabyte per read: enough records to amortize the read, and no multi-megabyte buffer per read
    // (each read allocates its chunk; under backlog 4 MB reads kept tens of megabytes of garbage around).
    const readBytes = this.opts.readBytes ?? 512 << 10;
    while (this.running && !signal.aborted) {
      const from = this.positions.get(partition)!;
      if (!caughtUp && from >= replayTarget) {
        caughtUp = true;
        onCaughtUp();
      }
      let entries: BusEntry[];
      try {
        entries = await member.read(partition, from, readBytes, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.logger.error({ err, partition }, 'bus read failed; retrying');
        await sleep(500);
        continue;
      }
      if (entries.length === 0) {
        await member.waitFor(partition, from, 200, signal);
        continue;
      }
      while (this.gate) await this.gate;
      // Every record read is applied whole, even after an abort: positions never stop inside a batch's
      // records out of order, and the revoke's checkpoint covers exactly what was applied.
      for (const entry of entries) {
        // Not applied: stopping while storage was unavailable. The record is read again at the next start.
        if (!(await this.apply(entry.record, partition, entry.offset))) break;
        this.positions.set(partition, entry.offset + 1);
      }
      // Yield between batches so HTTP requests are served during a long replay.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!caughtUp) onCaughtUp();
  }
}
