"""Private torch.func plumbing shared by the tangent-kernel, path-kernel and attribution modules.

A model is viewed as a pure function ``f(w, x)`` of a parameter dict ``w`` (the trainable
parameters, detached) and a single example ``x`` of shape ``(C, H, W)``; its output is flattened
to ``(O,)``: ``O = 1`` for a scalar model, ``O = H * W`` for a dense ``(1, H, W)`` logit map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]


def check_model(model: nn.Module) -> None:
    """Raise if ``model`` couples the examples of a batch (BatchNorm in training mode).

    Per-example gradients and per-example Jacobians assume ``f(w, X)[i] = f(w, x_i)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise ValueError(
                f"model module {name!r} is a BatchNorm in training mode: it couples the examples of a batch, "
                "so per-example gradients are undefined; build the model with norm='none' or call model.eval()"
            )
        if isinstance(module, nn.Dropout) and module.training and module.p > 0:
            raise ValueError(
                f"model module {name!r} is an active Dropout: f(w, x) is random; call model.eval() or use p=0"
            )


def detached_params(model: nn.Module) -> Params:
    """Trainable parameters of ``model`` as a dict of detached clones (the point ``w``)."""
    params = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    return params


def frozen_state(model: nn.Module) -> dict[str, Tensor]:
    """Buffers and frozen parameters: held fixed while differentiating with respect to ``w``."""
    state = {n: b.detach() for n, b in model.named_buffers()}
    state.update({n: p.detach() for n, p in model.named_parameters() if not p.requires_grad})
    return state


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(iter(model.parameters()))
    return p.dtype, p.device


def as_input(x: Tensor | object, name: str, dtype: torch.dtype, device: torch.device, ndim: int | None = None) -> Tensor:
    """Convert ``x`` to a floating tensor on ``device`` with ``dtype``; check it is batched."""
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception as exc:  # pragma: no cover - message only
            raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from exc
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch with a leading example axis, got shape {tuple(x.shape)}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    return x.to(device=device, dtype=dtype)


def single_output_fn(model: nn.Module, state: dict[str, Tensor]) -> Callable[[Params, Tensor], Tensor]:
    """Return ``f(w, x) -> (O,)`` for one example ``x`` (no batch axis)."""

    def f(params: Params, x: Tensor) -> Tensor:
        out = functional_call(model, {**params, **state}, (x.unsqueeze(0),))
        return out.reshape(-1)

    return f


def batch_output_fn(model: nn.Module, state: dict[str, Tensor]) -> Callable[[Params, Tensor], Tensor]:
    """Return ``f(w, X) -> (B, O)`` for a batch ``X``."""

    def f(params: Params, x: Tensor) -> Tensor:
        out = functional_call(model, {**params, **state}, (x,))
        return out.reshape(x.shape[0], -1)

    return f


def output_shape(model: nn.Module, params: Params, state: dict[str, Tensor], x: Tensor) -> tuple[int, ...]:
    """Per-example output shape of ``model`` at ``params`` (no batch axis), from a probe forward pass."""
    with torch.no_grad():
        out = functional_call(model, {**params, **state}, (x[:1],))
    if out.ndim == 0 or out.shape[0] != 1:
        raise ValueError(f"model output must keep the batch axis, got shape {tuple(out.shape)} for a batch of 1")
    shape = tuple(out.shape[1:])
    if out[0].numel() > 1:
        lead = 1
        for s in shape[:-2]:
            lead *= s
        if len(shape) < 2 or lead != 1:
            raise ValueError(
                f"dense model outputs must be (N, 1, H, W) or (N, H, W) logits, got per-example shape {shape}"
            )
    return shape


def pixel_indices(pixels: Sequence[Sequence[int]] | Tensor | None, shape: tuple[int, ...], name: str = "pixels") -> Tensor | None:
    """Flat output indices ``r * W + c`` of ``pixels`` (a list of ``(r, c)``) in a per-example output ``shape``."""
    numel = 1
    for s in shape:
        numel *= s
    if pixels is None:
        return None
    if numel == 1:
        raise ValueError(f"{name} was given but the model output is scalar (per-example shape {shape})")
    h, w = shape[-2], shape[-1]
    pix = torch.as_tensor(pixels, dtype=torch.long).reshape(-1, 2) if len(pixels) else torch.empty(0, 2, dtype=torch.long)
    if pix.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one (row, col) pair")
    for r, c in pix.tolist():
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"{name} contains pixel ({r}, {c}) outside the {h}x{w} output")
    return pix[:, 0] * w + pix[:, 1]


def flatten(tree: Params, lead: int) -> Tensor:
    """Concatenate a dict of tensors with ``lead`` leading axes into ``(*lead_shape, P)``."""
    parts = [t.reshape(*t.shape[:lead], -1) for t in tree.values()]
    return torch.cat(parts, dim=-1)


def gauss_legendre(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Nodes and weights of the ``n``-point Gauss–Legendre rule on ``[0, 1]`` (weights sum to 1)."""
    import numpy as np

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"quadrature must be a positive int (number of Gauss-Legendre nodes), got {n!r}")
    t, w = np.polynomial.legendre.leggauss(n)
    nodes = torch.as_tensor((t + 1.0) / 2.0, dtype=dtype, device=device)
    weights = torch.as_tensor(w / 2.0, dtype=dtype, device=device)
    return nodes, weights
