"""Pieces the integrations share."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .. import core as _runmod
from ..core import Run


def ensure_run(init_kwargs: Dict[str, Any], **defaults: Any) -> Tuple[Run, bool]:
    """The current run, or a new one from ``init_kwargs`` completed with ``defaults``. True if created here."""
    existing = _runmod.current()
    if existing is not None and not existing.finished:
        return existing, False
    import trainwatch

    kwargs = {**{k: v for k, v in defaults.items() if v is not None}, **init_kwargs}
    return trainwatch.init(**kwargs), True


def batch_size_of(batch: Any) -> Optional[int]:
    """Samples in a batch: the leading dimension of its first tensor-like leaf (tuple, list or dict batches)."""
    for _ in range(4):
        shape = getattr(batch, "shape", None)
        if shape is not None:
            try:
                return int(shape[0]) if len(shape) else None
            except Exception:
                return None
        if isinstance(batch, dict):
            batch = next(iter(batch.values()), None)
        elif isinstance(batch, (list, tuple)):
            batch = batch[0] if batch else None
        else:
            return None
    return None
