"""The CLI: thin wrappers, so these check wiring and error reporting end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jordanlab.cli import build_parser, main
from jordanlab.data import load_dataset
from jordanlab.topology import fill


def _square_png(path: Path, *, dark: bool = True, open_: bool = False) -> np.ndarray:
    b = np.zeros((20, 24), np.uint8)
    b[4, 5:15] = b[14, 5:15] = 1
    b[4:15, 5] = b[4:15, 14] = 1
    b[4, 5] = b[4, 14] = b[14, 5] = b[14, 14] = 0  # cut corners: a simple 8-curve
    if open_:
        b[9, 14] = 0
    img = np.where(b == 1, 0, 255) if dark else np.where(b == 1, 255, 0)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return b


def test_every_command_has_help(capsys):
    parser = build_parser()
    for argv in (["--help"], ["data", "make", "--help"], ["fill", "--help"], ["train", "--help"],
                 ["eval", "--help"], ["kernel", "verify", "--help"], ["reproduce", "--help"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 0
        assert "usage: jordanlab" in capsys.readouterr().out


def test_fill_png_round_trip(tmp_path: Path):
    b = _square_png(tmp_path / "in.png", dark=False)
    assert main(["fill", str(tmp_path / "in.png"), "--out", str(tmp_path / "out.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png")) > 0
    np.testing.assert_array_equal(out, fill(b).astype(bool))


def test_fill_open_curve_names_file_and_pixel(tmp_path: Path, capsys):
    _square_png(tmp_path / "open.png", open_=True)
    assert main(["fill", str(tmp_path / "open.png"), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "open.png" in err and "open" in err
    assert not (tmp_path / "o.png").exists()


def test_data_make_and_show(tmp_path: Path):
    out = tmp_path / "ds"
    assert main(["data", "make", "shapes-32", "--out", str(out), "--n", "6", "--workers", "1", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 6, "test": 6}
    b, m = load_dataset(out, "test")
    np.testing.assert_array_equal(m, fill(b))
    assert main(["data", "show", str(out), "--out", str(tmp_path / "g.png"), "--n", "4"]) == 0
    assert Image.open(tmp_path / "g.png").size[0] > 100


def test_unknown_preset_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["data", "make", "shapes-33", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset name 'shapes-33'" in err and "shapes-32" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("argv", "suites"),
    [([], None), (["--data", "D"], ()), (["--suites", "all", "--data", "D"], None),
     (["--suites", "spiral,thick", "--data", "D"], ["spiral", "thick"])],
)
def test_eval_suites_and_data_dirs(monkeypatch, tmp_path: Path, argv, suites):
    import jordanlab.evaluate as ev

    seen = {}

    def fake(run, **kw):
        seen.update(kw)
        return {"finished": True}

    monkeypatch.setattr(ev, "evaluate_run", fake)
    monkeypatch.setattr(ev, "format_table", lambda result: "")
    (tmp_path / "config.toml").write_text('[model]\nname = "unet"\n')  # a run directory
    assert main(["eval", str(tmp_path), *argv]) == 0
    assert seen["suites"] == suites
    assert list(seen["data_dirs"]) == (["D"] if "--data" in argv else [])
