"""Replay the user mistakes of issue 11 ("Runs you can trust") through the real CLI and print what happens.

    .venv/bin/python scripts/run_safety_scenarios.py            # a markdown table: scenario, exit code, what it says

Each scenario runs ``python -m jordanlab ...`` in a fresh temporary directory, as a user would, and
reports the exit code, the last line on stderr, and whether the user's files survived. The tests in
``tests/test_runs.py`` check the same behaviour; this script is what the closing note quotes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = """description = "safety scenario"
[data]
preset = "shapes-32"
n_train = 16
n_val = 4
[model]
name = "local-cnn"
kwargs = { width = 2, depth = 2, norm = "none" }
[optim]
name = "{optim}"
lr = {lr}
[train]
epochs = {epochs}
batch_size = 8
device = "cpu"
"""


def jl(*args: str, cwd: Path | None = None, check: bool = False) -> tuple[int, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "jordanlab", *args], capture_output=True, text=True, cwd=cwd, env=env)
    if check and p.returncode:
        raise RuntimeError(p.stderr)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    tail = lines[-1] if lines else ""
    if "Traceback" in p.stderr:
        tail = f"TRACEBACK ({len(lines)} lines): {tail}"
    return p.returncode, tail


def config(d: Path, *, optim: str = "adam", lr: float = 1e-3, epochs: int = 2, name: str = "tiny.toml") -> str:
    path = d / name
    path.write_text(TINY.replace("{optim}", optim).replace("{lr}", repr(lr)).replace("{epochs}", str(epochs)))
    return str(path)


def scenarios(d: Path) -> list[tuple[str, int, str, str]]:
    rows = []
    cfg = config(d)

    repo = d / "repo"
    (repo / "data" / "train").mkdir(parents=True)
    (repo / "data" / "train" / "labels.csv").write_text("x")
    code, line = jl("train", cfg, "--out", ".", "--quiet", cwd=repo)
    rows.append(("train --out . in a folder with data/train/labels.csv", code, line,
                 "labels.csv kept" if (repo / "data/train/labels.csv").exists() else "labels.csv DELETED"))

    mine = d / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    code, line = jl("data", "make", "shapes-32", "--n", "4", "--out", str(mine), "--overwrite", "--quiet")
    rows.append(("data make --overwrite into a user's folder", code, line,
                 "thesis.tex kept" if (mine / "thesis.tex").exists() else "thesis.tex DELETED"))

    run = d / "early"
    slow = config(d, epochs=400, name="slow.toml")
    p = subprocess.Popen([sys.executable, "-m", "jordanlab", "train", slow, "--out", str(run), "--quiet"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (run / "config.toml").exists():
        time.sleep(0.05)
    p.kill()
    p.wait()
    code, line = jl("train", slow, "--out", str(run), "--quiet", "--set", 'data.preset="shapes-64"',
                    "--set", "data.n_train=1000")
    rows.append(("rerun with another preset/n_train before the first checkpoint", code, line, ""))

    run = d / "done"
    jl("train", cfg, "--out", str(run), "--quiet", check=True)
    (run / "config.toml").rename(run / "config.bak")
    code, line = jl("train", cfg, "--out", str(run), "--quiet", "--set", "train.batch_size=4", "--set", "train.seed=1")
    rows.append(("config.toml deleted, rerun with another batch size and seed", code, line, ""))
    (run / "config.bak").rename(run / "config.toml")
    before = (run / "config.toml").read_text()
    code, line = jl("train", cfg, "--out", str(run), "--quiet", "--set", "optim.lr=0.01")
    rows.append(("train --set optim.lr=0.01 on a finished run", code, line,
                 "config.toml unchanged" if (run / "config.toml").read_text() == before else "config.toml REWRITTEN"))

    run = d / "partial"
    three = config(d, epochs=3, name="three.toml")
    jl("train", three, "--out", str(run), "--quiet", "--epochs", "1", check=True)  # constant schedule: epochs is safe
    jl("eval", str(run), "--suites", "multi-2", "--n", "4", "--quiet", check=True)
    first = json.loads((run / "eval.json").read_text())
    jl("train", three, "--out", str(run), "--quiet", check=True)
    jl("eval", str(run), "--suites", "multi-2", "--n", "4", "--quiet", check=True)
    second = json.loads((run / "eval.json").read_text())
    rows.append(("eval of epoch 1, training resumed to 3, eval again", 0,
                 f"eval.json: epoch {first['epoch']} -> {second['epoch']}, finished {second['finished']}",
                 "recomputed" if second["checkpoint_sha256"] != first["checkpoint_sha256"] else "STALE"))
    jl("eval", str(run), "--suites", "multi-2", "--n", "8", "--quiet", check=True)
    third = json.loads((run / "eval.json").read_text())
    rows.append(("eval --n 8 after --n 4", 0, f"suites {sorted(third['suites'])}, settings n={third['settings']['n']}",
                 "no mixing" if all(e["n"] == 8 for e in third["suites"].values()) else "MIXED"))
    ds = d / "x" / "test"
    jl("data", "make", "polygon", "--size", "32", "--n", "3", "--out", str(ds), "--workers", "1", "--quiet", check=True)
    jl("eval", str(run), "--suites", "test", "--data", str(ds), "--n", "8", "--quiet", check=True)
    fourth = json.loads((run / "eval.json").read_text())
    rows.append(("eval --data x/test beside the run's test suite", 0,
                 f"entries: {sorted(fourth['suites'])}", "test entry kept" if fourth["suites"]["test"]["n"] == 8 else "OVERWRITTEN"))

    moved = d / "moved"
    jl("data", "make", "shapes-32", "--n", "8", "--out", str(d / "own"), "--workers", "1", "--quiet", check=True)
    own_cfg = Path(cfg).read_text().replace('preset = "shapes-32"', f'preset = "shapes-32"\ndir = "{d / "own"}"')
    (d / "own.toml").write_text(own_cfg)
    jl("train", str(d / "own.toml"), "--out", str(moved), "--quiet", "--epochs", "1", check=True)
    (d / "own").rename(d / "own-elsewhere")
    code, line = jl("eval", str(moved), "--suites", "test", "--quiet")
    rows.append(("eval after the run's data.dir moved", code, line, ""))

    two = d / "two"
    p1 = subprocess.Popen([sys.executable, "-m", "jordanlab", "train", slow, "--out", str(two), "--quiet"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,  # Ctrl-C as in a terminal:
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while not list(two.glob("ckpt-*.pt.sha256")) and p1.poll() is None:  # inside the training loop
        time.sleep(0.1)
    code, line = jl("train", slow, "--out", str(two), "--quiet", "--set", "train.seed=1")
    code2, line2 = jl("train", slow, "--out", str(two), "--quiet")
    p1.send_signal(signal.SIGINT)
    _, err = p1.communicate()
    rows.append(("a second train into the same --out (other seed)", code, line, ""))
    rows.append(("a second train into the same --out (same config)", code2, line2, ""))
    lines = (err or b"").decode().strip().splitlines()
    rows.append(("Ctrl-C during train", p1.returncode, lines[-1] if lines else "(nothing)", ""))

    code, line = jl("train", config(d, optim="sgd", lr=1e30, name="wild.toml"), "--out", str(d / "wild"), "--quiet")
    rows.append(("SGD at lr 1e30", code, line, ""))

    for what, args in (
        ("data make into an existing dataset", ["data", "make", "shapes-32", "--n", "4", "--out", str(d / "own-elsewhere"), "--quiet"]),
        ("--set model.kwargs.widht=8", ["train", cfg, "--out", str(d / "w"), "--set", "model.kwargs.widht=8", "--quiet"]),
        ("--out under a file", ["train", cfg, "--out", str(d / "tiny.toml" / "run"), "--quiet"]),
        ("data make --n -5", ["data", "make", "shapes-32", "--n", "-5", "--out", str(d / "neg"), "--quiet"]),
    ):
        code, line = jl(*args)
        rows.append((what, code, line, ""))

    from PIL import Image

    Image.new("1", (10000, 10000)).save(d / "bomb.png")
    code, line = jl("fill", str(d / "bomb.png"), "--out", str(d / "o.png"))
    rows.append(("fill a decompression-bomb PNG (10,000^2 px, 12 kB)", code, line, ""))

    for what, edit in (
        ("manifest shard named ../../x/test-00000.npz", lambda m: m["files"].update({"../../x/test-00000.npz": m["files"].pop("test-00000.npz")})),
        ("manifest shard named ../../../../etc/passwd", lambda m: m["files"].update({"../../../../etc/passwd": m["files"].pop("test-00000.npz")})),
        ("manifest image_shape edited", lambda m: m.update(image_shape=[32, 30])),
        ("manifest counts of the wrong type", lambda m: m.update(counts={"test": "4"})),
    ):
        ds = d / f"m{len(rows)}"
        jl("data", "make", "spiral", "--size", "32", "--n", "4", "--out", str(ds), "--workers", "1", "--quiet", check=True)
        m = json.loads((ds / "manifest.json").read_text())
        edit(m)
        (ds / "manifest.json").write_text(json.dumps(m))
        code, line = jl("data", "show", str(ds), "--out", str(d / "g.png"))
        rows.append((what, code, line.replace(str(d), "$TMP"), ""))
    return [(w, c, ln.replace(str(d), "$TMP"), k) for w, c, ln, k in rows]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = scenarios(Path(tmp))
    print("| scenario | exit | what the user sees (last stderr line) | files |")
    print("|---|---:|---|---|")
    for what, code, line, kept in rows:
        print(f"| {what} | {code} | {line.replace('|', '/')} | {kept} |")


if __name__ == "__main__":
    main()
