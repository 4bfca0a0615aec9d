/**
 * Host metrics from /proc and /sys, under canonical names (DESIGN.md): CPU, memory, load, network, disk,
 * filesystem space and InfiniBand port counters. Counters keep the kernel's cumulative values (`_total`,
 * rate() works on them); CPU utilization is computed between two readings.
 *
 * Files are read synchronously: procfs files are generated in memory by the kernel, a read never waits on a
 * device, and a few small synchronous reads per second cost less than their promise machinery.
 */
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import type { LabelSet } from '../model/labels.js';
import type { AgentLogger } from './log.js';
import type { RecordedSeries, Recorder, RecordMode } from './recorder.js';

export interface HostCollectorOptions {
  /** Where the host's /proc and /sys are: `/`, or `/host` in a container with them mounted there. */
  readonly root: string;
  readonly intervalMs: number;
  readonly shipIntervalMs: number;
  readonly networkExclude: string;
  readonly diskExclude: string;
  readonly filesystems: readonly string[];
  readonly recorder: Recorder;
  readonly labels: Readonly<Record<string, string>>;
  readonly logger: AgentLogger;
}

/** /proc/stat's aggregate line: user nice system idle iowait irq softirq steal (guest is inside user). */
export function parseCpuLine(
  stat: string,
): { busy: number; idle: number; iowait: number; cpus: number } | undefined {
  const nl = stat.indexOf('\n');
  const first = nl < 0 ? stat : stat.slice(0, nl);
  if (!first.startsWith('cpu ')) return undefined;
  const f = first.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return undefined;
  const idle = f[3]!;
  const iowait = f[4] ?? 0;
  let total = 0;
  for (let i = 0; i < Math.min(f.length, 8); i++) total += f[i]!;
  const cpus = (stat.match(/^cpu\d+ /gm) ?? []).length;
  return { busy: total - idle - iowait, idle, iowait, cpus };
}

export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]) * (line.includes('kB') ? 1024 : 1));
  }
  return out;
}

export interface NetDevice {
  readonly device: string;
  readonly rxBytes: number;
  readonly rxPackets: number;
  readonly rxErrors: number;
  readonly rxDrops: number;
  readonly txBytes: number;
  readonly txPackets: number;
  readonly txErrors: number;
  readonly txDrops: number;
}

/** /proc/net/dev: two header lines, then `iface: rx(bytes packets errs drop fifo frame compressed multicast) tx(...)`. */
export function parseNetDev(text: string): NetDevice[] {
  const out: NetDevice[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (f.length < 16) continue;
    out.push({
      device: line.slice(0, colon).trim(),
      rxBytes: f[0]!,
      rxPackets: f[1]!,
      rxErrors: f[2]!,
      rxDrops: f[3]!,
      txBytes: f[8]!,
      txPackets: f[9]!,
      txErrors: f[10]!,
      txDrops: f[11]!,
    });
  }
  return out;
}

export interface DiskDevice {
  readonly device: string;
  readonly readBytes: number;
  readonly writtenBytes: number;
  readonly reads: number;
  readonly writes: number;
  readonly ioSeconds: number;
}

/** /proc/diskstats: major minor name reads merged sectors ms writes merged sectors ms inflight io_ms weighted_ms ... */
export function parseDiskstats(text: string): DiskDevice[] {
  const out: DiskDevice[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 14) continue;
    // Sectors are always 512 bytes in this file, whatever the device's sector size.
    out.push({
      device: f[2]!,
      reads: Number(f[3]),
      readBytes: Number(f[5]) * 512,
      writes: Number(f[7]),
      writtenBytes: Number(f[9]) * 512,
      ioSeconds: Number(f[12]) / 1000,
    });
  }
  return out;
}

export class HostCollector {
  private timer: NodeJS.Timeout | undefined;
  private prevCpu: { busy: number; idle: number; iowait: number } | undefined;
  private readonly series = new Map<string, RecordedSeries>();
  private readonly netExclude: RegExp;
  private readonly diskExclude: RegExp;
  private readonly gaugeMode: RecordMode;
  private readonly counterMode: RecordMode;
  private readonly failed = new Set<string>();

  constructor(private readonly opts: HostCollectorOptions) {
    this.netExclude = new RegExp(`^(?:${opts.networkExclude})$`);
    this.diskExclude = new RegExp(`^(?:${opts.diskExclude})$`);
    const fast = opts.intervalMs < opts.shipIntervalMs;
    this.gaugeMode = fast ? 'mean' : 'raw';
    this.counterMode = fast ? 'last' : 'raw';
  }

  start(): void {
    this.collect();
    this.timer = setInterval(() => this.collect(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One reading of everything; a file that cannot be read is reported once and skipped. */
  collect(now = Date.now()): void {
    const stat = this.read('proc/stat');
    const cpu = stat === undefined ? undefined : parseCpuLine(stat);
    if (cpu) {
      if (this.prevCpu) {
        const dBusy = cpu.busy - this.prevCpu.busy;
        const dIdle = cpu.idle - this.prevCpu.idle;
        const dIowait = cpu.iowait - this.prevCpu.iowait;
        const dTotal = dBusy + dIdle + dIowait;
        if (dTotal > 0) {
          this.gauge('host_cpu_utilization_ratio', undefined, now, dBusy / dTotal);
          this.gauge('host_cpu_iowait_ratio', undefined, now, dIowait / dTotal);
        }
      }
      this.prevCpu = cpu;
      if (cpu.cpus > 0) this.gauge('host_cpu_count', undefined, now, cpu.cpus);
    }
    const meminfo = this.read('proc/meminfo');
    if (meminfo !== undefined) {
      const m = parseMeminfo(meminfo);
      const total = m.get('MemTotal');
      const avail = m.get('MemAvailable');
      if (total !== undefined) this.gauge('host_memory_total_bytes', undefined, now, total);
      if (avail !== undefined) this.gauge('host_memory_available_bytes', undefined, now, avail);
      if (total !== undefined && avail !== undefined)
        this.gauge('host_memory_used_bytes', undefined, now, total - avail);
      const swapTotal = m.get('SwapTotal');
      const swapFree = m.get('SwapFree');
      if (swapTotal !== undefined && swapFree !== undefined)
        this.gauge('host_swap_used_bytes', undefined, now, swapTotal - swapFree);
    }
    const loadavg = this.read('proc/loadavg');
    if (loadavg !== undefined) {
      const [l1, l5, l15] = loadavg.split(' ').map(Number);
      if (Number.isFinite(l1)) this.gauge('host_load1', undefined, now, l1!);
      if (Number.isFinite(l5)) this.gauge('host_load5', undefined, now, l5!);
      if (Number.isFinite(l15)) this.gauge('host_load15', undefined, now, l15!);
    }
    const netdev = this.read('proc/net/dev');
    if (netdev !== undefined) {
      for (const d of parseNetDev(netdev)) {
        if (this.netExclude.test(d.device)) continue;
        const l = { device: d.device };
        this.counter('host_network_receive_bytes_total', l, now, d.rxBytes);
        this.counter('host_network_transmit_bytes_total', l, now, d.txBytes);
        this.counter('host_network_receive_packets_total', l, now, d.rxPackets);
        this.counter('host_network_transmit_packets_total', l, now, d.txPackets);
        this.counter('host_network_receive_errors_total', l, now, d.rxErrors);
        this.counter('host_network_transmit_errors_total', l, now, d.txErrors);
        this.counter('host_network_receive_drops_total', l, now, d.rxDrops);
        this.counter('host_network_transmit_drops_total', l, now, d.txDrops);
      }
    }
    const diskstats = this.read('proc/diskstats');
    if (diskstats !== undefined) {
      for (const d of parseDiskstats(diskstats)) {
        if (this.diskExclude.test(d.device)) continue;
        const l = { device: d.device };
        this.counter('host_disk_read_bytes_total', l, now, d.readBytes);
        this.counter('host_disk_written_bytes_total', l, now, d.writtenBytes);
        this.counter('host_disk_reads_completed_total', l, now, d.reads);
        this.counter('host_disk_writes_completed_total', l, now, d.writes);
        this.counter('host_disk_io_time_seconds_total', l, now, d.ioSeconds);
      }
    }
    for (const mount of this.opts.filesystems) {
      try {
        const s = statfsSync(path.join(this.opts.root, mount));
        const l = { mountpoint: mount };
        this.gauge('host_filesystem_size_bytes', l, now, s.blocks * s.bsize);
        this.gauge('host_filesystem_avail_bytes', l, now, s.bavail * s.bsize);
      } catch (err) {
        this.reportOnce(`statfs ${mount}`, err);
      }
    }
    this.infiniband(now);
  }

  /** /sys/class/infiniband/<dev>/ports/<port>/counters/port_{rcv,xmit}_data count 4-byte words. */
  private infiniband(now: number): void {
    const base = path.join(this.opts.root, 'sys/class/infiniband');
    if (!existsSync(base)) return;
    try {
      for (const dev of readdirSync(base)) {
        const ports = path.join(base, dev, 'ports');
        for (const port of readdirSync(ports)) {
          const counters = path.join(ports, port, 'counters');
          const rx = Number(readFileSync(path.join(counters, 'port_rcv_data'), 'utf8'));
          const tx = Number(readFileSync(path.join(counters, 'port_xmit_data'), 'utf8'));
          const l = { device: dev, port };
          if (Number.isFinite(rx)) this.counter('host_infiniband_receive_bytes_total', l, now, rx * 4);
          if (Number.isFinite(tx)) this.counter('host_infiniband_transmit_bytes_total', l, now, tx * 4);
        }
      }
    } catch (err) {
      this.reportOnce('infiniband', err);
    }
  }

  private read(rel: string): string | undefined {
    try {
      return readFileSync(path.join(this.opts.root, rel), 'utf8');
    } catch (err) {
      this.reportOnce(rel, err);
      return undefined;
    }
  }

  private reportOnce(what: string, err: unknown): void {
    if (this.failed.has(what)) return;
    this.failed.add(what);
    this.opts.logger.warn(
      { what, error: (err as Error).message },
      'cannot read a host metric source; skipping it',
    );
  }

  private gauge(metric: string, extra: Record<string, string> | undefined, t: number, v: number): void {
    this.opts.recorder.record(this.seriesOf(metric, extra, this.gaugeMode), t, v);
  }

  private counter(metric: string, extra: Record<string, string>, t: number, v: number): void {
    this.opts.recorder.record(this.seriesOf(metric, extra, this.counterMode), t, v);
  }

  private seriesOf(
    metric: string,
    extra: Record<string, string> | undefined,
    mode: RecordMode,
  ): RecordedSeries {
    const key = extra === undefined ? metric : `${metric}\u0000${Object.values(extra).join('\u0000')}`;
    let s = this.series.get(key);
    if (!s) {
      const labels: LabelSet = { __name__: metric, ...this.opts.labels, ...extra };
      s = this.opts.recorder.series(labels, mode);
      this.series.set(key, s);
    }
    return s;
  }
}
