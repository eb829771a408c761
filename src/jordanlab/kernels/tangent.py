"""Empirical (finite-width) tangent kernel of any ``torch.nn.Module`` via ``torch.func``.

K_w(x, x') = ∇_w f(w, x) · ∇_w f(w, x'), for scalar outputs or for chosen pixels of dense outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import torch
from torch import Tensor, nn
from torch.func import jacrev, jvp, vjp, vmap

from jordanlab.models.protocols import held_rounds

from . import _functional as F

__all__ = ["NtkMethod", "DEFAULT_NTK_METHOD", "tangent_kernel"]


class NtkMethod(str, Enum):
    """How the tangent kernel J(x1) J(x2)ᵀ is computed (Novak et al. 2022, "Fast finite width NTK").

    Members
    -------
    AUTO
        Pick by the cost model below (the default, see ``DEFAULT_NTK_METHOD``).
    JACOBIAN
        Jacobian contraction: reverse-mode Jacobians of the O selected outputs of every example
        (``vmap(jacrev)``: O vector-Jacobian products per example), then ``einsum`` over parameters.
        Time ~ (N1 + N2)·O·[FP] + N1·N2·O²·P, memory ~ batch·O·P. Best when O·P fits in memory.
    NTK_VP
        NTK-vector products: for each example of x2 and output o, one VJP gives J(x2)ᵀe_o (a parameter
        vector); one JVP of the x1 batch along it gives the column J(x1) J(x2)ᵀ e_o. Never stores a
        Jacobian (memory ~ batch·[FP] + P). Time ~ N2·O·(1 + N1)·[FP].
    """

    AUTO = "auto"
    JACOBIAN = "jacobian"
    NTK_VP = "ntk-vp"


#: Jacobian contraction is faster for convolutional nets whenever its Jacobians fit in memory
#: (Novak et al. 2022 measured it as the most reliable for CNNs); "auto" therefore picks JACOBIAN unless
#: the Jacobians it keeps (all of x2 plus one x1 chunk) would exceed ``_JACOBIAN_BYTES`` (2 GiB), where it
#: falls back to NTK_VP, whose memory does not grow with O·P.
DEFAULT_NTK_METHOD = NtkMethod.AUTO
_JACOBIAN_BYTES = 2 * 1024**3


def _resolve_method(method: NtkMethod | str, n_out: int, n_params: int, n_rows: int, itemsize: int) -> NtkMethod:
    """Resolve AUTO: JACOBIAN when its stored Jacobians (``n_rows`` examples × O × P) fit ``_JACOBIAN_BYTES``."""
    try:
        m = NtkMethod(method)
    except ValueError:
        raise ValueError(
            f"method must be one of {[e.value for e in NtkMethod]}, got {method!r}"
        ) from None
    if m is not NtkMethod.AUTO:
        return m
    jac_bytes = n_rows * n_out * n_params * itemsize
    return NtkMethod.JACOBIAN if jac_bytes <= _JACOBIAN_BYTES else NtkMethod.NTK_VP


def tangent_kernel(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    pixels: Sequence[Sequence[int]] | None = None,
    trace: bool = False,
    method: NtkMethod | str = DEFAULT_NTK_METHOD,
    dtype: torch.dtype | None = None,
    batch_size: int = 16,
) -> Tensor:
    """Empirical tangent kernel K_w(x, x') = ∇_w f(w, x) · ∇_w f(w, x') at the current weights.

    Parameters
    ----------
    model : nn.Module
        Any module mapping ``(N, C, H, W)`` (or ``(N, D)``) to per-example scalars ``(N,)``/``(N, 1)``
        or dense logits ``(N, 1, H, W)``. It must not couple examples (no BatchNorm in training mode).
        Only parameters with ``requires_grad`` count as ``w``; buffers are held fixed.
    x1 : Tensor of shape (N1, ...)
    x2 : Tensor of shape (N2, ...), optional
        ``None`` means ``x2 = x1``.
    pixels : list of (row, col), optional
        Dense models only: the outputs ``f(x)[0, r, c]`` that enter the kernel. ``None`` means all
        H·W pixels in row-major order.
    trace : bool
        Return the trace over the selected outputs, Σ_a K[n, a, m, a].
    method : NtkMethod or str
        ``"auto"`` (default), ``"jacobian"`` or ``"ntk-vp"``; see :class:`NtkMethod`.
    dtype : torch.dtype, optional
        Compute in this dtype (parameters and inputs are cast; the model is not modified).
    batch_size : int
        Examples per vectorized chunk (memory knob).

    Returns
    -------
    Tensor
        Scalar model: ``(N1, N2)``. Dense model: ``(N1, P, N2, P)`` with P = number of selected pixels
        (H·W when ``pixels`` is None), K[n, a, m, b] = ∇f(x1_n)[pixel a] · ∇f(x2_m)[pixel b];
        with ``trace=True``: ``(N1, N2)``.

    Notes
    -----
    With J(x) the (O, P) Jacobian of the selected outputs, K(x, x') = J(x) J(x')ᵀ. Both methods compute
    this exactly (up to floating point); they differ in cost only.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1)).double()
    >>> tangent_kernel(net, torch.ones(2, 1, 2, 2, dtype=torch.float64)).shape
    torch.Size([2, 2])
    """
    F.check_model(model)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    mdtype, device = F.model_dtype_device(model)
    dtype = mdtype if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    x1 = F.as_input(x1, "x1", dtype, device)
    same = x2 is None
    x2 = x1 if same else F.as_input(x2, "x2", dtype, device)
    if x2.shape[1:] != x1.shape[1:]:
        raise ValueError(f"x2 examples must have the shape of x1 examples {tuple(x1.shape[1:])}, got {tuple(x2.shape[1:])}")

    params = {k: v.to(dtype) for k, v in F.detached_params(model).items()}
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in F.frozen_state(model).items()}
    fsingle = F.single_output_fn(model, state)
    shape = F.output_shape(model, params, state, x1)
    numel = 1
    for s in shape:
        numel *= s
    idx = F.pixel_indices(pixels, shape)
    if idx is None:
        idx = torch.arange(numel)
    idx = idx.to(device)
    scalar = numel == 1

    def fsel(p: F.Params, x: Tensor) -> Tensor:
        return fsingle(p, x)[idx]

    n_params = sum(v.numel() for v in params.values())
    # the Jacobian method keeps one x1 chunk and all of x2's Jacobians
    n_rows = x2.shape[0] + (0 if same else min(batch_size, x1.shape[0]))
    m = _resolve_method(method, idx.numel(), n_params, n_rows, torch.finfo(dtype).bits // 8)
    # a fixed-point model runs the rounds all the examples need, whatever the chunking (held for vmap)
    with held_rounds(model, {**params, **state}, x1 if same else torch.cat([x1, x2])):
        if m is NtkMethod.JACOBIAN:
            k = _kernel_jacobian(fsel, params, x1, x2, same, trace, batch_size)
        else:
            k = _kernel_ntk_vp(fsel, params, x1, x2, trace, batch_size)
    if scalar or trace:
        return k if trace else k[:, 0, :, 0]
    return k


def _jacobians(fsel, params: F.Params, x: Tensor) -> Tensor:
    """(n, O, P) Jacobian of the selected outputs for a chunk ``x``."""
    jac = vmap(jacrev(fsel), (None, 0))(params, x)
    return F.flatten(jac, 2)


def _kernel_jacobian(fsel, params, x1, x2, same, trace, bs) -> Tensor:
    """Contract chunked Jacobians: K = J(x1) J(x2)ᵀ (memory ~ (bs + N2)·O·P)."""
    j2s = [_jacobians(fsel, params, x2[j : j + bs]) for j in range(0, x2.shape[0], bs)]
    rows = []
    for ii, i in enumerate(range(0, x1.shape[0], bs)):
        j1 = j2s[ii] if same else _jacobians(fsel, params, x1[i : i + bs])
        if trace:
            cols = [torch.einsum("naf,maf->nm", j1, j2) for j2 in j2s]
            rows.append(torch.cat(cols, dim=1))
        else:
            cols = [torch.einsum("naf,mbf->namb", j1, j2) for j2 in j2s]
            rows.append(torch.cat(cols, dim=2))
    return torch.cat(rows, dim=0)


def _kernel_ntk_vp(fsel, params, x1, x2, trace, bs) -> Tensor:
    """K[:, :, m, b] = J(x1) (J(x2_m)ᵀ e_b): one VJP per (m, b), one batched JVP of x1 along it."""
    n_out = fsel(params, x2[0]).numel()
    eye = torch.eye(n_out, dtype=x2.dtype, device=x2.device)
    f1 = vmap(fsel, (None, 0))
    cols = []
    for m in range(x2.shape[0]):
        _, vjp_fn = vjp(lambda p: fsel(p, x2[m]), params)
        blocks = []
        for i in range(0, x1.shape[0], bs):
            xc = x1[i : i + bs]
            vecs_all = []
            for b0 in range(0, n_out, bs):
                vecs = vmap(vjp_fn)(eye[b0 : b0 + bs])[0]  # dict, leading axis = outputs b
                tang = vmap(lambda v: jvp(lambda p: f1(p, xc), (params,), (v,))[1])(vecs)  # (b, n, a)
                vecs_all.append(tang)
            blocks.append(torch.cat(vecs_all, dim=0))  # (O_b, n, O_a)
        col = torch.cat(blocks, dim=1).permute(1, 2, 0)  # (N1, O_a, O_b)
        if trace:
            cols.append(torch.diagonal(col, dim1=1, dim2=2).sum(-1))
        else:
            cols.append(col)
    if trace:
        return torch.stack(cols, dim=1)  # (N1, N2)
    return torch.stack(cols, dim=2)  # (N1, O_a, N2, O_b)
