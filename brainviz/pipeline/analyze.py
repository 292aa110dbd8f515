"""The analyze stage: run the analyses and write every result of a precompute run into one DuckDB
store (temp file, renamed into place). The analyses themselves are in :mod:`brainviz.pipeline.analyses`;
the train / evaluate results are read from the work folder through :mod:`brainviz.pipeline.workdir`."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import BrainVizDataError
from ..names import PERCENT
from ..paths import PROJECT_ROOT
from ..store.writer import StoreWriter
from . import analyses
from .context import Context
from .plan import skipped_analyses
from .workdir import load_predictions, load_registry, read_results, read_vertex_metrics


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_inputs(ctx: Context, w: StoreWriter) -> None:
    """Dataset, subjects, vertices (with ROI labels and planted regions), images, splits, tags, features."""
    ds = ctx.dataset
    first = next(iter(ds.subjects.values()))
    dataset_id = ds.path.name
    name = ds.manifest.get("name", dataset_id)
    w.add_dataset(dataset_id, name + (" (SIMULATED)" if ds.simulated else ""), ds.path, simulated=ds.simulated,
                  surface=first.surface, manifest=ds.manifest or None)
    for s, sub in ds.subjects.items():
        imgs = ctx.images[s]
        w.add_subject(s, dataset_id, imgs.source, n_train=len(imgs.train_keys), n_test=len(imgs.test_keys),
                      n_lh=sub.n_vertices["lh"], n_rh=sub.n_vertices["rh"], evaluation=imgs.evaluation)
        w.add_vertices(s, sub.vertex_table(), planted_region=ctx.planted_regions(s))
        w.add_image_splits(s, "train", imgs.train_keys)
        if imgs.test_keys:
            w.add_image_splits(s, "test", imgs.test_keys)
    w.add_images(ctx.catalog.image_key.tolist(), ctx.catalog.path.tolist(), dataset_id=dataset_id)
    tags = ctx.tags
    cats = [c for c in tags.columns if c != "tags"]
    known = tags[cats].notna().any(axis=1)
    if known.any():
        w.add_image_tags(tags.loc[known, cats], tags=tags.loc[known, "tags"].to_dict() if "tags" in tags else None)
    fs = ctx.features
    w.add_image_features(ctx.config.backbone, list(fs.keys), np.asarray(fs.pooled, np.float32))


def check_model_weights(ctx: Context, registry: dict) -> None:
    """Refuse models trained on another backbone or other weights than this run's (the store records one
    backbone and its weights, which live prediction rebuilds): BrainVizDataError naming the work folder's
    registry and both weights. Entries of older runs (no ``weights_id``) are not checked."""
    spec = ctx.weights_spec
    for model_id, e in registry.items():
        backbone, wid = e.get("backbone"), e.get("weights_id")
        if (backbone and backbone != spec.backbone) or (wid and wid != spec.weights_id):
            raise BrainVizDataError(ctx.work / "models" / "registry.json",
                                    f"model {model_id!r} was trained on {backbone or spec.backbone} with weights "
                                    f"{wid}, this run uses {spec.backbone} with {spec.description}: pass the same "
                                    "--backbone / --weights / --seed as `precompute train`, or train again")


def write_encoders(ctx: Context, w: StoreWriter) -> dict:
    """Models, per-vertex and per-ROI metrics, retrieval, test predictions, transfer curve."""
    registry = load_registry(ctx)
    check_model_weights(ctx, registry)  # (also checked before any work by analyze())
    for model_id, e in registry.items():
        w.add_model(model_id, e["kind"], e["subjects"], backbone=ctx.config.backbone, config=e["config"],
                    checkpoint_path=e["checkpoint"],
                    provenance={"seed": ctx.config.seed, "train_seconds": e.get("train_seconds"),
                                "pretrained_on": e.get("pretrained_on"), "git_commit": _git_commit(),
                                "dataset": str(ctx.dataset.path), "simulated": ctx.dataset.simulated,
                                "weights_id": ctx.weights_spec.weights_id})
    table = read_results(ctx, "encoders")
    if table is None or table.empty:  # no evaluation images (see pipeline.plan)
        return {}
    if "top1_pct" in table:  # results of an older run: nna / top-1 / top-5 in percent
        table = table.rename(columns={"nna": "median_nna", "top1_pct": "top1", "top5_pct": "top5"})
        table[["median_nna", "top1", "top5"]] /= PERCENT
    vm = read_vertex_metrics(ctx)
    for row in table.itertuples():
        key = f"{row.model_id}|{row.subject}"
        w.add_vertex_metrics(row.model_id, row.subject, vm[f"{key}|r"],
                             nc=vm[f"{key}|nc"] if f"{key}|nc" in vm else None,
                             nna=vm[f"{key}|nna"] if f"{key}|nna" in vm else None)
        w.add_retrieval(row.model_id, row.subject, n_candidates=int(row.n_test), mean_rank=float(row.mean_rank),
                        top1=float(row.top1), top5=float(row.top5))
        pred = load_predictions(ctx, row.model_id, row.subject)
        if pred is not None:
            w.add_predictions(row.model_id, row.subject, ctx.images[row.subject].test_keys, pred)
    roi = read_results(ctx, "roi_metrics")
    if roi is not None and len(roi):
        w.write_table("roi_metrics", roi)
    tc = read_results(ctx, "transfer_curve")
    if tc is not None and len(tc):
        w.write_table("transfer_curve", tc)
    return {r.model_id + "|" + r.subject: {"median_r": round(r.median_r, 3), "median_nna": round(r.median_nna, 3),
                                           "top1": round(r.top1, 3)} for r in table.itertuples()}


def analyze(ctx: Context) -> dict:
    """The analyze stage: run the analyses and write the store; returns the headline numbers."""
    headline: dict = {}
    check_model_weights(ctx, load_registry(ctx))  # before computing anything
    with StoreWriter(ctx.config.store) as w:
        with ctx.timed("store: inputs"):
            write_inputs(ctx, w)
            headline["encoders"] = write_encoders(ctx, w)
        headline["clusters"] = analyses.write_clusters(ctx, w)
        headline["rdms"] = analyses.write_rdms(ctx, w)
        k92 = analyses.write_k92(ctx, w)
        pair_rows = k92.pop("_pair_rows", [])
        headline["k92"] = k92
        headline["pair_model"] = analyses.write_pair_model(ctx, w, pair_rows)
        headline["decoding"] = analyses.write_decoding(ctx, w)
        skips = skipped_analyses(ctx)
        if skips:
            w.write_table("skipped_analyses", pd.DataFrame([k.as_row() for k in skips]))
        w.set_meta(simulated=ctx.dataset.simulated, dataset=str(ctx.dataset.path), backbone=ctx.config.backbone,
                   **ctx.weights_spec.to_meta(),  # which weights: live prediction rebuilds the same (or refuses)
                   brainviz_version=__version__, git_commit=_git_commit() or "",
                   config=ctx.config.to_dict(), headline=json.loads(json.dumps(headline, default=float)),
                   timings={k: round(v, 1) for k, v in ctx.timings.items()})
    return headline
