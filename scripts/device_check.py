"""Every CUDA path of jordanlab in one time-boxed run (issue 15): the driver behind ``device_check.sh``.

    python scripts/device_check.py [--small] [--out DIR] [--work DIR] [--budget SECONDS] [--stages a,b]

Stages, in this order (each in its own process, killed at its time box; a failed or killed stage is
recorded and the next one runs):

``env``
    torch, CUDA, device name, cuDNN, TF32 flags, CPU count, where jordanlab and pytorch_optimizer load from.
``cuda_tests``
    pytest on every test that is skipped without CUDA (``-k cuda`` in the test files that check
    ``torch.cuda.is_available()``); counts from the JUnit XML. With no GPU they are all skipped, and
    the stage says so.
``agreement``
    The same small config (``configs/quick-unet.toml`` on fewer images) trained on the CPU in float32
    and on CUDA three ways: float32 with TF32 off, float32 with PyTorch's defaults (cuDNN convolutions
    in TF32), and bf16 autocast + channels-last (the loop's CUDA default), 64 steps each. Reports,
    against the CPU run, the weight difference (max |dw| and where, and the relative L2 difference
    ||dw|| / ||w_T - w_0||), the mean IoU of each model's masks on 200 held-out images, the IoU between
    the CPU model's and the CUDA model's masks, and how many pixels the CUDA-trained model's masks
    change between CPU and CUDA inference. The tolerances (``TOLERANCES``) were fixed before any GPU
    run; a miss is a finding to report, not a bound to widen.
``fill``
    :func:`jordanlab.topology.fill` on a batch of B images of S² (64 x 1024² in full) on CUDA tensors
    (median of repeats, synchronized) against the CPU (numpy bit-packed path), in MPix/s, and the
    CUDA masks checked equal to the CPU's.
``depth``
    ``crossing-depth`` with hand-set exact costs (1 to leave a stroke for the background, 0 otherwise,
    as in ``tests/test_depth.py``) through :func:`jordanlab.evaluate.predict_masks` on textures-256
    test images and on 1024² canvases, CUDA against CPU: images/s, MPix/s, rounds, and the share of
    images equal to the exact fill.
``shapes128``
    ``jordanlab train configs/talk-shapes128-unet.toml --device cuda`` for its 150 epochs (the talk's
    experiment 1), wall time, epochs done and images/s against the README's CPU figure (150 epochs of
    1,115 images in 2 h 6 min on the 2 shared CPU cores). The run (config, metrics, newest
    checkpoint) comes back as ``shapes128-run.tar.000``, ``.001`` (see :func:`_pack_run`).
``textures256``
    ``jordanlab train configs/talk-textures256-unet.toml --device cuda``: one epoch, then a resumed
    run towards the talk's 150 epochs until the time left is spent (the training resumes from its
    checkpoints: rerunning the command continues it). Comes back as ``textures256-run.tar.000``, ``.001``
    (without ``data/``, which the same command regenerates bit-identically from the seed).

Every stage appends one JSON line to ``OUT/results.jsonl``; the driver writes ``OUT/summary.md``
(a table) at the end and prints it. ``--small`` shrinks every stage so that the whole check runs on
a CPU in about 2-3 minutes; on a machine without CUDA the "cuda" runs then use the CPU and are
labelled so (``cuda_stand_in``). Files under OUT: results.jsonl, summary.md, device_check.log and
the two run archives in two parts each: 7 files, about 63 MB (the device tool returns at most 8 files
of 16 MiB, 64 MiB in all).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]

#: The README's CPU figure for the talk's experiment 1: 150 epochs of 1,115 images in 2 h 6 min.
CPU_SHAPES128_SECONDS = 2 * 3600 + 6 * 60
CPU_SHAPES128_IMAGES = 150 * 1115

#: Tolerances of the agreement stage, fixed before any GPU run: (relative L2 weight difference, |IoU difference|).
#: rel_l2_dw = ||w_cuda - w_cpu|| / ||w_T - w_0|| over the parameters after the 64 steps (see _weight_difference).
#: Calibrated on a proxy, the CPU's own bf16 autocast forced into the loop (same config and seed): rel_l2_dw
#: 0.18 (the training trajectory drifts: a chaotic 64-step path, not an error per step) but |IoU difference|
#: 0.0009 and masks 99.5 % alike. float32 on CUDA differs from the CPU by summation order only (and TF32
#: rounding of cuDNN convolutions when allowed, 10 mantissa bits against bf16's 7).
TOLERANCES = {
    "fp32_strict": (1e-2, 0.005),
    "fp32_tf32": (0.1, 0.01),
    "bf16_amp": (0.5, 0.02),
}

#: Time boxes in seconds (full run, small run). The textures-256 stage takes what the budget leaves.
BOXES = {
    "env": (30, 30),
    "cuda_tests": (90, 60),
    "agreement": (90, 60),
    "fill": (45, 30),
    "depth": (45, 30),
    "shapes128": (220, 60),
    "textures256": (None, None),
}
STAGES = tuple(BOXES)
BUDGET = (480, 170)  # the whole driver, full and small (device_check.sh's own set-up comes on top)


# ----------------------------------------------------------------------------- helpers


def _device() -> tuple[str, bool]:
    """``("cuda", False)`` when CUDA is there, else ``("cpu", True)``: the CPU stands in."""
    import torch

    return ("cuda", False) if torch.cuda.is_available() else ("cpu", True)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls (CUDA synchronized)."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _append_line(out: Path, record: dict[str, Any]) -> None:
    """One JSON line in ``OUT/results.jsonl`` (a single write, flushed and synced)."""
    with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _jordanlab(args: list[str], *, timeout: float, log: Path) -> tuple[int | None, float]:
    """Run ``python -m jordanlab.cli ARGS`` in its own session; kill its process group at ``timeout``.

    Returns ``(returncode or None when killed, seconds)``. Output goes to ``log``.
    """
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(ROOT / "src"))
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ jordanlab {' '.join(args)}  (box {timeout:.0f} s)\n")
        fh.flush()
        proc = subprocess.Popen([sys.executable, "-m", "jordanlab.cli", *args], cwd=ROOT, env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        rc = _wait_or_kill(proc, timeout)
    return rc, time.perf_counter() - t0


def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> int | None:
    """Wait for ``proc``; at ``timeout`` end its process group (SIGTERM, then SIGKILL) and return None."""
    try:
        return proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        pass
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    return None


def _metrics(run: Path) -> list[dict[str, Any]]:
    f = run / "metrics.jsonl"
    if not f.is_file():
        return []
    return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


#: Largest file the device tool brings back is 16 MiB: run archives are cut into parts of this size.
PART_BYTES = 16_000_000


def _pack_run(run: Path, out: Path, stem: str) -> dict[str, Any]:
    """The run's config.toml, run.json, metrics.jsonl and newest good checkpoint as ``OUT/STEM.tar.NNN`` parts.

    A checkpoint of the talk's U-Net (1.95 M weights and Ranger's three buffers) is 31 MB and does not
    compress, so the (uncompressed) tar is cut into parts of :data:`PART_BYTES`; put it back with
    ``cat STEM.tar.* | tar x -C runs``.
    """
    import io

    from jordanlab.train import latest_good_checkpoint

    names = [p for p in ("config.toml", "run.json", "metrics.jsonl") if (run / p).is_file()]
    ckpt = latest_good_checkpoint(run)
    if ckpt is not None:
        names += [ckpt.name, ckpt.name + ".sha256"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            tar.add(run / name, arcname=f"{run.name}/{name}")
    blob = buf.getvalue()
    for old in out.glob(f"{stem}.tar.*"):
        old.unlink()
    parts = []
    for k, start in enumerate(range(0, len(blob), PART_BYTES)):
        part = out / f"{stem}.tar.{k:03d}"
        part.write_bytes(blob[start:start + PART_BYTES])
        parts.append(part.name)
    return {"files": names, "parts": parts, "bytes": len(blob), "restore": f"cat {stem}.tar.* | tar x -C runs"}


def _train_summary(run: Path, n_images: int, wall: float, epochs_before: int = 0) -> dict[str, Any]:
    """Epochs done and their timing from ``metrics.jsonl``.

    ``epoch_s_median``: the loop's own per-epoch seconds (training and validation, not the checkpoint
    write), median over epochs after the first; ``images_per_s``: training images over that;
    ``images_per_s_wall``: the epochs trained in this call over the whole wall time of the commands
    (process start, CUDA and data set-up, checkpoints included), the measure of the CPU figure.
    """
    m = _metrics(run)
    if not m:
        return {"epochs_done": 0}
    secs = [e["seconds"] for e in m]
    steady = secs[1:] if len(secs) > 1 else secs
    s_epoch = statistics.median(steady)
    last = m[-1]
    new = int(last["epoch"]) - epochs_before
    return {
        "epochs_done": int(last["epoch"]), "epochs_this_call": new, "wall_s": round(wall, 1),
        "epoch_s_first": round(secs[0], 3), "epoch_s_median": round(s_epoch, 3),
        "images_per_s": round(n_images / s_epoch, 1),
        "images_per_s_wall": round(new * n_images / wall, 1) if wall > 0 else None,
        "last": {k: last.get(k) for k in ("epoch", "loss", "train_iou", "val_iou", "val_perfect_rate")},
    }


# ----------------------------------------------------------------------------- stages


def stage_env(ctx: argparse.Namespace) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": sys.version.split()[0], "executable": sys.executable, "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }
    import jordanlab

    info["jordanlab"] = str(Path(jordanlab.__file__).parent)
    try:
        import pytorch_optimizer

        info["pytorch_optimizer"] = getattr(pytorch_optimizer, "__version__", "present")
    except ImportError as exc:
        info["pytorch_optimizer"] = f"MISSING ({exc}): every training stage (Ranger) will fail"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                    multiprocessors=p.multi_processor_count, cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported())
    return {"status": "ok", **info}


def _cuda_test_files() -> list[str]:
    """Test files holding a test skipped without CUDA."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                  if "torch.cuda.is_available()" in p.read_text(encoding="utf-8"))


def stage_cuda_tests(ctx: argparse.Namespace) -> dict[str, Any]:
    files = _cuda_test_files()
    xml = Path(ctx.work) / "cuda-tests.xml"
    xml.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", "cuda",
           f"--junitxml={xml}", *files]
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT / "src")))
    t0 = time.perf_counter()
    with open(Path(ctx.out) / "device_check.log", "a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd[1:]) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        rc = _wait_or_kill(proc, ctx.box - 5)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed: list[str] = []
    if xml.is_file():
        root = ET.parse(xml).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        if suite is not None:
            counts = {k: int(suite.get(k, 0)) for k in counts}
            for case in suite.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.append(f"{case.get('classname')}::{case.get('name')}")
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    import torch

    if rc is None:
        status = "timeout"
    elif counts["failures"] or counts["errors"] or rc not in (0, 5):
        status = "fail"
    elif not torch.cuda.is_available():
        status = "skipped (no CUDA)"
    else:
        status = "ok" if counts["skipped"] == 0 and passed > 0 else "fail"
    return {"status": status, "files": files, "passed": passed, **counts, "failed": failed,
            "rc": rc, "seconds": round(time.perf_counter() - t0, 1)}


def _agreement_config(ctx: argparse.Namespace, device: str, amp: bool) -> Any:
    from jordanlab.train import load_config

    # Full: 64 steps, where the CPU model reaches IoU 0.87 on the held-out images (after 16 it still
    # predicts no figure at all, and every run would agree trivially). Small: the code path only.
    n_train, epochs, n_val = (64, 1, 16) if ctx.small else (512, 4, 64)
    return load_config(ROOT / "configs" / "quick-unet.toml", [
        f"data.n_train={n_train}", f"data.n_val={n_val}", f"train.epochs={epochs}",
        f'train.device="{device}"', f"train.amp={'true' if amp else 'false'}",
    ])


def _weight_difference(ref: Any, other: Any, init: dict[str, Any]) -> dict[str, Any]:
    r"""How far ``other``'s parameters are from ``ref``'s, against how far training moved ``ref``.

    ``rel_l2_dw`` = :math:`\|w_{dev} - w_{cpu}\|_2 / \|w_{cpu,T} - w_0\|_2` over all parameters (buffers
    such as BatchNorm's running statistics left out); ``max_abs_dw`` = :math:`\max |w_{dev} - w_{cpu}|` and
    the parameter where it is largest.
    """
    import torch

    ref_p, other_p = dict(ref.named_parameters()), dict(other.named_parameters())
    diff = torch.cat([(ref_p[k] - other_p[k]).detach().flatten().double() for k in ref_p])
    moved = torch.cat([(ref_p[k] - init[k]).detach().flatten().double() for k in ref_p])
    worst = max(ref_p, key=lambda k: float((ref_p[k] - other_p[k]).detach().abs().max()))
    largest = float(diff.abs().max())
    return {"max_abs_dw": largest, "worst_tensor": worst if largest > 0 else "",
            "rel_l2_dw": float(diff.norm() / moved.norm()) if float(moved.norm()) > 0 else math.inf}


def _mask_iou(a: Any, b: Any) -> float:
    """Mean per-image IoU of two (N, H, W) {0, 1} mask stacks (1 where both are empty)."""
    import numpy as np

    a, b = a.astype(bool).reshape(len(a), -1), b.astype(bool).reshape(len(b), -1)
    inter, union = (a & b).sum(1), (a | b).sum(1)
    return float(np.where(union > 0, inter / np.maximum(union, 1), 1.0).mean())


def stage_agreement(ctx: argparse.Namespace) -> dict[str, Any]:
    import torch

    from jordanlab import data
    from jordanlab.evaluate import predict_masks
    from jordanlab.train import build_model, load_model, train

    dev, stand_in = _device()
    work = Path(ctx.work) / "agreement"
    n_eval = 32 if ctx.small else 200
    boundaries, masks = data.make("shapes-32", "test", n=n_eval, seed=1)
    variants = {"cpu_fp32": ("cpu", False, True), "fp32_strict": (dev, False, False),
                "fp32_tf32": (dev, False, True), "bf16_amp": (dev, True, True)}
    models: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for name, (device, amp, tf32) in variants.items():
        config = _agreement_config(ctx, device, amp)
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32 and saved[0]
        try:
            t0 = time.perf_counter()
            train(config, work / name, progress=False)
            seconds[name] = round(time.perf_counter() - t0, 2)
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        models[name], _ = load_model(work / name)
    ref = _agreement_config(ctx, "cpu", False)
    torch.manual_seed(ref.train.seed)  # the loop's initialisation (it seeds random/numpy too; build uses torch)
    init = {k: v.detach().clone() for k, v in build_model(ref.model).named_parameters()}
    ref_masks, _ = predict_masks(models["cpu_fp32"], boundaries, device="cpu")
    record: dict[str, Any] = {"cuda_stand_in": stand_in, "device": dev, "train_seconds": seconds,
                              "config": "configs/quick-unet.toml", "n_train": ref.data.n_train,
                              "epochs": ref.train.epochs, "batch_size": ref.train.batch_size,
                              "eval_images": f"shapes-32 test, seed 1, n={n_eval}",
                              "iou_cpu_vs_truth": round(_mask_iou(ref_masks, masks), 5), "variants": {}}
    ok = True
    for name in ("fp32_strict", "fp32_tf32", "bf16_amp"):
        dw = _weight_difference(models["cpu_fp32"], models[name], init)
        pred_cpu, _ = predict_masks(models[name], boundaries, device="cpu")
        pred_dev, _ = predict_masks(models[name], boundaries, device=dev)
        iou_truth = _mask_iou(pred_cpu, masks)
        tol_rel, tol_iou = TOLERANCES[name]
        d_iou = abs(iou_truth - record["iou_cpu_vs_truth"])
        passed = dw["rel_l2_dw"] <= tol_rel and d_iou <= tol_iou
        ok &= passed
        record["variants"][name] = {
            **dw,
            "iou_vs_truth": round(iou_truth, 5), "abs_iou_difference": round(d_iou, 5),
            "iou_masks_vs_cpu_model": round(_mask_iou(pred_cpu, ref_masks), 5),
            "inference_on_device_pixels_differing": int((pred_dev != pred_cpu).sum()),
            "tolerance": {"rel_l2_dw": tol_rel, "abs_iou_difference": tol_iou}, "pass": passed,
        }
    record["status"] = "ok" if ok else "fail"
    return record


def _fill_batch(ctx: argparse.Namespace) -> Any:
    """``(B, S, S)`` uint8 boundaries: the ``large-4x`` suite (one shape on a 4x canvas), S = 1024 in full."""
    from jordanlab import data

    n, size = (8, 256) if ctx.small else (64, 1024)
    b, _ = data.make("large-4x", "test", n=n, size=size // 4, workers=os.cpu_count())
    return b


def stage_fill(ctx: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from jordanlab.topology import fill

    dev, stand_in = _device()
    t0 = time.perf_counter()
    b = _fill_batch(ctx)
    gen_s = time.perf_counter() - t0
    mpix = b.size / 1e6
    ref = fill(b)
    cpu_s = _median_time(lambda: fill(b), repeats=3)
    record: dict[str, Any] = {"batch": list(b.shape), "generate_s": round(gen_s, 1),
                              "cpu_numpy_s": round(cpu_s, 4), "cpu_mpix_per_s": round(mpix / cpu_s, 1),
                              "cuda_stand_in": stand_in}
    tb = torch.from_numpy(b).to(dev)
    out = fill(tb)
    same = bool(np.array_equal(out.cpu().numpy(), ref))
    dev_s = _median_time(lambda: fill(tb), repeats=5, warmup=2)
    record.update({
        "device": dev, "device_s": round(dev_s, 5), "device_mpix_per_s": round(mpix / dev_s, 1),
        "speedup_vs_cpu_numpy": round(cpu_s / dev_s, 2), "device_equals_cpu": same,
        "status": "ok" if same else "fail",
    })
    return record


def _exact_depth_net() -> Any:
    """crossing-depth with the exact costs of ``tests/test_depth.py``: 1 to leave a stroke, 0 otherwise."""
    import torch

    from jordanlab.models import build

    net = build("crossing-depth")
    with torch.no_grad():
        net.table.fill_(-60.0)
        net.table[:, 1, 0] = 60.0  # predecessor on the stroke, pixel on the background
        net.head.weight.copy_(torch.tensor([10.0, -10.0, 0.0]).view(1, 3, 1, 1))
        net.head.bias.zero_()
    return net.eval()


def stage_depth(ctx: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from jordanlab import data
    from jordanlab.evaluate import predict_masks

    dev, stand_in = _device()
    net = _exact_depth_net()
    sets = {"textures-256": data.make("textures-256", "test", n=16 if ctx.small else 256, workers=os.cpu_count()),
            f"large-4x-{256 if ctx.small else 1024}": data.make("large-4x", "test", n=4 if ctx.small else 32, size=64 if ctx.small else 256,
                                       workers=os.cpu_count())}
    record: dict[str, Any] = {"cuda_stand_in": stand_in, "device": dev, "sets": {}}
    ok = True
    for name, (b, m) in sets.items():
        entry: dict[str, Any] = {"images": list(b.shape)}
        for where, bb in (("device", b), ("cpu", b[: max(2, len(b) // 8)])):
            device = dev if where == "device" else "cpu"
            if where == "cpu" and dev == "cpu":
                continue
            batch = 32 if b.shape[-1] <= 256 else 8
            predict_masks(net, bb[:batch], batch_size=batch, device=device)  # warm-up
            _sync()
            t = time.perf_counter()
            pred, rounds = predict_masks(net, bb, batch_size=batch, device=device)
            _sync()
            s = time.perf_counter() - t
            perfect = float((pred.reshape(len(bb), -1) == m[: len(bb)].reshape(len(bb), -1)).all(1).mean())
            ok &= perfect == 1.0
            entry[where] = {"n": len(bb), "seconds": round(s, 3), "images_per_s": round(len(bb) / s, 1),
                            "mpix_per_s": round(bb.size / 1e6 / s, 2), "perfect_rate": perfect,
                            "rounds_mean": round(float(np.mean(rounds)), 2), "rounds_max": int(np.max(rounds))}
        if "cpu" in entry:
            entry["speedup"] = round(entry["device"]["images_per_s"] / entry["cpu"]["images_per_s"], 1)
        record["sets"][name] = entry
    record["status"] = "ok" if ok else "fail"
    return record


def _train_args(ctx: argparse.Namespace, config: str, run: Path, epochs: int) -> list[str]:
    dev, _ = _device()
    workers = max(0, min(ctx.workers, (os.cpu_count() or 1) - 2)) if dev == "cuda" else 0
    args = ["train", config, "--out", str(run), "--device", dev, "--epochs", str(epochs), "--quiet",
            "--set", f"train.num_workers={workers}"]
    if ctx.small:  # a few images and the test split's first few: the same code path, seconds on a CPU
        n_train = 64 if "shapes128" in config else 32
        args += ["--set", f"data.n_train={n_train}", "--set", "data.n_val=8"]
    return args


def stage_shapes128(ctx: argparse.Namespace) -> dict[str, Any]:
    dev, stand_in = _device()
    run = Path(ctx.work) / ("talk-shapes128-unet-small" if ctx.small else "talk-shapes128-unet")
    epochs = 2 if ctx.small else 150
    rc, wall = _jordanlab(_train_args(ctx, "configs/talk-shapes128-unet.toml", run, epochs),
                          timeout=ctx.box - 20, log=Path(ctx.out) / "device_check.log")
    n_images = 64 if ctx.small else 1115
    record: dict[str, Any] = {"cuda_stand_in": stand_in, "device": dev, "epochs_planned": epochs, "rc": rc,
                              **_train_summary(run, n_images, wall)}
    cpu_ips = CPU_SHAPES128_IMAGES / CPU_SHAPES128_SECONDS
    if record.get("images_per_s_wall"):
        record["cpu_images_per_s_wall"] = round(cpu_ips, 1)
        record["speedup_vs_cpu"] = round(record["images_per_s_wall"] / cpu_ips, 1)
        record["estimated_150_epochs_wall_s"] = round(wall * 150 / max(1, record["epochs_this_call"]), 0)
    if run.is_dir():
        record["archived"] = _pack_run(run, Path(ctx.out), "shapes128-run")
    done = record.get("epochs_done", 0)
    record["status"] = "ok" if rc == 0 and done == epochs else ("timeout" if rc is None else "fail")
    return record


def stage_textures256(ctx: argparse.Namespace) -> dict[str, Any]:
    dev, stand_in = _device()
    run = Path(ctx.work) / ("talk-textures256-unet-small" if ctx.small else "talk-textures256-unet")
    log = Path(ctx.out) / "device_check.log"
    deadline = time.perf_counter() + ctx.box - 20
    before = len(_metrics(run))
    # First leg: one epoch (data generation, first checkpoint); second leg: resume towards the talk's 150.
    first_epochs = max(1, before + 1) if not ctx.small else 1
    rc1, wall1 = _jordanlab(_train_args(ctx, "configs/talk-textures256-unet.toml", run, first_epochs),
                            timeout=deadline - time.perf_counter(), log=log)
    record: dict[str, Any] = {"cuda_stand_in": stand_in, "device": dev, "epochs_before": before,
                              "first_leg": {"epochs": first_epochs, "rc": rc1, "wall_s": round(wall1, 1)}}
    rc2, wall2 = None, 0.0
    target = 2 if ctx.small else 150
    if rc1 == 0 and deadline - time.perf_counter() > 15:
        rc2, wall2 = _jordanlab(_train_args(ctx, "configs/talk-textures256-unet.toml", run, target),
                                timeout=deadline - time.perf_counter(), log=log)
        record["second_leg"] = {"epochs": target, "rc": rc2, "wall_s": round(wall2, 1), "resumed": True}
    n_images = 32 if ctx.small else 10000
    record.update(_train_summary(run, n_images, wall1 + wall2, epochs_before=before))
    if record.get("epoch_s_median"):
        record["estimated_150_epochs_h"] = round(150 * record["epoch_s_median"] / 3600, 2)
        record["epochs_per_hour"] = round(3600 / record["epoch_s_median"], 1)
    if run.is_dir():
        record["archived"] = _pack_run(run, Path(ctx.out), "textures256-run")
    record["resume_command"] = (
        "cat textures256-run.tar.* | tar x -C runs && jordanlab train configs/talk-textures256-unet.toml "
        f"--out runs/{run.name} --device cuda --set train.num_workers=8"
    )
    # Killed at the box is the plan for the second leg (the run resumes); a failure is a non-zero exit.
    if rc1 is None:
        record["status"] = "timeout"
    else:
        record["status"] = "ok" if rc1 == 0 and rc2 in (0, None) and record.get("epochs_done", 0) > before else "fail"
    return record


STAGE_FUNCTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "env": stage_env, "cuda_tests": stage_cuda_tests, "agreement": stage_agreement, "fill": stage_fill,
    "depth": stage_depth, "shapes128": stage_shapes128, "textures256": stage_textures256,
}


# ----------------------------------------------------------------------------- driver


def _run_child(ctx: argparse.Namespace) -> int:
    """``--stage NAME``: run one stage in this process and append its JSON line."""
    out = Path(ctx.out)
    t0 = time.perf_counter()
    try:
        if os.environ.get("DEVICE_CHECK_FAIL") == ctx.stage:  # for the driver's own test
            raise RuntimeError("forced failure (DEVICE_CHECK_FAIL)")
        record = STAGE_FUNCTIONS[ctx.stage](ctx)
    except Exception as exc:  # recorded; the driver goes on with the next stage
        record = {"status": "fail", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(limit=6)[-2000:]}
    record = {"stage": ctx.stage, "seconds": round(time.perf_counter() - t0, 1), "box_s": ctx.box,
              "small": ctx.small, **record}
    _append_line(out, record)
    return 0


def _rows(out: Path) -> list[dict[str, Any]]:
    f = out / "results.jsonl"
    if not f.is_file():
        return []
    return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


def _lines(out: Path) -> dict[str, dict[str, Any]]:
    """The newest result of each stage."""
    return {r["stage"]: r for r in _rows(out)}


def _headline(r: dict[str, Any]) -> str:
    """The stage's key numbers in one cell."""
    s = r.get("stage")
    if "error" in r:
        return r["error"][:160]
    if s == "env":
        return f"torch {r.get('torch')}, {r.get('device', 'no CUDA')}, {r.get('cpu_count')} CPUs"
    if s == "cuda_tests":
        return f"{r.get('passed')} passed, {r.get('failures')} failed, {r.get('errors')} errors, {r.get('skipped')} skipped"
    if s == "agreement":
        return "; ".join(f"{k}: rel L2 dw {v['rel_l2_dw']:.2g}, max|dw| {v['max_abs_dw']:.2g}, "
                         f"|dIoU| {v['abs_iou_difference']:.4f}"
                         f" ({'pass' if v['pass'] else 'FAIL'})" for k, v in r.get("variants", {}).items())
    if s == "fill":
        return (f"{r.get('batch')}: {r.get('device_mpix_per_s')} MPix/s on {r.get('device')} vs "
                f"{r.get('cpu_mpix_per_s')} on CPU ({r.get('speedup_vs_cpu_numpy')}x), equal: {r.get('device_equals_cpu')}")
    if s == "depth":
        parts = []
        for name, e in r.get("sets", {}).items():
            d = e.get("device", {})
            parts.append(f"{name}: {d.get('images_per_s')} img/s, perfect {d.get('perfect_rate')}"
                         + (f", {e['speedup']}x CPU" if "speedup" in e else ""))
        return "; ".join(parts)
    if s in ("shapes128", "textures256"):
        cell = (f"{r.get('epochs_done')} epochs ({r.get('wall_s')} s wall), {r.get('epoch_s_median')} s/epoch, "
                f"{r.get('images_per_s')} img/s ({r.get('images_per_s_wall')} over the wall time)")
        if "speedup_vs_cpu" in r:
            cell += f", {r['speedup_vs_cpu']}x the CPU's {r['cpu_images_per_s_wall']} img/s"
        if "estimated_150_epochs_h" in r:
            cell += f", 150 epochs ~ {r['estimated_150_epochs_h']} h"
        return cell
    return ""


def _summary(out: Path, order: list[str], total: float, small: bool) -> str:
    rows = _lines(out)
    lines = [f"# device check ({'small / dry run' if small else 'full'}), {total:.0f} s in all", "",
             "| stage | status | seconds | result |", "|---|---|---:|---|"]
    for name in order:
        r = rows.get(name, {"status": "missing", "seconds": "", "stage": name})
        lines.append(f"| {name} | {r.get('status')} | {r.get('seconds')} | {_headline(r)} |")
    text = "\n".join(lines) + "\n"
    tmp = out / ".summary.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out / "summary.md")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", default=os.environ.get("DEVICE_CHECK_SMALL") == "1",
                    help="shrink every stage (a CPU dry run of about 2-3 minutes); env DEVICE_CHECK_SMALL=1")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "device-check-out"),
                    help="results.jsonl, summary.md, device_check.log, run archives (default $OUT)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "device-check"), help="run directories and scratch")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all stages (default 500, small 170)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--workers", type=int, default=6,
                    help="DataLoader workers of the CUDA trainings (capped at CPUs - 2; 0 on a CPU)")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--box", type=float, default=60.0, help=argparse.SUPPRESS)
    ctx = ap.parse_args(argv)
    ctx.out, ctx.work = str(Path(ctx.out).resolve()), str(Path(ctx.work).resolve())
    Path(ctx.out).mkdir(parents=True, exist_ok=True)
    Path(ctx.work).mkdir(parents=True, exist_ok=True)
    if ctx.stage is not None:
        return _run_child(ctx)

    order = [s.strip() for s in ctx.stages.split(",") if s.strip()]
    unknown = [s for s in order if s not in STAGE_FUNCTIONS]
    if unknown:
        ap.error(f"--stages: unknown stage(s) {', '.join(unknown)}; valid: {', '.join(STAGES)}")
    budget = ctx.budget if ctx.budget is not None else BUDGET[1 if ctx.small else 0]
    out = Path(ctx.out)
    for own in ("results.jsonl", "device_check.log"):  # this driver's own files: each call starts afresh
        (out / own).unlink(missing_ok=True)
    t_start = time.perf_counter()
    for name in order:
        left = budget - (time.perf_counter() - t_start)
        fixed = BOXES[name][1 if ctx.small else 0]
        box = left if fixed is None else min(fixed, left)
        if box < 10:
            _append_line(out, {"stage": name, "status": "not run (budget spent)", "seconds": 0})
            continue
        print(f"[device_check] {name}: box {box:.0f} s", flush=True)
        n_before = len(_rows(out))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--box", f"{box:.1f}",
               "--out", str(out), "--work", ctx.work, "--workers", str(ctx.workers)] + (["--small"] if ctx.small else [])
        t0 = time.perf_counter()
        with open(out / "device_check.log", "a", encoding="utf-8") as fh:
            fh.write(f"\n===== stage {name} (box {box:.0f} s)\n")
            fh.flush()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            rc = _wait_or_kill(proc, box)
        if not any(r.get("stage") == name for r in _rows(out)[n_before:]):
            _append_line(out, {"stage": name, "status": "timeout" if rc is None else "fail",
                               "rc": rc, "seconds": round(time.perf_counter() - t0, 1), "box_s": round(box, 1),
                               "error": "the stage wrote no result (killed at its box, or crashed: see device_check.log)"})
        r = _lines(out)[name]
        print(f"[device_check] {name}: {r.get('status')} in {r.get('seconds')} s: {_headline(r)}", flush=True)
    print(_summary(out, order, time.perf_counter() - t_start, ctx.small), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
