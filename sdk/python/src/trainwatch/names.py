"""Metric names: what users write (``train/loss``) becomes a Prometheus-style name (``train_loss``).

Prometheus metric names match ``[a-zA-Z_:][a-zA-Z0-9_:]*``. Every other character becomes ``_`` and a name
that would start with a digit gets a leading ``_``; the key as written is kept in the job's ``metricKeys``
so that the dashboard can show it. The mapping is a pure function, cached by the caller.
"""

from __future__ import annotations

import re

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_VALID = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_VALID = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Metric names the SDK itself emits (docs/sdk-python.md lists them with their meaning).
TRAIN_STEP = "train_step"
STEP_DURATION = "train_step_duration_seconds"
SAMPLES_PER_SECOND = "train_samples_per_second"
TOKENS_PER_SECOND = "train_tokens_per_second"
HEARTBEAT = "train_heartbeat_timestamp_seconds"
LAST_STEP_TIME = "train_last_step_timestamp_seconds"


def metric_name(key: str) -> str:
    """``train/loss`` -> ``train_loss``; ``val acc@1`` -> ``val_acc_1``; ``1cycle`` -> ``_1cycle``."""
    if _VALID.match(key):
        return key
    name = _INVALID.sub("_", key)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def is_valid_label_name(name: str) -> bool:
    return bool(_LABEL_VALID.match(name)) and not name.startswith("__")
