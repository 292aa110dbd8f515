"""Image identification among the held-out images, both directions, per ROI set and whole cortex:
:class:`DecodingResult` per subject (the ridge decoder and the encoders, each with a validated vote).

:func:`run` yields the results and returns the headline numbers; :mod:`brainviz.pipeline.store_results` writes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from ...decoding import BLOCK_BYTES as DECODER_BLOCK_BYTES, WHOLE_CORTEX, decode_roi_sets_streamed, identify_roi_sets
from ...jobs import run_jobs
from ...metrics import retrieval_ranks
from ...names import ROI_SETS
from ..context import Context
from ..settings import AnalysisSettings
from ..workdir import load_predictions, load_registry

#: The encoders whose predictions identify images (beside the ridge decoder).
ENCODER_KINDS = ("ue_multi", "ridge")
#: bound of one column block of the training responses read by the decoder (:func:`decode_roi_sets_streamed`)
BLOCK_BYTES = DECODER_BLOCK_BYTES


def _cols(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a[:, mask]``, or ``a`` itself when the mask keeps every column (whole cortex: no copy)."""
    return a if mask.all() else a[:, mask]


@dataclass(frozen=True)
class DecodingResult:
    """One subject's identification results.

    * ``rois``: roi_set, roi, n_vertices (0: this ROI of the set is absent from the data) for every ROI set.
    * ``ranks``: one row per approach ('decoder', 'encoder:<kind>'), ROI set (or vote) and query image:
      roi_set, image_key, rank (the true image's rank among the candidates, ties count half), top_keys (the
      five best candidates), cosine (NaN), approach. Empty without ROI sets.
    * ``weights``: approach, roi_set, weight: the validated vote's weights over ROI sets.
    """

    subject: str
    rois: pd.DataFrame
    ranks: pd.DataFrame
    weights: pd.DataFrame


def _rank_rows(subject: str, approach: str, name: str, sim: np.ndarray, keys: list[str]) -> list[dict]:
    """One row per query image: its rank (:func:`brainviz.metrics.retrieval_ranks`, the one ties rule) and
    the five best candidates (``sim``: (n, n) scores, query i's true candidate is i)."""
    order = np.argsort(-sim, axis=1, kind="stable")
    ranks = retrieval_ranks(sim)
    return [dict(subject=subject, roi_set=name, image_key=keys[q], rank=float(ranks[q]),
                 top_keys=[keys[i] for i in order[q, :5]], cosine=np.nan, approach=approach)
            for q in range(len(keys))]


def run(ctx: Context, settings: AnalysisSettings) -> Iterator[DecodingResult]:
    """Both directions of image identification among the held-out test images, per ROI set of report
    003 and whole cortex: the ridge DECODER (responses -> pooled image embedding, cosine) and the
    ENCODERS (measured vs predicted responses, Pearson; Kay et al. 2008), each with a vote over the
    ROI sets whose weights are chosen on held-out queries; plus which ROIs of each set exist."""
    fs = ctx.features
    registry = load_registry(ctx)
    headline = {}

    def identify(s: str) -> dict | None:
        """{approach: (metrics, similarities)} of subject ``s`` (None without ROI sets)."""
        sub = ctx.dataset.subjects[s]
        sets = {name: sub.roi_mask(name) for name in ROI_SETS if sub.roi_mask(name).sum() > 0}
        if not sets:
            return None
        voters = list(sets)
        sets[WHOLE_CORTEX] = np.ones(sub.roi_mask(None).shape, bool)
        tr, te = ctx.images[s].train_keys, ctx.images[s].test_keys
        # the training responses stay on disk: read in column blocks, never whole (issue 29)
        y_tr, y_te = ctx.responses(s, "train", lazy=True), ctx.responses(s, "test")
        results = {}
        results["decoder"] = decode_roi_sets_streamed(y_tr, np.asarray(fs.pooled[fs.indices(tr)], np.float32),
                                                      y_te, np.asarray(fs.pooled[fs.indices(te)], np.float32),
                                                      sets, vote_over=voters, seed=ctx.config.seed,
                                                      max_bytes=BLOCK_BYTES)
        for model_id, entry in registry.items():
            pred = load_predictions(ctx, model_id, s) if entry["kind"] in ENCODER_KINDS and s in entry["subjects"] else None
            if pred is None:
                continue
            results[f"encoder:{entry['kind']}"] = identify_roi_sets(
                {n: _cols(y_te, m) for n, m in sets.items()}, {n: _cols(pred, m) for n, m in sets.items()},
                vote_over=voters, seed=ctx.config.seed)
        return results

    subjects = [s for s in ctx.main_subjects if ctx.has_test(s)]
    with ctx.timed("decoding"):  # subjects side by side (brainviz.jobs), yielded one after the other
        found = run_jobs([(s, lambda s=s: identify(s)) for s in subjects], ctx.workers(), describe=False)
        for s in subjects:
            sub = ctx.dataset.subjects[s]
            rois = pd.DataFrame([dict(roi_set=name, roi=roi, n_vertices=int(sub.roi_mask(roi).sum()))
                                 for name, rois in ROI_SETS.items() for roi in dict.fromkeys(rois)])
            results = found[s]
            te = ctx.images[s].test_keys
            rows, weights = [], []
            for approach, (metrics, sims) in (results or {}).items():
                for name, sim in sims.items():
                    rows += _rank_rows(s, approach, name, sim, te)
                vw = metrics.set_index("model").loc["vote", "weights"] if "vote" in set(metrics.model) else {}
                weights += [dict(approach=approach, roi_set=k, weight=float(v)) for k, v in vw.items()]
                headline.setdefault(s, {})[approach] = {
                    r["model"]: {"top1": round(float(r["top1"]), 3), "top5": round(float(r["top5"]), 3),
                                 "mean_rank": round(float(r["mean_rank"]), 1)} for r in metrics.to_dict("records")}
            yield DecodingResult(s, rois, pd.DataFrame(rows).drop(columns="subject", errors="ignore"),
                                 pd.DataFrame(weights, columns=["approach", "roi_set", "weight"]))
    return headline
