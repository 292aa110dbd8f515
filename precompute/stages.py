"""Pipeline subcommands: features, train, evaluate, analyze, all."""
from __future__ import annotations

import argparse
import json
import sys
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
                         ue_overrides=_ue_overrides(args), noise_ceiling=args.noise_ceiling)
    cfg.progress = not getattr(args, "quiet", False)  # --quiet: no progress bars
    ctx = Context(cfg)
    if ctx.random_weights:  # printed even with --quiet: the whole run is then meaningless for vision
        print(random_weights_warning(cfg.backbone, cfg.seed), file=sys.stderr, flush=True)
    return ctx


def random_weights_warning(backbone: str, seed: int) -> str:
    """The one-line CLI warning of a run on a randomly initialized backbone."""
    return (f"WARNING: {backbone} runs with RANDOM weights (random init, seed {seed}): no --weights given, so the "
            "features carry no learned visual knowledge and every encoder, cluster and RDM of this run says nothing "
            "about vision; pass --weights FILE")


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
    from brainviz.pipeline.analyses.encoders import EncoderScores, encoder_table, run
    from brainviz.pipeline.evaluate import evaluate, transfer_curve

    ctx = _context(args)
    evaluate(ctx)
    # the scores the analyze stage will store, computed from the saved predictions (printed, not written)
    table = encoder_table(r for r in run(ctx) if isinstance(r, EncoderScores))
    tc = transfer_curve(ctx)
    cols = ["model_id", "subject", "median_r", "p25", "p75", "median_nna", "mean_rank", "top1", "top5"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(tc):
        print("\ntransfer curve (median test r, mean over image subsamples):")
        print(tc.pivot_table(index="n_train", columns="method", values="median_r", aggfunc="mean")
              .to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\ntest predictions: {ctx.work / 'predictions'} (scored into the store by `precompute analyze`)")
    return 0


def _save_headline(ctx, head: dict) -> Path | None:
    """The analyze stage's headline numbers as ``<work>/results/headline.json`` (also in the store's meta)."""
    from brainviz.atomic import atomic_path

    path = ctx.work / "results" / "headline.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, ".json") as tmp:
            Path(tmp).write_text(json.dumps(head, indent=1, default=str))
    except OSError:
        return None
    return path


def results_summary(head: dict, table=None) -> str:
    """A short, readable table of a run's results: median test r per model and subject (``table``: the
    evaluate stage's rows), the default clustering, and identification top-1 (whole cortex)."""
    lines = []
    if table is not None and len(table):
        kind = table["model_id"].str.split("-").str[0]
        wide = table.assign(model=kind).pivot_table(index="model", columns="subject", values="median_r",
                                                     aggfunc="first")
        wide = wide.reindex([m for m in ("ridge", "ue_single", "ue_multi", "ue_pretrain", "ue_transfer") if m in wide.index]
                            + [m for m in wide.index if m not in ("ridge", "ue_single", "ue_multi", "ue_pretrain",
                                                                   "ue_transfer")])
        wide.columns.name = None
        lines.append("median test r per vertex (model x subject):")
        lines += ["  " + ln for ln in wide.reset_index().to_string(index=False, float_format=lambda v: f"{v:.3f}",
                                                                   na_rep="-").splitlines()]
    scopes = (head.get("clusters") or {}).get("scopes") or {}
    default = next(((sc, d) for sc, d in scopes.items() if d.get("chosen_k")), None)
    if default:
        sc, d = default
        k = d["chosen_k"]
        text = f"clusters: {sc}, k = {k}"
        if d.get("stability", {}).get(k) is not None:
            text += f" (bootstrap stability {d['stability'][k]:.2f})"
        text += f", {d.get('n_clustered', 0):,} vertices"
        ari = (d.get("per_k") or {}).get(k, {}).get("ari")
        if ari is not None:
            text += f"; category-region ARI {ari:.2f} (simulation check)"
        lines.append(text)
    dec = head.get("decoding") or {}
    if dec:
        from brainviz.decoding import WHOLE_CORTEX

        by_approach: dict[str, list[float]] = {}
        for per_subject in dec.values():
            for approach, sets in per_subject.items():
                if WHOLE_CORTEX in sets:
                    by_approach.setdefault(approach, []).append(sets[WHOLE_CORTEX]["top1"])
        if by_approach:
            lines.append(f"identification top-1, {WHOLE_CORTEX}, mean over {len(dec)} subjects: "
                         + " · ".join(f"{a} {sum(v) / len(v):.0%}" for a, v in sorted(
                             by_approach.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))))
    return "\n".join(lines)


def _analyze(args) -> int:
    from brainviz.pipeline.analyze import analyze

    ctx = _context(args)
    head = analyze(ctx)
    saved = _save_headline(ctx, head)
    print(results_summary(head))
    if saved:
        print(f"every headline number: {saved}")
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
            predicted = [] if kept else evaluate(ctx)
            if not kept:
                mark_stage(ctx, "evaluate", fp, ["predictions"])
            prog.wrote(("kept from an earlier run (same models, data and settings): test predictions in "
                        if kept else f"{len(predicted)} model x subject test predictions: ")
                       + str(ctx.work / "predictions"))
        with prog.stage("transfer curve"):
            fp = stage_fingerprint(ctx, "transfer curve", reg)
            kept = reuse and finished_stage(ctx, "transfer curve", fp)
            tc = (read_results(ctx, "transfer_curve") if kept else None)
            if tc is None:
                kept, tc = False, transfer_curve(ctx)
                mark_stage(ctx, "transfer curve", fp, ["results/transfer_curve.csv"] if len(tc) else [])
            prog.wrote(("kept from an earlier run: " if kept else "")
                       + (f"{len(tc)} rows: {ctx.work / 'results' / 'transfer_curve.csv'}" if len(tc)
                          else "nothing: " + transfer_skip_reason(ctx)))
        with prog.stage("analyze"):
            head = analyze(ctx)
            size = Path(args.store).stat().st_size / 1e6 if Path(args.store).exists() else 0.0
            prog.wrote(f"store {args.store} ({size:.0f} MB)")
        table = _encoder_rows(head)  # median r per model x subject, as the store has it
    prog.save_history()
    saved = _save_headline(ctx, head)
    if not args.quiet:
        print("\n" + prog.summary() + "\n")
        print(results_summary(head, table) + "\n")
        if saved:
            print(f"every headline number: {saved} (and the store's meta table)")
        print_plan(ctx)
    print(f"store written: {args.store} (total {time.perf_counter() - t0:.0f} s)")
    return 0


def _encoder_rows(head: dict):
    """The model x subject rows (model_id, subject, median_r) of the analyze stage's headline numbers."""
    import pandas as pd

    return pd.DataFrame([dict(model_id=key.split("|")[0], subject=key.split("|")[1], median_r=v["median_r"])
                         for key, v in (head.get("encoders") or {}).items()],
                        columns=["model_id", "subject", "median_r"])


def transfer_skip_reason(ctx) -> str:
    """Why the transfer curve has no rows (the plan's reason, else the held-out subject's)."""
    from brainviz.pipeline.plan import skipped_analyses

    for k in skipped_analyses(ctx):
        if k.analysis.startswith("transfer curve"):
            return k.reason
    return f"no pre-trained model for {ctx.transfer_subject} in {ctx.work / 'models'} (run the train stage)"


def print_plan(ctx) -> None:
    """Where each subject's evaluation images come from, and what was skipped (lines of at most 120 characters)."""
    import textwrap

    from brainviz.pipeline.plan import evaluation_notes, format_skips, skipped_analyses

    def say(text: str, indent: str = "  ") -> None:
        print(textwrap.fill(text, 118, initial_indent=indent, subsequent_indent=indent + "    "))

    print("evaluation images:")
    for s, note in evaluation_notes(ctx).items():
        say(f"{s}: {note}")
    skips = skipped_analyses(ctx)
    if skips:
        print("skipped (why, and what would enable it):")
        for line in format_skips(skips):
            say(line)


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
                        help="image backbone: efficientnet-lite0 (offline default, shipped ImageNet weights), "
                             "open_clip:<model> (e.g. open_clip:ViT-B-32) or dinov2:<model> (dinov2:vit_small_patch14, "
                             "dinov2:vit_base_patch14, dinov2:vit_large_patch14, dinov2:vit_giant_patch14; "
                             "_reg4 variants too); open_clip and dinov2 without --weights are RANDOM weights")
    common.add_argument("--weights", default=None,
                        help="backbone weights: a local file (dinov2: timm's model.safetensors / pytorch_model.bin "
                             "or Meta's dinov2_vit*14_pretrain.pth; open_clip: a state-dict file) or an open_clip "
                             "pretrained tag (needs internet)")
    common.add_argument("--noise-ceiling", type=Path, default=None, metavar="DIR",
                        help="per-vertex noise ceilings subjNN/{lh,rh}.npy in percent (the Algonauts 2023 files), "
                             "used when the dataset has no repetitions (default: the data root's "
                             "algonauts2023_noise_ceiling/ for subjects whose vertex counts match)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--n-perm", type=_bounded_int(1, MAX_N_PERM), default=200,
                        help=f"permutations for RSA p-values (1 to {MAX_N_PERM:,})")
    common.add_argument("--ue", default=None,
                        help='Universal Encoder overrides as JSON, e.g. \'{"min_epochs": 20}\'. Training length: '
                             'at least min_epochs (10) passes over the images and voxel_updates (150) updates per '
                             'voxel (demo brain: 10 passes; NSD size: 10 passes, ~2,300 updates per voxel); '
                             'n_epochs fixes it')
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
