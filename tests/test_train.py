"""jordanlab.train: the loop learns, is deterministic, resumes bit-for-bit, refuses bad checkpoints."""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from jordanlab.train.run import RunError
from jordanlab.train import (
    CheckpointWarning,
    Config,
    CorruptCheckpointError,
    DataConfig,
    EpochSampler,
    ModelConfig,
    NonFiniteLossError,
    OptimConfig,
    ProgressiveObjective,
    TrainConfig,
    latest_good_checkpoint,
    learning_rate,
    list_checkpoints,
    load_checkpoint,
    load_model,
    pixel_loss,
    save_checkpoint,
    train,
)

def tiny_config(*, augment: bool = True, **train_kw) -> Config:
    tk = dict(epochs=2, batch_size=8, seed=3, device="cpu", num_workers=0)
    tk.update(train_kw)
    return Config(
        description="test",
        data=DataConfig(preset="shapes-32", n_train=16, n_val=8, seed=0, augment=augment),
        model=ModelConfig(name="local-cnn", kwargs={"width": 4, "depth": 3, "norm": "none"}),
        optim=OptimConfig(name="ranger", lr=3e-3),
        train=TrainConfig(**tk),
    )


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(run_dir)
    return model.state_dict()


def _assert_bit_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


# --------------------------------------------------------------------------------------------


def test_training_decreases_loss_and_writes_the_run(tmp_path):
    cfg = tiny_config(epochs=4, batch_size=4)
    cfg = Config(description="adam", data=cfg.data, model=cfg.model, optim=OptimConfig(name="adam", lr=1e-2),
                 train=cfg.train)
    final = train(cfg, tmp_path / "run", progress=False)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    assert lines[-1]["loss"] < lines[0]["loss"]
    for key in ("step", "loss", "train_iou", "train_accuracy", "val_iou", "val_accuracy", "seconds"):
        assert key in lines[-1]
    assert final == lines[-1]
    assert lines[-1]["step"] == 4 * 4  # 16 images, batch 4
    assert (tmp_path / "run" / "config.toml").is_file() and (tmp_path / "run" / "run.json").is_file()
    assert len(list_checkpoints(tmp_path / "run")) == 3  # keep_checkpoints
    model, saved = load_model(tmp_path / "run")
    assert saved == cfg and not model.training


def test_same_seed_gives_identical_weights_and_other_seed_does_not(tmp_path):
    train(tiny_config(), tmp_path / "a", progress=False)
    train(tiny_config(), tmp_path / "b", progress=False)
    train(tiny_config(seed=4), tmp_path / "c", progress=False)
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    _assert_bit_identical(wa, wb)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_train_leaves_the_callers_global_rng_alone(tmp_path):
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    before = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    train(tiny_config(epochs=1), tmp_path / "run", progress=False)
    after = (random.random(), np.random.rand(), torch.rand(1))
    assert before[:2] == after[:2] and torch.equal(before[2], after[2])


class _Interrupt(Exception):
    pass


def _interrupt_after(epoch_to_stop: int):
    def cb(epoch, metrics):
        if epoch == epoch_to_stop:
            raise _Interrupt(f"killed after epoch {epoch}")

    return cb


@pytest.mark.parametrize("augment", [False, True])
def test_kill_and_resume_is_bit_identical(tmp_path, augment):
    cfg = tiny_config(epochs=3, augment=augment)
    train(cfg, tmp_path / "full", progress=False)
    with pytest.raises(_Interrupt):
        train(cfg, tmp_path / "resumed", progress=False, callbacks=[_interrupt_after(1)])
    assert [e for e, _ in list_checkpoints(tmp_path / "resumed")] == [1]
    final = train(cfg, tmp_path / "resumed", progress=False)
    _assert_bit_identical(_weights(tmp_path / "full"), _weights(tmp_path / "resumed"))
    full_lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    res_lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "seconds"}  # noqa: E731
    assert [strip(s) for s in full_lines] == [strip(s) for s in res_lines]
    # the optimizer state too: Ranger's moments and its Lookahead step counter
    a = load_checkpoint(list_checkpoints(tmp_path / "full")[-1][1])["optimizer"]
    b = load_checkpoint(list_checkpoints(tmp_path / "resumed")[-1][1])["optimizer"]
    assert a["param_groups"][0]["step"] == b["param_groups"][0]["step"] == 6
    for k in a["state"]:
        for name, t in a["state"][k].items():
            assert torch.equal(t, b["state"][k][name]), name
    # a finished run returns its final metrics without training again
    again = train(cfg, tmp_path / "resumed", progress=False)
    assert again == final and len(res_lines) == 3


def test_resume_refuses_a_different_config(tmp_path):
    train(tiny_config(epochs=1), tmp_path / "run", progress=False)
    other = tiny_config(epochs=1)
    other = Config(description=other.description, data=other.data, model=other.model,
                   optim=OptimConfig(name="adam", lr=3e-3), train=other.train)
    with pytest.raises(ValueError, match=r"optim\.name: 'ranger' -> 'adam'"):
        train(other, tmp_path / "run", progress=False)


def test_corrupted_checkpoint_is_refused_and_skipped(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(epochs=2), run, progress=False)
    (e1, p1), (e2, p2) = list_checkpoints(run)
    raw = bytearray(p2.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p2.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match=r"ckpt-000002\.pt.*corrupted.*refusing"):
        load_checkpoint(p2)
    with pytest.warns(CheckpointWarning, match="epoch 2"):
        assert latest_good_checkpoint(run) == p1
    # a checkpoint without its hash file (write interrupted between the two replaces)
    p1.with_name(p1.name + ".sha256").unlink()
    with pytest.raises(CorruptCheckpointError, match="no hash file"):
        load_checkpoint(p1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        assert latest_good_checkpoint(run) is None


def test_rerun_after_corruption_resumes_from_last_good_and_matches(tmp_path):
    cfg = tiny_config(epochs=2)
    train(cfg, tmp_path / "full", progress=False)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    p2 = list_checkpoints(run)[-1][1]
    p2.write_bytes(p2.read_bytes()[:-10])  # truncated: as if killed mid-write without os.replace
    with pytest.warns(CheckpointWarning, match="epoch 2"):
        train(cfg, run, progress=False)  # redoes epoch 2 from ckpt 1
    _assert_bit_identical(_weights(tmp_path / "full"), _weights(run))


class _NaNAfter(torch.nn.Module):
    """Wraps a model; its output is NaN from optimizer step ``bad_step`` on (counted in forward)."""

    def __init__(self, inner, bad_step):
        super().__init__()
        self.inner, self.bad_step = inner, bad_step
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        out = self.inner(x)
        return out * float("nan") if self.training and self.calls > self.bad_step else out


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from jordanlab import models

    real_build = models.build
    monkeypatch.setattr(models, "build", lambda name, **kw: _NaNAfter(real_build(name, **kw), 3))
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 2, step 3.*ckpt-000001\.pt"):
        train(tiny_config(epochs=3), run, progress=False)
    assert [e for e, _ in list_checkpoints(run)] == [1]
    load_checkpoint(list_checkpoints(run)[0][1])  # intact
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1]
    # the recovery the message suggests is a new run: this run's config (and so its weights) cannot change
    monkeypatch.setattr(models, "build", lambda name, **kw: _NaNAfter(real_build(name, **kw), 10**9))
    cfg = tiny_config(epochs=3)
    fixed = Config(description=cfg.description, data=cfg.data, model=cfg.model,
                   optim=OptimConfig(name="ranger", lr=1e-3, grad_clip=1.0), train=cfg.train)
    with pytest.raises(RunError, match=r"optim\.grad_clip: 0\.0 -> 1\.0; optim\.lr: 0\.003 -> 0\.001"):
        train(fixed, run, progress=False)
    assert train(fixed, tmp_path / "run2", progress=False)["epoch"] == 3


def test_a_blown_up_update_is_never_checkpointed(tmp_path):
    """SGD at lr 1e30: the epoch's last update is unchecked by the loss; the weights check catches it."""
    cfg = tiny_config(epochs=3)
    wild = Config(description=cfg.description, data=cfg.data, model=cfg.model,
                  optim=OptimConfig(name="sgd", lr=1e30, momentum=0.0), train=cfg.train)
    with pytest.raises(NonFiniteLossError, match=r"non-finite|became (nan|inf)") as info:
        train(wild, tmp_path / "run", progress=False)
    assert "new --out with a lower optim.lr" in str(info.value)
    for _, path in list_checkpoints(tmp_path / "run"):  # whatever was saved is finite
        ckpt = load_checkpoint(path)
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_unknown_model_fails_before_anything_is_written(tmp_path):
    cfg = tiny_config()
    bad = Config(data=cfg.data, model=ModelConfig(name="unet", kwargs={"widht": 4}), optim=cfg.optim, train=cfg.train)
    with pytest.raises(TypeError, match="widht"):
        train(bad, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    # the fixed config then runs in the same directory
    train(tiny_config(epochs=1), tmp_path / "run", progress=False)


def test_batch_must_split_across_ranks_message():
    from jordanlab.train.distributed import DistContext
    from jordanlab.train.loop import _train

    with pytest.raises(ValueError, match=r"train\.batch_size.*3 ranks"):
        _train(tiny_config(), Path("/nonexistent"), DistContext(world_size=3), progress=False, callbacks=())


def test_epoch_sampler_ranks_partition_the_single_process_batches():
    n, w, batch = 24, 3, 6
    one = list(EpochSampler(n, seed=1))
    ranks = [list(EpochSampler(n, seed=1, rank=r, world_size=w)) for r in range(w)]
    per = batch // w
    for b in range(n // batch):
        union = sorted(sum((rk[b * per:(b + 1) * per] for rk in ranks), []))
        assert union == sorted(one[b * batch:(b + 1) * batch])
    s = EpochSampler(n, seed=1)
    s.set_epoch(2)
    assert list(s) != one and sorted(s) == list(range(n))


def test_ranger_is_pytorch_optimizers():
    from pytorch_optimizer import Ranger

    from jordanlab.train import build_optimizer

    p = [torch.nn.Parameter(torch.zeros(3))]
    assert isinstance(build_optimizer(p, OptimConfig(name="ranger")), Ranger)
    assert isinstance(build_optimizer(p, OptimConfig(name="adam")), torch.optim.AdamW)
    assert isinstance(build_optimizer(p, OptimConfig(name="sgd")), torch.optim.SGD)


def test_learning_rate_is_a_pure_function_of_step():
    c = OptimConfig(lr=0.1, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(0, c, total_steps=110) == pytest.approx(0.01)
    assert learning_rate(9, c, total_steps=110) == pytest.approx(0.1)
    assert learning_rate(60, c, total_steps=110) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))
    assert learning_rate(110, c, total_steps=110) == pytest.approx(0.01)
    assert learning_rate(5, OptimConfig(lr=0.2), total_steps=10) == 0.2


def test_pixel_loss_matches_formula():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 5, 5, generator=g) * 3
    y = (torch.rand(2, 1, 5, 5, generator=g) > 0.5).float()
    p = torch.sigmoid(z.double())
    ref = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert float(pixel_loss(z, y, "bce")) == pytest.approx(float(ref), rel=1e-6)
    assert float(pixel_loss(z, y, "mse")) == pytest.approx(float(((p - y) ** 2).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        pixel_loss(z, y[:1])


def test_progressive_draws_are_in_range_and_reproducible():
    obj = ProgressiveObjective(alpha=0.5, max_iters=7, seed=2)
    draws = [obj.draw(s) for s in range(300)]
    assert all(0 <= n < 7 and 1 <= k <= 7 - n for n, k in draws)
    assert draws == [obj.draw(s) for s in range(300)]
    assert {n for n, _ in draws} == set(range(7))
    assert ProgressiveObjective(alpha=0.0).draw(5) == (0, 0)


def test_progressive_loss_equals_its_definition():
    from jordanlab import models

    torch.manual_seed(0)
    net = models.build("recurrent", width=4, iters=3)
    obj = ProgressiveObjective(alpha=0.3, max_iters=4, seed=1)
    x = (torch.rand(2, 1, 12, 12) > 0.8).float()
    y = (torch.rand(2, 1, 12, 12) > 0.5).float()
    loss, logits = obj.loss(obj.module(net), x, y, step=5)
    n, k = obj.draw(5)
    s = net.init_state(x)
    for _ in range(n):
        s = net.step(x, s)
    for _ in range(k):
        s = net.step(x, s)
    ref = 0.7 * pixel_loss(net(x, iters=4), y) + 0.3 * pixel_loss(net.readout(s), y)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    assert torch.allclose(logits, net(x, iters=4))
    # no gradient flows through the first n iterations: only the k with-grad steps and max_iters
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_progressive_training_runs_and_resumes(tmp_path):
    cfg = tiny_config(epochs=2, objective="progressive", progressive_max_iters=3, progressive_alpha=0.5)
    cfg = Config(data=cfg.data, model=ModelConfig(name="recurrent", kwargs={"width": 4, "iters": 3}),
                 optim=cfg.optim, train=cfg.train)
    train(cfg, tmp_path / "full", progress=False)
    with pytest.raises(_Interrupt):
        train(cfg, tmp_path / "res", progress=False, callbacks=[_interrupt_after(1)])
    train(cfg, tmp_path / "res", progress=False)
    _assert_bit_identical(_weights(tmp_path / "full"), _weights(tmp_path / "res"))


def test_progressive_objective_refuses_a_feedforward_model(tmp_path):
    with pytest.raises(ValueError, match="init_state/step/readout"):
        train(tiny_config(objective="progressive"), tmp_path / "run", progress=False)


def test_checkpoint_round_trip_restores_rng_and_config(tmp_path):
    from jordanlab import models

    net = models.build("local-cnn", width=2, depth=2)
    cfg = tiny_config()
    torch.manual_seed(9)
    random.seed(9)
    p = save_checkpoint(tmp_path, config=cfg, model=net, optimizer=None, epoch=7, step=70, metrics={"loss": 1.5})
    assert p.name == "ckpt-000007.pt" and p.with_name(p.name + ".sha256").is_file()
    expected = (torch.rand(3), random.random())
    ck = load_checkpoint(p)
    assert (ck["epoch"], ck["step"], ck["metrics"]) == (7, 70, {"loss": 1.5})
    from jordanlab.train.checkpoint import restore_rng_state

    restore_rng_state(ck["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ck["model"])
    assert math.isfinite(sum(float(v.sum()) for v in ck["model"].values()))


# ---------------------------------------------------------------- one-cycle schedule, gate penalty


@pytest.mark.parametrize(("total", "warmup", "base"), [(2000, 200, 5e-3), (37, 5, 0.1), (10, 2, 1.0)])
def test_onecycle_equals_torch_one_cycle_lr(total, warmup, base):
    c = OptimConfig(lr=base, schedule="onecycle", warmup_steps=warmup, min_lr_ratio=1 / (25 * 1e4))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=base, total_steps=total, pct_start=warmup / total,
                                              cycle_momentum=False)
    for s in range(total):
        assert learning_rate(s, c, total_steps=total) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), s
        opt.step()
        ref.step()
    assert learning_rate(0, c, total_steps=total) == pytest.approx(base / 25)
    assert learning_rate(warmup - 1, c, total_steps=total) == pytest.approx(base)
    assert learning_rate(total - 1, c, total_steps=total) == pytest.approx(base / 25e4)


def test_gate_penalty_ramp_by_hand():
    from jordanlab.train.objectives import build_objective

    obj = build_objective(TrainConfig(gate_penalty=0.05, gate_penalty_start=700, gate_penalty_full=1400))
    assert [obj.penalty_weight(s) for s in (0, 699, 700)] == [0.0, 0.0, 0.0]
    assert obj.penalty_weight(1050) == pytest.approx(0.025)
    assert obj.penalty_weight(1400) == obj.penalty_weight(5000) == pytest.approx(0.05)
    step = build_objective(TrainConfig(gate_penalty=0.1, gate_penalty_start=3, gate_penalty_full=3))
    assert (step.penalty_weight(2), step.penalty_weight(3)) == (0.0, 0.1)
    assert build_objective(TrainConfig()).penalty_weight(10) == 0.0


def test_gate_penalty_loss_is_pixel_loss_plus_weighted_penalty():
    from jordanlab.models import build
    from jordanlab.train.objectives import build_objective

    torch.manual_seed(0)
    model = build("parity-scan", width=4)
    x = (torch.rand(3, 1, 10, 12) > 0.7).float()
    y = (torch.rand(3, 1, 10, 12) > 0.5).float()
    obj = build_objective(TrainConfig(gate_penalty=0.2, gate_penalty_start=10, gate_penalty_full=20))
    net = obj.module(model)
    a = model.gates(x)
    expected = pixel_loss(model(x), y) + 0.1 * (1 - a * a).mean()
    loss, logits = obj.loss(net, x, y, step=15)
    assert torch.equal(logits, model(x))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss0, _ = obj.loss(net, x, y, step=0)
    assert loss0.item() == pytest.approx(pixel_loss(model(x), y).item(), rel=1e-6)


def test_gate_penalty_on_a_model_without_gates_fails_before_writing(tmp_path):
    cfg = tiny_config(gate_penalty=0.05)
    with pytest.raises(ValueError, match="train.gate_penalty"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_parity_scan_trains_with_onecycle_and_gate_penalty(tmp_path):
    base = tiny_config(epochs=3, batch_size=4, gate_penalty=0.05, gate_penalty_start=2, gate_penalty_full=8)
    cfg = Config(description="parity-scan", data=base.data, model=ModelConfig(name="parity-scan", kwargs={"width": 4}),
                 optim=OptimConfig(name="adam", lr=5e-3, schedule="onecycle", warmup_steps=3, grad_clip=1.0),
                 train=base.train)
    final = train(cfg, tmp_path / "run", progress=False)
    assert final["step"] == 12 and math.isfinite(final["loss"])
    model, loaded = load_model(tmp_path / "run")
    assert loaded == cfg and type(model).__name__ == "ParityScanNet"
    assert final["lr"] == pytest.approx(learning_rate(11, cfg.optim, total_steps=12))


def test_tensorboard_events_only_when_asked(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny_config(epochs=2), tmp_path / "plain", progress=False)
    assert not (tmp_path / "plain" / "tb").exists()
    train(tiny_config(epochs=2, tensorboard=True), tmp_path / "tb", progress=False)
    acc = EventAccumulator(str(tmp_path / "tb" / "tb"))
    acc.Reload()
    losses = [e.value for e in acc.Scalars("loss")]
    logged = [json.loads(s)["loss"] for s in (tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()]
    assert losses == pytest.approx(logged, rel=1e-6) and len(losses) == 2
