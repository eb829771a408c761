"""Tests for jordanlab.models.automaton: the state scan, the hand-set parity automaton, the interface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jordanlab.models import AutomatonScanNet, build, receptive_field, suffix_state_scan
from jordanlab.models.automaton import hold_bias


def _random_transitions(gen: torch.Generator, *batch: int, k: int, stochastic: bool = True) -> torch.Tensor:
    z = torch.randn(*batch, k, k, generator=gen, dtype=torch.float64)
    return torch.softmax(3 * z, dim=-1) if stochastic else z


@pytest.mark.parametrize("width", [1, 2, 3, 7, 32, 33])
@pytest.mark.parametrize("stochastic", [True, False])
def test_doubling_scan_equals_the_sequential_scan(width, stochastic):
    gen = torch.Generator().manual_seed(width)
    a = _random_transitions(gen, 2, 3, width, k=4, stochastic=stochastic) / (1 if stochastic else 2)
    start = torch.softmax(torch.randn(4, generator=gen, dtype=torch.float64), dim=-1)
    fast = suffix_state_scan(a, start, method="doubling")
    slow = suffix_state_scan(a, start, method="sequential")
    assert fast.shape == (2, 3, width, 4)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)


def test_scan_is_the_product_from_the_right_border_in_order():
    # Non-commuting matrices: h_c = s A_{W-1} ... A_c, so the right-most matrix acts first.
    gen = torch.Generator().manual_seed(0)
    a = _random_transitions(gen, 5, k=3, stochastic=False)
    s = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    h = suffix_state_scan(a, s)
    expect = s.clone()
    for c in range(4, -1, -1):
        expect = expect @ a[c]
        torch.testing.assert_close(h[c], expect)


def test_stochastic_products_stay_distributions_on_long_rows():
    gen = torch.Generator().manual_seed(1)
    a = _random_transitions(gen, 1, 1024, k=6).float()
    h = suffix_state_scan(a, torch.eye(6)[0])
    assert torch.isfinite(h).all() and (h >= 0).all()
    torch.testing.assert_close(h.sum(-1), torch.ones(1, 1024), atol=1e-5, rtol=0)


def test_scan_input_errors():
    with pytest.raises(ValueError, match="shape"):
        suffix_state_scan(torch.zeros(3, 2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="start must end with k = 2"):
        suffix_state_scan(torch.zeros(3, 2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="method='fast'"):
        suffix_state_scan(torch.zeros(3, 2, 2), torch.zeros(2), method="fast")


def _hand_set_parity_automaton(k: float = 20.0, *, parity: bool = True) -> AutomatonScanNet:
    """``automaton-scan`` (2 states, 5×3 window) with weights implementing the thin crossing rule.

    The window's rows r, r+1 (indices 2, 3 of rows r−2 … r+2) give, as in ParityScanNet's hand-set
    test, u₀ = ReLU(3B + below − 3) = d (crossing edges going down), u₁ = ReLU(d − 1), u₂ = ReLU(d − 2);
    then m = ReLU(u₀ − 2u₁ + 2u₂) = d mod 2, and "hold" gets the logit k(1 − 2m), "swap" −k(1 − 2m):
    A = identity at an even d and the swap at an odd d (softmax of ±k: 0/1 up to e^{−2k}).
    From h_W = e₀ the odd state holds the mass iff the crossings at and right of c are odd.

    ``parity=True``: one memory state, logits [P, Q] (keep, flip); head reads σ = h₀ − h₁ = ±1:
    logit = 2·ReLU(B) + 2·ReLU(−σ) − 1. ``parity=False``: logits of the full 2×2 matrix; head reads
    h: logit = 2·ReLU(B) + 2·ReLU(2h₁ − 1) − 1. Figure iff curve pixel or odd parity.
    """
    net = build("automaton-scan", states=2, window=(5, 3), width=3, parity=parity, reset=parity)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for ch, bias in enumerate([-3.0, -4.0, -5.0]):
            net.window.weight[ch, 0, 2, 1] = 3.0
            net.window.weight[ch, 0, 3, :] = 1.0
            net.window.bias[ch] = bias
        net.transition_mlp[1].weight[0, :, 0, 0] = torch.tensor([1.0, -2.0, 2.0])
        last = net.transition_mlp[3]
        # (source, target) entries: (0,0) hold, (0,1) swap [, (1,0) swap, (1,1) hold]
        hold = torch.tensor([1.0, -1.0] if parity else [1.0, -1.0, -1.0, 1.0])
        last.weight[:, 0, 0, 0] = -2 * k * hold
        last.bias.copy_(k * hold)
        net.head[0].weight[0, 0, 0, 0] = 1.0  # B
        if parity:
            net.head[0].weight[1, 1, 0, 0] = -1.0  # −σ
        else:
            net.head[0].weight[1, 2, 0, 0] = 2.0  # 2h₁ − 1 (channels: x, h₀, h₁)
            net.head[0].bias[1] = -1.0
        net.head[2].weight[0, :2, 0, 0] = 2.0
        net.head[2].bias[0] = -1.0
    return net.eval()


@pytest.mark.parametrize(
    ("suite", "size"),
    [("shapes-32", None), ("multi-5", 32), ("nested", 32), ("spiral", 32), ("polygon", 32),
     ("randomwalk", 32), ("large-2x", 32), ("spiral", 64)],
)
@pytest.mark.parametrize(("method", "parity"), [("doubling", True), ("sequential", True), ("doubling", False)])
def test_hand_set_automaton_equals_the_exact_fill_on_thin_curves(suite, size, method, parity):
    from jordanlab.data import make
    from jordanlab.topology import fill

    kw = {} if size is None else {"size": size}
    boundaries, masks = make(suite, "test", n=8, **kw)
    x = torch.from_numpy(boundaries).float()[:, None]
    net = _hand_set_parity_automaton(parity=parity)
    net.method = method
    a = net.gates(x)
    assert torch.all((a < 1e-6) | (a > 1 - 1e-6))  # every transition is (numerically) 0/1
    assert net.gate_penalty(a).item() < 1e-6
    pred = (net(x) > 0).squeeze(1).numpy().astype(np.uint8)
    np.testing.assert_array_equal(pred, masks)
    np.testing.assert_array_equal(masks, fill(boundaries))


def test_hand_set_thin_rule_is_not_the_thick_rule():
    """The thin crossing rule fails on a 3-pixel band: the automaton needs more than 2 memoryless states."""
    from jordanlab.data import make

    boundaries, masks = make("thick", "test", n=8, size=32)
    x = torch.from_numpy(boundaries).float()[:, None]
    pred = (_hand_set_parity_automaton()(x) > 0).squeeze(1).numpy().astype(np.uint8)
    assert not np.array_equal(pred, masks)


def test_parity_transitions_commute_with_the_parity_swap():
    """A = [[P, Q], [Q, P]]: swapping the parity bit before or after a step gives the same state."""
    torch.manual_seed(5)
    net = build("automaton-scan", states=6, width=4)
    a = net.gates(torch.rand(2, 1, 7, 8).round())
    swap = torch.eye(6)[[3, 4, 5, 0, 1, 2]]
    torch.testing.assert_close(swap @ a @ swap, a)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 7, 8, 6))
    # Memory marginal evolves by P + Q whatever the parity; the head reads only σ ∈ [−1, 1].
    x = torch.rand(2, 1, 7, 8).round()
    h = net.scan_states(net.gates(x))
    sigma = h[:, :3].sum(1) - h[:, 3:].sum(1)
    assert (sigma.abs() <= 1 + 1e-6).all()
    assert net.head[0].in_channels == 1 + 1


def test_background_resets_the_memory_and_keeps_the_parity():
    torch.manual_seed(6)
    net = build("automaton-scan", states=6, width=4)
    x = torch.zeros(1, 1, 6, 9)
    x[0, 0, 2, 3:5] = 1.0
    a = net.gates(x)
    reset = torch.zeros(6, 6)
    reset[:3, 0] = 1.0
    reset[3:, 3] = 1.0
    background = x[0, 0] == 0
    assert torch.equal(a[0][background], reset.expand(int(background.sum()), 6, 6))
    assert not torch.equal(a[0, 2, 3], reset)  # the stroke's own transitions are learned
    h = net.scan_states(a)[0]  # (k, H, W): right of the run the mass is in (even, memory 0)
    assert torch.equal(h[:, 2, 5], torch.eye(6)[0])
    mem_left = h[:, 2, 2]  # left of the run: memory 0 again, whatever the parity
    torch.testing.assert_close(mem_left[0] + mem_left[3], torch.tensor(1.0))
    free = build("automaton-scan", states=6, width=4, reset=False)
    assert not torch.equal(free.gates(x)[0][background][0], reset)


def test_unconstrained_automaton_reads_every_state():
    net = build("automaton-scan", states=3, width=4, parity=False, reset=False)
    assert net.head[0].in_channels == 1 + 3
    assert net(torch.zeros(1, 1, 5, 6)).shape == (1, 1, 5, 6)


def test_gate_penalty_is_the_normalised_row_entropy():
    net = build("automaton-scan", states=3, width=2, parity=False, reset=False)
    perm = torch.eye(3)[[2, 0, 1]].expand(1, 4, 5, 3, 3)
    uniform = torch.full((1, 4, 5, 3, 3), 1 / 3)
    assert net.gate_penalty(perm).item() == 0.0
    assert net.gate_penalty(uniform).item() == pytest.approx(1.0, rel=1e-6)


def test_initial_transitions_hold_and_are_row_stochastic():
    torch.manual_seed(0)
    net = build("automaton-scan", states=4, width=8, parity=False, reset=False)
    a = net.gates(torch.rand(2, 1, 6, 7).round())
    assert a.shape == (2, 6, 7, 4, 4)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 6, 7, 4))
    diag = a.diagonal(dim1=-2, dim2=-1)
    assert (diag > 0.5).all()  # the diagonal logit: A ≈ identity at initialisation
    for k in (2, 4, 9):
        p = torch.softmax(hold_bias(k) * torch.eye(k)[0], dim=0)[0].item()
        assert p == pytest.approx(0.95, rel=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (32, 32), (19, 64)])
@pytest.mark.parametrize(("states", "parity"), [(6, True), (5, False)])
def test_any_canvas_and_finite_gradients(size, states, parity):
    torch.manual_seed(1)
    net = build("automaton-scan", in_channels=2, states=states, window=(5, 3), width=4, parity=parity, reset=parity)
    x = torch.rand(2, 2, *size).round()
    y = net(x)
    assert y.shape == (2, 1, *size) and torch.isfinite(y).all()
    (y.square().mean() + net.gate_penalty(net.gates(x))).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_transitions_see_only_their_window_of_channel_zero():
    torch.manual_seed(3)
    net = build("automaton-scan", in_channels=2, states=2, window=(5, 3), width=4)
    x = torch.rand(1, 2, 11, 9, requires_grad=True)
    a = net.gates(x)
    a[0, 5, 4].sum().backward()
    g = x.grad[0].abs()
    assert g[1].sum() == 0
    rows, cols = torch.nonzero(g[0], as_tuple=True)
    assert set(rows.tolist()) <= set(range(3, 8)) and set(cols.tolist()) <= {3, 4, 5}
    x2 = x.detach()
    assert torch.equal(net(x2), net.readout(x2, net.gates(x2)))


def test_state_reaches_the_right_border_only():
    torch.manual_seed(4)
    net = build("automaton-scan", states=4, width=4).eval()
    x = torch.zeros(1, 1, 9, 20)
    base = net(x)
    x_right, x_left = x.clone(), x.clone()
    x_right[0, 0, 4, 17] = 1.0
    x_left[0, 0, 4, 2] = 1.0
    changed_right = (net(x_right) != base)[0, 0]
    changed_left = (net(x_left) != base)[0, 0]
    assert changed_right[4, :17].any()  # a mark reaches every column to its left along the row
    assert not changed_left[4, 4:].any()  # and nothing right of its window
    assert not changed_right[:2].any() and not changed_right[7:].any()  # rows outside the 5-row window
    assert receptive_field(net) == "global along rows"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(states=1), "states must be >= 2"),
        (dict(states=5), "states must be even with parity=True"),
        (dict(parity=False), "reset=True needs parity=True"),
        (dict(states=0), "states must be >= 1"),
        (dict(window=(5,)), "window must be a pair"),
        (dict(window=(0, 3)), "window must be a pair"),
        (dict(width=0), "width must be >= 1"),
        (dict(method="fast"), "method='fast'"),
    ],
)
def test_invalid_options_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        build("automaton-scan", **kw)


def test_window_list_from_toml_is_accepted():
    net = build("automaton-scan", window=[3, 3], states=2, width=2)
    assert net.window_size == (3, 3) and net.window.kernel_size == (3, 3)
    assert math.isclose(net.gate_penalty(torch.full((1, 1, 1, 2, 2), 0.5)).item(), 1.0, rel_tol=1e-6)
