import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../../test/support/helpers.js';
import { type AgentConfig, AgentConfigError, loadAgentConfig } from './config.js';

function yamlFile(body: string): string {
  const file = path.join(tempDir('tw-agent-config-'), 'agent.yaml');
  writeFileSync(file, body);
  return file;
}

/** The error's message, or a failure when the configuration was accepted. */
function problems(sources: Parameters<typeof loadAgentConfig>[0]): string {
  try {
    loadAgentConfig(sources);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentConfigError);
    return (err as Error).message;
  }
  throw new Error('the configuration was accepted');
}

const DEFAULTS: AgentConfig = {
  server: {
    url: undefined,
    token: undefined,
    token_file: undefined,
    request_timeout_ms: 10_000,
    tls: { ca_file: undefined, cert_file: undefined, key_file: undefined, server_name: undefined },
  },
  data_dir: './agent-data',
  node_id: undefined,
  labels: {},
  log: { level: 'info' },
  ship: {
    interval_ms: 1000,
    max_batch_samples: 20_000,
    compression: 'zlib',
    base_delay_ms: 250,
    max_delay_ms: 10_000,
  },
  buffer: { max_bytes: 268_435_456, ttl_ms: 600_000, segment_bytes: 4_194_304, fsync: 'always' },
  gpu: {
    enabled: true,
    nvidia_smi: 'nvidia-smi',
    interval_ms: 1000,
    processes_interval_ms: 5000,
    rediscover_interval_ms: 600_000,
    kernel_log: 'dmesg --follow',
  },
  host: {
    enabled: true,
    interval_ms: 1000,
    root: '/',
    network_exclude: 'lo|veth.*|docker.*|br-.*|cali.*|flannel.*|cni.*|virbr.*',
    disk_exclude: '(loop|ram|zram|sr|fd|dm-)\\d*|(sd[a-z]+|vd[a-z]+|xvd[a-z]+)\\d+|nvme\\d+n\\d+p\\d+',
    filesystems: ['/'],
  },
  scrape: [],
  tensorboard: { dirs: [], interval_ms: 2000 },
  local: { listen: '127.0.0.1:9471', socket: undefined, max_body_bytes: 16_777_216 },
  self_metrics_interval_ms: 10_000,
};

describe('agent configuration', () => {
  it('has a default for every key but the server URL', () => {
    expect(loadAgentConfig({})).toEqual(DEFAULTS);
    expect(loadAgentConfig({ file: yamlFile('# nothing set\n') })).toEqual(DEFAULTS);
  });

  it("accepts docs/agent.md's configuration reference, whose values are the defaults", () => {
    const doc = readFileSync(path.join(REPO_ROOT, 'docs/agent.md'), 'utf8');
    const block = /## Configuration reference\n\n```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(block).toBeDefined();
    const c = loadAgentConfig({ file: yamlFile(block!) });
    // The reference shows one example per list and a server URL; everything else is the default.
    expect(c.server.url).toBe('http://trainwatch:9470');
    expect(c.scrape).toEqual([
      {
        url: 'http://127.0.0.1:9400/metrics',
        name: 'dcgm',
        interval_ms: 15_000,
        timeout_ms: 5000,
        labels: {},
        honor_labels: false,
      },
    ]);
    expect(c.tensorboard.dirs).toEqual([{ path: '/shared/runs', job_id: undefined, labels: {} }]);
    expect({
      ...c,
      server: { ...c.server, url: undefined },
      scrape: [],
      tensorboard: { ...c.tensorboard, dirs: [] },
      local: { ...c.local, socket: undefined },
    }).toEqual(DEFAULTS);
    expect(c.local.socket).toBeNull(); // the reference's `socket: null` turns the socket off
  });

  it('takes defaults ← file ← TRAINWATCH_AGENT_* ← flags, with YAML values in variables', () => {
    const file = yamlFile(
      'server:\n  url: http://from-file:9470\nbuffer:\n  ttl_ms: 60000\n  fsync: never\nlabels: {cluster: eu-1}\n',
    );
    const c = loadAgentConfig({
      file,
      env: {
        TRAINWATCH_AGENT_BUFFER__TTL_MS: '900000',
        TRAINWATCH_AGENT_LOCAL__SOCKET: 'null',
        TRAINWATCH_AGENT_HOST__FILESYSTEMS: '[/, /data]',
        TRAINWATCH_AGENT_SERVER__URL: 'http://from-env:9470',
        TRAINWATCH_JOB_ID: 'not-agent-configuration',
        TRAINWATCH_AGENT_NOT_A_KEY: 'ignored like other programs’ variables',
      },
      flags: { server: { url: 'http://from-flag:9470', token: undefined }, data_dir: undefined },
    });
    expect(c.server.url).toBe('http://from-flag:9470');
    expect(c.buffer).toEqual({ ...DEFAULTS.buffer, ttl_ms: 900_000, fsync: 'never' });
    expect(c.local.socket).toBeNull();
    expect(c.host.filesystems).toEqual(['/', '/data']);
    expect(c.labels).toEqual({ cluster: 'eu-1' });
    expect(c.data_dir).toBe('./agent-data');
  });

  it('names every bad key, its value and where it came from', () => {
    const file = yamlFile(
      [
        'gpu:',
        '  interval_ms: 50',
        '  intervall_ms: 1000',
        'ship:',
        '  compression: lz4',
        'labels:',
        '  9lives: x',
        '  rank: 1',
        'scrape:',
        '  - name: dcgm',
        '  - url: ftp://exporter/metrics',
        'local:',
        '  listen: 9471',
        'bogus: true',
        '',
      ].join('\n'),
    );
    const msg = problems({
      file,
      env: { TRAINWATCH_AGENT_HOST__ENABLED: 'maybe' },
      flags: { log: { level: 'loud' } },
    });
    const from = `[from config file ${file}]`;
    expect(msg.split('\n')).toEqual([
      'invalid configuration:',
      `  - labels.9lives: is not a label name ([a-zA-Z_][a-zA-Z0-9_]*) ${from}`,
      `  - labels.rank: must be a string (quote numbers) (got 1) ${from}`,
      '  - log.level: must be one of trace, debug, info, warn, error, fatal, silent (got "loud") [from command-line flag]',
      `  - ship.compression: must be one of zlib, none (got "lz4") ${from}`,
      `  - gpu.interval_ms: must be an integer from 100 to 60000 (got 50) ${from}`,
      `  - gpu.intervall_ms: unknown key ${from}`,
      '  - host.enabled: must be true or false (got "maybe") [from environment variable TRAINWATCH_AGENT_HOST__ENABLED]',
      `  - scrape.0.url: is required ${from}`,
      `  - scrape.1.url: must be an http:// or https:// URL (got "ftp://exporter/metrics") ${from}`,
      `  - local.listen: must be a string (got 9471) ${from}`,
      `  - bogus: unknown key ${from}`,
    ]);
  });

  it('checks keys against each other once each is valid', () => {
    const msg = problems({
      env: {
        TRAINWATCH_AGENT_BUFFER__MAX_BYTES: '1048576',
        TRAINWATCH_AGENT_BUFFER__SEGMENT_BYTES: '524288',
        TRAINWATCH_AGENT_SHIP__BASE_DELAY_MS: '5000',
        TRAINWATCH_AGENT_SHIP__MAX_DELAY_MS: '1000',
      },
    });
    expect(msg).toContain(
      '  - buffer.segment_bytes: must be at most a quarter of buffer.max_bytes (1048576), so that dropping a segment for space drops little (got 524288) [from environment variable TRAINWATCH_AGENT_BUFFER__SEGMENT_BYTES]',
    );
    expect(msg).toContain(
      '  - ship.base_delay_ms: must not exceed ship.max_delay_ms (1000) (got 5000) [from environment variable TRAINWATCH_AGENT_SHIP__BASE_DELAY_MS]',
    );
  });

  it('checks server.tls: a certificate needs its key, and TLS options need an https:// URL', () => {
    const msg = problems({
      flags: { server: { url: 'http://collector:9470', tls: { cert_file: '/etc/agent.crt' } } },
    });
    expect(msg).toContain('  - server.tls.key_file: is required with server.tls.cert_file');
    expect(msg).toContain('  - server.tls: needs an https:// server.url (got "http://collector:9470")');
    const c = loadAgentConfig({
      flags: {
        server: {
          url: 'https://collector:9470',
          tls: {
            ca_file: '/ca.crt',
            cert_file: '/a.crt',
            key_file: '/a.key',
            server_name: 'collector.internal',
          },
        },
      },
    });
    expect(c.server.tls).toEqual({
      ca_file: '/ca.crt',
      cert_file: '/a.crt',
      key_file: '/a.key',
      server_name: 'collector.internal',
    });
  });

  it('says what is wrong with the file itself', () => {
    expect(problems({ file: '/nonexistent/agent.yaml' })).toMatch(
      /^cannot read config file \/nonexistent\/agent\.yaml: ENOENT/,
    );
    const bad = yamlFile('gpu: [1\n');
    expect(problems({ file: bad })).toMatch(new RegExp(`^config file ${bad} is not valid YAML: `));
    const dup = yamlFile('gpu:\n  enabled: true\n  enabled: false\n');
    expect(problems({ file: dup })).toContain('duplicated mapping key');
    const two = yamlFile('gpu: {}\n---\nhost: {}\n');
    expect(problems({ file: two })).toContain('expected one YAML document, found 2');
    const list = yamlFile('- gpu\n');
    expect(problems({ file: list })).toBe(
      `config file ${list} must contain a mapping of keys to values at the top level`,
    );
  });

  it('treats an empty section as its defaults and rejects a section of the wrong shape', () => {
    expect(loadAgentConfig({ file: yamlFile('gpu:\nhost: {}\n') }).gpu).toEqual(DEFAULTS.gpu);
    expect(problems({ file: yamlFile('gpu: 5\nscrape: {url: x}\n') })).toMatch(
      /gpu: must be a mapping of keys to values \(got 5\)[\s\S]*scrape: must be a list/,
    );
  });
});
