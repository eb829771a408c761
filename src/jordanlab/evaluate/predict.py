"""Predicted figure masks from a trained model: batches of boundary images, or a user's PNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jordanlab.models.protocols import FixedPointModel
from jordanlab.train.run import Run
from jordanlab.train.distributed import resolve_device
from jordanlab.train.objectives import is_recurrent

__all__ = ["default_max_iters", "model_certificate", "predict_masks", "predict_png"]


def default_max_iters(height: int, width: int) -> int:
    """Iteration budget of the halting rule on an ``H x W`` canvas: ``2 (H + W)``.

    Local propagation advances the fill by at least one pixel per iteration along the region's
    geodesic, and a geodesic in an ``H x W`` canvas bounded by non-touching curves is rarely longer
    than the perimeter; spirals that need more show up as ``iters_max`` at the budget.
    """
    return 2 * (int(height) + int(width))


def model_certificate(model: nn.Module, size: int | None = None) -> dict | None:
    """The exactness certificate of a crossing-depth model (``model.certificate(size)``), ``None`` for other models.

    See :func:`jordanlab.models.depth.certify_costs`: ``certified``, ``max_size`` (largest canvas side on
    which the model is exact on every well-posed image; ``None``: every canvas), ``failure`` and ``reasons``.

    >>> from jordanlab.models import build
    >>> model_certificate(build("crossing-depth"))["certified"], model_certificate(build("parity-scan"))
    (False, None)
    """
    fn = getattr(model, "certificate", None)
    return fn(size) if callable(fn) else None


@torch.inference_mode()
def predict_masks(
    model: nn.Module,
    boundaries: np.ndarray,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    max_iters: int | None = None,
    patience: int = 10,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Figure masks ``logits > 0`` of ``model`` on uint8 boundary images ``(N, H, W)``.

    For a recurrent model (``init_state/step/readout``) each image is iterated until its
    prediction has not changed for ``patience`` iterations, at most ``max_iters``
    (:func:`default_max_iters` when ``None``), by ``jordanlab.models.run_until_stable``: a halting
    rule that never looks at labels. A model with its own fixed-point rule
    (``forward_with_rounds(x, max_rounds=...)``, e.g. ``crossing-depth``) runs it under the same
    budget and reports its rounds as iterations.

    Returns
    -------
    masks : ndarray of shape (N, H, W), uint8 in {0, 1}
    iters_used : ndarray of shape (N,), int64, or None for a feed-forward model
    """
    b = np.asarray(boundaries)
    if b.ndim == 2:
        b = b[None]
    if b.ndim != 3:
        raise ValueError(f"boundaries: expected shape (N, H, W) or (H, W), got {b.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    was_training = model.training
    model.eval()
    recurrent = is_recurrent(model)
    rounds = isinstance(model, FixedPointModel)
    budget = default_max_iters(*b.shape[1:]) if max_iters is None else int(max_iters)
    masks = np.empty(b.shape, dtype=np.uint8)
    iters = np.empty(len(b), dtype=np.int64) if recurrent or rounds else None
    try:
        model.to(dev)
        for start in range(0, len(b), batch_size):
            x = torch.from_numpy(b[start:start + batch_size].astype(np.float32))[:, None].to(dev)
            if rounds:
                logits, used = model.forward_with_rounds(x, max_rounds=budget)
                iters[start:start + len(x)] = used.cpu().numpy()
            elif recurrent:
                from jordanlab.models import run_until_stable

                logits, used = run_until_stable(model, x, max_iters=budget, patience=patience)
                iters[start:start + len(x)] = used.cpu().numpy()
            else:
                logits = model(x)
            masks[start:start + len(x)] = (logits[:, 0] > 0).cpu().numpy()  # bool into uint8: 0/1
    finally:
        model.train(was_training)
    return masks, iters


def predict_png(
    run_dir: str | os.PathLike[str],
    in_png: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    device: str = "auto",
    max_iters: int | None = None,
) -> Path:
    """Fill the closed curves drawn in ``in_png`` with the run's model and write the mask to ``out_png``.

    The model is fully convolutional, so any canvas size works. The PNG is read by
    ``jordanlab.data.read_boundary_png`` (curve = minority colour unless unambiguous) and the mask
    written by ``jordanlab.data.write_mask_png`` (figure 255), atomically.
    """
    from jordanlab.data import read_boundary_png, write_mask_png

    model = Run.open(run_dir).load_model()
    boundary = read_boundary_png(in_png)
    masks, _ = predict_masks(model, boundary[None], batch_size=1, device=resolve_device(device), max_iters=max_iters)
    return Path(write_mask_png(masks[0], out_png))
