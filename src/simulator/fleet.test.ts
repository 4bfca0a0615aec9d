import { describe, expect, it } from 'vitest';
import { defaultFleetOptions, FleetSimulator, INCIDENT_TYPES } from './fleet.js';

const START = Date.UTC(2026, 0, 1);

function simulate(seed: number, ticks: number) {
  const sim = new FleetSimulator({ ...defaultFleetOptions, seed, startMs: START, incidentDelayMs: 60_000 });
  const rows: number[] = [];
  for (let i = 0; i < ticks; i++) {
    sim.tick();
    for (const node of sim.activeNodes())
      for (let s = 0; s < node.series.length; s++) if (node.present[s]) rows.push(node.values[s]!);
  }
  return { sim, rows };
}

function sampleValues(
  sim: FleetSimulator,
  jobId: string,
  name: string,
  match: Record<string, string> = {},
): number[] {
  const out: number[] = [];
  for (const node of sim.activeNodes()) {
    if (node.job.id !== jobId) continue;
    node.series.forEach((labels, s) => {
      if (
        labels.__name__ === name &&
        node.present[s] &&
        Object.entries(match).every(([k, v]) => labels[k] === v)
      )
        out.push(node.values[s]!);
    });
  }
  return out;
}

describe('fleet simulator', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const a = simulate(7, 120);
    const b = simulate(7, 120);
    expect(a.rows).toEqual(b.rows);
    expect(a.sim.jobs.map((j) => j.id)).toEqual(b.sim.jobs.map((j) => j.id));
    expect(simulate(8, 120).rows).not.toEqual(a.rows);
  });

  it('injects every incident type once, each in its own job, with ground truth', () => {
    const { sim } = simulate(1, 200);
    expect(sim.incidents.map((i) => i.type).sort()).toEqual([...INCIDENT_TYPES].sort());
    expect(new Set(sim.incidents.map((i) => i.jobId)).size).toBe(INCIDENT_TYPES.length);
    const straggler = sim.incidents.find((i) => i.type === 'straggler')!;
    expect(straggler.nodeId).toMatch(/-node-\d+$/);
    expect(straggler.rank).toBeTypeOf('number');
  });

  it('produces the signature of each incident once it starts', () => {
    const sim = new FleetSimulator({
      ...defaultFleetOptions,
      seed: 3,
      startMs: START,
      incidentDelayMs: 60_000,
    });
    for (let i = 0; i < 60 + 200; i++) sim.tick();
    const find = (type: string) => sim.incidents.find((i) => i.type === type)!;

    const straggler = find('straggler');
    const stepTimes = sampleValues(sim, straggler.jobId, 'train_step_duration_seconds');
    const slow = sampleValues(sim, straggler.jobId, 'train_step_duration_seconds', {
      rank: String(straggler.rank),
    })[0]!;
    const others = stepTimes.filter((v) => v !== slow);
    expect(slow / (others.reduce((a, b) => a + b, 0) / others.length)).toBeGreaterThan(1.2);

    const hang = find('hang');
    const utils = sampleValues(sim, hang.jobId, 'gpu_utilization_ratio');
    expect(utils.filter((u) => u === 0).length).toBeGreaterThan(0);
    expect(utils.filter((u) => u === 1).length).toBeGreaterThan(0);
    const step1 = sampleValues(sim, hang.jobId, 'train_step')[0];
    sim.tick();
    expect(sampleValues(sim, hang.jobId, 'train_step')[0]).toBe(step1);

    const idle = find('idle_gpus');
    expect(
      sampleValues(sim, idle.jobId, 'gpu_utilization_ratio', {
        gpu: String(idle.gpu),
        node_id: idle.nodeId!,
      }),
    ).toEqual([0]);

    const thermal = find('thermal_throttling');
    const temp = sampleValues(sim, thermal.jobId, 'gpu_temperature_celsius', {
      gpu: String(thermal.gpu),
      node_id: thermal.nodeId!,
    })[0]!;
    expect(temp).toBeGreaterThan(85);
    expect(
      sampleValues(sim, thermal.jobId, 'gpu_sm_clock_hertz', {
        gpu: String(thermal.gpu),
        node_id: thermal.nodeId!,
      })[0],
    ).toBeLessThan(1.5e9);
  });

  it('turns a diverging loss into NaN and fails the job later', () => {
    const sim = new FleetSimulator({
      ...defaultFleetOptions,
      seed: 5,
      startMs: START,
      incidentDelayMs: 30_000,
    });
    const div = () => sim.incidents.find((i) => i.type === 'divergence');
    let sawNaN = false;
    let failed = false;
    for (let i = 0; i < 30 + 700 && !failed; i++) {
      sim.tick();
      const inc = div();
      if (!inc) continue;
      if (sampleValues(sim, inc.jobId, 'train_loss').some(Number.isNaN)) sawNaN = true;
      for (const node of sim.activeNodes())
        if (node.events.some((e) => e.kind === 'finish' && e.jobId === inc.jobId && e.status === 'failed'))
          failed = true;
    }
    expect(sawNaN).toBe(true);
    expect(failed).toBe(true);
  });

  it('announces jobs with metadata before they run', () => {
    const sim = new FleetSimulator({ ...defaultFleetOptions, seed: 1, startMs: START });
    const first = sim.jobs[0]!.nodes[0]!.events[0]!;
    expect(first).toMatchObject({
      kind: 'update',
      status: 'queued',
      worldSize: defaultFleetOptions.nodesPerJob * defaultFleetOptions.gpusPerNode,
    });
    expect(first.config).toHaveProperty('learning_rate');
  });

  it('reports each running node up as its agent would: up{job="trainwatch_agent", instance=node, node_id=node} 1', () => {
    const { sim } = simulate(3, 30);
    const nodes = sim.activeNodes().filter((n) => n.job.phase === 'running');
    expect(nodes.length).toBeGreaterThan(0);
    for (const node of nodes) {
      const ups = node.series.flatMap((labels, s) =>
        labels.__name__ === 'up' ? [[labels, s] as const] : [],
      );
      expect(ups).toHaveLength(1);
      const [labels, s] = ups[0]!;
      expect(labels).toEqual({
        __name__: 'up',
        job: 'trainwatch_agent',
        instance: node.nodeId,
        node_id: node.nodeId,
        cluster: defaultFleetOptions.cluster,
      });
      expect(node.present[s]).toBe(1);
      expect(node.values[s]).toBe(1);
    }
  });

  it('sends the GPU health series the agent reads: ECC and XID counters at zero, PCIe and NVLink throughput that stops with a hang', () => {
    const sim = new FleetSimulator({
      ...defaultFleetOptions,
      seed: 3,
      startMs: START,
      incidentDelayMs: 60_000,
    });
    for (let i = 0; i < 60 + 30; i++) sim.tick();
    const hang = sim.incidents.find((i) => i.type === 'hang')!;
    const healthy = sim.jobs.find((j) => j.phase === 'running' && j.id !== hang.jobId && !j.incident)!;
    const gpus = healthy.worldSize;
    for (const type of ['corrected', 'uncorrected'])
      expect(sampleValues(sim, healthy.id, 'gpu_ecc_errors_total', { type })).toEqual(Array(gpus).fill(0));
    expect(sampleValues(sim, healthy.id, 'gpu_xid_errors_total')).toEqual(Array(gpus).fill(0));
    const pcie = sampleValues(sim, healthy.id, 'gpu_pcie_receive_bytes_per_second');
    expect(pcie).toHaveLength(gpus);
    for (const v of pcie) expect(v).toBeGreaterThan(1e9);
    for (const v of sampleValues(sim, healthy.id, 'gpu_nvlink_transmit_bytes_per_second'))
      expect(v).toBeGreaterThan(50e9);
    // A hung collective moves nothing over either link.
    expect(sampleValues(sim, hang.jobId, 'gpu_nvlink_receive_bytes_per_second').every((v) => v === 0)).toBe(
      true,
    );
    expect(sampleValues(sim, hang.jobId, 'gpu_pcie_receive_bytes_per_second').every((v) => v === 0)).toBe(
      true,
    );
    // Every GPU series names its GPU; the ECC counters their type.
    const node = sim.activeNodes()[0]!;
    for (const l of node.series.filter((x) => x.__name__ === 'gpu_ecc_errors_total'))
      expect(['corrected', 'uncorrected']).toContain(l.type);
  });
});
