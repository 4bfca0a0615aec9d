/**
 * What the dashboard asks the query API for: the parameters of its series, heatmap, spread and curves
 * requests (src/ui/api.ts sends them). DOM-free, so that pure modules and their tests can name them.
 */

export interface SeriesQuery {
  /** One metric name, or several fetched together. */
  readonly metric: string | readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly start: number;
  readonly end: number;
  readonly points?: number;
}

export interface HeatmapQuery {
  readonly metric: string;
  readonly start: number;
  readonly end: number;
  readonly by: readonly string[];
  readonly keep?: readonly string[];
  readonly cols?: number;
  readonly step?: number;
  readonly lo?: number;
  readonly hi?: number;
  readonly idleBelow?: number;
  readonly tenant?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Only the series of jobs matching these (`job.status`, `job.search`, … of the fleet's filters). */
  readonly jobs?: {
    readonly status?: string;
    readonly search?: string;
    readonly project?: string;
    readonly owner?: string;
    readonly tag?: string;
    readonly ids?: string;
  };
  /** Rows of jobs grouped by project or owner when more than `maxRows` jobs have data. */
  readonly groupBy?: 'project' | 'owner';
  readonly maxRows?: number;
}

export interface SpreadQuery {
  readonly metric: string;
  readonly start: number;
  readonly end: number;
  readonly cols?: number;
  readonly step?: number;
  readonly labels?: Readonly<Record<string, string>>;
  /** Also score the series (ranks) on their recent level: the straggler, from the same pass. */
  readonly stragglers?: boolean;
}

export interface CurvesQuery {
  readonly start?: number;
  readonly end?: number;
  readonly points?: number;
  readonly metrics?: readonly string[];
}
