"""The loop's CUDA step (bf16 autocast, channels-last) on the CPU, for every shipped config (issue 15).

On CUDA the loop wraps ``objective.loss`` in ``torch.autocast(dtype=torch.bfloat16)`` and puts the
model and its inputs in channels-last memory. No GPU runs in CI, so this runs the same step under the
CPU's bf16 autocast: it catches dtype and memory-format mismatches (an op that mixes bf16 and float32
tensors, an in-place write of one into the other, a ``view`` of a channels-last tensor) in every model
and objective, though the CPU's autocast casts fewer ops than CUDA's (``scripts/device_check.sh``
checks the numbers on a GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jordanlab.data import make
from jordanlab.train import build_model, build_objective, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_bf16_autocast_channels_last_step_on_every_config(path):
    config = load_config(path)
    torch.manual_seed(0)
    model = build_model(config.model)
    objective = build_objective(config.train)
    net = objective.module(model).to(memory_format=torch.channels_last)
    b, m = make("multi-2", "test", n=2, size=32)
    x = torch.from_numpy(b).float()[:, None].contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(m).float()[:, None]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss, logits = objective.loss(net, x, y, step=10_000)  # past every penalty ramp
    assert loss.dtype == torch.float32 and torch.isfinite(loss), path.name
    assert logits.shape == y.shape and logits.dtype == torch.bfloat16  # the autocast took effect
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), path.name
    # The float32 loss on the same weights is within 1 % (bf16 keeps ~3 significant digits; 0.17 % seen at most).
    with torch.no_grad():
        ref, _ = objective.loss(net, x.contiguous(), y, step=10_000)
    np.testing.assert_allclose(float(loss.detach()), float(ref), rtol=1e-2, atol=0, err_msg=path.name)
