"""PyTorch datasets over dataset directories (or in-memory arrays) with exact augmentation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from jordanlab._seeds import numpy_rng
from jordanlab.curves import RasterError, affine, rasterize
from jordanlab.data.generate import label
from jordanlab.data.io import load_split_packed, spec_of, unpack_curves

__all__ = ["FillDataset", "AUGMENTATIONS"]

AUGMENTATIONS = ("affine", "flip", "none")
_AFFINE_ATTEMPTS = 20


def _check_pair(boundaries: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(boundaries)
    m = np.asarray(masks)
    if b.ndim != 3:
        raise ValueError(f"boundaries must have shape (N, H, W), got {b.shape}")
    if m.shape != b.shape:
        raise ValueError(f"masks must have the shape of boundaries {b.shape}, got {m.shape}")
    for name, a in (("boundaries", b), ("masks", m)):
        if a.dtype != np.uint8 and a.dtype != np.bool_:
            raise TypeError(f"{name} must be uint8 or bool, got {a.dtype}")
        if a.size and a.max() > 1:
            raise ValueError(f"{name} must be binary (values in {{0, 1}}), got max {int(a.max())}")
    return b.astype(np.uint8, copy=False), m.astype(np.uint8, copy=False)


class FillDataset(Dataset):
    """Items ``(x, y)``: float32 tensors ``(1, H, W)``, the boundary image and its figure mask.

    Augmentation (when ``augment=True``) is the dataset's own (recorded in its manifest):

    - ``"affine"``: a random affine map (:func:`jordanlab.curves.affine`) of the stored continuous
      curves, re-rasterized and re-filled, so the label stays exact; a draw whose curves touch is
      resampled (up to 20 times, then the stored image is used);
    - ``"flip"``: a horizontal and a vertical flip, each with probability 1/2;
    - ``"none"``.

    The random draw of item ``i`` comes from ``numpy.random.default_rng([seed, epoch, i])`` only,
    so it is the same for any worker count or order; call :meth:`set_epoch` once per epoch, before
    iterating the ``DataLoader`` (worker processes copy the dataset when an iteration starts, so with
    ``persistent_workers=True`` the epoch would not reach them).

    Parameters
    ----------
    dataset_dir : path of a directory written by :func:`jordanlab.data.write_dataset`.
    split : ``"train"`` or ``"test"``.
    augment : bool
    seed : int
    """

    def __init__(self, dataset_dir: str | os.PathLike, split: str, *, augment: bool = True, seed: int = 0) -> None:
        manifest, arrays = load_split_packed(dataset_dir, split)
        self.spec = spec_of(manifest)
        self.path: Path | None = Path(dataset_dir)
        self.split = split
        self.shape = tuple(int(v) for v in manifest["image_shape"])
        self._b = arrays["boundaries"]
        self._m = arrays["masks"]
        self._packed = True
        self._curves = unpack_curves(arrays["curve_vertices"], arrays["curve_lengths"], arrays["curves_per_image"])
        self._thickness = arrays["thickness"]
        self.augmentation = self.spec.augment if augment else "none"
        self.seed = int(seed)
        self.epoch = 0

    @classmethod
    def from_arrays(
        cls, boundaries: np.ndarray, masks: np.ndarray, *, flip: bool = False, seed: int = 0
    ) -> "FillDataset":
        """A dataset over in-memory ``(N, H, W)`` arrays; optional random flips (no curves, no affine)."""
        b, m = _check_pair(boundaries, masks)
        self = cls.__new__(cls)
        self.spec = None
        self.path = None
        self.split = "memory"
        self.shape = tuple(b.shape[1:])
        self._b, self._m, self._packed = b, m, False
        self._curves = None
        self._thickness = np.ones(len(b), dtype=np.uint8)
        self.augmentation = "flip" if flip else "none"
        self.seed = int(seed)
        self.epoch = 0
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (items are deterministic given seed, epoch, index)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._b)

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The (augmented) ``(boundary, mask)`` of item ``index`` as uint8 ``(H, W)`` arrays."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        index %= n
        if self._packed:
            b = np.unpackbits(self._b[index], axis=-1, count=self.shape[1])
            m = np.unpackbits(self._m[index], axis=-1, count=self.shape[1])
        else:
            b, m = self._b[index], self._m[index]
        if self.augmentation == "none":
            return b, m
        rng = numpy_rng(self.seed, self.epoch, index)
        if self.augmentation == "flip":
            if rng.random() < 0.5:
                b, m = b[:, ::-1], m[:, ::-1]
            if rng.random() < 0.5:
                b, m = b[::-1, :], m[::-1, :]
            return np.ascontiguousarray(b), np.ascontiguousarray(m)
        if self.augmentation == "affine":
            t = int(self._thickness[index])
            for _ in range(_AFFINE_ATTEMPTS):
                cs = affine(self._curves[index], rng, self.shape)
                try:
                    b2 = rasterize(cs, self.shape, thickness=t)
                except RasterError:
                    continue
                thin = None if t == 1 else rasterize(cs, self.shape)
                return b2, label(b2, thin=thin)
            return b, m
        raise ValueError(f"unknown augmentation {self.augmentation!r}; expected one of {AUGMENTATIONS}")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        b, m = self.arrays(index)
        x = torch.from_numpy(b.astype(np.float32))[None]
        y = torch.from_numpy(m.astype(np.float32))[None]
        return x, y
