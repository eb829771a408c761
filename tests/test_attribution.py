"""Attribution and similarity: explain sums to the output, checkpoint kernel = tangent path kernel, ρ."""

import torch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from jordanlab.kernels import (
    checkpoint_path_kernel,
    explain,
    input_similarity,
    nearest_training_images,
    path_decomposition,
)
from jordanlab.experiments import plot_explanation


class TinyCNN(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, width, 3, padding=1)
        self.b = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def _data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 8, 8, generator=g) > 0.7).double()
    y = (torch.rand(n, 1, 8, 8, generator=g) > 0.5).double()
    return x, y


def _net(seed=0):
    torch.manual_seed(seed)
    return TinyCNN().double()


def test_explain_contributions_sum_to_output(tmp_path):
    x, y = _data()
    net = _net()
    before = [p.clone() for p in net.parameters()]
    e = explain(net, x[0], (3, 4), x, y, k=3, lr=0.5, steps=10, batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # input model untouched
    total = e.initial + float(e.contributions.sum()) + e.residual
    assert abs(total - e.final) < 1e-12
    assert abs(e.residual) <= 1e-9 * abs(e.final - e.initial)
    torch.testing.assert_close(e.maps.sum(dim=(1, 2)), e.contributions, rtol=1e-10, atol=1e-13)
    assert e.top.numel() == 3
    assert torch.all(e.contributions[e.top].abs() >= e.contributions.abs().max() - 1e-15) or \
        e.contributions[e.top].abs().min() >= torch.sort(e.contributions.abs(), descending=True).values[2]
    expected_share = float(e.contributions[e.top].sum()) / (e.final - e.initial)
    assert e.share == pytest.approx(expected_share)
    # the SGD copy reaches the same output as path_decomposition on a copy
    r = path_decomposition(_net(), x, y, x[:1], lr=0.5, steps=10, batch_size=4, pixels=[(3, 4)])
    assert e.final == pytest.approx(float(r.final[0]), abs=1e-12)
    out = tmp_path / "explain.png"
    plot_explanation(e, out)
    assert out.stat().st_size > 1000


def test_checkpoint_kernel_with_every_step_equals_tangent_path_kernel():
    """One checkpoint per GD step with η = lr/N is exactly the tangent-mode decomposition."""
    x, y = _data()
    net = _net()
    lr, steps, n = 0.4, 4, x.shape[0]
    states = []
    ref_net = _net()
    for _ in range(steps):
        states.append({k: v.clone() for k, v in ref_net.state_dict().items()})
        path_decomposition(ref_net, x, y, x[:1], lr=lr, steps=1, pixels=[(0, 0)], mode="tangent")
    r = path_decomposition(net, x, y, x[:2], lr=lr, steps=steps, pixels=[(2, 2), (5, 1)], mode="tangent")
    cp = checkpoint_path_kernel(states, [lr / n] * steps, lambda: TinyCNN().double(), x, x[:2],
                                pixels=[(2, 2), (5, 1)], train_targets=y, batch_size=3)
    torch.testing.assert_close(cp.path_kernel, r.path_kernel, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(cp.contributions, r.contributions, rtol=1e-10, atol=1e-14)


def test_similarity_identity_symmetry_and_bounds():
    x, _ = _data(n=5, seed=3)
    net = _net(1)
    rho = input_similarity(net, x)
    torch.testing.assert_close(rho, rho.T)
    rho2 = input_similarity(net, x, x.clone())  # diagonal computed, not forced
    torch.testing.assert_close(torch.diagonal(rho2), torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(rho2, rho2.T, rtol=1e-10, atol=1e-12)
    assert rho2.abs().max() <= 1 + 1e-12
    vals, idx = nearest_training_images(net, x[:2], x, k=2)
    assert idx[:, 0].tolist() == [0, 1]  # an image is its own nearest neighbour
    assert torch.all(vals[:, 0] >= vals[:, 1])


class Scaled(nn.Module):
    def __init__(self, net: nn.Module, scale: float) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        return self.scale * self.net(x)


@settings(max_examples=8)
@given(st.floats(0.1, 10.0))
def test_similarity_is_invariant_to_output_scale(scale):
    """f -> c f multiplies every gradient by c and K by c^2; the normalized kernel ρ does not change."""
    x, _ = _data(n=3, seed=4)
    net = _net(2)
    rho = input_similarity(net, x, x[:2], pixels=[(1, 1), (6, 2)])
    k = input_similarity(Scaled(net, scale), x, x[:2], pixels=[(1, 1), (6, 2)])
    torch.testing.assert_close(k, rho, rtol=1e-10, atol=1e-12)


def test_explain_run_on_a_tiny_training_run(tmp_path):
    """A real `jordanlab.train` run (Ranger): explain rebuilds w_0 and explains an SGD copy, writing JSON + PNG."""
    import json

    from jordanlab.experiments import explain_run, initial_model
    from jordanlab.train import config_from_dict, load_config, load_model, train
    from jordanlab.train import config_to_dict

    from pathlib import Path

    cfg = config_to_dict(load_config(Path(__file__).resolve().parents[1] / "configs" / "quick-local-cnn.toml"))
    cfg["data"].update(n_train=8, n_val=2)
    cfg["model"]["kwargs"] = {"width": 2, "depth": 2, "norm": "none"}
    cfg["train"].update(epochs=1, batch_size=4, device="cpu")
    run = tmp_path / "run"
    train(config_from_dict(cfg, source="test"), run, progress=False)
    w0, _ = initial_model(run)
    trained, _ = load_model(run)
    assert any(not torch.equal(a, b) for a, b in zip(w0.parameters(), trained.parameters()))
    rep = explain_run(run, 0, (10, 12), tmp_path / "out", k=3, n_train=6, steps=6, batch_size=3, progress=False)
    on_disk = json.loads((tmp_path / "out" / "explain.json").read_text())
    assert on_disk["top"] == rep["top"] and len(rep["top"]) == 3
    assert rep["run_final"] is not None and (tmp_path / "out" / "explain.png").exists()
    assert rep["image"] == "shapes-32 test[0]" and rep["notes"][0].startswith("explains an SGD-trained copy")
    suite = explain_run(run, "nested:1", (10, 12), tmp_path / "out2", k=2, n_train=4, steps=2, batch_size=2,
                        progress=False)
    assert suite["image"] == "nested (size 32) test[1] seed 0" and len(suite["top"]) == 2
    # ReLU net: not float-exact, but the decomposition must still account for the output to ~1e-2
    assert rep["relative_residual"] < 1e-2


def test_similarity_shift_training_images_are_their_own_neighbours():
    from jordanlab.kernels import similarity_shift

    x, _ = _data(n=6, seed=7)
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 3
    s = similarity_shift(_net(3), x, {"train": x[:3], "noise": noise}, k=2, grid=3)
    assert s["train"]["mean_top1"] == pytest.approx(1.0, abs=1e-12)
    assert s["noise"]["mean_top1"] < s["train"]["mean_top1"]
    assert s["noise"]["n"] == 3 and s["noise"]["k"] == 2
