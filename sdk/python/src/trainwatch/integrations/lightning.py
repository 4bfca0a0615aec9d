"""PyTorch Lightning: ``Trainer(callbacks=[TrainwatchCallback()])``.

What it reports, from every rank (labelled ``rank``):

* every metric the LightningModule logs with ``self.log`` (exactly what Lightning hands its loggers, at the
  same steps: the callback adds a logger for trainwatch to the trainer), e.g. ``train_loss``, ``val_acc``;
* the learning rate of each optimizer param group (``train_lr``, ``train_lr_pg1``...);
* ``train_step`` from ``trainer.global_step`` on every optimizer step, with step time and samples/s (from the
  batch's leading dimension) and tokens/s when ``tokens_per_step`` is given.

Rank 0 registers the job: framework ``lightning``, the world size, and ``hparams`` as the job's config.
Works with ``lightning`` (``lightning.pytorch``) or the older ``pytorch_lightning`` package.
"""

from __future__ import annotations

import multiprocessing
from typing import Any, Dict, Optional

from ._common import batch_size_of, ensure_run

try:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import Logger as _Logger
except ImportError:  # pragma: no cover - the older package name
    import pytorch_lightning as pl  # type: ignore[no-redef]
    from pytorch_lightning.loggers import Logger as _Logger  # type: ignore[no-redef]


class _TrainwatchLogger(_Logger):
    """The logger half: Lightning calls it with what ``self.log`` produced, on every rank."""

    def __init__(self, callback: "TrainwatchCallback") -> None:
        super().__init__()
        self._callback = callback

    @property
    def name(self) -> str:
        return "trainwatch"

    @property
    def version(self) -> str:
        run = self._callback.run
        return run.job_id if run is not None else ""

    def log_metrics(self, metrics: Dict[str, Any], step: Optional[int] = None) -> None:
        run = self._callback.run
        if run is not None:
            run.log(metrics, step)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        run = self._callback.run
        if run is None or params is None:
            return
        try:
            config = dict(params) if not hasattr(params, "__dict__") or hasattr(params, "items") else vars(params)
        except Exception:
            return
        run.update(config=config)


class TrainwatchCallback(pl.Callback):
    """Reports a Lightning run to trainwatch. ``init_kwargs`` go to ``tw.init`` when no run is active
    (``job_id``, ``project``, ``server``, ...)."""

    def __init__(self, log_every_n_steps: Optional[int] = None, tokens_per_step: Optional[int] = None,
                 **init_kwargs: Any) -> None:
        super().__init__()
        self.log_every_n_steps = log_every_n_steps
        self.tokens_per_step = tokens_per_step
        self.init_kwargs = init_kwargs
        self.run = None
        self._created = False
        self._logger: Optional[_TrainwatchLogger] = None

    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        hparams = dict(getattr(pl_module, "hparams", {}) or {})
        self.run, self._created = ensure_run(
            self.init_kwargs, framework="lightning", rank=trainer.global_rank, local_rank=trainer.local_rank,
            world_size=trainer.world_size, config=hparams or None, tokens_per_step=self.tokens_per_step,
        )
        if self._logger is None:
            self._logger = _TrainwatchLogger(self)
        if not any(isinstance(lg, _TrainwatchLogger) for lg in trainer.loggers):
            trainer.loggers = [*trainer.loggers, self._logger]

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        run = self.run
        if run is None:
            return
        step = trainer.global_step
        every = self.log_every_n_steps or trainer.log_every_n_steps or 50
        metrics: Dict[str, Any] = {}
        if step % every == 0:
            for i, opt in enumerate(trainer.optimizers):
                for j, group in enumerate(opt.param_groups):
                    suffix = (f"_opt{i}" if i else "") + (f"_pg{j}" if j else "")
                    if "lr" in group:
                        metrics[f"train/lr{suffix}"] = group["lr"]
        run.log(metrics, step, samples=batch_size_of(batch))

    def on_exception(self, trainer: "pl.Trainer", pl_module: Any, exception: BaseException) -> None:
        if self.run is not None and not isinstance(exception, KeyboardInterrupt):
            self.run.finish("failed")

    def teardown(self, trainer: "pl.Trainer", pl_module: Any, stage: str) -> None:
        if self.run is None:
            return
        # Ranks launched by Lightning's spawn strategies end with os._exit, which runs no exit handler: such
        # a process finishes its run here. Elsewhere the run stays open for a later test/predict stage and
        # finishes at exit.
        if self._created and multiprocessing.parent_process() is not None:
            self.run.finish("completed")
            self.run = None
        else:
            self.run.flush(self.run.flush_timeout)
