"""The CUDA paths of the loop, checkpoints and inference (issue 15); every test here needs a GPU.

They are skipped without CUDA and run by ``scripts/device_check.sh`` (its ``cuda_tests`` stage runs
``-k cuda`` over the test files that check ``torch.cuda.is_available()``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jordanlab.train import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig, load_checkpoint, load_model, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _config(epochs: int, **train_kw) -> Config:
    tk = dict(epochs=epochs, batch_size=8, seed=3, device="cuda", num_workers=0)
    tk.update(train_kw)
    return Config(
        description="cuda test",
        data=DataConfig(preset="shapes-32", n_train=16, n_val=8, seed=0),
        model=ModelConfig(name="unet", kwargs={"width": 4, "depth": 2}),
        optim=OptimConfig(name="ranger", lr=3e-3),
        train=TrainConfig(**tk),
    )


def test_cuda_training_uses_bf16_channels_last_and_resumes(tmp_path):
    """One epoch, then a resumed second: the resume loads a checkpoint mapped to CUDA (its RNG state too)."""
    run = tmp_path / "run"
    train(_config(1), run, progress=False)
    info = json.loads((run / "run.json").read_text())
    assert info["device"].startswith("cuda") and info["amp_bf16"] and info["channels_last"]
    metrics = train(_config(2), run, progress=False)
    assert metrics["epoch"] == 2 and np.isfinite(metrics["loss"])
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    ckpt = load_checkpoint(sorted(run.glob("ckpt-*.pt"))[-1])
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())  # loadable on a CPU-only machine
    model, _ = load_model(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cuda_float32_resume_matches_an_uninterrupted_run(tmp_path):
    """With amp off and TF32 off the resumed run ends within float32 noise of the uninterrupted one."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        train(_config(2, amp=False), tmp_path / "a", progress=False)
        train(_config(1, amp=False), tmp_path / "b", progress=False)
        train(_config(2, amp=False), tmp_path / "b", progress=False)
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    a, _ = load_model(tmp_path / "a")
    b, _ = load_model(tmp_path / "b")
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if x.is_floating_point():
            np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=0, atol=1e-4, err_msg=k)


def test_cuda_predict_masks_of_exact_crossing_depth_equal_the_fill():
    from jordanlab.data import make
    from jordanlab.evaluate import predict_masks
    from jordanlab.models import build

    net = build("crossing-depth").double()
    with torch.no_grad():
        net.table.fill_(-60.0)
        net.table[:, 1, 0] = 60.0
        net.head.weight.copy_(torch.tensor([10.0, -10.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1))
        net.head.bias.zero_()
    boundaries, masks = make("nested", "test", n=6, size=64)
    pred_gpu, rounds_gpu = predict_masks(net, boundaries, device="cuda")
    pred_cpu, rounds_cpu = predict_masks(net, boundaries, device="cpu")
    np.testing.assert_array_equal(pred_gpu, masks)
    np.testing.assert_array_equal(pred_gpu, pred_cpu)
    np.testing.assert_array_equal(rounds_gpu, rounds_cpu)


def test_cuda_fill_keeps_device_and_thins_thick_strokes():
    from jordanlab.data import make
    from jordanlab.topology import fill

    boundaries, masks = make("thick", "test", n=8, size=32)
    out = fill(torch.from_numpy(boundaries).cuda())
    assert out.is_cuda and out.dtype == torch.uint8
    np.testing.assert_array_equal(out.cpu().numpy(), masks)


def test_cuda_rng_state_restores_from_cuda_tensors_and_from_a_bigger_machine():
    """A state mapped to CUDA (as a resume on CUDA loads it), with one GPU state too many, restores."""
    from jordanlab.train.checkpoint import capture_rng_state, restore_rng_state

    torch.manual_seed(11)
    torch.cuda.manual_seed_all(11)
    state = capture_rng_state()
    expect_cpu, expect_gpu = torch.rand(3), torch.rand(3, device="cuda")
    moved = {**state, "numpy": [v.cuda() if torch.is_tensor(v) else v for v in state["numpy"]],
             "torch": state["torch"].cuda(), "cuda": [s.cuda() for s in state["cuda"]] + [state["cuda"][0].cuda()]}
    restore_rng_state(moved)
    assert torch.equal(torch.rand(3), expect_cpu) and torch.equal(torch.rand(3, device="cuda"), expect_gpu)
