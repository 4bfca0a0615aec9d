/**
 * The Kubernetes manifests in deploy/kubernetes (docs/deploy-kubernetes.md):
 *
 * 1. scripts/validate-manifests.sh validates them with kubeconform against Kubernetes' own API schemas and the
 *    KEDA / Prometheus Operator CRDs, strictly (unknown fields, bad quantities, kinds without a schema fail),
 *    the files one by one and every kustomization as `kustomize build` renders it. A copy with deliberate
 *    mistakes must FAIL, each mistake reported, so this test cannot pass because nothing was checked.
 *    Needs Go once (the script builds the validator and the schemas into $TRAINWATCH_TOOLS_HOME, by default
 *    ~/.cache/trainwatch/tools); without `go` the part is skipped with the install hint, under CI=true it fails.
 * 2. What no schema knows: the manifests agree with trainwatch itself (roles, port, probes, consumer group,
 *    topic, partitions versus the autoscalers' maximum, configuration keys). Runs everywhere.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { configSchema, ROLE_NAMES } from '../../src/config/schema.js';
import { PROCESSOR_GROUP } from '../../src/processor/processor.js';
import { REPO_ROOT, tempDir } from '../support/helpers.js';

const ROOT = REPO_ROOT;
const DEPLOY = path.join(ROOT, 'deploy/kubernetes');
const SCRIPT = path.join(ROOT, 'scripts/validate-manifests.sh');
const INSTALL =
  'install Go >= 1.26 (https://go.dev/dl/; an older Go >= 1.21 fetches the newer toolchain itself unless GOTOOLCHAIN=local), then run scripts/validate-manifests.sh';

const haveGo = spawnSync('sh', ['-c', 'command -v go']).status === 0;
if (!haveGo && process.env.CI === 'true') {
  throw new Error(`Go is required under CI to validate the Kubernetes manifests: ${INSTALL}`);
}
if (!haveGo) console.warn(`skipping the Kubernetes manifest validation: ${INSTALL}`);

function validate(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('bash', [SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20 });
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
type Manifest = Record<string, any>;

function load(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(path.join(DEPLOY, file), 'utf8'))
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
}

function find(docs: Manifest[], kind: string, name: string): Manifest {
  const m = docs.find((d) => d.kind === kind && d.metadata?.name === name);
  if (!m) throw new Error(`no ${kind} ${name}`);
  return m;
}

describe.skipIf(!haveGo)('scripts/validate-manifests.sh (kubeconform, offline schemas)', () => {
  let broken: string;

  beforeAll(() => {
    // First run: builds kubeconform and kustomize and generates the schemas (minutes); then seconds.
    const r = validate('--install-only');
    expect(r.status, r.output).toBe(0);
  }, 15 * 60_000);

  afterAll(() => {
    if (broken) rmSync(broken, { recursive: true, force: true });
  });

  it('finds every manifest and every kustomization valid', () => {
    const r = validate();
    expect(r.status, r.output).toBe(0);
    // The files one by one, then each kustomization rendered: base, default (KEDA), monitoring, processor-hpa.
    expect(r.output).toMatch(
      /Summary: \d+ resources found in \d+ files - Valid: \d+, Invalid: 0, Errors: 0, Skipped: 0/,
    );
    const rendered = [
      ...r.output.matchAll(
        /Summary: (\d+) resources? found parsing stdin - Valid: (\d+), Invalid: 0, Errors: 0, Skipped: 0/g,
      ),
    ];
    expect(rendered.length).toBe(4);
    for (const m of rendered) expect(Number(m[2])).toBe(Number(m[1]));
    expect(r.output).toContain('all manifests valid');
  });

  it('fails on a misspelt field, a bad quantity, an unknown CRD field, a kind without a schema and a broken kustomization', () => {
    broken = tempDir('tw-k8s-');
    cpSync(DEPLOY, broken, { recursive: true });
    const edit = (file: string, from: string | RegExp, to: string) => {
      const p = path.join(broken, file);
      const before = readFileSync(p, 'utf8');
      const after = before.replace(from, to);
      expect(after, `${file}: ${from} not found`).not.toBe(before);
      writeFileSync(p, after);
    };
    edit('base/collector.yaml', 'readOnlyRootFilesystem: true', 'readOnlyRootFileSystem: true');
    edit('base/query.yaml', 'memory: 4Gi', 'memory: 4GB');
    edit('processor-scaledobject.yaml', 'maxReplicaCount:', 'maxReplicasCount:');
    edit('overlays/processor-hpa/kustomization.yaml', /^resources:/m, 'resourcez:');
    writeFileSync(
      path.join(broken, 'widget.yaml'),
      'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: trainwatch}\n',
    );

    const r = validate(broken);
    expect(r.status, r.output).toBe(1);
    expect(r.output).toMatch(/additional properties 'readOnlyRootFileSystem' not allowed/);
    expect(r.output).toMatch(/limits\/memory.*'4GB' does not match pattern/);
    expect(r.output).toMatch(/additional properties 'maxReplicasCount' not allowed/);
    expect(r.output).toMatch(/could not find schema for Widget/);
    expect(r.output).toMatch(/unknown field "resourcez"/);
    expect(r.output).toContain('FAILED');
  });
});

describe('deploy/kubernetes agrees with trainwatch', () => {
  const base = [
    'base/namespace.yaml',
    'base/configmap.yaml',
    'base/collector.yaml',
    'base/processor.yaml',
    'base/query.yaml',
  ].flatMap(load);
  const scaledObject = find(load('processor-scaledobject.yaml'), 'ScaledObject', 'trainwatch-processor');
  const lagHpa = find(
    load('overlays/processor-hpa/processor-hpa.yaml'),
    'HorizontalPodAutoscaler',
    'trainwatch-processor',
  );
  const config = parse(find(base, 'ConfigMap', 'trainwatch-config').data['trainwatch.yaml']);
  const workloads = {
    collector: find(base, 'Deployment', 'trainwatch-collector'),
    processor: find(base, 'StatefulSet', 'trainwatch-processor'),
    query: find(base, 'Deployment', 'trainwatch-query'),
  };

  it('configures the scaled-out engines with keys the configuration schema has or is adding', () => {
    expect(config.bus.kind).toBe('kafka');
    expect(config.storage.kind).toBe('remote');
    expect(config.meta.kind).toBe('postgres');
    expect(config.meta.postgres.url_file).toMatch(/^\/var\/run\/secrets\/trainwatch\//);
    // Every other key must be one trainwatch knows today; the keys being added (bus.kind, bus.kafka,
    // storage.kind, storage.remote, meta) may be unknown until they land, and nothing else may be.
    const pending: Record<string, string[]> = {
      '': ['meta'],
      bus: ['kind', 'kafka'],
      storage: ['kind', 'remote'],
    };
    const r = configSchema.safeParse(config);
    for (const issue of r.success ? [] : r.error.issues) {
      expect(issue.code, JSON.stringify(issue)).toBe('unrecognized_keys');
      const keys = (issue as { keys: string[] }).keys;
      for (const k of keys)
        expect(pending[issue.path.join('.')] ?? [], `unknown key ${[...issue.path, k].join('.')}`).toContain(
          k,
        );
    }
  });

  it('runs each role on port 9470 with /readyz, /healthz, resources and a locked-down container', () => {
    const roles: Record<string, string> = {
      collector: 'collector',
      processor: 'processor',
      query: 'query,ui',
    };
    for (const [name, w] of Object.entries(workloads)) {
      const pod = w.spec.template.spec;
      const [c] = pod.containers;
      const args: string[] = c.args;
      expect(args.slice(0, 3), name).toEqual(['start', '--config', '/etc/trainwatch/trainwatch.yaml']);
      const list = args[args.indexOf('--roles') + 1]!;
      expect(list, name).toBe(roles[name]);
      for (const r of list.split(',')) expect(ROLE_NAMES).toContain(r);
      expect(c.ports).toContainEqual({ name: 'http', containerPort: 9470, protocol: 'TCP' });
      expect(c.readinessProbe.httpGet, name).toEqual({ path: '/readyz', port: 'http' });
      expect(c.livenessProbe.httpGet, name).toEqual({ path: '/healthz', port: 'http' });
      expect(Object.keys(c.resources.requests).sort(), name).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources.limits).sort(), name).toEqual(['cpu', 'memory']);
      expect(pod.securityContext.runAsNonRoot, name).toBe(true);
      expect(c.securityContext, name).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      // data_dir and /tmp are writable volumes (the root filesystem is not); secrets are files.
      const mounts = c.volumeMounts.map((m: Manifest) => m.mountPath);
      expect(mounts, name).toEqual(
        expect.arrayContaining([config.data_dir, '/tmp', '/var/run/secrets/trainwatch', '/etc/trainwatch']),
      );
      // An autoscaler owns the replica count: a re-apply must not reset it.
      expect(w.spec.replicas, name).toBeUndefined();
    }
    // Long enough to checkpoint and hand the partitions over.
    expect(workloads.processor.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(120);
  });

  it('scales processors on the consumer group lag, never beyond the partition count', () => {
    const partitions: number = config.bus.partitions;
    expect(scaledObject.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      name: 'trainwatch-processor',
    });
    expect(scaledObject.spec.maxReplicaCount).toBeLessThanOrEqual(partitions);
    expect(lagHpa.spec.maxReplicas).toBeLessThanOrEqual(partitions);
    const [trigger] = scaledObject.spec.triggers;
    expect(trigger.type).toBe('kafka');
    expect(trigger.metadata).toMatchObject({
      bootstrapServers: config.bus.kafka.brokers.join(','),
      consumerGroup: PROCESSOR_GROUP,
      topic: config.bus.kafka.topic,
      allowIdleConsumers: 'false',
    });
    expect(Number(trigger.metadata.lagThreshold)).toBeGreaterThan(0);
    expect(lagHpa.spec.metrics[0].external.metric.name).toBe('trainwatch_bus_consumer_lag_records');
  });
});
