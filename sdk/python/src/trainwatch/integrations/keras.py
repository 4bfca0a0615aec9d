"""Keras 3 (any backend): ``model.fit(..., callbacks=[TrainwatchCallback(batch_size=32)])``.

What it reports (labelled ``rank``):

* the batch logs every ``log_every_n_steps`` steps as ``train/<name>`` (``train_loss``, ``train_accuracy``);
* the epoch logs: ``val_*`` as ``val/<name>`` (``val_loss``), the rest as ``train/epoch_<name>``, and ``epoch``;
* the optimizer's learning rate (``train_learning_rate``);
* ``train_step`` (batches since the start of ``fit``, across epochs), step time, samples/s (with
  ``batch_size``) and tokens/s (with ``tokens_per_step``).

Rank 0 registers the job: framework ``keras/<backend>``, and the optimizer's config plus the parameter count
as the job's config.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras

from ._common import ensure_run


class TrainwatchCallback(keras.callbacks.Callback):
    def __init__(self, batch_size: Optional[int] = None, tokens_per_step: Optional[int] = None,
                 log_every_n_steps: int = 1, **init_kwargs: Any) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.tokens_per_step = tokens_per_step
        self.log_every_n_steps = max(1, log_every_n_steps)
        self.init_kwargs = init_kwargs
        self.run = None
        self._step = 0

    def _learning_rate(self) -> Any:
        opt = getattr(self.model, "optimizer", None)
        return getattr(opt, "learning_rate", None) if opt is not None else None

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        config: Dict[str, Any] = {}
        opt = getattr(self.model, "optimizer", None)
        try:
            if opt is not None:
                config["optimizer"] = opt.get_config()
            config["params"] = int(self.model.count_params())
        except Exception:
            pass
        for k in ("epochs", "steps"):
            if self.params and self.params.get(k) is not None:
                config[k] = self.params[k]
        self.run, _ = ensure_run(
            self.init_kwargs, framework=f"keras/{keras.backend.backend()}", config=config or None,
            batch_size=self.batch_size, tokens_per_step=self.tokens_per_step,
        )
        self._step = 0

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._step += 1
        if self.run is None:
            return
        metrics: Dict[str, Any] = {}
        if self._step % self.log_every_n_steps == 0:
            metrics = {f"train/{k}": v for k, v in (logs or {}).items()}
            lr = self._learning_rate()
            if lr is not None:
                metrics["train/learning_rate"] = lr
        self.run.log(metrics, self._step)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if self.run is None:
            return
        metrics: Dict[str, Any] = {"epoch": epoch + 1}
        for k, v in (logs or {}).items():
            metrics[f"val/{k[4:]}" if k.startswith("val_") else f"train/epoch_{k}"] = v
        self.run.log(metrics, self._step)

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self.run is not None:
            self.run.flush(self.run.flush_timeout)
