"""Presets, suites, make(), FillDataset augmentation, point task, PNG I/O, previews."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

import jordanlab.data as D
from jordanlab.data import generate as G
from jordanlab.topology import fill

FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)
ALL_NAMES = sorted(D.PRESETS) + sorted(D.SUITES)


def _neighbours(b: np.ndarray) -> np.ndarray:
    return ndimage.convolve(b.astype(int), np.ones((3, 3), int), mode="constant")[b == 1] - 1


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_preset_and_suite_gives_valid_exact_data(name):
    spec = D.resolve(name)
    b, m, curves, thick = D.generate_images(spec, "test", range(3), seed=0, workers=1)
    assert b.dtype == np.uint8 and m.dtype == np.uint8
    assert b.shape == m.shape == (3, spec.size, spec.size)
    for i in range(3):
        _, n_bg = ndimage.label(b[i] == 0, structure=FOUR)
        assert n_bg == 1 + len(curves[i]), "background 4-components = 1 + number of curves"
        _, n_fg = ndimage.label(b[i], structure=EIGHT)
        assert n_fg == len(curves[i]), "curves do not touch each other"
        if thick[i] == 1:
            assert (_neighbours(b[i]) == 2).all(), "simple closed 8-curves"
        else:
            assert name in ("thick", "strokes-32") and thick[i] in (2, 3)
    np.testing.assert_array_equal(m, fill(b))
    np.testing.assert_array_equal(m, fill(b, method="flood"))


def test_make_is_deterministic_and_seed_dependent():
    b1, m1 = D.make("shapes-32", "train", n=6, seed=3)
    b2, m2 = D.make("shapes-32", "train", n=6, seed=3)
    assert b1.tobytes() == b2.tobytes() and m1.tobytes() == m2.tobytes()
    b3, _ = D.make("shapes-32", "train", n=6, seed=4)
    assert not np.array_equal(b1, b3)
    bt, _ = D.make("shapes-32", "test", n=6, seed=3)
    assert not np.array_equal(b1, bt)
    # The first n images do not depend on n.
    b4, _ = D.make("shapes-32", "train", n=3, seed=3)
    np.testing.assert_array_equal(b4, b1[:3])


def test_make_does_not_depend_on_worker_count(monkeypatch):
    monkeypatch.setattr(G, "_CHUNK", 4)
    a = D.make("multi-2", n=10, size=32, workers=1)
    b = D.make("multi-2", n=10, size=32, workers=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_preset_and_suite_sizes():
    assert D.PRESETS["shapes-128"].n_train == 1115 and D.PRESETS["shapes-128"].n_test == 140
    assert D.PRESETS["textures-256"].n_train == 10000 and D.PRESETS["textures-256"].augment == "flip"
    assert D.resolve("spiral").size == D.SUITE_SIZE
    assert D.resolve("large-2x").size == 2 * D.SUITE_SIZE
    assert D.resolve("large-4x", size=32).size == 128
    assert D.resolve("thick").thickness == (2, 3)
    b, _ = D.make("nested", n=2, size=32)
    assert b.shape == (2, 32, 32)
    assert D.make("spiral", n=0)[0].shape == (0, 64, 64)


def test_unknown_names_and_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset name 'shapes-17'.*shapes-32.*spiral"):
        D.make("shapes-17")
    with pytest.raises(ValueError, match="split must be one of"):
        D.make("spiral", "train")
    with pytest.raises(ValueError, match="suites only"):
        D.make("shapes-32", size=64)
    with pytest.raises(ValueError, match="size must be >= 32"):
        D.make("spiral", size=16)
    with pytest.raises(ValueError, match="n must be"):
        D.make("shapes-32", n=-1)


def test_nested_suite_reaches_depth_two():
    spec = D.resolve("nested")
    _, _, curves, _ = D.generate_images(spec, "test", range(10), workers=1)
    from jordanlab.curves import rasterize

    depth = max(int(np.sum([fill(rasterize(c, spec.size)) for c in cs], axis=0).max()) for cs in curves)
    assert depth >= 3  # some pixel lies inside three curves: a ring inside a ring inside a ring


def test_thick_labels_are_stroke_plus_thin_inside():
    spec = D.resolve("thick")
    b, m, curves, thick = D.generate_images(spec, "test", range(4), workers=1)
    from jordanlab.curves import rasterize

    for i in range(4):
        thin = rasterize(curves[i], spec.size)
        np.testing.assert_array_equal(m[i], fill(thin) | b[i])
        assert b[i].sum() > thin.sum()


# ---------------------------------------------------------------- FillDataset (in memory and on disk)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    return D.write_dataset("shapes-32", tmp_path_factory.mktemp("ds") / "s32", n=12, progress=False, workers=1)


def test_affine_augmentation_keeps_labels_exact(shapes_dir):
    ds = D.FillDataset(shapes_dir, "train", augment=True, seed=1)
    assert ds.augmentation == "affine"
    stored = D.load_dataset(shapes_dir, "train")[0]
    changed = 0
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            b, m = ds.arrays(i)
            np.testing.assert_array_equal(m, fill(b))
            np.testing.assert_array_equal(m, fill(b, method="flood"))
            assert (_neighbours(b) == 2).all()
            changed += not np.array_equal(b, stored[i])
    assert changed >= len(ds)  # the augmentation does change the images


def test_augmentation_is_deterministic_in_seed_epoch_index(shapes_dir):
    a = D.FillDataset(shapes_dir, "train", seed=5)
    b = D.FillDataset(shapes_dir, "train", seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    for i in (0, 3, 7):
        np.testing.assert_array_equal(a.arrays(i)[0], b.arrays(i)[0])
    b.set_epoch(3)
    assert any(not np.array_equal(a.arrays(i)[0], b.arrays(i)[0]) for i in range(6))
    plain = D.FillDataset(shapes_dir, "test", augment=False)
    x, y = plain[0]
    assert x.dtype == torch.float32 and x.shape == (1, 32, 32) and y.shape == (1, 32, 32)
    np.testing.assert_array_equal(x[0].numpy(), D.load_dataset(shapes_dir, "test")[0][0])
    with pytest.raises(ValueError, match="epoch"):
        a.set_epoch(-1)
    with pytest.raises(IndexError):
        plain.arrays(100)


def test_dataloader_workers_do_not_change_items(shapes_dir):
    from torch.utils.data import DataLoader

    ds = D.FillDataset(shapes_dir, "train", seed=2)
    ds.set_epoch(1)
    one = torch.cat([x for x, _ in DataLoader(ds, batch_size=4, num_workers=0)])
    two = torch.cat([x for x, _ in DataLoader(ds, batch_size=4, num_workers=2)])
    assert torch.equal(one, two)


def test_from_arrays_and_flips():
    b, m = D.make("multi-3", n=6, size=32)
    ds = D.FillDataset.from_arrays(b, m, flip=True, seed=0)
    flipped = 0
    for i in range(len(ds)):
        x, y = ds[i]
        xb, yb = x[0].numpy().astype(np.uint8), y[0].numpy().astype(np.uint8)
        np.testing.assert_array_equal(yb, fill(xb))
        variants = [b[i], b[i][:, ::-1], b[i][::-1], b[i][::-1, ::-1]]
        assert any(np.array_equal(xb, v) for v in variants)
        flipped += not np.array_equal(xb, b[i])
    assert flipped >= 1
    with pytest.raises(ValueError, match="masks must have the shape"):
        D.FillDataset.from_arrays(b, m[:, :5])
    with pytest.raises(ValueError, match="binary"):
        D.FillDataset.from_arrays(b * 3, m)


# ---------------------------------------------------------------- point task


def test_point_task_labels_and_balance():
    x, y = D.make_point_task("shapes-32", "test", n=40, seed=2)
    b, m = D.make("shapes-32", "test", n=40, seed=2)
    assert x.shape == (40, 2, 32, 32) and x.dtype == np.float32 and y.shape == (40,)
    np.testing.assert_array_equal(x[:, 0], b)
    assert (x[:, 1].reshape(40, -1).sum(1) == 1).all()
    for i in range(40):
        r, c = np.argwhere(x[i, 1] == 1)[0]
        assert b[i, r, c] == 0  # marked pixels are background pixels
        assert y[i] == m[i, r, c]
    assert abs(int(y.sum()) - 20) <= 2
    x2, y2 = D.make_point_task("shapes-32", "test", n=40, seed=2)
    np.testing.assert_array_equal(x, x2)


# ---------------------------------------------------------------- PNG I/O


def _save(path, arr, mode="L"):
    im = Image.fromarray(arr)
    assert im.mode == mode
    im.save(path)
    return path


@pytest.fixture
def curve_img():
    b, _ = D.make("shapes-32", n=1)
    return b[0]


def test_png_dark_light_auto(tmp_path, curve_img):
    dark = _save(tmp_path / "dark.png", ((1 - curve_img) * 255).astype(np.uint8))
    light = _save(tmp_path / "light.png", (curve_img * 255).astype(np.uint8))
    np.testing.assert_array_equal(D.read_boundary_png(dark), curve_img)
    np.testing.assert_array_equal(D.read_boundary_png(dark, curve="dark"), curve_img)
    np.testing.assert_array_equal(D.read_boundary_png(light), curve_img)
    np.testing.assert_array_equal(D.read_boundary_png(light, curve="light"), curve_img)
    np.testing.assert_array_equal(D.read_boundary_png(light, curve="dark"), 1 - curve_img)
    rgb = np.repeat(((1 - curve_img) * 255).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(D.read_boundary_png(_save(tmp_path / "rgb.png", rgb, "RGB")), curve_img)
    rgba = np.zeros(curve_img.shape + (4,), np.uint8)
    rgba[..., 3] = curve_img * 255  # black curve on a transparent background
    np.testing.assert_array_equal(D.read_boundary_png(_save(tmp_path / "rgba.png", rgba, "RGBA")), curve_img)


def test_png_rejections_name_the_file(tmp_path):
    half = np.zeros((20, 20), np.uint8)
    half[:, :10] = 255
    p = _save(tmp_path / "half.png", half)
    with pytest.raises(ValueError, match=r"half\.png.*ambiguous.*curve='dark'"):
        D.read_boundary_png(p)
    grey = np.full((20, 20), 128, np.uint8)
    with pytest.raises(ValueError, match=r"grey\.png.*two-valued"):
        D.read_boundary_png(_save(tmp_path / "grey.png", grey))
    blank = np.full((20, 20), 255, np.uint8)
    with pytest.raises(ValueError, match=r"blank\.png.*no curve pixels"):
        D.read_boundary_png(_save(tmp_path / "blank.png", blank), curve="dark")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"junk\.png.*cannot read"):
        D.read_boundary_png(junk)
    jpg = tmp_path / "pic.jpg"
    Image.fromarray(blank).save(jpg)
    with pytest.raises(ValueError, match=r"pic\.jpg.*not a PNG"):
        D.read_boundary_png(jpg)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(deep)
    with pytest.raises(ValueError, match=r"deep\.png.*16-bit"):
        D.read_boundary_png(deep)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        D.read_boundary_png(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="curve must be one of"):
        D.read_boundary_png(p, curve="black")


def test_write_mask_png_round_trip(tmp_path, curve_img):
    mask = fill(curve_img)
    out = D.write_mask_png(mask, tmp_path / "sub" / "mask.png")
    back = np.asarray(Image.open(out))
    np.testing.assert_array_equal(back, mask * 255)
    with pytest.raises(ValueError, match="binary"):
        D.write_mask_png(mask * 2, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        D.write_mask_png(mask[None], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_fill_png_end_to_end(tmp_path, curve_img):
    src = _save(tmp_path / "in.png", ((1 - curve_img) * 255).astype(np.uint8))
    mask = D.fill_png(src, tmp_path / "out.png")
    np.testing.assert_array_equal(mask, fill(curve_img))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), mask * 255)
    opened = curve_img.copy()
    r, c = np.argwhere(opened)[0]
    opened[r, c] = 0  # cut the curve open
    bad = _save(tmp_path / "open.png", ((1 - opened) * 255).astype(np.uint8))
    from jordanlab.topology import InvalidBoundaryError

    with pytest.raises(InvalidBoundaryError, match=r"open\.png"):
        D.fill_png(bad, tmp_path / "out2.png")
    assert not (tmp_path / "out2.png").exists()


def test_preview_grid_writes_png(tmp_path):
    b, m = D.make("multi-2", n=5, size=32)
    out = D.preview_grid(b, m, tmp_path / "grid.png", ncols=3, titles=[str(i) for i in range(5)])
    im = Image.open(out)
    assert im.format == "PNG" and im.size[0] > 100
    with pytest.raises(ValueError, match="titles"):
        D.preview_grid(b, m, tmp_path / "g2.png", titles=["a"])
    with pytest.raises(ValueError, match="same length"):
        D.preview_grid(b, m[:2], tmp_path / "g3.png")


def test_gallery_shows_every_preset_and_suite(tmp_path):
    out = D.gallery(tmp_path / "gallery.png", per_name=1, size=32)
    im = Image.open(out)
    rows = len(D.preview.GALLERY_NAMES) + 1  # plus the affine-augmentation row
    assert set(D.preview.GALLERY_NAMES) == set(D.PRESETS) | set(D.SUITES)
    assert im.size[1] > rows * 100
