"""Tests for jordanlab.models: shapes, registry errors, receptive fields, recurrence, scans."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import functional_call, jvp, vjp, vmap

from jordanlab.models import held_rounds

from jordanlab.models import (
    MODELS,
    RecurrentNet,
    RowScanNet,
    UNet,
    build,
    count_parameters,
    linear_scan,
    model_table,
    progressive_rollout,
    receptive_field,
    run_until_stable,
)

# torch.func's first jvp loads decompositions through torch.jit.script (deprecated upstream).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

# Small options per architecture so that every test stays fast on one CPU thread.
SMALL: dict[str, dict] = {
    "unet": dict(width=2),
    "local-cnn": dict(width=4, depth=4),
    "cnn-gap": dict(width=4, depth=4),
    "cnn-sa": dict(width=4, depth=4),
    "cnn-gc": dict(width=4, depth=4),
    "recurrent": dict(width=4, iters=3),
    "scan": dict(width=4, head_width=4, directions=("right", "up")),
    "parity-scan": dict(width=4),
    "automaton-scan": dict(states=4, width=4),
    "crossing-depth": dict(),
}
LEARNED = sorted(SMALL)
#: Options that select the BatchNorm-free variant (needed for tangent-kernel analysis).
NO_NORM = {"unet", "local-cnn", "cnn-gap", "cnn-sa", "cnn-gc"}


def small(name: str, **extra) -> torch.nn.Module:
    kw = dict(SMALL[name])
    if name in NO_NORM and "norm" not in extra:
        kw["norm"] = "none"
    kw.update(extra)
    return build(name, **kw).eval()


PROGRAMMED = ["programmed-propagation", "programmed-scan"]


def test_registry_lists_every_model():
    assert set(MODELS) == set(LEARNED) | set(PROGRAMMED)


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.parametrize("in_channels", [1, 2])
@pytest.mark.parametrize("size", [(32, 32), (40, 56), (17, 9)])
def test_shape_any_canvas(name, in_channels, size):
    torch.manual_seed(0)
    net = small(name, in_channels=in_channels, **({"norm": "batch"} if name in NO_NORM else {}))
    net.train()
    x = torch.rand(2, in_channels, *size)
    y = net(x)
    assert y.shape == (2, 1, *size)
    assert y.dtype == x.dtype and torch.isfinite(y).all()


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'resnet'.*cnn-gap.*local-cnn.*unet"):
        build("resnet")


def test_unknown_keyword_is_named():
    with pytest.raises(TypeError, match=r"'widht'.*valid keywords: in_channels, width"):
        build("unet", widht=8)
    with pytest.raises(TypeError, match=r"'iters'"):
        build("local-cnn", iters=3)  # an option of another model is still unknown here


@pytest.mark.parametrize(
    ("name", "kw", "exc", "pattern"),
    [
        ("unet", dict(norm="group"), ValueError, "norm='group'"),
        ("unet", dict(up="nearest"), ValueError, "up='nearest'"),
        ("unet", dict(width=0), ValueError, "width must be >= 1"),
        ("local-cnn", dict(depth=2.0), TypeError, "depth must be an int"),
        ("cnn-gap", dict(depth=3, blocks=3), ValueError, "blocks=3 must be smaller than depth=3"),
        ("recurrent", dict(state_norm="batch"), ValueError, "state_norm='batch'"),
        ("scan", dict(gate="relu"), ValueError, "gate='relu'"),
        ("scan", dict(directions=("east",)), ValueError, "directions"),
        ("scan", dict(method="fft"), ValueError, "method='fft'"),
        ("parity-scan", dict(gate="cos"), ValueError, "gate='cos'"),
        ("parity-scan", dict(width=0), ValueError, "width must be >= 1"),
    ],
)
def test_bad_option_is_named(name, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        build(name, **kw)


@pytest.mark.parametrize("name", LEARNED)
def test_bad_input_is_named(name):
    net = small(name)
    with pytest.raises(ValueError, match="in_channels=1"):
        net(torch.zeros(1, 2, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        net(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        net(torch.zeros(1, 8, 8))


@pytest.mark.parametrize("name", LEARNED)
def test_build_is_deterministic_under_a_torch_seed(name):
    torch.manual_seed(7)
    a = small(name).state_dict()
    torch.manual_seed(7)
    b = small(name).state_dict()
    torch.manual_seed(8)
    c = small(name).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def _input_gradient(net: torch.nn.Module, x: torch.Tensor, pixel: tuple[int, int]) -> torch.Tensor:
    """|∂ logit(pixel) / ∂ x| summed over channels, shape (H, W), for the first image."""
    x = x.clone().requires_grad_(True)
    net(x)[0, 0, pixel[0], pixel[1]].backward()
    return x.grad[0].abs().sum(0)


def _support_box(grad: torch.Tensor) -> tuple[int, int]:
    rows, cols = torch.nonzero(grad, as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("depth", "norm"), [(3, "none"), (6, "none"), (5, "batch")])
def test_local_cnn_receptive_field_measured_equals_analytic(depth, norm):
    torch.manual_seed(3)
    net = build("local-cnn", width=8, depth=depth, norm=norm).eval()
    side = receptive_field(net)
    assert side == 2 * depth + 1
    grad = _input_gradient(net, torch.rand(1, 1, 31, 31) + 0.5, (15, 15))
    assert _support_box(grad) == (side, side)
    r = depth  # the window is centred on the pixel
    outside = torch.ones_like(grad, dtype=torch.bool)
    outside[15 - r : 15 + r + 1, 15 - r : 15 + r + 1] = False
    assert (grad[outside] == 0).all()


@pytest.mark.parametrize("up", ["transposed", "bilinear"])
def test_unet_gradient_support_lies_in_the_analytic_window(up):
    torch.manual_seed(4)
    net = build("unet", width=4, depth=2, norm="none", up=up).eval()
    side = receptive_field(net)
    assert side == (44 if up == "transposed" else 52)
    lo, hi = net.input_window(96)
    sides = set()
    for r, c in [(40, 40), (37, 42), (41, 39), (38, 38)]:
        grad = _input_gradient(net, torch.rand(1, 1, 96, 96), (r, c))
        inside = torch.zeros_like(grad, dtype=torch.bool)
        inside[lo[r] : hi[r] + 1, lo[c] : hi[c] + 1] = True
        assert (grad[~inside] == 0).all()
        assert grad[inside].sum() > 0
        sides.add(max(_support_box(grad)))
    # Max-pooling routes gradient to one pixel per window, so the support may be smaller
    # than the theoretical window, but one of the four phases reaches the maximal side here.
    assert max(sides) == side


def test_unet_sees_far_pixels_and_local_cnn_does_not():
    torch.manual_seed(5)
    x = torch.rand(1, 1, 64, 64)
    unet = build("unet", width=4, norm="batch").eval()
    local = build("local-cnn", width=4, norm="batch").eval()  # 22 layers: window of side 45
    g_unet = _input_gradient(unet, x, (2, 2))
    g_local = _input_gradient(local, x, (2, 2))
    far = (slice(48, 64), slice(48, 64))
    assert g_unet[far].sum() > 0
    assert g_local[far].sum() == 0
    assert g_local[:20, :20].sum() > 0
    assert receptive_field(unet, canvas=64) == "global"
    assert receptive_field(local, canvas=64) == 45


@pytest.mark.parametrize("name", ["cnn-gap", "cnn-sa", "cnn-gc"])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_nonlocal_layers_reach_far_pixels(name, norm):
    torch.manual_seed(6)
    x = torch.rand(1, 1, 40, 40)
    net = build(name, width=4, depth=4, norm=norm).eval()  # convs alone: window of side 9
    grad = _input_gradient(net, x, (0, 0))
    assert grad[30:, 30:].sum() > 0
    assert receptive_field(net) == "global"
    local = build("local-cnn", width=4, depth=4, norm=norm).eval()
    assert _input_gradient(local, x, (0, 0))[30:, 30:].sum() == 0


def test_self_attention_subsamples_keys_on_large_canvases():
    net = build("cnn-sa", width=4, depth=2, max_tokens=64)
    block = net.layers[1]
    assert block.key_stride(8, 8) == 1
    assert block.key_stride(128, 128) == 16
    for h, w in [(128, 128), (40, 56), (100, 3)]:
        s = block.key_stride(h, w)
        assert -(-h // s) * -(-w // s) <= 64
        assert s == 1 or -(-h // (s - 1)) * -(-w // (s - 1)) > 64
    y = net(torch.rand(1, 1, 128, 128))
    assert y.shape == (1, 1, 128, 128)


def test_fused_and_math_attention_agree():
    torch.manual_seed(18)
    math_net = build("cnn-sa", width=4, depth=2, norm="none", max_tokens=16)
    fused_net = build("cnn-sa", width=4, depth=2, norm="none", max_tokens=16, attention="fused")
    fused_net.load_state_dict(math_net.state_dict())
    x = torch.rand(2, 1, 20, 28)
    y_math, y_fused = math_net(x), fused_net(x)
    assert torch.allclose(y_math, y_fused, atol=1e-5)
    y_math.square().sum().backward()
    y_fused.square().sum().backward()
    for (name, p), q in zip(math_net.named_parameters(), fused_net.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-5), name
    with pytest.raises(ValueError, match="attention='flash'"):
        build("cnn-sa", attention="flash")


# ---------------------------------------------------------------- torch.func compatibility


@pytest.mark.parametrize("name", LEARNED)
def test_functional_call_vmap_and_jvp(name):
    torch.manual_seed(9)
    net = small(name).double()
    params = dict(net.named_parameters())
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    ref = net(x)

    def f(p, xi):
        return functional_call(net, p, (xi[None],))[0]

    with held_rounds(net, params, x):  # a fixed-point model holds its batch's rounds; others: a no-op
        assert torch.allclose(vmap(f, in_dims=(None, 0))(params, x), ref, atol=1e-12)
    tangent = {k: torch.randn_like(v) for k, v in params.items()}
    out, jv = jvp(lambda p: functional_call(net, p, (x,)), (params,), (tangent,))
    assert torch.allclose(out, ref, atol=1e-12)
    # Forward mode against reverse mode: <J t, u> = <t, Jᵀ u> (float64, exact up to rounding;
    # a finite difference is not used because ReLU kinks make it unreliable on small widths).
    u = torch.randn_like(ref)
    _, vjp_fn = vjp(lambda p: functional_call(net, p, (x,)), params)
    (jtu,) = vjp_fn(u)
    lhs = (jv * u).sum()
    rhs = sum((tangent[k] * jtu[k]).sum() for k in params)
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- recurrent network


def test_recurrent_forward_is_the_composition_of_steps():
    torch.manual_seed(10)
    net = build("recurrent", width=6, blocks=2, iters=4)
    x = (torch.rand(2, 1, 20, 24) > 0.8).float()
    state = net.init_state(x)
    for _ in range(4):
        state = net.step(x, state)
    assert torch.allclose(net.readout(state), net(x), atol=1e-6)
    assert torch.allclose(net(x), net(x, iters=4))
    assert torch.allclose(net(x, iters=0), net.readout(net.init_state(x)))
    assert not torch.allclose(net(x, iters=2), net(x, iters=9))
    with pytest.raises(ValueError, match="iters must be >= 0"):
        net(x, iters=-1)


def test_progressive_rollout_value_and_gradient_path():
    torch.manual_seed(17)
    net = build("recurrent", width=4, iters=6)
    x = (torch.rand(2, 1, 12, 12) > 0.8).float()
    out = progressive_rollout(net, x, n=3, k=2)
    assert torch.allclose(out, net(x, iters=5), atol=1e-6)
    out.sum().backward()
    # The projection only acts before the detach: no gradient reaches it.
    assert net.project.weight.grad is None or (net.project.weight.grad == 0).all()
    assert net.recall.weight.grad.abs().sum() > 0
    net.zero_grad(set_to_none=True)
    net(x, iters=5).sum().backward()
    assert net.project.weight.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="RecurrentNet"):
        progressive_rollout(build("scan", width=2), x, n=1, k=1)


def test_recurrent_state_norm_keeps_long_rollouts_bounded():
    torch.manual_seed(11)
    net = build("recurrent", width=8, state_norm="channel")
    x = (torch.rand(1, 1, 16, 16) > 0.7).float()
    state = net.init_state(x)
    for _ in range(200):
        state = net.step(x, state)
    # Per-pixel LayerNorm: every pixel's channel vector has mean 0 and variance ≤ 1.
    assert state.abs().max() <= 8**0.5 + 1e-4
    assert torch.allclose(state.mean(1), torch.zeros(1, 16, 16), atol=1e-5)


def test_run_until_stable_matches_forward_at_the_halting_iteration():
    torch.manual_seed(12)
    # float64: halted images leave the batch, and a random (untrained) recurrence amplifies the
    # float32 rounding differences between batch sizes to ~1e-3 over 30 iterations.
    net = build("recurrent", width=6).double().eval()
    x = (torch.rand(4, 1, 16, 16) > 0.8).double()
    logits, used = run_until_stable(net, x, max_iters=30, patience=2)
    assert used.shape == (4,) and used.dtype == torch.long
    assert ((used >= 2) & (used <= 30)).all()
    for i in range(4):
        assert torch.allclose(logits[i : i + 1], net(x[i : i + 1], iters=int(used[i])), atol=1e-9)


def test_run_until_stable_halting_times_by_hand():
    # Image i has constant value c_i: its prediction (t > c_i) flips once, at t* = floor(c_i) + 1.
    # The counter of unchanged iterations reaches `patience` at t = patience if that comes
    # before the flip, otherwise at t* + patience.
    c = torch.tensor([0.5, 2.5, 6.5, 40.0])
    x = c.view(4, 1, 1, 1).expand(4, 1, 3, 5).clone()

    class Countdown(RecurrentNet):
        def init_state(self, x):
            return x.clone() * 0 - x  # carries −c_i, so the readout needs no side channel

        def step(self, x, state):
            return state + 1

        def readout(self, state):
            return state

    net = Countdown(width=1)
    logits, used = run_until_stable(net, x, max_iters=20, patience=8)
    assert used.tolist() == [9, 11, 15, 8]
    assert torch.allclose(logits[:, 0, 0, 0], torch.tensor([8.5, 8.5, 8.5, -32.0]))
    _, used = run_until_stable(net, x, max_iters=20, patience=3)
    assert used.tolist() == [4, 6, 3, 3]  # premature halts: the rule cannot see a late flip
    logits, used = run_until_stable(net, x, max_iters=5, patience=3)
    assert used.tolist() == [4, 5, 3, 3]  # image 1 runs out of budget at t = 5
    assert torch.allclose(logits[:, 0, 0, 0], torch.tensor([3.5, 2.5, -3.5, -37.0]))


def test_run_until_stable_without_convergence_uses_the_budget():
    torch.manual_seed(13)
    net = build("recurrent", width=6).eval()
    x = (torch.rand(2, 1, 12, 12) > 0.8).float()
    logits, used = run_until_stable(net, x, max_iters=5, patience=6)  # cannot halt
    assert used.tolist() == [5, 5]
    assert torch.allclose(logits, net(x, iters=5), atol=1e-6)


def test_run_until_stable_halts_after_patience_on_a_fixed_point():
    net = build("recurrent", width=4)
    with torch.no_grad():
        net.recall.weight.zero_()  # state becomes 0 after one step and stays there
    x = torch.rand(3, 1, 10, 10)
    logits, used = run_until_stable(net, x, max_iters=50, patience=4)
    # Prediction may change at step 1 (s₀ → 0) and is constant afterwards: halts at 1 + 4 = 5
    # or at 4 if the step-1 prediction equals the initial one.
    assert set(used.tolist()) <= {4, 5}
    assert torch.allclose(logits, net(x, iters=50), atol=1e-6)


def _flood_fill_recurrent_net() -> RecurrentNet:
    """Hand-set RecurrentNet (no state norm) that floods the outside from the canvas border.

    State: s₀ = o (outside indicator, 0 at start), s₁ = 1 (constant, from the projection bias).
    Recall conv: z₀ = ReLU(o(p) + Σ_{4-nbrs q} o(q) + 4·s₁(p) − Σ_{4-nbrs q} s₁(q) − 10·B(p)),
    where 4·s₁(p) − Σ s₁(q) counts the neighbours in the zero padding (the border); z₁ = s₁.
    Residual block: o' = ReLU(z₀ − ReLU(z₀ − z₁)) = min(1, z₀). So o_t = 1 exactly on the
    background pixels 4-connected to the border at geodesic distance < t. Head: 2(1 − o) − 1.
    """
    net = RecurrentNet(width=2, blocks=1, state_norm="none")
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.project.bias[1] = 1.0
        w = net.recall.weight  # input channels: s₀, s₁, x
        w[0, 0] = cross
        w[0, 0, 1, 1] = 1.0
        w[0, 1] = -cross
        w[0, 1, 1, 1] = 4.0
        w[0, 2, 1, 1] = -10.0
        w[1, 1, 1, 1] = 1.0
        block = net.blocks[0]
        block.conv1.weight[0, 0, 1, 1] = 1.0
        block.conv1.weight[0, 1, 1, 1] = -1.0
        block.conv2.weight[0, 0, 1, 1] = -1.0
        h1, h2, h3 = net.head[0], net.head[2], net.head[4]
        h1.weight[0, 1, 1, 1] = 1.0
        h1.weight[0, 0, 1, 1] = -1.0
        h2.weight[0, 0, 1, 1] = 1.0
        h3.weight[0, 0] = 2.0
        h3.bias[0] = -1.0
    return net


@pytest.mark.parametrize(
    ("suite", "size"), [("shapes-32", None), ("multi-3", 32), ("spiral", 32), ("randomwalk", 48), ("large-2x", 32)]
)
def test_hand_set_recurrent_flood_fill_halts_at_the_geodesic_depth(suite, size):
    from scipy import ndimage

    from jordanlab.data import make

    kw = {} if size is None else {"size": size}
    boundaries, masks = make(suite, "test", n=6, **kw)
    x = torch.from_numpy(boundaries).float()[:, None]
    net = _flood_fill_recurrent_net()
    logits, used = run_until_stable(net, x, max_iters=10_000, patience=1)
    np.testing.assert_array_equal((logits > 0).squeeze(1).numpy().astype(np.uint8), masks)
    # Halting (no labels used) comes one iteration after the flood's last new pixel: at
    # 2 + the largest 4-connected geodesic distance from the border-row/column background.
    for i, b in enumerate(boundaries):
        background = b == 0
        dist = np.full(b.shape, -1)
        frontier = np.zeros_like(background)
        frontier[[0, -1], :] = background[[0, -1], :]
        frontier[:, [0, -1]] |= background[:, [0, -1]]
        d = 0
        while frontier.any():
            dist[frontier] = d
            grown = ndimage.binary_dilation(frontier) & background & (dist < 0)
            frontier, d = grown, d + 1
        assert int(used[i]) == dist.max() + 2


def test_run_until_stable_checks_arguments():
    with pytest.raises(TypeError, match="RecurrentNet"):
        run_until_stable(build("scan"), torch.zeros(1, 1, 4, 4), max_iters=3)
    with pytest.raises(ValueError, match="patience must be >= 1"):
        run_until_stable(build("recurrent", width=2), torch.zeros(1, 1, 4, 4), max_iters=3, patience=0)


# ---------------------------------------------------------------- scan network


def _loop_scan(a: np.ndarray, b: np.ndarray, h0: np.ndarray | None, reverse: bool) -> np.ndarray:
    """Scalar float64 reference: h_t = a_t h_{t∓1} + b_t."""
    out = np.zeros_like(a)
    for idx in np.ndindex(a.shape[:-1]):
        h = 0.0 if h0 is None else h0[idx]
        order = range(a.shape[-1] - 1, -1, -1) if reverse else range(a.shape[-1])
        for t in order:
            h = a[idx + (t,)] * h + b[idx + (t,)]
            out[idx + (t,)] = h
    return out


@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 70)),
    reverse=st.booleans(),
    with_h0=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_scan_equals_python_loop(shape, reverse, with_h0, seed):
    g = np.random.default_rng(seed)
    a = g.uniform(-1.05, 1.05, shape)
    a[g.random(shape) < 0.1] = 0.0  # exact zeros (reset) and sign flips
    b = g.normal(size=shape)
    h0 = g.normal(size=shape[:-1]) if with_h0 else None
    expected = _loop_scan(a, b, h0, reverse)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    th0 = None if h0 is None else torch.from_numpy(h0)[..., None]
    for method in ("doubling", "sequential"):
        got = linear_scan(ta, tb, th0, reverse=reverse, method=method).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_linear_scan_checks_shapes():
    with pytest.raises(ValueError, match="same shape"):
        linear_scan(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="method='tree'"):
        linear_scan(torch.ones(3), torch.ones(3), method="tree")


def _parity_scan_net(direction: str, gate: str = "tanh", k: float = 30.0) -> RowScanNet:
    """Hand-set weights: figure = boundary ∪ {odd number of boundary pixels on the half-line}.

    Encoder: f = ReLU(x). Gate a = squash(k(1 − 2f)) = ±1 (tanh) per pixel, b = 0, h0 = 1, so
    h_p = ∏ a over the half-line from p (inclusive) = (−1)^(count). Head: hidden₁ = ReLU(−h)
    (1 when odd), hidden₂ = ReLU(f); logit = 2(hidden₁ + hidden₂) − 1.
    """
    net = RowScanNet(width=1, encoder_depth=1, head_width=2, directions=(direction,), gate=gate)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        enc = net.encoder[0][0]
        enc.weight[0, 0, 1, 1] = 1.0
        net.coef_a[0].weight[0, 0] = -2 * k
        net.coef_a[0].bias[0] = k
        net.h0.fill_(1.0)
        head1, head2 = net.head[0], net.head[2]
        head1.weight[0, 1, 1, 1] = -1.0  # reads h
        head1.weight[1, 0, 1, 1] = 1.0  # reads f
        head2.weight[0, :, 0, 0] = 2.0
        head2.bias[0] = -1.0
    return net


@pytest.mark.parametrize("direction", ["right", "left", "down", "up"])
def test_hand_set_tanh_scan_computes_exact_parity(direction):
    g = np.random.default_rng(14)
    x = (g.random((6, 1, 9, 40)) < 0.2).astype(np.float32)
    if direction in ("down", "up"):
        x = x.transpose(0, 1, 3, 2).copy()
    axis = 3 if direction in ("right", "left") else 2
    flip = direction in ("right", "down")  # half-line towards larger indices
    counts = np.flip(np.cumsum(np.flip(x, axis), axis), axis) if flip else np.cumsum(x, axis)
    expected = (x > 0) | (counts % 2 == 1)
    net = _parity_scan_net(direction)
    pred = net(torch.from_numpy(x)).detach().numpy() > 0
    np.testing.assert_array_equal(pred, expected)


def test_sigmoid_gate_is_positive_and_cannot_flip_the_sign():
    g = torch.Generator().manual_seed(15)
    x = (torch.rand(4, 1, 8, 33, generator=g) < 0.3).float()
    net = _parity_scan_net("right", gate="sigmoid")
    _, [(a, b)] = net.coefficients(x)
    assert (a > 0).all() and (a <= 1).all()  # sigmoid(30) rounds to 1 in float32
    # With b = 0 the state keeps the sign of h0 = 1 whatever the input: parity is lost,
    # and the same hand-set weights that are exact with tanh fail on any odd pattern.
    h = linear_scan(a, b, net.h0[0].view(1, -1, 1, 1), reverse=True)
    assert (h >= 0).all()
    tanh_net = _parity_scan_net("right", gate="tanh")
    assert not torch.equal(net(x) > 0, tanh_net(x) > 0)
    random_sigmoid = build("scan", width=8, gate="sigmoid")
    _, coefs = random_sigmoid.coefficients(torch.randn(2, 1, 10, 10) * 10)
    assert all((a > 0).all() for a, _ in coefs)


def _exact_fill_scan_net(gate: str = "tanh", k: float = 30.0) -> RowScanNet:
    """Hand-set RowScanNet that computes the exact even-odd fill of thin 8-curves.

    Take the polygon through the curve pixels' centres. With the half-open rule, the half-line
    from a background pixel p = (r, c₀) to the right crosses one edge for every curve edge from
    a curve pixel (r, c), c > c₀, to a curve pixel of row r + 1. When every curve pixel has
    exactly two 8-neighbours on the curve (a thin curve: all neighbours are consecutive), that
    count is d(r, c) = B(r, c) · Σ_{δ∈{−1,0,1}} B(r + 1, c + δ), a 3×3 feature. So:
    encoder layer 1: f₀ = B, f₁ = ReLU(3B + below − 3) = d, f₂ = ReLU(3B + below − 4) = ReLU(d − 1);
    layer 2: g₀ = B, g₁ = ReLU(f₁ − 2f₂) = d mod 2 (d ≤ 2); scan: a = tanh(k(1 − 2g₁)) = ±1,
    b = 0, h0 = 1, so h = (−1)^(crossings to the right); head as in :func:`_parity_scan_net`.
    """
    net = RowScanNet(width=3, encoder_depth=2, head_width=2, directions=("right",), gate=gate)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        c1, c2 = net.encoder[0][0], net.encoder[1][0]
        c1.weight[0, 0, 1, 1] = 1.0
        for ch, bias in [(1, -3.0), (2, -4.0)]:
            c1.weight[ch, 0, 1, 1] = 3.0
            c1.weight[ch, 0, 2, :] = 1.0
            c1.bias[ch] = bias
        c2.weight[0, 0, 1, 1] = 1.0
        c2.weight[1, 1, 1, 1] = 1.0
        c2.weight[1, 2, 1, 1] = -2.0
        net.coef_a[0].weight[0, 1] = -2 * k
        net.coef_a[0].bias[0] = k
        net.h0.fill_(1.0)
        head1, head2 = net.head[0], net.head[2]
        head1.weight[0, 3, 1, 1] = -1.0  # reads h, channel 0 of the scan state
        head1.weight[1, 0, 1, 1] = 1.0  # reads B
        head2.weight[0, :, 0, 0] = 2.0
        head2.bias[0] = -1.0
    return net


@pytest.mark.parametrize(
    ("suite", "size"),
    [("shapes-32", None), ("multi-3", 32), ("nested", 32), ("spiral", 32), ("randomwalk", 32), ("large-4x", 32)],
)
def test_hand_set_scan_net_equals_the_exact_fill(suite, size):
    from jordanlab.data import make
    from jordanlab.topology import fill

    kw = {} if size is None else {"size": size}
    boundaries, masks = make(suite, "test", n=12, **kw)
    x = torch.from_numpy(boundaries).float()[:, None]
    pred = (_exact_fill_scan_net()(x) > 0).squeeze(1).numpy().astype(np.uint8)
    np.testing.assert_array_equal(pred, masks)
    np.testing.assert_array_equal(masks, fill(boundaries))
    # The same weights with a positive gate cannot flip the sign: the fill is lost.
    pred_sigmoid = (_exact_fill_scan_net(gate="sigmoid")(x) > 0).squeeze(1).numpy()
    assert (pred_sigmoid == boundaries.astype(bool)).all()


def _exact_parity_scan_net(gate: str = "tanh", k: float = 20.0) -> torch.nn.Module:
    """``parity-scan`` with hand-set weights implementing the thin-curve crossing rule.

    Window conv (2×3: rows r, r+1; columns c−1 … c+1), then ReLU:
    u₀ = ReLU(3B + below − 3) = d, u₁ = ReLU(d − 1), u₂ = ReLU(d − 2) (d ≤ 3 crossing edges down);
    1×1 then ReLU: m = ReLU(u₀ − 2u₁ + 2u₂) = d mod 2; z = k(1 − 2m), so a = tanh(±k) = ±1 in
    float32 for k = 20; h0 = 1, h_c = ∏_{c' ≥ c} a_{c'} = (−1)^(crossings right of and at c);
    head: logit = 2·ReLU(B) + 2·ReLU(−h) − 1 (figure iff curve pixel or h = −1).
    """
    net = build("parity-scan", width=3, gate=gate)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for ch, bias in enumerate([-3.0, -4.0, -5.0]):
            net.window.weight[ch, 0, 0, 1] = 3.0
            net.window.weight[ch, 0, 1, :] = 1.0
            net.window.bias[ch] = bias
        net.gate_mlp[1].weight[0, :, 0, 0] = torch.tensor([1.0, -2.0, 2.0])
        net.gate_mlp[3].weight[0, 0, 0, 0] = -2 * k
        net.gate_mlp[3].bias[0] = k
        net.h0.fill_(1.0)
        net.head[0].weight[0, 0, 0, 0] = 1.0  # B
        net.head[0].weight[1, 1, 0, 0] = -1.0  # -h
        net.head[2].weight[0, :2, 0, 0] = 2.0
        net.head[2].bias[0] = -1.0
    return net.eval()


@pytest.mark.parametrize(
    ("suite", "size"),
    [("shapes-32", None), ("multi-5", 32), ("nested", 32), ("spiral", 32), ("polygon", 32),
     ("randomwalk", 32), ("large-4x", 32), ("spiral", 64)],
)
def test_hand_set_parity_scan_equals_the_exact_fill(suite, size):
    from jordanlab.data import make
    from jordanlab.topology import fill

    kw = {} if size is None else {"size": size}
    boundaries, masks = make(suite, "test", n=12, **kw)
    x = torch.from_numpy(boundaries).float()[:, None]
    net = _exact_parity_scan_net()
    a = net.gates(x)
    assert set(a.unique().tolist()) <= {-1.0, 1.0}  # tanh(±20) rounds to ±1 in float32
    assert net.gate_penalty(a).item() == 0.0
    pred = (net(x) > 0).squeeze(1).numpy().astype(np.uint8)
    np.testing.assert_array_equal(pred, masks)
    np.testing.assert_array_equal(masks, fill(boundaries))
    # The same weights with a positive gate: a ∈ {σ(−20), σ(20)} > 0, h > 0, only the curve is figure.
    pred_sigmoid = (_exact_parity_scan_net(gate="sigmoid")(x) > 0).squeeze(1).numpy()
    assert (pred_sigmoid == boundaries.astype(bool)).all()


def test_parity_scan_gate_sees_only_its_window_and_channel_zero():
    torch.manual_seed(3)
    net = build("parity-scan", in_channels=2, width=4)
    x = torch.rand(1, 2, 9, 11, requires_grad=True)
    a = net.gates(x)
    a[0, 0, 4, 5].backward()
    g = x.grad[0].abs()
    assert g[1].sum() == 0  # channel 1 reaches the head only
    support = torch.nonzero(g[0]).tolist()
    assert support and all(r in (4, 5) and c in (4, 5, 6) for r, c in support)
    # forward is readout(gates): the head sees every channel, the scan reaches the right border.
    x2 = x.detach().clone()
    assert torch.equal(net(x2), net.readout(x2, net.gates(x2)))
    y = x2.clone()
    y[0, 1, 4, 5] += 1.0
    assert not torch.equal(net(y)[0, 0, 4, 5], net(x2)[0, 0, 4, 5])
    y = x2.clone()
    y[0, 0, 8, 10] = 5.0  # bottom-right corner: changes the gate at (7, 9) and (8, 9..10)
    diff = (net(y) != net(x2))[0, 0]
    assert diff[7, 0] and diff[8, 0] and not diff[6].any()


def test_parity_scan_penalty_is_zero_at_unit_gates_only():
    tanh_net, sig_net = build("parity-scan", width=2), build("parity-scan", width=2, gate="sigmoid")
    a = torch.tensor([[-1.0, 1.0]])
    assert tanh_net.gate_penalty(a).item() == 0.0
    assert tanh_net.gate_penalty(torch.zeros(3)).item() == 1.0
    assert sig_net.gate_penalty(torch.tensor([0.0, 1.0])).item() == 0.0
    assert sig_net.gate_penalty(torch.full((3,), 0.5)).item() == 1.0
    assert tanh_net.gate_penalty(torch.tensor([0.5])).item() == pytest.approx(0.75)


def test_scan_methods_agree_inside_the_network():
    torch.manual_seed(16)
    net = build("scan", width=4, directions=("right", "left", "down", "up"))
    x = (torch.rand(2, 1, 19, 23) > 0.8).float()
    y1 = net(x)
    net.method = "sequential"
    assert torch.allclose(y1, net(x), atol=1e-5)


# ---------------------------------------------------------------- table helpers


def test_count_parameters_by_hand():
    net = build("local-cnn", width=3, depth=2, norm="none")
    # conv 1→3 (9·3 + 3), conv 3→3 (27·3 + 3), head 3→1 (3 + 1)
    assert count_parameters(net) == 30 + 84 + 4
    net_bn = build("local-cnn", width=3, depth=2, norm="batch")
    # no conv bias before BN; BN adds γ, β (2·3 per layer)
    assert count_parameters(net_bn) == 27 + 6 + 81 + 6 + 4
    with pytest.raises(TypeError, match="Module"):
        count_parameters("unet")


def test_model_table_rows():
    assert [r["name"] for r in model_table()] == list(MODELS)
    rows = model_table(["local-cnn", "recurrent", "scan", "cnn-gc", "programmed-scan"], canvas=32)
    assert [r["name"] for r in rows] == ["local-cnn", "recurrent", "scan", "cnn-gc", "programmed-scan"]
    by = {r["name"]: r for r in rows}
    assert by["local-cnn"]["receptive_field"] == 45
    assert by["recurrent"]["receptive_field"] == "unbounded (iterations)"
    assert by["scan"]["receptive_field"] == "global along rows"
    assert by["cnn-gc"]["receptive_field"] == "global"
    assert by["programmed-scan"]["trainable"] == 0 and by["programmed-scan"]["parameters"] == 10
    assert by["local-cnn"]["trainable"] == by["local-cnn"]["parameters"] > 0
    assert all(r["description"] for r in rows)
    assert receptive_field("unet") == UNet().receptive_field() == 412
    assert isinstance(build("recurrent"), RecurrentNet)


# ---------------------------------------------------------------- programmed references


def _padded_boundaries() -> np.ndarray:
    """Valid boundaries of several families on a 40×56 canvas (32×32 images, zero-padded)."""
    from jordanlab.data import make

    parts = [make(s, "test", n=3, size=32)[0] for s in ("nested", "spiral", "multi-3", "thick")]
    parts.append(make("shapes-32", "test", n=3)[0])
    b = np.concatenate(parts)
    return np.pad(b, ((0, 0), (3, 5), (7, 17)))


@pytest.mark.parametrize("name", PROGRAMMED)
def test_programmed_models_equal_the_exact_fill(name):
    from jordanlab.topology import fill

    b = _padded_boundaries()
    net = build(name)
    assert count_parameters(net, trainable=True) == 0
    logits = net(torch.from_numpy(b).float()[:, None])
    assert logits.shape == (len(b), 1, 40, 56)
    np.testing.assert_array_equal((logits > 0).squeeze(1).numpy().astype(np.uint8), fill(b))
    params = dict(net.named_parameters())
    same = functional_call(net, params, (torch.from_numpy(b[:2]).float()[:, None],))
    assert torch.equal(same, logits[:2])


@pytest.mark.parametrize("name", PROGRAMMED)
def test_programmed_models_read_one_channel(name):
    with pytest.raises(ValueError, match="in_channels must be 1"):
        build(name, in_channels=2)
    assert receptive_field(name) in ("unbounded (iterations)", "global along rows")
