"""crossing-depth at inference (issue 14): the exact fixed point, the hardened integer depth, the certificate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jordanlab.models import CrossingDepthNet
from jordanlab.models.depth import certify_costs, integer_depth, shortest_path_depth

# Seed 0 of configs/quick-crossing-depth.toml (runs/crossing-depth): its 16 cost logits and its head, rounded.
SEED0_TABLE = [-10.713, -7.709, 7.468, -10.416, -10.892, 8.735, 7.97, -11.781,
               -10.346, -8.018, 7.807, -10.525, -10.543, -8.619, 8.718, -10.771]
SEED0_HEAD = ([6.381, -7.886, -1.292], 0.746)
# The no-penalty ablation (train.gate_penalty=0, seed 0): the same rounded table, soft costs.
NO_PENALTY_TABLE = [-3.927, -0.255, 0.272, -1.921, -3.845, 0.337, 0.116, -2.07,
                    -5.253, -0.326, 0.166, -1.016, -5.958, -0.239, 0.115, -1.909]


def _net(table, head=SEED0_HEAD, dtype=torch.float64, **kw) -> CrossingDepthNet:
    net = CrossingDepthNet(**kw).to(dtype)
    with torch.no_grad():
        net.table.copy_(torch.tensor(table, dtype=dtype).view(4, 2, 2))
        net.head.weight.copy_(torch.tensor(head[0], dtype=dtype).view(1, 3, 1, 1))
        net.head.bias.fill_(head[1])
    return net.eval()


def _hard(enter=(0, 0, 0, 0), leave=(1, 1, 1, 1)) -> list[float]:
    """Logits ±60 of a 0/1 table: free moves, the given entry and exit costs (left, right, top, bottom)."""
    t = np.full((4, 2, 2), -60.0)
    t[:, 0, 1] = np.where(np.asarray(enter) > 0, 60.0, -60.0)
    t[:, 1, 0] = np.where(np.asarray(leave) > 0, 60.0, -60.0)
    return t.ravel().tolist()


EXACT_HEAD = ([10.0, -10.0, 0.0], 0.0)
SUITES = [("shapes-32", None), ("multi-5", 32), ("nested", 32), ("spiral", 32), ("polygon", 32),
          ("randomwalk", 32), ("thick", 32), ("large-2x", 32), ("spiral", 64), ("thick", 64), ("nested", 64)]


def _suite(name, size, n=8):
    from jordanlab.data import make

    return make(name, "test", n=n, **({} if size is None else {"size": size}))


# ---------------------------------------------------------------- the exact fixed point equals the sweeps


@pytest.mark.parametrize(("suite", "size"), SUITES)
@pytest.mark.parametrize("table", [SEED0_TABLE, NO_PENALTY_TABLE], ids=["seed0", "no-penalty"])
def test_exact_solver_equals_the_converged_sweeps_on_every_suite(suite, size, table):
    """Dijkstra's depth is the sweeps' fixed point to float precision (float64, sweeps halted at 1e-13)."""
    boundaries, _ = _suite(suite, size)
    x = torch.from_numpy(boundaries).double()[:, None]
    net = _net(table, tol=1e-13)
    with torch.no_grad():
        c = net.gates(x)
        swept, rounds = net.sweep_depth(c, max_rounds=10_000)
        exact, ones = net.exact_depth(c)
    assert (rounds < 10_000).all() and (ones == 1).all()
    torch.testing.assert_close(exact, swept, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("suite", "size"), [("spiral", 64), ("thick", 64), ("nested", 32)])
def test_with_the_default_halting_the_sweeps_stop_above_the_fixed_point_and_predict_the_same(suite, size):
    """Default tol = 1e-4 in float32: the sweeps stop once a round gains less than tol, and round in float32.

    Their depth is within tol plus the float32 rounding bound of :func:`certify_costs` (2 L (d + 2) u,
    L = H W steps) of the exact one, and every mask is the same."""
    boundaries, _ = _suite(suite, size)
    x = torch.from_numpy(boundaries).float()[:, None]
    net = _net(SEED0_TABLE, dtype=torch.float32, harden=False)
    with torch.no_grad():
        c = net.gates(x)
        swept, _ = net.sweep_depth(c)
        exact, _ = net.exact_depth(c)
        bound = net.tol + 2 * x.shape[-1] * x.shape[-2] * (float(exact.max()) + 2) * 2.0**-24
        assert (exact - swept).abs().max() <= bound
        same = (net.depth_readout(x, swept) > 0) == (net.depth_readout(x, exact) > 0)
    assert same.all()


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_exact_solver_equals_the_sweeps_for_any_costs(h, w, seed):
    gen = torch.Generator().manual_seed(seed)
    c = torch.rand(2, 4, h, w, generator=gen, dtype=torch.float64)
    c[torch.rand(c.shape, generator=gen, dtype=torch.float64) < 0.3] = 0.0
    net = CrossingDepthNet(tol=1e-14).double()
    swept, _ = net.sweep_depth(c, max_rounds=10 * (h + w) * h * w + 10)
    torch.testing.assert_close(shortest_path_depth(c), swept, rtol=0, atol=1e-12)


def test_under_autograd_the_forward_is_the_sweeps():
    """Training keeps the sweeps: the logits (and so the gradients) are those of the sweep rounds."""
    boundaries, _ = _suite("spiral", 32, n=4)
    x = torch.from_numpy(boundaries).double()[:, None]
    net = _net(SEED0_TABLE)
    out = net(x)
    assert out.requires_grad
    with torch.no_grad():
        ref = net.depth_readout(x, net.sweep_depth(net.gates(x))[0])
    torch.testing.assert_close(out.detach(), ref)  # halted images run on under autograd: rounding only
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in net.parameters())


# ---------------------------------------------------------------- the hardened integer depth


CLASSES = {
    "reference": _hard(),
    "seed-0 split (1 from the right)": _hard(enter=(0, 1, 0, 0)),
    "horizontal entries free": _hard(enter=(0, 0, 1, 1)),
    "enter 1, leave free": _hard(enter=(1, 1, 1, 1), leave=(0, 0, 0, 0)),
}


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize(("suite", "size"), SUITES)
def test_every_certified_table_gives_the_exact_fill_on_every_suite(cls, suite, size):
    from jordanlab.evaluate import predict_masks
    from jordanlab.topology import fill

    boundaries, masks = _suite(suite, size)
    net = _net(CLASSES[cls], head=EXACT_HEAD)
    cert = net.certificate()
    assert cert["certified"] and cert["max_size"] is None, cert["failure"]
    pred, levels = predict_masks(net, boundaries)
    np.testing.assert_array_equal(pred, masks)
    np.testing.assert_array_equal(masks, fill(boundaries))
    assert (levels <= 1 + (masks.shape[-1] - 1) // 2).all()  # 1 + the nesting depth, far below 2 (H + W)


def test_integer_depth_counts_nested_rings_and_cuts_at_the_budget():
    b = np.zeros((1, 15, 15), np.uint8)
    b[0, 1, 1:14] = b[0, 13, 1:14] = b[0, 1:14, 1] = b[0, 1:14, 13] = 1
    b[0, 4, 4:11] = b[0, 10, 4:11] = b[0, 4:11, 4] = b[0, 4:11, 10] = 1
    t = np.zeros((4, 2, 2), np.int64)
    t[:, 1, 0] = 1
    d, levels = integer_depth(b, t)
    assert (d[0, 0, 0], d[0, 2, 2], d[0, 7, 7]) == (0, 1, 2) and levels[0] == 3
    d_cut, cut = integer_depth(b, t, max_rounds=2)
    assert d_cut[0, 7, 7] == 1 and cut[0] == 2
    with pytest.raises(ValueError, match="must cost 0"):
        integer_depth(b, np.ones((4, 2, 2), np.int64))
    with pytest.raises(ValueError, match="0/1 costs"):
        integer_depth(b, np.zeros((4, 2, 3)))


def test_a_batch_is_solved_image_by_image():
    boundaries, _ = _suite("nested", 32, n=6)
    t = np.zeros((4, 2, 2), np.int64)
    t[:, 1, 0] = 1
    d, levels = integer_depth(boundaries, t)
    for i in range(len(boundaries)):
        di, li = integer_depth(boundaries[i : i + 1], t)
        np.testing.assert_array_equal(d[i], di[0])
        assert levels[i] == li[0]


def test_the_1024_spiral_drifts_with_soft_costs_and_is_exact_hardened():
    """Issue 14's failure: the seed-0 costs (2e-5 per step) add up along a 1024² spiral's corridors."""
    from jordanlab.evaluate import predict_masks
    from jordanlab.topology import fill

    boundaries, _ = _suite("spiral", 1024, n=1)
    exact = fill(boundaries)
    net = _net(SEED0_TABLE, dtype=torch.float32)
    pred, levels = predict_masks(net, boundaries)
    np.testing.assert_array_equal(pred, exact)
    assert levels[0] <= 3
    net.harden = False
    soft, rounds = predict_masks(net, boundaries)
    assert (soft != exact).sum() > 10_000 and rounds[0] == 1


# ---------------------------------------------------------------- the certificate


def test_the_seed0_numbers_certify_every_canvas_and_the_soft_costs_a_bounded_one():
    cert = _net(SEED0_TABLE, dtype=torch.float32).certificate(size=1024)
    assert cert["certified"] and cert["max_size"] is None and cert["exact_at_size"]
    assert cert["table_class"].startswith("leave 1, enter free along the vertical axis")
    assert 64 <= cert["max_size_soft"] < 1024  # exact as learned on 64² (measured), drifts at 1024² (above)
    assert 0.45 < cert["tolerance"] < 0.5 and cert["failure"] is None


def test_the_no_penalty_ablation_is_refused():
    cert = _net(NO_PENALTY_TABLE, dtype=torch.float32).certificate(size=64)
    assert not cert["certified"] and cert["table_exact"] and cert["max_size"] < 32 and not cert["exact_at_size"]
    assert cert["failure"].startswith("drift")


@pytest.mark.parametrize(("table", "why"), [
    (_hard(enter=(1, 0, 1, 0)), "exact split"),  # no axis of free entries
    (_hard(enter=(1, 1, 1, 1)), "exact split"),  # every crossing costs 2
    (_hard(leave=(1, 1, 0, 1)), "exact split"),  # leaving free from the top
])
def test_tables_outside_the_proof_are_refused(table, why):
    cert = _net(table, head=EXACT_HEAD).certificate()
    assert not cert["certified"] and cert["failure"].startswith(why) and cert["max_size"] == 0


def test_a_cost_between_stroke_pixels_is_refused_like_the_3x3_window():
    t = np.asarray(_hard()).reshape(4, 2, 2)
    t[0, 1, 1] = 60.0  # stroke -> stroke from the left costs 1: a thick band counts as several crossings
    cert = _net(t.ravel().tolist(), head=EXACT_HEAD).certificate()
    assert not cert["certified"] and cert["failure"].startswith("free moves")


def test_a_soft_cost_near_one_half_and_a_wrong_head_are_refused():
    t = np.asarray(_hard()).reshape(4, 2, 2)
    t[2, 0, 0] = 0.1
    assert _net(t.ravel().tolist(), head=EXACT_HEAD).certificate()["failure"].startswith("free moves")
    lo = np.zeros((4, 2, 2))
    lo[:, 1, 0] = 1
    hi = lo.copy()
    hi[3, 0, 1] = 0.6  # over windows, one cost ranges across 1/2
    assert certify_costs(lo, hi, np.array([10.0, -10.0, 0.0]), 0.0)["failure"].startswith("hard table")
    assert certify_costs(lo, lo, np.array([10.0, 10.0, 0.0]), 0.0)["failure"].startswith("parity readout")
    assert certify_costs(lo, lo, np.array([-1.0, -10.0, 0.0]), 0.0)["failure"].startswith("parity readout")
    assert certify_costs(lo, lo, np.array([10.0, -1.0, 2.0]), 0.0)["failure"].startswith("parity readout")


def test_window_costs_lie_in_their_enumerated_ranges_and_a_random_window_is_refused():
    torch.manual_seed(0)
    net = CrossingDepthNet(window=(3, 3), width=4)
    lo, hi = net.cost_ranges()
    boundaries, _ = _suite("thick", 32, n=4)
    x = torch.from_numpy(boundaries).float()[:, None]
    c = net.gates(x).detach().double().numpy()
    b = np.pad(boundaries, ((0, 0), (1, 1), (1, 1)))
    for k, (dy, dx) in enumerate([(0, -1), (0, 1), (-1, 0), (1, 0)]):
        q = b[:, 1 + dy : 1 + dy + 32, 1 + dx : 1 + dx + 32]
        for bq in (0, 1):
            for bp in (0, 1):
                sel = (q == bq) & (boundaries == bp)
                if sel.any():
                    assert lo[k, bq, bp] - 1e-6 <= c[:, k][sel].min() and c[:, k][sel].max() <= hi[k, bq, bp] + 1e-6
    assert not net.certificate()["certified"]
    with pytest.raises(ValueError, match="too many"):
        CrossingDepthNet(window=(5, 5)).cost_ranges()


def test_eval_and_cli_report_the_certificate(tmp_path, capsys):
    from jordanlab.cli import main
    from jordanlab.evaluate import model_certificate
    from jordanlab.models import build

    assert model_certificate(build("parity-scan")) is None
    assert model_certificate(_net(SEED0_TABLE), size=64)["exact_at_size"]
    assert main(["certify", str(tmp_path / "missing")]) == 2
    assert "certify: error" in capsys.readouterr().err
