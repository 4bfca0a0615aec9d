/**
 * Results of one benchmark run: figures per system, the ratio trainwatch ÷ each reference, and everything
 * needed to reproduce them (date, commit, machine, command, settings). Written as JSON and as a Markdown
 * table to bench/results/<date>-<mode>.{json,md}.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SYSTEM_NAMES, SYSTEM_TITLES, type SystemName } from './systems.js';

export type Better = 'higher' | 'lower' | 'info';

export interface Figure {
  readonly scenario: string;
  readonly name: string;
  readonly unit: string;
  readonly better: Better;
  /** Measured value per system; absent where not measured (see notes). */
  readonly values: Partial<Record<SystemName, number>>;
  /** Per system: why there is no value ("not available: ..."), or a remark on the value. */
  readonly notes: Partial<Record<SystemName, string>>;
}

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly os: string;
  readonly node: string;
  /** 1-minute load average when the run started (other work on the machine skews figures). */
  readonly loadAverageAtStart: number;
}

export function machineInfo(): MachineInfo {
  return {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg()[0]!,
  };
}

export function gitCommit(repo: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: repo,
      encoding: 'utf8',
    });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

export class Results {
  readonly figures: Figure[] = [];
  readonly settings: Record<string, string[]> = {};
  readonly versions: Record<string, string> = {};
  readonly details: Record<string, unknown> = {};
  readonly log: string[] = [];
  /** Paragraphs printed under the header (e.g. the load generator's ceiling). */
  readonly remarks: string[] = [];
  readonly started = new Date();
  /** The machine as the run started (its load average then). */
  readonly machine = machineInfo();

  constructor(
    readonly mode: string,
    readonly command: string,
    readonly repo: string,
  ) {}

  /** Adds or updates a figure; `value` undefined records only the note. */
  set(
    scenario: string,
    name: string,
    unit: string,
    better: Better,
    system: SystemName,
    value: number | undefined,
    note?: string,
  ): void {
    let f = this.figures.find((x) => x.scenario === scenario && x.name === name);
    if (!f) {
      f = { scenario, name, unit, better, values: {}, notes: {} };
      this.figures.push(f);
    }
    if (value !== undefined && Number.isFinite(value)) f.values[system] = value;
    if (note) f.notes[system] = note;
  }

  /** Records that a whole scenario could not run on a system, on each of the given figures. */
  unavailable(scenario: string, figures: [string, string, Better][], system: SystemName, why: string): void {
    for (const [name, unit, better] of figures)
      this.set(scenario, name, unit, better, system, undefined, why);
  }

  ratio(f: Figure, reference: SystemName): number | undefined {
    const tw = f.values.trainwatch;
    const ref = f.values[reference];
    if (f.better === 'info' || tw === undefined || ref === undefined || ref === 0) return undefined;
    return tw / ref;
  }

  toJson(): Record<string, unknown> {
    const git = gitCommit(this.repo);
    return {
      date: this.started.toISOString(),
      finished: new Date().toISOString(),
      mode: this.mode,
      command: this.command,
      commit: git.commit,
      uncommittedChanges: git.dirty,
      machine: { ...this.machine, loadAverageAtEnd: os.loadavg()[0] },
      versions: this.versions,
      figures: this.figures.map((f) => ({
        ...f,
        ratios: {
          trainwatchOverVictoriaMetrics: this.ratio(f, 'victoriametrics') ?? null,
          trainwatchOverPrometheus: this.ratio(f, 'prometheus') ?? null,
        },
      })),
      remarks: this.remarks,
      settings: this.settings,
      details: this.details,
      log: this.log,
    };
  }

  toMarkdown(): string {
    const git = gitCommit(this.repo);
    const m = this.machine;
    const lines: string[] = [];
    lines.push(`# trainwatch benchmark — ${this.mode} run, ${this.started.toISOString()}`);
    lines.push('');
    lines.push(`- Command: \`${this.command}\``);
    lines.push(`- Commit: \`${git.commit}\`${git.dirty ? ' (with uncommitted changes)' : ''}`);
    lines.push(
      `- Machine: ${m.cores} cores (${m.cpuModel}), ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB memory, ${m.os}, Node ${m.node}; 1-minute load average ${m.loadAverageAtStart.toFixed(2)} at the start, ${os.loadavg()[0]!.toFixed(2)} at the end (other work on the machine skews the figures)`,
    );
    lines.push(
      `- Versions: ${Object.entries(this.versions)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const ds = this.details.dataset as
      | { activeSeries?: number; samples?: number; description?: string }
      | undefined;
    if (ds?.description) lines.push(`- Data set: ${ds.description}`);
    lines.push(
      '- Ratios are trainwatch ÷ reference, measured in this run on this machine. “better” says which direction is good: for `higher`, a ratio above 1 means trainwatch is ahead; for `lower`, below 1.',
    );
    for (const r of this.remarks) lines.push(`- ${r}`);
    lines.push('');
    const scenarios = [...new Set(this.figures.map((f) => f.scenario))];
    for (const s of scenarios) {
      lines.push(`## ${s}`);
      lines.push('');
      lines.push(
        `| figure | unit | better | ${SYSTEM_NAMES.map((n) => SYSTEM_TITLES[n]).join(' | ')} | trainwatch ÷ VictoriaMetrics | trainwatch ÷ Prometheus |`,
      );
      lines.push(`|---|---|---|${SYSTEM_NAMES.map(() => '---:').join('|')}|---:|---:|`);
      const notes: string[] = [];
      for (const f of this.figures.filter((x) => x.scenario === s)) {
        const cells = SYSTEM_NAMES.map((n) => {
          const v = f.values[n];
          const note = f.notes[n];
          let cell = v === undefined ? '—' : formatNumber(v);
          if (note) {
            // The same remark on several cells gets one number.
            let i = notes.indexOf(note);
            if (i < 0) i = notes.push(note) - 1;
            cell += ` [${i + 1}]`;
          }
          return cell;
        });
        const r = (ref: SystemName) => {
          const x = this.ratio(f, ref);
          return x === undefined ? '—' : `${x.toFixed(2)}×`;
        };
        lines.push(
          `| ${f.name} | ${f.unit} | ${f.better} | ${cells.join(' | ')} | ${r('victoriametrics')} | ${r('prometheus')} |`,
        );
      }
      if (notes.length) {
        lines.push('');
        notes.forEach((n, i) => {
          lines.push(`${i + 1}. ${n}`);
        });
      }
      lines.push('');
    }
    lines.push('## Settings');
    lines.push('');
    for (const [who, flags] of Object.entries(this.settings)) {
      lines.push(`- **${who}**:`);
      for (const f of flags) lines.push(`  - \`${f.replace(/`/g, "'")}\``);
    }
    lines.push('');
    return lines.join('\n');
  }

  write(dir: string): { json: string; markdown: string } {
    mkdirSync(dir, { recursive: true });
    const stamp = this.started
      .toISOString()
      .replace(/:/g, '-')
      .replace(/\.\d+Z$/, 'Z');
    const base = path.join(dir, `${stamp}-${this.mode}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(this.toJson(), null, 2)}\n`);
    writeFileSync(`${base}.md`, this.toMarkdown());
    return { json: `${base}.json`, markdown: `${base}.md` };
  }
}

/** 1234567 → "1.23 M", 0.00123 → "0.00123", 12.5 → "12.5". */
export function formatNumber(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(2)} G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)} K`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01 || a === 0) return v.toFixed(2);
  return v.toPrecision(3);
}
