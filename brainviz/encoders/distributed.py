"""Multi-process Universal Encoder training on torchrun, and out-of-core (streamed) data access.

Distributed training
--------------------
:class:`~brainviz.encoders.universal.UniversalEncoder` is DDP-aware: when
``torch.distributed`` is initialized it wraps its network in
``DistributedDataParallel``; every rank builds the same global batch schedule
(seeded) and takes the rows ``batch[rank::world_size]`` of each batch, and DDP
averages the gradients, so N processes follow the single-process trajectory of
the same global batch (``tests/test_distributed.py`` checks it). This module
adds the launcher side::

    # one machine, 4 GPUs (NCCL) or 4 CPU processes (gloo)
    torchrun --standalone --nproc_per_node=4 -m brainviz.encoders.distributed \
        --dataset data/demo_brain --subjects subj01 subj02 subj03 subj04 --out ue_multi.pt

    # 2 machines x 8 GPUs: run on each node, NODE_RANK = 0 and 1
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK \
        --rdzv_backend=c10d --rdzv_endpoint=$HEAD_NODE:29500 --rdzv_id=brainviz-ue \
        -m brainviz.encoders.distributed --dataset /data/algonauts --out ue_multi.pt

:func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), picks NCCL on CUDA and gloo
on CPU, and pins each process to GPU ``LOCAL_RANK``. Without torchrun it does
nothing and training runs in one process, unchanged.

Out-of-core data access
-----------------------
NSD-sized data (8 subjects x ~9,000 images x ~40,000 vertices float32, ~12 GB)
is never loaded whole: the Algonauts loader memory-maps every response file;
:class:`RowConcat` joins the two hemispheres lazily (only the rows asked for
are read), :func:`iter_row_batches` streams an array in bounded blocks, and
:class:`RunningMoments`, :func:`streamed_vertex_stats`, :func:`streamed_xty`
and :func:`streamed_pearson` compute per-vertex statistics, the ridge normal
equations' right-hand side ``X^T Y`` and prediction accuracy one block at a
time. They equal the in-memory computations (``tests/test_outofcore.py``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..errors import BrainVizDataError
from ..paths import DEFAULT_CACHE_DIR

__all__ = [
    "DistInfo", "init_distributed", "shutdown", "dist_info", "barrier", "is_main", "shard_indices",
    "RowConcat", "subject_responses", "iter_row_batches", "RunningMoments", "streamed_vertex_stats",
    "streamed_xty", "streamed_pearson", "synthetic_data", "main",
]


# ============================================================================ process group

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

    from ..gpu import resolve_device

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

    from ..gpu import resolve_device

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


# ============================================================================ out-of-core access

def _read_rows(a, rows) -> np.ndarray:
    """Rows of ``a`` (slice or int array); int arrays are read in file order (fast on memmaps)."""
    if isinstance(rows, slice):
        return np.asarray(a[rows])
    idx = np.asarray(rows)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if idx.ndim == 0:
        return np.asarray(a[int(idx)])
    order = np.argsort(idx, kind="stable")
    if np.all(order == np.arange(len(idx))):
        return np.asarray(a[idx])
    out = np.asarray(a[idx[order]])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return out[inv]


class RowConcat:
    """Lazy ``np.concatenate(parts, axis=1)`` of 2-D arrays with the same rows (e.g. lh, rh memmaps).

    Indexing reads only what is asked: ``rc[i0:i1]`` -> (i1 - i0, n_cols) array,
    ``rc[rows]`` (int array, any order), ``rc[rows, cols]`` (cols: slice, int or
    bool array over the concatenated columns). ``np.asarray(rc)`` materializes
    everything (avoid for NSD-sized data).

    Parameters
    ----------
    parts : 2-D arrays (ndarray or memmap) with equal ``shape[0]``.
    dtype : output dtype (default float32).
    """

    def __init__(self, parts: Sequence[Any], dtype=np.float32):
        parts = list(parts)
        if not parts or any(len(getattr(p, "shape", ())) != 2 for p in parts):
            raise BrainVizDataError("RowConcat", "expected one or more 2-D arrays")
        n = {int(p.shape[0]) for p in parts}
        if len(n) != 1:
            raise BrainVizDataError("RowConcat", f"parts have different row counts {sorted(n)}")
        self.parts = parts
        self.dtype = np.dtype(dtype)
        self.widths = [int(p.shape[1]) for p in parts]
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)
        self.shape = (n.pop(), int(self.offsets[-1]))
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __getitem__(self, key):
        cols = None
        if isinstance(key, tuple):
            if len(key) != 2:
                raise IndexError("RowConcat takes [rows] or [rows, cols]")
            key, cols = key
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0] if cols is None else self[np.array([key]), cols][0]
        blocks = [_read_rows(p, key).astype(self.dtype, copy=False) for p in self.parts]
        if cols is None:
            return np.concatenate(blocks, axis=1) if len(blocks) > 1 else np.array(blocks[0], copy=True)
        return self._select_cols(blocks, cols)

    def _select_cols(self, blocks, cols) -> np.ndarray:
        if isinstance(cols, slice):
            cols = np.arange(self.shape[1])[cols]
        cols = np.asarray(cols)
        if cols.dtype == bool:
            if cols.shape != (self.shape[1],):
                raise IndexError(f"boolean column mask of shape {cols.shape}, expected ({self.shape[1]},)")
            cols = np.flatnonzero(cols)
        cols = np.where(cols < 0, cols + self.shape[1], cols)
        part = np.searchsorted(self.offsets, cols, side="right") - 1
        out = np.empty((blocks[0].shape[0], len(cols)), dtype=self.dtype)
        for k, b in enumerate(blocks):
            m = part == k
            if m.any():
                out[:, m] = b[:, cols[m] - self.offsets[k]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[0:self.shape[0]]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"RowConcat(shape={self.shape}, parts={self.widths}, dtype={self.dtype})"


def subject_responses(subject, split: str = "train") -> RowConcat:
    """Lazy (n_images, n_vertices) responses of an :class:`~brainviz.data.algonauts.AlgonautsSubject`
    (lh then rh, as ``subject.responses(split)`` returns them in memory)."""
    from ..data.algonauts import HEMIS

    if not subject.has_responses(split):
        raise BrainVizDataError(subject.path, f"no {split} responses in this dataset")
    return RowConcat([subject.hemi_responses(split, h) for h in HEMIS])


def iter_row_batches(a, batch_rows: int | None = None, max_bytes: int = 64 * 2**20,
                     rows: Sequence[int] | None = None, dtype=np.float32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream an (n, ...) array (ndarray, memmap, :class:`RowConcat`) in row blocks.

    Parameters
    ----------
    a : array-like with ``shape`` and row slicing.
    batch_rows : rows per block (default: as many as fit in ``max_bytes``).
    max_bytes : memory bound of one block when ``batch_rows`` is None.
    rows : optional subset / order of rows to visit (e.g. :func:`shard_indices`).
    dtype : dtype of the yielded blocks.

    Yields
    ------
    (row_indices, block) : int64 (b,) and (b, ...) ``dtype`` array.
    """
    n = int(a.shape[0])
    row_bytes = int(np.prod(a.shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    if batch_rows is None:
        batch_rows = max(1, int(max_bytes // max(1, row_bytes)))
    if batch_rows < 1:
        raise BrainVizDataError("batch_rows", f"must be >= 1, got {batch_rows}")
    if rows is None:
        for i0 in range(0, n, batch_rows):
            i1 = min(n, i0 + batch_rows)
            yield np.arange(i0, i1), np.asarray(a[i0:i1], dtype=dtype)
    else:
        rows = np.asarray(rows, dtype=np.int64)
        for k in range(0, len(rows), batch_rows):
            r = rows[k:k + batch_rows]
            yield r, np.asarray(_read_rows(a, r), dtype=dtype)


class RunningMoments:
    """Per-column count, mean, variance, min and max, updated one row block at a time.

    Block statistics are merged with Chan et al.'s parallel formula (float64),
    so the result equals ``a.mean(0)``, ``a.var(0, ddof)`` up to rounding for
    any block size; two instances (e.g. two ranks' shards) merge with :meth:`merge`.
    """

    def __init__(self, n_cols: int):
        self.n = 0
        self.mean = np.zeros(n_cols)
        self.m2 = np.zeros(n_cols)
        self.min = np.full(n_cols, np.inf)
        self.max = np.full(n_cols, -np.inf)

    def update(self, block: np.ndarray) -> "RunningMoments":
        b = np.asarray(block, dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != self.mean.shape[0]:
            raise BrainVizDataError("block", f"expected (rows, {self.mean.shape[0]}), got {b.shape}")
        if not np.isfinite(b).all():
            raise BrainVizDataError("block", "contains NaN or infinite values")
        nb = b.shape[0]
        if nb == 0:
            return self
        mb = b.mean(axis=0)
        m2b = ((b - mb) ** 2).sum(axis=0)
        self._combine(nb, mb, m2b)
        self.min = np.minimum(self.min, b.min(axis=0))
        self.max = np.maximum(self.max, b.max(axis=0))
        return self

    def _combine(self, nb: int, mb: np.ndarray, m2b: np.ndarray) -> None:
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta ** 2 * (self.n * nb / n)
        self.n = n

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        if other.n:
            self._combine(other.n, other.mean, other.m2)
            self.min = np.minimum(self.min, other.min)
            self.max = np.maximum(self.max, other.max)
        return self

    def var(self, ddof: int = 0) -> np.ndarray:
        return self.m2 / max(1, self.n - ddof)

    def std(self, ddof: int = 0) -> np.ndarray:
        return np.sqrt(self.var(ddof))


def streamed_vertex_stats(Y, batch_rows: int | None = None, max_bytes: int = 64 * 2**20,
                          rows: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Per-vertex ``mean``, ``std`` (ddof 0), ``min``, ``max`` (float64) of (n_images, n_vertices) ``Y``,
    read one block of rows at a time (``rows``: optional subset)."""
    mom = RunningMoments(int(Y.shape[1]))
    for _, block in iter_row_batches(Y, batch_rows, max_bytes, rows):
        mom.update(block)
    return {"n": np.array(mom.n), "mean": mom.mean, "std": mom.std(), "min": mom.min, "max": mom.max}


def streamed_xty(X, Y, batch_rows: int | None = None, max_bytes: int = 64 * 2**20,
                 center: bool = True) -> dict[str, np.ndarray]:
    """``X^T X`` and ``X^T Y`` (float64) accumulated over row blocks: the data pass of a ridge
    solver in its primal form (solve ``(X^T X + alpha I) W = X^T Y`` afterwards, per alpha).

    With ``center`` the columns of X and Y are centered with their means (computed in a
    first streamed pass), as the ridge encoder does. Memory: O(p^2 + p v + block).

    Returns
    -------
    dict with ``xtx`` (p, p), ``xty`` (p, v), ``x_mean`` (p,), ``y_mean`` (v,), ``n``.
    """
    n, p = int(X.shape[0]), int(X.shape[1])
    if int(Y.shape[0]) != n:
        raise BrainVizDataError("Y", f"has {Y.shape[0]} rows, X has {n}")
    v = int(Y.shape[1])
    row_bytes = (p + v) * 8
    batch = batch_rows or max(1, int(max_bytes // row_bytes))
    x_mean, y_mean = np.zeros(p), np.zeros(v)
    if center:
        for i0 in range(0, n, batch):
            x_mean += np.asarray(X[i0:i0 + batch], np.float64).sum(axis=0)
            y_mean += np.asarray(Y[i0:i0 + batch], np.float64).sum(axis=0)
        x_mean /= n
        y_mean /= n
    xtx, xty = np.zeros((p, p)), np.zeros((p, v))
    for i0 in range(0, n, batch):
        xb = np.asarray(X[i0:i0 + batch], np.float64) - x_mean
        yb = np.asarray(Y[i0:i0 + batch], np.float64) - y_mean
        xtx += xb.T @ xb
        xty += xb.T @ yb
    return {"xtx": xtx, "xty": xty, "x_mean": x_mean, "y_mean": y_mean, "n": np.array(n)}


def streamed_pearson(Y, P, batch_rows: int | None = None, max_bytes: int = 64 * 2**20) -> np.ndarray:
    """Per-column Pearson r (float64, NaN for constant columns) of two (n, v) arrays read in row
    blocks (e.g. measured responses on disk vs predictions on disk). Equals
    :func:`brainviz.metrics.pearson_per_vertex` up to rounding."""
    n, v = int(Y.shape[0]), int(Y.shape[1])
    if tuple(P.shape) != (n, v):
        raise BrainVizDataError("P", f"shape {tuple(P.shape)} differs from Y's {(n, v)}")
    batch = batch_rows or max(1, int(max_bytes // (2 * v * 8)))
    my, mp = RunningMoments(v), RunningMoments(v)
    for i0 in range(0, n, batch):
        my.update(np.asarray(Y[i0:i0 + batch]))
        mp.update(np.asarray(P[i0:i0 + batch]))
    cov = np.zeros(v)
    for i0 in range(0, n, batch):
        yb = np.asarray(Y[i0:i0 + batch], np.float64) - my.mean
        pb = np.asarray(P[i0:i0 + batch], np.float64) - mp.mean
        cov += np.einsum("ij,ij->j", yb, pb)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(my.m2 * mp.m2)
    return np.where((my.m2 > 0) & (mp.m2 > 0), r, np.nan)


# ============================================================================ synthetic data

def synthetic_data(n_images: int = 64, n_voxels: int = 200, n_subjects: int = 1, *, n_layers: int = 2,
                   n_patches: int = 4, n_channels: int = 8, seed: int = 0,
                   noise: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deterministic {``subjNN``: (X (n, L, P, C) float32, Y (n, V) float32)} for tests and benchmarks.

    Y is a fixed random linear read-out of patch-averaged features plus Gaussian
    noise (``noise`` x its standard deviation), so an encoder can learn it.
    """
    out = {}
    for s in range(n_subjects):
        rng = np.random.default_rng([int(seed), s])
        X = rng.standard_normal((n_images, n_layers, n_patches, n_channels)).astype(np.float32)
        w = rng.standard_normal((n_layers * n_channels, n_voxels)) / np.sqrt(n_layers * n_channels)
        clean = X.mean(axis=2).reshape(n_images, -1) @ w
        Y = clean + noise * clean.std() * rng.standard_normal(clean.shape)
        out[f"subj{s + 1:02d}"] = (X, Y.astype(np.float32))
    return out


# ============================================================================ command line

def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().replace("x", ",").split(",") if p]
    if len(parts) == 2:
        parts.append(1)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("expected IMAGESxVOXELS[xSUBJECTS], e.g. 64x200 or 64x200x2")
    return parts[0], parts[1], parts[2]


def _dataset_data(args, info: DistInfo) -> dict[str, tuple[Any, Any]]:
    """{subject: (features FeatureSet, lazy responses)} from a dataset + the feature cache.

    Rank 0 fills the feature cache first; the other ranks wait, then open it (memory-mapped).
    """
    from ..pipeline import Context, PipelineConfig

    work = Path(args.work_dir) if args.work_dir else Path(args.out).parent / "work"
    cfg = PipelineConfig(dataset=Path(args.dataset), cache_dir=Path(args.cache_dir), work_dir=work,
                         backbone=args.backbone, weights=args.weights, seed=args.seed,
                         progress=info.is_main)
    ctx = Context(cfg)
    if info.is_main:
        ctx.features  # noqa: B018  (computes the cache when missing)
    barrier()
    fs = ctx.features
    subjects = args.subjects or ctx.subject_names
    unknown = sorted(set(subjects) - set(ctx.subject_names))
    if unknown:
        raise BrainVizDataError("--subjects", f"{unknown} are not subjects of {args.dataset}")
    return {s: (fs.subset(ctx.images[s].train_keys), subject_responses(ctx.dataset.subjects[s], "train"))
            for s in subjects}


def main(argv: Sequence[str] | None = None) -> int:
    """Train a Universal Encoder, on one process or on every process of a torchrun job."""
    ap = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node=N -m brainviz.encoders.distributed",
        description="Train the Universal Encoder with DistributedDataParallel (gloo on CPU, NCCL on GPU); "
                    "runs unchanged without torchrun (one process). Rank 0 writes the checkpoint.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=Path, help="dataset in the Algonauts 2023 layout")
    src.add_argument("--synthetic", type=_parse_shape, metavar="NxV[xS]",
                     help="deterministic synthetic data: N images x V voxels (x S subjects)")
    ap.add_argument("--synthetic-features", type=lambda t: tuple(int(v) for v in t.split(",")), default=(2, 4, 8),
                    metavar="L,P,C", help="layers, patches, channels of the synthetic features (default 2,4,8)")
    ap.add_argument("--subjects", nargs="*", default=None, help="subjects to train on jointly (default: all)")
    ap.add_argument("--out", type=Path, required=True, help="checkpoint written by rank 0")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                    help=f"feature cache, shared with `precompute` (default {DEFAULT_CACHE_DIR})")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ue", default=None, help="UniversalConfig overrides as JSON, e.g. '{\"n_epochs\": 10}'")
    ap.add_argument("--backend", choices=("gloo", "nccl"), default=None, help="default: nccl on CUDA, else gloo")
    ap.add_argument("--summary", type=Path, default=None, help="rank 0 writes a JSON summary here")
    args = ap.parse_args(argv)

    from .universal import UniversalConfig, UniversalEncoder

    info = init_distributed(args.backend)
    try:
        over = json.loads(args.ue) if args.ue else {}
        over.setdefault("seed", args.seed)
        if info.device.type == "cuda":
            over.setdefault("device", str(info.device))
        elif "device" not in over:
            over["device"] = "cpu"
        if not info.is_main:
            over["progress"] = False
        cfg = UniversalConfig(**over)
        if args.synthetic:
            n, v, s = args.synthetic
            L, P, C = args.synthetic_features
            data = synthetic_data(n, v, s, n_layers=L, n_patches=P, n_channels=C, seed=args.seed)
        else:
            data = _dataset_data(args, info)
        t0 = time.perf_counter()
        enc = UniversalEncoder(cfg).fit(data)
        secs = time.perf_counter() - t0
        if info.is_main:
            enc.save(args.out)
            summary = {"world_size": info.world_size, "backend": info.backend or "none",
                       "device": str(info.device), "threads": torch.get_num_threads(), "seconds": secs,
                       "history": enc.history_,
                       "checkpoint": str(args.out), "subjects": enc.subjects}
            text = json.dumps(summary, default=float)
            if args.summary:
                args.summary.write_text(text)
            print(text, flush=True)
        barrier()
    except BrainVizDataError as exc:
        print(f"error (rank {info.rank}): {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
