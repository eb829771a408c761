"""Closed-form infinite-width kernels: exact special cases, invariants, and finite-width convergence."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jordanlab.kernels.infinite import (
    cnn_kernels,
    mlp_kernels,
    ntk_cnn,
    ntk_mlp,
    width_convergence,
)

# ----------------------------------------------------------------------------- exact special cases


@pytest.mark.parametrize("w_std, b_std", [(1.0, 0.0), (1.5, 0.3)])
def test_mlp_depth_zero_is_the_linear_kernel(rng, w_std, b_std):
    x1, x2 = rng.standard_normal((4, 7)), rng.standard_normal((3, 7))
    nngp, ntk = mlp_kernels(x1, x2, 0, w_std, b_std)
    expected = w_std**2 * x1 @ x2.T / 7 + b_std**2
    np.testing.assert_allclose(nngp.numpy(), expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(ntk.numpy(), expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("w_std, b_std", [(1.0, 0.0), (1.3, 0.4)])
def test_cnn_depth_zero_is_linear_in_the_readout(rng, w_std, b_std):
    x1, x2 = rng.standard_normal((3, 2, 4, 5)), rng.standard_normal((2, 2, 4, 5))
    flat = w_std**2 * x1.reshape(3, -1) @ x2.reshape(2, -1).T / (2 * 4 * 5) + b_std**2
    gap = w_std**2 * x1.mean((2, 3)) @ x2.mean((2, 3)).T / 2 + b_std**2
    for readout, expected in (("flatten", flat), ("gap", gap)):
        nngp, ntk = cnn_kernels(x1, x2, 0, w_std, b_std, readout)
        np.testing.assert_allclose(nngp.numpy(), expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(ntk.numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("w_std", [1.0, math.sqrt(2.0), 0.7])
def test_mlp_one_hidden_layer_matches_the_arc_cosine_formula(rng, w_std):
    """Cho & Saul: E[φ(u)φ(v)] = √(qq')(sin θ + (π−θ) cos θ)/(2π), E[φ'φ'] = (π−θ)/(2π)."""
    d = 5
    x = rng.standard_normal((6, d))
    nngp, ntk = mlp_kernels(x, None, 1, w_std, 0.0)
    s2 = w_std**2
    for i in range(6):
        for j in range(6):
            a, b = x[i], x[j]
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            rho = 1.0 if i == j else np.clip(a @ b / (na * nb), -1, 1)
            th = np.arccos(rho)
            k1 = s2 * s2 * na * nb / d * (np.sin(th) + (np.pi - th) * rho) / (2 * np.pi)
            t1 = k1 + s2 * (s2 * a @ b / d) * (np.pi - th) / (2 * np.pi)
            assert nngp[i, j].item() == pytest.approx(k1, rel=1e-12, abs=1e-14)
            assert ntk[i, j].item() == pytest.approx(t1, rel=1e-12, abs=1e-14)


def test_mlp_diagonal_halves_per_layer(rng):
    """With W_std = 1, b = 0: K_l(x, x) = |x|²/d · 2^-l, Θ(x, x) = (L + 1) |x|²/d · 2^-L."""
    x = rng.standard_normal((3, 4))
    for depth in range(4):
        nngp, ntk = mlp_kernels(x, None, depth)
        q = (x * x).sum(1) / 4
        np.testing.assert_allclose(torch.diagonal(nngp).numpy(), q / 2**depth, rtol=1e-12)
        np.testing.assert_allclose(torch.diagonal(ntk).numpy(), (depth + 1) * q / 2**depth, rtol=1e-12)


# ----------------------------------------------------------------------------- invariants

_images = st.integers(0, 2**31 - 1).map(lambda s: np.random.default_rng(s).standard_normal((4, 2, 5, 4)))


@given(x=_images, depth=st.integers(0, 3), readout=st.sampled_from(["flatten", "gap"]), b=st.sampled_from([0.0, 0.5]))
def test_cnn_kernels_are_symmetric_psd_and_blockwise_consistent(x, depth, readout, b):
    nngp, ntk = cnn_kernels(x, None, depth, 1.2, b, readout)
    for k in (nngp, ntk):
        assert torch.equal(k, k.T)
        ev = torch.linalg.eigvalsh(k)
        assert ev.min() >= -1e-12 * ev.max()
    # a cross block equals the block of the joint kernel, whatever the tiling
    n12, t12 = cnn_kernels(x[:2], x[2:], depth, 1.2, b, readout, tile=1)
    np.testing.assert_allclose(n12.numpy(), nngp[:2, 2:].numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t12.numpy(), ntk[:2, 2:].numpy(), rtol=1e-12, atol=1e-15)


@given(
    seed=st.integers(0, 2**31 - 1),
    a=st.floats(0.1, 10.0),
    c=st.floats(0.1, 10.0),
    depth=st.integers(1, 3),
    readout=st.sampled_from(["mlp", "flatten", "gap"]),
)
def test_bias_free_relu_kernels_are_bihomogeneous(seed, a, c, depth, readout):
    """Without biases every layer is positively homogeneous: K(a x, c x') = a c K(x, x')."""
    r = np.random.default_rng(seed)
    if readout == "mlp":
        x1, x2 = r.standard_normal((2, 6)), r.standard_normal((3, 6))
        f = lambda u, v: mlp_kernels(u, v, depth)  # noqa: E731
    else:
        x1, x2 = r.standard_normal((2, 1, 4, 4)), r.standard_normal((3, 1, 4, 4))
        f = lambda u, v: cnn_kernels(u, v, depth, readout=readout)  # noqa: E731
    k0, t0 = f(x1, x2)
    k1, t1 = f(a * x1, c * x2)
    np.testing.assert_allclose(k1.numpy(), a * c * k0.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(t1.numpy(), a * c * t0.numpy(), rtol=1e-10, atol=1e-14)


def test_binary_images_with_zero_variance_pixels_give_finite_kernels():
    """Boundary images are mostly 0: pixels with zero variance must not produce NaN."""
    x = np.zeros((3, 2, 8, 8))
    x[0, 0, 2, 2:6] = 1
    x[1, 0, 5, 1:3] = 1
    x[2, 1, 7, 7] = 1
    for readout in ("flatten", "gap"):
        nngp, ntk = cnn_kernels(x, None, 3, readout=readout)
        assert torch.isfinite(nngp).all() and torch.isfinite(ntk).all()
        assert (torch.diagonal(ntk) > 0).all()


def test_accepts_tensors_and_arrays_and_returns_float64(rng):
    x = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    k_np, _ = cnn_kernels(x, None, 1)
    k_t, _ = cnn_kernels(torch.from_numpy(x), None, 1)
    assert k_np.dtype == torch.float64 and torch.equal(k_np, k_t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(rng):
    x = rng.standard_normal((5, 2, 6, 6))
    for readout in ("flatten", "gap"):
        cpu = cnn_kernels(x, None, 2, readout=readout)
        gpu = cnn_kernels(x, None, 2, readout=readout, device="cuda")
        for a, b in zip(cpu, gpu):
            np.testing.assert_allclose(b.cpu().numpy(), a.numpy(), rtol=1e-10)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: mlp_kernels(np.ones((2, 3)), np.ones((2, 4)), 1), ValueError, "same per-example shape"),
        (lambda: mlp_kernels(np.ones((2, 3)), None, -1), ValueError, "depth"),
        (lambda: mlp_kernels(np.ones((2, 3)), None, 1, w_std=-1.0), ValueError, "w_std"),
        (lambda: mlp_kernels(np.ones((2, 3, 1)), None, 1), ValueError, "x1 must have 2 dimensions"),
        (lambda: mlp_kernels([[1.0]], None, 1), TypeError, "x1"),
        (lambda: mlp_kernels(np.array([[np.nan]]), None, 1), ValueError, "NaN"),
        (lambda: cnn_kernels(np.ones((2, 1, 3, 3)), None, 1, readout="max"), ValueError, "readout"),
        (lambda: cnn_kernels(np.ones((2, 1, 3, 3)), None, 1, tile=0), ValueError, "tile"),
        (lambda: ntk_cnn(1, 8, 1, readout="flatten"), ValueError, "image_size"),
        (lambda: ntk_mlp(3, 0, 1), ValueError, "width"),
        (lambda: width_convergence("rnn", [1, 2]), ValueError, "kind"),
    ],
)
def test_bad_arguments_raise(call, err, match):
    with pytest.raises(err, match=match):
        call()


# ----------------------------------------------------------------------------- finite width


def test_finite_networks_have_the_documented_shapes():
    g = torch.Generator().manual_seed(0)
    assert ntk_mlp(5, 16, 2, generator=g)(torch.ones(3, 5)).shape == (3, 1)
    assert ntk_cnn(2, 4, 2, readout="flatten", image_size=(6, 5), generator=g)(torch.ones(3, 2, 6, 5)).shape == (3, 1)
    gap = ntk_cnn(2, 4, 2, readout="gap", generator=g)
    assert gap(torch.ones(3, 2, 6, 5)).shape == gap(torch.ones(3, 2, 9, 9)).shape == (3, 1)


# Slopes measured with these settings (seed=0): mlp d1 -0.52, mlp d2 -0.55, cnn flatten -0.58,
# cnn gap -0.53; over seeds 0-2 they ranged -0.39..-0.61 (errors are RMS over seeds). The Frobenius
# error of an average of `width` independent terms is ~ c/sqrt(width): slope -1/2. A kernel off by a
# constant factor or a wrong convention would make the error plateau (slope near 0).
@pytest.mark.parametrize(
    "kind, kwargs, widths, seeds",
    [
        ("mlp", dict(depth=1, b_std=0.0), [64, 256, 1024, 4096], 10),
        ("mlp", dict(depth=2, b_std=0.5, w_std=1.4), [16, 64, 256, 1024], 10),
        ("cnn", dict(depth=2, readout="flatten", image_size=(4, 4)), [8, 32, 128, 512], 8),
        ("cnn", dict(depth=2, readout="gap", b_std=0.3, image_size=(4, 4)), [8, 32, 128, 512], 8),
    ],
)
def test_empirical_ntk_converges_like_one_over_sqrt_width(kind, kwargs, widths, seeds):
    res = width_convergence(kind, widths, seeds=seeds, **kwargs)
    assert -0.65 < res["slope"] < -0.35, res
    assert res["errors"][-1] < res["errors"][0] / 4, res


@pytest.mark.slow
def test_infinite_check_quick_writes_tables(tmp_path):
    """The CLI's `kernel infinite-check --quick` (about a minute of CPU)."""
    import json

    from jordanlab.experiments import infinite_check

    res = infinite_check(tmp_path, quick=True, progress=False)
    saved = json.loads((tmp_path / "infinite_check.json").read_text())
    assert saved["table"] == res["table"] and len(res["table"]) == 3
    for c in res["width_convergence"]:
        assert c["errors"][-1] < c["errors"][0]
    rows = res["arora"]["rows"]
    assert rows[-1]["rms_gap"] < rows[0]["rms_gap"]
