"""The training loop: one function, the same for one process, many ranks, CPU or CUDA.

``train(config, run_dir)`` writes the run directory through :class:`jordanlab.train.run.Run` (the one
owner of its layout): config, checkpoints (each checked finite before it is written), metrics, the
generated data, TensorBoard events when ``train.tensorboard`` is set. One process writes a run at a time
(a lock), and a rerun with a config of another identity is refused.

Rerunning the same call resumes from the newest good checkpoint. All randomness after the
model's initialisation is a pure function of ``(seed, epoch, step)`` (sampler permutation,
augmentation via ``FillDataset.set_epoch``, the progressive loss's draws) and the global RNG
states are saved and restored, so on CPU a resumed run ends with weights bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from jordanlab._seeds import torch_seed

from .metrics import logit_scores as _per_image_scores
from .checkpoint import (
    build_model,
    capture_rng_state,
    latest_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .config import Config, ConfigError
from .run import Run, RunError, seed_globals
from .distributed import DistContext, EpochSampler, all_reduce_sum, setup_distributed, teardown_distributed
from .objectives import build_objective
from .optim import build_optimizer, learning_rate, set_learning_rate

__all__ = ["train", "NonFiniteLossError", "EpochCallback", "StepHook"]

EpochCallback = Callable[[int, dict[str, Any]], None]


class StepHook(Protocol):
    """Called around every optimizer step (e.g. :class:`jordanlab.kernels.PathRecorder`).

    ``before_step`` gets the dataset indices of the batch and its (augmented) inputs and targets, before
    the loss is computed; ``after_step`` runs right after ``optimizer.step()``. A hook may also define
    ``bind(model, optimizer)``, called once before the first step with the loop's (unwrapped) model and
    optimizer.
    """

    def before_step(self, batch_indices: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> None: ...

    def after_step(self) -> None: ...

class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@contextlib.contextmanager
def _isolated_global_rng() -> Iterator[None]:
    """Restore the caller's Python/NumPy/torch/CUDA generator states on exit."""
    saved = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(saved)


def _seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python and NumPy from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _agree_on_resume(ctx: DistContext, run_dir: Path) -> Path | None:
    path = latest_good_checkpoint(run_dir) if ctx.is_main else None
    if ctx.distributed:
        import torch.distributed as dist

        box = [str(path) if path is not None else None]
        dist.broadcast_object_list(box, src=0)
        path = Path(box[0]) if box[0] is not None else None
    return path


def _prune_checkpoints(run_dir: Path, keep: int) -> None:
    for _, path in list_checkpoints(run_dir)[:-keep]:
        for p in (path, path.with_name(path.name + ".sha256")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _run_info(ctx: DistContext, amp: bool, channels_last: bool) -> dict[str, Any]:
    return {
        "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "device": str(ctx.device), "world_size": ctx.world_size, "amp_bf16": amp, "channels_last": channels_last,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "num_threads": torch.get_num_threads(),
    }


@torch.inference_mode()
def _validate(model: nn.Module, dataset: Any, *, device: torch.device, batch_size: int,
              amp: bool, channels_last: bool) -> dict[str, float]:
    if dataset is None or len(dataset) == 0:
        return {}
    was_training = model.training
    model.eval()
    ious, accs = [], []
    try:
        for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            x, y = x.to(device), y.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            iou, acc = _per_image_scores(logits.float(), y)
            ious.append(iou.cpu())
            accs.append(acc.cpu())
    finally:
        model.train(was_training)
    iou, acc = torch.cat(ious), torch.cat(accs)
    return {"val_iou": float(iou.mean()), "val_accuracy": float(acc.mean()),
            "val_perfect_rate": float((acc == 1).float().mean())}


def train(config: Config, run_dir: str | os.PathLike[str], *, progress: bool = True,
          callbacks: Sequence[EpochCallback] = (), step_hooks: Sequence[StepHook] = ()) -> dict[str, Any]:
    """Train ``build(config.model)`` on ``config.data`` and return the last epoch's metrics.

    Parameters
    ----------
    config : Config
        The resolved configuration (see :func:`jordanlab.train.load_config`).
    run_dir : path-like
        The run directory; created if needed. If it holds checkpoints of the same config, training
        resumes after the newest good one (a finished run returns its final metrics at once).
    progress : bool
        Show a tqdm bar with the running loss and IoU (rank 0 only).
    callbacks : sequence of callables
        ``callback(epoch, metrics)`` after every epoch, once its checkpoint is written.
    step_hooks : sequence of :class:`StepHook`
        ``before_step(batch_indices, inputs, targets)`` / ``after_step()`` around every optimizer step,
        e.g. a :class:`jordanlab.kernels.PathRecorder` recording the exact path decomposition of an SGD run.

    Returns
    -------
    dict
        ``epoch, step, loss, train_iou, train_accuracy, val_iou, val_accuracy, val_perfect_rate,
        lr, seconds`` of the last epoch.

    Raises
    ------
    ValueError
        ``run_dir`` holds a different config; the batch does not split across ranks; an unknown
        model or data preset.
    NonFiniteLossError
        The loss became NaN or infinite; the last good checkpoint is kept and named.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config: expected a jordanlab.train.Config, got {type(config).__name__}")
    run_dir = Path(run_dir)
    ctx = setup_distributed(config.train.device)
    try:
        with _isolated_global_rng():
            return _train(config, run_dir, ctx, progress=progress, callbacks=callbacks, step_hooks=step_hooks)
    finally:
        teardown_distributed(ctx)


def _train(config: Config, run_dir: Path, ctx: DistContext, *, progress: bool,
           callbacks: Sequence[EpochCallback], step_hooks: Sequence[StepHook] = ()) -> dict[str, Any]:
    tc = config.train
    if tc.batch_size % ctx.world_size:
        raise ValueError(f"config key 'train.batch_size': the global batch {tc.batch_size} does not split "
                         f"evenly across {ctx.world_size} ranks")
    per_rank = tc.batch_size // ctx.world_size
    cuda = ctx.device.type == "cuda"
    amp = tc.amp and cuda
    channels_last = tc.channels_last and cuda

    # Model first: an unknown name or keyword fails before anything is written. The global RNGs go on
    # from the model's initialisation (dropout, the loader); Run.initial_model replays exactly this.
    seed_globals(tc.seed)
    model = build_model(config.model)
    objective = build_objective(tc)
    net = objective.module(model)
    if not ctx.is_main:
        # The other ranks open the run only once rank 0 has made it (marker, config, data): looked at
        # while rank 0 was writing it, the directory was "non-empty and not jordanlab's" to them.
        ctx.barrier()
        run = Run.for_training(run_dir, config)
        return _train_run(run, model, objective, net, ctx, per_rank=per_rank, amp=amp, channels_last=channels_last,
                          progress=progress, callbacks=callbacks, step_hooks=step_hooks)
    run = Run.for_training(run_dir, config)
    with run.lock():
        run.begin(_run_info(ctx, amp, channels_last))
        run.ensure_data(progress=progress)
        ctx.barrier()
        return _train_run(run, model, objective, net, ctx, per_rank=per_rank, amp=amp, channels_last=channels_last,
                          progress=progress, callbacks=callbacks, step_hooks=step_hooks)


def _check_finite(model: nn.Module, *, epoch: int, step: int, lr: float, run: Run) -> None:
    """Refuse to checkpoint weights that are not all finite (the last update may have blown up)."""
    bad = [name for name, t in [*model.named_parameters(), *model.named_buffers()]
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        good = latest_good_checkpoint(run.path, warn=False)
        raise NonFiniteLossError(
            f"weights became non-finite at epoch {epoch}, step {step} (lr {lr:g}; first: {bad[0]}); stopped "
            f"without saving them. {_recovery(good, run)}")


def _recovery(good: Path | None, run: Run) -> str:
    where = f"The last good (finite) checkpoint is {good}." if good else "No epoch finished."
    return (f"{where} Train again into a new --out with a lower optim.lr (now {run.config.optim.lr:g}) "
            "or with optim.grad_clip > 0, e.g. --set optim.lr=...; this run's config cannot change")


def _on_device(net: nn.Module, ctx: DistContext, *, sync_batchnorm: bool, channels_last: bool) -> nn.Module:
    """Move ``net`` to the run's device (channels-last on CUDA), with SyncBatchNorm under DDP on CUDA."""
    cuda = ctx.device.type == "cuda"
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    if ctx.distributed and has_bn:
        if sync_batchnorm and cuda:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        elif ctx.is_main:
            warnings.warn(
                "BatchNorm statistics are computed per rank (SyncBatchNorm needs CUDA, or "
                "train.sync_batchnorm is false): results differ from one process with the same global batch",
                UserWarning, stacklevel=4,
            )
    net = net.to(ctx.device)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _resume(run: Run, ctx: DistContext, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, int, dict]:
    """``(start_epoch, step, last_metrics)``: the newest good checkpoint's state loaded, or a fresh start."""
    resume = _agree_on_resume(ctx, run.path)
    if resume is None:
        if ctx.is_main:
            run.truncate_metrics(0)
        return 1, 0, {}
    ckpt = load_checkpoint(resume, map_location=ctx.device)
    if ckpt["optimizer"] is None:
        raise RunError(f"{resume} holds weights without optimizer state (a shipped model?); it cannot be resumed")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    restore_rng_state(ckpt["rng"])
    if ctx.is_main:
        run.truncate_metrics(ckpt["epoch"])
    return ckpt["epoch"] + 1, ckpt["step"], ckpt["metrics"]


def _train_run(run: Run, model: nn.Module, objective: Any, net: nn.Module, ctx: DistContext, *, per_rank: int,
               amp: bool, channels_last: bool, progress: bool, callbacks: Sequence[EpochCallback],
               step_hooks: Sequence[StepHook]) -> dict[str, Any]:
    config, tc, run_dir = run.config, run.config.train, run.path
    cuda = ctx.device.type == "cuda"

    net = _on_device(net, ctx, sync_batchnorm=tc.sync_batchnorm, channels_last=channels_last)
    optimizer = build_optimizer(net.parameters(), config.optim)

    from jordanlab import data

    train_dir, test_dir = run.data_dir(), run.test_dir()
    train_ds = data.FillDataset(train_dir, "train", augment=config.data.augment, seed=config.data.seed)
    val_ds = None
    if ctx.is_main and test_dir is not None:
        test = data.FillDataset(test_dir, "test", augment=False, seed=config.data.seed)
        val_ds = Subset(test, range(min(config.data.n_val, len(test))))

    sampler = EpochSampler(len(train_ds), seed=tc.seed, rank=ctx.rank, world_size=ctx.world_size)
    steps_per_epoch = math.ceil(len(sampler) / per_rank)
    total_steps = tc.epochs * steps_per_epoch

    start_epoch, step, last_metrics = _resume(run, ctx, model, optimizer)

    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[ctx.device] if cuda else None)

    for hook in step_hooks:  # hooks that need the live model and optimizer get them once, after resume
        bind = getattr(hook, "bind", None)
        if bind is not None:
            bind(model, optimizer)

    writer = None
    if ctx.is_main and tc.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("config key 'train.tensorboard': true needs the tensorboard package "
                              "(pip install 'jordanlab[tensorboard]')") from None
        writer = SummaryWriter(str(run.tensorboard_dir))

    bar = None
    if ctx.is_main and progress and start_epoch <= tc.epochs:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, desc=f"train {config.model.name}", unit="step", dynamic_ncols=True)

    try:
        for epoch in range(start_epoch, tc.epochs + 1):
            t0 = time.perf_counter()
            train_ds.set_epoch(epoch)
            sampler.set_epoch(epoch)
            gen = torch.Generator().manual_seed(torch_seed(tc.seed, epoch))
            loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, num_workers=tc.num_workers,
                                worker_init_fn=_seed_worker, generator=gen, pin_memory=cuda,
                                persistent_workers=False)
            net.train()
            sums = torch.zeros(4, dtype=torch.float64, device=ctx.device)  # loss*n, iou, acc, n
            order = torch.as_tensor(list(sampler), dtype=torch.long) if step_hooks else None
            for b, (x, y) in enumerate(loader):
                x = x.to(ctx.device, non_blocking=True)
                y = y.to(ctx.device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                lr = learning_rate(step, config.optim, total_steps=total_steps)
                set_learning_rate(optimizer, lr)
                if order is not None:  # the loader takes the sampler's indices in order, per_rank at a time
                    for hook in step_hooks:
                        hook.before_step(order[b * per_rank:(b + 1) * per_rank], x, y)
                with torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16, enabled=amp):
                    loss, logits = objective.loss(net, x, y, step=step)
                bad = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(1)
                if float(all_reduce_sum(bad, ctx)) > 0:
                    good = latest_good_checkpoint(run_dir, warn=False)
                    raise NonFiniteLossError(f"training loss became {float(loss.detach())} at epoch {epoch}, "
                                             f"step {step} (lr {lr:g}); stopped. {_recovery(good, run)}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.optim.grad_clip > 0:
                    nn.utils.clip_grad_norm_(net.parameters(), config.optim.grad_clip)
                optimizer.step()
                for hook in step_hooks:
                    hook.after_step()
                step += 1
                iou, acc = _per_image_scores(logits.float(), y)
                n = x.shape[0]
                sums += torch.stack([loss.detach().double() * n, iou.double().sum(), acc.double().sum(),
                                     torch.tensor(float(n), dtype=torch.float64, device=ctx.device)])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{float(loss.detach()):.4f}", iou=f"{float(iou.mean()):.3f}", refresh=False)
            all_reduce_sum(sums, ctx)
            loss_sum, iou_sum, acc_sum, count = sums.tolist()
            metrics: dict[str, Any] = {
                "epoch": epoch, "step": step, "loss": loss_sum / count,
                "train_iou": iou_sum / count, "train_accuracy": acc_sum / count,
            }
            metrics.update(_validate(model, val_ds, device=ctx.device, batch_size=per_rank,
                                     amp=amp, channels_last=channels_last))
            metrics["lr"] = learning_rate(max(0, step - 1), config.optim, total_steps=total_steps)
            metrics["seconds"] = time.perf_counter() - t0
            if ctx.is_main:
                if epoch % tc.checkpoint_every == 0 or epoch == tc.epochs:
                    _check_finite(model, epoch=epoch, step=step, lr=metrics["lr"], run=run)
                    save_checkpoint(run_dir, config=config, model=model, optimizer=optimizer, epoch=epoch,
                                    step=step, metrics=metrics, rng=capture_rng_state())
                    _prune_checkpoints(run_dir, tc.keep_checkpoints)
                run.append_metrics(metrics)
                if writer is not None:
                    for k, v in metrics.items():
                        if k != "epoch":
                            writer.add_scalar(k, v, epoch)
                    writer.flush()
                if bar is not None:
                    bar.set_postfix(epoch=epoch, loss=f"{metrics['loss']:.4f}",
                                    iou=f"{metrics['train_iou']:.3f}",
                                    val_iou=f"{metrics.get('val_iou', float('nan')):.3f}")
            if ctx.distributed:  # every rank returns (and hands its callbacks) rank 0's metrics
                import torch.distributed as dist

                box = [metrics]
                dist.broadcast_object_list(box, src=0)
                metrics = box[0]
            last_metrics = metrics
            for cb in callbacks:
                cb(epoch, metrics)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    return dict(last_metrics)

