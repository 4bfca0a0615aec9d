"""Helpers for a plain PyTorch loop.

    from trainwatch.integrations.torch import log_step

    loss.backward()
    log_step(model, optimizer, step, loss=loss, batch_size=len(x))   # before optimizer.zero_grad()
    optimizer.step(); optimizer.zero_grad()

``log_step`` logs ``train/loss``, the total gradient norm (``train_grad_norm``), the parameter norm
(``train_param_norm``) and each param group's learning rate (``train_lr``, ``train_lr_pg1``...). The norms are
computed as tensors on the model's device and read by trainwatch's background thread, so the training loop
does not wait for the device (the norms cost a few small kernels; use ``every`` to log them less often).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Union

import torch

import trainwatch

Params = Union[torch.nn.Module, Iterable[torch.Tensor]]


def _tensors(params: Params) -> list:
    return list(params.parameters() if isinstance(params, torch.nn.Module) else params)


@torch.no_grad()
def grad_norm(params: Params, norm_type: float = 2.0) -> Optional[torch.Tensor]:
    """The total norm of the gradients (as ``clip_grad_norm_`` computes it, without clipping); None without
    gradients. A tensor on the parameters' device: no synchronisation."""
    grads = [p.grad.detach() for p in _tensors(params) if p.grad is not None]
    if not grads:
        return None
    norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
    return torch.linalg.vector_norm(norms, norm_type)


@torch.no_grad()
def param_norm(params: Params, norm_type: float = 2.0) -> Optional[torch.Tensor]:
    """The total norm of the parameters (a tensor on their device)."""
    ps = [p.detach() for p in _tensors(params)]
    if not ps:
        return None
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p, norm_type) for p in ps]), norm_type)


def learning_rates(optimizer: torch.optim.Optimizer, prefix: str = "train/") -> Dict[str, float]:
    """``{"train/lr": ..., "train/lr_pg1": ...}`` for each param group."""
    return {f"{prefix}lr{f'_pg{i}' if i else ''}": g["lr"] for i, g in enumerate(optimizer.param_groups) if "lr" in g}


def log_step(
    model: torch.nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    step: Optional[int] = None,
    loss: Any = None,
    batch_size: Optional[int] = None,
    every: int = 1,
    prefix: str = "train/",
    **metrics: Any,
) -> None:
    """Logs one training step of a plain loop (call after ``backward()``, before ``zero_grad()``)."""
    run = trainwatch.run()
    if run is None:
        return
    out: Dict[str, Any] = {f"{prefix}{k}": v for k, v in metrics.items()}
    if loss is not None:
        out[f"{prefix}loss"] = loss.detach() if isinstance(loss, torch.Tensor) else loss
    if step is None or step % max(1, every) == 0:
        g = grad_norm(model)
        if g is not None:
            out[f"{prefix}grad_norm"] = g
        p = param_norm(model)
        if p is not None:
            out[f"{prefix}param_norm"] = p
        if optimizer is not None:
            out.update(learning_rates(optimizer, prefix))
    run.log(out, step, samples=batch_size)
