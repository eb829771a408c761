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
import re
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import jordanlab
from jordanlab._owned import check_replaceable, clean_stale_siblings, mark, owned_tempdir
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
    _check_count("n", n, minimum=1)
    _check_count("shard_size", shard_size, minimum=1)
    _check_count("seed", seed, minimum=0)
    _check_count("workers", workers, minimum=1)
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            # Only a dataset jordanlab wrote (or an empty directory) is ever replaced.
            check_replaceable(out, "dataset", legacy=True)
            if not overwrite:
                what = "a complete dataset" if _is_complete(out) else "a non-empty directory"
                raise FileExistsError(f"{out} is {what}; pass --overwrite (overwrite=True) to replace it")
    clean_stale_siblings(out)
    tmp = owned_tempdir(out, "tmp")
    try:
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
        mark(tmp, "dataset")
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
        if out.exists():
            trash = owned_tempdir(out, "old")
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_count(name: str, value: Any, *, minimum: int) -> None:
    """``value`` is ``None`` or an int >= ``minimum``; else a ValueError naming ``name``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


#: A shard is a plain file name inside the dataset directory: no separator, no leading dot.
_SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.npz$")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate_manifest(manifest: Any, path: Path) -> None:
    """Check the manifest's schema; a DatasetError names the file and the offending key."""
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path} must hold a JSON object")
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        raise DatasetError(f"{path} is missing keys {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {manifest['format_version']!r} is not supported (expected {FORMAT_VERSION})")

    def bad(key: str, what: str) -> DatasetError:
        return DatasetError(f"{path}: key {key!r} must be {what}, got {manifest_get(key)!r}")

    def manifest_get(key: str) -> Any:
        v: Any = manifest
        for part in key.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        return v

    shape = manifest["image_shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(v) and v >= 1 for v in shape)):
        raise bad("image_shape", "a list [H, W] of two positive integers")
    spec = manifest["spec"]
    if not isinstance(spec, dict):
        raise bad("spec", "an object")
    size = spec.get("size")
    if _is_int(size) and list(shape) != [size, size]:
        raise DatasetError(f"{path}: key 'image_shape' is {shape} but the spec's canvas is {size}x{size}")
    counts = manifest["counts"]
    if not (isinstance(counts, dict) and all(isinstance(k, str) and _is_int(v) and v >= 0 for k, v in counts.items())):
        raise bad("counts", "an object of split name -> non-negative integer")
    if not _is_int(manifest["seed"]):
        raise bad("seed", "an integer")
    files = manifest["files"]
    if not isinstance(files, dict):
        raise bad("files", "an object of shard name -> entry")
    covered: dict[str, int] = {k: 0 for k in counts}
    for fname, entry in files.items():
        if not isinstance(fname, str) or not _SHARD_NAME.match(fname):
            raise DatasetError(f"{path}: shard name {fname!r} is not a plain .npz file name inside the dataset")
        if not isinstance(entry, dict):
            raise DatasetError(f"{path}: entry for {fname!r} must be an object")
        miss = [k for k in ("split", "start", "count", "sha256") if k not in entry]
        if miss:
            raise DatasetError(f"{path}: entry for {fname!r} is missing keys {miss}")
        if entry["split"] not in counts:
            raise DatasetError(f"{path}: entry for {fname!r} names split {entry['split']!r}, not among {sorted(counts)}")
        if not (_is_int(entry["start"]) and _is_int(entry["count"]) and entry["start"] >= 0 and entry["count"] >= 0):
            raise DatasetError(f"{path}: entry for {fname!r}: 'start' and 'count' must be non-negative integers")
        if not (isinstance(entry["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            raise DatasetError(f"{path}: entry for {fname!r}: 'sha256' must be 64 hex digits")
        covered[entry["split"]] += entry["count"]
    for split, n in counts.items():
        if covered[split] != n:
            raise DatasetError(f"{path}: split {split!r} counts {n} images but its shards hold {covered[split]}")


def read_manifest(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``manifest.json`` and check its schema (types, counts, shapes, shard names)."""
    d = Path(dataset_dir)
    path = d / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{d} is not a complete dataset: {path} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from None
    _validate_manifest(manifest, path)
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
        if _sha256(path) != manifest["files"][fname]["sha256"]:
            raise DatasetError(f"checksum mismatch for {path}: it does not match the sha256 its manifest records (corrupted or replaced)")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in _SHARD_KEYS if k not in z.files]
                if missing:
                    raise DatasetError(f"shard {path} is missing arrays {missing}")
                arrays = {k: z[k] for k in _SHARD_KEYS}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"shard {path} is not a readable .npz file: {exc}") from None
        _check_shard(arrays, manifest, path, manifest["files"][fname]["count"])
        for k in _SHARD_KEYS:
            parts[k].append(arrays[k])
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


def _check_shard(a: dict[str, np.ndarray], manifest: dict[str, Any], path: Path, count: int) -> None:
    """The shard's arrays have the manifest's image shape and count, and no bits beyond the width."""
    h, w = (int(v) for v in manifest["image_shape"])
    want = (count, h, (w + 7) // 8)
    for k in ("boundaries", "masks"):
        if a[k].dtype != np.uint8 or a[k].shape != want:
            raise DatasetError(f"shard {path}: {k!r} has shape {a[k].shape} {a[k].dtype}, but the manifest's "
                               f"image_shape {[h, w]} and count {count} need {want} uint8")
        if w % 8 and np.any(a[k][..., -1] & np.uint8((1 << (8 - w % 8)) - 1)):
            raise DatasetError(f"shard {path}: {k!r} has pixels beyond the manifest's width {w} "
                               "(was image_shape edited?)")
    if a["thickness"].shape != (count,) or a["curves_per_image"].shape != (count,):
        raise DatasetError(f"shard {path}: 'thickness' and 'curves_per_image' must hold {count} entries")
    if int(a["curves_per_image"].sum()) != len(a["curve_lengths"]) or int(a["curve_lengths"].sum()) != len(a["curve_vertices"]):
        raise DatasetError(f"shard {path}: the ragged curve arrays do not add up")


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
