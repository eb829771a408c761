"""Tangent kernel: every method equals an explicit J Jᵀ built from per-example torch.autograd.grad."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from jordanlab.kernels import NtkMethod, tangent_kernel


class TinyDense(nn.Module):
    """(N, 1, H, W) -> (N, 1, H, W): two smooth convolutions with a skip, enough to make pixels interact."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, width, 3, padding=1)
        self.b = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))) + 0.5 * x


class TinyScalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.lin = nn.Linear(2, 1)

    def forward(self, x):
        return self.lin(torch.tanh(self.conv(x)).mean(dim=(2, 3))).squeeze(-1)


def explicit_jacobian(model, x, out_index):
    """(N, O, P) Jacobian of model(x_n).flatten()[out_index] by one torch.autograd.grad call per entry."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for n in range(x.shape[0]):
        out = model(x[n : n + 1]).reshape(-1)
        per_out = []
        for o in out_index:
            g = torch.autograd.grad(out[o], params, retain_graph=True)
            per_out.append(torch.cat([t.reshape(-1) for t in g]))
        rows.append(torch.stack(per_out))
    return torch.stack(rows)


def _data(n, h=5, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, h, w, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("method", ["jacobian", "ntk-vp", "auto"])
def test_scalar_kernel_equals_explicit(method):
    torch.manual_seed(0)
    net = TinyScalar().double()
    x1, x2 = _data(4, seed=1), _data(3, seed=2)
    j1, j2 = explicit_jacobian(net, x1, [0]), explicit_jacobian(net, x2, [0])
    ref = torch.einsum("naf,maf->nm", j1, j2)
    k = tangent_kernel(net, x1, x2, method=method, batch_size=2)
    assert k.shape == (4, 3)
    torch.testing.assert_close(k, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", list(NtkMethod))
def test_dense_pixel_kernel_equals_explicit(method):
    torch.manual_seed(0)
    net = TinyDense().double()
    x1, x2 = _data(3, seed=3), _data(2, seed=4)
    pixels = [(0, 0), (2, 3), (4, 5)]
    flat = [r * 6 + c for r, c in pixels]
    j1, j2 = explicit_jacobian(net, x1, flat), explicit_jacobian(net, x2, flat)
    ref = torch.einsum("naf,mbf->namb", j1, j2)
    k = tangent_kernel(net, x1, x2, pixels=pixels, method=method, batch_size=2)
    assert k.shape == (3, 3, 2, 3)
    torch.testing.assert_close(k, ref, rtol=1e-10, atol=1e-12)
    kt = tangent_kernel(net, x1, x2, pixels=pixels, method=method, trace=True, batch_size=2)
    torch.testing.assert_close(kt, torch.einsum("naf,maf->nm", j1, j2), rtol=1e-10, atol=1e-12)


def test_full_trace_and_symmetry():
    torch.manual_seed(1)
    net = TinyDense().double()
    x = _data(3, h=4, w=4, seed=5)
    j = explicit_jacobian(net, x, range(16))
    k = tangent_kernel(net, x, trace=True)
    torch.testing.assert_close(k, torch.einsum("naf,maf->nm", j, j), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(k, k.T)
    assert torch.linalg.eigvalsh(k).min() > -1e-9  # Gram matrix: positive semi-definite


def test_float32_request_matches_float64():
    torch.manual_seed(2)
    net = TinyScalar().double()
    x = _data(3, seed=6)
    k64 = tangent_kernel(net, x)
    k32 = tangent_kernel(net, x.float(), dtype=torch.float32)
    assert k32.dtype == torch.float32
    torch.testing.assert_close(k32.double(), k64, rtol=1e-4, atol=1e-5)
    assert next(net.parameters()).dtype == torch.float64  # model untouched


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3))
def test_batch_size_does_not_change_kernel(n1, n2, bs):
    torch.manual_seed(3)
    net = TinyDense(width=2).double()
    x1, x2 = _data(n1, h=4, w=4, seed=n1), _data(n2, h=4, w=4, seed=10 + n2)
    pixels = [(1, 1), (3, 0)]
    a = tangent_kernel(net, x1, x2, pixels=pixels, batch_size=bs, method="jacobian")
    b = tangent_kernel(net, x1, x2, pixels=pixels, batch_size=5, method="ntk-vp")
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_bad_inputs():
    net = TinyDense().double()
    x = _data(2)
    with pytest.raises(ValueError, match="method"):
        tangent_kernel(net, x, method="structured")
    with pytest.raises(ValueError, match="outside"):
        tangent_kernel(net, x, pixels=[(9, 0)])
    with pytest.raises(ValueError, match="pixels"):
        tangent_kernel(TinyScalar().double(), x, pixels=[(0, 0)])
    bn = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.BatchNorm2d(1)).double()
    with pytest.raises(ValueError, match="BatchNorm"):
        tangent_kernel(bn, x)
    with pytest.raises(ValueError, match="x2"):
        tangent_kernel(net, x, _data(2, h=3))


def test_auto_falls_back_to_ntk_vp_when_jacobians_do_not_fit():
    from jordanlab.kernels.tangent import _resolve_method

    assert _resolve_method("auto", 8, 10_000, 4, 4) is NtkMethod.JACOBIAN
    assert _resolve_method("auto", 16384, 2_000_000, 4, 4) is NtkMethod.NTK_VP
    assert _resolve_method("jacobian", 16384, 2_000_000, 4, 4) is NtkMethod.JACOBIAN


def test_tangent_kernel_of_a_fixed_point_model_does_not_depend_on_chunking():
    """crossing-depth's rounds are held for all the examples at once, whatever ``batch_size`` chunks them."""
    from jordanlab.data import make
    from jordanlab.models import build

    torch.manual_seed(0)
    net = build("crossing-depth").double()
    b, _ = make("nested", "test", n=3, size=32)
    x = torch.from_numpy(b).double()[:, None]
    k1 = tangent_kernel(net, x, pixels=[(16, 16)], batch_size=1)
    k3 = tangent_kernel(net, x, pixels=[(16, 16)], batch_size=3)
    torch.testing.assert_close(k1, k3, rtol=1e-12, atol=1e-12)
    k = k1.reshape(3, 3)
    assert torch.allclose(k, k.T, atol=1e-12)
    assert float(torch.linalg.eigvalsh(k).min()) >= -1e-9 * float(k.diagonal().max())  # a Gram matrix
