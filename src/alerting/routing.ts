/**
 * The routing tree, as Alertmanager's: the root route matches every alert; an alert descends into the first
 * child whose matchers all match (and into later ones too when a matching child says `continue`); the
 * deepest matching routes decide the receiver and the grouping. Settings not given are inherited.
 */
import { type LabelMatcher, type LabelSet, matchesAll } from '../model/labels.js';
import { DEFAULT_RECEIVER, ROUTE_DEFAULTS, type RouteConfig } from './config.js';

export interface Route {
  /** Stable id of the route within the tree (`{}` for the root, then the matchers of the path). */
  readonly id: string;
  readonly receiver: string;
  readonly groupBy: readonly string[] | 'all';
  readonly groupWaitMs: number;
  readonly groupIntervalMs: number;
  readonly repeatIntervalMs: number;
  readonly matchers: readonly LabelMatcher[];
  readonly continue: boolean;
  readonly routes: readonly Route[];
}

export function buildRoute(cfg: RouteConfig, parent?: Route, index = 0): Route {
  const groupBy =
    cfg.group_by ??
    (parent ? (parent.groupBy === 'all' ? ['...'] : [...parent.groupBy]) : [...ROUTE_DEFAULTS.group_by]);
  const node: { -readonly [K in keyof Route]: Route[K] } = {
    id: parent ? `${parent.id}/${index}{${cfg.matchers.map(String).join(',')}}` : '{}',
    receiver: cfg.receiver ?? parent?.receiver ?? DEFAULT_RECEIVER,
    groupBy: groupBy.includes('...') ? 'all' : groupBy,
    groupWaitMs: cfg.group_wait ?? parent?.groupWaitMs ?? ROUTE_DEFAULTS.group_wait,
    groupIntervalMs: cfg.group_interval ?? parent?.groupIntervalMs ?? ROUTE_DEFAULTS.group_interval,
    repeatIntervalMs: cfg.repeat_interval ?? parent?.repeatIntervalMs ?? ROUTE_DEFAULTS.repeat_interval,
    matchers: cfg.matchers,
    continue: cfg.continue,
    routes: [],
  };
  node.routes = cfg.routes.map((r, i) => buildRoute(r, node, i));
  return node;
}

/** The routes an alert is sent through (at least the root). */
export function matchRoutes(root: Route, labels: LabelSet): Route[] {
  const walk = (r: Route): Route[] => {
    const out: Route[] = [];
    for (const child of r.routes) {
      if (!matchesAll(labels, child.matchers)) continue;
      out.push(...walk(child));
      if (!child.continue) break;
    }
    return out.length > 0 ? out : [r];
  };
  return walk(root);
}

export function groupLabelsOf(route: Route, labels: LabelSet): LabelSet {
  if (route.groupBy === 'all') return { ...labels };
  const out: Record<string, string> = {};
  for (const name of route.groupBy) if (labels[name] !== undefined) out[name] = labels[name];
  return out;
}

/** Alertmanager's group key shape: `<route id>:{a="1", b="2"}`. */
export function groupKeyOf(route: Route, groupLabels: LabelSet): string {
  const inner = Object.keys(groupLabels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(groupLabels[k])}`)
    .join(', ');
  return `${route.id}:{${inner}}`;
}
