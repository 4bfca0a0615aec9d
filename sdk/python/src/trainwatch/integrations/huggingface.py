"""Hugging Face ``transformers``: ``Trainer(..., callbacks=[TrainwatchCallback()])``.

What it reports, from every process (labelled ``rank``, from ``args.process_index``):

* what the Trainer logs (every ``logging_steps``), renamed the way the W&B integration does: ``loss`` ->
  ``train/loss`` (metric ``train_loss``), ``learning_rate`` -> ``train_learning_rate``, ``grad_norm`` ->
  ``train_grad_norm``, ``eval_loss`` -> ``eval/loss`` (``eval_loss``); the end-of-training summary
  (``train_runtime``, ``train_samples_per_second``, ...) as ``summary/...``;
* ``train_step`` from ``state.global_step`` on every optimizer step, with step time, samples/s
  (``per_device_train_batch_size`` x ``gradient_accumulation_steps``) and tokens/s when ``tokens_per_step``
  is given.

The main process registers the job: framework ``transformers``, world size, the ``TrainingArguments`` and the
model's config as the job's config.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from transformers import TrainerCallback

from ._common import ensure_run

_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}


def rename(logs: Dict[str, Any]) -> Dict[str, Any]:
    """The Trainer's log keys as trainwatch metric keys (see the module docstring)."""
    summary = "train_runtime" in logs
    out: Dict[str, Any] = {}
    for k, v in logs.items():
        if summary and k in _SUMMARY_KEYS:
            out[f"summary/{k}"] = v
        elif k.startswith("eval_"):
            out[f"eval/{k[5:]}"] = v
        elif k.startswith("test_"):
            out[f"test/{k[5:]}"] = v
        else:
            out[f"train/{k}"] = v
    return out


class TrainwatchCallback(TrainerCallback):
    """Reports a ``transformers.Trainer`` run to trainwatch; ``init_kwargs`` go to ``tw.init`` when no run is
    active."""

    def __init__(self, tokens_per_step: Optional[int] = None, **init_kwargs: Any) -> None:
        self.tokens_per_step = tokens_per_step
        self.init_kwargs = init_kwargs
        self.run = None
        self._samples_per_step: Optional[int] = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        config: Dict[str, Any] = {}
        try:
            config.update(args.to_sanitized_dict())
        except Exception:
            pass
        model_config = getattr(model, "config", None)
        if model_config is not None:
            try:
                config["model"] = model_config.to_diff_dict()
            except Exception:
                pass
        self.run, _ = ensure_run(
            self.init_kwargs, framework="transformers", rank=args.process_index, local_rank=max(args.local_process_index, 0),
            world_size=args.world_size, config=config or None, tokens_per_step=self.tokens_per_step,
        )
        self._samples_per_step = args.per_device_train_batch_size * max(1, args.gradient_accumulation_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run is not None:
            self.run.log({}, state.global_step, samples=self._samples_per_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        if self.run is not None and logs:
            self.run.log(rename(logs), state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The job goes on (evaluate, predict) until the process ends; make what was logged visible now.
        if self.run is not None:
            self.run.flush(self.run.flush_timeout)
