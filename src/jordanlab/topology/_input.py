"""Input normalization shared by :func:`fill`, :func:`validate` and the programmed networks.

A boundary is a numpy array or a torch tensor of shape ``(H, W)`` or ``(N, H, W)``. The helpers
here turn it into a batch ``(N, H, W)`` and remember how to give the result back in the caller's
kind (numpy or torch, same device, same number of dimensions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__: list[str] = []


@dataclass(frozen=True)
class _Kind:
    """How the caller passed the boundary: ``is_torch``, ``device`` and whether it was 2-D."""

    is_torch: bool
    device: torch.device | None
    was_2d: bool


def _check_ndim(shape: tuple[int, ...], name: str) -> None:
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{name} must have shape (H, W) or (N, H, W), got {len(shape)}-D shape {tuple(shape)}"
        )


def _as_batch(boundary: Any, *, name: str = "boundary") -> tuple[np.ndarray | torch.Tensor, _Kind]:
    """Return ``(B, kind)`` with ``B`` a batch ``(N, H, W)`` of the input's own dtype (no copy).

    numpy input (or any array-like) gives a numpy array; a torch tensor stays a tensor on its device.
    Only bool and integer dtypes are accepted (nonzero = curve pixel): a probability map is not a
    boundary, threshold it first.
    """
    if isinstance(boundary, torch.Tensor):
        _check_ndim(tuple(boundary.shape), name)
        if boundary.is_floating_point() or boundary.is_complex():
            raise TypeError(
                f"{name} must have a bool or integer dtype, got {boundary.dtype}; "
                f"threshold it first (e.g. {name} > 0.5)"
            )
        kind = _Kind(True, boundary.device, boundary.dim() == 2)
        return (boundary[None] if kind.was_2d else boundary), kind
    arr = np.asarray(boundary)
    _check_ndim(arr.shape, name)
    if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{name} must have a bool or integer dtype, got {arr.dtype}; "
            f"threshold it first (e.g. {name} > 0.5)"
        )
    kind = _Kind(False, None, arr.ndim == 2)
    return (arr[None] if kind.was_2d else arr), kind


def _as_bool_batch(boundary: Any, *, name: str = "boundary") -> tuple[np.ndarray | torch.Tensor, _Kind]:
    """Like :func:`_as_batch`, converted to bool (nonzero = curve pixel)."""
    b, kind = _as_batch(boundary, name=name)
    if kind.is_torch:
        return (b if b.dtype == torch.bool else b != 0), kind
    return (b if b.dtype == np.bool_ else b != 0), kind


def _give_back(mask: np.ndarray | torch.Tensor, kind: _Kind) -> np.ndarray | torch.Tensor:
    """Return a bool or uint8 {0, 1} batch ``(N, H, W)`` as uint8 {0, 1} in the caller's kind and dimensionality."""
    if kind.is_torch:
        out = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(mask))
        out = out.to(device=kind.device, dtype=torch.uint8)
    else:
        if mask.dtype == np.uint8:
            out = mask
        elif mask.dtype == np.bool_ and mask.flags.c_contiguous:
            out = mask.view(np.uint8)
        else:
            out = mask.astype(np.uint8)
    return out[0] if kind.was_2d else out
