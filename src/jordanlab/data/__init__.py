"""jordanlab.data: presets, OOD suites, the on-disk dataset format, torch datasets, PNG I/O, previews.

:func:`make` returns exactly labelled ``(boundaries, masks)`` for a preset or suite;
:func:`write_dataset` / :func:`load_dataset` store them as checksummed ``.npz`` shards with a
``manifest.json``; :class:`FillDataset` serves them to PyTorch with the preset's augmentation;
:func:`make_point_task` is the scalar (Minsky-Papert) variant; :func:`read_boundary_png`,
:func:`write_mask_png`, :func:`preview_grid` and :func:`gallery` are for the CLI and reports.
"""

from jordanlab.data.generate import generate_images, label, make
from jordanlab.data.specs import FAMILIES, PRESETS, SUITE_COUNT, SUITE_SIZE, SUITES, Spec, resolve, salt

__all__ = [
    "FAMILIES",
    "PRESETS",
    "SUITES",
    "SUITE_COUNT",
    "SUITE_SIZE",
    "Spec",
    "generate_images",
    "label",
    "make",
    "resolve",
    "salt",
]
