/**
 * `up` for the fleet's agents (issue 17, item 10): a real agent (the same `Agent` as `trainwatch agent`, its
 * GPU and host sources off) shipping to a real server records `up{job="trainwatch_agent", instance=<node>,
 * node_id=<node>}` = 1 while it collects, so `up` in Explore lists it as Prometheus lists its targets.
 */
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, loadAgentConfig, silentLogger } from '../../src/agent/index.js';
import { loadConfig } from '../../src/config/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';

let tw: Trainwatch;
let agent: Agent;
let dir: string;

beforeAll(async () => {
  dir = tempDir('tw-agent-up-');
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: path.join(dir, 'server'),
        processor: { checkpoint_interval_ms: 100 },
        auth: { anonymous_scopes: ['ingest', 'read'] },
      },
    }),
    pino({ level: 'silent' }),
  );
  const address = tw.app.server.address() as { port: number };
  agent = new Agent(
    loadAgentConfig({
      flags: {
        server: { url: `http://127.0.0.1:${address.port}` },
        data_dir: path.join(dir, 'agent'),
        node_id: 'gpu-node-17',
        gpu: { enabled: false },
        host: { enabled: false },
        local: { listen: null, socket: null },
        self_metrics_interval_ms: 1000,
        ship: { interval_ms: 50 },
      },
    }),
    { env: {}, logger: silentLogger },
  );
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  await tw?.stop();
});

describe('up for agents', () => {
  it('is 1 for the running agent, labelled as a Prometheus target', async () => {
    const query = `/api/v1/query?query=${encodeURIComponent('up')}`;
    const result = await waitFor('up from the agent', async () => {
      const res = await tw.app.inject({ method: 'GET', url: query });
      expect(res.statusCode, res.body).toBe(200);
      const r = res.json().data.result as { metric: Record<string, string>; value: [number, string] }[];
      return r.length > 0 ? r : undefined;
    });
    expect(result).toHaveLength(1);
    expect(result[0]!.metric).toEqual({
      __name__: 'up',
      job: 'trainwatch_agent',
      instance: 'gpu-node-17',
      node_id: 'gpu-node-17',
    });
    expect(result[0]!.value[1]).toBe('1');
    // And its metadata answers as Prometheus's `up` does.
    const md = await tw.app.inject({ method: 'GET', url: '/api/v1/metadata?metric=up' });
    expect(md.json().data.up[0].type).toBe('gauge');
  });
});
