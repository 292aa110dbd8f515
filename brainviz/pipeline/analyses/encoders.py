"""Encoder scores on the evaluation images: :class:`EncoderScores` per model and subject (per-vertex r,
noise ceiling and noise-normalized accuracy, retrieval, per-ROI summaries) and the :class:`TransferCurve`.

The scores are computed from the evaluate stage's test predictions (the work folder keeps the predictions,
what makes a run resumable, not the scores): :func:`run` loads each model's predictions, scores them and yields
the results; the analyze stage writes them once (:mod:`brainviz.pipeline.store_results`). Scoring is cheap
(Pearson per vertex on (n_test, V) arrays) next to predicting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from ...metrics import nna_per_vertex, pattern_correlations, pearson_per_vertex, retrieval_ranks, retrieval_summary, \
    roi_summary
from ...names import ROI_CLASSES, ROI_GROUPS
from ..context import Context
from ..workdir import load_predictions, load_registry, read_results

#: The columns of :func:`encoder_table` (one row per model x subject).
TABLE_COLUMNS = ("model_id", "kind", "subject", "n_train", "n_test", "median_r", "p25", "p75", "median_nna",
                 "mean_rank", "top1", "top5", "train_seconds")


@dataclass(frozen=True)
class EncoderScores:
    """One model's scores on one subject's evaluation images (n_test of them; fractions, never percent).

    * ``r``: (V,) Pearson r per vertex; ``nc``: (V,) noise ceiling and ``nna``: (V,) noise-normalized accuracy
      r^2 / nc (negative r counts as 0), None without a noise ceiling.
    * ``retrieval``: {mean_rank, top1, top5}: each test image identified among the n_test by its pattern.
    * ``rois``: roi, median_r, p25, p75, median_nna, n: per ROI or ROI group ('all' first; table ``roi_metrics``).
    * ``n_train``, ``train_seconds``: of the model (the encoders table's row, :meth:`row`).
    """

    model_id: str
    kind: str
    subject: str
    n_train: int
    n_test: int
    r: np.ndarray
    nc: np.ndarray | None
    nna: np.ndarray | None
    retrieval: dict
    rois: pd.DataFrame
    train_seconds: float = float("nan")

    def row(self) -> dict:
        """The encoders table's row (:data:`TABLE_COLUMNS`): whole-cortex median r, p25, p75, median nna, retrieval."""
        whole = self.rois.iloc[0]
        return dict(model_id=self.model_id, kind=self.kind, subject=self.subject, n_train=self.n_train,
                    n_test=self.n_test, median_r=whole["median_r"], p25=whole["p25"], p75=whole["p75"],
                    median_nna=whole["median_nna"], mean_rank=self.retrieval["mean_rank"],
                    top1=self.retrieval["top1"], top5=self.retrieval["top5"], train_seconds=self.train_seconds)


@dataclass(frozen=True)
class EvaluationPredictions:
    """``values``: (n_test, V) float32 predictions of ``model_id`` for ``subject``'s evaluation images
    ``image_keys`` (test-image order): what the scores were computed from, kept in the store for the pages."""

    model_id: str
    subject: str
    image_keys: list[str]
    values: np.ndarray


@dataclass(frozen=True)
class TransferCurve:
    """``table``: subject, n_train, method ('ue_transfer' | 'ridge'), median_r, seed (subsample index): median test
    r of the held-out subject vs its number of training images (:func:`brainviz.pipeline.evaluate.transfer_curve`)."""

    table: pd.DataFrame


def vertex_scores(y_true: np.ndarray, y_pred: np.ndarray, nc: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-vertex r, noise ceiling and noise-normalized accuracy r^2/NC (fractions; negative r counts as 0)."""
    r = pearson_per_vertex(y_true, y_pred)
    out = {"r": r}
    if nc is not None:
        nc = np.asarray(nc, dtype=np.float64)
        out.update(nc=nc, nna=nna_per_vertex(r, nc))
    return out


def roi_labels(ctx: Context, subject: str) -> dict[str, np.ndarray]:
    """{ROI or group name: (V,) bool} used for per-ROI summaries (only non-empty ones; 'all' first)."""
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


def score(ctx: Context, model_id: str, entry: dict, subject: str, pred: np.ndarray) -> EncoderScores:
    """Score ``pred`` ((n_test, V) predictions of ``model_id`` for ``subject``'s evaluation images) against the
    measured responses, with the evaluation images' noise ceiling (:meth:`Context.noise_ceiling`)."""
    keys = ctx.images[subject].test_keys
    y = ctx.responses(subject, "test")
    nc, _ = ctx.noise_ceiling(subject, "test")
    sc = vertex_scores(y, pred, nc)
    ranks = retrieval_ranks(pattern_correlations(y, pred, names=("measured", "predicted")))
    ret = retrieval_summary(ranks)
    masks = roi_labels(ctx, subject)  # 'all' first
    by_roi = roi_summary(sc["r"], masks)
    nna = roi_summary(sc["nna"], masks)["median"] if "nna" in sc else pd.Series(np.nan, index=by_roi.index)
    rois = pd.DataFrame([dict(roi=row.roi, median_r=row.median, p25=row.p25, p75=row.p75,
                              median_nna=float(nna.iloc[i]), n=int(row.n)) for i, row in enumerate(by_roi.itertuples())])
    return EncoderScores(model_id=model_id, kind=entry["kind"], subject=subject,
                         n_train=len(ctx.images[subject].train_keys), n_test=len(keys), r=sc["r"], nc=sc.get("nc"),
                         nna=sc.get("nna"), retrieval={k: ret[k] for k in ("mean_rank", "top1", "top5")}, rois=rois,
                         train_seconds=entry.get("train_seconds", np.nan))


def run(ctx: Context, registry: dict | None = None) -> Iterator[EncoderScores | EvaluationPredictions | TransferCurve]:
    """Scores of every model of ``registry`` (default: the work folder's) on each of its subjects with evaluation
    images, from the evaluate stage's predictions (a model or subject without them is left out), in registry
    order, each followed by those predictions; then the transfer curve of the work folder (when the transfer-curve stage wrote one). Returns the
    headline numbers {"<model>|<subject>": {median_r, median_nna, top1}}."""
    registry = load_registry(ctx) if registry is None else registry
    headline = {}
    for model_id, entry in registry.items():
        for s in entry["subjects"]:
            if not ctx.has_test(s):
                continue
            pred = load_predictions(ctx, model_id, s)
            if pred is None:
                continue
            sc = score(ctx, model_id, entry, s, pred)
            row = sc.row()
            headline[f"{model_id}|{s}"] = {"median_r": round(row["median_r"], 3),
                                            "median_nna": round(row["median_nna"], 3), "top1": round(row["top1"], 3)}
            yield sc
            yield EvaluationPredictions(model_id, s, list(ctx.images[s].test_keys), pred)
    tc = read_results(ctx, "transfer_curve")
    if tc is not None and len(tc):
        yield TransferCurve(tc)
    return headline


def encoder_table(scores: Iterable[EncoderScores]) -> pd.DataFrame:
    """One row per model x subject (:data:`TABLE_COLUMNS`) of ``scores``."""
    return pd.DataFrame([s.row() for s in scores], columns=list(TABLE_COLUMNS))
