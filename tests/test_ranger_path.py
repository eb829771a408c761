"""The exact Ranger path decomposition (issue 12) and the kink-split segment quadrature under it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_optimizer import Ranger
from torch import nn

from jordanlab.kernels._segments import SegmentQuadrature
from jordanlab.kernels.ranger_path import RangerPathRecorder, rectified_step_size
from jordanlab.models import build

from _paths import data as _data
from _paths import queries as _queries
from _paths import run


def _run(model: nn.Module, rec: RangerPathRecorder | None, opt: torch.optim.Optimizer, *, steps: int = 10,
         lr: float = 0.01, clip: float = 0.0, batch: int = 4) -> nn.Module:
    return run(model, [rec] if rec is not None else [], opt, steps=steps, lr=lr, clip=clip, batch=batch)


def _recorder(**kw) -> RangerPathRecorder:
    q, p = _queries()
    return RangerPathRecorder(q, p, n_train=10, **kw)


@pytest.mark.parametrize("decouple", [True, False])
def test_bookkeeping_matches_the_real_ranger_steps_on_a_relu_cnn(decouple):
    torch.manual_seed(0)
    model = build("local-cnn", width=4, depth=3, norm="none").double()
    opt = Ranger(model.parameters(), lr=0.05, k=3, weight_decay=0.05, weight_decouple=decouple)
    rec = _recorder(grad_clip=0.01)
    _run(model, rec, opt, steps=10, lr=0.05, clip=0.01)
    r = rec.result()
    assert r.steps == 10
    assert bool((~r.rectified[:4]).all()) and bool(r.rectified[-1])  # RAdam's un-rectified start, then rectified
    assert r.synced.tolist() == [(t + 1) % 3 == 0 for t in range(10)]  # Lookahead jumps at 3, 6, 9
    assert float(r.clip_factors.min()) < 1.0
    eps = torch.finfo(torch.float64).eps
    assert bool((r.step_errors <= 4 * eps * r.weight_norms).all())  # exact up to the run's own rounding of w_t
    for name in ("momentum_residuals", "gradient_residuals", "slow_residuals"):
        assert float(getattr(r, name).max()) <= 1e-14, name
    assert r.replay_residual <= 10 * 4 * eps  # the replayed weights are the run's (10 steps of rounding)
    assert float(r.bookkeeping.abs().max()) <= 1e-13
    assert float(r.regulariser.abs().max()) > 0  # weight decay moved the queries
    assert float(r.batchnorm.abs().max()) == 0.0
    assert r.unresolved == 0
    assert float(r.relative_residual.max()) <= 1e-9
    assert torch.all(r.contributions[:, 8:] == 0) and torch.all(r.contributions[:, :8] != 0)
    q, p = _queries()
    with torch.no_grad():
        final = torch.stack([model(x[None])[0, 0, i, j] for x, (i, j) in zip(q, p)])
    torch.testing.assert_close(r.final, final, rtol=0, atol=1e-12)


def test_fixed_nodes_leave_the_kink_error_that_splitting_removes():
    residuals = {}
    for kinks in (False, True):
        torch.manual_seed(0)
        model = build("local-cnn", width=4, depth=3, norm="none").double()
        rec = _recorder(kinks=kinks)
        _run(model, rec, Ranger(model.parameters(), lr=0.3, k=3), steps=8, lr=0.3)
        r = rec.result()
        residuals[kinks] = float(r.relative_residual.max())
    assert int(r.kinks.sum()) > 0 and r.unresolved == 0  # the steps crossed kinks, all located
    assert residuals[True] <= 1e-9
    assert residuals[False] > 100 * residuals[True]


def test_batchnorm_running_statistics_are_their_own_term_and_the_hook_changes_nothing():
    torch.manual_seed(0)
    a = build("unet", width=2, depth=2, norm="batch").double()
    rec = _recorder()
    _run(a, rec, Ranger(a.parameters(), lr=0.01, k=3), steps=7)
    torch.manual_seed(0)
    b = build("unet", width=2, depth=2, norm="batch").double()
    _run(b, None, Ranger(b.parameters(), lr=0.01, k=3), steps=7)
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), n  # weights and running statistics
    r = rec.result()
    assert float(r.batchnorm.abs().min()) > 0  # the running statistics moved the eval-mode queries
    eps = torch.finfo(torch.float64).eps
    assert bool((r.step_errors <= 4 * eps * r.weight_norms).all()) and r.replay_residual <= 7 * 4 * eps
    assert float(r.gradient_residuals.max()) <= 1e-12  # per-example terms in their batch sum to p.grad
    q, p = _queries()
    a.eval()
    with torch.no_grad():
        final = torch.stack([a(x[None])[0, 0, i, j] for x, (i, j) in zip(q, p)])
    torch.testing.assert_close(r.final, final, rtol=0, atol=1e-12)
    total = r.initial + r.contributions.sum(1) + r.regulariser + r.batchnorm
    assert float(r.relative_residual.max()) <= 1e-9, (r.final - total).tolist()


def test_step_size_is_the_optimizers_including_the_upward_unrectified_steps():
    w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = Ranger([w], lr=0.1, k=100, use_gc=False)
    m = torch.zeros(2, dtype=torch.float64)
    for t in range(1, 9):
        opt.zero_grad()
        (0.5 * (w ** 2).sum()).backward()
        g, before = w.grad.clone(), w.detach().clone()
        opt.step()
        m = 0.95 * m + 0.05 * g
        size, rectified = rectified_step_size(t, 0.1, 0.95, 0.999)
        v = opt.state[w]["exp_avg_sq"]
        expected = -size * m / (v.sqrt() + 1e-5) if rectified else -size * m
        torch.testing.assert_close(w.detach() - before, expected, rtol=1e-13, atol=0)
        assert rectified == (t >= 6)
        if not rectified:
            assert float((w.detach() - before) @ g) > 0  # pytorch_optimizer 4.1: r_t = -1 goes up the momentum


@pytest.mark.parametrize("make_opt, match", [
    (lambda p: torch.optim.Adam(p, lr=0.1), "pytorch_optimizer.Ranger"),
    (lambda p: Ranger(p, lr=0.1, maximize=True), "maximize"),
])
def test_refuses_other_optimizers(make_opt, match):
    model = build("local-cnn", width=2, depth=2, norm="none").double()
    with pytest.raises(ValueError, match=match):
        _recorder().bind(model, make_opt(model.parameters()))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.05, 2.0))
def test_segment_average_is_exact_for_random_relu_maxpool_nets(seed, scale):
    """f(w + Δ) − f(w) = ḡ·Δ to ~1e-12 for a ReLU + max-pool net and a large random step."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 2, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 1)).double()
    x = torch.rand(1, 1, 6, 6, generator=g, dtype=torch.float64)
    w = {n: p.detach().clone() for n, p in net.named_parameters()}
    d = {n: scale * torch.randn(v.shape, generator=g, dtype=torch.float64) * v.abs().mean() for n, v in w.items()}
    f = lambda p: torch.func.functional_call(net, p, (x,))[0, 0]  # noqa: E731
    gbar, info = SegmentQuadrature(nodes=2).average_gradient(f, w, d)
    change = float(f({k: w[k] + d[k] for k in w}) - f(w))
    dflat = torch.cat([v.reshape(-1) for v in d.values()])
    assert abs(change - float(gbar @ dflat)) <= 1e-12 * max(abs(change), 1e-3)
    assert info.unresolved == 0


def test_explain_adam_replays_a_real_ranger_unet_run_exactly(tmp_path):
    """A Ranger + BatchNorm U-Net trained by `jordanlab train`, replayed: same weights, output change accounted for."""
    import json

    from jordanlab.cli import main

    run = tmp_path / "run"
    assert main(["train", "configs/quick-unet.toml", "--out", str(run), "--device", "cpu", "--quiet",
                 "--set", "data.n_train=6", "--set", "data.n_val=0", "--set", "train.epochs=2",
                 "--set", "train.batch_size=3", "--set", "model.kwargs.width=2", "--set", "model.kwargs.depth=2"]) == 0
    out = tmp_path / "explain"
    assert main(["kernel", "explain-adam", str(run), "--image", "0", "--pixel", "16,16", "--out", str(out),
                 "--quiet"]) == 0
    summary = json.loads((out / "explain-summary.json").read_text())
    assert summary["optimizer"] == "ranger" and summary["steps"] == 4
    assert summary["weights_max_abs_diff_vs_run"] == 0.0  # the replay is the run
    assert summary["rectified_steps"] == 0  # 4 steps: all un-rectified (RAdam's start)
    q = summary["queries"][0]
    assert q["a_bn"] != 0.0  # the running statistics moved the eval-mode query
    change = q["fT"] - q["f0"]
    # a float32 run: the per-example gradients recomputed in float32 sum to the run's up to rounding
    assert abs(q["sum_a"] + q["a_reg"] + q["a_bn"] - change) <= 1e-4 * abs(change) + 1e-6
