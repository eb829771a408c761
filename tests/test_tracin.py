"""tracin_cp: −Σ_c η_c ∇f(w_c, x_q)·∇ℓ(w_c, z_i) by one jvp per checkpoint equals explicit autograd loops."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from jordanlab.kernels import per_example_loss, tracin_cp


class TinyBN(nn.Module):
    """Smooth dense model with a BatchNorm (tracin_cp must read it in eval mode, running statistics)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.b = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return self.b(torch.tanh(self.bn(self.a(x))))


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = TinyBN().double()
    with torch.no_grad():  # non-trivial running statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 6, 6, generator=g) > 0.6).double()
    y = (torch.rand(n, 1, 6, 6, generator=g) > 0.5).double()
    return x, y


def _explicit(net: nn.Module, eta: float, xq, pixel, x, y, loss="bce"):
    """−η ∇f_q · ∇ℓ_i, one autograd backward per training example."""
    net = copy.deepcopy(net).eval()
    params = [p for p in net.parameters()]
    gq = torch.autograd.grad(net(xq[None])[0, 0, pixel[0], pixel[1]], params)
    out = []
    for i in range(x.shape[0]):
        li = per_example_loss(net(x[i : i + 1]).reshape(1, -1), y[i : i + 1].reshape(1, -1), loss)[0]
        gi = torch.autograd.grad(li, params)
        out.append(-eta * sum(float((a * b).sum()) for a, b in zip(gq, gi)))
    return torch.tensor(out, dtype=torch.float64)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), loss=st.sampled_from(["bce", "mse", "mse-logits"]),
       batch_size=st.integers(1, 7), eta=st.floats(1e-3, 1.0))
def test_one_checkpoint_equals_explicit_autograd_loops(seed, loss, batch_size, eta):
    net = _net(seed)
    net.train()  # tracin_cp switches to eval mode itself
    x, y = _data(7, seed)
    xq = _data(1, seed + 1)[0][0]
    s = tracin_cp([net], [eta], xq, (2, 3), x, y, loss=loss, batch_size=batch_size)
    ref = _explicit(net, eta, xq, (2, 3), x, y, loss)
    assert s.shape == (7,)
    assert net.training  # the input model is untouched
    torch.testing.assert_close(s, ref, rtol=1e-11, atol=1e-14)


def test_checkpoints_add_with_their_weights():
    x, y = _data(5, 0)
    xq = x[0]
    nets = [_net(1), _net(2)]
    both = tracin_cp(nets, [0.3, 0.7], xq, (1, 1), x, y)
    parts = tracin_cp(nets[:1], [0.3], xq, (1, 1), x, y) + tracin_cp(nets[1:], [0.7], xq, (1, 1), x, y)
    torch.testing.assert_close(both, parts, rtol=1e-13, atol=1e-15)


def test_sign_an_example_whose_step_raises_the_logit_scores_positive():
    """score_i is the first-order change of f_q after one SGD step of size η on z_i alone."""
    net = _net(3).eval()
    x, y = _data(6, 3)
    xq, pixel, eta = x[1], (3, 2), 1e-6
    s = tracin_cp([net], [eta], xq, pixel, x, y)
    with torch.no_grad():
        f0 = float(net(xq[None])[0, 0, pixel[0], pixel[1]])
    for i in range(6):
        step = copy.deepcopy(net)
        li = per_example_loss(step(x[i : i + 1]).reshape(1, -1), y[i : i + 1].reshape(1, -1), "bce")[0]
        grads = torch.autograd.grad(li, list(step.parameters()))
        with torch.no_grad():
            for p, g in zip(step.parameters(), grads):
                p -= eta * g
            change = float(step(xq[None])[0, 0, pixel[0], pixel[1]]) - f0
        assert change == pytest.approx(float(s[i]), rel=1e-4, abs=1e-13)
    assert (s.abs() > 0).all()


def test_user_errors():
    x, y = _data(3, 0)
    with pytest.raises(ValueError, match="equal length"):
        tracin_cp([_net(0)], [0.1, 0.2], x[0], (0, 0), x, y)
    with pytest.raises(ValueError, match="values per example"):
        tracin_cp([_net(0)], [0.1], x[0], (0, 0), x, y[:, :, :2])


def test_sgd_copy_settings_are_kernel_explains_defaults():
    import inspect

    from jordanlab.experiments.explain import explain_run
    from jordanlab.experiments.explain_compare import SGD_COPY

    params = inspect.signature(explain_run).parameters
    assert SGD_COPY == {key: params[key].default for key in SGD_COPY}


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_ranking_agreement_properties(seed):
    import numpy as np

    from jordanlab.experiments.explain_compare import ranking_agreement, top_overlap

    rng = np.random.default_rng(seed)
    a = rng.normal(size=40)
    same = ranking_agreement(a, 3.0 * a + 1.0)  # a monotone map keeps every rank
    assert same["spearman"] == pytest.approx(1.0) and same["top10_pos"] == 10 and same["top10_neg"] == 10
    flipped = ranking_agreement(a, -a)
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["top10_abs"] == 10 and flipped["top10_pos"] == 0
    b = rng.normal(size=40)
    assert 0 <= top_overlap(a, b) <= 10 and top_overlap(a, b) == top_overlap(b, a)
