"""What the recorder-cost benchmarks share: shapes-32 tensors, a plain BCE step, and alternating timing.

A plain step and a recorded step are timed alternately on the same batches, so machine load hits both
alike; the first ``warmup`` pairs are dropped and the medians of the rest are compared.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def shapes32(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` shapes-32 training images and masks as float32 ``(n, 1, 32, 32)`` tensors."""
    from jordanlab import data

    xb, ym = data.make("shapes-32", "train", n, seed)
    return (torch.as_tensor(np.asarray(xb), dtype=torch.float32)[:, None],
            torch.as_tensor(np.asarray(ym), dtype=torch.float32)[:, None])


def bce_step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """zero_grad + forward + mean BCE over pixels + backward + optimizer step."""
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
    opt.step()


def alternate(plain: Callable[[torch.Tensor], None], recorded: Callable[[torch.Tensor], None], *, n: int,
              batch: int, steps: int, warmup: int = 1, seed: int = 0) -> dict[str, float]:
    """Median seconds of ``plain(idx)`` and ``recorded(idx)`` over ``steps`` alternating pairs after ``warmup``."""
    gen = torch.Generator().manual_seed(seed)
    t_plain, t_rec = [], []
    for s in range(steps + warmup):
        idx = torch.randperm(n, generator=gen)[:batch]
        t0 = time.perf_counter()
        plain(idx)
        t1 = time.perf_counter()
        recorded(idx)
        t2 = time.perf_counter()
        if s >= warmup:
            t_plain.append(t1 - t0)
            t_rec.append(t2 - t1)
    p, r = statistics.median(t_plain), statistics.median(t_rec)
    return {"plain_step_s": p, "recorded_step_s": r, "factor": r / p}
