"""jordanlab.evaluate: exact metric values, eval.json schema, programmed nets are perfect, PNG prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jordanlab import data, models
from jordanlab.evaluate import (
    aggregate_scores,
    error_map,
    evaluate_run,
    format_table,
    per_image_scores,
    predict_masks,
    predict_png,
    rank_images,
    score_masks,
    training_curves,
)
from jordanlab.train import Config, DataConfig, ModelConfig, TrainConfig, save_checkpoint


def test_metrics_on_hand_made_masks():
    t = np.zeros((3, 4, 4), np.uint8)
    p = np.zeros((3, 4, 4), np.uint8)
    t[0, :2, :2] = 1          # 4 figure pixels
    p[0, :2, :3] = 1          # 6 predicted: 4 right, 2 false positives
    t[1, 1:3, 1:3] = 1        # 4 figure pixels
    p[1, 1:3, 1:3] = 1        # perfect
    # image 2: both empty -> IoU 1, perfect
    s = per_image_scores(p, t)
    np.testing.assert_array_equal(s["iou"], [4 / 6, 1.0, 1.0])
    np.testing.assert_array_equal(s["accuracy"], [14 / 16, 1.0, 1.0])
    np.testing.assert_array_equal(s["perfect"], [False, True, True])
    np.testing.assert_array_equal(s["errors"], [2, 0, 0])
    agg = aggregate_scores(s)
    assert agg == {"n": 3, "mean_iou": pytest.approx((4 / 6 + 2) / 3), "pixel_accuracy": pytest.approx((14 / 16 + 2) / 3),
                   "perfect_rate": pytest.approx(2 / 3)}
    # a prediction with no figure at all against a non-empty figure: IoU 0
    assert per_image_scores(np.zeros((2, 2)), np.ones((2, 2)))["iou"][0] == 0.0


def test_metrics_reject_mismatched_shapes_and_mixed_types():
    with pytest.raises(ValueError, match="shapes differ"):
        per_image_scores(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="both numpy arrays or both torch"):
        per_image_scores(np.zeros((2, 3, 3)), torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="no images"):
        aggregate_scores(per_image_scores(np.zeros((0, 3, 3)), np.zeros((0, 3, 3))))


@given(arrays(np.uint8, (3, 5, 6), elements=st.integers(0, 1)), arrays(np.uint8, (3, 5, 6), elements=st.integers(0, 1)))
def test_numpy_and_torch_metrics_agree_and_are_bounded(p, t):
    a = per_image_scores(p, t)
    b = per_image_scores(torch.from_numpy(p)[:, None], torch.from_numpy(t)[:, None])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k].numpy())
    assert ((0 <= a["iou"]) & (a["iou"] <= 1)).all()
    # perfect <=> accuracy 1 <=> IoU 1 with the same figure
    np.testing.assert_array_equal(a["perfect"], a["accuracy"] == 1.0)
    np.testing.assert_array_equal(a["perfect"], (p == t).all(axis=(1, 2)))
    assert score_masks(t, t)["perfect_rate"] == 1.0


@given(arrays(np.float32, (4, 1, 6, 6), elements=st.floats(-3, 3, width=32)),
       arrays(np.uint8, (4, 1, 6, 6), elements=st.integers(0, 1)))
def test_training_loop_scores_match_evaluate_metrics(z, t):
    from jordanlab.train.loop import _per_image_scores
    from jordanlab.train.metrics import logit_scores

    assert _per_image_scores is logit_scores  # one definition, imported by the loop
    iou, acc = _per_image_scores(torch.from_numpy(z), torch.from_numpy(t).float())
    ref = per_image_scores((z > 0).astype(np.uint8), t)
    np.testing.assert_array_equal(iou.numpy(), ref["iou"])
    np.testing.assert_array_equal(acc.numpy(), ref["accuracy"])


def test_rank_and_error_map():
    per = {"iou": np.array([0.5, 1.0, 0.5, 0.9]), "errors": np.array([3, 0, 2, 1])}
    assert rank_images(per).tolist() == [1, 3, 2, 0]
    rgb = error_map(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]]), np.array([[0, 0], [0, 0]]))
    assert rgb.shape == (2, 2, 3) and (rgb[1, 1] == 1).all()
    assert rgb[0, 1, 0] > rgb[0, 1, 2] and rgb[1, 0, 2] > rgb[1, 0, 0]  # FP red, FN blue


def test_programmed_scan_net_is_perfect_on_a_suite():
    from jordanlab.topology import PropagationNet, ScanNet

    b, m = data.make("nested", n=16, size=32)
    for net in (ScanNet(), PropagationNet()):
        preds, iters = predict_masks(net, b, batch_size=8)
        assert iters is None
        assert score_masks(preds, m)["perfect_rate"] == 1.0


def _config(name: str, kwargs: dict) -> Config:
    return Config(description="eval test", data=DataConfig(preset="shapes-32", n_train=16, n_val=4),
                  model=ModelConfig(name=name, kwargs=kwargs), train=TrainConfig(epochs=1, device="cpu"))


def _fake_run(run: Path, name: str, kwargs: dict, *, metrics: bool = True) -> Config:
    torch.manual_seed(0)
    cfg = _config(name, kwargs)
    save_checkpoint(run, config=cfg, model=models.build(name, **kwargs), optimizer=None, epoch=1, step=2)
    if metrics:
        lines = [{"epoch": e, "step": 2 * e, "loss": 1.0 / e, "train_iou": 0.1 * e, "val_iou": 0.1 * e,
                  "val_perfect_rate": 0.0} for e in (1, 2)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return cfg


def test_eval_json_schema_figures_and_data_dir(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, "local-cnn", {"width": 4, "depth": 3})
    ds = data.write_dataset("polygon", tmp_path / "my-polygons", n=5, size=32, progress=False)
    out = evaluate_run(run, suites=["test", "multi-2"], data_dirs=[ds], n=6, progress=False)
    on_disk = json.loads((run / "eval.json").read_text())
    assert on_disk == out
    assert set(out["suites"]) == {"test", "multi-2", "my-polygons"}
    for name, e in out["suites"].items():
        assert {"n", "mean_iou", "pixel_accuracy", "perfect_rate"} <= set(e)
        assert isinstance(e["n"], int) and all(isinstance(e[k], float) for k in ("mean_iou", "pixel_accuracy", "perfect_rate"))
        assert 0 <= e["perfect_rate"] <= 1 and 0 <= e["mean_iou"] <= 1
        assert (run / "figures" / f"suite-{name}.png").is_file()
    assert out["suites"]["test"]["n"] == 6 and out["suites"]["my-polygons"]["n"] == 5
    assert out["suites"]["multi-2"]["canvas"] == 32
    assert (run / "figures" / "training.png").is_file()
    # the scores are those of the model on the very same images
    b, m = data.make("multi-2", n=6, size=32)
    from jordanlab.train import load_model

    preds, _ = predict_masks(load_model(run)[0], b)
    assert out["suites"]["multi-2"]["mean_iou"] == pytest.approx(score_masks(preds, m)["mean_iou"], abs=0)
    # a second evaluation of the same checkpoint adds suites and keeps the others
    out2 = evaluate_run(run, suites=["large-2x"], n=2, figures=False, progress=False)
    assert set(out2["suites"]) == {"test", "multi-2", "my-polygons", "large-2x"}
    assert out2["suites"]["large-2x"]["canvas"] == 64
    table = format_table(out2)
    assert table.splitlines()[0].startswith("| suite | n | mean IoU")
    assert len(table.splitlines()) == 2 + 4 and "| multi-2 | 6 |" in table


def test_unknown_suite_and_missing_checkpoint_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no good checkpoint"):
        evaluate_run(tmp_path, progress=False)
    _fake_run(tmp_path / "run", "local-cnn", {"width": 2, "depth": 2}, metrics=False)
    with pytest.raises(ValueError, match="unknown suite 'mult-2'"):
        evaluate_run(tmp_path / "run", suites=["mult-2"], progress=False)


def test_recurrent_model_uses_label_free_halting_and_records_iterations(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, "recurrent", {"width": 4, "iters": 3}, metrics=False)
    out = evaluate_run(run, suites=["multi-2"], n=4, max_iters=6, patience=2, figures=False, progress=False)
    e = out["suites"]["multi-2"]
    assert 1 <= e["iters_max"] <= 6 and e["iters_budget"] == 6 and 0 <= e["halted_rate"] <= 1
    assert "iters mean/max" in format_table(out)


def test_format_table_exact():
    d = {"suites": {"test": {"n": 10, "mean_iou": 0.5, "pixel_accuracy": 0.75, "perfect_rate": 0.1}}}
    assert format_table(d) == (
        "| suite | n | mean IoU | pixel acc. | perfect |\n|---|---:|---:|---:|---:|\n"
        "| test | 10 | 0.5000 | 0.7500 | 10.0 % |"
    )
    with pytest.raises(ValueError, match="suites"):
        format_table({"x": 1})


def test_training_curves_needs_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        training_curves(tmp_path)


def test_predict_png_on_a_larger_canvas(tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    _fake_run(run, "local-cnn", {"width": 4, "depth": 3}, metrics=False)
    b, _ = data.make("multi-2", n=1, size=48)
    Image.fromarray(((1 - b[0]) * 255).astype(np.uint8)).save(tmp_path / "in.png")  # dark curve on white
    out = predict_png(run, tmp_path / "in.png", tmp_path / "out.png", device="cpu")
    got = (np.asarray(Image.open(out)) > 127).astype(np.uint8)
    from jordanlab.train import load_model

    ref, _ = predict_masks(load_model(run)[0], b)
    assert got.shape == (48, 48)
    np.testing.assert_array_equal(got, ref[0])


def test_programmed_model_run_gets_perfect_rate_one(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, "programmed-scan", {}, metrics=False)
    out = evaluate_run(run, suites=["test", "nested", "spiral"], n=20, figures=False, progress=False)
    assert all(e["perfect_rate"] == 1.0 for e in out["suites"].values()), out
