"""The analyze stage: run the analyses and write every result of a precompute run into one DuckDB
store (temp file, renamed into place). The analyses themselves are in :mod:`brainviz.pipeline.analyses` (one
module each, typed results, policy in one :class:`~brainviz.pipeline.settings.AnalysisSettings`); their results
are written by :mod:`brainviz.pipeline.store_results`. The trained models and their test predictions are read
from the work folder through :mod:`brainviz.pipeline.workdir` and scored here (the encoder scores reach the store
once, never through the work folder).

The store is self-contained (:mod:`brainviz.store.schema`): besides the results it gets a thumbnail
of every image (:func:`write_inputs`) and the live model's checkpoint with its predictions of every
tagged image it was not trained on (:func:`write_live_model`), so the app needs neither the work folder, the caches nor the
dataset."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import BrainVizDataError
from ..paths import PROJECT_ROOT
from ..store.writer import StoreWriter
from ..thumbnails import thumbnails_of_files
from .analyses import clusters, decoding, encoders, k92, pair_model, rdms
from .context import Context
from .evaluate import predict
from .plan import skipped_analyses
from .settings import AnalysisSettings
from .store_results import write_all, write_result
from .workdir import load_model, load_registry


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
    keys, paths = ctx.catalog.image_key.tolist(), ctx.catalog.path.tolist()
    w.add_images(keys, paths, dataset_id=dataset_id)
    with ctx.timed("store: thumbnails"):
        for start, thumbs in thumbnails_of_files(paths, workers=ctx.workers()):
            w.add_thumbnails(keys[start:start + len(thumbs)], thumbs)
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
    """Models, and their scores from the evaluate stage's test predictions (per-vertex and per-ROI metrics,
    retrieval), the predictions themselves and the transfer curve (:mod:`brainviz.pipeline.analyses.encoders`);
    returns the headline numbers {"<model>|<subject>": {median_r, median_nna, top1}}."""
    registry = load_registry(ctx)
    check_model_weights(ctx, registry)  # (also checked before any work by analyze())
    for model_id, e in registry.items():
        w.add_model(model_id, e["kind"], e["subjects"], backbone=ctx.config.backbone, config=e["config"],
                    checkpoint_path=e["checkpoint"],
                    provenance={"seed": ctx.config.seed, "train_seconds": e.get("train_seconds"),
                                "pretrained_on": e.get("pretrained_on"), "git_commit": _git_commit(),
                                "dataset": str(ctx.dataset.path), "simulated": ctx.dataset.simulated,
                                "weights_id": ctx.weights_spec.weights_id})
    return write_all(w, encoders.run(ctx, registry))


def tagged_keys(ctx: Context) -> list[str]:
    """Keys of the dataset's images with category tags (what the In-silico page's image sets choose from)."""
    tags = ctx.tags
    cats = [c for c in tags.columns if c != "tags"]
    known = set(tags.index[tags[cats].notna().any(axis=1)])
    return [k for k in ctx.catalog.image_key if k in known]


def write_live_model(ctx: Context, w: StoreWriter) -> dict:
    """The live model (:func:`brainviz.live.pick_live_model`: the multi-subject Universal Encoder) into the
    store: its prediction-only checkpoint (``checkpoints``) and, for each of its subjects, its predictions of
    every tagged image it was not trained on (``predictions``, image set 'tagged': the In-silico page's
    NSD sets leave a subject's training images out), made by the model loaded back from those bytes
    (what the app loads). Returns {"model", "checkpoint_mb", "tagged_images"} (empty: no such model)."""
    from ..encoders.universal import CHECKPOINT_FORMAT, UniversalEncoder
    from ..live import pick_live_model

    registry = load_registry(ctx)
    models = pd.DataFrame([{"model_id": m, "kind": e["kind"], "subjects": e["subjects"],
                            "checkpoint_path": e.get("checkpoint")} for m, e in registry.items()])
    model_id = pick_live_model(models)
    if model_id is None:
        return {}
    data = load_model(registry[model_id]).to_bytes()
    w.add_checkpoint(model_id, data, CHECKPOINT_FORMAT)
    enc = UniversalEncoder.load(data, name=f"checkpoint of {model_id}")
    keys = tagged_keys(ctx)
    n = {}
    for s in enc.subjects:
        train = set(ctx.images[s].train_keys) if s in ctx.images else set()
        held_out = [k for k in keys if k not in train]
        if held_out:
            w.add_predictions(model_id, s, held_out, predict(enc, ctx, s, held_out), image_set="tagged")
        n[s] = len(held_out)
    return {"model": model_id, "checkpoint_mb": round(len(data) / 2**20, 1), "tagged_images": n}


def analyze(ctx: Context, settings: AnalysisSettings | None = None) -> dict:
    """The analyze stage: run the analyses with ``settings`` (default: :meth:`AnalysisSettings.for_config` of the
    run) and write the store; returns the headline numbers."""
    settings = AnalysisSettings.for_config(ctx.config) if settings is None else settings
    headline: dict = {}
    check_model_weights(ctx, load_registry(ctx))  # before computing anything
    with StoreWriter(ctx.config.store) as w:
        write_result(w, settings)
        with ctx.timed("store: inputs"):
            write_inputs(ctx, w)
            headline["encoders"] = write_encoders(ctx, w)
        with ctx.timed("store: live model"):
            headline["live_model"] = write_live_model(ctx, w)
        headline["clusters"] = write_all(w, clusters.run(ctx, settings))
        headline["rdms"] = write_all(w, rdms.run(ctx, settings))
        head_k92 = write_all(w, k92.run(ctx, settings))
        pair_rows = head_k92.pop("_pair_rows", [])
        headline["k92"] = head_k92
        headline["pair_model"] = write_all(w, pair_model.run(ctx, settings, pair_rows))
        headline["decoding"] = write_all(w, decoding.run(ctx, settings))
        skips = skipped_analyses(ctx)
        if skips:
            w.write_table("skipped_analyses", pd.DataFrame([k.as_row() for k in skips]))
        w.set_meta(simulated=ctx.dataset.simulated, dataset=str(ctx.dataset.path), backbone=ctx.config.backbone,
                   **ctx.weights_spec.to_meta(),  # which weights: live prediction rebuilds the same (or refuses)
                   brainviz_version=__version__, git_commit=_git_commit() or "",
                   config=ctx.config.to_dict(), headline=json.loads(json.dumps(headline, default=float)),
                   timings={k: round(v, 1) for k, v in ctx.timings.items()})
    return headline
