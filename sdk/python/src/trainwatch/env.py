"""Where the process runs: the job id every rank agrees on, its rank, and the node.

Every rank of a distributed job must report under the same ``job_id`` without talking to the others, so the
id comes from what the launcher already put in the environment, in this order:

1. ``TRAINWATCH_JOB_ID`` (explicit; also set by ``tw.init`` for child processes it did not launch itself)
2. ``TORCHELASTIC_RUN_ID`` (torchrun's ``--rdzv-id``; the default ``none`` does not count)
3. ``SLURM_ARRAY_JOB_ID`` + ``_`` + ``SLURM_ARRAY_TASK_ID`` for array tasks, else ``SLURM_JOB_ID``
4. Kubernetes: ``JOBSET_NAME``, ``JOB_NAME`` or ``TRAINWATCH_K8S_JOB_NAME`` (set from the downward API), or the
   ``job-name`` / ``batch.kubernetes.io/job-name`` / ``training.kubeflow.org/job-name`` label in the downward-API
   labels file (``/etc/podinfo/labels`` or ``TRAINWATCH_PODINFO_LABELS``)

Rank, local rank and world size come from torchrun (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``), Slurm
(``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``) or Open MPI (``OMPI_COMM_WORLD_*``).
"""

from __future__ import annotations

import os
import re
import socket
from typing import Mapping, NamedTuple, Optional

_JOB_ID_INVALID = re.compile(r"[^A-Za-z0-9._:@/-]")
_PODINFO_LABELS = "/etc/podinfo/labels"
_K8S_JOB_LABELS = ("batch.kubernetes.io/job-name", "job-name", "training.kubeflow.org/job-name")


class Placement(NamedTuple):
    rank: int
    local_rank: int
    world_size: int


def sanitize_job_id(raw: str) -> str:
    """A job id the server accepts: 1-200 of ``[A-Za-z0-9._:@/-]``, starting with a letter or digit."""
    jid = _JOB_ID_INVALID.sub("-", raw.strip())[:200]
    jid = jid.lstrip("._:@/-")
    return jid


def job_id_from_env(env: Optional[Mapping[str, str]] = None, podinfo_labels: Optional[str] = None) -> Optional[str]:
    """The job id from the launcher's environment, or None when nothing names the job."""
    env = os.environ if env is None else env
    candidates = [env.get("TRAINWATCH_JOB_ID")]
    run_id = env.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id.lower() != "none":
        candidates.append(run_id)
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        candidates.append(f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}")
    candidates.append(env.get("SLURM_JOB_ID"))
    candidates += [env.get("JOBSET_NAME"), env.get("TRAINWATCH_K8S_JOB_NAME")]
    if env.get("KUBERNETES_SERVICE_HOST"):
        candidates.append(env.get("JOB_NAME"))
        candidates.append(_k8s_job_from_labels(podinfo_labels or env.get("TRAINWATCH_PODINFO_LABELS") or _PODINFO_LABELS))
    for c in candidates:
        if c:
            jid = sanitize_job_id(c)
            if jid:
                return jid
    return None


def _k8s_job_from_labels(path: str) -> Optional[str]:
    """Reads a downward-API labels file (``key="value"`` per line)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    labels = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            labels[key.strip()] = value.strip().strip('"')
    for key in _K8S_JOB_LABELS:
        if labels.get(key):
            return labels[key]
    return None


def _int(env: Mapping[str, str], *names: str) -> Optional[int]:
    for n in names:
        v = env.get(n)
        if v is not None and v.strip().lstrip("-").isdigit():
            return int(v)
    return None


def placement_from_env(env: Optional[Mapping[str, str]] = None) -> Placement:
    env = os.environ if env is None else env
    rank = _int(env, "RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
    local_rank = _int(env, "LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")
    world = _int(env, "WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
    rank = 0 if rank is None or rank < 0 else rank
    return Placement(
        rank=rank,
        local_rank=rank if local_rank is None or local_rank < 0 else local_rank,
        world_size=max(world or 1, rank + 1),
    )


def node_id(env: Optional[Mapping[str, str]] = None) -> str:
    """``TRAINWATCH_NODE_ID``, else the short host name (the agent labels its own samples the same way)."""
    env = os.environ if env is None else env
    explicit = env.get("TRAINWATCH_NODE_ID")
    if explicit:
        return explicit
    return socket.gethostname().split(".")[0] or "localhost"
