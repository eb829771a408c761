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
