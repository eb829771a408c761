"""The exact path decomposition recorded inside `jordanlab.train` (issue 4: online recording in the loop)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from jordanlab.data import load_dataset
from jordanlab.experiments import initial_model
from jordanlab.kernels import PathRecorder
from jordanlab.train import config_from_dict, load_model, train


def _config(optimizer: dict) -> object:
    return config_from_dict({
        "data": {"preset": "shapes-32", "n_train": 12, "n_val": 4, "augment": False, "seed": 0},
        "model": {"name": "local-cnn", "kwargs": {"width": 4, "depth": 2, "norm": "none"}},
        "optim": optimizer,
        "train": {"epochs": 2, "batch_size": 4, "loss": "bce", "seed": 0, "device": "cpu"},
    })


class _Batches:
    """Keeps what the loop hands to its step hooks."""

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def before_step(self, batch_indices, inputs, targets) -> None:
        self.seen.append((batch_indices.clone(), inputs.clone()))

    def after_step(self) -> None:
        pass


def test_recorder_in_the_training_loop_reproduces_the_trained_outputs(tmp_path: Path):
    config = _config({"name": "sgd", "lr": 0.5, "momentum": 0.0})
    run = tmp_path / "run"
    queries = torch.as_tensor(load_dataset_or_make(), dtype=torch.float32)[:, None]
    rec = _RecorderProxy(queries)
    batches = _Batches()
    train(config, run, progress=False, step_hooks=[rec, batches])
    result = rec.recorder.result()
    trained, _ = load_model(run)
    model_0, _ = initial_model(run)
    with torch.no_grad():
        f_final = trained(queries)[:, 0, 16, 16]
        f_initial = model_0(queries)[:, 0, 16, 16]
    torch.testing.assert_close(result.final, f_final.to(result.final.dtype), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.initial, f_initial.to(result.initial.dtype), rtol=1e-5, atol=1e-6)
    total = result.initial + result.contributions.sum(1) + result.residual
    torch.testing.assert_close(total, result.final, rtol=0, atol=1e-6)
    assert result.relative_residual < 0.05  # ReLU kinks inside steps: small, not float-exact
    # 12 images, batch 4, 2 epochs: every example is attributed twice, with the loop's own indices
    b, _ = load_dataset(run / "data" / "train", "train")
    assert len(batches.seen) == 6
    for idx, x in batches.seen:
        np.testing.assert_array_equal(x[:, 0].numpy(), b[idx.numpy()].astype(np.float32))
    assert sorted(torch.cat([i for i, _ in batches.seen]).tolist()) == sorted(list(range(12)) * 2)


def test_recorder_refuses_a_ranger_run(tmp_path: Path):
    config = _config({"name": "ranger", "lr": 1e-3})
    rec = _RecorderProxy(torch.zeros(1, 1, 32, 32))
    with pytest.raises((RuntimeError, ValueError), match="SGD|sgd"):
        train(config, tmp_path / "run", progress=False, step_hooks=[rec])


def load_dataset_or_make() -> np.ndarray:
    from jordanlab.data import make

    return make("shapes-32", "test", 3, 0)[0]


class _RecorderProxy:
    """Builds the PathRecorder on the first step, when the loop's model and optimizer exist."""

    def __init__(self, queries: torch.Tensor) -> None:
        self.queries = queries
        self.recorder: PathRecorder | None = None

    def bind(self, model, optimizer) -> None:
        self.recorder = PathRecorder(model, self.queries, n_train=12, pixels=[(16, 16)] * len(self.queries),
                                     optimizer=optimizer)

    def before_step(self, batch_indices, inputs, targets) -> None:
        self.recorder.before_step(batch_indices, inputs, targets)

    def after_step(self) -> None:
        self.recorder.after_step()
