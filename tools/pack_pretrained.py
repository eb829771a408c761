"""Pack finished quick runs into ``src/jordanlab/models/pretrained/NAME/`` (maintainers only).

    python tools/pack_pretrained.py NAME=RUN_DIR[,RETRAIN_DIR] ...
    python tools/pack_pretrained.py --rescore NAME ...   # same weights, inference changed: measure again

``RUN_DIR`` is a finished ``jordanlab train configs/quick-NAME.toml`` run, evaluated with
``jordanlab eval RUN_DIR --n 20``. ``RETRAIN_DIR``, a second training of the same config with
``--set train.keep_checkpoints=1000``, must end with bit-identical weights (else this stops); its
first-epoch checkpoint gives the weight hash the tests recompute by training one epoch.

Writes, per model: config.toml, metrics.jsonl, run.json, eval.json (copied), the final checkpoint
re-saved by ``jordanlab.train.save_checkpoint`` without the optimizer state, check.json (per-image
scores and mask hashes of the first CHECK_IMAGES images of every suite); then MANIFEST.json.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jordanlab._atomic import write_json  # noqa: E402
from jordanlab.evaluate import evaluate_model  # noqa: E402
from jordanlab.evaluate.suites import TEST_SUITE, run_canvas  # noqa: E402
from jordanlab.models import count_parameters  # noqa: E402
from jordanlab.models.pretrained import MANIFEST, weights_sha256  # noqa: E402
from jordanlab.train import latest_good_checkpoint, list_checkpoints, load_checkpoint, load_model, save_checkpoint  # noqa: E402

DEST = ROOT / "src" / "jordanlab" / "models" / "pretrained"
CHECK_IMAGES = 3
COPIED = ("config.toml", "metrics.jsonl", "run.json", "eval.json")


def check_images(model, config, suites: list[str]) -> dict:
    """Per-image IoU / perfect / mask SHA-256 (and iterations) of the first CHECK_IMAGES images per suite."""
    out = {}
    canvas = run_canvas(config)
    for name in suites:
        if name == TEST_SUITE:
            r = evaluate_model(model, suites=[config.data.preset], canvas=canvas, n=CHECK_IMAGES,
                               seed=config.data.seed, per_image=True)["suites"][config.data.preset]
        else:
            r = evaluate_model(model, suites=[name], canvas=canvas, n=CHECK_IMAGES, per_image=True)["suites"][name]
        out[name] = r["images"]
    return out


def pack(name: str, run: Path, retrain: Path | None) -> dict:
    dest = DEST / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in COPIED:
        shutil.copyfile(run / f, dest / f)
    ckpt_path = latest_good_checkpoint(run)
    ev = json.loads((run / "eval.json").read_text())
    if ev["checkpoint"] != ckpt_path.name:
        raise SystemExit(f"{run}/eval.json scores {ev['checkpoint']}, not the final {ckpt_path.name}")
    ckpt = load_checkpoint(ckpt_path)
    model, config = load_model(run, checkpoint=ckpt_path)
    save_checkpoint(dest, config=config, model=model, optimizer=None, epoch=ckpt["epoch"], step=ckpt["step"],
                    metrics=ckpt["metrics"], rng=ckpt["rng"])
    check = {"images_per_suite": CHECK_IMAGES, "suites": check_images(model, config, list(ev["suites"])),
             "final_weights_sha256": weights_sha256(ckpt["model"])}
    if retrain is not None:
        re_final = load_checkpoint(latest_good_checkpoint(retrain))
        if weights_sha256(re_final["model"]) != check["final_weights_sha256"]:
            raise SystemExit(f"{retrain} did not reproduce the weights of {run}: training is not deterministic here")
        first = dict(list_checkpoints(retrain))[1]
        check["epoch1_weights_sha256"] = weights_sha256(load_checkpoint(first)["model"])
        check["retrained_identical"] = True
    from jordanlab.models.pretrained import platform

    check["platform"] = {**platform(), "num_threads": 1}
    write_json(dest / "check.json", check)
    for p in dest.iterdir():
        p.chmod(0o644)
    files = {p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
             for p in sorted(dest.iterdir()) if p.is_file()}
    return {"config": f"configs/quick-{name}.toml", "checkpoint": ckpt_path.name,
            "parameters": count_parameters(model), "bytes": sum(f["bytes"] for f in files.values()), "files": files}


def rescore(name: str) -> dict:
    """Recompute a shipped model's eval.json (20 images per suite) and check.json scores with today's inference.

    For a change of inference that keeps the weights (e.g. crossing-depth's exact fixed point, whose rounds
    differ from the sweeps'): the checkpoint and its weight hashes stay; the scores are measured again.
    """
    import tempfile

    from jordanlab.evaluate import evaluate_run

    dest = DEST / name
    check = json.loads((dest / "check.json").read_text())
    model, config = load_model(dest)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / name
        shutil.copytree(dest, copy)
        (copy / "eval.json").unlink()
        ev = evaluate_run(copy, n=20, figures=False, progress=False)
    write_json(dest / "eval.json", ev)
    check["suites"] = check_images(model, config, list(ev["suites"]))
    write_json(dest / "check.json", check)
    for p in dest.iterdir():
        p.chmod(0o644)
    manifest = json.loads((DEST / MANIFEST).read_text())["models"][name]
    manifest["files"] = {p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
                         for p in sorted(dest.iterdir()) if p.is_file()}
    manifest["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    return manifest


def main(argv: list[str]) -> None:
    manifest_path = DEST / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": {}}
    if argv[:1] == ["--rescore"]:
        for name in argv[1:]:
            manifest["models"][name] = rescore(name)
            print(f"{name}: rescored")
        write_json(manifest_path, manifest)
        return
    for item in argv:
        name, _, dirs = item.partition("=")
        run, _, retrain = dirs.partition(",")
        manifest["models"][name] = pack(name, Path(run), Path(retrain) if retrain else None)
        print(f"{name}: {manifest['models'][name]['bytes']} bytes, {manifest['models'][name]['parameters']} parameters")
    manifest["models"] = dict(sorted(manifest["models"].items()))
    write_json(manifest_path, manifest)


if __name__ == "__main__":
    main(sys.argv[1:])
