"""The dataset directory format: round trip, checksums, atomic writes, malformed manifests."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

import jordanlab.data as D
from jordanlab.curves import rasterize
from jordanlab.data import io as IO


def _write(tmp_path, name="shapes-32", **kw):
    kw.setdefault("n", 10)
    kw.setdefault("progress", False)
    kw.setdefault("workers", 1)
    return D.write_dataset(name, tmp_path / "ds", **kw)


def test_round_trip_equals_make_and_curves_re_rasterize(tmp_path):
    d = _write(tmp_path, shard_size=4)
    manifest = D.read_manifest(d)
    assert manifest["counts"] == {"train": 10, "test": 10}
    assert manifest["format_version"] == IO.FORMAT_VERSION and manifest["seed"] == 0
    assert sorted(manifest["files"]) == [f"{s}-{k:05d}.npz" for s in ("test", "train") for k in range(3)]
    for split in ("train", "test"):
        b, m, curves = D.load_dataset(d, split, curves=True)
        b2, m2 = D.make("shapes-32", split, n=10)
        np.testing.assert_array_equal(b, b2)
        np.testing.assert_array_equal(m, m2)
        for i in range(10):
            np.testing.assert_array_equal(rasterize(curves[i], 32), b[i])


def test_suite_round_trip_with_thick_strokes(tmp_path):
    d = _write(tmp_path, name="thick", size=32, n=5)
    b, m = D.load_dataset(d, "test")
    b2, m2 = D.make("thick", n=5, size=32)
    np.testing.assert_array_equal(b, b2)
    np.testing.assert_array_equal(m, m2)
    assert D.read_manifest(d)["spec"]["thickness"] == [2, 3]
    with pytest.raises(D.DatasetError, match="no split 'train'"):
        D.load_dataset(d, "train")


def test_written_paths_have_ordinary_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        d = _write(tmp_path, n=2)
        png = D.write_mask_png(np.zeros((4, 4), np.uint8), tmp_path / "m.png")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert stat.S_IMODE((d / "manifest.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(png.stat().st_mode) == 0o644


def test_files_are_byte_reproducible(tmp_path):
    a = D.read_manifest(D.write_dataset("multi-2", tmp_path / "a", n=6, size=32, progress=False, workers=1))
    b = D.read_manifest(D.write_dataset("multi-2", tmp_path / "b", n=6, size=32, progress=False, workers=2))
    assert a["files"] == b["files"]
    c = D.read_manifest(D.write_dataset("multi-2", tmp_path / "c", n=6, size=32, seed=1, progress=False, workers=1))
    assert a["files"]["test-00000.npz"]["sha256"] != c["files"]["test-00000.npz"]["sha256"]


def test_tampered_shard_is_detected_naming_the_file(tmp_path):
    d = _write(tmp_path)
    shard = d / "train-00000.npz"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(D.DatasetError, match=r"checksum mismatch for .*train-00000\.npz"):
        D.load_dataset(d, "train")
    with pytest.raises(D.DatasetError, match=r"train-00000\.npz"):
        D.FillDataset(d, "train")
    D.load_dataset(d, "test")  # the other split is intact


def test_missing_shard_and_malformed_manifest(tmp_path):
    d = _write(tmp_path)
    (d / "test-00000.npz").unlink()
    with pytest.raises(D.DatasetError, match=r"test-00000\.npz.*missing"):
        D.load_dataset(d, "test")
    manifest = json.loads((d / "manifest.json").read_text())
    del manifest["counts"], manifest["seed"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(D.DatasetError, match=r"manifest\.json is missing keys \['seed', 'counts'\]"):
        D.load_dataset(d, "train")
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(D.DatasetError, match="not valid JSON"):
        D.read_manifest(d)
    (d / "manifest.json").unlink()
    with pytest.raises(D.DatasetError, match="not a complete dataset"):
        D.load_dataset(d, "train")


def test_interrupted_write_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = IO._write_shard

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(IO, "_write_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, shard_size=4)
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.iterdir()) == []  # the temporary directory was removed too


def test_refuses_to_overwrite_unless_asked(tmp_path):
    d = _write(tmp_path)
    first = D.read_manifest(d)
    with pytest.raises(FileExistsError, match="complete dataset.*overwrite=True"):
        _write(tmp_path)
    _write(tmp_path, seed=7, overwrite=True)
    assert D.read_manifest(d)["seed"] == 7 and D.read_manifest(d)["files"] != first["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    for overwrite in (False, True):  # --overwrite never reaches a directory jordanlab did not write
        with pytest.raises(FileExistsError, match=r"other is not a dataset directory written by jordanlab"):
            D.write_dataset("shapes-32", other, n=2, progress=False, overwrite=overwrite)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "other"]


def test_overwrite_accepts_a_dataset_written_before_markers(tmp_path):
    d = _write(tmp_path)
    (d / ".jordanlab").unlink()  # as written by jordanlab 0.1 before markers: only manifest + its shards
    _write(tmp_path, seed=3, overwrite=True)
    assert D.read_manifest(d)["seed"] == 3
    (d / ".jordanlab").unlink()
    (d / "labels.csv").write_text("x")  # a file the manifest does not list: not provably ours
    with pytest.raises(FileExistsError, match="not a dataset directory written by jordanlab"):
        _write(tmp_path, overwrite=True)
    assert (d / "labels.csv").exists()


def test_stale_temporary_directories_of_dead_writers_are_cleaned(tmp_path):
    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid that no longer runs
    stale = tmp_path / f".ds.tmp-{proc.pid}-abc"
    stale.mkdir()
    (stale / "half.npz").write_bytes(b"x")
    alive = tmp_path / f".ds.tmp-{os.getpid()}-xyz"  # a live writer's (this process): kept
    alive.mkdir()
    foreign = tmp_path / ".ds.tmp-notapid"  # not our naming scheme: kept
    foreign.mkdir()
    _write(tmp_path)
    assert not stale.exists() and alive.exists() and foreign.exists()


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_write_rejects_bad_counts(tmp_path, n):
    with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
        D.write_dataset("shapes-32", tmp_path / "x", n=n, progress=False)
    assert not (tmp_path / "x").exists()


def test_write_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset name"):
        D.write_dataset("nope", tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="splits must be among"):
        D.write_dataset("spiral", tmp_path / "x", splits=["train"], progress=False)
    assert not (tmp_path / "x").exists()


def test_textures_dataset_uses_flips(tmp_path):
    d = D.write_dataset("textures-256", tmp_path / "t", n=3, progress=False, workers=1)
    ds = D.FillDataset(d, "train", seed=0)
    assert ds.augmentation == "flip" and len(ds) == 3
    b, _ = D.load_dataset(d, "train")
    for i in range(3):
        x, y = ds[i]
        xb = x[0].numpy().astype(np.uint8)
        assert any(np.array_equal(xb, v) for v in (b[i], b[i][::-1], b[i][:, ::-1], b[i][::-1, ::-1]))


def test_preview_dataset(tmp_path):
    d = _write(tmp_path, n=5)
    out = D.preview_dataset(d, tmp_path / "grid.png", split="train", n=4, ncols=2)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
