"""RDMs and RSA on the main subjects' shared evaluation images: measured, predicted and backbone-layer RDMs
(:class:`RDMResult`, each with its extreme pairs) and the RSA table (:class:`RSAResult`).

:func:`run` yields the results and returns the headline numbers (``headline = yield from run(ctx, settings)``);
:mod:`brainviz.pipeline.store_results` writes them. Policy: :class:`~brainviz.pipeline.settings.AnalysisSettings`
(``rdm_rois``, ``n_extreme_pairs``, ``embedding_model``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from ... import rsa as rdmlib
from ...rsa import CEILING_KINDS, crossvalidated_rdm, repeat_rdms, within_subject_ceiling
from ..context import Context
from ..settings import AnalysisSettings
from ..workdir import load_predictions, load_registry


@dataclass(frozen=True)
class RDMResult:
    """One RDM: ``values`` (n, n) symmetric dissimilarities (zero diagonal) over ``image_keys`` (n,), with its
    descriptors (``metric`` 'correlation' = 1 - Pearson or 'euclidean'; ``source`` 'measured', 'predicted',
    'layer:<name>', 'k92:<model>' ...; ``subject``, ``roi`` or None) and ``extremes`` (kind, rank, image_a,
    image_b, value: its most similar / dissimilar pairs; None: not computed)."""

    rdm_id: str
    image_keys: list[str]
    values: np.ndarray
    metric: str
    source: str
    subject: str | None = None
    roi: str | None = None
    extremes: pd.DataFrame | None = None


@dataclass(frozen=True)
class RSAResult:
    """``table``: one row per compared pair of RDMs: rdm_a, rdm_b, method, value, p_value (image permutation),
    nc_lower, nc_upper (noise ceiling across subjects), nc_kind, nc_within, reliability_within (the subject's
    own split-half ceiling; NaN without repetitions)."""

    table: pd.DataFrame


def extreme_pairs(keys: list[str], square: np.ndarray, metric: str, k: int = 10) -> pd.DataFrame:
    """Top-k lowest / closest-to-1 (1 - Pearson only) / largest pairs of an (n, n) RDM over ``keys``, as image
    keys: kind, rank (1..k), image_a, image_b, value."""
    kinds = ("lowest", "closest_to_1", "largest") if metric == "correlation" else ("lowest", "largest")
    frames = []
    for kind in kinds:
        df = rdmlib.extreme_pairs_from_rdm(square, k=k, kind=kind)
        frames.append(pd.DataFrame({"kind": kind, "rank": np.arange(1, len(df) + 1, dtype=np.int32),
                                    "image_a": [keys[i] for i in df["i"]], "image_b": [keys[j] for j in df["j"]],
                                    "value": df["value"].to_numpy(np.float32)}))
    return pd.concat(frames, ignore_index=True)


def _bar(ctx: Context, it, desc: str):
    from ...progress import bar

    return bar(it, desc=desc, enabled=ctx.config.progress)


def run(ctx: Context, settings: AnalysisSettings) -> Iterator[RDMResult | RSAResult]:
    """RDMs on the main subjects' shared test images: measured, predicted and backbone layers, with
    extreme pairs, RSA (Spearman, image-permutation p) and the noise ceiling across subjects."""
    main = [s for s in ctx.main_subjects if ctx.has_test(s)]
    if not main:
        return {}
    model_id, n_pairs = settings.embedding_model, settings.n_extreme_pairs
    keys = ctx.images[main[0]].test_keys
    main = [s for s in main if ctx.images[s].test_keys == keys]
    registry = load_registry(ctx)
    headline: dict = {}

    def result(rid: str, r: np.ndarray, metric: str, source: str, **where) -> RDMResult:
        return RDMResult(rid, keys, r, metric, source, extremes=extreme_pairs(keys, r, metric, n_pairs), **where)

    with ctx.timed("rdms"):
        fs = ctx.feature_subset(keys)
        layer_rdms = {}
        for metric in ("correlation", "euclidean"):
            for name, r in rdmlib.feature_rdms(fs, metric=metric).items():
                yield result(f"layer:{name}|{metric}", r, metric, f"layer:{name}")
                layer_rdms[(name, metric)] = r
        measured: dict = {}
        within: dict = {}  # (subject, roi) -> WithinSubjectCeiling of the measured 1 - Pearson RDM
        for s in _bar(ctx, main, "RDMs"):
            sub = ctx.dataset.subjects[s]
            y = ctx.responses(s, "test")
            pred = load_predictions(ctx, model_id, s) if model_id in registry else None
            trials = ctx.repeats(s, "test")  # None without repetitions: no within-subject ceiling, no CV RDM
            for roi in settings.rdm_rois:
                mask = sub.roi_mask(None if roi == "all" else roi)
                if mask.sum() < 2:
                    continue
                for metric in ("correlation", "euclidean"):
                    for source, data in (("measured", y), ("predicted", pred)):
                        if data is None:
                            continue
                        r = rdmlib.rdm(data[:, mask], metric=metric)
                        yield result(f"{s}|{roi}|{metric}|{source}", r, metric, source, subject=s, roi=roi)
                        if source == "measured":
                            measured[(s, roi, metric)] = r
                if trials is not None:
                    reps = np.asarray(trials[:, :, mask], np.float64)
                    within[(s, roi)] = within_subject_ceiling(repeat_rdms(reps, "correlation"), method="spearman")
                    cv = crossvalidated_rdm(reps, "correlation")
                    if np.isfinite(cv).all():  # NaN where an image has no reliable signal in this ROI
                        yield result(f"{s}|{roi}|correlation|measured (cross-validated)", cv, "correlation",
                                     "measured (cross-validated)", subject=s, roi=roi)
    with ctx.timed("rsa"):
        rows = []
        for roi in settings.rdm_rois:
            subs = [s for s in main if (s, roi, "correlation") in measured]
            if not subs:
                continue
            stack = np.stack([measured[(s, roi, "correlation")] for s in subs])
            lower, upper = rdmlib.rdm_noise_ceiling(stack, method="spearman") if len(subs) > 1 else (np.nan, np.nan)
            for s in _bar(ctx, subs, f"RSA {roi}"):
                a = f"{s}|{roi}|correlation|measured"
                others = [(f"{s}|{roi}|correlation|predicted", None)] + \
                         [(f"layer:{n}|correlation", r) for (n, m), r in layer_rdms.items() if m == "correlation"]
                for b, rb in others:
                    if rb is None:
                        pred = load_predictions(ctx, model_id, s)
                        if pred is None:
                            continue
                        rb = rdmlib.rdm(pred[:, ctx.dataset.subjects[s].roi_mask(None if roi == "all" else roi)])
                    test = rdmlib.rsa_permutation_test(measured[(s, roi, "correlation")], rb,
                                                       n_perm=ctx.config.n_perm, seed=ctx.config.seed)
                    wc = within.get((s, roi))
                    rows.append(dict(rdm_a=a, rdm_b=b, method="spearman", value=float(test.statistic),
                                     p_value=float(test.p_value), nc_lower=float(lower), nc_upper=float(upper),
                                     nc_kind=CEILING_KINDS[0],
                                     nc_within=float(wc.ceiling) if wc is not None else np.nan,
                                     reliability_within=float(wc.reliability) if wc is not None else np.nan))
        df = pd.DataFrame(rows)
        if len(df):
            yield RSAResult(df)
            pred_rows = df[df.rdm_b.str.endswith("|predicted")]
            headline["rsa_measured_vs_predicted"] = {
                roi: round(float(pred_rows[pred_rows.rdm_a.str.contains(f"|{roi}|", regex=False)].value.mean()), 3)
                for roi in settings.rdm_rois if pred_rows.rdm_a.str.contains(f"|{roi}|", regex=False).any()}
            headline["within_subject_ceiling"] = {f"{k[0]}|{k[1]}": round(v.ceiling, 3) for k, v in within.items()}
    return headline
