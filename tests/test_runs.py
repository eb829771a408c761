"""Runs you can trust: the run directory's owner (jordanlab.train.run.Run) against a user's mistakes.

Each test is one reproduction of issue 11, driven through the CLI where a user would meet it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from jordanlab.cli import main
from jordanlab.train import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig, config_to_toml
from jordanlab.train.run import Run, RunError, config_diff, config_identity

TINY = Config(
    description="runs test",
    data=DataConfig(preset="shapes-32", n_train=16, n_val=4, seed=0),
    model=ModelConfig(name="local-cnn", kwargs={"width": 2, "depth": 2, "norm": "none"}),
    optim=OptimConfig(name="adam", lr=1e-3),
    train=TrainConfig(epochs=2, batch_size=8, seed=0, device="cpu"),
)


def _config_file(tmp_path: Path, config: Config = TINY, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(config_to_toml(config))
    return path


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def _one_error_line(capsys) -> str:
    lines = [line for line in _err(capsys).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_train_never_deletes_a_users_file(tmp_path, capsys, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "data" / "train").mkdir(parents=True)
    (repo / "data" / "train" / "labels.csv").write_text("x")
    monkeypatch.chdir(repo)
    assert main(["train", str(_config_file(tmp_path)), "--out", ".", "--quiet"]) == 2
    assert "did not create" in _one_error_line(capsys)
    assert (repo / "data" / "train" / "labels.csv").read_text() == "x"
    # inside a run directory jordanlab made, a user's folder in data/train is still refused
    run = tmp_path / "run"
    run.mkdir()
    (run / ".jordanlab").write_text('{"kind": "run"}')
    (run / "data" / "train").mkdir(parents=True)
    (run / "data" / "train" / "mine.txt").write_text("y")
    assert main(["train", str(_config_file(tmp_path)), "--out", str(run), "--quiet"]) == 2
    assert "not a dataset directory written by jordanlab" in _one_error_line(capsys)
    assert (run / "data" / "train" / "mine.txt").read_text() == "y"


def test_data_make_overwrite_only_replaces_a_dataset(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    assert main(["data", "make", "shapes-32", "--n", "4", "--out", str(mine), "--overwrite", "--quiet"]) == 2
    assert "not a dataset directory written by jordanlab" in _one_error_line(capsys)
    assert (mine / "thesis.tex").read_text() == "keep"
    ds = tmp_path / "ds"
    assert main(["data", "make", "shapes-32", "--n", "4", "--out", str(ds), "--workers", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["data", "make", "shapes-32", "--n", "4", "--out", str(ds), "--workers", "1", "--quiet"]) == 2
    assert "pass --overwrite" in _one_error_line(capsys)
    assert main(["data", "make", "shapes-32", "--n", "-5", "--out", str(tmp_path / "neg"), "--quiet"]) == 2
    assert "n must be an integer >= 1, got -5" in _one_error_line(capsys)
    assert not (tmp_path / "neg").exists()


def test_a_changed_config_is_refused_before_the_first_checkpoint_too(tmp_path, capsys):
    run = tmp_path / "run"
    Run.for_training(run, TINY)  # nothing written yet
    with Run.for_training(run, TINY).lock():
        Run.for_training(run, TINY).begin({})  # as a run stopped before its first checkpoint leaves it
    assert not Run.open(run).checkpoints()
    cfg = _config_file(tmp_path)
    argv = ["train", str(cfg), "--out", str(run), "--quiet", "--set", 'data.preset="shapes-64"',
            "--set", "data.n_train=1000"]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "data.n_train: 16 -> 1000" in line and "data.preset: 'shapes-32' -> 'shapes-64'" in line


def test_the_checkpoints_config_is_compared_when_config_toml_is_gone(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _config_file(tmp_path)
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--epochs", "1"]) == 0
    (run / "config.toml").unlink()
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--set", "train.batch_size=4",
                 "--set", "train.seed=1"]) == 2
    line = _one_error_line(capsys)
    assert "its newest checkpoint differs" in line and "train.batch_size: 8 -> 4" in line and "train.seed: 0 -> 1" in line


def test_a_finished_run_refuses_a_new_lr_and_keeps_its_config(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _config_file(tmp_path)
    assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 0
    before = (run / "config.toml").read_text()
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--set", "optim.lr=0.01"]) == 2
    assert "optim.lr: 0.001 -> 0.01" in _one_error_line(capsys)
    assert (run / "config.toml").read_text() == before
    # keys documented as safe (device, workers, more epochs of a constant schedule) resume the same run
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--epochs", "3", "--device", "cpu"]) == 0
    assert Run.open(run).status() == {"epochs_done": 3, "epochs_planned": 3, "finished": True,
                                      "checkpoint": "ckpt-000003.pt"}


def test_identity_ignores_only_the_documented_keys():
    same = Config(description="other words", data=TINY.data, model=TINY.model, optim=TINY.optim,
                  train=TrainConfig(**{**TINY.train.__dict__, "device": "cuda", "num_workers": 4, "epochs": 9}))
    assert config_identity(same) == config_identity(TINY) and config_diff(TINY, same) == []
    cosine = OptimConfig(name="adam", lr=1e-3, schedule="cosine")
    a = Config(data=TINY.data, model=TINY.model, optim=cosine, train=TINY.train)
    b = Config(data=TINY.data, model=TINY.model, optim=cosine,
               train=TrainConfig(**{**TINY.train.__dict__, "epochs": 9}))
    assert config_diff(a, b) == ["train.epochs: 2 -> 9"]  # the cosine rate depends on the total steps


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, time; from jordanlab.train.run import Run; from jordanlab.train import Config;"
            "r = Run.for_training(sys.argv[1], Config());\n"
            "with r.lock():\n    print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=rf"being written by another jordanlab process \(pid {holder.pid}\)"):
            with Run.for_training(run, Config()).lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with Run.for_training(run, Config()).lock():  # a dead holder's lock is free again
        pass


def test_eval_of_an_unfinished_run_is_redone_when_it_finishes(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _config_file(tmp_path)
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--epochs", "1"]) == 0
    assert main(["eval", str(run), "--suites", "multi-2", "--n", "2", "--quiet"]) == 0
    assert "is epoch 1 of 1" not in capsys.readouterr().out
    first = json.loads((run / "eval.json").read_text())
    assert first["finished"] and first["epoch"] == 1
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--epochs", "2"]) == 0
    assert Run.open(run).status()["finished"]
    from jordanlab.evaluate import stale_suites

    assert stale_suites(run, suites=["multi-2"], n=2) == ["multi-2"]  # the checkpoint changed
    assert main(["eval", str(run), "--suites", "multi-2", "--n", "2", "--quiet"]) == 0
    second = json.loads((run / "eval.json").read_text())
    assert second["epoch"] == 2 and second["checkpoint_sha256"] != first["checkpoint_sha256"]


def test_eval_says_when_the_run_is_unfinished(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _config_file(tmp_path, Config(description="x", data=TINY.data, model=TINY.model, optim=TINY.optim,
                                         train=TrainConfig(**{**TINY.train.__dict__, "epochs": 3})))
    from jordanlab.train import load_config, train

    class Stop(Exception):
        pass

    def stop_after_first(epoch, metrics):
        raise Stop

    with pytest.raises(Stop):
        train(load_config(cfg), run, progress=False, callbacks=[stop_after_first])
    assert main(["eval", str(run), "--suites", "spiral", "--n", "2", "--quiet"]) == 0
    assert "is epoch 1 of 3: the run is unfinished" in capsys.readouterr().out
    assert json.loads((run / "eval.json").read_text())["finished"] is False


def test_leftovers_of_interrupted_writes_are_cleaned_under_the_lock(tmp_path):
    run = tmp_path / "run"
    cfg = _config_file(tmp_path)
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--epochs", "1"]) == 0
    (run / ".ckpt-000002.pt.ab12cd34.tmp").write_bytes(b"half")  # as mkstemp names an interrupted write
    (run / ".eval.json.x1y2z3w4.tmp.json").write_text("{")
    (run / ".my.tmp").write_text("a user's hidden file: not one of jordanlab's temporaries")
    (run / "ckpt-000009.pt.sha256").write_text("0" * 64)
    (run / "notes.md").write_text("mine")
    assert main(["train", str(cfg), "--out", str(run), "--quiet", "--epochs", "2"]) == 0
    names = sorted(p.name for p in run.iterdir())
    assert ".ckpt-000002.pt.ab12cd34.tmp" not in names and ".eval.json.x1y2z3w4.tmp.json" not in names
    assert "ckpt-000009.pt.sha256" not in names and "notes.md" in names and ".my.tmp" in names


def _tiny_cli(tmp_path: Path, *argv: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    # A shell that runs this suite in the background starts it with SIGINT ignored, and children inherit that:
    # restore the default so the child's Python turns Ctrl-C into KeyboardInterrupt as in a terminal.
    return subprocess.Popen([sys.executable, "-m", "jordanlab", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def test_ctrl_c_during_train_says_how_to_resume(tmp_path):
    slow = Config(description="x", data=DataConfig(preset="shapes-32", n_train=64, n_val=0),
                  model=TINY.model, optim=TINY.optim, train=TrainConfig(epochs=500, batch_size=4, device="cpu"))
    run = tmp_path / "run"
    proc = _tiny_cli(tmp_path, "train", str(_config_file(tmp_path, slow)), "--out", str(run), "--quiet")
    deadline = time.time() + 180  # a loaded CI machine: data, imports and the first epoch
    while not list(run.glob("ckpt-*.pt.sha256")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list(run.glob("ckpt-*.pt.sha256")), "no epoch finished in time"  # now inside the training loop
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["jordanlab train: interrupted; rerun the same command to resume"]


def test_killed_data_make_leaves_no_workers(tmp_path):
    proc = _tiny_cli(tmp_path, "data", "make", "textures-256", "--n", "400", "--workers", "2",
                     "--out", str(tmp_path / "ds"), "--quiet")
    children: set[int] = set()
    deadline = time.time() + 30
    while len(children) < 2 and time.time() < deadline:
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            children |= {int(c) for c in (task / "children").read_text().split()}
        time.sleep(0.1)
    assert len(children) >= 2, "the pool did not start"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(Path(f"/proc/{c}").exists() and _state(c) != "Z" for c in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if Path(f"/proc/{c}").exists() and _state(c) != "Z"]
    assert not (tmp_path / "ds").exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["files"].update({"../../x/test-00000.npz": m["files"].pop("test-00000.npz")}),
     "shard name '../../x/test-00000.npz' is not a plain .npz file name"),
    (lambda m: m["files"].update({"/etc/passwd.npz": m["files"].pop("test-00000.npz")}),
     "shard name '/etc/passwd.npz' is not a plain .npz file name"),
    (lambda m: m.update(image_shape=[32, 30]), "key 'image_shape' is [32, 30] but the spec's canvas is 32x32"),
    (lambda m: m.update(image_shape="32x32"), "key 'image_shape' must be a list [H, W]"),
    (lambda m: m.update(counts={"test": "4"}), "key 'counts' must be an object"),
    (lambda m: m["files"]["test-00000.npz"].update(count=3), "split 'test' counts 4 images but its shards hold 3"),
    (lambda m: m.update(files=[]), "key 'files' must be an object"),
])
def test_a_malformed_manifest_is_one_line_naming_the_key(tmp_path, capsys, edit, message):
    ds = tmp_path / "ds"
    assert main(["data", "make", "spiral", "--size", "32", "--n", "4", "--out", str(ds), "--workers", "1", "--quiet"]) == 0
    manifest = json.loads((ds / "manifest.json").read_text())
    edit(manifest)
    (ds / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["data", "show", str(ds), "--out", str(tmp_path / "g.png")]) == 2
    line = _one_error_line(capsys)
    assert message in line and str(ds / "manifest.json") in line
    assert not (tmp_path / "g.png").exists()


def test_a_cropped_image_shape_is_caught_in_the_shards(tmp_path):
    from jordanlab.data import DatasetError, load_dataset, write_dataset

    ds = write_dataset("spiral", tmp_path / "ds", size=32, n=4, workers=1, progress=False)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["image_shape"] = [30, 30]
    manifest["spec"]["size"] = 30  # edited consistently: the shards still hold 32 x 32 images
    (ds / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"'boundaries' has shape \(4, 32, 4\).*need \(4, 30, 4\)"):
        load_dataset(ds, "test")


def test_bad_shards_and_pngs_are_one_line(tmp_path, capsys):
    ds = tmp_path / "ds"
    assert main(["data", "make", "spiral", "--size", "32", "--n", "2", "--out", str(ds), "--workers", "1", "--quiet"]) == 0
    shard = ds / "test-00000.npz"
    shard.write_bytes(b"not a zip")
    manifest = json.loads((ds / "manifest.json").read_text())
    import hashlib

    manifest["files"]["test-00000.npz"]["sha256"] = hashlib.sha256(b"not a zip").hexdigest()
    (ds / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["data", "show", str(ds), "--out", str(tmp_path / "g.png")]) == 2
    assert "is not a readable .npz file" in _one_error_line(capsys)
    # decompression bombs: 1-bit PNGs of a few kB that claim 10,000^2 and 20,000^2 pixels
    from PIL import Image

    for side, message in ((10000, "10000x10000 pixels is more than jordanlab reads"),
                          (20000, "the image is too large to read safely (a decompression bomb?)")):
        Image.new("1", (side, side)).save(tmp_path / "bomb.png")
        assert main(["fill", str(tmp_path / "bomb.png"), "--out", str(tmp_path / "o.png")]) == 2
        assert f"bomb.png: {message}" in _one_error_line(capsys)


def test_unknown_model_keyword_and_unwritable_out_are_one_line(tmp_path, capsys):
    cfg = _config_file(tmp_path)
    assert main(["train", str(cfg), "--out", str(tmp_path / "r"), "--set", "model.kwargs.widht=8", "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert "config key 'model.kwargs'" in line and "widht" in line
    assert not (tmp_path / "r").exists()
    (tmp_path / "file.txt").write_text("")
    assert main(["train", str(cfg), "--out", str(tmp_path / "file.txt" / "run"), "--quiet"]) == 2
    assert "file.txt" in _one_error_line(capsys)
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(["train", str(cfg), "--out", str(locked / "run"), "--quiet"]) == 2
        assert "Permission denied" in _one_error_line(capsys)
    finally:
        locked.chmod(0o700)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset name"):
        main(["--debug", "data", "make", "nope", "--out", str(tmp_path / "x")])


def test_version_and_python_dash_m(tmp_path):
    import jordanlab

    out = subprocess.run([sys.executable, "-m", "jordanlab", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"jordanlab {jordanlab.__version__}"


def test_initial_model_is_the_loops_w0(tmp_path):
    from jordanlab.train import train

    seen = {}

    class Grab:
        def bind(self, model, optimizer):
            seen["w0"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

        def before_step(self, *a):
            pass

        def after_step(self):
            pass

    train(TINY, tmp_path / "run", progress=False, step_hooks=[Grab()])
    w0 = Run.open(tmp_path / "run").initial_model().state_dict()
    assert all(torch.equal(w0[k], seen["w0"][k]) for k in w0)
