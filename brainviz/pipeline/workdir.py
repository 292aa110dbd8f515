"""The work folder: the one reader / writer of a precompute run's intermediate results.

Every stage goes through these functions (no stage builds a work-folder path itself)::

    <work>/models/registry.json               {model_id: {kind, subjects, checkpoint, config, train_seconds, ...}}
    <work>/models/<model_id>.pt | .joblib     checkpoints (UniversalEncoder / RidgeEncoder)
    <work>/predictions/<model_id>/<subj>.npy  (n_test, V) float32 test predictions, test-image order
    <work>/results/transfer_curve.csv         the transfer curve (costly to recompute: kept like a checkpoint)
    <work>/stages.json                        {stage: {fingerprint, outputs: {file: [size, mtime_ns]}}}

The work folder keeps what makes a run resumable (checkpoints, test predictions, the transfer curve), not
the results: the analyze stage scores the predictions and writes every result into the store once
(:mod:`brainviz.pipeline.analyses`, :mod:`brainviz.pipeline.store_results`). ``results/encoders.csv``,
``roi_metrics.csv`` and ``vertex_metrics.npz`` of work folders written by older versions are not read.

``ctx`` is anything with a ``work`` path (a :class:`~brainviz.pipeline.context.Context`).
Writes are atomic (temp file renamed into place).

Finished stages are recorded in ``stages.json`` (:func:`mark_stage`) with a fingerprint of their
inputs (:func:`stage_fingerprint`: the models' fingerprints, every dataset file's size and
mtime, the run's settings and the BrainViz source) and the size and mtime of every file they
wrote; :func:`finished_stage` tells ``precompute all`` that a stage can be kept as it is.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..atomic import atomic_path, save_npy
from ..encoders.ridge import RidgeEncoder
from ..encoders.universal import UniversalEncoder
from ..errors import BrainVizDataError
from ..safe_load import load_joblib

__all__ = ["models_dir", "save_registry", "load_registry", "load_model", "prediction_path", "save_predictions",
           "load_predictions", "write_results", "read_results", "stage_fingerprint", "finished_stage", "mark_stage"]


# --------------------------------------------------------------------------- models

def models_dir(ctx: Any) -> Path:
    """``<work>/models`` (created)."""
    d = ctx.work / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_registry(ctx: Any, registry: dict) -> None:
    """Write ``<work>/models/registry.json``; checkpoints are recorded relative to ``models/`` (the
    work folder can move), :func:`load_registry` resolves them."""
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


def load_registry(ctx: Any) -> dict:
    """{model_id: {kind, subjects, checkpoint, config, train_seconds}} written by the train stage.

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


def load_model(entry: Mapping):
    """Load a registry entry's model (RidgeEncoder or UniversalEncoder)."""
    if entry["kind"] == "ridge":
        # a restricted unpickler: a ridge checkpoint from someone else's work folder cannot run code
        return load_joblib(entry["checkpoint"], [RidgeEncoder.__module__], expected="a ridge checkpoint")
    return UniversalEncoder.load(entry["checkpoint"])


# --------------------------------------------------------------------------- predictions

def prediction_path(ctx: Any, model_id: str, subject: str) -> Path:
    """``<work>/predictions/<model_id>/<subject>.npy``."""
    return ctx.work / "predictions" / model_id / f"{subject}.npy"


def save_predictions(ctx: Any, model_id: str, subject: str, pred: np.ndarray) -> None:
    """Write the (n_test, V) float32 test predictions of ``model_id`` for ``subject``."""
    save_npy(prediction_path(ctx, model_id, subject), pred)


def load_predictions(ctx: Any, model_id: str, subject: str) -> np.ndarray | None:
    """The test predictions written by :func:`save_predictions`, or None when there are none."""
    p = prediction_path(ctx, model_id, subject)
    return np.load(p) if p.exists() else None


# --------------------------------------------------------------------------- results tables

def _results(ctx: Any) -> Path:
    return ctx.work / "results"


def write_results(ctx: Any, name: str, df: pd.DataFrame) -> Path:
    """Write ``<work>/results/<name>.csv`` (the transfer curve); returns its path."""
    path = _results(ctx) / f"{name}.csv"
    with atomic_path(path, ".csv") as tmp:
        df.to_csv(tmp, index=False)
    return path


def read_results(ctx: Any, name: str) -> pd.DataFrame | None:
    """``<work>/results/<name>.csv``, or None when that table was not written."""
    path = _results(ctx) / f"{name}.csv"
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a table written without rows (nothing could be evaluated)
        return pd.DataFrame()


# --------------------------------------------------------------------------- finished stages

def _stages_file(ctx: Any) -> Path:
    return ctx.work / "stages.json"


def _stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def _source_identity() -> str:
    """Digest of the BrainViz package's source files (a code change redoes every stage)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _folder_identity(folder: Path) -> str:
    """Digest of every file's relative path, size and mtime under ``folder`` (a dataset)."""
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def stage_fingerprint(ctx: Any, stage: str, registry: Mapping | None = None, **inputs: Any) -> str:
    """Hex digest of what ``stage`` depends on: the fingerprints of ``registry``'s models, every file of
    the dataset (path, size, mtime), the run's settings (``ctx.config``, progress display aside),
    the BrainViz source, and any ``inputs`` given."""
    config = {k: v for k, v in ctx.config.to_dict().items() if k not in ("progress", "store")}
    models = {m: (e.get("fingerprint"), _stamp(Path(e["checkpoint"])) if e.get("checkpoint") else None)
              for m, e in (registry or {}).items()}
    blob = json.dumps({"stage": stage, "config": config, "models": models, "workers": ctx.workers(),
                       "dataset": _folder_identity(Path(ctx.dataset.path)), "code": _source_identity(),
                       "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_stages(ctx: Any) -> dict:
    try:
        out = json.loads(_stages_file(ctx).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return out if isinstance(out, dict) else {}


def finished_stage(ctx: Any, stage: str, fingerprint: str) -> bool:
    """True when ``stage`` was finished with this ``fingerprint`` and every file it wrote is unchanged."""
    rec = _read_stages(ctx).get(stage)
    if not isinstance(rec, dict) or rec.get("fingerprint") != fingerprint or not isinstance(rec.get("outputs"), dict):
        return False
    return all(_stamp(ctx.work / rel) == stamp for rel, stamp in rec["outputs"].items())


def mark_stage(ctx: Any, stage: str, fingerprint: str, outputs: list[str | Path]) -> None:
    """Record ``stage`` as finished with ``fingerprint`` and the files (or folders) it wrote."""
    files: dict[str, list[int] | None] = {}
    for out in outputs:
        p = Path(out) if Path(out).is_absolute() else ctx.work / out
        for f in ([q for q in sorted(p.rglob("*")) if q.is_file()] if p.is_dir() else [p]):
            files[f.relative_to(ctx.work).as_posix()] = _stamp(f)
    recs = _read_stages(ctx)
    recs[stage] = {"fingerprint": fingerprint, "outputs": files}
    with atomic_path(_stages_file(ctx), ".json") as tmp:
        tmp.write_text(json.dumps(recs, indent=1))
