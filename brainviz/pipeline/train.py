"""The train stage: ridge, UE single, UE multi, UE pretrain and UE transfer models.

Models (ids are stable, so the store and the app can refer to them):

* ``ridge-<subj>``       RidgeEncoder per subject (per-vertex alpha by CV)
* ``ue_single-<subj>``   Universal Encoder trained on one subject
* ``ue_multi``           Universal Encoder trained jointly on every subject
* ``ue_pretrain-<subj>`` Universal Encoder trained on every subject except ``<subj>``
* ``ue_transfer-<subj>`` ``ue_pretrain`` + ``<subj>``'s voxel embeddings only (all its images)

Output (through :mod:`brainviz.pipeline.workdir`): checkpoints and ``models/registry.json``.

Finished models are kept: each registry entry carries a fingerprint of what the model was
trained on (:func:`model_fingerprint`: the training image keys in order, a digest of the
exact response rows fitted, the feature cache entry's identity and checksums, the model
settings and seed, the estimator's source code) and its checkpoint's size and mtime. A later
run reuses a model whose fingerprint and checkpoint are unchanged and trains it again when
anything changed (``reuse=False`` / ``--no-reuse``: always). The registry is written after
every finished model, so a run stopped during this stage keeps what it finished; a Universal
Encoder stopped mid-fit continues from its last epoch (:func:`fit_resumable`).

The Universal Encoders of :func:`ue_plan` can also be trained by ``torchrun -m precompute.distributed``
into the same work folder: its registry entries carry the same fingerprint (plus ``trained_by:
"torchrun"`` and :func:`fingerprint_inputs`), so this stage reuses them. Such an entry is never
trained over silently: when this run's inputs differ from those it was trained on, :func:`train` stops
with a one-line :class:`BrainVizDataError` naming what differs (:func:`check_torchrun_models`).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ..atomic import atomic_path
from ..ddp import dist_info
from ..encoders.ridge import RidgeEncoder
from ..encoders.universal import UniversalConfig, UniversalEncoder
from ..errors import BrainVizDataError
from ..jobs import run_jobs
from .context import Context
from .workdir import load_registry, models_dir, save_registry

__all__ = ["QUICK_UE", "ue_config", "train", "partial_checkpoint", "fit_resumable", "model_fingerprint",
           "training_data", "ue_plan", "ue_settings", "ue_code", "response_digests", "fingerprint_inputs",
           "check_torchrun_models", "record_model", "features_identity", "reusable", "ue_data", "TORCHRUN"]

QUICK_UE = dict(n_epochs=2, transfer_epochs=2, batch_voxels=500, proj_dim=16, embed_dim=32)


def ue_config(ctx: Context, **extra) -> UniversalConfig:
    """The Universal Encoder configuration of this run (CPU defaults + overrides)."""
    over = dict(QUICK_UE) if ctx.config.quick else {}
    over.update(ctx.config.ue_overrides)
    over.update(extra)
    return UniversalConfig(seed=ctx.config.seed, progress=ctx.config.progress, **over)


def training_data(ctx: Context, subject: str) -> tuple[list[str], Any]:
    """(image keys in row order, (n, V) responses): exactly what every model of ``subject`` is fitted on. The
    responses stay on disk (``ctx.responses(..., lazy=True)``): :class:`~brainviz.encoders.ridge.RidgeEncoder`
    reads them a chunk of vertices at a time (at NSD size not 1.5 GB per subject and fit)."""
    return list(ctx.images[subject].train_keys), ctx.responses(subject, "train", lazy=True)


def ue_data(ctx: Context, subjects: list[str]) -> dict:
    """{subject: (features, responses)} of the Universal Encoder's fit, both left on disk: the rows of the
    float16 feature cache (:class:`~brainviz.data.streaming.RowSubset` of its memmap) and the memory-mapped
    responses (``ctx.responses(..., lazy=True)``) of the subject's training images, in training-key order.
    The estimator reads the rows of each step (the same model as from in-memory copies, bit for bit), so a
    fit's memory does not grow with the data (at NSD size: not 1.5 GB of features + 1.5 GB of responses
    per subject and fit)."""
    from ..data.streaming import RowSubset

    fs = ctx.features
    return {s: (RowSubset(fs.layers, fs.indices(ctx.images[s].train_keys)), ctx.responses(s, "train", lazy=True))
            for s in subjects}


# --------------------------------------------------------------------------- fingerprints (reuse)
#: UniversalConfig fields that do not change the fitted model.
_RUNTIME_FIELDS = {"progress", "device", "predict_batch_images", "predict_batch_voxels"}


def _scan_responses(a) -> tuple[str, int]:
    """(digest of an (n, V) array's values, shape and dtype; how many of its V columns are constant),
    in one pass over blocks of rows."""
    a = np.asarray(a) if not hasattr(a, "shape") else a
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tuple(a.shape)}|{np.dtype(a.dtype).str}".encode())
    row = max(1, int(np.prod(a.shape[1:], dtype=np.int64)) * np.dtype(a.dtype).itemsize)
    step = max(1, (64 << 20) // row)
    lo = hi = None
    for i in range(0, a.shape[0], step):
        block = np.ascontiguousarray(a[i:i + step])
        h.update(block.tobytes())
        if block.ndim == 2 and len(block):
            bmin, bmax = block.min(axis=0), block.max(axis=0)
            lo = bmin if lo is None else np.minimum(lo, bmin)
            hi = bmax if hi is None else np.maximum(hi, bmax)
    return h.hexdigest(), (int((lo == hi).sum()) if lo is not None else 0)


def _array_digest(a) -> str:
    """Digest of an (n, ...) array's values, shape and dtype (read in blocks of rows)."""
    return _scan_responses(a)[0]


def _features_identity(fs) -> dict:
    """The feature cache entry behind ``fs``: its folder name (backbone, weights, version, image-set
    hash) and the checksums recorded when it was written; an in-memory FeatureSet: a digest of it."""
    filename = getattr(fs.layers, "filename", None)
    if filename:
        entry = Path(filename).parent
        try:
            files = json.loads((entry / "meta.json").read_text()).get("files", {})
            sums = {k: v.get("sha256") for k, v in files.items()}
        except (OSError, ValueError, AttributeError):
            sums = {}
        return {"cache_entry": entry.name, "sha256": sums}
    return {"backbone": fs.backbone, "weights": fs.weights_id, "layers": _array_digest(fs.layers),
            "keys": hashlib.sha1("\n".join(fs.keys).encode()).hexdigest()}


def features_identity(fs) -> dict:
    """:func:`_features_identity` (public: the distributed trainer fingerprints its models the same way)."""
    return _features_identity(fs)


def _source_digest(*objects) -> str:
    """Digest of the source files defining ``objects`` (an estimator's code: a change retrains)."""
    h = hashlib.sha1()
    for path in sorted({inspect.getsourcefile(o) for o in objects}):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def model_fingerprint(kind: str, settings: dict, data: dict, features: dict, code: str) -> str:
    """Hex digest of everything a fitted model depends on.

    ``data``: {subject: {"keys": training image keys in row order, "responses": digest of the
    exact (n, V) response rows fitted}}; ``settings``: the model's configuration and seed;
    ``features``: :func:`_features_identity`; ``code``: :func:`_source_digest` of the estimator.
    """
    blob = json.dumps({"kind": kind, "settings": settings, "data": data, "features": features, "code": code},
                      sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return hashlib.sha256(blob.encode()).hexdigest()


#: ``trained_by`` of the registry entries written by ``torchrun -m precompute.distributed``.
TORCHRUN = "torchrun"


def ue_plan(ctx: Context) -> list[tuple[str, str, list[str]]]:
    """The Universal Encoders this stage fits, ``[(model_id, kind, subjects)]``: ``ue_multi`` (every
    subject, when there are several), ``ue_pretrain-<new>`` (every subject but the transfer subject; kind
    ``ue_multi``) and ``ue_single-<s>`` for each subject of the main image set. (``ue_transfer-<new>`` is
    made from ``ue_pretrain-<new>`` by learning the new subject's embeddings only.)"""
    subjects = ctx.subject_names
    plan = []
    if len(subjects) > 1:
        plan.append(("ue_multi", "ue_multi", list(subjects)))
    new = ctx.transfer_subject
    if new is not None:
        plan.append((f"ue_pretrain-{new}", "ue_multi", [s for s in subjects if s != new]))
    plan += [(f"ue_single-{s}", "ue_single", [s]) for s in ctx.main_subjects]
    return plan


def ue_settings(cfg: UniversalConfig) -> dict:
    """The configuration fields that change a fitted Universal Encoder (what its fingerprint holds)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_FIELDS}


def ue_code() -> str:
    """:func:`_source_digest` of the Universal Encoder's code (estimator and network)."""
    from ..encoders import universal_module

    return _source_digest(UniversalEncoder, universal_module.UniversalEncoderModule)


def response_digests(ctx: Context, subjects: list[str]) -> dict[str, tuple[dict, int, int]]:
    """{subject: ({"keys": training image keys, "responses": digest}, constant vertices, vertices)}: the
    data part of :func:`model_fingerprint`, read from the memory-mapped responses one block of rows at a
    time (the digest of exactly the rows :func:`training_data` gives)."""
    out = {}
    for s in subjects:
        Y = ctx.responses(s, "train", lazy=True)
        digest, n_const = _scan_responses(Y)
        out[s] = ({"keys": list(ctx.images[s].train_keys), "responses": digest}, n_const, int(Y.shape[1]))
    return out


def fingerprint_inputs(settings: dict, data: dict, features: dict, code: str) -> dict:
    """What a fingerprint was made of, compactly (image keys as a digest), for saying what differs."""
    return {"settings": settings, "features": features, "code": code,
            "data": {s: {"n_images": len(d["keys"]), "responses": d["responses"],
                         "keys": hashlib.sha1("\n".join(d["keys"]).encode()).hexdigest()}
                     for s, d in data.items()}}


def _differences(was: dict | None, now: dict) -> str:
    """A short description of how the inputs ``now`` differ from ``was`` (:func:`fingerprint_inputs`)."""
    if not isinstance(was, dict):
        return "its inputs are not recorded"
    out = []
    a, b = was.get("settings") or {}, now["settings"]
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if changed:
        out.append("settings " + ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in changed[:4])
                   + (" ..." if len(changed) > 4 else ""))
    da, db = was.get("data") or {}, now["data"]
    if sorted(da) != sorted(db):
        out.append(f"subjects {sorted(da)} -> {sorted(db)}")
    else:
        for s in sorted(db):
            if da[s].get("keys") != db[s]["keys"]:
                out.append(f"{s}'s training images ({da[s].get('n_images')} -> {db[s]['n_images']})")
            elif da[s].get("responses") != db[s]["responses"]:
                out.append(f"{s}'s training responses")
    if was.get("features") != now["features"]:
        out.append("the image features (backbone, weights or feature cache entry)")
    if was.get("code") != now["code"]:
        out.append("the Universal Encoder's code")
    return "; ".join(out) or "its fingerprint"


def check_torchrun_models(registry_path: Path, earlier: dict, planned: dict[str, tuple[str, dict]]) -> list[str]:
    """The models of ``earlier`` trained by torchrun that this run reuses; raise when one cannot be.

    ``planned``: {model_id: (fingerprint, :func:`fingerprint_inputs`)} of the UE models this run fits. A
    torchrun entry must be one of them with the same fingerprint and an unchanged checkpoint; else a
    :class:`BrainVizDataError` naming the model and what differs (so a checkpoint trained with other data
    or settings is never used, and hours of multi-GPU training are never redone here silently)."""
    kept = []
    remedy = ("run the same `torchrun ... -m precompute.distributed` with this run's --dataset, --seed, --ue, "
              "--quick, --backbone/--weights and --transfer-subject, or pass --no-reuse to train every model here")
    for mid, entry in earlier.items():
        if not isinstance(entry, dict) or entry.get("trained_by") != TORCHRUN:
            continue
        if mid not in planned:
            raise BrainVizDataError(registry_path, f"{mid} was trained by torchrun but this run does not fit "
                                    f"it (its UE models: {', '.join(planned) or 'none'}); {remedy}")
        fp, inputs = planned[mid]
        if entry.get("fingerprint") != fp:
            raise BrainVizDataError(registry_path, f"{mid} was trained by torchrun on other inputs than this "
                                    f"run's ({_differences(entry.get('inputs'), inputs)}); {remedy}")
        if not _reusable(entry, fp):
            raise BrainVizDataError(registry_path, f"{mid}: its checkpoint {entry.get('checkpoint')} is missing "
                                    f"or changed since torchrun wrote it; {remedy}")
        kept.append(mid)
    return kept


def record_model(ctx: Context, model_id: str, entry: dict, fingerprint: str) -> dict:
    """Add one finished model to ``<work>/models/registry.json`` now (the other entries kept), with its
    backbone, weights, fingerprint and checkpoint stamp (what :func:`train` needs to reuse it)."""
    entry = dict(entry, backbone=ctx.config.backbone, weights_id=ctx.weights_spec.weights_id,
                 fingerprint=fingerprint, checkpoint_stamp=_checkpoint_stamp(Path(entry["checkpoint"])))
    try:
        registry = load_registry(ctx)
    except BrainVizDataError:
        registry = {}
    registry[model_id] = entry
    save_registry(ctx, registry)
    return entry


def _checkpoint_stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def reusable(entry: dict | None, fingerprint: str) -> bool:
    """Whether a registry entry can stand for a model with ``fingerprint`` (:func:`_reusable`)."""
    return _reusable(entry, fingerprint)


def _reusable(entry: dict | None, fingerprint: str) -> bool:
    """A registry entry of an earlier run that can stand for a model with ``fingerprint``."""
    if not entry or entry.get("fingerprint") != fingerprint or not entry.get("checkpoint"):
        return False
    stamp = _checkpoint_stamp(Path(entry["checkpoint"]))
    return stamp is not None and stamp == entry.get("checkpoint_stamp")


def train(ctx: Context, reuse: bool = True) -> dict:
    """Train ridge, UE-single, UE-multi, UE-pretrain and UE-transfer models; return the registry.

    ``reuse``: keep the models of an earlier run whose fingerprint (:func:`model_fingerprint`) and
    checkpoint are unchanged instead of training them again.

    Every registry entry records the backbone and its weights' identity (``backbone``,
    ``weights_id``): the analyze stage refuses to store models of other weights than its own."""
    mdir = models_dir(ctx)
    registry: dict = {}
    subjects = ctx.subject_names
    ctx.features  # noqa: B018  (compute / open the feature cache first, timed separately)
    made_with = {"backbone": ctx.config.backbone, "weights_id": ctx.weights_spec.weights_id}
    try:
        earlier = load_registry(ctx) if reuse else {}
    except BrainVizDataError:
        earlier = {}  # an unreadable registry: train everything again
    lock = threading.Lock()
    reused: list[str] = []
    digests: dict[str, dict] = {}
    features = _features_identity(ctx.features)

    def data_of(subs: list[str]) -> dict:
        with lock:
            for s in subs:
                if s not in digests:
                    d, n_const, n_vertices = response_digests(ctx, [s])[s]
                    _check_constant(s, n_const, n_vertices)
                    digests[s] = d
            return {s: digests[s] for s in subs}

    def _check_constant(s: str, n_const: int, n_vertices: int) -> None:
        """Constant training responses: an error when every vertex is constant, else a warning."""
        if n_const and n_const == n_vertices:
            raise BrainVizDataError(f"{s} training responses", "every vertex has the same response in every "
                                    "training image (constant data): there is nothing to learn from")
        if n_const and ctx.config.progress:
            print(f"warning: {s}: {n_const} of {n_vertices} vertices have the same training response in every "
                  "image; their accuracy (r) is undefined (NaN) and left out of medians", flush=True)

    for s in subjects:  # check (and digest) every subject's data before any fit starts
        data_of([s])

    def record(model_id: str, entry: dict, fingerprint: str) -> None:
        """Add a finished model and write the registry now (earlier entries not redone yet are kept)."""
        entry = dict(entry, **made_with, fingerprint=fingerprint,
                     checkpoint_stamp=_checkpoint_stamp(Path(entry["checkpoint"])))
        with lock:
            registry[model_id] = entry
            save_registry(ctx, {**{k: v for k, v in earlier.items() if k not in registry}, **registry})

    def keep(model_id: str, fingerprint: str) -> bool:
        """Reuse ``model_id`` of the earlier run when its fingerprint matches."""
        if not _reusable(earlier.get(model_id), fingerprint):
            return False
        with lock:
            registry[model_id] = dict(earlier[model_id])
            reused.append(model_id)
        return True

    with ctx.timed("train"):
        ridge_code = _source_digest(RidgeEncoder)

        def fit_ridge(s: str) -> None:
            t0 = time.perf_counter()
            model = RidgeEncoder(seed=ctx.config.seed, alphas=np.logspace(-1, 6, 8) if ctx.config.quick else np.logspace(-1, 6, 15))
            fp = model_fingerprint("ridge", model.get_params(), data_of([s]), features, ridge_code)
            if keep(f"ridge-{s}", fp):
                return
            keys, Y = training_data(ctx, s)
            model.fit(ctx.feature_subset(keys), Y)
            path = mdir / f"ridge-{s}.joblib"
            with atomic_path(path, ".joblib") as tmp:
                joblib.dump(model, tmp)
            record(f"ridge-{s}", dict(kind="ridge", subjects=[s], checkpoint=str(path),
                                      config={"alphas": model.alphas.tolist(), "cv": model.cv,
                                              "spatial_grid": model.spatial_grid},
                                      train_seconds=time.perf_counter() - t0), fp)

        cfg = ue_config(ctx)
        workers = ctx.workers(cfg.device)
        if workers > 1:  # side by side the epoch bars of two fits would garble each other
            cfg.progress = False
        settings, code = ue_settings(cfg), ue_code()

        def named(model_id: str, subs: list[str]) -> str:
            return f"{model_id} ({', '.join(subs)})"

        def ue_fingerprint(kind: str, subs: list[str]) -> str:
            return model_fingerprint(kind, settings, data_of(subs), features, code)

        # models trained by torchrun (precompute.distributed) are reused or refused, never trained over
        planned = {mid: (ue_fingerprint(kind, subs), fingerprint_inputs(settings, data_of(subs), features, code))
                   for mid, kind, subs in ue_plan(ctx)}
        from_torchrun = check_torchrun_models(mdir / "registry.json", earlier, planned)
        if from_torchrun and ctx.config.progress:
            sizes = sorted({str(earlier[m].get("world_size", "?")) for m in from_torchrun})
            print(f"reusing {', '.join(from_torchrun)} trained by torchrun ({'/'.join(sizes)} processes) in {mdir}",
                  flush=True)

        def fit_ue(model_id: str, kind: str, subs: list[str]) -> UniversalEncoder | None:
            """Fit (or keep) a Universal Encoder; returns it when fitted now, None when reused."""
            fp = ue_fingerprint(kind, subs)
            if keep(model_id, fp):
                return None
            t0 = time.perf_counter()
            path = mdir / f"{model_id}.pt"
            enc = fit_resumable(cfg, ue_data(ctx, subs), path)
            record(model_id, dict(kind=kind, subjects=subs, checkpoint=str(path), config=cfg.to_dict(),
                                  train_seconds=time.perf_counter() - t0,
                                  embedding_cosine_to_init=dict(enc.embedding_cosine_)), fp)
            if ctx.config.progress:  # near 1 = the embeddings are still mostly their random start
                print(f"{model_id}: median cosine(final, initial voxel embedding) "
                      + ", ".join(f"{s} {c:.2f}" for s, c in enc.embedding_cosine_.items()), flush=True)
            return enc

        def pretrain_and_transfer(new: str) -> None:
            others = [s for s in subjects if s != new]
            pre = fit_ue(f"ue_pretrain-{new}", "ue_multi", others)
            pre_fp = registry[f"ue_pretrain-{new}"]["fingerprint"]
            fp = model_fingerprint("ue_transfer", {**settings, "pretrained": pre_fp}, data_of([new]), features,
                                   code)
            if keep(f"ue_transfer-{new}", fp):
                return
            if pre is None:  # the pre-trained model was kept: start from its checkpoint
                pre = UniversalEncoder.load(registry[f"ue_pretrain-{new}"]["checkpoint"])
                for name in ("transfer_updates", "transfer_epochs", "transfer_lr", "seed", "progress"):
                    setattr(pre.config, name, getattr(cfg, name))
            t0 = time.perf_counter()
            X, Y = ue_data(ctx, [new])[new]
            pre.transfer(new, X, Y)
            path = mdir / f"ue_transfer-{new}.pt"
            pre.save(path)
            record(f"ue_transfer-{new}", dict(kind="ue_transfer", subjects=[new], checkpoint=str(path),
                                              config=cfg.to_dict(), pretrained_on=others,
                                              train_seconds=time.perf_counter() - t0), fp)

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
    if reused and ctx.config.progress:
        print(f"kept {len(reused)} of {len(registry)} models of an earlier run (same data, settings and code): "
              + ", ".join(sorted(reused)), flush=True)
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
    checkpoint is removed once ``final`` is written. In a ``torch.distributed`` job every rank calls it
    (DDP training, :class:`UniversalEncoder`) and rank 0 writes both checkpoints.
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
    if dist_info().is_main:  # in a distributed job rank 0 writes the checkpoints (every rank has the model)
        enc.save(final)
        partial.unlink(missing_ok=True)
    return enc
