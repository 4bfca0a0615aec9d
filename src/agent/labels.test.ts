import { describe, expect, it } from 'vitest';
import { jobFromEnv, jobFromPodinfoLabels, nodeLabels, parseEnviron, withDefaults } from './labels.js';

describe('job and rank from a process environment (the SDK rule)', () => {
  it.each([
    [
      { TRAINWATCH_JOB_ID: 'llama-7b', SLURM_JOB_ID: '9', RANK: '3', LOCAL_RANK: '1' },
      { jobId: 'llama-7b', rank: '3', localRank: '1' },
    ],
    [
      { TORCHELASTIC_RUN_ID: 'none', SLURM_JOB_ID: '4242', SLURM_PROCID: '17', SLURM_LOCALID: '1' },
      { jobId: '4242', rank: '17', localRank: '1' },
    ],
    [
      { TORCHELASTIC_RUN_ID: 'rdzv-1', SLURM_JOB_ID: '4242', RANK: '0' },
      { jobId: 'rdzv-1', rank: '0' },
    ],
    [{ SLURM_JOB_ID: '100', SLURM_ARRAY_JOB_ID: '99', SLURM_ARRAY_TASK_ID: '3' }, { jobId: '99_3' }],
    [
      {
        KUBERNETES_SERVICE_HOST: '10.0.0.1',
        JOB_NAME: 'bert ft',
        POD_NAME: 'p-0',
        POD_NAMESPACE: 'ml',
        OMPI_COMM_WORLD_RANK: '5',
      },
      { jobId: 'bert-ft', rank: '5', pod: 'p-0', namespace: 'ml' },
    ],
    [{ JOB_NAME: 'not-k8s', RANK: 'x' }, {}],
  ])('%j', (env, expected) => {
    expect(jobFromEnv(env)).toEqual(expected);
  });

  it('reads the Kubernetes job name from the downward-API labels file', () => {
    const file = 'app="x"\nbatch.kubernetes.io/job-name="train-42"\n';
    expect(jobFromPodinfoLabels(file)).toBe('train-42');
    expect(jobFromEnv({ KUBERNETES_SERVICE_HOST: 'h' }, () => file).jobId).toBe('train-42');
  });

  it('parses /proc/PID/environ', () => {
    expect(parseEnviron(Buffer.from('A=1\0B=x=y\0\0'))).toEqual({ A: '1', B: 'x=y' });
  });
});

describe('node labels', () => {
  it('prefers the configured node id, then the downward API, then the hostname; static labels win', () => {
    expect(nodeLabels({ env: { NODE_NAME: 'k8s-node-3' }, hostname: 'pod-xyz' })).toEqual({
      node_id: 'k8s-node-3',
    });
    expect(
      nodeLabels({ env: { SLURM_CLUSTER_NAME: 'c1' }, hostname: 'gpu-17', staticLabels: { region: 'eu' } }),
    ).toEqual({ node_id: 'gpu-17', cluster: 'c1', region: 'eu' });
    expect(nodeLabels({ nodeId: 'n', env: { NODE_NAME: 'x' } }).node_id).toBe('n');
  });

  it("adds defaults without overriding the sender's labels", () => {
    const l = { __name__: 'm', node_id: 'mine' };
    expect(withDefaults(l, { node_id: 'agent', cluster: 'c' })).toEqual({
      __name__: 'm',
      node_id: 'mine',
      cluster: 'c',
    });
    expect(withDefaults(l, { node_id: 'agent' })).toBe(l);
  });
});
