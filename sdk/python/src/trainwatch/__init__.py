"""trainwatch: training metrics from Python, in one line.

    import trainwatch as tw

    with tw.init(project="llm", config={"lr": 3e-4}, batch_size=32):
        for step, batch in enumerate(loader):
            loss = train_step(batch)
            tw.log({"train/loss": loss}, step=step)

``tw.log`` only queues (about a microsecond); a background thread sends batches to the local agent
(127.0.0.1:9471) or to the collector given by ``server=``/``TRAINWATCH_SERVER``. Integrations:
``trainwatch.integrations.lightning``, ``.huggingface``, ``.keras``, ``.torch``. See docs/sdk-python.md.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional

from . import core as _runmod
from .core import Run, current
from .core import _set_current as _set_current_run

__all__ = ["Run", "current", "finish", "init", "log", "run"]
__version__ = "0.1.0"

_warned_no_run = False


# The parameters repeat Run.__init__'s positional ones (core.py: Run.__init__) on purpose: the public entry point
# shows them in editors and help(); the keyword options pass through **options unchanged.
def init(
    job_id: Optional[str] = None,
    name: Optional[str] = None,
    project: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    tags: Optional[List[str]] = None,
    server: Optional[str] = None,
    token: Optional[str] = None,
    **options: Any,
) -> Run:
    """Starts reporting this process's training job and returns the run (a context manager).

    ``job_id`` defaults from the environment (TRAINWATCH_JOB_ID, TORCHELASTIC_RUN_ID, SLURM_JOB_ID, the
    Kubernetes job) so that every rank agrees; rank and world size come from torchrun, Slurm or MPI.
    Options: ``mode`` (online/offline/disabled; TRAINWATCH_MODE), ``framework``, ``batch_size``,
    ``tokens_per_step``, ``rank``, ``local_rank``, ``world_size``, ``agent_url``, ``spool_dir``, ``offline_dir``,
    ``flush_interval``, ``heartbeat_interval``, ``flush_timeout``, ``gpu`` (auto/on/off), ``labels``.
    A run already active in this process is finished first.
    """
    previous = current()
    if previous is not None:
        previous.finish()
    r = Run(job_id, name, project, config, tags, server, token, **options)
    _set_current_run(r)
    return r


def log(metrics: Mapping[str, Any], step: Optional[int] = None, **kwargs: Any) -> None:
    """Queues metrics of the current run (see :meth:`Run.log`). Without ``init`` it does nothing."""
    r = _runmod._current
    if r is None:
        global _warned_no_run
        if not _warned_no_run:
            _warned_no_run = True
            import logging

            logging.getLogger("trainwatch").warning("trainwatch: tw.log() before tw.init(): nothing is recorded")
        return
    r.log(metrics, step, **kwargs)


def finish(status: str = "completed") -> None:
    """Marks the current run's job ``completed`` or ``failed`` and flushes what it can."""
    r = current()
    if r is not None:
        r.finish(status)


def run() -> Optional[Run]:
    """The current run, or None."""
    return current()
