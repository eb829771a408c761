"""What the exact-decomposition tests share: tiny float64 data and a copy of the trainer's step.

Examples 8 and 9 of :func:`data` are never drawn by :func:`run`, so their contributions must be exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def data(n: int = 10, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random binary boundary images and random binary targets, float64 ``(n, 1, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, size, size, generator=g, dtype=torch.float64) < 0.3).double()
    y = (torch.rand(n, 1, size, size, generator=g, dtype=torch.float64) < 0.5).double()
    return x, y


def queries() -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """Two 12² query images (a larger canvas than training: the models are fully convolutional) and pixels."""
    x, _ = data(2, 12, seed=5)
    return [x[0], x[1]], [(3, 4), (6, 6)]


def run(model: nn.Module, hooks: Sequence, opt: torch.optim.Optimizer, *, steps: int, lr: float, clip: float = 0.0,
        batch: int = 4, seed: int = 1,
        extra_loss: Callable[[nn.Module, torch.Tensor, int], torch.Tensor] | None = None) -> nn.Module:
    """A float64 copy of the trainer's step: lr ramp, hooks, mean BCE (+ ``extra_loss``), backward, clip, step, hooks."""
    x, y = data()
    for h in hooks:
        h.bind(model, opt)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
    model.train()
    for t in range(steps):
        idx = order[(t * batch) % 8:(t * batch) % 8 + batch]  # examples 8, 9 never seen
        for g in opt.param_groups:
            g["lr"] = lr * (1.0 + 0.5 * t / steps)
        for h in hooks:
            h.before_step(idx, x[idx], y[idx])
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
        if extra_loss is not None:
            loss = loss + extra_loss(model, x[idx], t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        for h in hooks:
            h.after_step()
    return model
