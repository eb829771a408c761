"""Optimizers (Ranger, Adam, SGD) and the learning rate as a pure function of the step."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from .config import OptimConfig

__all__ = ["build_optimizer", "learning_rate", "set_learning_rate"]


def build_optimizer(params: Iterable[torch.nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.name``.

    ``ranger`` is ``pytorch_optimizer.Ranger``: RAdam (Liu et al. 2020, the variance-rectified
    Adam) wrapped in Lookahead (Zhang et al. 2019: every ``k = 6`` steps the slow weights move
    ``alpha = 0.5`` of the way to the fast ones), with gradient centralization, as in the talk.
    ``adam`` is ``torch.optim.AdamW`` (decoupled weight decay), ``sgd`` is SGD with momentum.
    """
    if not isinstance(config, OptimConfig):
        raise TypeError(f"config: expected an OptimConfig, got {type(config).__name__}")
    params = list(params)
    if config.name == "ranger":
        from pytorch_optimizer import Ranger

        return Ranger(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"config.name: unknown optimizer {config.name!r}; expected ranger, adam or sgd")


def learning_rate(step: int, config: OptimConfig, *, total_steps: int) -> float:
    r"""The learning rate for optimizer step ``step`` (0-based), a pure function of the step.

    Notes
    -----
    With base rate :math:`\eta`, warm-up :math:`w` and :math:`T` total steps:
    :math:`\eta_s = \eta (s+1)/w` for :math:`s < w`; then ``constant`` gives :math:`\eta` and
    ``cosine`` gives :math:`\eta [r + (1-r)\tfrac12(1+\cos\pi p)]` with
    :math:`p = (s-w)/\max(1, T-w)` clipped to [0, 1] and :math:`r` = ``min_lr_ratio``.
    ``onecycle`` (PyTorch's ``OneCycleLR`` with ``div_factor`` 25, ``pct_start`` = w/T, final rate
    :math:`r\eta`) anneals by cosine, :math:`\mathrm{cos}(a, b, q) = b + (a-b)\tfrac12(1+\cos\pi q)`:
    :math:`\eta_s = \mathrm{cos}(\eta/25, \eta, s/(w-1))` for :math:`s < w`, then
    :math:`\mathrm{cos}(\eta, r\eta, (s-w+1)/(T-w))` (q clipped to [0, 1]).
    Because nothing else is stored, resuming at step ``s`` needs only ``s``.
    """
    if step < 0:
        raise ValueError(f"step: expected >= 0, got {step}")
    if total_steps < 1:
        raise ValueError(f"total_steps: expected >= 1, got {total_steps}")
    base = config.lr
    w = config.warmup_steps
    if config.schedule == "onecycle":
        return _onecycle(step, base, w, total_steps, config.min_lr_ratio)
    if step < w:
        return base * (step + 1) / w
    if config.schedule == "constant":
        return base
    if config.schedule == "cosine":
        p = min(1.0, max(0.0, (step - w) / max(1, total_steps - w)))
        r = config.min_lr_ratio
        return base * (r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * p)))
    raise ValueError(f"config.schedule: unknown schedule {config.schedule!r}; expected constant, cosine or onecycle")


def _onecycle(step: int, base: float, warmup: int, total_steps: int, min_ratio: float) -> float:
    def anneal(start: float, end: float, q: float) -> float:
        q = min(1.0, max(0.0, q))
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * q))

    end_warmup = warmup - 1  # the step at which the peak rate is reached
    if step <= end_warmup:
        return anneal(base / 25.0, base, step / end_warmup if end_warmup > 0 else 1.0)
    return anneal(base, base * min_ratio, (step - end_warmup) / max(1, total_steps - 1 - end_warmup))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
