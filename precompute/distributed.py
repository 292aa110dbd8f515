"""Multi-process Universal Encoder training on torchrun, into the work folder `precompute` uses.

:class:`~brainviz.encoders.universal.UniversalEncoder` is DDP-aware: when
``torch.distributed`` is initialized it wraps its network in
``DistributedDataParallel``; every rank builds the same global batch schedule
(seeded) and takes the rows ``batch[rank::world_size]`` of each batch, and DDP
averages the gradients, so N processes follow the single-process trajectory of
the same global batch (``tests/brainviz/encoders/test_distributed.py`` checks it).

On a dataset this module trains the Universal Encoders of the pipeline's train stage
(:func:`brainviz.pipeline.train.ue_plan`: ``ue_multi`` and ``ue_pretrain-<subject>`` by default,
``--models ue_single`` adds the single-subject models) into ``WORK/models/`` exactly as
``precompute train`` writes them: checkpoint ``<model_id>.pt`` and a ``registry.json`` entry with the
same fingerprint (settings, seed, training image keys, a digest of the response rows, the feature cache
entry, the estimator's code), marked ``trained_by: "torchrun"``. A following ``precompute all`` with the
same options then says it reuses them and trains only the rest (ridge, the transfer of
``ue_pretrain`` to the held-out subject, the models not trained here), evaluates and writes the store.
If that run's inputs differ (other settings, seed, data, backbone or code), it stops with one line naming
what differs (exit code 2) instead of using or silently retraining them; ``--no-reuse`` trains everything
there. The one command sequence (options after ``precompute.distributed`` as for ``precompute``)::

    # 1. train the Universal Encoders: one machine, 4 GPUs (NCCL) or 4 CPU processes (gloo)
    torchrun --standalone --nproc_per_node=4 -m precompute.distributed \\
        --dataset data/demo_brain --work-dir data/work --cache-dir data/cache
    # 2. everything else, reusing those checkpoints, and the store
    python -m precompute all --dataset data/demo_brain --work-dir data/work --cache-dir data/cache

    # 2 machines x 8 GPUs: run step 1 on each node (NODE_RANK = 0 and 1; WORK and the cache on a shared
    # file system), then step 2 on one of them
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK \\
        --rdzv_backend=c10d --rdzv_endpoint=$HEAD_NODE:29500 --rdzv_id=brainviz-ue \\
        -m precompute.distributed --dataset /data/algonauts --work-dir /shared/work --cache-dir /shared/cache

Each rank reads its own share of the data:

* features: a missing feature cache entry is built by every rank, each extracting a contiguous share of
  whole batches of the images, rank 0 merging the parts and renaming the entry into place
  (:mod:`brainviz.features.cache`; byte for byte the one-process entry);
* fingerprints: the response digests are computed for a share of the subjects per rank and gathered;
* training: features (float16 cache memmap) and responses (memory-mapped ``.npy``) stay on disk; each
  rank reads only the rows of its share of each global batch (and of the input statistics' blocks).

``--summary FILE`` (rank 0) writes the run's JSON: world size, seconds per stage and model, and per
rank the peak RSS (and the peaks of its anonymous and file-backed parts, sampled every 0.1 s) and the
bytes of features and responses it read. ``--synthetic NxV[xS]`` trains one
model on deterministic synthetic data into ``--out`` (tests, benchmarks). The process group comes from
:mod:`brainviz.ddp`.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from brainviz.data.synthetic import synthetic_data
from brainviz.ddp import DistInfo, barrier, init_distributed, shutdown
from brainviz.errors import BrainVizDataError
from brainviz.paths import DEFAULT_CACHE_DIR, DEFAULT_OUTPUT_DIR

__all__ = ["main", "MODEL_GROUPS"]

#: What ``--models`` chooses among the train stage's Universal Encoders (model id prefixes).
MODEL_GROUPS = {"ue_multi": "ue_multi", "ue_pretrain": "ue_pretrain-", "ue_single": "ue_single-"}


def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().replace("x", ",").split(",") if p]
    if len(parts) == 2:
        parts.append(1)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("expected IMAGESxVOXELS[xSUBJECTS], e.g. 64x200 or 64x200x2")
    return parts[0], parts[1], parts[2]


def _status_kb(fields: Sequence[str]) -> dict[str, int]:
    """``{field: kB}`` of /proc/self/status (Linux); {} where it cannot be read."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name = line.split(":", 1)[0]
            if name in fields:
                out[name] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return {}
    return out


class _PeakMemory:
    """Samples this process's resident memory every ``every`` s in a thread: peak anonymous memory
    (RssAnon: what the process holds) and peak file-backed memory (RssFile: pages of memory-mapped
    files it touched, which the kernel can drop), beside the kernel's peak of their sum (VmHWM)."""

    def __init__(self, every: float = 0.1):
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True, name="brainviz-peak-memory")
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            for k, v in _status_kb(("RssAnon", "RssFile")).items():
                self.peak[k] = max(self.peak[k], v)
            self._stop.wait(every)

    def report(self) -> dict:
        """{"peak_rss_mb", "peak_anon_mb", "peak_file_mb"} (MB; {} where /proc is not available)."""
        self._stop.set()
        self._thread.join()
        hwm = _status_kb(("VmHWM",))
        if not hwm:
            return {}
        return {"peak_rss_mb": round(hwm["VmHWM"] / 1024, 1), "peak_anon_mb": round(self.peak["RssAnon"] / 1024, 1),
                "peak_file_mb": round(self.peak["RssFile"] / 1024, 1)}


def _gather(obj: Any, info: DistInfo) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in one process)."""
    if not info.distributed:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def _rank_config(over: dict, info: DistInfo) -> dict:
    """Run-time settings of this rank's Universal Encoder: its device, progress bars on rank 0 only."""
    over = dict(over)
    if info.device.type == "cuda":
        over.setdefault("device", str(info.device))
    elif "device" not in over:
        over["device"] = "cpu"
    if not info.is_main:
        over["progress"] = False
    return over


def _train_synthetic(args, info: DistInfo) -> dict:
    from brainviz.encoders.universal import UniversalConfig, UniversalEncoder

    over = json.loads(args.ue) if args.ue else {}
    over.setdefault("seed", args.seed)
    cfg = UniversalConfig(**_rank_config(over, info))
    n, v, s = args.synthetic
    L, P, C = args.synthetic_features
    data = synthetic_data(n, v, s, n_layers=L, n_patches=P, n_channels=C, seed=args.seed)
    t0 = time.perf_counter()
    enc = UniversalEncoder(cfg).fit(data)
    secs = time.perf_counter() - t0
    if info.is_main:
        enc.save(args.out)
    return ({"seconds": secs, "history": enc.history_, "checkpoint": str(args.out), "subjects": enc.subjects},
            {"synthetic": dict(enc.input_bytes_read_)})


def _selected(model_id: str, groups: Sequence[str]) -> bool:
    return any(model_id == MODEL_GROUPS[g] or (MODEL_GROUPS[g].endswith("-") and model_id.startswith(MODEL_GROUPS[g]))
               for g in groups)


def _train_dataset(args, info: DistInfo) -> dict:
    """Train the pipeline's Universal Encoders into ``args.work_dir`` (module docstring)."""
    from brainviz.pipeline import Context, PipelineConfig
    from brainviz.pipeline.train import (TORCHRUN, features_identity, fingerprint_inputs, fit_resumable,
                                         model_fingerprint, record_model, response_digests, reusable, ue_code,
                                         ue_config, ue_data, ue_plan, ue_settings)
    from brainviz.pipeline.workdir import load_registry, models_dir
    from precompute.checks import parse_ue

    cfg = PipelineConfig(dataset=Path(args.dataset), work_dir=Path(args.work_dir), cache_dir=Path(args.cache_dir),
                         data_root=args.data_root, backbone=args.backbone, weights=args.weights, seed=args.seed,
                         quick=args.quick, ue_overrides=parse_ue(args.ue),
                         progress=info.is_main and not args.quiet)
    ctx = Context(cfg)
    say = (lambda text: print(text, flush=True)) if info.is_main and not args.quiet else (lambda text: None)
    if info.is_main and ctx.random_weights:  # as `precompute`: the checkpoints would say nothing about vision
        from precompute.stages import random_weights_warning

        print(random_weights_warning(cfg.backbone, cfg.seed), file=sys.stderr, flush=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    fs = ctx.features  # every rank extracts its share of a missing cache entry (brainviz.features.cache)
    times["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    subjects = ctx.subject_names
    digests: dict = {}
    for part in _gather(response_digests(ctx, subjects[info.rank::info.world_size]), info):
        digests.update(part)
    for s in subjects:
        _, n_const, n_vertices = digests[s]
        if n_const == n_vertices:
            raise BrainVizDataError(f"{s} training responses", "every vertex has the same response in every "
                                    "training image (constant data): there is nothing to learn from")
    data = {s: digests[s][0] for s in subjects}
    times["fingerprints"] = time.perf_counter() - t0

    ue_cfg = ue_config(ctx, device=_rank_config({}, info)["device"])  # progress: ctx's (rank 0 only)
    settings, code, features = ue_settings(ue_cfg), ue_code(), features_identity(fs)
    mdir = models_dir(ctx)
    earlier = load_registry(ctx) if not args.no_reuse else {}
    plan = [p for p in ue_plan(ctx) if _selected(p[0], args.models)]
    if not plan:
        raise BrainVizDataError("--models", f"{' '.join(args.models)}: the train stage fits none of these on "
                                f"{args.dataset} (its Universal Encoders: "
                                f"{', '.join(m for m, _, _ in ue_plan(ctx)) or 'none'})")
    models, read = {}, {}
    for model_id, kind, subs in plan:
        sub_data = {s: data[s] for s in subs}
        fp = model_fingerprint(kind, settings, sub_data, features, code)
        if reusable(earlier.get(model_id), fp):
            say(f"{model_id}: kept (same data, settings and code) in {mdir}")
            models[model_id] = {"kept": True}
            continue
        say(f"{model_id}: training on {', '.join(subs)} with {info.world_size} processes ({info.backend or 'one process'})")
        t0 = time.perf_counter()
        path = mdir / f"{model_id}.pt"
        enc = fit_resumable(ue_cfg, ue_data(ctx, subs), path)  # memory-mapped: each rank reads its rows
        secs = time.perf_counter() - t0
        if info.is_main:
            record_model(ctx, model_id, dict(
                kind=kind, subjects=subs, checkpoint=str(path), config=dict(ue_cfg.to_dict(), device=None, progress=True),
                train_seconds=secs, embedding_cosine_to_init=dict(enc.embedding_cosine_), trained_by=TORCHRUN,
                world_size=info.world_size, backend=info.backend or "none",
                inputs=fingerprint_inputs(settings, sub_data, features, code)), fp)
            say(f"{model_id}: {secs:.1f} s, epochs {len(enc.history_)}, written to {path}")
        barrier()
        models[model_id] = {"kept": False, "seconds": secs, "epochs": len(enc.history_)}
        read[model_id] = dict(enc.input_bytes_read_)
    return {"work_dir": str(ctx.work), "stages": times, "models": models}, read


def main(argv: Sequence[str] | None = None) -> int:
    """Train Universal Encoders, on one process or on every process of a torchrun job."""
    ap = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node=N -m precompute.distributed",
        description="Train the pipeline's Universal Encoders with DistributedDataParallel (gloo on CPU, NCCL on "
                    "GPU) into the work folder `python -m precompute all` then reuses; runs unchanged without "
                    "torchrun (one process). Rank 0 writes the checkpoints.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=Path, help="dataset in the Algonauts 2023 layout")
    src.add_argument("--synthetic", type=_parse_shape, metavar="NxV[xS]",
                     help="deterministic synthetic data: N images x V voxels (x S subjects), one model into --out")
    ap.add_argument("--synthetic-features", type=lambda t: tuple(int(v) for v in t.split(",")), default=(2, 4, 8),
                    metavar="L,P,C", help="layers, patches, channels of the synthetic features (default 2,4,8)")
    ap.add_argument("--out", type=Path, default=None, help="--synthetic: the checkpoint written by rank 0")
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_OUTPUT_DIR / "work",
                    help="the work folder of `precompute` (checkpoints go to WORK/models)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                    help=f"feature cache, shared with `precompute` and by every rank (default {DEFAULT_CACHE_DIR})")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--models", nargs="+", choices=sorted(MODEL_GROUPS), default=["ue_multi", "ue_pretrain"],
                    help="which of the train stage's Universal Encoders (default: ue_multi ue_pretrain)")
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="the tiny settings of `precompute --quick`")
    ap.add_argument("--ue", default=None, help="UniversalConfig overrides as JSON, as for `precompute`")
    ap.add_argument("--no-reuse", action="store_true", help="train even the models the work folder already holds")
    ap.add_argument("--quiet", action="store_true", help="no progress display")
    ap.add_argument("--backend", choices=("gloo", "nccl"), default=None, help="default: nccl on CUDA, else gloo")
    ap.add_argument("--summary", type=Path, default=None, help="rank 0 writes a JSON summary here")
    args = ap.parse_args(argv)
    if args.synthetic and args.out is None:
        ap.error("--synthetic needs --out")
    if args.dataset and args.out is not None:
        ap.error("--out is for --synthetic; on a dataset the checkpoints go to WORK/models (--work-dir)")

    memory = _PeakMemory()
    info = init_distributed(args.backend)
    t0 = time.perf_counter()
    try:
        result, read = _train_synthetic(args, info) if args.synthetic else _train_dataset(args, info)
        ranks = _gather(dict(rank=info.rank, **memory.report(), input_bytes_read=read), info)
        if info.is_main:
            summary = {"world_size": info.world_size, "backend": info.backend or "none",
                       "device": str(info.device), "threads": torch.get_num_threads(),
                       "total_seconds": time.perf_counter() - t0, **result, "ranks": ranks}
            text = json.dumps(summary, default=float)
            if args.summary:
                args.summary.write_text(text)
            print(text, flush=True)
        barrier()
    except BrainVizDataError as exc:
        print(f"error (rank {info.rank}): {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error (rank {info.rank}): {exc}", file=sys.stderr)
        return 2
    finally:
        gc.collect()  # DDP wrappers of finished fits go while the process group still exists
        shutdown()
    return 0


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # a torchrun worker whose work is done (checkpoints and registry written, process group destroyed)
        # ends here: under load a rank was twice seen to abort in C++ static destructors at interpreter exit
        # ("terminate called without an active exception", SIGABRT) after finishing, which failed the job
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
