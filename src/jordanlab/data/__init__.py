"""jordanlab.data: presets, OOD suites, the on-disk dataset format, torch datasets, PNG I/O, previews.

:func:`make` returns exactly labelled ``(boundaries, masks)`` for a preset or suite;
:func:`write_dataset` / :func:`load_dataset` store them as checksummed ``.npz`` shards with a
``manifest.json``; :class:`FillDataset` serves them to PyTorch with the preset's augmentation;
:func:`make_point_task` is the scalar (Minsky-Papert) variant; :func:`read_boundary_png`,
:func:`write_mask_png`, :func:`preview_grid` and :func:`gallery` are for the CLI and reports.
"""

from jordanlab.data.generate import generate_images, label, make
from jordanlab.data.io import DatasetError, load_dataset, read_manifest, write_dataset
from jordanlab.data.png import ImageTooLargeError, fill_png, read_boundary_image, read_boundary_png, write_mask_png
from jordanlab.data.point import make_point_task
from jordanlab.data.preview import gallery, preview_dataset, preview_grid
from jordanlab.data.specs import FAMILIES, PRESETS, SUITE_COUNT, SUITE_SIZE, SUITES, Spec, resolve, salt
from jordanlab.data.torch_dataset import FillDataset

__all__ = [
    "DatasetError",
    "FAMILIES",
    "FillDataset",
    "ImageTooLargeError",
    "PRESETS",
    "SUITES",
    "SUITE_COUNT",
    "SUITE_SIZE",
    "Spec",
    "fill_png",
    "gallery",
    "generate_images",
    "label",
    "load_dataset",
    "make",
    "make_point_task",
    "preview_dataset",
    "preview_grid",
    "read_boundary_image",
    "read_boundary_png",
    "read_manifest",
    "resolve",
    "salt",
    "write_dataset",
    "write_mask_png",
]
