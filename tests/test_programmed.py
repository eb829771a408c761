"""Tests of the programmed networks: equal to fill on generated images, step counts, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jordanlab.topology import PropagationNet, ScanNet, fill, propagation_steps


def as_input(b: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(b, dtype=np.float32))[:, None]


def family_batch(family: str, n: int, size: int, thickness: int = 1, seed: int = 3) -> np.ndarray:
    curves = pytest.importorskip("jordanlab.curves")
    samplers = {
        "shape": curves.simple_shape,
        "spiral": lambda rng, s: curves.spiral(rng, s, gap=(3, 5, 7)[thickness - 1], width=(3, 5, 7)[thickness - 1]),
        "random_walk": curves.random_walk,
        "multi-3": lambda rng, s: curves.multi(rng, s, 3),
        "nested": curves.nested,
        "texture": curves.texture,
    }
    return np.stack(
        [
            curves.sample_boundary(np.random.default_rng([seed, i]), samplers[family], size, thickness=thickness)[1]
            for i in range(n)
        ]
    )


CASES = [(f, 1) for f in ("shape", "spiral", "random_walk", "multi-3", "nested", "texture")] + [
    ("shape", 2),
    ("nested", 3),
    ("spiral", 2),
]


@pytest.mark.parametrize("net_cls", [PropagationNet, ScanNet])
@pytest.mark.parametrize("family,thickness", CASES)
def test_programmed_nets_equal_fill(net_cls: type, family: str, thickness: int) -> None:
    b = family_batch(family, 4, 48, thickness)
    logits = net_cls()(as_input(b))
    assert logits.shape == (4, 1, 48, 48) and logits.dtype == torch.float32
    np.testing.assert_array_equal((logits[:, 0] > 0).to(torch.uint8).numpy(), fill(b))
    assert float(logits.abs().min()) == 10.0  # every pixel decided with the full margin


def test_scan_without_thinning_is_exact_on_simple_curves_only() -> None:
    thin_batch = family_batch("nested", 3, 40)
    out = ScanNet(thin=False)(as_input(thin_batch))
    np.testing.assert_array_equal((out[:, 0] > 0).to(torch.uint8).numpy(), fill(thin_batch))
    # A 2-pixel-thick ring: the rows through the thick top side are tangent runs, not crossings.
    ring = np.zeros((1, 10, 10), np.uint8)
    ring[0, 1:9, 1:9] = 1
    ring[0, 3:7, 3:7] = 0
    wrong = (ScanNet(thin=False)(as_input(ring))[:, 0] > 0).to(torch.uint8).numpy()
    assert (wrong != fill(ring)).any()
    right = (ScanNet()(as_input(ring))[:, 0] > 0).to(torch.uint8).numpy()
    np.testing.assert_array_equal(right, fill(ring))


def test_scan_crossing_layer_is_the_down_edge_count() -> None:
    rng = np.random.default_rng(0)
    b = (rng.random((2, 1, 9, 11)) < 0.4).astype(np.float32)
    down = torch.relu(ScanNet().crossing(torch.from_numpy(b)))[:, 0].numpy()
    bb = np.pad(b[:, 0], ((0, 0), (0, 1), (1, 1)))
    want = b[:, 0] * (bb[:, 1:, :-2] + bb[:, 1:, 1:-1] + bb[:, 1:, 2:])
    np.testing.assert_array_equal(down, want)


def test_propagation_steps_hand_counted() -> None:
    ring = np.zeros((5, 5), np.uint8)
    ring[1:4, 1:4] = 1
    ring[2, 2] = 0
    # step 1: the border background from the outside; 2: the whole ring (every pixel 4-touches
    # the outside region); 3: the centre pixel behind the ring.
    assert propagation_steps(ring).tolist() == [3]
    nested = np.zeros((9, 9), np.uint8)
    nested[1:8, 1:8] = 1
    nested[2:7, 2:7] = 0
    nested[3:6, 3:6] = 1
    nested[4, 4] = 0
    # border background, outer ring, the 1-px corridor between the rings (every corridor pixel
    # 4-touches the outer ring: one step), inner ring, centre.
    assert propagation_steps(nested).tolist() == [5]


def test_corridor_needs_one_step_per_pixel() -> None:
    # A U-shaped corridor entered only at its mouth: the outside must walk its length.
    b = np.ones((7, 12), np.uint8)
    b[0, :] = b[-1, :] = 0
    b[:, 0] = b[:, -1] = 0  # outside margin
    b[2, 1:10] = 0  # corridor from the left border, 9 pixels, row 2
    b[2:5, 9] = 0  # down 2
    b[4, 3:10] = 0  # back left
    steps = propagation_steps(b).item()
    reference = fill(b)
    out = (PropagationNet()(as_input(b[None]))[0, 0] > 0).to(torch.uint8).numpy()
    np.testing.assert_array_equal(out, reference)
    assert steps >= 9 + 2 + 6  # at least the corridor length after the margin


def test_truncated_network_leaves_far_pixels_undecided() -> None:
    b = family_batch("spiral", 2, 64)
    full = PropagationNet().propagate(as_input(b))
    assert bool(full.converged.all())
    need = int(full.steps.max())
    short = PropagationNet(max_steps=need // 2).propagate(as_input(b))
    assert not bool(short.converged.all())
    assert bool((short.logits == 0).any())
    decided = short.logits != 0
    assert bool((short.logits[decided] == full.logits[decided]).all())  # never wrong, only undecided
    exact = PropagationNet(max_steps=need).propagate(as_input(b))
    assert bool(exact.converged.all())


def test_batch_steps_equal_single_image_steps() -> None:
    b = family_batch("nested", 3, 40)
    batch_steps = propagation_steps(b)
    single = torch.cat([propagation_steps(x) for x in b])
    assert batch_steps.tolist() == single.tolist()


def test_input_checks() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\), got \(2, 5, 5\)"):
        ScanNet()(torch.zeros(2, 5, 5))
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        PropagationNet()(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"max_steps must be None or an int >= 0"):
        PropagationNet(max_steps=-1)


def test_no_parameters_to_train() -> None:
    assert not any(p.requires_grad for p in ScanNet().parameters())
    assert list(PropagationNet().parameters()) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("net_cls", [PropagationNet, ScanNet])
def test_cuda_equals_cpu(net_cls: type) -> None:
    b = np.concatenate([family_batch("texture", 3, 48), family_batch("shape", 3, 48, 2)])
    x = as_input(b)
    np.testing.assert_array_equal(net_cls()(x.cuda()).cpu().numpy(), net_cls()(x).numpy())
