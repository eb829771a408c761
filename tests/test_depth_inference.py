"""crossing-depth at inference (issue 14): the exact fixed point, the hardened integer depth, the certificate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jordanlab.models import CrossingDepthNet
from jordanlab.models.depth import DIRECTIONS, certify_costs, integer_depth, shortest_path_depth

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


# ---------------------------------------------------------------- the component graph: new path == old path == Dijkstra

# The component search as it was before the stroke-pixel gathers and the twin merging (commit 9842b40), kept
# verbatim as the reference the faster path must reproduce exactly.
_REF_FOUR = np.zeros((3, 3, 3), bool)
_REF_FOUR[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def _reference_pairs(node: np.ndarray, stroke: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, first is stroke) for the pixel pairs adjacent along ``axis`` with different values,
    listed so that pairs along a straight piece of stroke come one after another, then those repeats dropped."""
    if axis == 2:  # left/right neighbours: list column by column, so a vertical run of pairs is consecutive
        node, stroke = np.ascontiguousarray(node.transpose(0, 2, 1)), np.ascontiguousarray(stroke.transpose(0, 2, 1))
    s_lo = stroke[:, :-1]
    cross = s_lo != stroke[:, 1:]
    a, z, sa = node[:, :-1][cross], node[:, 1:][cross], s_lo[cross]
    if a.size > 1:
        keep = np.empty(a.size, bool)
        keep[0] = True
        np.not_equal(a[1:], a[:-1], out=keep[1:])
        keep[1:] |= z[1:] != z[:-1]
        a, z, sa = a[keep], z[keep], sa[keep]
    return a, z, sa


def _reference_component_depth(b: np.ndarray, t: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Node of every pixel ``(N, H, W)``, depth of every node (node 0: the frame), levels per image, background nodes."""
    from scipy import ndimage

    n, h, w = b.shape
    stroke = b != 0
    node = np.empty(b.shape, np.int32)
    lab_bg, n_bg = ndimage.label(~stroke, _REF_FOUR, output=np.int32)
    lab_st, n_st = ndimage.label(stroke, _REF_FOUR, output=np.int32)
    np.add(lab_st, n_bg, out=node, where=stroke)
    np.copyto(node, lab_bg, where=~stroke)
    m = n_bg + n_st + 1
    edges: dict[int, tuple[list, list]] = {0: ([], []), 1: ([], [])}  # cost -> (sources, destinations)

    def put(cost: int, src: np.ndarray, dst: np.ndarray) -> None:
        edges[int(cost)][0].append(src)
        edges[int(cost)][1].append(dst)

    for axis, (kf, kb) in ((2, (0, 1)), (1, (2, 3))):  # left/right along rows, top/bottom along columns
        a, z, sa = _reference_pairs(node, stroke, axis)  # a before z (left of / above it)
        a0, z0, a1, z1 = a[~sa], z[~sa], a[sa], z[sa]
        put(t[kf, 0, 1], a0, z0)  # a background, z stroke: a -> z enters z, predecessor before
        put(t[kb, 1, 0], z0, a0)  # z -> a leaves z, predecessor after
        put(t[kf, 1, 0], a1, z1)  # a stroke, z background: a -> z leaves a
        put(t[kb, 0, 1], z1, a1)  # z -> a enters a
    for k, (_, (dy, dx)) in enumerate(DIRECTIONS):  # entering a border pixel from off the canvas (background)
        sl = (slice(None), 0 if dy < 0 else h - 1, slice(None)) if dy else (slice(None), slice(None), 0 if dx < 0 else w - 1)
        nodes, st = node[sl].ravel(), stroke[sl].ravel()
        put(0, np.zeros(int((~st).sum()), np.int32), nodes[~st])
        put(t[k, 0, 1], np.zeros(int(st.sum()), np.int32), nodes[st])
    free_s, free_d = (np.concatenate(v) for v in edges[0])
    cost_s, cost_d = (np.concatenate(v) for v in edges[1])
    # Level-synchronous 0/1 breadth-first search: close the reached set under free edges, then one costly
    # step; edges into reached nodes are dropped as the search goes, so each level touches fewer.
    dist = np.full(m, -1, np.int64)
    reached = np.zeros(m, bool)
    reached[0] = True
    level = 0
    while True:
        while free_s.size:  # closure under free edges
            sel = reached[free_s]
            if not sel.any():
                break
            reached[free_d[sel]] = True
            keep = ~reached[free_d]
            free_s, free_d = free_s[keep], free_d[keep]
        dist[reached & (dist < 0)] = level
        keep = ~reached[cost_d]
        cost_s, cost_d = cost_s[keep], cost_d[keep]
        sel = reached[cost_s]
        if level >= budget - 1 or not sel.any():
            break
        reached[cost_d[sel]] = True
        level += 1
    dist[dist < 0] = budget - 1  # not reached within the budget
    # ndimage.label numbers components in scan order, so each image's labels form one range per kind.
    ends_bg = np.maximum.accumulate(lab_bg.reshape(n, -1).max(1))
    ends_st = np.maximum.accumulate(lab_st.reshape(n, -1).max(1)) + n_bg
    levels = np.ones(n, np.int64)
    for ends, first in ((ends_bg, 1), (ends_st, n_bg + 1)):
        starts = np.concatenate([[first], ends[:-1] + 1])
        for i in range(n):
            if ends[i] >= starts[i]:
                levels[i] = max(levels[i], int(dist[starts[i] : ends[i] + 1].max()) + 1)
    return node, dist, np.minimum(levels, budget), n_bg



def _hard_costs(b: np.ndarray, t: np.ndarray) -> torch.Tensor:
    """Per-pixel costs ``(N, 4, H, W)`` of the 0/1 table: ``t[k, B_q, B_p]``, q off the canvas = background."""
    pad = np.pad(b, ((0, 0), (1, 1), (1, 1)))
    h, w = b.shape[1:]
    c = [t[k][pad[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], b] for k, (_, (dy, dx)) in enumerate(DIRECTIONS)]
    return torch.from_numpy(np.stack(c, 1).astype(np.float64))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 24), w=st.integers(1, 24), density=st.floats(0.05, 0.7),
       diagonal=st.booleans(), bits=st.integers(0, 2**8 - 1), budget=st.integers(1, 8), tiny=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_component_depth_equals_the_old_path_and_dijkstra_on_random_images(n, h, w, density, diagonal, bits, budget,
                                                                            tiny, seed):
    """Any binary image, any 0/1 table with free moves inside a kind, any budget, the flag tables or the sorts.

    Diagonal strokes (many 4-connected pieces with the same crossings: the twins) or noise (components with
    many neighbours)."""
    from unittest import mock

    from jordanlab.models import depth_solve as depth_mod

    rng = np.random.default_rng(seed)
    b = (rng.random((n, h, w)) < density).astype(np.uint8)
    if diagonal:  # staircase bands: 4-connected pieces of one 8-connected stroke
        yy, xx = np.mgrid[:h, :w]
        b |= (((yy + xx) % 5 == 0) | ((yy - xx) % 7 == 0)).astype(np.uint8)[None] & (rng.random((n, h, w)) < 0.9)
    t = np.zeros((4, 2, 2), np.int64)
    t[:, 0, 1] = [(bits >> k) & 1 for k in range(4)]
    t[:, 1, 0] = [(bits >> (4 + k)) & 1 for k in range(4)]
    with mock.patch.object(depth_mod, "_PAIR_TABLE_MAX", 0 if tiny else depth_mod._PAIR_TABLE_MAX):
        d, levels = integer_depth(b, t, max_rounds=budget)
    if bits:  # the old path could not run an all-free table (no costly edge to concatenate)
        node, dist, ref_levels, _ = _reference_component_depth(b, t, budget)
        np.testing.assert_array_equal(d, dist[node])
        np.testing.assert_array_equal(levels, ref_levels)
    exact = shortest_path_depth(_hard_costs(b, t)).numpy()
    np.testing.assert_array_equal(d, np.minimum(exact, budget - 1))
    np.testing.assert_array_equal(levels, np.minimum(1 + exact.reshape(n, -1).max(1), budget))


@settings(max_examples=20, deadline=None)
@given(h=st.integers(2, 40), w=st.integers(2, 40), density=st.floats(0.05, 0.6), cls=st.sampled_from(sorted(CLASSES)),
       seed=st.integers(0, 2**31 - 1))
def test_hardened_masks_are_the_parity_of_the_dijkstra_depth_on_random_images(h, w, density, cls, seed):
    """The masks of a certified model (exact head: stroke, or odd depth) on noise: every pixel, bit for bit."""
    from jordanlab.evaluate import predict_masks

    b = (np.random.default_rng(seed).random((2, h, w)) < density).astype(np.uint8)
    net = _net(CLASSES[cls], head=EXACT_HEAD)
    t = np.asarray(net.certificate()["table"])
    pred, levels = predict_masks(net, b)
    exact = shortest_path_depth(_hard_costs(b, t)).numpy().astype(np.int64)
    np.testing.assert_array_equal(pred, (b == 1) | (exact % 2 == 1))
    np.testing.assert_array_equal(levels, 1 + exact.reshape(2, -1).max(1))
