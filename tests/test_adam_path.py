"""The exact Adam path decomposition (issue 5): bookkeeping, quadrature, attribution, refusals."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from jordanlab.kernels import AdamPathRecorder
from jordanlab.models import build

from _paths import data as _data
from _paths import run


class SmoothGated(nn.Module):
    """A smooth (tanh) fully convolutional model with gates: forward = readout(x, gates(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Conv2d(1, 1, 3, padding=1)
        self.body = nn.Conv2d(1, 3, 3, padding=1)
        self.out = nn.Conv2d(4, 1, 1)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.gate(x) + 0.5)

    def gate_penalty(self, a: torch.Tensor) -> torch.Tensor:
        return (1.0 - a * a).mean()

    def readout(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([torch.tanh(self.body(x)), a], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(x, self.gates(x))


def _penalty_weight(step: int) -> float:
    return 0.0 if step < 2 else 0.1


def _run(model: nn.Module, rec: AdamPathRecorder | None, *, steps: int = 8, lr: float = 0.05, clip: float = 0.5,
         batch: int = 4, penalty: bool = True, optimizer: torch.optim.Optimizer | None = None) -> nn.Module:
    """The trainer's step with Adam and a ramped gate penalty (``_paths.run``)."""
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr, betas=(0.8, 0.99))

    def gate_penalty(m: nn.Module, x: torch.Tensor, t: int) -> torch.Tensor:
        return _penalty_weight(t) * m.gate_penalty(m.gates(x))

    return run(model, [rec] if rec is not None else [], opt, steps=steps, lr=lr, clip=clip, batch=batch,
               extra_loss=gate_penalty if penalty else None)


def _queries() -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    x, _ = _data(3, 12, seed=5)  # a larger canvas than training: the model is fully convolutional
    return [x[0], x[1], x[2][:, :10, :7]], [(3, 4), (11, 0), (9, 6)]


def _recorder(quadrature: int = 3, penalty: bool = True, clip: float = 0.5, kinks: bool = True) -> AdamPathRecorder:
    q, p = _queries()
    return AdamPathRecorder(q, p, n_train=10, loss="bce", grad_clip=clip,
                            penalty_weight=_penalty_weight if penalty else None, quadrature=quadrature, kinks=kinks)


def test_bookkeeping_is_exact_with_clipping_and_penalty_on_the_parity_scan_net():
    torch.manual_seed(0)
    model = build("parity-scan", width=4).double()
    rec = _recorder(quadrature=2, clip=0.02)
    _run(model, rec, steps=8, clip=0.02)
    r = rec.result()
    assert r.steps == 8
    assert float(r.step_residuals.max()) <= 1e-10
    assert float(r.momentum_residuals.max()) <= 1e-10
    assert float(r.gradient_residuals.max()) <= 1e-10  # the recorder recomputed the gradient the optimizer used
    assert float(r.clip_factors.min()) < 1.0  # clipping was active in some step
    assert float(r.regulariser.abs().max()) > 0  # the penalty moved the queries
    assert float(r.bookkeeping.abs().max()) <= 1e-10


def test_output_residual_shrinks_with_quadrature_on_a_smooth_model():
    residuals = []
    for nodes in (1, 3):
        torch.manual_seed(0)
        rec = _recorder(quadrature=nodes, kinks=False)  # fixed nodes (kink splitting would refine 1 node too)
        _run(SmoothGated().double(), rec)
        residuals.append(float(rec.result().relative_residual.max()))
    assert residuals[1] <= 1e-6
    assert residuals[1] < residuals[0] / 10


def test_sum_over_examples_reproduces_the_output_change():
    torch.manual_seed(0)
    model = SmoothGated().double()
    rec = _recorder(quadrature=3)
    _run(model, rec)
    r = rec.result()
    q, p = _queries()
    with torch.no_grad():
        final = torch.stack([model(x[None])[0, 0, i, j] for x, (i, j) in zip(q, p)])
    torch.testing.assert_close(r.final, final, rtol=0, atol=1e-12)
    change = r.final - r.initial
    assert float(change.abs().min()) > 1e-3  # training moved every query
    torch.testing.assert_close(r.contributions.sum(1) + r.regulariser, change, rtol=1e-6, atol=1e-9)
    assert torch.all(r.contributions[:, 8:] == 0)  # never in a batch: no contribution
    assert torch.all(r.contributions[:, :8] != 0)


def test_the_hook_does_not_change_the_run():
    torch.manual_seed(0)
    a = _run(SmoothGated().double(), _recorder())
    torch.manual_seed(0)
    b = _run(SmoothGated().double(), None)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("make_opt, match", [
    (lambda p: torch.optim.SGD(p, lr=0.1), "Adam or AdamW"),
    (lambda p: torch.optim.AdamW(p, lr=0.1), "weight_decay"),  # AdamW's default weight_decay is 0.01
    (lambda p: torch.optim.Adam(p, lr=0.1, amsgrad=True), "amsgrad"),
    (lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=1e-4), "weight_decay"),
])
def test_refuses_unsupported_optimizers(make_opt, match):
    model = SmoothGated().double()
    with pytest.raises(ValueError, match=match):
        _recorder().bind(model, make_opt(model.parameters()))


def test_refuses_a_resumed_optimizer():
    model = SmoothGated().double()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.zeros(1, 1, 4, 4, dtype=torch.float64)).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="already has state"):
        _recorder().bind(model, opt)


def test_recorder_inside_the_trainer_replays_the_same_run(tmp_path):
    from jordanlab.train import build_objective, config_from_dict, load_model, train

    config = config_from_dict({
        "data": {"preset": "shapes-32", "n_train": 8, "n_val": 0, "augment": True, "seed": 0},
        "model": {"name": "parity-scan", "kwargs": {"width": 4}},
        "optim": {"name": "adam", "lr": 0.01, "grad_clip": 0.05, "schedule": "onecycle", "warmup_steps": 2},
        "train": {"epochs": 2, "batch_size": 3, "loss": "bce", "seed": 0, "device": "cpu",
                  "gate_penalty": 0.05, "gate_penalty_start": 1, "gate_penalty_full": 3},
    })
    q = torch.zeros(1, 20, 40)
    q[0, 5, 10:30] = q[0, 15, 10:30] = q[0, 5:16, 10] = q[0, 5:16, 29] = 1.0  # a rectangle on a wider canvas
    rec = AdamPathRecorder([q, q], [(10, 20), (2, 20)], n_train=8, grad_clip=0.05,
                           penalty_weight=build_objective(config.train).penalty_weight)
    train(config, tmp_path / "with", progress=False, step_hooks=[rec])
    train(config, tmp_path / "without", progress=False)
    a, _ = load_model(tmp_path / "with")
    b, _ = load_model(tmp_path / "without")
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)  # the hook observes, it does not change the run
    r = rec.result()
    assert r.steps == 6  # 8 images, batches of 3 (the last of 2), 2 epochs
    assert float(r.clip_factors.min()) < 1.0 and float(r.regulariser.abs().max()) > 0
    assert float(r.gradient_residuals.max()) < 1e-4  # float32 run, recomputed in float32
    assert float(r.step_residuals.max()) < 1e-4
    with torch.no_grad():
        final = a(q[None])[0, 0, [10, 2], [20, 20]].double()
    torch.testing.assert_close(r.final, final, rtol=1e-5, atol=1e-5)
    assert float(r.relative_residual.max()) < 0.05  # ReLU kinks crossed inside steps: small, not float-exact


def test_explain_adam_cli_replays_the_run_and_accounts_for_the_output_change(tmp_path):
    from jordanlab.cli import main

    run = tmp_path / "run"
    assert main(["train", "configs/quick-parity-scan.toml", "--out", str(run), "--device", "cpu", "--quiet",
                 "--set", "data.n_train=6", "--set", "data.n_val=0", "--set", "train.epochs=2",
                 "--set", "train.batch_size=3", "--set", "model.kwargs.width=4",
                 "--set", "optim.warmup_steps=1", "--set", "train.gate_penalty_start=1",
                 "--set", "train.gate_penalty_full=2"]) == 0
    out = tmp_path / "explain"
    assert main(["kernel", "explain-adam", str(run), "--image", "0", "--pixel", "16,16",
                 "--image", "spiral:0", "--pixel", "20,20", "--size", "32", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "explain-summary.json").read_text())
    assert summary["steps"] == 4 and summary["weights_max_abs_diff_vs_run"] == 0.0  # the replay is the run
    for q in summary["queries"]:
        change = q["fT"] - q["f0"]
        assert abs(q["sum_a"] + q["a_reg"] - change) <= 0.05 * abs(change) + 1e-6  # ReLU kinks: small, not exact
        assert (out / f"explain-{q['name']}.png").stat().st_size > 0


def test_query_images_one_parser_for_both_explain_commands(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from jordanlab.data import make, write_dataset
    from jordanlab.experiments import parse_image_spec, query_from_spec

    config = SimpleNamespace(data=SimpleNamespace(dir=None, preset="shapes-32", seed=0))
    q = parse_image_spec("spiral:2", config)  # a suite: the run's canvas
    b = q.boundary
    assert b.shape == (32, 32) and (b == make("spiral", "test", n=3, size=32)[0][2]).all()
    assert (q.mask == make("spiral", "test", n=3, size=32)[1][2]).all()
    assert parse_image_spec("spiral:2", config, size=64).boundary.shape == (64, 64)
    assert parse_image_spec("shapes-64:1", config, size=16).boundary.shape == (64, 64)  # a preset keeps its canvas
    three = parse_image_spec("3", config)
    assert (three.boundary == make("shapes-32", "test", n=4)[0][3]).all() and three.source == "shapes-32 test[3]"
    for bad in ("spiral:x", "nosuch:1", "", "spiral"):
        with pytest.raises(ValueError, match="spec"):
            parse_image_spec(bad, config)
    # a PNG path: read as a boundary, no mask; a missing one names the file
    png = tmp_path / "mine.png"
    Image.fromarray(((1 - b) * 255).astype("uint8")).save(png)  # dark curve on white
    got = parse_image_spec(str(png), config)
    assert (got.boundary == b).all() and got.mask is None and got.source == str(png)
    with pytest.raises(FileNotFoundError):
        parse_image_spec(str(tmp_path / "missing.png"), config)
    assert query_from_spec(str(png), (1, 2), config).name == "mine-r1c2"
    assert query_from_spec("spiral:2", (1, 2), config).name == "spiral-2-r1c2"
    with pytest.raises(ValueError, match="outside"):
        query_from_spec("spiral:2", (32, 0), config)
    # INDEX of a run trained on a dataset directory reads that directory's test split
    d = write_dataset("nested", tmp_path / "ds", n=3, size=32, progress=False)
    config_dir = SimpleNamespace(data=SimpleNamespace(dir=str(d), preset="shapes-32", seed=0))
    assert (parse_image_spec("1", config_dir).boundary == make("nested", "test", n=2, size=32)[0][1]).all()
    with pytest.raises(ValueError, match="outside"):
        parse_image_spec("3", config_dir)


def test_per_example_gradients_of_a_fixed_point_model_sum_to_the_batch_gradient():
    """crossing-depth loops a value-dependent number of rounds; under vmap it holds its batch's count.

    The recorder's vmapped per-example gradients must then sum to the gradient the optimizer used.
    """
    torch.manual_seed(0)
    model = build("crossing-depth").double()
    q, p = _queries()
    rec = AdamPathRecorder(q, p, n_train=10, loss="bce", grad_clip=0.0, penalty_weight=_penalty_weight,
                           quadrature=2, kinks=False)
    _run(model, rec, steps=4, clip=0.0)
    r = rec.result()
    assert float(r.gradient_residuals.max()) <= 1e-10
    assert float(r.bookkeeping.abs().max()) <= 1e-10
