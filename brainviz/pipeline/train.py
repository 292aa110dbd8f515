"""The train stage: ridge, UE single, UE multi, UE pretrain and UE transfer models.

Models (ids are stable, so the store and the app can refer to them):

* ``ridge-<subj>``       RidgeEncoder per subject (per-vertex alpha by CV)
* ``ue_single-<subj>``   Universal Encoder trained on one subject
* ``ue_multi``           Universal Encoder trained jointly on every subject
* ``ue_pretrain-<subj>`` Universal Encoder trained on every subject except ``<subj>``
* ``ue_transfer-<subj>`` ``ue_pretrain`` + ``<subj>``'s voxel embeddings only (all its images)

Output (through :mod:`brainviz.pipeline.workdir`): checkpoints and ``models/registry.json``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import joblib
import numpy as np

from ..atomic import atomic_path
from ..encoders.ridge import RidgeEncoder
from ..encoders.universal import UniversalConfig, UniversalEncoder
from ..errors import BrainVizDataError
from ..jobs import run_jobs
from .context import Context
from .workdir import models_dir, save_registry

__all__ = ["QUICK_UE", "ue_config", "train", "partial_checkpoint", "fit_resumable"]

QUICK_UE = dict(n_epochs=2, transfer_epochs=2, batch_voxels=500, proj_dim=16, embed_dim=32)


def ue_config(ctx: Context, **extra) -> UniversalConfig:
    """The Universal Encoder configuration of this run (CPU defaults + overrides)."""
    over = dict(QUICK_UE) if ctx.config.quick else {}
    over.update(ctx.config.ue_overrides)
    over.update(extra)
    return UniversalConfig(seed=ctx.config.seed, progress=ctx.config.progress, **over)


def _ue_data(ctx: Context, subjects: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s: (ctx.layers(ctx.images[s].train_keys), ctx.responses(s, "train")) for s in subjects}


def train(ctx: Context) -> dict:
    """Train ridge, UE-single, UE-multi, UE-pretrain and UE-transfer models; return the registry.

    Every registry entry records the backbone and its weights' identity (``backbone``,
    ``weights_id``): the analyze stage refuses to store models of other weights than its own."""
    mdir = models_dir(ctx)
    registry: dict = {}
    subjects = ctx.subject_names
    ctx.features  # noqa: B018  (compute / open the feature cache first, timed separately)
    made_with = {"backbone": ctx.config.backbone, "weights_id": ctx.weights_spec.weights_id}
    with ctx.timed("train"):
        def fit_ridge(s: str) -> None:
            t0 = time.perf_counter()
            model = RidgeEncoder(seed=ctx.config.seed, alphas=np.logspace(-1, 6, 8) if ctx.config.quick else np.logspace(-1, 6, 15))
            model.fit(ctx.feature_subset(ctx.images[s].train_keys), ctx.responses(s, "train"))
            path = mdir / f"ridge-{s}.joblib"
            with atomic_path(path, ".joblib") as tmp:
                joblib.dump(model, tmp)
            registry[f"ridge-{s}"] = dict(kind="ridge", subjects=[s], checkpoint=str(path),
                                          config={"alphas": model.alphas.tolist(), "cv": model.cv,
                                                  "spatial_grid": model.spatial_grid},
                                          train_seconds=time.perf_counter() - t0)

        cfg = ue_config(ctx)
        workers = ctx.workers(cfg.device)
        if workers > 1:  # side by side the epoch bars of two fits would garble each other
            cfg.progress = False

        def named(model_id: str, subs: list[str]) -> str:
            return f"{model_id} ({', '.join(subs)})"

        def fit_ue(model_id: str, kind: str, subs: list[str]) -> UniversalEncoder:
            t0 = time.perf_counter()
            path = mdir / f"{model_id}.pt"
            enc = fit_resumable(cfg, _ue_data(ctx, subs), path)
            registry[model_id] = dict(kind=kind, subjects=subs, checkpoint=str(path), config=cfg.to_dict(),
                                      train_seconds=time.perf_counter() - t0,
                                      embedding_cosine_to_init=dict(enc.embedding_cosine_))
            if ctx.config.progress:  # near 1 = the embeddings are still mostly their random start
                print(f"{model_id}: median cosine(final, initial voxel embedding) "
                      + ", ".join(f"{s} {c:.2f}" for s, c in enc.embedding_cosine_.items()), flush=True)
            return enc

        def pretrain_and_transfer(new: str) -> None:
            pre = fit_ue(f"ue_pretrain-{new}", "ue_multi", [s for s in subjects if s != new])
            t0 = time.perf_counter()
            X, Y = _ue_data(ctx, [new])[new]
            pre.transfer(new, X, Y)
            path = mdir / f"ue_transfer-{new}.pt"
            pre.save(path)
            registry[f"ue_transfer-{new}"] = dict(kind="ue_transfer", subjects=[new], checkpoint=str(path),
                                                 config=cfg.to_dict(), pretrained_on=[s for s in subjects if s != new],
                                                 train_seconds=time.perf_counter() - t0)

        # longest first, so that the workers finish close together (demo brain, one thread each: the joint
        # model 277 s, the pre-training 240 s, each single-subject model 35 s)
        jobs = []
        if len(subjects) > 1:
            jobs.append((named("ue_multi", subjects), lambda: fit_ue("ue_multi", "ue_multi", subjects)))
        new = ctx.transfer_subject
        if new is not None:
            jobs.append((named(f"ue_pretrain-{new}", [s for s in subjects if s != new]) + f", then ue_transfer-{new}",
                         lambda: pretrain_and_transfer(new)))
        jobs += [(named(f"ue_single-{s}", [s]), lambda s=s: fit_ue(f"ue_single-{s}", "ue_single", [s]))
                 for s in ctx.main_subjects]
        jobs += [(named(f"ridge-{s}", [s]), lambda s=s: fit_ridge(s)) for s in subjects]  # seconds each
        run_jobs(jobs, workers)
    # the order of a one-after-the-other run, whatever order the jobs finished in
    order = [f"ridge-{s}" for s in subjects] + [f"ue_single-{s}" for s in ctx.main_subjects] + ["ue_multi"]
    order += [f"ue_pretrain-{new}", f"ue_transfer-{new}"] if new is not None else []
    registry = {k: {**registry[k], **made_with} for k in order if k in registry}
    save_registry(ctx, registry)
    return registry


def partial_checkpoint(cfg: UniversalConfig, data: dict, final: Path) -> Path:
    """Where :func:`fit_resumable` keeps the per-epoch checkpoint of the model bound for ``final``.

    The name carries a fingerprint of the settings and the data shapes (every config field
    except ``n_epochs`` and the run-time ones, subject names, image and voxel counts), so a
    checkpoint of a different run is never resumed; ``n_epochs`` may grow between attempts.
    """
    runtime = {"n_epochs", "progress", "device", "amp", "compile", "predict_batch_images", "predict_batch_voxels"}
    key = {k: v for k, v in cfg.to_dict().items() if k not in runtime}
    key["data"] = {s: [int(np.shape(getattr(X, "layers", X))[0]), int(np.shape(Y)[1])] for s, (X, Y) in data.items()}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return final.with_name(f"{final.stem}.{digest}.partial.pt")


def fit_resumable(cfg: UniversalConfig, data: dict, final: Path) -> UniversalEncoder:
    """Train a Universal Encoder on ``data`` ({subject: (X, Y)}) and save it to ``final``.

    A checkpoint is written after every epoch (:func:`partial_checkpoint`); a run that was
    interrupted (Ctrl-C, a killed job) continues from its last finished epoch when the same
    command runs again, and gives the same model as an uninterrupted run. The partial
    checkpoint is removed once ``final`` is written.
    """
    partial = partial_checkpoint(cfg, data, final)
    enc = UniversalEncoder(cfg)
    if partial.is_file():
        try:
            enc.fit(data, resume_from=partial, checkpoint_path=partial)
        except BrainVizDataError:  # unreadable / incompatible: start over
            enc = UniversalEncoder(cfg).fit(data, checkpoint_path=partial)
    else:
        enc.fit(data, checkpoint_path=partial)
    enc.save(final)
    partial.unlink(missing_ok=True)
    return enc
