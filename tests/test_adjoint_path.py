"""The adjoint (reverse-accumulation) Adam/Ranger decomposition equals the forward one, with O(T P) disk."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_optimizer import Ranger
from torch import nn

from jordanlab.kernels import AdamPathRecorder, AdjointPathRecorder, RangerPathRecorder
from jordanlab.kernels.adjoint_path import SCRATCH_MARKER
from jordanlab.models import build

from _paths import data as _data
from _paths import queries as _queries
from _paths import run


def _run(model: nn.Module, hooks: list, make_opt, *, steps: int, lr: float, clip: float = 0.0, batch: int = 4,
         seed: int = 1) -> nn.Module:
    return run(model, hooks, make_opt(model.parameters()), steps=steps, lr=lr, clip=clip, batch=batch, seed=seed)


def _both(tmp_path, build_model, make_opt, forward_cls, *, steps: int, lr: float, clip: float = 0.0,
          kinks: bool = True, seed: int = 1):
    """(forward result, adjoint result, adjoint recorder): one run, both recorders as hooks of the same steps."""
    q, p = _queries()
    fwd = forward_cls(q, p, n_train=10, grad_clip=clip, kinks=kinks)
    adj = AdjointPathRecorder(q, p, n_train=10, grad_clip=clip, kinks=kinks, scratch=tmp_path / "scratch")
    _run(build_model(), [fwd, adj], make_opt, steps=steps, lr=lr, clip=clip, seed=seed)
    return fwd.result(), adj.result(), adj


def _check_equal(f, a) -> None:
    eps = torch.finfo(torch.float64).eps
    scale = f.contributions.abs().max(dim=1, keepdim=True).values
    rel = float(((a.contributions - f.contributions).abs() / scale).max())
    assert rel <= 1e-12, rel  # every a_i, relative to the largest |a_i| of its query
    assert torch.all((a.contributions == 0) == (f.contributions == 0))  # unseen examples: exactly 0
    change = (f.final - f.initial).abs()
    assert float((a.adjoint_residual.abs() / change).max()) <= 1e-12  # Σ_i a_i (sweep) = a_data (forward row)
    torch.testing.assert_close(a.path.final, f.final, rtol=0, atol=0)
    torch.testing.assert_close(a.path.regulariser, f.regulariser, rtol=1e-12, atol=1e-15)
    # the residuals are the same sum in another order: rounding bounded by the magnitudes summed, not by their net
    magnitude = f.contributions.abs().sum(1) + f.final.abs() + f.initial.abs() + f.regulariser.abs()
    assert float(((a.path.residual - f.residual).abs() / magnitude).max()) <= 64 * eps


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000), k=st.integers(2, 5), steps=st.integers(3, 11), decouple=st.booleans())
def test_adjoint_equals_forward_ranger_on_a_relu_cnn(tmp_path_factory, seed, k, steps, decouple):
    """Un-rectified start (t ≤ 5), Lookahead syncs every k, an open window at T, weight decay, clipping."""
    tmp = tmp_path_factory.mktemp("adj")

    def model():
        torch.manual_seed(seed)
        return build("local-cnn", width=3, depth=3, norm="none").double()

    make = lambda p: Ranger(p, lr=0.05, k=k, weight_decay=0.05, weight_decouple=decouple)  # noqa: E731
    f, a, adj = _both(tmp, model, make, RangerPathRecorder, steps=steps, lr=0.05, clip=0.02, seed=seed)
    assert bool((~f.rectified[: min(steps, 5)]).all())
    assert int(f.synced.sum()) == steps // k
    _check_equal(f, a)
    assert float(a.path.relative_residual.max()) <= 1e-9  # kink-split quadrature: exact
    steps = a.path.quadrature_residuals  # per-step quadrature errors add up to the residual's quadrature part
    bound = 8 * steps.shape[0] * torch.finfo(torch.float64).eps * max(1.0, float(f.final.abs().max()))
    assert float((steps.sum(0) - (f.residual - f.bookkeeping)).abs().max()) <= bound  # T roundings of f
    assert a.disk_bytes > 0
    adj.close()
    assert not (tmp / "scratch").exists()


def test_adjoint_equals_forward_ranger_on_a_batchnorm_unet(tmp_path):
    """BatchNorm in training mode: ℓ_i is example i's term in its batch; the running statistics are a_BN."""

    def model():
        torch.manual_seed(0)
        return build("unet", width=2, depth=2, norm="batch").double()

    make = lambda p: Ranger(p, lr=0.01, k=3)  # noqa: E731
    f, a, adj = _both(tmp_path, model, make, RangerPathRecorder, steps=8, lr=0.01)
    assert int(f.synced.sum()) == 2 and int(f.rectified.sum()) == 3
    assert float(f.batchnorm.abs().min()) > 0
    torch.testing.assert_close(a.path.batchnorm, f.batchnorm, rtol=0, atol=0)
    _check_equal(f, a)
    assert float(a.path.gradient_residuals.max()) <= 1e-12  # the aggregate row is the optimizer's gradient
    assert float(a.path.relative_residual.max()) <= 1e-9
    with adj:
        assert (tmp_path / "scratch" / SCRATCH_MARKER).is_file()
    assert not (tmp_path / "scratch").exists()


def test_pixel_maps_split_every_contribution_over_the_pixels_of_its_presentations(tmp_path):
    """Σ over an example's presentations and pixels of its map is its a_i; a second sweep gives the same maps."""

    def model():
        torch.manual_seed(0)
        return build("unet", width=2, depth=2, norm="batch").double()

    q, p = _queries()
    adj = AdjointPathRecorder(q, p, n_train=10, kinks=False, quadrature=2, scratch=tmp_path / "scratch")
    steps, batch = 7, 4
    _run(model(), [adj], lambda ps: Ranger(ps, lr=0.01, k=3), steps=steps, lr=0.01, batch=batch)
    with adj:
        full = adj.result(maps=True)
        a, maps = full.contributions, full.maps
        assert maps.maps.shape == (2, steps * batch, 8, 8)
        assert not torch.isin(maps.examples, torch.tensor([8, 9])).any()  # never drawn: no presentation
        for i in range(8):
            share = maps.maps[:, maps.examples == i].flatten(1).sum(1)
            torch.testing.assert_close(share, a[:, i], rtol=1e-12, atol=1e-15)
        assert float(a[:, :8].abs().min()) > 0 and torch.all(a[:, 8:] == 0)
        x, y = _data()
        for k in range(len(maps.steps)):  # each presentation is the batch as trained (no augmentation here)
            i = int(maps.examples[k])
            assert torch.equal(maps.inputs[k], x[i, 0].float()) and torch.equal(maps.targets[k], y[i, 0].float())
        torch.testing.assert_close(maps.totals().sum(1), a.sum(1), rtol=1e-12, atol=1e-14)
        # a second sweep for two examples only: bitwise the maps the first sweep kept
        adj._bound()._cached = None
        plain = adj.result()
        assert plain.maps is None and torch.equal(plain.contributions, a)
        two = adj.pixel_maps([5, 2])
        ref = maps.select([2, 5])
        assert torch.equal(two.examples, ref.examples) and torch.equal(two.steps, ref.steps)
        assert torch.equal(two.maps, ref.maps) and set(two.examples.tolist()) == {2, 5}
        with pytest.raises(ValueError, match=r"maps: example indices must lie in \[0, 10\)"):
            adj.pixel_maps([10])


def test_adjoint_equals_forward_adam_with_kinks_off(tmp_path):
    """Adam is the special case α = 1 (no sync), GC = identity; the quadrature error is the same in both."""

    def model():
        torch.manual_seed(3)
        return build("local-cnn", width=3, depth=3, norm="none").double()

    make = lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99))  # noqa: E731
    f, a, adj = _both(tmp_path, model, make, AdamPathRecorder, steps=9, lr=0.05, clip=0.05, kinks=False)
    _check_equal(f, a)
    assert float(f.clip_factors.min()) < 1.0
    adj.close()


def test_scratch_directory_must_be_the_recorders_own(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    q, p = _queries()
    with pytest.raises(ValueError, match="not empty"):
        AdjointPathRecorder(q, p, n_train=10, scratch=tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    rec = AdjointPathRecorder(q, p, n_train=10, scratch=tmp_path / "s")
    rec.close()  # never bound: nothing was created, nothing is removed
    assert not (tmp_path / "s").exists()


def test_a_killed_recorders_scratch_is_reused_but_a_users_file_beside_it_is_not(tmp_path):
    """A SIGKILLed replay leaves its marked scratch: the next one clears only those files and starts over."""
    from jordanlab.kernels.adjoint_path import _FILES

    def leftover(path):  # what a killed recorder leaves: its marker and its four stores
        path.mkdir()
        (path / SCRATCH_MARKER).write_text("jordanlab adjoint path recorder scratch\n")
        for name in _FILES:
            (path / name).write_bytes(b"stale")

    def bound(scratch):
        model = build("local-cnn", width=2, depth=2, norm="none").double()
        q, p = _queries()
        rec = AdjointPathRecorder(q, p, n_train=10, scratch=scratch)
        rec.bind(model, torch.optim.Adam(model.parameters(), lr=0.01))  # bind() makes the scratch
        return rec

    leftover(tmp_path / "left")
    rec = bound(tmp_path / "left")
    assert all((tmp_path / "left" / name).stat().st_size == 0 for name in _FILES)  # a fresh scratch
    rec.close()
    assert not (tmp_path / "left").exists()
    leftover(tmp_path / "mixed")
    (tmp_path / "mixed" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        bound(tmp_path / "mixed")
    assert (tmp_path / "mixed" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "mixed" / "u.bin").read_bytes() == b"stale"


def test_kernel_explain_replays_a_ranger_run_on_disk_and_matches_the_ram_recorder(tmp_path):
    """`jordanlab kernel explain RUN` on a Ranger run: the run itself (f_T = its logit), a_i as in RAM."""
    import json

    from jordanlab.cli import main

    run = tmp_path / "run"
    assert main(["train", "configs/quick-unet.toml", "--out", str(run), "--device", "cpu", "--quiet",
                 "--set", "data.n_train=6", "--set", "data.n_val=0", "--set", "train.epochs=2",
                 "--set", "train.batch_size=3", "--set", "model.kwargs.width=2", "--set", "model.kwargs.depth=2"]) == 0
    reports = {}
    for memory in ("disk", "ram"):
        out = tmp_path / memory
        assert main(["kernel", "explain", str(run), "--image", "nested:0", "--pixel", "13,21", "--out", str(out),
                     "--memory", memory, "--quiet"]) == 0
        reports[memory] = json.loads((out / "explain.json").read_text())
        assert not (out / "adjoint-scratch").exists()  # the scratch directory is gone, the rest stays
        assert (out / "explain-nested-0-r13c21.png").stat().st_size > 0
    disk, ram = reports["disk"], reports["ram"]
    assert disk["method"] == "replay" and disk["summary"]["memory"] == "disk"
    assert disk["fT"] == disk["run_logit_float64"]  # the explained output is the run's own (replayed weights equal)
    assert abs(disk["fT"] - disk["run_logit"]) <= 1e-6 * max(1.0, abs(disk["fT"]))  # its float32 logit
    assert len(disk["contributions"]) == 6 and disk["train_indices"] == list(range(6))
    change = disk["fT"] - disk["f0"]
    assert abs(disk["adjoint_residual"]) <= 1e-12 * abs(change)
    # RAM recorder: float32 per-example gradients; disk: float64 ones; both are the run's gradient to float32 rounding
    a, b = torch.tensor(disk["contributions"]), torch.tensor(ram["contributions"])
    assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    # the disk sweep kept every example's per-pixel maps: each top example's class and distance shares are exact
    # splits of its a_i, and the whole training set's split sums to Σ_i a_i
    assert (tmp_path / "disk" / "explain-nested-0-r13c21-maps.png").stat().st_size > 0
    assert not (tmp_path / "ram" / "explain-nested-0-r13c21-maps.png").exists()  # RAM shares: no maps
    assert disk["summary"]["maps_of"] == "all examples"
    for item in disk["top_positive"] + disk["top_negative"]:
        scale = abs(item["a"]) + 1e-300
        assert abs(item["a_from_maps"] - item["a"]) <= 1e-12 * scale
        assert abs(sum(item["classes"].values()) - item["a"]) <= 1e-12 * scale
        assert abs(sum(item["distance"].values()) - item["a"]) <= 1e-12 * scale
        assert len(item["presentations"]) == 2  # 2 epochs: each example drawn once per epoch
        assert abs(sum(p["share"] for p in item["presentations"]) - item["a"]) <= 1e-12 * scale
    total = abs(disk["sum_a"]) + sum(map(abs, disk["contributions"]))
    assert abs(sum(disk["map_classes"].values()) - disk["sum_a"]) <= 1e-12 * total
    assert abs(disk["map_sum"] - disk["sum_a"]) <= 1e-12 * total
