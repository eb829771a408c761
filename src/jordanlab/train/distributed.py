"""Process-group set-up for ``torchrun`` and the sampler that splits a global batch across ranks.

Under ``torchrun --nproc_per_node N`` the environment holds ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup_distributed` joins the group (gloo on CPU, nccl on CUDA). Without
them it returns a one-process context and the same loop runs unchanged. Only rank 0 logs and
checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from jordanlab._seeds import torch_seed

__all__ = ["DistContext", "setup_distributed", "teardown_distributed", "EpochSampler", "all_reduce_sum", "resolve_device"]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``.

    ``owns_group`` is true when :func:`setup_distributed` created the process group (and
    :func:`teardown_distributed` should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def resolve_device(device: str, *, local_rank: int = 0) -> torch.device:
    """``cpu``, ``cuda`` (``cuda:LOCAL_RANK``) or ``auto`` (CUDA when available)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device: 'cuda' was requested but torch.cuda.is_available() is False; use 'cpu' or 'auto'")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'auto', got {device!r}")


def setup_distributed(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group if the environment names one, and pick the device.

    The backend is ``nccl`` on CUDA and ``gloo`` on CPU. An already initialized group is used
    as is (and not destroyed by :func:`teardown_distributed`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank=local)
    if world <= 1 and not dist.is_initialized():
        return DistContext(device=dev)
    owns = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, device=dev, owns_group=owns)


def teardown_distributed(ctx: DistContext) -> None:
    """Destroy the process group if ``ctx`` created it, once every rank is done with it.

    Each rank first drops what still refers to the group (the ``DistributedDataParallel`` wrapper and
    its reducer can sit in a reference cycle until the interpreter exits) and waits at a barrier, so
    that no rank destroys its gloo group while another still uses it. A precaution: CI once saw a rank
    killed at exit by ``terminate called without an active exception`` (SIGABRT); its cause was not
    isolated, and it has not recurred in 70 two-process runs since.
    """
    if ctx.owns_group and dist.is_initialized():
        import gc

        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``t`` over ranks in place (identity for one process) and return it."""
    if ctx.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class EpochSampler(Sampler[int]):
    """A permutation of ``range(n)`` that is a pure function of ``(seed, epoch)``, split across ranks.

    Rank ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...`` of the permutation truncated to
    a multiple of ``W``. With a per-rank batch ``B / W``, the union of the ranks' ``b``-th batches
    is exactly positions ``[bB, (b+1)B)``: the ``b``-th batch of one process with global batch
    ``B``. Nothing needs saving to resume at an epoch boundary: call :meth:`set_epoch`.
    """

    def __init__(self, n: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise ValueError(f"n: expected a non-empty dataset, got {n} items")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size={world_size}, got {rank}")
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def permutation(self) -> torch.Tensor:
        """The whole epoch's order, shared by every rank."""
        g = torch.Generator().manual_seed(torch_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[int]:
        perm = self.permutation()
        usable = self.n - self.n % self.world_size
        return iter(perm[self.rank:usable:self.world_size].tolist())

    def __len__(self) -> int:
        return self.n // self.world_size
