"""The final-tangent-kernel lens equals −K_w(x[p], x_i[q]) r_i[q] computed from the tangent kernel itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from jordanlab.kernels import tangent_kernel
from jordanlab.kernels.lens import final_kernel_attribution


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3, padding=1)).double()


def test_maps_equal_kernel_times_residual() -> None:
    rng = np.random.default_rng(0)
    net = _net()
    train_b = (rng.random((5, 6, 6)) < 0.3).astype(np.uint8)
    train_m = (rng.random((5, 6, 6)) < 0.5).astype(np.uint8)
    query = (rng.random((6, 6)) < 0.3).astype(np.uint8)
    pixel = (2, 3)
    r = final_kernel_attribution(net, query, pixel, train_b, train_m, k=5, batch_size=2)
    xq = torch.as_tensor(query, dtype=torch.float64)[None, None]
    xt = torch.as_tensor(train_b, dtype=torch.float64)[:, None]
    k = tangent_kernel(net, xq, xt)  # (1, 36, 5, 36)
    kq = k[0, pixel[0] * 6 + pixel[1]].reshape(5, 6, 6)
    with torch.no_grad():
        resid = torch.sigmoid(net(xt))[:, 0] - torch.as_tensor(train_m, dtype=torch.float64)
    want = -(kq * resid).numpy()
    np.testing.assert_allclose(r["contributions"], want.sum((1, 2)), rtol=1e-10, atol=1e-12)
    for t in r["top"]:
        np.testing.assert_allclose(t["map"], want[t["index"]], rtol=1e-10, atol=1e-12)
    assert [t["index"] for t in r["top"]] == list(np.argsort(-np.abs(want.sum((1, 2))), kind="stable"))
    with torch.no_grad():
        assert r["logit"] == pytest.approx(float(net(xq)[0, 0, 2, 3]), abs=1e-12)


def test_bad_arguments_name_themselves() -> None:
    net = _net()
    b = np.zeros((3, 6, 6), np.uint8)
    with pytest.raises(ValueError, match="pixel"):
        final_kernel_attribution(net, b[0], (6, 0), b, b)
    with pytest.raises(ValueError, match="query"):
        final_kernel_attribution(net, b, (0, 0), b, b)
    with pytest.raises(ValueError, match="trainable"):
        final_kernel_attribution(_net().requires_grad_(False), b[0], (0, 0), b, b)
