from pathlib import Path

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jordanlab.report.html import Section, markdown_table, write_report


def test_report_links_figures_relatively_and_flags_missing(tmp_path: Path):
    fig_path = tmp_path / "figs" / "a.png"
    fig_path.parent.mkdir()
    plt.imsave(fig_path, np.zeros((4, 4)))
    s = Section("Results").table([{"suite": "spiral", "perfect_rate": 0.25}], caption="c")
    s.figure(fig_path, "a figure").figure("figs/missing.png", "gone")
    page = write_report(tmp_path, "T", [s]).read_text()
    assert "src='figs/a.png'" in page
    assert "missing figure: figs/missing.png" in page
    assert "<td>spiral</td><td>0.25</td>" in page
    assert not list(tmp_path.glob("*.tmp"))


def test_markdown_table_columns_and_escaping():
    md = markdown_table([{"a": 1, "b": 0.5}, {"a": 2}], columns=["a", "b"])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.5 |", "| 2 |  |"]


TINY = """
description = "tiny run for the reproduce test"
[data]
preset = "shapes-32"
n_train = 16
n_val = 8
augment = false
seed = 0
[model]
name = "local-cnn"
[model.kwargs]
width = 4
depth = 2
norm = "none"
[optim]
name = "adam"
lr = 1e-2
[train]
epochs = 1
batch_size = 8
loss = "bce"
seed = 0
device = "cpu"
"""


def test_reproduce_pipeline_writes_report_and_does_not_redo_finished_steps(tmp_path: Path, monkeypatch):
    import json

    from jordanlab.report.reproduce import reproduce

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    monkeypatch.chdir(tmp_path)
    out = Path("out")  # relative, as `jordanlab reproduce --out runs/demo` passes it
    index = reproduce(out, plan=(("tiny", str(cfg)),), eval_n=4, kernels=False, progress=False)
    page = index.read_text()
    assert "missing figure" not in page and page.count("<img") >= 3
    ev = json.loads((out / "runs" / "tiny" / "eval.json").read_text())
    assert set(ev["suites"]) >= {"test", "spiral", "large-4x"}
    assert "share of pixel-perfect images per suite" in page and "gallery.png" in page and "compare.png" in page
    steps = {s["step"] for s in json.loads((out / "reproduce.json").read_text())["steps"]}
    assert steps == {"gallery", "train tiny", "eval tiny", "comparison figure"}
    mtime = (out / "runs" / "tiny" / "eval.json").stat().st_mtime_ns
    reproduce(out, plan=(("tiny", str(cfg)),), eval_n=4, kernels=False, progress=False)
    assert (out / "runs" / "tiny" / "eval.json").stat().st_mtime_ns == mtime
    assert "| spiral |" in (out / "summary.md").read_text()
