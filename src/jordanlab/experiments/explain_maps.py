"""Where in the training images a query's exact contributions come from: the adjoint sweep's per-pixel maps.

:class:`jordanlab.kernels.PixelMaps` splits every a_i over the pixels of each presentation of example i
(``a_i = Σ_τ Σ_p A_{τ,i}[p]``, exact). This module sorts those pixels by what they are *in the image as
presented* (augmented: an affine draw has no pixel-exact way back to the stored image):

- **class**: ``curve`` (a boundary pixel), ``inside`` (figure, off the curve) or ``outside`` (ground);
- **distance** to the nearest curve pixel (Euclidean, ``scipy.ndimage.distance_transform_edt``), in the
  bins of :data:`DISTANCE_BINS`;
- **offset** from the query pixel's own coordinates (r, c) (Euclidean, bins of :data:`OFFSET_BINS`): a
  convolutional network with padding and pooling is not translation invariant, so training pixels at the
  query's position may carry it.

All three are exact partitions: each split of an example sums to its a_i, and over all examples to Σ_i a_i.
They answer the talk's question in pixels: is a query pixel's fate set by training pixels near curves (a
local rule), at its own position, or spread over whole figures (look-alikes)?
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from jordanlab._atomic import save_figure
from jordanlab.kernels import PixelMaps

__all__ = ["CLASSES", "DISTANCE_BINS", "OFFSET_BINS", "distance_labels", "map_summary", "pixel_classes",
           "plot_pixel_maps", "split_by_class", "split_by_distance", "split_by_offset"]

#: Pixel classes of a presentation, in the order of :func:`pixel_classes`' codes 0, 1, 2.
CLASSES = ("curve", "inside", "outside")
#: Lower edges of the distance bins (pixels from the nearest curve pixel); the last bin is open.
DISTANCE_BINS = (0.0, 1.0, 2.0, 4.0, 8.0)
#: Lower edges of the offset bins (pixels from the query pixel's coordinates); the last bin is open.
OFFSET_BINS = (0.0, 2.0, 4.0, 8.0, 16.0)


def distance_labels(edges: Sequence[float] = DISTANCE_BINS) -> list[str]:
    """Names of the bins with lower edges ``edges`` (a first bin [0, 1) of integer distances is ``"0"``).

    Examples
    --------
    >>> distance_labels()
    ['0', '[1, 2)', '[2, 4)', '[4, 8)', '>=8']
    >>> distance_labels(OFFSET_BINS)
    ['[0, 2)', '[2, 4)', '[4, 8)', '[8, 16)', '>=16']
    """
    edges = list(edges)
    out = [("0" if edges[1] == 1 else f"[0, {edges[1]:g})")]
    out += [f"[{edges[k]:g}, {edges[k + 1]:g})" for k in range(1, len(edges) - 1)]
    return out + [f">={edges[-1]:g}"]


def pixel_classes(inputs: Tensor, targets: Tensor) -> Tensor:
    """(K, H, W) codes: 0 curve (input > 0), 1 inside (target > 0 off the curve), 2 outside.

    Examples
    --------
    >>> x = torch.tensor([[[0., 1., 0.]]]); y = torch.tensor([[[1., 1., 0.]]])
    >>> pixel_classes(x, y).tolist()
    [[[1, 0, 2]]]
    """
    codes = torch.full(inputs.shape, 2, dtype=torch.long)
    codes[targets > 0] = 1
    codes[inputs > 0] = 0
    return codes


def _distance_bins(inputs: Tensor) -> Tensor:
    """(K, H, W) bin index of each pixel's distance to the nearest curve pixel of its own image."""
    from scipy.ndimage import distance_transform_edt

    out = np.empty(inputs.shape, dtype=np.int64)
    edges = np.asarray(DISTANCE_BINS[1:])
    for k, img in enumerate(inputs.numpy() > 0):
        d = distance_transform_edt(~img) if img.any() else np.full(img.shape, math.inf)
        out[k] = np.searchsorted(edges, d, side="right")
    return torch.from_numpy(out)


def _split(maps: Tensor, codes: Tensor, n: int) -> Tensor:
    """(Q, n): Σ of the (Q, K, H, W) maps over the pixels of each code 0..n−1 of the (K, H, W) ``codes``."""
    q = maps.shape[0]
    out = torch.zeros(q, n, dtype=maps.dtype)
    out.index_add_(1, codes.flatten(), maps.reshape(q, -1))
    return out


def split_by_class(maps: PixelMaps) -> Tensor:
    """(Q, 3): Σ of every kept presentation's map over its curve, inside and outside pixels (:data:`CLASSES`)."""
    return _split(maps.maps, pixel_classes(maps.inputs, maps.targets), len(CLASSES))


def split_by_distance(maps: PixelMaps) -> Tensor:
    """(Q, len(DISTANCE_BINS)): Σ of the maps over the pixels of each distance bin."""
    return _split(maps.maps, _distance_bins(maps.inputs), len(DISTANCE_BINS))


def _offset_bins(shape: tuple[int, int], pixel: tuple[int, int]) -> Tensor:
    """(H, W) bin index of each pixel's distance to ``pixel`` (which may lie outside the H × W frame)."""
    rows = torch.arange(shape[0], dtype=torch.float64)[:, None] - pixel[0]
    cols = torch.arange(shape[1], dtype=torch.float64)[None, :] - pixel[1]
    d = torch.sqrt(rows**2 + cols**2)
    return torch.bucketize(d, torch.tensor(OFFSET_BINS[1:], dtype=torch.float64), right=True)


def split_by_offset(maps: PixelMaps, pixel: tuple[int, int]) -> Tensor:
    """(Q, len(OFFSET_BINS)): Σ of the maps over the pixels of each bin of distance to the query's (r, c)."""
    codes = _offset_bins(tuple(maps.inputs.shape[-2:]), pixel).expand(maps.inputs.shape)
    return _split(maps.maps, codes.contiguous(), len(OFFSET_BINS))


def map_summary(maps: PixelMaps, j: int, examples: Sequence[int], pixel: tuple[int, int]) -> list[dict]:
    """Per example of ``examples`` (query ``j`` at ``pixel``): a_i from the maps, its class, distance and offset
    shares, its presentations."""
    out = []
    for i in examples:
        sub = maps.select([int(i)])
        if not len(sub.steps):
            out.append({"index": int(i), "a_from_maps": 0.0, "presentations": []})
            continue
        one = PixelMaps(sub.examples, sub.steps, sub.inputs, sub.targets, sub.maps[j:j + 1])
        cls = split_by_class(one)[0]
        dist = split_by_distance(one)[0]
        off = split_by_offset(one, pixel)[0]
        shares = one.totals()[0]
        out.append({
            "index": int(i), "a_from_maps": float(shares.sum()),
            "classes": {c: float(v) for c, v in zip(CLASSES, cls.tolist())},
            "distance": {b: float(v) for b, v in zip(distance_labels(), dist.tolist())},
            "offset": {b: float(v) for b, v in zip(distance_labels(OFFSET_BINS), off.tolist())},
            "presentations": [{"step": int(s) + 1, "share": float(v)} for s, v in zip(sub.steps.tolist(), shares.tolist())],
        })
    return out


def plot_pixel_maps(report: dict, query_boundary: np.ndarray, query_mask: np.ndarray | None, pixel: tuple[int, int],
                    maps: PixelMaps, j: int, path: str | os.PathLike[str], *, title: str = "") -> None:
    """The top ±k training examples, each as its largest presentation with its per-pixel map (red +, blue −)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(report["top_positive"])
    fig, axes = plt.subplots(2, k + 1, figsize=(1.9 * (k + 1), 4.6), squeeze=False)
    r, c = pixel
    img = np.where(query_boundary > 0, 0.0, np.where(query_mask > 0, 0.75, 1.0)) if query_mask is not None \
        else 1.0 - query_boundary
    axes[0, 0].imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0, 0].plot([c], [r], marker="o", color="red", markersize=7, markerfacecolor="none", markeredgewidth=2)
    axes[0, 0].set_title(f"{report['name']}\nf: {report['f0']:.2f} → {report['fT']:.2f}", fontsize=8)
    axes[1, 0].axis("off")
    cls = report.get("map_classes")
    lines = ["each map: the presentation", "carrying most of |a_i|,", "red pushes f up, blue down,",
             "black: curve outline,", "green +: the query's (r, c)", ""]
    if cls:
        lines += ["all examples, Σ over pixels:"] + [f"{name}: {cls[name]:+.2f}" for name in CLASSES]
    off = report.get("map_offset")
    if off:
        lines += ["", "by distance from (r, c):"] + [f"{b}: {v:+.2f}" for b, v in off.items()]
    axes[1, 0].text(0.0, 0.5, "\n".join(lines), fontsize=7.2, va="center")
    for row, key in ((0, "top_positive"), (1, "top_negative")):
        for col, item in enumerate(report[key]):
            ax = axes[row, col + 1]
            sub = maps.select([item["index"]])
            if not len(sub.steps):
                ax.axis("off")
                continue
            shares = sub.maps[j].flatten(1).sum(1)
            best = int(shares.abs().argmax())
            m = sub.maps[j, best].numpy()
            lim = float(np.abs(m).max()) or 1.0
            ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.contour(sub.inputs[best].numpy(), levels=[0.5], colors="k", linewidths=0.6)  # the curve's outline
            if 0 <= r < m.shape[0] and 0 <= c < m.shape[1]:  # the query's position, when it lies in this frame
                ax.plot([c], [r], marker="+", color="green", markersize=7, markeredgewidth=1.5)
            frac = float(shares[best] / shares.sum()) if float(shares.sum()) else 0.0
            ax.set_title(f"#{item['index']}: {item['a']:+.3f}\nstep {int(sub.steps[best]) + 1}: {100 * frac:.0f}% "
                         f"of {len(shares)}", fontsize=7.5, color="darkred" if row == 0 else "navy")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
