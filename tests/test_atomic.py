from pathlib import Path

import pytest

from jordanlab._atomic import atomic_path, write_json, write_text


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_json_round_trip_and_creates_parents(tmp_path: Path):
    import json

    p = write_json(tmp_path / "d" / "x.json", {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}


def test_figures_also_as_vector_formats_on_request(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jordanlab._atomic import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "a.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    monkeypatch.setenv("JORDANLAB_FIGURE_FORMATS", "svg,pdf")
    save_figure(fig, tmp_path / "b.png")
    assert (tmp_path / "b.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "b.pdf").read_bytes().startswith(b"%PDF")
    monkeypatch.setenv("JORDANLAB_FIGURE_FORMATS", "eps")
    import pytest

    with pytest.raises(ValueError, match="unknown figure format"):
        save_figure(fig, tmp_path / "c.png")
    plt.close(fig)


def test_cli_figure_formats(tmp_path, monkeypatch, capsys):
    from jordanlab.cli import main

    monkeypatch.delenv("JORDANLAB_FIGURE_FORMATS", raising=False)
    assert main(["--figure-formats", "svg", "data", "gallery", "--out", str(tmp_path / "g.png"), "--per-name", "1"]) == 0
    assert (tmp_path / "g.svg").is_file()
    assert main(["--figure-formats", "gif", "data", "gallery", "--out", str(tmp_path / "h.png")]) == 2
    assert "unknown figure format" in capsys.readouterr().err
    import os

    assert "JORDANLAB_FIGURE_FORMATS" not in os.environ  # main() leaves the environment as it found it
