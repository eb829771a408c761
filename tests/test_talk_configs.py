"""The talk's configs say what the talk says (issue 15): its two experiments and the 128² non-local comparison.

Experiment 1: a 6-scale U-Net on 1,115 training / 140 test images of 128², Ranger, BCE, batch 32,
150 epochs. Experiment 2: "10,000 training images, data augmentation by random horizontal and
vertical flips, 1,000 test images, images of size 256x256". The non-local comparison trains the
local CNN and its GAP / self-attention / global-context variants as the U-Net was trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jordanlab import data
from jordanlab.train import config_to_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NON_LOCAL = ("local-cnn", "cnn-gap", "cnn-sa", "cnn-gc")


def _talk(name: str):
    return load_config(CONFIGS / f"talk-{name}.toml")


def _spec(config):
    return data.resolve(config.data.preset)


def test_experiment_1_is_shapes128_with_affine_augmentation():
    c = _talk("shapes128-unet")
    s = _spec(c)
    n_train = c.data.n_train if c.data.n_train is not None else s.n_train
    assert (s.size, n_train, s.n_test, s.augment, c.data.augment) == (128, 1115, 140, "affine", True)
    assert (c.model.name, c.model.kwargs["depth"]) == ("unet", 5)  # 6 scales = 5 poolings


def test_experiment_2_is_10000_train_1000_test_256_with_flips():
    c = _talk("textures256-unet")
    s = _spec(c)
    n_train = c.data.n_train if c.data.n_train is not None else s.n_train
    assert (s.size, n_train, s.n_test, s.augment, c.data.augment) == (256, 10000, 1000, "flip", True)
    assert s.family == "texture"
    assert (c.model.name, c.model.kwargs["depth"]) == ("unet", 5)
    # Evaluation's test suite is the preset's whole test split: 1,000 images.
    assert len(data.make(c.data.preset, "test", n=2, seed=c.data.seed)[0]) == 2 and s.count("test") == 1000


@pytest.mark.parametrize("model", NON_LOCAL)
def test_non_local_configs_train_as_the_unet_was(model):
    unet = config_to_dict(_talk("shapes128-unet"))
    other = config_to_dict(_talk(f"shapes128-{model}"))
    assert other["model"]["name"] == model
    for table in ("data", "optim", "train"):
        assert other[table] == unet[table], f"talk-shapes128-{model}.toml [{table}] differs from the U-Net's"


def test_both_experiments_train_alike():
    a, b = config_to_dict(_talk("shapes128-unet")), config_to_dict(_talk("textures256-unet"))
    assert a["optim"] == b["optim"] and a["train"] == b["train"]
    assert (a["train"]["epochs"], a["train"]["batch_size"], a["train"]["loss"], a["optim"]["name"]) == (150, 32, "bce", "ranger")


def test_flips_are_horizontal_and_vertical_independently_with_probability_half():
    """Each of the 4 flip combinations comes up about 1/4 of the time; image and mask flip together."""
    rng = np.random.default_rng(0)
    b = (rng.random((50, 9, 11)) < 0.5).astype(np.uint8)  # asymmetric: the 4 variants differ
    m = (rng.random((50, 9, 11)) < 0.5).astype(np.uint8)
    ds = data.FillDataset.from_arrays(b, m, flip=True, seed=5)
    counts = np.zeros(4, dtype=int)
    for epoch in range(1, 9):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            x, y = (t[0].numpy().astype(np.uint8) for t in ds[i])
            variants = [(b[i], m[i]), (b[i][:, ::-1], m[i][:, ::-1]), (b[i][::-1], m[i][::-1]),
                        (b[i][::-1, ::-1], m[i][::-1, ::-1])]
            hits = [k for k, (vb, vm) in enumerate(variants) if np.array_equal(x, vb) and np.array_equal(y, vm)]
            assert len(hits) == 1
            counts[hits[0]] += 1
    # 400 draws, 100 expected per variant, sd 8.7: [60, 140] is 4.6 sd wide.
    assert counts.sum() == 400 and (counts >= 60).all() and (counts <= 140).all(), counts
