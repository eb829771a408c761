"""PNG grids of curves over their fills (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jordanlab._atomic import save_figure
from jordanlab._seeds import numpy_rng

__all__ = ["preview_grid", "preview_dataset", "gallery", "GALLERY_NAMES"]

_FIGURE_RGB = np.array([0.55, 0.75, 0.95])  # light blue figure
_BACKGROUND_RGB = np.array([1.0, 1.0, 1.0])


def _composite(boundary: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB image: white background, blue figure, black curve pixels."""
    rgb = np.where(mask[..., None].astype(bool), _FIGURE_RGB, _BACKGROUND_RGB)
    rgb[boundary.astype(bool)] = 0.0
    return rgb


def preview_grid(
    boundaries: np.ndarray,
    masks: np.ndarray,
    out_png: str | os.PathLike,
    *,
    ncols: int = 8,
    titles: Sequence[str] | None = None,
    panel_inches: float = 1.6,
    dpi: int = 100,
) -> Path:
    """Write a PNG grid: each panel shows the curve (black) over its filled figure (blue).

    Parameters
    ----------
    boundaries, masks : ndarray of shape (N, H, W)
        Images may differ in size if given as a list of 2-D arrays.
    out_png : path
        Written atomically (temporary file, then rename).
    ncols : int
        Panels per row.
    titles : sequence of str, optional
        One per panel.

    Returns
    -------
    Path of the PNG.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    b_list = [np.asarray(b) for b in boundaries]
    m_list = [np.asarray(m) for m in masks]
    if len(b_list) != len(m_list):
        raise ValueError(f"boundaries and masks must have the same length, got {len(b_list)} and {len(m_list)}")
    if len(b_list) == 0:
        raise ValueError("boundaries must contain at least one image")
    for k, (b, m) in enumerate(zip(b_list, m_list)):
        if b.ndim != 2 or b.shape != m.shape:
            raise ValueError(f"image {k}: boundary {b.shape} and mask {m.shape} must be equal 2-D shapes")
    if titles is not None and len(titles) != len(b_list):
        raise ValueError(f"titles must have one entry per image ({len(b_list)}), got {len(titles)}")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    n = len(b_list)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_inches * ncols, panel_inches * nrows + 0.2 * (titles is not None)), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < n:
            ax.imshow(_composite(b_list[k], m_list[k]), interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=7)
    fig.tight_layout(pad=0.3)
    out = Path(out_png)
    try:
        save_figure(fig, out, dpi=dpi)
    finally:
        plt.close(fig)
    return out


def preview_dataset(
    dataset_dir: str | os.PathLike, out_png: str | os.PathLike, *, split: str = "test", n: int = 16, ncols: int = 8
) -> Path:
    """Grid of the first ``n`` images of a dataset directory's ``split`` (checksums verified), titled by index."""
    from jordanlab.data.io import load_dataset

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    b, m = load_dataset(dataset_dir, split)
    if len(b) == 0:
        raise ValueError(f"split {split!r} of {dataset_dir} is empty")
    k = min(n, len(b))
    return preview_grid(b[:k], m[:k], out_png, ncols=ncols, titles=[f"{split} #{i}" for i in range(k)])


GALLERY_NAMES: tuple[str, ...] = (
    "shapes-32",
    "strokes-32",
    "shapes-64",
    "shapes-128",
    "textures-256",
    "multi-2",
    "multi-3",
    "multi-5",
    "nested",
    "spiral",
    "polygon",
    "randomwalk",
    "thick",
    "large-2x",
    "large-4x",
)


def gallery(out_png: str | os.PathLike, *, per_name: int = 4, seed: int = 0, size: int | None = None) -> Path:
    """A grid with ``per_name`` test images of every preset and suite (one row each), titled by name.

    Also shows the affine augmentation: the last row is ``shapes-64`` train images after a random
    affine map of their curves, re-rasterized and re-filled.
    """
    from jordanlab.curves import affine, rasterize
    from jordanlab.data.generate import generate_images, label
    from jordanlab.data.specs import resolve

    bs, ms, titles = [], [], []
    for name in GALLERY_NAMES:
        spec = resolve(name, size=size if name not in ("shapes-32", "shapes-64", "shapes-128", "textures-256") else None)
        b, m, _, _ = generate_images(spec, "test", range(per_name), seed=seed, workers=1)
        bs.extend(b)
        ms.extend(m)
        titles.extend(f"{name} #{i}" for i in range(per_name))
    spec = resolve("shapes-64")
    _, _, curves, _ = generate_images(spec, "train", range(per_name), seed=seed, workers=1)
    for i, cs in enumerate(curves):
        rng = numpy_rng(seed, 1, i)
        for _ in range(50):
            try:
                b = rasterize(affine(cs, rng, spec.size), spec.size)
                break
            except ValueError:
                continue
        bs.append(b)
        ms.append(label(b))
        titles.append(f"shapes-64 affine #{i}")
    return preview_grid(bs, ms, out_png, ncols=per_name, titles=titles, panel_inches=1.8)
