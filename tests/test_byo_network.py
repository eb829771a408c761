"""Bring your own network: a model defined here, named ``"<this module>:TinyNet"`` in a config, trains with
``jordanlab.train.train``, is evaluated on every suite (``evaluate_model`` and ``evaluate_run``) and is
explained by the kernel lens (the exact path decomposition and the final tangent kernel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from jordanlab.data import SUITES, make
from jordanlab.evaluate import evaluate_model, evaluate_run
from jordanlab.kernels import explain_run
from jordanlab.kernels.lens import final_kernel_attribution
from jordanlab.models import build
from jordanlab.train import load_config, load_model, train


class TinyNet(nn.Module):
    """Two 3x3 convolutions: (N, 1, H, W) -> (N, 1, H, W) logits on any canvas."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.Tanh(), nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def not_a_model(width: int = 4) -> int:
    return width


NAME = f"{__name__}:TinyNet"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("byo")
    cfg = d / "byo.toml"
    cfg.write_text(f'''description = "bring your own network"
[data]
preset = "shapes-32"
n_train = 64
n_val = 16
augment = false
seed = 0
[model]
name = "{NAME}"
[model.kwargs]
width = 4
[optim]
name = "adam"
lr = 0.01
[train]
epochs = 3
batch_size = 16
seed = 0
device = "cpu"
''')
    metrics = train(load_config(cfg), d / "run", progress=False)
    return d / "run", metrics


def test_build_resolves_module_attr() -> None:
    net = build(NAME, width=3)
    assert isinstance(net, TinyNet) and net(torch.zeros(1, 1, 9, 7)).shape == (1, 1, 9, 7)
    with pytest.raises(TypeError, match="depth"):
        build(NAME, depth=2)
    with pytest.raises(ValueError, match="cannot import"):
        build("no_such_pkg.nets:Net")
    with pytest.raises(ValueError, match="no attribute"):
        build(f"{__name__}:Nope")
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        build(f"{__name__}:not_a_model")


def test_trains_and_reloads(run) -> None:
    run_dir, metrics = run
    assert metrics["epoch"] == 3
    losses = [float(line.split('"loss": ')[1].split(",")[0]) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]  # it learned something
    model, config = load_model(run_dir)
    assert isinstance(model, TinyNet) and config.model.name == NAME


def test_evaluates_on_every_suite(run) -> None:
    run_dir, _ = run
    model, _ = load_model(run_dir)
    r = evaluate_model(model, suites=None, canvas=32, n=2)
    assert list(r["suites"]) == list(SUITES)
    for name, e in r["suites"].items():
        assert e["n"] == 2 and 0.0 <= e["mean_iou"] <= 1.0 and 0.0 <= e["perfect_rate"] <= 1.0
    assert r["suites"]["large-4x"]["canvas"] == 128
    # the same numbers through the run directory (jordanlab eval)
    ev = evaluate_run(run_dir, suites=["nested", "spiral"], n=2, figures=False, progress=False)
    for name in ("nested", "spiral"):
        assert ev["suites"][name]["mean_iou"] == r["suites"][name]["mean_iou"]


def test_is_explained_by_the_kernel_lens(run, tmp_path) -> None:
    run_dir, _ = run
    b, _ = make("nested", n=1, size=32)
    report = explain_run(run_dir, b[0], (16, 16), tmp_path, k=3, n_train=8, steps=10, progress=False)
    assert report["relative_residual"] < 1e-6  # the exact path decomposition adds up
    assert (tmp_path / "explain.png").is_file() and len(report["top"]) == 3
    model, _ = load_model(run_dir)
    tb, tm = make("shapes-32", "train", n=8)
    lens = final_kernel_attribution(model, b[0], (16, 16), tb, tm, k=3)
    assert len(lens["top"]) == 3 and np.isfinite(lens["contributions"]).all()
