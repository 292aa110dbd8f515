"""The torch.distributed process group: torchrun's environment -> rank, world size, device.

:func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), picks NCCL on CUDA and gloo
on CPU, and pins each process to GPU ``LOCAL_RANK``. Without torchrun it does
nothing and training runs in one process, unchanged. :func:`dist_info` is what
:class:`~brainviz.encoders.universal.UniversalEncoder` asks to shard its batches;
:func:`shard_indices` deals ``range(n)`` as ``DistributedSampler`` does.

The torchrun entry point that trains a Universal Encoder is ``precompute/distributed.py``.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .errors import BrainVizDataError
from .gpu import resolve_device

__all__ = ["DistInfo", "init_distributed", "shutdown", "dist_info", "barrier", "is_main", "shard_indices",
           "free_port", "local_launch"]



@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """The current process group's (rank, world size, ...); ``DistInfo()`` when not initialized."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        backend = dist.get_backend()
        local = int(os.environ.get("LOCAL_RANK", 0))
        dev = resolve_device("cuda" if backend == "nccl" else "cpu")
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, backend, dev)
    return DistInfo(device=resolve_device(None))


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Initialize ``torch.distributed`` from torchrun's environment variables.

    Parameters
    ----------
    backend : None (NCCL when CUDA is available, else gloo), "nccl" or "gloo".
    timeout_s : collective timeout.

    Returns
    -------
    DistInfo. Outside torchrun (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) nothing
    is initialized and ``DistInfo(rank=0, world_size=1)`` is returned, so the
    same script runs in one process.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist_info()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=resolve_device(None))
    if not dist.is_available():
        raise BrainVizDataError("torch.distributed", "this torch build has no distributed support")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, backend, device)


def shutdown() -> None:
    """Destroy the process group (if any)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """``dist.barrier()`` when distributed, else nothing."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def is_main() -> bool:
    """True on rank 0 (and in a single process)."""
    return dist_info().rank == 0


def shard_indices(n: int, rank: int | None = None, world_size: int | None = None, *, shuffle: bool = False,
                  seed: int = 0, epoch: int = 0, drop_last: bool = False) -> np.ndarray:
    """This rank's share of ``range(n)``, as ``torch.utils.data.DistributedSampler`` deals it.

    The (optionally shuffled: ``torch.randperm`` seeded with ``seed + epoch``) order is padded by
    wrapping around to a multiple of ``world_size`` (or truncated when
    ``drop_last``) and rank ``r`` takes positions ``r, r + world, ...``: every
    rank gets the same number of indices, shards are disjoint apart from the
    padding, and the result depends only on the arguments (deterministic). Equals
    ``list(DistributedSampler(range(n), world_size, rank, shuffle, seed, drop_last))``
    after ``set_epoch(epoch)``.
    ``rank`` / ``world_size`` default to the current process group.
    """
    if rank is None or world_size is None:
        info = dist_info()
        rank = info.rank if rank is None else rank
        world_size = info.world_size if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise BrainVizDataError("rank", f"rank {rank} is not in [0, world_size={world_size})")
    if n < 0:
        raise BrainVizDataError("n", f"must be >= 0, got {n}")
    if shuffle:  # the same permutation as DistributedSampler(shuffle=True, seed=seed).set_epoch(epoch)
        g = torch.Generator()
        g.manual_seed(int(seed) + int(epoch))
        order = torch.randperm(n, generator=g).numpy()
    else:
        order = np.arange(n)
    if drop_last:
        order = order[: (n // world_size) * world_size]
    elif n % world_size and n:
        pad = world_size - n % world_size
        order = np.concatenate([order, np.resize(order, pad)])
    return order[rank::world_size].astype(np.int64)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the rendezvous port of a one-machine run, a test server)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_launch(nproc: int, args: Sequence[str], threads: int | None = None, pythonpath: str | None = None,
                 torchrun: bool | None = None) -> tuple[list[str], dict[str, str]]:
    """(command, environment) that run ``python ARGS`` as ``nproc`` processes on this machine with torchrun
    (``torch.distributed.run``, rendezvous on a free 127.0.0.1 port), or as one plain process when ``nproc`` is 1
    (``torchrun=True``: under torchrun even then).
    The environment drops a parent job's RANK / WORLD_SIZE / LOCAL_RANK / MASTER_PORT; ``threads`` sets
    OMP_NUM_THREADS per process; ``pythonpath`` is put first on PYTHONPATH."""
    import sys

    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(k, None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH")) if p)
    if not (nproc > 1 if torchrun is None else torchrun):
        return [sys.executable, *args], env
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", *args], env
