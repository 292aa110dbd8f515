"""Train the encoders and evaluate them on held-out test images.

Models (ids are stable, so the store and the app can refer to them):

* ``ridge-<subj>``       RidgeEncoder per subject (per-vertex alpha by CV)
* ``ue_single-<subj>``   Universal Encoder trained on one subject
* ``ue_multi``           Universal Encoder trained jointly on every subject
* ``ue_pretrain-<subj>`` Universal Encoder trained on every subject except ``<subj>``
* ``ue_transfer-<subj>`` ``ue_pretrain`` + ``<subj>``'s voxel embeddings only (all its images)

Outputs in the work folder: ``models/`` (checkpoints), ``predictions/<model>/<subj>.npy``
((n_test, V) float32, test-image order), ``results/encoders.csv`` (one row per
model x subject), ``results/roi_metrics.csv``, ``results/vertex_metrics.npz``,
``results/transfer_curve.csv``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from .. import progress as _progress
from ..atomic import atomic_path, save_npy
from ..data.algonauts import ROI_CLASSES, ROI_GROUPS
from ..encoders.ridge import RidgeEncoder
from ..encoders.universal import UniversalConfig, UniversalEncoder
from ..errors import BrainVizDataError
from ..safe_load import load_joblib
from ..metrics import (noise_ceiling_from_repeats, pearson_per_vertex, retrieval_ranks, retrieval_summary,
                       roi_summary)
from .context import Context

QUICK_UE = dict(n_epochs=2, transfer_epochs=2, batch_voxels=500, proj_dim=16, embed_dim=32)
#: Random image subsamples per transfer-curve size (report 004 Fig. 6: mean and sd over runs).
TRANSFER_REPEATS = 3


def ue_config(ctx: Context, **extra) -> UniversalConfig:
    """The Universal Encoder configuration of this run (CPU defaults + overrides)."""
    over = dict(QUICK_UE) if ctx.config.quick else {}
    over.update(ctx.config.ue_overrides)
    over.update(extra)
    return UniversalConfig(seed=ctx.config.seed, progress=ctx.config.progress, **over)


def _models_dir(ctx: Context) -> Path:
    d = ctx.work / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _ue_data(ctx: Context, subjects: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s: (ctx.layers(ctx.images[s].train_keys), ctx.responses(s, "train")) for s in subjects}


def _save_registry(ctx: Context, registry: dict) -> None:
    # checkpoints are recorded relative to models/ (the work folder can move); load_registry resolves them
    mdir = (ctx.work / "models").absolute()
    out = {}
    for mid, e in registry.items():
        e = dict(e)
        ck = Path(e["checkpoint"]).absolute() if e.get("checkpoint") else None
        if ck is not None and mdir in ck.parents:
            e["checkpoint"] = str(ck.relative_to(mdir))
        out[mid] = e
    with atomic_path(mdir / "registry.json", ".json") as tmp:
        tmp.write_text(json.dumps(out, indent=1))


def load_registry(ctx: Context) -> dict:
    """{model_id: {kind, subjects, checkpoint, config, train_seconds}} written by :func:`train`.

    ``checkpoint`` is returned as a path inside this work folder's ``models/`` (stored relative
    to it; an absolute path of an older registry that no longer exists is looked up there by name).
    """
    mdir = ctx.work / "models"
    p = mdir / "registry.json"
    if not p.exists():
        return {}
    try:
        reg = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise BrainVizDataError(p, f"not valid JSON ({exc})") from None
    if not isinstance(reg, dict) or not all(isinstance(e, dict) for e in reg.values()):
        raise BrainVizDataError(p, "expected a JSON object {model_id: {kind, subjects, checkpoint, ...}}")
    for e in reg.values():
        ck = e.get("checkpoint")
        if ck:
            ck = Path(ck)
            if not ck.is_absolute():
                ck = mdir / ck
            elif not ck.exists() and (mdir / ck.name).exists():
                ck = mdir / ck.name
            e["checkpoint"] = str(ck)
    return reg


def train(ctx: Context) -> dict:
    """Train ridge, UE-single, UE-multi, UE-pretrain and UE-transfer models; return the registry."""
    mdir = _models_dir(ctx)
    registry: dict = {}
    subjects = ctx.subject_names
    ctx.features  # noqa: B018  (compute / open the feature cache first, timed separately)
    with ctx.timed("train"):
        for s in _progress.bar(subjects, desc="ridge", enabled=ctx.config.progress):
            _progress.step(f"ridge-{s} ({s})")
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

        def fit_ue(model_id: str, kind: str, subs: list[str]) -> UniversalEncoder:
            _progress.step(f"{model_id} ({', '.join(subs)})")
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

        for s in ctx.main_subjects:
            fit_ue(f"ue_single-{s}", "ue_single", [s])
        if len(subjects) > 1:
            fit_ue("ue_multi", "ue_multi", subjects)
        new = ctx.transfer_subject
        if new is not None:
            pre = fit_ue(f"ue_pretrain-{new}", "ue_multi", [s for s in subjects if s != new])
            _progress.step(f"ue_transfer-{new} ({new})")
            t0 = time.perf_counter()
            X, Y = _ue_data(ctx, [new])[new]
            pre.transfer(new, X, Y)
            path = mdir / f"ue_transfer-{new}.pt"
            pre.save(path)
            registry[f"ue_transfer-{new}"] = dict(kind="ue_transfer", subjects=[new], checkpoint=str(path),
                                                 config=cfg.to_dict(), pretrained_on=[s for s in subjects if s != new],
                                                 train_seconds=time.perf_counter() - t0)
    _save_registry(ctx, registry)
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


def load_model(entry: dict):
    """Load a registry entry's model (RidgeEncoder or UniversalEncoder)."""
    if entry["kind"] == "ridge":
        # a restricted unpickler: a ridge checkpoint from someone else's work folder cannot run code
        return load_joblib(entry["checkpoint"], [RidgeEncoder.__module__], expected="a ridge checkpoint")
    return UniversalEncoder.load(entry["checkpoint"])


def predict(model, ctx: Context, subject: str, keys: list[str]) -> np.ndarray:
    """(n, V) predictions of ``model`` (any encoder: ``predict(X, subject=...)``) for ``subject`` on images ``keys``."""
    return model.predict(ctx.feature_subset(keys), subject=subject).astype(np.float32)


# --------------------------------------------------------------------------- evaluation

def noise_ceiling(ctx: Context, subject: str) -> np.ndarray | None:
    """(V,) noise ceiling in percent from the subject's test (else train) repetitions, or None."""
    sub = ctx.dataset.subjects[subject]
    for split in ("test", "train"):
        if sub.has_repeats(split):
            return noise_ceiling_from_repeats(sub.repeats(split))
    return None


def vertex_scores(y_true: np.ndarray, y_pred: np.ndarray, nc_percent: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-vertex r, noise ceiling (fraction) and noise-normalized accuracy r^2/NC (negative r counts as 0)."""
    r = pearson_per_vertex(y_true, y_pred)
    out = {"r": r}
    if nc_percent is not None:
        nc = np.asarray(nc_percent, dtype=np.float64) / 100.0
        with np.errstate(divide="ignore", invalid="ignore"):
            nna = np.where(nc > 0, np.clip(np.nan_to_num(r), 0, None) ** 2 / nc, np.nan)
        out.update(nc=nc, nna=np.clip(nna, 0, 1))
    return out


def roi_labels(ctx: Context, subject: str) -> dict[str, np.ndarray]:
    """{ROI or group name: (V,) bool} used for per-ROI summaries (only non-empty ones)."""
    sub = ctx.dataset.subjects[subject]
    out = {"all": np.ones(sum(sub.n_vertices.values()), bool)}
    for group in ROI_GROUPS:
        m = sub.roi_mask(group)
        if m.any():
            out[group] = m
    for cls in ("prf-visualrois", "floc-faces", "floc-places", "floc-bodies", "floc-words"):
        if cls in sub.roi_classes:
            for name in ROI_CLASSES[cls].values():
                if name != "Unknown":
                    m = sub.roi_mask(name)
                    if m.any():
                        out[name] = m
    return out


def evaluate(ctx: Context, registry: dict | None = None) -> pd.DataFrame:
    """Predict every model's test images, score them, and write the results tables."""
    registry = registry or load_registry(ctx)
    rows, roi_rows, vm = [], [], {}
    res_dir = ctx.work / "results"
    with ctx.timed("evaluate"):
        for model_id, entry in _progress.bar(registry.items(), desc="evaluate", enabled=ctx.config.progress,
                                             total=len(registry)):
            _progress.step(f"{model_id} ({', '.join(entry['subjects'])})")
            model = load_model(entry)
            for s in entry["subjects"]:
                if not ctx.has_test(s):
                    continue
                keys = ctx.images[s].test_keys
                y = ctx.responses(s, "test")
                pred = predict(model, ctx, s, keys)
                save_npy(ctx.work / "predictions" / model_id / f"{s}.npy", pred)
                nc = noise_ceiling(ctx, s)
                sc = vertex_scores(y, pred, nc)
                vm[f"{model_id}|{s}"] = sc
                ranks = retrieval_ranks(y, pred)
                ret = retrieval_summary(ranks)
                r = sc["r"]
                rows.append(dict(model_id=model_id, kind=entry["kind"], subject=s, n_train=len(ctx.images[s].train_keys),
                                 n_test=len(keys), median_r=float(np.nanmedian(r)),
                                 p25=float(np.nanpercentile(r, 25)), p75=float(np.nanpercentile(r, 75)),
                                 nna=float(np.nanmedian(sc["nna"]) * 100) if "nna" in sc else np.nan,
                                 mean_rank=ret["mean_rank"], top1_pct=ret["top1"], top5_pct=ret["top5"],
                                 train_seconds=entry.get("train_seconds", np.nan)))
                for roi, mask in roi_labels(ctx, s).items():
                    rr = r[mask]
                    roi_rows.append(dict(model_id=model_id, subject=s, roi=roi, median_r=float(np.nanmedian(rr)),
                                         p25=float(np.nanpercentile(rr, 25)), p75=float(np.nanpercentile(rr, 75)),
                                         median_nna=float(np.nanmedian(sc["nna"][mask])) if "nna" in sc else np.nan,
                                         n=int(mask.sum())))
    table = pd.DataFrame(rows)
    _write_csv(res_dir / "encoders.csv", table)
    _write_csv(res_dir / "roi_metrics.csv", pd.DataFrame(roi_rows))
    with atomic_path(res_dir / "vertex_metrics.npz", ".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{f"{k}|{m}": v for k, d in vm.items() for m, v in d.items()})
    return table


def transfer_curve(ctx: Context) -> pd.DataFrame:
    """Median test r of the held-out subject vs number of its training images.

    ``ue_transfer``: the pre-trained Universal Encoder (other subjects only) with
    only the new subject's voxel embeddings learned; ``ridge``: a ridge model
    trained from scratch on the same images. Same random subsets for both; each size
    below "all" is run on TRANSFER_REPEATS subsamples (column ``seed`` = subsample index),
    as report 004 Fig. 6 (mean and sd over runs).
    """
    new = ctx.transfer_subject
    registry = load_registry(ctx)
    pre_id = f"ue_pretrain-{new}"
    if new is None or pre_id not in registry or not ctx.has_test(new):
        return pd.DataFrame()
    keys = ctx.images[new].train_keys
    Y = ctx.responses(new, "train")
    test_keys = ctx.images[new].test_keys
    y_test = ctx.responses(new, "test")
    X_test = ctx.layers(test_keys)
    rows = []
    sizes = [n if n and n < len(keys) else len(keys) for n in ctx.config.transfer_sizes]
    repeats = 1 if ctx.config.quick else TRANSFER_REPEATS
    runs = [(n, rep) for n in sorted(set(sizes)) for rep in range(repeats if n < len(keys) else 1)]
    with ctx.timed("transfer_curve"):
        for n, rep in _progress.bar(runs, desc="transfer curve", enabled=ctx.config.progress):
            _progress.step(f"ue_pretrain-{new} + {new} with {n} images (subsample {rep + 1})")
            # subsample `rep` of size n, the same images for both methods; "all images" runs once
            rng = np.random.default_rng([ctx.config.seed, n, rep])
            idx = np.sort(rng.choice(len(keys), n, replace=False))
            sub_keys = [keys[i] for i in idx]
            enc = UniversalEncoder.load(registry[pre_id]["checkpoint"])
            enc.config.progress = False
            enc.config.seed = ctx.config.seed + rep  # each run also starts the new embeddings afresh
            enc.transfer(new, ctx.layers(sub_keys), Y[idx])
            r_ue = pearson_per_vertex(y_test, enc.predict(X_test, new))
            ridge = RidgeEncoder(seed=ctx.config.seed, cv=min(5, n)).fit(ctx.feature_subset(sub_keys), Y[idx])
            r_ridge = pearson_per_vertex(y_test, ridge.predict(ctx.feature_subset(test_keys)))
            for method, r in (("ue_transfer", r_ue), ("ridge", r_ridge)):
                rows.append(dict(subject=new, n_train=int(n), method=method, median_r=float(np.nanmedian(r)),
                                 seed=int(rep)))
    table = pd.DataFrame(rows)
    _write_csv(ctx.work / "results" / "transfer_curve.csv", table)
    return table


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path, ".csv") as tmp:
        df.to_csv(tmp, index=False)
