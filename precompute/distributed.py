"""Multi-process Universal Encoder training on torchrun (the launcher side of DDP).

:class:`~brainviz.encoders.universal.UniversalEncoder` is DDP-aware: when
``torch.distributed`` is initialized it wraps its network in
``DistributedDataParallel``; every rank builds the same global batch schedule
(seeded) and takes the rows ``batch[rank::world_size]`` of each batch, and DDP
averages the gradients, so N processes follow the single-process trajectory of
the same global batch (``tests/brainviz/encoders/test_distributed.py`` checks it). This module
is the entry point::

    # one machine, 4 GPUs (NCCL) or 4 CPU processes (gloo)
    torchrun --standalone --nproc_per_node=4 -m precompute.distributed \
        --dataset data/demo_brain --subjects subj01 subj02 subj03 subj04 --out ue_multi.pt

    # 2 machines x 8 GPUs: run on each node, NODE_RANK = 0 and 1
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK \
        --rdzv_backend=c10d --rdzv_endpoint=$HEAD_NODE:29500 --rdzv_id=brainviz-ue \
        -m precompute.distributed --dataset /data/algonauts --out ue_multi.pt

The process group comes from :mod:`brainviz.ddp`, lazy responses from
:mod:`brainviz.data.streaming`, synthetic data from :mod:`brainviz.data.synthetic`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from brainviz.data.streaming import subject_responses
from brainviz.data.synthetic import synthetic_data
from brainviz.ddp import DistInfo, barrier, init_distributed, shutdown
from brainviz.errors import BrainVizDataError
from brainviz.paths import DEFAULT_CACHE_DIR

__all__ = ["main"]



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
    from brainviz.pipeline import Context, PipelineConfig

    work = Path(args.work_dir) if args.work_dir else Path(args.out).parent / "work"
    cfg = PipelineConfig(dataset=Path(args.dataset), cache_dir=Path(args.cache_dir), work_dir=work,
                         backbone=args.backbone, weights=args.weights, seed=args.seed,
                         progress=info.is_main)
    ctx = Context(cfg)
    if info.is_main:
        if ctx.random_weights:  # as `precompute`: the checkpoint would say nothing about vision
            from precompute.stages import random_weights_warning

            print(random_weights_warning(cfg.backbone, cfg.seed), file=sys.stderr, flush=True)
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
        prog="torchrun --nproc_per_node=N -m precompute.distributed",
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

    from brainviz.encoders.universal import UniversalConfig, UniversalEncoder

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
