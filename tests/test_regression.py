"""Kernel regression and closed-form MSE gradient flow: against Euler integration and each other."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jordanlab.kernels.infinite import mlp_kernels
from jordanlab.kernels.regression import gradient_descent_mse, kernel_regression


def _problem(rng, n=12, m=5, d=6, k=None):
    x = rng.standard_normal((n + m, d))
    _, ntk = mlp_kernels(x, None, 2)
    y = rng.standard_normal(n if k is None else (n, k))
    return ntk[m:, :][:, m:], ntk[:m, m:], torch.from_numpy(y)


def _euler(k_tt, k_st, y, f0, g0, lr, t, steps, ridge=0.0):
    """Explicit Euler on df(X)/dt = -η(K+λI)(f - y), df(x)/dt = -η K(x,X)(f - y)."""
    a = k_tt + ridge * torch.eye(k_tt.shape[0], dtype=torch.float64)
    f, g = f0.clone(), g0.clone()
    dt = t / steps
    for _ in range(steps):
        r = f - y
        f, g = f - lr * dt * (a @ r), g - lr * dt * (k_st @ r)
    return f, g


@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_closed_form_equals_euler_integration(rng, ridge):
    k_tt, k_st, y = _problem(rng)
    f0 = torch.from_numpy(rng.standard_normal(12))
    g0 = torch.from_numpy(rng.standard_normal(5))
    lr, t = 0.7, 1.3
    predict = gradient_descent_mse(k_tt, y, lr=lr, ridge=ridge)
    ft, gt = predict(t, fx_train_0=f0, fx_test_0=g0, k_test_train=k_st)
    fe, ge = _euler(k_tt, k_st, y, f0, g0, lr, t, 4000, ridge)
    # Euler's global error is O(dt): with dt = t/4000 it is below 1e-3 relative (measured ~1e-4).
    scale = float(torch.linalg.norm(y))
    assert torch.allclose(ft, fe, atol=1e-3 * scale)
    assert torch.allclose(gt, ge, atol=1e-3 * scale)
    # and the error halves when the step halves (first order): a real convergence check
    fe2, ge2 = _euler(k_tt, k_st, y, f0, g0, lr, t, 8000, ridge)
    e1 = float((gt - ge).abs().max())
    e2 = float((gt - ge2).abs().max())
    assert 0.4 < e2 / e1 < 0.6


def test_infinite_time_equals_kernel_regression(rng):
    k_tt, k_st, y = _problem(rng)
    predict = gradient_descent_mse(k_tt, y, lr=1.0)
    ft, gt = predict(math.inf, k_test_train=k_st)
    assert torch.allclose(ft, y, atol=1e-8)
    assert torch.allclose(gt, kernel_regression(k_st, k_tt, y), atol=1e-10)
    # a long finite time approaches the same limit
    _, g_late = predict(1e6, k_test_train=k_st)
    assert torch.allclose(g_late, gt, atol=1e-6)


def test_kernel_regression_equals_direct_solve_and_interpolates(rng):
    k_tt, k_st, y = _problem(rng, k=3)
    f = kernel_regression(k_st, k_tt, y, ridge=0.01)
    direct = k_st @ torch.linalg.solve(k_tt + 0.01 * torch.eye(12, dtype=torch.float64), y)
    assert f.shape == (5, 3)
    assert torch.allclose(f, direct, atol=1e-10)
    assert torch.allclose(kernel_regression(k_tt, k_tt, y), y, atol=1e-8)


def test_times_sequence_stacks_and_time_zero_is_initial(rng):
    k_tt, k_st, y = _problem(rng)
    f0 = torch.from_numpy(rng.standard_normal(12))
    predict = gradient_descent_mse(k_tt, y, lr=0.5)
    ft, gt = predict([0.0, 1.0, math.inf], fx_train_0=f0, fx_test_0=0.0, k_test_train=k_st)
    assert ft.shape == (3, 12) and gt.shape == (3, 5)
    assert torch.allclose(ft[0], f0, atol=1e-12) and torch.allclose(gt[0], torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(ft[1], predict(1.0, fx_train_0=f0), atol=1e-12)


def test_singular_kernel_raises_naming_ridge_not_nan():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    k = x @ x.T  # rank 2 of 3
    y = np.array([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="ridge"):
        kernel_regression(k, k, y)
    predict = gradient_descent_mse(k, y)
    with pytest.raises(ValueError, match="ridge"):
        predict(math.inf)
    # finite time is well defined on a singular kernel (the gain tends to η t on its null space)
    ft = predict(2.0)
    assert torch.isfinite(ft).all()
    # a ridge makes it invertible
    assert torch.isfinite(kernel_regression(k, k, y, ridge=1e-3)).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k_train_train=np.ones((2, 3)), y_train=np.zeros(2)), "k_train_train"),
        (dict(k_train_train=np.eye(3), y_train=np.zeros(2)), "y_train"),
        (dict(k_train_train=np.array([[1.0, 0.5], [0.0, 1.0]]), y_train=np.zeros(2)), "symmetric"),
        (dict(k_train_train=np.eye(2), y_train=np.zeros(2), ridge=-1.0), "ridge"),
        (dict(k_train_train=np.diag([1.0, -1.0]), y_train=np.zeros(2)), "semidefinite"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kernel_regression(np.zeros((1, kwargs["k_train_train"].shape[1])), **kwargs)


def test_bad_lr_and_time_raise():
    with pytest.raises(ValueError, match="lr"):
        gradient_descent_mse(np.eye(2), np.zeros(2), lr=0.0)
    predict = gradient_descent_mse(np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="t must"):
        predict(-1.0)
    with pytest.raises(ValueError, match="k_test_train"):
        predict(1.0, k_test_train=np.zeros((3, 5)))
    with pytest.raises(TypeError, match="k_train_train"):
        gradient_descent_mse([[1.0]], np.zeros(1))


@given(seed=st.integers(0, 10_000), t=st.floats(0.0, 50.0))
def test_training_loss_never_increases(seed, t):
    """Gradient flow on a PSD kernel monotonically decreases ½‖f(X) − y‖²."""
    rng = np.random.default_rng(seed)
    k_tt, _, y = _problem(rng, n=6, m=1, d=3)
    predict = gradient_descent_mse(k_tt, y, lr=1.0)
    f1 = predict(t)
    f2 = predict(t + 0.5)
    assert float(((f2 - y) ** 2).sum()) <= float(((f1 - y) ** 2).sum()) + 1e-12


# ----------------------------------------------------------------------------- Arora et al. and the thesis


def test_discrete_gd_closed_form_equals_iterating_the_linear_model(rng):
    from jordanlab.kernels import discrete_gradient_descent_mse

    k_tt, k_st, y = _problem(rng)
    lr = 1.0 / float(torch.linalg.eigvalsh(k_tt)[-1])
    f, g = torch.zeros(12, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for _ in range(37):
        r = f - y
        f, g = f - lr * (k_tt @ r), g - lr * (k_st @ r)
    assert torch.allclose(discrete_gradient_descent_mse(k_tt, k_st, y, lr=lr, steps=37), g, atol=1e-10)


def test_wide_network_trained_by_gd_approaches_the_ntk_predictor():
    """Arora et al. (2019), Thm 3.2, on the point task: the gap shrinks with width.

    Measured (2 seeds, 8 train / 8 test images, 30 steps): RMS gap 0.131 at width 32, 0.067 at 512.
    """
    from jordanlab.experiments import arora_check

    res = arora_check(widths=(32, 512), n_train=8, n_test=8, steps=30, seeds=2)
    narrow, wide = res["rows"]
    assert res["scale_of_f_ntk"] > 0.05  # the predictor is not trivially zero
    assert wide["rms_gap"] < 0.75 * narrow["rms_gap"], res["rows"]
    assert wide["max_gap"] < narrow["max_gap"], res["rows"]


def test_point_readout_is_the_logit_at_the_marked_pixel():
    from jordanlab.experiments import PointReadout

    g = torch.Generator().manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.zeros(3, 2, 9, 7)
    x[:, 0] = (torch.rand(3, 9, 7, generator=g) < 0.3).float()
    pix = [(0, 0), (4, 3), (8, 6)]
    for i, (r, c) in enumerate(pix):
        x[i, 1, r, c] = 1.0
    dense = net(x[:, :1])
    expected = torch.stack([dense[i, 0, r, c] for i, (r, c) in enumerate(pix)])
    assert torch.allclose(PointReadout(net)(x), expected)


@pytest.mark.parametrize("path_kernel, cntk_gap", [(True, False), (False, True)])
def test_thesis_tiny_run_fits_and_writes_a_consistent_table(tmp_path, path_kernel, cntk_gap):
    import json

    from jordanlab.experiments import ThesisConfig, run_thesis

    suites = ("nested", "large-2x")
    # the CNTK-GAP case (slow kernel) runs without networks: it only checks that branch
    kw = {} if path_kernel else {"networks": ()}
    cfg = ThesisConfig(n_train=16 if path_kernel else 4, n_test=4 if path_kernel else 2, suites=suites, depth=1,
                       steps=150, batch_size=16, checkpoints=2, path_kernel=path_kernel,
                       cntk_gap=cntk_gap, **kw)
    res = run_thesis(tmp_path, config=cfg, progress=False)
    assert json.loads((tmp_path / "thesis.json").read_text())["accuracy"] == res["accuracy"]
    assert (tmp_path / "thesis.png").stat().st_size > 0
    acc, agree = res["accuracy"], res["agreement_with_network"]
    nets = {"unet", "scan"} if path_kernel else set()
    expected = {"ntk-mlp", "ntk-cnn-flatten"} | nets | {f"{n}/tangent-final" for n in nets}
    expected |= {f"{n}/path-checkpoint" for n in nets} if path_kernel else set()
    expected |= {"ntk-cnn-gap"} if cntk_gap else set()
    assert set(acc) == expected
    assert [r["method"] for r in res["table"]] == list(acc)
    for row in res["table"]:
        assert {"in-dist", *suites} <= set(row), row
    for method, row in acc.items():
        assert set(row) == {"in-dist", *suites}
        assert 0.0 <= row["in-dist"] <= 1.0 and 0.0 <= row["nested"] <= 1.0
        # kernels need same-size inputs: only the networks run on the 64x64 canvas
        assert (row["large-2x"] is not None) == (method in nets), method
        assert (agree[method]["in-dist"] is not None) == ("/" in method), method
    for net in nets:  # (b) the networks fit their training set (the old GD CNNs sat at chance)
        assert res["details"][f"{net}/train_accuracy"] == 1.0, (net, res["details"][f"{net}/loss_every_10_steps"])


def test_ridge_and_lr_accept_numpy_and_tensor_scalars_only(rng):
    k_tt, k_st, y = _problem(rng)
    ref = kernel_regression(k_st, k_tt, y, ridge=0.01)
    assert torch.equal(kernel_regression(k_st, k_tt, y, ridge=torch.tensor(0.01, dtype=torch.float64)), ref)
    assert torch.equal(kernel_regression(k_st, k_tt, y, ridge=np.float64(0.01)), ref)
    with pytest.raises(TypeError, match="ridge"):
        kernel_regression(k_st, k_tt, y, ridge=np.array([0.01, 0.02]))
    with pytest.raises(TypeError, match="lr"):
        gradient_descent_mse(k_tt, y, lr="fast")


def test_thesis_checkpoint_kernel_equals_checkpoint_path_kernel():
    from jordanlab.kernels import checkpoint_path_kernel
    from jordanlab.experiments import ThesisConfig
    from jordanlab.experiments.thesis import _build, _checkpoint_kernel, _point_data, _train

    cfg = ThesisConfig(n_train=4, n_test=2, suites=(), steps=4, batch_size=2, checkpoints=2)
    x, y, tests = _point_data(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _build("scan", {"width": 2, "encoder_depth": 1, "head_width": 2})
    ckpts, etas, _ = _train(model, x, y, cfg, 0, False)
    xq = torch.cat([x, tests["in-dist"][0]])
    ours = _checkpoint_kernel(ckpts, etas, "scan", {"width": 2, "encoder_depth": 1, "head_width": 2}, xq, x)
    ref = checkpoint_path_kernel(ckpts, etas, lambda: _build("scan", {"width": 2, "encoder_depth": 1, "head_width": 2}),
                                 x, xq, loss="mse", dtype=torch.float64).path_kernel
    assert torch.allclose(ours, ref, rtol=1e-9, atol=1e-12), (ours - ref).abs().max()
