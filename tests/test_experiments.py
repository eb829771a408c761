"""jordanlab.experiments: configs load strictly, old kernel names still resolve, and the layers stay ordered."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from jordanlab.experiments import ThesisConfig, VerifyRun, load_thesis_config, verify_plan

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "jordanlab"


def test_shipped_thesis_toml_is_the_default_config():
    assert load_thesis_config(ROOT / "configs" / "experiments" / "thesis.toml") == ThesisConfig()


def test_thesis_config_round_trips_through_a_plain_dict():
    cfg = ThesisConfig(n_train=8, suites=("nested",), networks=(("s", "scan", (("width", 2),)),), lr=0.01)
    raw = dataclasses.asdict(cfg)  # what thesis.json stores: networks as nested lists
    assert ThesisConfig.from_dict(raw) == cfg


@pytest.mark.parametrize("raw, key", [
    ({"n_trian": 8}, "n_trian"),
    ({"n_train": "8"}, "n_train"),
    ({"n_train": True}, "n_train"),
    ({"lr": -1.0}, "lr"),
    ({"cntk_gap": 1}, "cntk_gap"),
    ({"suites": ["nosuch"]}, "suites"),
    ({"suites": "nested"}, "suites"),
    ({"networks": [{"label": "a", "model": "nosuch"}]}, "networks"),
    ({"networks": [{"label": "a", "model": "unet", "widht": 2}]}, "networks"),
    ({"networks": [{"label": "a", "model": "unet"}, {"label": "a", "model": "scan"}]}, "networks"),
    ({"batch_size": 0}, "batch_size"),
])
def test_thesis_config_rejects_bad_keys_naming_them(raw, key):
    with pytest.raises(ValueError, match=key):
        ThesisConfig.from_dict(raw, source="x.toml")


def test_thesis_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("n_train = [")
    with pytest.raises(ValueError, match="bad.toml"):
        load_thesis_config(bad)
    bad.write_text("steps = 1.5\n")
    with pytest.raises(ValueError, match="bad.toml.*steps"):
        load_thesis_config(bad)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_thesis_config(tmp_path / "missing.toml")


def test_verify_plan_is_data_and_checks_its_fields():
    full = verify_plan()
    assert all(r.lr * r.steps == pytest.approx(2.0) for r in full if r.mode == "tangent")
    relu = {(r.optimizer, r.model, r.kinks) for r in full if r.model != "smooth"}
    assert {("gd", "local-cnn-relu", False), ("gd", "local-cnn-relu", True), ("gd", "unet-relu", True),
            ("adam", "local-cnn-relu", True), ("ranger", "local-cnn-relu", True), ("ranger", "unet-bn", True)} <= relu
    assert {r.optimizer for r in full if r.mode == "exact"} == {"gd", "sgd", "adam", "ranger"}
    assert not any(r.model != "smooth" for r in verify_plan(quick=True))
    with pytest.raises(ValueError, match="mode"):
        VerifyRun("flow", "gd", 0.1, "float64", 3)
    with pytest.raises(ValueError, match="steps"):
        VerifyRun("exact", "gd", 0.1, "float64", 0)
    with pytest.raises(ValueError, match="exact mode only"):
        VerifyRun("tangent", "ranger", 0.1, "float64", 3)
    with pytest.raises(ValueError, match="Ranger recorder only"):
        VerifyRun("exact", "adam", 0.1, "float64", 3, model="unet-bn", kinks=True)


def test_old_kernel_names_resolve_lazily_without_importing_experiments_first():
    code = ("import sys, jordanlab.kernels as k; assert 'jordanlab.experiments' not in sys.modules; "
            "from jordanlab.kernels import verify, explain_run, initial_model; import jordanlab.experiments as e; "
            "assert verify is e.verify and explain_run is e.explain_run and initial_model is e.initial_model; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "ok"
    import jordanlab.kernels as k

    with pytest.raises(AttributeError, match="no_such_name"):
        k.no_such_name  # noqa: B018


#: The packages from the bottom up: each may import only those before it (``_atomic``/``_seeds``/``_owned`` anywhere).
LAYERS = ["curves", "topology", "data", "models", "train", "evaluate", "kernels", "experiments", "report", "cli"]


def _imports(path: Path) -> set[str]:
    """The top-level jordanlab packages ``path`` imports (absolute, ``from jordanlab import x``, or ``from ..x``)."""
    names = set()
    package = ("jordanlab", *path.relative_to(SRC).parts[:-1])  # ("jordanlab", "kernels") for kernels/path.py
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names |= {mod} if mod.count(".") >= 1 else {f"{mod}.{a.name}" for a in node.names}
    return {n.split(".")[1] for n in names if n.startswith("jordanlab.")}


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_lower_layers_never_import_higher_ones(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | {"_atomic", "_seeds", "_owned"}
    if layer == "topology":
        allowed.discard("curves")  # the exact fill stands alone (curves only in its tests)
    bad = {}
    for path in sorted((SRC / layer).rglob("*.py")):
        if extra := _imports(path) - allowed:
            bad[str(path.relative_to(SRC))] = sorted(extra)
    assert not bad, bad


def test_parity_scan_picks_the_deepest_pixel_of_its_label():
    import numpy as np

    from jordanlab.experiments.parity_scan import pick, row_depth

    # nested rings in one row: 0 1 1 0 0 1 1 0 0 1 1 0 (outer ring, hole, inner figure ...)
    mask = np.zeros((5, 13), np.uint8)
    mask[1:4, 1:12] = 1
    mask[2, 3:10] = 0
    mask[2, 5:8] = 1
    boundary = np.zeros_like(mask)
    boundary[2, 0] = 1  # ties among the deepest pixels go to the one farthest from the curve
    assert row_depth(mask)[2, 6] == 3 and row_depth(mask)[2, 4] == 2
    assert pick(boundary, mask, 1, "depth") == (2, 7)
    assert pick(boundary, mask, 1, "far") == (1, 11)  # first of the two corners sqrt(122) away
    r, c = pick(boundary, mask, 0, "depth")
    assert mask[r, c] == 0 and row_depth(mask)[r, c] == 2
    with pytest.raises(ValueError, match="rule"):
        pick(boundary, mask, 0, "deep")


def test_thick_families_scores_a_tiny_run(tmp_path):
    import json

    from jordanlab.experiments import thick_families
    from jordanlab.experiments.thick import thick_set
    from jordanlab.topology import fill
    from jordanlab.train import config_from_dict, config_to_dict, load_config, train

    b, m = thick_set("nested", 32, 2, seed=0)
    assert all((fill(bi) == mi).all() for bi, mi in zip(b, m))  # the exact fill labels the thick strokes
    cfg = config_to_dict(load_config(ROOT / "configs" / "quick-local-cnn.toml"))
    cfg["data"].update(n_train=4, n_val=0)
    cfg["model"]["kwargs"] = {"width": 2, "depth": 1, "norm": "none"}
    cfg["train"].update(epochs=1, batch_size=4, device="cpu")
    run = tmp_path / "run"
    train(config_from_dict(cfg, source="test"), run, progress=False)
    rep = thick_families([run], tmp_path / "out", n=2, families=(("nested", 32),), log=lambda s: None)
    assert json.loads((tmp_path / "out" / "thick-families.json").read_text()) == json.loads(json.dumps(rep))
    entry = rep["results"][str(run)]["thick nested 32²"]
    assert 0.0 <= entry["perfect"] <= 1.0 and rep["n"] == 2


def test_kernel_cli_reports_bad_experiment_input_in_one_line(tmp_path, capsys):
    from jordanlab.cli import main

    bad = tmp_path / "thesis.toml"
    bad.write_text("n_trian = 3\n")
    assert main(["kernel", "thesis", "--config", str(bad), "--out", str(tmp_path / "t"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "n_trian" in err and "thesis.toml" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text('[data]\npreset = "shapes-32"\n[model]\nname = "unet"\n')
    for argv in (["--image", "spiral:x", "--pixel", "1,2"], ["--image", "0", "--pixel", "1"]):
        assert main(["kernel", "explain-adam", str(tmp_path / "run"), *argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert ("spec" in err or "--pixel" in err) and len(err.strip().splitlines()) == 1, err
    for k in ("0", "-1"):  # refused at once, not after the replay (it used to train the whole run first)
        assert main(["kernel", "explain-adam", "unet", "--image", "0", "--pixel", "1,2", "--k", k,
                     "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "k must be a positive int" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
