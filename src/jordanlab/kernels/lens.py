"""The final-tangent-kernel lens: which training images push one output pixel, at the trained weights.

For a trained network f(w, ·), a query image x with pixel p, and training images x_i with masks y_i, the
first-order change of the logit f(w, x)[p] under one gradient step of size η on the training loss
L = Σ_i Σ_q ℓ(f(w, x_i)[q], y_i[q]) is

    Δf(x)[p] = −η Σ_i Σ_q K_w(x[p], x_i[q]) · r_i[q],     r_i[q] = ∂ℓ/∂f = σ(f(w, x_i)[q]) − y_i[q] (BCE),

with K_w(x[p], x_i[q]) = ∇_w f(w, x)[p] · ∇_w f(w, x_i)[q] the *final* tangent kernel. The map
c_i[q] = −K_w(x[p], x_i[q]) r_i[q] says which pixels of training image i push the query pixel towards
the figure (c > 0) or the ground (c < 0); C_i = Σ_q c_i[q] is the image's contribution. This is TracIn
(Pruthi et al. 2020) at the final checkpoint only: an approximation of what training did, not the exact
path decomposition (``jordanlab kernel explain`` retrains an SGD copy for that).

K_w(x[p], x_i[·]) for all pixels of all x_i costs one backward pass for g = ∇_w f(w, x)[p] and one
double-backward pass per batch (J_i g = ∂/∂v [J_iᵀ v] · g), so any autograd model works.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["final_kernel_attribution"]


def _params(model: nn.Module) -> list[torch.Tensor]:
    ps = [p for p in model.parameters() if p.requires_grad]
    if not ps:
        raise ValueError("model: has no trainable parameters, so there is no tangent kernel to attribute with")
    return ps


def final_kernel_attribution(
    model: nn.Module,
    query: np.ndarray,
    pixel: tuple[int, int],
    train_boundaries: np.ndarray,
    train_masks: np.ndarray,
    *,
    k: int = 6,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Top training images by |C_i| for the logit at ``pixel`` of ``query`` (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        Evaluated in ``eval()`` mode (restored afterwards), in the dtype of its parameters.
    query : ndarray (H, W), uint8 boundary
    pixel : (row, col)
    train_boundaries, train_masks : ndarray (N, h, w), uint8
    k : int
        How many images to return (largest |C_i| first).

    Returns
    -------
    dict
        ``method``, ``logit`` (f(w, x)[p]), ``contributions`` (C_i, all N), ``top`` (list of
        ``{"index", "contribution", "kernel_sum", "map"}``, ``map`` the (h, w) array c_i), ``total``
        (Σ_i C_i).
    """
    q = np.asarray(query)
    if q.ndim != 2:
        raise ValueError(f"query: expected shape (H, W), got {q.shape}")
    r, c = int(pixel[0]), int(pixel[1])
    if not (0 <= r < q.shape[0] and 0 <= c < q.shape[1]):
        raise ValueError(f"pixel: ({r}, {c}) is outside the {q.shape[0]}x{q.shape[1]} query")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    was_training = model.training
    model.eval()
    try:
        params = _params(model)
        dev, dt = params[0].device, params[0].dtype
        x = torch.as_tensor(q, dtype=dt, device=dev)[None, None]
        out = model(x)[0, 0, r, c]
        g = torch.autograd.grad(out, params)
        contributions, maps, ksums = [], [], []
        tb = np.asarray(train_boundaries)
        tm = np.asarray(train_masks)
        for s in range(0, len(tb), batch_size):
            xb = torch.as_tensor(tb[s:s + batch_size], dtype=dt, device=dev)[:, None]
            yb = torch.as_tensor(tm[s:s + batch_size], dtype=dt, device=dev)[:, None]
            f = model(xb)
            v = torch.zeros_like(f, requires_grad=True)
            jtv = torch.autograd.grad(f, params, v, create_graph=True, allow_unused=True)
            pairs = [(a, b) for a, b in zip(jtv, g) if a is not None]
            kern = torch.autograd.grad([a for a, _ in pairs], v, [b for _, b in pairs])[0]  # (n, 1, h, w)
            resid = torch.sigmoid(f.detach()) - yb
            cmap = -(kern * resid)[:, 0]
            maps.append(cmap.detach().cpu().numpy())
            contributions.append(cmap.sum((1, 2)).detach().cpu().numpy())
            ksums.append(kern[:, 0].sum((1, 2)).detach().cpu().numpy())
    finally:
        model.train(was_training)
    C = np.concatenate(contributions).astype(np.float64)
    M = np.concatenate(maps)
    K = np.concatenate(ksums)
    order = np.argsort(-np.abs(C), kind="stable")[:k]
    return {
        "method": "final tangent kernel x training-loss gradient (TracIn at the final checkpoint; first order, "
                  "not the exact path decomposition)",
        "logit": float(out.detach()), "contributions": C, "total": float(C.sum()),
        "top": [{"index": int(i), "contribution": float(C[i]), "kernel_sum": float(K[i]), "map": M[i]} for i in order],
    }
