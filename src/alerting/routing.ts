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

/** A route an alert is sent through, with the routes it descended through to get there. */
export interface RouteMatch {
  readonly route: Route;
  /** From the root to `route` itself. */
  readonly path: readonly Route[];
}

/**
 * The routes an alert is sent through (at least the root), each with its path from the root: what
 * `amtool config routes test` prints. The dispatcher routes with {@link matchRoutes}, which is this walk, so
 * the route tester and delivery cannot disagree.
 */
export function explainRoutes(root: Route, labels: LabelSet): RouteMatch[] {
  const walk = (r: Route, path: readonly Route[]): RouteMatch[] => {
    const out: RouteMatch[] = [];
    for (const child of r.routes) {
      if (!matchesAll(labels, child.matchers)) continue;
      out.push(...walk(child, [...path, child]));
      if (!child.continue) break;
    }
    return out.length > 0 ? out : [{ route: r, path }];
  };
  return walk(root, [root]);
}

/** The routes an alert is sent through (at least the root). */
export function matchRoutes(root: Route, labels: LabelSet): Route[] {
  return explainRoutes(root, labels).map((m) => m.route);
}

/**
 * The part of the tree a tenant's alerts can reach: a route whose matchers on `tenant` refuse the tenant is
 * left out with everything beneath it (its other matchers could match some alert of the tenant, so they
 * keep it). Every alert carries its tenant label, so routing an alert of `tenant` through this tree takes the
 * same routes as through the whole one.
 */
export function routesOfTenant(root: Route, tenant: string): Route {
  const prune = (r: Route): Route => ({
    ...r,
    routes: r.routes
      .filter((c) => c.matchers.every((m) => m.name !== 'tenant' || m.matches(tenant)))
      .map(prune),
  });
  return prune(root);
}

/** Every receiver named in a tree (the root's first). */
export function receiversOf(root: Route): string[] {
  const out = new Set<string>();
  const walk = (r: Route) => {
    out.add(r.receiver);
    for (const c of r.routes) walk(c);
  };
  walk(root);
  return [...out];
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
