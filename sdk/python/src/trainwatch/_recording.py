"""What the background thread does with a logged record (a piece of ``Run``, see core.py): read the values,
time the steps, derive throughput, and add the samples to per-series buffers until a frame is cut.

``_Recording`` is a mixin of ``Run``: its methods use the state ``Run.__init__`` sets up and run only on the
background thread.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Mapping, Optional

from . import names

log = logging.getLogger("trainwatch")

MAX_SAMPLES_PER_FRAME = 20_000

_time = time.time


def _to_float(v: Any) -> Optional[float]:
    """A logged value as a float; None for what is not a number (strings, lists, multi-element tensors)."""
    t = type(v)
    if t is float or t is int or t is bool:
        return float(v)
    try:
        return float(v)  # numpy scalars, 0-d arrays and one-element tensors (read here, off the training thread)
    except Exception:
        return None



class _Recording:
    def _record(self, t: float, step: Optional[int], metrics: Dict[str, Any], samples: Any, tokens: Any) -> None:
        self.stats["records"] += 1
        ts = int(t * 1000)
        if step is not None:
            try:
                cur = int(step)
                self._explicit_steps = True
            except Exception:
                cur = self._step if self._step is not None else 0
        elif self._explicit_steps and self._step is not None:
            cur = self._step
        else:
            cur = 0 if self._step is None else self._step + 1
        if samples is not None:
            self._window_samples += float(samples)
            self._window_counts_given = True
        if tokens is not None:
            self._window_tokens += float(tokens)
            self._window_counts_given = True

        emitted = self._add_metrics(metrics, "", ts) if metrics else False

        prev = self._step
        self._step = cur
        if prev is None or cur < prev:  # first step, or a restart from a checkpoint: start a new window
            self._window_t, self._window_step = t, cur
            self._window_samples = self._window_tokens = 0.0
            self._last_step_time = t
        elif cur > prev:
            self._last_step_time = t
            dt = t - (self._window_t or t)
            dsteps = cur - (self._window_step or 0)
            if dt >= self.throughput_interval and dsteps > 0:
                self._add_run(names.STEP_DURATION, ts, dt / dsteps)
                n_samples = self._window_samples if self._window_samples else (
                    self.batch_size * dsteps if self.batch_size else 0)
                n_tokens = self._window_tokens if self._window_tokens else (
                    self.tokens_per_step * dsteps if self.tokens_per_step else 0)
                if n_samples:
                    self._add_run(names.SAMPLES_PER_SECOND, ts, n_samples / dt)
                if n_tokens:
                    self._add_run(names.TOKENS_PER_SECOND, ts, n_tokens / dt)
                self._window_t, self._window_step = t, cur
                self._window_samples = self._window_tokens = 0.0
                emitted = True
        if emitted or t - self._last_step_emit >= 1.0:
            self._add_run(names.TRAIN_STEP, ts, float(cur))
            self._last_step_emit = t

    def _announce_metric_keys(self, now: float) -> None:
        if self._new_metric_keys:
            if self.rank == 0:  # job metadata comes from rank 0
                self._pending_events.append({"kind": "update", "jobId": self.job_id, "timeMs": int(now * 1000),
                                             "metricKeys": dict(self._new_metric_keys)})
            self._metric_keys_sent.update(self._new_metric_keys)
            self._new_metric_keys.clear()

    def _add_metrics(self, metrics: Mapping[str, Any], prefix: str, ts: int) -> bool:
        """Adds one record's values (nested mappings flattened with "/"); True if any was a number."""
        added = False
        cache = self._name_cache
        for k, value in metrics.items():
            key = k if not prefix and type(k) is str else f"{prefix}{k}"
            t = type(value)
            if t is float or t is int:
                v: Optional[float] = float(value)
            elif t is dict or (t is not str and isinstance(value, Mapping)):
                added = self._add_metrics(value, key + "/", ts) or added
                continue
            else:
                v = _to_float(value)
                if v is None:
                    self.stats["invalid_values"] += 1
                    continue
            name = cache.get(key)
            if name is None:
                name = names.metric_name(str(key))
                cache[key] = name
                if name not in self._metric_keys_sent:
                    self._new_metric_keys[name] = str(key)
            self._add_run(name, ts, v)
            added = True
        return added

    def _heartbeat(self, now: float) -> None:
        """Proof of life from this thread: keeps coming while the training loop is stuck (an NCCL hang)."""
        ts = int(now * 1000)
        self._add_run(names.HEARTBEAT, ts, now)
        if self._step is not None:
            if now - self._last_step_emit >= self.heartbeat_interval:  # no progress since the last beat: say it again
                self._add_run(names.TRAIN_STEP, ts, float(self._step))
                self._last_step_emit = now
            if self._last_step_time is not None:
                self._add_run(names.LAST_STEP_TIME, ts, self._last_step_time)
        dropped = {
            "queue_full": self.dropped_queue_full,
            "spool_full": self._store.dropped_frames if self._store is not None else 0,
            "rejected": self.stats["frames_rejected"],
            "invalid_value": self.stats["invalid_values"],
        }
        for reason, n in dropped.items():
            if n:
                self._add("trainwatch_sdk_dropped_total", {**self._labels, "reason": reason}, ts, float(n))

    def _add_run(self, name: str, ts: int, value: float) -> None:
        """A sample of a series with the run's labels (the hot path: one dict lookup)."""
        buf = self._series.get(name)
        if buf is None:
            buf = self._series[name] = _SeriesBuffer({"__name__": name, **self._labels})
        self._append(buf, ts, value)

    def _add(self, name: str, labels: Mapping[str, str], ts: int, value: float) -> None:
        key = (name, tuple(labels.items()))
        buf = self._series.get(key)
        if buf is None:
            buf = self._series[key] = _SeriesBuffer({"__name__": name, **labels})
        self._append(buf, ts, value)

    def _append(self, buf: "_SeriesBuffer", ts: int, value: float) -> None:
        # Storage keeps one sample per series and millisecond. Calls faster than that (a tight loop logging
        # every step) would overwrite each other, so a series' timestamps are kept strictly increasing.
        if ts <= buf.last:
            ts = buf.last + 1
        buf.last = ts
        if not buf.timestamps:
            self._dirty.append(buf)
        buf.timestamps.append(ts)
        buf.values.append(value)
        self._pending_samples += 1

class _SeriesBuffer:
    """One series' samples waiting for the next frame, and its newest timestamp (kept across frames)."""

    __slots__ = ("labels", "last", "timestamps", "values")

    def __init__(self, labels: Dict[str, str]) -> None:
        self.labels = labels
        self.timestamps: List[int] = []
        self.values: List[float] = []
        self.last = -1
