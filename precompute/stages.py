"""Pipeline subcommands: features, train, evaluate, analyze, all."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from brainviz.paths import DEFAULT_CACHE_DIR, DEFAULT_DEMO_DIR, DEFAULT_OUTPUT_DIR, DEFAULT_STORE


def _ue_overrides(args: argparse.Namespace) -> dict:
    """``--ue`` as checked by :func:`precompute.checks.parse_ue` (main() checks it before any work)."""
    from .checks import parse_ue

    over = getattr(args, "ue_overrides", None)
    return dict(over) if over is not None else parse_ue(args.ue)


def _context(args: argparse.Namespace):
    from brainviz.pipeline import Context, PipelineConfig

    cfg = PipelineConfig(dataset=args.dataset, store=args.store, work_dir=args.work_dir, cache_dir=args.cache_dir,
                         data_root=args.data_root, backbone=args.backbone, weights=args.weights, seed=args.seed,
                         quick=args.quick, n_perm=args.n_perm, jobs=args.jobs,
                         ue_overrides=_ue_overrides(args))
    cfg.progress = not getattr(args, "quiet", False)  # --quiet: no progress bars
    return Context(cfg)


def _features(args) -> int:
    ctx = _context(args)
    fs = ctx.features
    print(f"features: {fs.n_images} images x {len(fs.layer_names)} layers x {fs.n_patches} patches "
          f"({args.backbone}) in {ctx.timings.get('features', 0):.1f} s")
    return 0


def _train(args) -> int:
    from brainviz.pipeline.train import train

    ctx = _context(args)
    reg = train(ctx, reuse=not args.no_reuse)
    for mid, e in reg.items():
        print(f"{mid:28s} {e['kind']:12s} {','.join(e['subjects']):40s} {e['train_seconds']:7.1f} s")
    return 0


def _evaluate(args) -> int:
    from brainviz.pipeline.evaluate import evaluate, transfer_curve

    ctx = _context(args)
    table = evaluate(ctx)
    tc = transfer_curve(ctx)
    cols = ["model_id", "subject", "median_r", "p25", "p75", "median_nna", "mean_rank", "top1", "top5"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(tc):
        print("\ntransfer curve (median test r, mean over image subsamples):")
        print(tc.pivot_table(index="n_train", columns="method", values="median_r", aggfunc="mean")
              .to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nresults: {ctx.work / 'results'}")
    return 0


def _analyze(args) -> int:
    from brainviz.pipeline.analyze import analyze

    ctx = _context(args)
    head = analyze(ctx)
    print(json.dumps(head, indent=1, default=str))
    print(f"store written: {args.store}")
    return 0


def _all(args) -> int:
    from brainviz.pipeline.analyze import analyze
    from brainviz.pipeline.evaluate import evaluate, transfer_curve
    from brainviz.pipeline.train import train
    from brainviz.pipeline.workdir import finished_stage, mark_stage, read_results, stage_fingerprint
    from brainviz.progress import Progress, library_bars

    t0 = time.perf_counter()
    ctx = _context(args)
    # one overall display (stage i of n, model and subject, elapsed, time left) on stderr; the step
    # bars nest under it on a terminal; plain lines without carriage returns otherwise; --quiet: none
    prog = Progress(["features", "train", "evaluate", "transfer curve", "analyze"],
                    mode="quiet" if args.quiet else "auto", history=ctx.work / "progress_history.json")
    with prog:
        ctx.config.progress = library_bars(ctx.config.progress)
        with prog.stage("features"):
            fs = ctx.features
            prog.wrote(f"{fs.n_images} images x {len(fs.layer_names)} layers ({ctx.config.backbone}) "
                       f"in the feature cache {Path(ctx.config.cache_dir) / 'features'}")
        reuse = not args.no_reuse  # finished models and stages of an earlier run with the same inputs are kept
        with prog.stage("train"):
            reg = train(ctx, reuse=reuse)
            prog.wrote(f"{len(reg)} models in {ctx.work / 'models'}")
        with prog.stage("evaluate"):
            fp = stage_fingerprint(ctx, "evaluate", reg)
            kept = reuse and finished_stage(ctx, "evaluate", fp)
            table = read_results(ctx, "encoders") if kept else evaluate(ctx)
            if not kept:
                mark_stage(ctx, "evaluate", fp, ["results/encoders.csv", "results/roi_metrics.csv",
                                                 "results/vertex_metrics.npz", "predictions"])
            prog.wrote(("kept from an earlier run (same models, data and settings): " if kept else "")
                       + f"{len(table)} model x subject rows: {ctx.work / 'results'}/encoders.csv, roi_metrics.csv, "
                       "vertex_metrics.npz")
        with prog.stage("transfer curve"):
            fp = stage_fingerprint(ctx, "transfer curve", reg)
            kept = reuse and finished_stage(ctx, "transfer curve", fp)
            tc = (read_results(ctx, "transfer_curve") if kept else None)
            if tc is None:
                kept, tc = False, transfer_curve(ctx)
                mark_stage(ctx, "transfer curve", fp, ["results/transfer_curve.csv"] if len(tc) else [])
            prog.wrote(("kept from an earlier run: " if kept else "")
                       + (f"{len(tc)} rows: {ctx.work / 'results' / 'transfer_curve.csv'}" if len(tc)
                          else "nothing (one subject: no transfer)"))
        with prog.stage("analyze"):
            head = analyze(ctx)
            size = Path(args.store).stat().st_size / 1e6 if Path(args.store).exists() else 0.0
            prog.wrote(f"store {args.store} ({size:.0f} MB)")
    prog.save_history()
    if not args.quiet:
        print("headline: " + json.dumps(head, default=str))
        print("\n" + prog.summary() + "\n")
    print(f"store written: {args.store} (total {time.perf_counter() - t0:.0f} s)")
    return 0


def _positive_int(text: str) -> int:
    """argparse type of --jobs: an integer >= 1 (else argparse's usage error, exit code 2)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {n}")
    return n


def _bounded_int(lo: int, hi: int):
    """argparse type: an integer in [lo, hi] (else argparse's usage error, exit code 2)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo} to {hi:,}, got {text!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo} to {hi:,}, got {n}")
        return n

    return parse


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register the pipeline subcommands on ``sub``."""
    from .checks import MAX_N_PERM

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", type=Path, default=DEFAULT_DEMO_DIR,
                        help=f"dataset in the Algonauts 2023 layout (default {DEFAULT_DEMO_DIR})")
    common.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"DuckDB store (default {DEFAULT_STORE})")
    common.add_argument("--work-dir", type=Path, default=DEFAULT_OUTPUT_DIR / "work",
                        help="checkpoints, predictions and results tables")
    common.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="feature cache")
    common.add_argument("--data-root", type=Path, default=None,
                        help="shared data folder (default: $BRAINVIZ_DATA, else ../shared/data)")
    common.add_argument("--backbone", default="efficientnet-lite0",
                        help="image backbone: efficientnet-lite0 (offline default) or open_clip:<model>")
    common.add_argument("--weights", default=None,
                        help="open_clip weights: a pretrained tag (needs internet) or a local state-dict file")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--n-perm", type=_bounded_int(1, MAX_N_PERM), default=200,
                        help=f"permutations for RSA p-values (1 to {MAX_N_PERM:,})")
    common.add_argument("--ue", default=None, help='Universal Encoder overrides as JSON, e.g. \'{"n_epochs": 10}\'')
    common.add_argument("--jobs", type=_positive_int, default=None,
                        help="independent model fits run side by side, one CPU thread each (default: 2 on a CPU "
                             "with >= 2 cores, 1 on a GPU; 1 = one after the other with every thread)")
    common.add_argument("--quick", action="store_true", help="tiny settings (smoke tests)")
    common.add_argument("--no-reuse", action="store_true",
                        help="train every model and run every stage again (default: keep the finished models and "
                             "stages of an earlier run whose data, settings and code are unchanged)")
    common.add_argument("--quiet", action="store_true",
                        help="no progress display (for scripts); `all` then prints only its last line")
    for name, func, text in (
        ("features", _features, "extract (and cache) multi-layer image features of every image"),
        ("train", _train, "train ridge, UE single, UE multi, UE pretrain + transfer models"),
        ("evaluate", _evaluate, "score every model on held-out test images; transfer curve; results tables"),
        ("analyze", _analyze, "clusters, RDMs, RSA, 92-image RSA, pair model, decoding -> the DuckDB store"),
        ("all", _all, "features + train + evaluate + analyze"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.set_defaults(func=func)
