/**
 * The runs table's rows as `GET /api/tw/v1/runs` sends them, written once: the query stage
 * (src/query/runs.ts) produces them and the dashboard (src/ui/lib/runs.ts) can read the same types.
 * Types only, free of Node imports, so that both the server's and the dashboard's tsconfig compile this file.
 */

/** A gauge as JSON: a non-finite newest value (a diverged loss) is "NaN", as Prometheus writes it. */
export interface JsonGauge {
  readonly last: number | 'NaN';
  readonly lastMs: number;
  readonly best: number | null;
}

/** One run: a job's fields, its hyperparameters (`config`) and its summary metrics. */
export interface JsonRun {
  readonly jobId: string;
  readonly name: string;
  readonly project: string;
  readonly owner: string;
  readonly framework: string;
  readonly status: string;
  readonly worldSize: number | null;
  readonly startMs: number | null;
  readonly endMs: number | null;
  readonly lastSampleMs: number | null;
  readonly tags: readonly string[];
  readonly config: Readonly<Record<string, unknown>>;
  readonly summary: Readonly<Record<string, JsonGauge>>;
  readonly gpuHours: number | null;
}
