"""Path decomposition: exact mode reproduces training to float precision, tangent mode is O(lr)."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torch import nn

from jordanlab.kernels import PathRecorder, path_decomposition, per_example_loss, tangent_kernel
from jordanlab.kernels.path import _batches


class TinyCNN(nn.Module):
    """Smooth (tanh) dense CNN (N, 1, H, W) -> (N, 1, H, W): f is smooth along every update segment."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, width, 3, padding=1)
        self.b = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class TinyScalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.lin = nn.Linear(3, 1)

    def forward(self, x):
        return self.lin(torch.tanh(self.conv(x)).mean(dim=(2, 3))).squeeze(-1)


PIXELS = [(1, 1), (4, 3), (7, 0)]


def _data(dtype=torch.float64, n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g).to(dtype)
    y = (torch.rand(n, 1, 8, 8, generator=g) > 0.5).to(dtype)
    return x, y


def _net(dtype=torch.float64, width=4, seed=0):
    torch.manual_seed(seed)
    return TinyCNN(width).to(dtype)


@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("contraction", ["jvp", "per-example"])
def test_exact_mode_float64_reproduces_final(batch_size, contraction):
    x, y = _data()
    net = _net()
    r = path_decomposition(net, x, y, x[:3], lr=0.5, steps=12, batch_size=batch_size, pixels=PIXELS,
                           contraction=contraction)
    assert r.contributions.shape == (3, 10) and r.residual.shape == (3,)
    assert (r.final - r.initial).abs().max() > 1e-2  # the run actually moved the queries
    assert r.relative_residual <= 1e-9
    # final equals a fresh forward pass of the trained (in-place) model
    torch.testing.assert_close(r.final, net(x[:3])[:, 0][torch.arange(3), [1, 4, 7], [1, 3, 0]])


def test_exact_mode_float32():
    x, y = _data(torch.float32)
    r = path_decomposition(_net(torch.float32), x, y, x[:3], lr=0.5, steps=12, batch_size=4, pixels=PIXELS)
    assert r.final.dtype == torch.float32
    assert r.relative_residual <= 1e-4


def test_contractions_agree_and_maps_sum_to_contributions():
    x, y = _data()
    a = path_decomposition(_net(), x, y, x[:2], lr=0.3, steps=6, batch_size=4, pixels=PIXELS[:2],
                           contraction="jvp", pixel_maps=True)
    b = path_decomposition(_net(), x, y, x[:2], lr=0.3, steps=6, batch_size=4, pixels=PIXELS[:2],
                           contraction="per-example")
    torch.testing.assert_close(a.contributions, b.contributions, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(a.path_kernel, b.path_kernel, rtol=1e-10, atol=1e-13)
    assert a.pixel_maps.shape == (2, 10, 8, 8)
    torch.testing.assert_close(a.pixel_maps.sum(dim=(2, 3)), a.contributions, rtol=1e-10, atol=1e-13)


def test_sgd_examples_outside_every_batch_contribute_nothing():
    x, y = _data()
    r = path_decomposition(_net(), x, y, x[:1], lr=0.3, steps=2, batch_size=3, pixels=PIXELS[:1], seed=5)
    seen = torch.cat(_batches(10, 3, 2, 5)).unique()
    unseen = [i for i in range(10) if i not in seen.tolist()]
    assert len(unseen) == 4
    assert torch.all(r.contributions[:, unseen] == 0) and torch.all(r.path_kernel[:, unseen] == 0)


def test_tangent_residual_is_first_order_in_lr():
    """Same training time lr·steps: halving lr (doubling steps) halves the tangent-mode residual."""
    x, y = _data()
    res = []
    for lr, steps in [(0.4, 5), (0.2, 10), (0.1, 20)]:
        r = path_decomposition(_net(), x, y, x[:3], lr=lr, steps=steps, mode="tangent", pixels=PIXELS)
        res.append(r.relative_residual)
    ratios = [res[0] / res[1], res[1] / res[2]]
    assert all(1.6 <= q <= 2.4 for q in ratios), (res, ratios)
    exact = path_decomposition(_net(), x, y, x[:3], lr=0.4, steps=5, pixels=PIXELS)
    assert exact.relative_residual < 1e-6 * res[0]


def test_kernel_machine_form_equals_contributions_form():
    x, y = _data()
    r = path_decomposition(_net(), x, y, x[:3], lr=0.5, steps=8, batch_size=5, pixels=PIXELS)
    torch.testing.assert_close(r.loss_weights * r.path_kernel, r.contributions, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(r.kernel_machine(), r.final - r.residual, rtol=1e-12, atol=1e-14)
    assert (r.kernel_machine() - r.final).abs().max() <= 1e-9 * (r.final - r.initial).abs().max()


def test_scalar_model_and_path_kernel_is_domingos_sum():
    """Tangent mode, GD, scalar output: K^p(x_q, x_i) = Σ_s lr/N K_{w_s}(x_q, x_i) (tangent kernel at each step)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 5, 5, generator=g, dtype=torch.float64)
    y = (torch.rand(6, generator=g) > 0.5).double()
    torch.manual_seed(0)
    net = TinyScalar().double()
    ref_net = copy.deepcopy(net)
    r = path_decomposition(net, x, y, x[:2], loss="mse-logits", lr=0.2, steps=4, mode="tangent")
    kp = torch.zeros(2, 6, dtype=torch.float64)
    opt = torch.optim.SGD(ref_net.parameters(), lr=0.2)
    for _ in range(4):
        kp += 0.2 / 6 * tangent_kernel(ref_net, x[:2], x)
        opt.zero_grad()
        per_example_loss(ref_net(x)[:, None], y[:, None], "mse-logits").mean().backward()
        opt.step()
    torch.testing.assert_close(r.path_kernel, kp, rtol=1e-10, atol=1e-14)
    ex = path_decomposition(TinyScalar().double(), x, y, x[:2], loss="mse-logits", lr=0.2, steps=4)
    assert ex.relative_residual <= 1e-9


@pytest.mark.parametrize("mode", ["exact", "tangent"])
def test_recorder_in_plain_sgd_loop_equals_path_decomposition(mode):
    x, y = _data()
    net_a, net_b = _net(), _net()
    ref = path_decomposition(net_a, x, y, x[:2], lr=0.4, steps=7, batch_size=4, pixels=PIXELS[:2], mode=mode, seed=3)
    opt = torch.optim.SGD(net_b.parameters(), lr=0.4)
    rec = PathRecorder(net_b, x[:2], n_train=10, pixels=PIXELS[:2], optimizer=opt, mode=mode)
    for idx in _batches(10, 4, 7, 3):
        rec.before_step(idx, x[idx], y[idx])
        opt.zero_grad()
        per_example_loss(net_b(x[idx]).flatten(1), y[idx].flatten(1), "bce").mean().backward()
        opt.step()
        rec.after_step()
    got = rec.result()
    for name in ("initial", "final", "contributions", "path_kernel", "residual"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), rtol=1e-9, atol=1e-12)
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_recorder_rejects_non_sgd_updates():
    x, y = _data()
    net = _net()
    with pytest.raises(ValueError, match="Adam"):
        PathRecorder(net, x[:1], 10, pixels=PIXELS[:1], optimizer=torch.optim.Adam(net.parameters()))
    with pytest.raises(ValueError, match="momentum"):
        PathRecorder(net, x[:1], 10, pixels=PIXELS[:1], optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    # an lr-only recorder detects an update that is not -lr * grad
    rec = PathRecorder(net, x[:1], 10, pixels=PIXELS[:1], lr=0.1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    rec.before_step([0, 1], x[:2], y[:2])
    opt.zero_grad()
    per_example_loss(net(x[:2]).flatten(1), y[:2].flatten(1), "bce").mean().backward()
    opt.step()
    with pytest.raises(RuntimeError, match="not"):
        rec.after_step()


def test_argument_errors():
    x, y = _data()
    with pytest.raises(ValueError, match="pixels"):
        path_decomposition(_net(), x, y, x[:2], lr=0.1, steps=1)
    with pytest.raises(ValueError, match="one \\(row, col\\) per query"):
        path_decomposition(_net(), x, y, x[:2], lr=0.1, steps=1, pixels=PIXELS)
    with pytest.raises(ValueError, match="loss"):
        path_decomposition(_net(), x, y, x[:1], lr=0.1, steps=1, pixels=PIXELS[:1], loss="hinge")
    with pytest.raises(ValueError, match="mode"):
        path_decomposition(_net(), x, y, x[:1], lr=0.1, steps=1, pixels=PIXELS[:1], mode="flow")
    with pytest.raises(ValueError, match="lr"):
        path_decomposition(_net(), x, y, x[:1], lr=-1.0, steps=1, pixels=PIXELS[:1])
    with pytest.raises(ValueError, match="targets"):
        path_decomposition(_net(), x, y[:, :, :4], x[:1], lr=0.1, steps=1, pixels=PIXELS[:1])


def test_verify_quick_writes_json_and_meets_targets(tmp_path):
    import json

    from jordanlab.experiments import verify

    result = verify(tmp_path, quick=True, progress=False)
    on_disk = json.loads((tmp_path / "verify.json").read_text())
    assert on_disk["runs"] == json.loads(json.dumps(result["runs"]))
    assert (tmp_path / "verify.png").stat().st_size > 1000
    for run in result["runs"]:
        assert {"mode", "optimizer", "lr", "dtype", "steps", "relative_residual"} <= run.keys()
    exact = [r for r in result["runs"] if r["mode"] == "exact"]
    assert {(r["optimizer"], r["dtype"]) for r in exact} == {("gd", "float32"), ("gd", "float64"),
                                                            ("sgd", "float32"), ("sgd", "float64"),
                                                            ("adam", "float64"), ("ranger", "float64")}
    ranger = next(r for r in exact if r["optimizer"] == "ranger")
    assert ranger["rectified_steps"] < ranger["steps"] and ranger["replay_residual"] <= 1e-14  # un-rectified start
    for r in exact:
        assert r["relative_residual"] <= (1e-9 if r["dtype"] == "float64" else 1e-4), r
    tangent = sorted((r for r in result["runs"] if r["mode"] == "tangent"), key=lambda r: r["lr"])
    lrs = [r["lr"] for r in tangent]
    res = [r["relative_residual"] for r in tangent]
    assert lrs[-1] / lrs[0] >= 10 and res == sorted(res)
    assert 0.5 <= (res[-1] / res[0]) / (lrs[-1] / lrs[0]) <= 2.0  # first order in lr
    assert len(result["kernel_motion"]) >= 2


def test_kink_splitting_makes_relu_sgd_exact():
    """The ReLU local-cnn crosses kinks inside GD steps: fixed nodes leave ~1e-4, split pieces ~1e-15."""
    from jordanlab.models import build

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 1, 10, 10, generator=g, dtype=torch.float64) < 0.3).double()
    y = (torch.rand(6, 1, 10, 10, generator=g, dtype=torch.float64) < 0.5).double()
    res = {}
    for kinks in (False, True):
        torch.manual_seed(0)
        net = build("local-cnn", width=4, depth=3, norm="none").double()
        r = path_decomposition(net, x, y, x[:2], lr=0.5, steps=6, batch_size=3, pixels=[(4, 4), (6, 2)], kinks=kinks)
        res[kinks] = r.relative_residual
    assert r.pieces.shape == (6, 2) and int(r.pieces.max()) > 1  # some step was split
    assert res[True] <= 1e-9 and res[False] > 100 * res[True]
    with pytest.raises(ValueError, match="kinks=True needs mode='exact'"):
        path_decomposition(net, x, y, x[:1], lr=0.1, steps=1, pixels=[(0, 0)], mode="tangent", kinks=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-4, 4), st.integers(-4, 4)), min_size=1, max_size=6))
def test_kink_search_finds_every_relu_kink_with_few_probes(units):
    """f(s) = Σ_j relu(a_j + s b_j): every kink in (0, 1), one at s = 0 included (a_j = 0 < b_j), is found to
    rounding and the average gradient is exact; the search costs a few probes per kink (a unit exactly at
    its kink at s = 0 once cost ~450 probes: the bracket shrank towards 1e-120)."""
    from jordanlab.kernels._segments import SegmentQuadrature

    a = torch.tensor([float(u[0]) / 4 for u in units], dtype=torch.float64)
    b = torch.tensor([float(u[1]) for u in units], dtype=torch.float64)
    f = lambda p: torch.relu(p["a"]).sum()  # noqa: E731
    g, info = SegmentQuadrature().average_gradient(f, {"a": a}, {"a": b})
    def on_measure(aj: float, bj: float) -> float:  # exact: |{s ∈ [0, 1] : a_j + s b_j > 0}|
        if bj == 0:
            return float(aj > 0)
        r = min(max(-aj / bj, 0.0), 1.0)
        return 1.0 - r if bj > 0 else r

    want = torch.tensor([on_measure(float(aj), float(bj)) for aj, bj in zip(a, b)], dtype=torch.float64)
    torch.testing.assert_close(g, want, rtol=0, atol=1e-14)
    crossings = {float(-aj / bj) for aj, bj in zip(a, b) if bj != 0 and 0 <= -aj / bj < 1 and not (aj == 0 and bj < 0)}
    assert info.kinks <= len(crossings) and info.unresolved == 0
    assert info.evaluations <= 3 + 12 * (len(crossings) + 1), info
