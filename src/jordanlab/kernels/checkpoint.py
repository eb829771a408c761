"""Offline path kernel from saved checkpoints (TracInCP-style approximation, Pruthi et al. 2020).

The exact decomposition needs every step; from checkpoints w_{t_1}, …, w_{t_C} only, the path integral
is approximated by a sum with one node per checkpoint:

    K^cp(x_q, x_i) = Σ_c η_c ∇_w f(w_{t_c}, x_q) · ∇_w f̄(w_{t_c}, x_i),
    contributions^cp[q, i] = −Σ_c η_c ∇_w f(w_{t_c}, x_q) · ∇_w ℓ_i(w_{t_c}),

where η_c is the total step weight that checkpoint c stands for (for SGD with batch size B, lr_c and one
checkpoint every E epochs: η_c = E·lr_c/B; for full-batch GD with k steps between checkpoints:
η_c = k·lr_c/N). This is an approximation (a left Riemann sum of the path with the tangent kernel at the
checkpoints, TracInCP); its error is not controlled, and for Adam/Ranger runs the true update is not
−lr ∇L at all, so the contributions are a similarity-weighted heuristic, not a decomposition.
Compare ``initial + contributions.sum(1)`` with ``final`` to see how far off it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from . import _functional as F
from .path import _Recording

__all__ = ["CheckpointPathKernel", "checkpoint_path_kernel"]


@dataclass(frozen=True)
class CheckpointPathKernel:
    """TracInCP path kernel ``path_kernel`` (Q, N) and, with targets, ``contributions`` (Q, N)."""

    path_kernel: Tensor
    contributions: Tensor | None
    weights: list[float]


def _state_dict(ckpt: Mapping[str, Any] | str | os.PathLike[str]) -> Mapping[str, Tensor]:
    if isinstance(ckpt, (str, os.PathLike)):
        try:
            from jordanlab.train import load_checkpoint

            loaded = load_checkpoint(ckpt)
        except ImportError:  # pragma: no cover - train is part of the package
            loaded = torch.load(ckpt, map_location="cpu", weights_only=True)
        ckpt = loaded
    if isinstance(ckpt, Mapping) and "model" in ckpt and isinstance(ckpt["model"], Mapping):
        return ckpt["model"]
    if isinstance(ckpt, Mapping):
        return ckpt
    raise TypeError(f"a checkpoint must be a state_dict, a checkpoint dict or a path, got {type(ckpt).__name__}")


def checkpoint_path_kernel(
    checkpoints: Sequence[Mapping[str, Any] | str | os.PathLike[str]],
    lrs: Sequence[float],
    model_fn: Callable[[], nn.Module],
    train_inputs: Tensor,
    queries: Tensor,
    *,
    pixels: Sequence[Sequence[int]] | None = None,
    train_targets: Tensor | None = None,
    loss: str = "bce",
    batch_size: int = 16,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> CheckpointPathKernel:
    """Approximate path kernel Σ_c η_c ∇f(w_c, x_q)·∇f̄(w_c, x_i) from saved checkpoints (TracInCP).

    Parameters
    ----------
    checkpoints : sequence of state_dicts, ``jordanlab.train`` checkpoint dicts, or their paths
    lrs : sequence of float
        η_c per checkpoint (see the module docstring for what it must hold).
    model_fn : callable
        Returns a fresh module of the right architecture; each checkpoint is loaded into it and
        the module is put in ``eval()`` mode (BatchNorm then uses its running statistics).
    train_inputs : Tensor of shape (N, C, H, W)
    queries : Tensor of shape (Q, C, H, W)
    pixels : list of (row, col), optional
        One pixel per query for dense models.
    train_targets : Tensor, optional
        With targets, also the approximate contributions −Σ_c η_c ∇f(w_c, x_q)·∇ℓ_i(w_c).
    loss : {"bce", "mse", "mse-logits"}
        The per-example loss (:mod:`jordanlab.train.losses`; ``mse`` is (σ(f) − y)², ``mse-logits`` (f − y)²).
    batch_size : int
        Training examples per vectorized chunk.
    dtype : torch.dtype, optional
        Cast each loaded model to this dtype.

    Returns
    -------
    CheckpointPathKernel
    """
    if len(checkpoints) == 0 or len(checkpoints) != len(lrs):
        raise ValueError(f"checkpoints and lrs must be non-empty and of equal length, got {len(checkpoints)} and {len(lrs)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = int(train_inputs.shape[0])
    kernel: Tensor | None = None
    contrib: Tensor | None = None
    iterator = list(zip(checkpoints, lrs))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="checkpoint path kernel")
    for ckpt, eta in iterator:
        model = model_fn()
        model.load_state_dict(_state_dict(ckpt))
        model.eval()
        if dtype is not None:
            model = model.to(dtype)
        rec = _Recording(model, queries, n, pixels=pixels, loss=loss, mode="tangent", quadrature=1,
                         contraction="per-example", pixel_maps=False)
        x = F.as_input(train_inputs, "train_inputs", rec.dtype, rec.device)
        if train_targets is not None:
            y = F.as_input(train_targets, "train_targets", rec.dtype, rec.device).reshape(n, -1)
            if y.shape[1] != rec.n_out:
                raise ValueError(f"train_targets must hold {rec.n_out} values per example, got {y.shape[1]}")
        else:
            y = torch.zeros(n, rec.n_out, dtype=rec.dtype, device=rec.device)
        params = F.detached_params(model)
        zero = {k: torch.zeros_like(v) for k, v in params.items()}
        for i in range(0, n, batch_size):
            idx = torch.arange(i, min(i + batch_size, n), device=rec.device)
            rec.record(params, zero, x[idx], y[idx], idx, float(eta) * idx.numel())
        kernel = rec.kernel if kernel is None else kernel + rec.kernel
        contrib = rec.contributions if contrib is None else contrib + rec.contributions
    assert kernel is not None and contrib is not None
    return CheckpointPathKernel(
        path_kernel=kernel, contributions=contrib if train_targets is not None else None, weights=[float(e) for e in lrs]
    )
