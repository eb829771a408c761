"""jordanlab.train under torchrun: 2 CPU processes (gloo) give the weights of 1 process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from jordanlab.train import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig, load_model, save_config

# Runs train() in a torchrun worker.
_WORKER = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)
    from jordanlab.train import load_config, train
    train(load_config(sys.argv[1]), sys.argv[2], progress=False)
    """
)


def _config() -> Config:
    # norm="none": BatchNorm statistics would differ per rank (SyncBatchNorm is the DDP default,
    # but the cross-check here is about gradient averaging and the sampler).
    return Config(
        description="ddp test",
        data=DataConfig(preset="shapes-32", n_train=16, n_val=4, seed=0, augment=True),
        model=ModelConfig(name="local-cnn", kwargs={"width": 4, "depth": 3, "norm": "none"}),
        optim=OptimConfig(name="ranger", lr=1e-2),
        train=TrainConfig(epochs=2, batch_size=8, seed=3, device="cpu"),
    )


def _run(nproc: int, cfg_path: Path, run_dir: Path, script: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(script), str(cfg_path), str(run_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_gloo_processes_equal_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    cfg_path = save_config(_config(), tmp_path / "ddp.toml")
    _run(1, cfg_path, tmp_path / "one", script)
    _run(2, cfg_path, tmp_path / "two", script)
    one, _ = load_model(tmp_path / "one")
    two, _ = load_model(tmp_path / "two")
    a, b = one.state_dict(), two.state_dict()
    assert a.keys() == b.keys()
    # float32 reduction order differs (per-rank means, then an all-reduce), so compare the whole
    # weight vector: ||theta_2 - theta_1|| / ||theta_1||. Per tensor, small-norm biases reach ~1e-5
    # relative (max abs difference ~1e-6): rounding, not a different algorithm.
    va = torch.cat([a[k].flatten() for k in a])
    vb = torch.cat([b[k].flatten() for k in a])
    rel = float((va - vb).norm() / va.norm())
    worst_abs = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"2-process vs 1-process: relative weight difference {rel:.3g}, max abs {worst_abs:.3g}")
    assert rel < 1e-6, f"relative weight difference {rel:.3g}"
    # and the weights did move: the comparison is not between two untouched initialisations
    from jordanlab import models

    torch.manual_seed(3)
    init = models.build("local-cnn", width=4, depth=3, norm="none").state_dict()
    assert any(not torch.allclose(init[k], a[k]) for k in a)
    # only rank 0 wrote: one metrics line per epoch
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
