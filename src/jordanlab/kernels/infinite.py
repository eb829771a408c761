"""Infinite-width NNGP and NTK kernels of ReLU MLPs and CNNs, in closed form.

Conventions are exactly those of neural-tangents' ``stax`` (NTK parameterization):

* a Dense layer with fan-in ``n`` computes ``W_std / sqrt(n) * W x + b_std * b`` with
  ``W, b ~ N(0, 1)``; its kernel map is ``K -> W_std**2 * K + b_std**2`` (NNGP) and
  ``Θ -> W_std**2 * Θ + K_new`` (NTK);
* a 3×3 convolution with ``SAME`` (zero) padding has fan-in ``C * 9``; on pixel-pair
  covariances it averages the 9 jointly shifted entries ``K[p + δ, p' + δ]`` (zeros outside
  the image, divided by 9 anyway), then applies the same affine map;
* ReLU maps a Gaussian pair with variances ``q, q'`` and correlation ``ρ = cos θ`` to
  ``E[φ(u)φ(v)] = sqrt(q q') (sin θ + (π - θ) cos θ) / (2π)`` and
  ``E[φ'(u)φ'(v)] = (π - θ) / (2π)`` (NT's ``Relu``, no factor 2), and ``Θ -> Θ · E[φ'φ']``;
* the input covariance is ``x · x' / d`` (MLP) or ``Σ_c x_c(p) x'_c(p') / C`` (CNN);
* ``Flatten`` then Dense averages the spatial diagonal ``K[p, p]``; ``GlobalAvgPool`` then
  Dense averages all pixel pairs ``K[p, p']``.

Finite networks in the same parameterization (``ntk_mlp``, ``ntk_cnn``) have an empirical
tangent kernel that converges to ``Θ`` as the width grows (``width_convergence``).

References
----------
Jacot, Gabriel, Hongler (2018), arXiv:1806.07572. Arora et al. (2019), arXiv:1904.11955.
Novak et al. (2020), Neural Tangents, arXiv:1912.02803.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jordanlab._seeds import torch_seed

from .tangent import tangent_kernel

__all__ = [
    "mlp_kernels",
    "cnn_kernels",
    "NTKLinear",
    "NTKConv2d",
    "ntk_mlp",
    "ntk_cnn",
    "width_convergence",
]

Readout = Literal["flatten", "gap"]
_READOUTS = ("flatten", "gap")
# Entries of one tile's covariance tensor: 2**19 float64 = 4 MiB keeps the elementwise passes in
# cache; the per-tile Python overhead is a few dozen tensor ops.
_TILE_ENTRIES = 2**19


# --------------------------------------------------------------------------- validation


def _as_float64(x: object, name: str, ndim: int, device: torch.device | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if t.is_complex():
        raise TypeError(f"{name} must be real, got dtype {t.dtype}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    t = t.to(dtype=torch.float64, device=device if device is not None else t.device)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _check_hyper(depth: int, w_std: float, b_std: float) -> None:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
    for name, v in (("w_std", w_std), ("b_std", b_std)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


def _pair(
    x1: object, x2: object | None, ndim: int, device: torch.device | str | None
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    dev = torch.device(device) if device is not None else None
    a = _as_float64(x1, "x1", ndim, dev)
    if x2 is None:
        return a, a, True
    b = _as_float64(x2, "x2", ndim, a.device)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"x1 and x2 must have the same per-example shape, got {tuple(a.shape[1:])} "
            f"and {tuple(b.shape[1:])}"
        )
    return a, b, False


# --------------------------------------------------------------------------- ReLU moments


def _inv(s: torch.Tensor) -> torch.Tensor:
    """``1/s`` where ``s > 0``, else 0 (a zero-variance unit has correlation 0 with anything)."""
    return torch.where(s > 0, 1.0 / torch.where(s > 0, s, 1.0), 0.0)


def _relu(
    cov: torch.Tensor,
    s1: torch.Tensor,
    s2: torch.Tensor,
    diag: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ReLU dual ``(E[φ(u)φ(v)], E[φ'(u)φ'(v)])`` for ``Cov(u, v) = cov``, ``sd(u) = s1``, ``sd(v) = s2``.

    ``s1``, ``s2`` broadcast against ``cov``. Where a standard deviation is 0 the variable is
    identically zero, so ``E[φφ] = 0``; ``E[φ'φ']`` is then only ever multiplied by a zero
    tangent kernel and takes its ``ρ = 0`` value. ``diag`` indexes the entries with ``u ≡ v``
    (same input, same pixel), where ``ρ = 1`` is set exactly: ``arccos`` near 1 would turn a
    rounding error ε into ``θ ≈ √(2ε) ≈ 1e-8``. ``cov`` is overwritten.
    """
    rho = cov.mul_(_inv(s1)).mul_(_inv(s2)).clamp_(-1.0, 1.0)
    if diag is not None:
        rho[diag] = 1.0
    theta = torch.arccos(rho)
    dot = theta.neg_().add_(math.pi)  # π − θ
    nngp = torch.sqrt(1.0 - rho * rho).addcmul_(dot, rho).mul_(s1 * (1 / (2 * math.pi))).mul_(s2)
    return nngp, dot.mul_(1 / (2 * math.pi))


# --------------------------------------------------------------------------- MLP


def mlp_kernels(
    x1: np.ndarray | torch.Tensor,
    x2: np.ndarray | torch.Tensor | None = None,
    depth: int = 1,
    w_std: float = 1.0,
    b_std: float = 0.0,
    *,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NNGP and NTK of ``depth`` × (Dense + ReLU) followed by a Dense readout.

    Parameters
    ----------
    x1 : ndarray or Tensor of shape (N1, D)
    x2 : ndarray or Tensor of shape (N2, D), optional
        ``None`` means ``x1`` (the kernel is then exactly symmetric).
    depth : int
        Number of hidden Dense + ReLU layers (0 gives the linear kernel).
    w_std, b_std : float
        Weight and bias standard deviations of every Dense layer (NTK parameterization).
    device : optional
        Where to compute; defaults to the device of ``x1``.

    Returns
    -------
    nngp, ntk : Tensor of shape (N1, N2), float64

    Notes
    -----
    ``K⁰ = W²·x·x'/D + b²``, ``Θ⁰ = K⁰``; for each hidden layer
    ``K ← W² E[φφ'] + b²``, ``Θ ← W² E[φ̇φ̇'] Θ + K`` (Jacot et al. 2018), matching
    ``stax.serial(*[Dense(n, W_std, b_std), Relu()] * depth, Dense(1, W_std, b_std))``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> nngp, ntk = mlp_kernels(x, None, 0)
    >>> nngp.tolist()
    [[0.5, 0.0], [0.0, 0.5]]
    """
    _check_hyper(depth, w_std, b_std)
    a, b, same = _pair(x1, x2, 2, device)
    wv, bv = float(w_std) ** 2, float(b_std) ** 2
    d = a.shape[1]
    if d == 0:
        raise ValueError("x1 must have at least one feature, got shape (N, 0)")
    k = a @ b.T / d
    q1 = (a * a).sum(1) / d
    q2 = (b * b).sum(1) / d
    ntk = torch.zeros_like(k)
    eye = (torch.arange(k.shape[0], device=k.device),) * 2 if same else None
    for _ in range(depth):
        k, q1, q2 = wv * k + bv, wv * q1 + bv, wv * q2 + bv
        ntk = wv * ntk + k
        k, dot = _relu(k, torch.sqrt(q1)[:, None], torch.sqrt(q2)[None, :], eye)
        ntk = ntk * dot
        q1, q2 = q1 / 2, q2 / 2
    k = wv * k + bv
    ntk = wv * ntk + k
    if same:
        k, ntk = (k + k.T) / 2, (ntk + ntk.T) / 2
    return k, ntk


# --------------------------------------------------------------------------- CNN


def _shift_mean_axes(t: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """``Σ_{d ∈ {-1, 0, 1}} t[.. i + d ..]`` jointly along ``axes`` (all of one length), zeros outside."""
    n = t.shape[axes[0]]
    out = t.clone()
    if n == 1:
        return out
    lo = [slice(None)] * t.ndim
    hi = [slice(None)] * t.ndim
    for ax in axes:
        lo[ax], hi[ax] = slice(0, n - 1), slice(1, n)
    out[tuple(lo)] += t[tuple(hi)]  # d = +1
    out[tuple(hi)] += t[tuple(lo)]  # d = -1
    return out


def _box3(t: torch.Tensor) -> torch.Tensor:
    """Mean of the 3×3 zero-padded neighbourhood over the last two axes (a same-padded conv)."""
    return _shift_mean_axes(_shift_mean_axes(t, (t.ndim - 2,)), (t.ndim - 1,)).div_(9.0)


def _box3_pairs(t: torch.Tensor) -> torch.Tensor:
    """Joint 3×3 shift-mean of a pixel-pair tensor ``(..., H, W, H, W)``: ``mean_δ K[p+δ, p'+δ]``.

    Separable, as in NT: the shift along rows moves both row axes together, then along columns.
    """
    d = t.ndim
    return _shift_mean_axes(_shift_mean_axes(t, (d - 4, d - 2)), (d - 3, d - 1)).div_(9.0)


def _self_variances(x: torch.Tensor, depth: int, wv: float, bv: float) -> list[torch.Tensor]:
    """Pre-activation standard deviations ``K_l(x, x)[p, p]^½`` of each conv layer, each (N, H, W)."""
    k = (x * x).sum(1) / x.shape[1]
    out = []
    for _ in range(depth):
        k = wv * _box3(k) + bv
        out.append(torch.sqrt(k))
        k = k / 2  # E[relu(u)^2] = Var(u) / 2
    return out


def _cnn_tile(
    a: torch.Tensor,
    b: torch.Tensor,
    sa: list[torch.Tensor],
    sb: list[torch.Tensor],
    wv: float,
    bv: float,
    readout: str,
    diagonal: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernels of one block of pairs; ``diagonal``: ``a`` and ``b`` are the same images."""
    c, n = a.shape[1], a.shape[0]
    h, w = a.shape[2:]
    dev = a.device
    diag = None
    if readout == "flatten":
        k = torch.einsum("nchw,mchw->nmhw", a, b) / c
        box = _box3
        expand_a = (slice(None), None)
        expand_b = (None, slice(None))
        if diagonal:
            diag = (torch.arange(n, device=dev),) * 2
    else:
        k = torch.einsum("nchw,mcij->nmhwij", a, b) / c
        box = _box3_pairs
        expand_a = (slice(None), None, Ellipsis, None, None)
        expand_b = (None, slice(None), None, None, Ellipsis)
        if diagonal:
            i = torch.arange(n, device=dev)[:, None]
            r = torch.arange(h, device=dev)[:, None][None]
            q = torch.arange(w, device=dev)[None, None]
            diag = (i[..., None], i[..., None], r, q, r, q)
    ntk = torch.zeros_like(k)
    for s1, s2 in zip(sa, sb):
        k = box(k).mul_(wv).add_(bv)
        ntk = box(ntk).mul_(wv).add_(k)
        k, dot = _relu(k, s1[expand_a], s2[expand_b], diag)
        ntk.mul_(dot)
    dims = tuple(range(2, k.ndim))
    k = wv * k.mean(dims) + bv
    ntk = wv * ntk.mean(dims) + k
    return k, ntk


def cnn_kernels(
    x1: np.ndarray | torch.Tensor,
    x2: np.ndarray | torch.Tensor | None = None,
    depth: int = 1,
    w_std: float = 1.0,
    b_std: float = 0.0,
    readout: Readout = "flatten",
    *,
    tile: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NNGP and NTK (the CNTK) of ``depth`` × (3×3 Conv SAME + ReLU), a readout and a Dense layer.

    Parameters
    ----------
    x1 : ndarray or Tensor of shape (N1, C, H, W)
    x2 : ndarray or Tensor of shape (N2, C, H, W), optional
        ``None`` means ``x1``; only the upper tiles are computed and mirrored.
    depth : int
        Number of convolution + ReLU layers (0: readout on the raw image).
    w_std, b_std : float
        Standard deviations of every Conv and Dense layer (NTK parameterization).
    readout : {"flatten", "gap"}
        ``Flatten`` (Arora et al.'s CNTK-V) or ``GlobalAvgPool`` (CNTK-GAP) before the Dense.
    tile : int, optional
        Pairs are computed in ``tile × tile`` blocks; by default the largest block whose
        covariance tensor has at most 2**19 entries (4 MiB; memory is a small multiple of that).
    device : optional
        Where to compute; defaults to the device of ``x1``.
    progress : bool
        Show a progress bar over tiles.

    Returns
    -------
    nngp, ntk : Tensor of shape (N1, N2), float64

    Notes
    -----
    With ``K(x, x')[p, p']`` the pixel-pair covariance, a conv layer maps
    ``K ← W² mean_δ K[p+δ, p'+δ] + b²`` and ``Θ ← W² mean_δ Θ[p+δ, p'+δ] + K``; ReLU as in
    :func:`mlp_kernels`, pixelwise with ``q = K(x, x)[p, p]``, ``q' = K(x', x')[p', p']``.
    ``flatten`` needs only the spatial diagonal ``p = p'`` (an (N1, N2, H, W) tensor, since the
    diagonal only ever feeds the diagonal); ``gap`` needs the full (N1, N2, H, W, H, W) tensor.
    Matches ``stax.serial(*[Conv(n, (3, 3), padding='SAME', W_std, b_std), Relu()] * depth,
    Flatten() | GlobalAvgPool(), Dense(1, W_std, b_std))`` on NHWC inputs.
    """
    _check_hyper(depth, w_std, b_std)
    if readout not in _READOUTS:
        raise ValueError(f"readout must be one of {_READOUTS}, got {readout!r}")
    a, b, same = _pair(x1, x2, 4, device)
    if a.shape[1] == 0:
        raise ValueError("x1 must have at least one channel, got C = 0")
    wv, bv = float(w_std) ** 2, float(b_std) ** 2
    n1, n2 = a.shape[0], b.shape[0]
    h, w = a.shape[2:]
    if tile is None:
        per_pair = h * w if readout == "flatten" else (h * w) ** 2
        tile = max(1, int(math.isqrt(max(1, _TILE_ENTRIES // per_pair))))
    elif isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    va = _self_variances(a, depth, wv, bv)
    vb = va if same else _self_variances(b, depth, wv, bv)
    nngp = torch.empty(n1, n2, dtype=torch.float64, device=a.device)
    ntk = torch.empty_like(nngp)
    blocks = [
        (i, j)
        for i in range(0, n1, tile)
        for j in range(0, n2, tile)
        if not same or j >= i
    ]
    it = blocks
    if progress:
        from tqdm import tqdm

        it = tqdm(blocks, desc=f"cnn_kernels {readout}", unit="tile")
    for i, j in it:
        si, sj = slice(i, i + tile), slice(j, j + tile)
        kt, tt = _cnn_tile(
            a[si], b[sj], [v[si] for v in va], [v[sj] for v in vb], wv, bv, readout,
            same and i == j,
        )
        nngp[si, sj], ntk[si, sj] = kt, tt
        if same and i != j:
            nngp[sj, si], ntk[sj, si] = kt.T, tt.T
    if same:
        nngp, ntk = (nngp + nngp.T) / 2, (ntk + ntk.T) / 2
    return nngp, ntk


# --------------------------------------------------------------------------- finite networks


class NTKLinear(nn.Module):
    """Dense layer in NTK parameterization: ``y = W_std/√n · W x + b_std · b``, ``W, b ~ N(0, 1)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        w_std: float = 1.0,
        b_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.w_std, self.b_std = in_features, float(w_std), float(b_std)
        self.weight = nn.Parameter(torch.randn(out_features, in_features, generator=generator))
        self.bias = nn.Parameter(torch.randn(out_features, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight) * (self.w_std / math.sqrt(self.in_features)) + (
            self.b_std * self.bias
        )


class NTKConv2d(nn.Module):
    """3×3 same-padded convolution in NTK parameterization (fan-in ``C·9``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_std: float = 1.0,
        b_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.fan_in, self.w_std, self.b_std = in_channels * 9, float(w_std), float(b_std)
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, 3, 3, generator=generator)
        )
        self.bias = nn.Parameter(torch.randn(out_channels, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, padding=1) * (self.w_std / math.sqrt(self.fan_in))
        return y + self.b_std * self.bias[:, None, None]


class _GlobalAvgPool(nn.Module):
    """``(N, C, H, W) -> (N, C)``: mean over pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1))


def _check_width(width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")


def ntk_mlp(
    in_features: int,
    width: int,
    depth: int,
    *,
    w_std: float = 1.0,
    b_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """Finite ReLU MLP whose infinite-width kernels are :func:`mlp_kernels`; output (N, 1)."""
    _check_hyper(depth, w_std, b_std)
    _check_width(width)
    layers: list[nn.Module] = []
    n = in_features
    for _ in range(depth):
        layers += [NTKLinear(n, width, w_std=w_std, b_std=b_std, generator=generator), nn.ReLU()]
        n = width
    layers.append(NTKLinear(n, 1, w_std=w_std, b_std=b_std, generator=generator))
    return nn.Sequential(*layers)


def ntk_cnn(
    in_channels: int,
    width: int,
    depth: int,
    *,
    readout: Readout = "flatten",
    image_size: tuple[int, int] | None = None,
    w_std: float = 1.0,
    b_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """Finite ReLU CNN whose infinite-width kernels are :func:`cnn_kernels`; output (N, 1).

    ``image_size = (H, W)`` is required for ``readout="flatten"`` (the Dense fan-in is
    ``width·H·W``); GAP networks accept any canvas size.
    """
    _check_hyper(depth, w_std, b_std)
    _check_width(width)
    if readout not in _READOUTS:
        raise ValueError(f"readout must be one of {_READOUTS}, got {readout!r}")
    layers: list[nn.Module] = []
    c = in_channels
    for _ in range(depth):
        layers += [NTKConv2d(c, width, w_std=w_std, b_std=b_std, generator=generator), nn.ReLU()]
        c = width
    if readout == "flatten":
        if image_size is None or len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size=(H, W) is required for readout='flatten', got {image_size!r}")
        layers += [nn.Flatten(), NTKLinear(c * image_size[0] * image_size[1], 1, w_std=w_std,
                                           b_std=b_std, generator=generator)]
    else:
        layers += [_GlobalAvgPool(), NTKLinear(c, 1, w_std=w_std, b_std=b_std, generator=generator)]
    return nn.Sequential(*layers)


def width_convergence(
    kind: Literal["mlp", "cnn"],
    widths: Sequence[int],
    *,
    depth: int = 2,
    readout: Readout = "flatten",
    n: int = 4,
    in_features: int = 8,
    image_size: tuple[int, int] = (5, 5),
    in_channels: int = 2,
    seeds: int = 3,
    w_std: float = 1.0,
    b_std: float = 0.0,
    seed: int = 0,
) -> dict[str, object]:
    """Relative error of the empirical NTK of width-``w`` networks against the closed form.

    For each width, ``err(w) = (mean_seeds ‖Θ_w − Θ_∞‖²_F)^½ / ‖Θ_∞‖_F`` on ``n`` fixed random
    inputs; the fitted log-log ``slope`` of ``err`` against ``w`` should be close to ``-1/2``
    (fluctuations of a sum of ``w`` independent terms). Computed in float64.

    Returns
    -------
    dict
        ``{"kind", "depth", "readout", "widths", "errors", "slope"}``.
    """
    if kind not in ("mlp", "cnn"):
        raise ValueError(f"kind must be 'mlp' or 'cnn', got {kind!r}")
    if len(widths) < 2:
        raise ValueError(f"widths needs at least two widths to fit a slope, got {list(widths)}")
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        x = torch.from_numpy(rng.standard_normal((n, in_features)))
        _, theta = mlp_kernels(x, None, depth, w_std, b_std)
    else:
        x = torch.from_numpy(rng.standard_normal((n, in_channels, *image_size)))
        _, theta = cnn_kernels(x, None, depth, w_std, b_std, readout)
    errors = []
    for width in widths:
        errs = []
        for s in range(seeds):
            g = torch.Generator().manual_seed(torch_seed(seed, 7919 * int(width) + s))
            if kind == "mlp":
                net = ntk_mlp(in_features, int(width), depth, w_std=w_std, b_std=b_std, generator=g)
            else:
                net = ntk_cnn(in_channels, int(width), depth, readout=readout, image_size=image_size,
                              w_std=w_std, b_std=b_std, generator=g)
            net = net.double()
            emp = tangent_kernel(net, x)
            errs.append(float(torch.linalg.norm(emp - theta) / torch.linalg.norm(theta)))
        errors.append(float(np.sqrt(np.mean(np.square(errs)))))
    slope = float(np.polyfit(np.log(np.asarray(widths, float)), np.log(errors), 1)[0])
    return {
        "kind": kind,
        "depth": depth,
        "readout": readout if kind == "cnn" else None,
        "widths": [int(w) for w in widths],
        "errors": errors,
        "slope": slope,
    }
