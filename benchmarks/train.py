"""Training-loop throughput against the model's raw step, in one run.

    .venv/bin/python benchmarks/train.py [--model unet] [--size 128] [--batch 32] [--steps 4]
                                          [--epochs 3] [--workers 0] [--threads 1] [--preset NAME]

* **raw**: ``forward + backward + optimizer.step`` on batches already in memory (the very batches
  the loop sees in its first epoch: same dataset, same augmentation draws), median seconds per step
  over one pass before and one after the loop (after a warm-up pass).
* **loop**: :func:`jordanlab.train.train` on the same dataset (``steps * batch`` images, so
  ``steps`` steps per epoch): DataLoader, augmentation, metrics, validation off, checkpoint and
  ``metrics.jsonl`` every epoch, tqdm off. Per-epoch wall time between two epoch-end callbacks
  (so everything of an epoch is inside), median over epochs 2..E (epoch 1 pays warm-up).
* **data**: iterating the DataLoader alone (loading + augmentation), median ms per batch.

Prints a markdown table; the target is loop >= 90 % of raw. The data is the first ``steps * batch``
training images of ``--preset`` (default ``shapes-SIZE``; ``textures-256`` at ``--size 256``), and the
last line extrapolates the loop's time per step to one epoch of the whole preset
(``ceil(n_train / batch)`` steps, validation not included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--size", type=int, default=128, choices=(32, 64, 128, 256))
    ap.add_argument("--preset", default=None,
                    help="training preset (default: shapes-SIZE, textures-256 for --size 256)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4, help="steps per epoch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the loop")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from jordanlab import data
    from jordanlab.train import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig, build_model, train
    from jordanlab.train.distributed import EpochSampler, resolve_device
    from jordanlab.train.run import Run
    from jordanlab.train.objectives import pixel_loss
    from jordanlab.train.optim import build_optimizer

    preset = args.preset or (f"shapes-{args.size}" if args.size != 256 else "textures-256")
    spec = data.resolve(preset)
    if spec.size != args.size:
        ap.error(f"--preset {preset} has {spec.size}x{spec.size} images, not --size {args.size}")
    n = args.steps * args.batch
    kwargs = {"width": args.width} if args.model in ("unet", "local-cnn", "cnn-gap", "cnn-sa", "cnn-gc") else {}
    cfg = Config(
        description="benchmark",
        data=DataConfig(preset=preset, n_train=n, n_val=0, seed=0, augment=True),
        model=ModelConfig(name=args.model, kwargs=kwargs),
        optim=OptimConfig(name="ranger"),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch, device=args.device,
                          num_workers=args.workers, keep_checkpoints=1),
    )
    dev = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        owner = Run.for_training(run, cfg)  # the loop's own data, where the loop will find it
        with owner.lock():
            owner.ensure_data(progress=False)

        # -- data pipeline alone: the loop's loader for epoch 1 (same sampler, same draws)
        ds = data.FillDataset(owner.data_dir(), "train", augment=True, seed=0)
        ds.set_epoch(1)
        sampler = EpochSampler(len(ds), seed=cfg.train.seed)
        sampler.set_epoch(1)
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, sampler=sampler, num_workers=0)
        batches, data_ms = [], []
        t = time.perf_counter()
        for x, y in loader:
            data_ms.append(1e3 * (time.perf_counter() - t))
            batches.append((x, y))
            t = time.perf_counter()

        # -- raw step on in-memory batches (measured before and after the loop: the machine is shared)
        torch.manual_seed(0)
        model = build_model(cfg.model).to(dev)
        opt = build_optimizer(model.parameters(), cfg.optim)
        model.train()
        raw: list[float] = []

        def raw_steps(record: bool) -> None:
            for x, y in batches:
                x, y = x.to(dev), y.to(dev)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                loss = pixel_loss(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if record:
                    raw.append(time.perf_counter() - t)

        raw_steps(record=False)  # warm-up
        raw_steps(record=True)

        # -- the whole loop
        ends: list[float] = []
        t0 = time.perf_counter()
        train(cfg, run, progress=False, callbacks=[lambda epoch, m: ends.append(time.perf_counter())])
        epoch_s = [b - a for a, b in zip([t0] + ends[:-1], ends)][1:]
        raw_steps(record=True)

    raw_step = statistics.median(raw)
    loop_step = statistics.median(epoch_s) / args.steps
    raw_ips, loop_ips = args.batch / raw_step, args.batch / loop_step
    data_batch = statistics.median(data_ms)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"model {args.model} (width {args.width}) on {preset} at {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} steps/epoch, {args.epochs} epochs, {args.threads} thread(s), {args.workers} loader worker(s), "
          f"device {dev}, torch {torch.__version__}")
    print()
    print("| measure | s/step | images/s |")
    print("|---|---:|---:|")
    print(f"| raw forward+backward+step (in memory, median of {len(raw)}) | {raw_step:.3f} | {raw_ips:.1f} |")
    print(f"| whole training loop (median of {len(epoch_s)} epochs) | {loop_step:.3f} | {loop_ips:.1f} |")
    print(f"| data pipeline alone (load + {spec.augment} augmentation, median of {len(data_ms)} batches) | "
          f"{data_batch / 1e3:.3f} | {args.batch / (data_batch / 1e3):.1f} |")
    print()
    print(f"loop / raw = {100 * loop_ips / raw_ips:.1f} % (target >= 90 %); data pipeline = {data_batch:.0f} ms/batch "
          f"= {100 * data_batch / 1e3 / raw_step:.1f} % of a raw step")
    steps_epoch = -(-spec.n_train // args.batch)
    epoch_s = steps_epoch * loop_step
    print(f"one epoch of {preset} ({spec.n_train:,} images, {steps_epoch} steps) at the loop's rate: "
          f"{epoch_s:.0f} s = {epoch_s / 60:.1f} min; {3600 / epoch_s:.2f} epochs per hour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
