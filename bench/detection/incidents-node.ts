/**
 * Incident kinds of the node and its surroundings: a lost node, input starvation, a slow network, a slow node
 * and a silent job. Minimum delays follow incidents.ts's header.
 *
 * Kind definitions share one shape (name, category, variants, make → effects and truth), so `duplicates` pairs
 * them across incidents-*.ts and clean-*.ts: the repetition is the table's, each entry's numbers are its own.
 */
import { nodeIdOf } from './generator.js';
import { after, drawOnset, pickRank, SLOW, STOP, sec, stragglerMin, truth } from './incident-timing.js';
import type { KindDef } from './kind.js';

export const nodeLost: KindDef = {
  name: 'node_lost',
  category: 'incident',
  summary: 'a node dies: its series stop, the other ranks hang in the collective',
  variants: [
    { name: 'hang_then_fail', splits: ['train', 'heldout'] },
    { name: 'hang_forever', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const node = ctx.rng.int(1, ctx.params.worldSize / ctx.params.gpusPerNode - 1);
    const timeoutS = ctx.draw([600, 600], [600, 1800]);
    const fails = ctx.variant === 'hang_then_fail';
    return {
      effects: [
        after(at, (s, since) => {
          s.nodeSilent[node] = 1;
          for (let r = 0; r < s.ranks; r++) {
            s.rankFrozen[r] = 1;
            s.rankUtil[r] = 1;
          }
          if (fails && since >= timeoutS) {
            s.events.push({ kind: 'finish', jobId: s.p.jobId, timeMs: s.tMs, status: 'failed' });
            s.ended = true;
          }
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `node ${node} lost at ${Math.round(at)} s`,
      truth: (p, bg) =>
        truth(
          p,
          at,
          ['NodeMetricsAbsent', 'TrainingStalled'],
          { nodeId: nodeIdOf(p, node) },
          Math.max(3 * sec(p), bg.silenceS + sec(p)),
          'its series outlast the longest legitimate silence (3 intervals at least)',
          STOP,
        ),
    };
  },
};
export const starvation: KindDef = {
  name: 'dataloader_starvation',
  category: 'incident',
  summary: "one rank's data loader starves: its GPU waits for input, the job slows",
  variants: [{ name: 'one_rank', splits: ['train', 'heldout'] }],
  minNodes: 1,
  make(ctx) {
    const at = drawOnset(ctx);
    const slow = ctx.draw([0.4, 1], [0.25, 0.5]);
    const c = pickRank(ctx);
    return {
      effects: [
        after(at, (s) => {
          s.rankSlow[c.rank]! *= 1 + slow;
          s.rankUtil[c.rank] = s.p.model.utilBase / (1 + slow);
          s.nodeCpuAdd[s.nodeOf(c.rank)]! += 0.6;
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `rank ${c.rank} starved for input (${Math.round(slow * 100)}% slower) from ${Math.round(at)} s`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler'],
          c.place(p),
          stragglerMin(p, slow),
          'its step time stands out of the noise',
          SLOW,
        ),
    };
  },
};
export const network: KindDef = {
  name: 'network_degradation',
  category: 'incident',
  summary: "one node's network degrades: its ranks take longer per step, so does the job",
  variants: [{ name: 'one_node', splits: ['train', 'heldout'] }],
  minNodes: 3,
  make(ctx) {
    const at = drawOnset(ctx);
    const node = ctx.rng.int(1, ctx.params.worldSize / ctx.params.gpusPerNode - 1);
    const slow = ctx.draw([0.25, 0.6], [0.15, 0.3]);
    return {
      effects: [
        after(at, (s) => {
          s.nodeNetMul[node]! *= 0.4;
          for (let g = 0; g < s.p.gpusPerNode; g++) s.rankSlow[node * s.p.gpusPerNode + g]! *= 1 + slow;
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `node ${node}'s network at 40% from ${Math.round(at)} s, its ranks ${Math.round(slow * 100)}% slower`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler', 'NodeNetworkDegraded'],
          { nodeId: nodeIdOf(p, node) },
          stragglerMin(p, slow),
          "the node's step time stands out of the noise",
          SLOW,
        ),
    };
  },
};

export const slowNode: KindDef = {
  name: 'slow_node',
  category: 'incident',
  summary: 'every GPU of one node slower (a bad BIOS setting, a node in a hot aisle)',
  variants: [{ name: 'one_node', splits: ['train', 'heldout'] }],
  minNodes: 4,
  make(ctx) {
    const at = drawOnset(ctx);
    const node = ctx.rng.int(1, ctx.params.worldSize / ctx.params.gpusPerNode - 1);
    const clock = ctx.draw([0.65, 0.8], [0.75, 0.88]);
    return {
      effects: [
        after(at, (s) => {
          for (let g = 0; g < s.p.gpusPerNode; g++) {
            const r = node * s.p.gpusPerNode + g;
            s.rankClockMul[r]! *= clock;
            s.rankSlow[r]! *= 1 / clock;
          }
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `node ${node}'s GPUs at ${Math.round(clock * 100)}% clock from ${Math.round(at)} s`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler', 'GPUClockDeficit'],
          { nodeId: nodeIdOf(p, node) },
          3 * sec(p),
          '3 samples of the clock deficit',
          SLOW,
        ),
    };
  },
};

export const silent: KindDef = {
  name: 'job_silent',
  category: 'incident',
  summary: 'the whole job stops reporting without a finish event (killed, crashed)',
  variants: [{ name: 'crash', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    return {
      effects: [after(at, (s) => (s.silent = true))],
      params: { durationMs: (at + 600) * 1000 },
      description: `every series stops at ${Math.round(at)} s`,
      truth: (p, bg) =>
        truth(
          p,
          at,
          ['JobMetricsAbsent', 'NodeMetricsAbsent'],
          'job',
          Math.max(3 * sec(p), bg.silenceS + sec(p)),
          'outlast the longest legitimate silence (3 intervals at least)',
        ),
    };
  },
};
