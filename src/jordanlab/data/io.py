"""The on-disk dataset format: checksummed ``.npz`` shards plus ``manifest.json``, written atomically.

Layout of a dataset directory::

    manifest.json            format_version, name, kind, spec, seed, counts, shard_size, files{sha256}
    train-00000.npz ...      one shard per ``shard_size`` images
    test-00000.npz ...

Each shard holds ``boundaries`` and ``masks`` bit-packed along the last axis
(``numpy.packbits(x, axis=-1)``, shape ``(n, H, ceil(W/8))``), the continuous curves as ragged arrays
``curve_vertices`` ``(V, 2)`` float64, ``curve_lengths`` ``(C,)`` and ``curves_per_image`` ``(n,)``,
and ``thickness`` ``(n,)`` (stroke width of each image), so that augmentation can re-rasterize exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import jordanlab
from jordanlab.data._fs import public_dir
from jordanlab.data.generate import generate_images
from jordanlab.data.specs import Spec, resolve

__all__ = ["write_dataset", "load_dataset", "read_manifest", "DatasetError", "FORMAT_VERSION", "SHARD_SIZE"]

FORMAT_VERSION = 1
SHARD_SIZE = 1000
MANIFEST = "manifest.json"
_MANIFEST_KEYS = ("format_version", "name", "kind", "spec", "seed", "counts", "shard_size", "files", "image_shape")
_SHARD_KEYS = ("boundaries", "masks", "curve_vertices", "curve_lengths", "curves_per_image", "thickness")


class DatasetError(ValueError):
    """A dataset directory is missing, malformed or fails its checksums."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pack_curves(curves: Sequence[Sequence[np.ndarray]]) -> dict[str, np.ndarray]:
    per_image = np.array([len(cs) for cs in curves], dtype=np.int64)
    flat = [np.asarray(c, dtype=np.float64) for cs in curves for c in cs]
    lengths = np.array([len(c) for c in flat], dtype=np.int64)
    verts = np.concatenate(flat, axis=0) if flat else np.zeros((0, 2))
    return {"curve_vertices": verts, "curve_lengths": lengths, "curves_per_image": per_image}


def unpack_curves(verts: np.ndarray, lengths: np.ndarray, per_image: np.ndarray) -> list[list[np.ndarray]]:
    """Inverse of the ragged storage: a list (per image) of lists of ``(K, 2)`` arrays."""
    flat = np.split(verts, np.cumsum(lengths)[:-1]) if len(lengths) else []
    out, k = [], 0
    for c in per_image:
        out.append(flat[k : k + int(c)])
        k += int(c)
    return out


def _savez_reproducible(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``numpy.savez_compressed`` but byte-reproducible: fixed member timestamps and order."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[key]), allow_pickle=False)


def _write_shard(path: Path, b: np.ndarray, m: np.ndarray, curves: list, thickness: np.ndarray) -> None:
    _savez_reproducible(
        path,
        {
            "boundaries": np.packbits(b, axis=-1),
            "masks": np.packbits(m, axis=-1),
            "thickness": thickness.astype(np.uint8),
            **_pack_curves(curves),
        },
    )


def _is_complete(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def write_dataset(
    name: str,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n: int | None = None,
    splits: Sequence[str] | None = None,
    size: int | None = None,
    shard_size: int = SHARD_SIZE,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate a preset or suite and write it as a dataset directory, atomically.

    Everything is written into a temporary directory next to ``out_dir`` (``manifest.json`` last,
    with the sha256 of every shard) and renamed to ``out_dir`` at the end, so an interrupted run never
    leaves a directory that looks complete.

    Parameters
    ----------
    name : preset or suite name (see :func:`jordanlab.data.make`).
    out_dir : path of the dataset directory to create.
    seed : int
    n : int, optional
        Images per split (default: the preset's counts).
    splits : sequence of str, optional
        Default: ``("train", "test")`` for a preset, ``("test",)`` for a suite.
    size : int, optional
        Base canvas of a suite.
    shard_size : int
        Images per ``.npz`` shard.
    workers : int, optional
        Generation processes (None: all CPUs); the bytes written do not depend on it.
    overwrite : bool
        Replace an existing dataset (or non-empty directory) at ``out_dir``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path of ``out_dir``.
    """
    spec = resolve(name, size=size)
    splits = tuple(spec.splits() if splits is None else splits)
    for s in splits:
        if s not in spec.splits():
            raise ValueError(f"splits must be among {list(spec.splits())} for {name!r}, got {s!r}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"out_dir {out} exists and is not a directory")
        if (_is_complete(out) or any(out.iterdir())) and not overwrite:
            what = "a complete dataset" if _is_complete(out) else "a non-empty directory"
            raise FileExistsError(f"out_dir {out} is {what}; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        public_dir(tmp)
        counts = {s: int(spec.count(s) if n is None else n) for s in splits}
        files: dict[str, dict[str, Any]] = {}
        total = sum(counts.values())
        with tqdm(total=total, desc=f"data make {name}", unit="img", disable=not progress) as bar:
            for s in splits:
                for k, a in enumerate(range(0, counts[s], shard_size)):
                    z = min(a + shard_size, counts[s])
                    b, m, curves, thick = generate_images(spec, s, range(a, z), seed=seed, workers=workers)
                    fname = f"{s}-{k:05d}.npz"
                    _write_shard(tmp / fname, b, m, curves, thick)
                    files[fname] = {"split": s, "start": a, "count": z - a, "sha256": _sha256(tmp / fname)}
                    bar.update(z - a)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": spec.name,
            "kind": spec.kind,
            "spec": {**spec.__dict__, "thickness": list(spec.thickness)},
            "image_shape": [spec.size, spec.size],
            "seed": int(seed),
            "counts": counts,
            "shard_size": int(shard_size),
            "storage": "boundaries/masks bit-packed along the last axis (numpy.packbits)",
            "rng": "image i: numpy.random.default_rng([seed, crc32('name|split|size'), i])",
            "files": files,
            "jordanlab_version": jordanlab.__version__,
        }
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_manifest(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``manifest.json`` (format version and required keys)."""
    d = Path(dataset_dir)
    path = d / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{d} is not a complete dataset: {path} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path} must hold a JSON object")
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        raise DatasetError(f"{path} is missing keys {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {manifest['format_version']!r} is not supported (expected {FORMAT_VERSION})")
    for fname, entry in manifest["files"].items():
        miss = [k for k in ("split", "start", "count", "sha256") if k not in entry]
        if miss:
            raise DatasetError(f"{path}: entry for {fname!r} is missing keys {miss}")
    return manifest


def spec_of(manifest: dict[str, Any]) -> Spec:
    """Rebuild the :class:`Spec` recorded in a manifest."""
    s = dict(manifest["spec"])
    s["thickness"] = tuple(s["thickness"])
    return Spec(**s)


def load_split_packed(dataset_dir: str | os.PathLike, split: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Verify the checksums of a split's shards and return (manifest, concatenated packed arrays)."""
    d = Path(dataset_dir)
    manifest = read_manifest(d)
    entries = sorted(((e["start"], f) for f, e in manifest["files"].items() if e["split"] == split))
    if split not in manifest["counts"]:
        raise DatasetError(f"{d} has no split {split!r}; splits: {sorted(manifest['counts'])}")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _SHARD_KEYS}
    for _, fname in entries:
        path = d / fname
        if not path.is_file():
            raise DatasetError(f"shard {path} listed in the manifest is missing")
        digest = _sha256(path)
        if digest != manifest["files"][fname]["sha256"]:
            raise DatasetError(f"checksum mismatch for {path}: sha256 {digest} != manifest {manifest['files'][fname]['sha256']}")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _SHARD_KEYS if k not in z.files]
            if missing:
                raise DatasetError(f"shard {path} is missing arrays {missing}")
            for k in _SHARD_KEYS:
                parts[k].append(z[k])
    n = int(manifest["counts"][split])
    if not entries:
        h, w = (int(v) for v in manifest["image_shape"])
        wp = (w + 7) // 8
        empty = {
            "boundaries": np.zeros((0, h, wp), np.uint8),
            "masks": np.zeros((0, h, wp), np.uint8),
            "curve_vertices": np.zeros((0, 2)),
            "curve_lengths": np.zeros(0, np.int64),
            "curves_per_image": np.zeros(0, np.int64),
            "thickness": np.zeros(0, np.uint8),
        }
        parts = {k: [v] for k, v in empty.items()}
    arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    if len(arrays["boundaries"]) != n:
        raise DatasetError(f"{d}: split {split!r} holds {len(arrays['boundaries'])} images, manifest says {n}")
    return manifest, arrays


def load_dataset(
    dataset_dir: str | os.PathLike, split: str, *, curves: bool = False
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list[list[np.ndarray]]]:
    """Load a split of a dataset directory after verifying every shard's sha256.

    Returns
    -------
    boundaries, masks : ndarray of shape (N, H, W), uint8
    curves : list of lists of ``(K, 2)`` arrays, only with ``curves=True``

    Raises
    ------
    DatasetError
        Naming the file: missing manifest or shard, malformed manifest (missing keys), checksum mismatch.
    """
    manifest, a = load_split_packed(dataset_dir, split)
    w = int(manifest["image_shape"][1])
    b = np.unpackbits(a["boundaries"], axis=-1, count=w)
    m = np.unpackbits(a["masks"], axis=-1, count=w)
    if not curves:
        return b, m
    return b, m, unpack_curves(a["curve_vertices"], a["curve_lengths"], a["curves_per_image"])
