"""Evaluation metrics for voxel-wise encoders (pure numpy functions); each defined once here.

Conventions: responses are ``(n_images, n_vertices)`` arrays, one row per
image, one column per vertex ("vertex" and "voxel" mean the same thing).
Every ratio is a fraction in [0, 1] (see :mod:`brainviz.names`). Every function
checks its input and raises :class:`~brainviz.errors.BrainVizDataError` naming
the argument at fault.

Functions
---------
zscore(x, axis)                           -> x standardized along axis (constant -> 0): the one z-score
pearson_per_vertex(y_true, y_pred)        -> (n_vertices,) r over images, column by column
pattern_correlations(a, b)                -> (n_a, n_b) r between every row of a and every row of b
noise_ceiling_from_repeats(repeats, ...)  -> (n_vertices,) noise ceiling, fraction of variance
nna_per_vertex(r, nc)                     -> (n_vertices,) noise-normalized accuracy r^2 / NC
retrieval_ranks(similarity, true_index)   -> (n_queries,) rank of the true candidate (1 = best)
retrieval_summary(ranks)                  -> dict(mean_rank, top1, top5, n)
roi_summary(values, labels)               -> DataFrame roi, n, median, p25, p75 (the median nna over all
                                             vertices is the Algonauts 2023 score)
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .checks import as_array, check_finite
from .errors import BrainVizDataError

__all__ = [
    "zscore",
    "pearson_per_vertex",
    "pattern_correlations",
    "noise_ceiling_from_repeats",
    "nna_per_vertex",
    "retrieval_ranks",
    "retrieval_summary",
    "roi_summary",
]

#: Below this share of a column's largest magnitude its standard deviation is rounding noise: constant.
CONSTANT_RTOL = 1e-12


def zscore(x, axis: int = 0, dtype=None) -> np.ndarray:
    """The one z-score of the library: ``(x - mean) / sd`` along ``axis`` (population sd).

    Parameters
    ----------
    x : array, e.g. (n_images, n_vertices) responses (``axis=0``: each vertex over the images) or
        (n_queries, n_candidates) scores (``axis=1``: each query over its candidates).
    axis : the axis along which each slice is standardized.
    dtype : the precision of the computation; None: float32 input stays float32 (memory-mapped
        responses), anything else is float64.

    Returns
    -------
    Same shape, in ``dtype``.
    A slice that is constant (sd at most :data:`CONSTANT_RTOL` of its largest magnitude: rounding
    noise) is 0 throughout: it sits at its mean and carries no contrast. Correlations built on
    z-scores report such slices as undefined themselves (:func:`pearson_per_vertex`: NaN).
    """
    a = np.asarray(x)
    if dtype is not None or a.dtype != np.float32:
        a = a.astype(dtype or np.float64, copy=False)
    c = a - a.mean(axis=axis, keepdims=True)
    sd = c.std(axis=axis, keepdims=True)
    const = sd <= CONSTANT_RTOL * np.abs(a).max(axis=axis, keepdims=True)
    z = c / np.where(const, 1, sd).astype(a.dtype)
    return np.where(const, a.dtype.type(0), z) if const.any() else z


def _zscore_rows_or_cols(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Center and scale to unit norm along ``axis``; returns (normalized, is_constant)."""
    xc = x - x.mean(axis=axis, keepdims=True)
    norm = np.sqrt((xc * xc).sum(axis=axis, keepdims=True))
    scale = np.abs(x).max(axis=axis, keepdims=True)
    # a column is "constant" when its spread is at rounding level of its magnitude
    const = norm <= 1e-12 * np.maximum(scale, 1e-300) * np.sqrt(x.shape[axis])
    with np.errstate(invalid="ignore", divide="ignore"):
        xn = np.where(const, np.nan, xc / np.where(const, 1.0, norm))
    return xn, np.squeeze(const, axis=axis)


# --------------------------------------------------------------------------- correlation

def pearson_per_vertex(y_true, y_pred) -> np.ndarray:
    """Pearson correlation between measured and predicted responses, per vertex.

    The one column-by-column Pearson of the library (encoder scores, transfer
    curves, paired-row correlations via transposes).

    Parameters
    ----------
    y_true : (n_images, n_vertices) measured responses.
    y_pred : (n_images, n_vertices) predicted responses, same shape.

    Returns
    -------
    r : (n_vertices,) float64. ``r[v]`` correlates column ``v`` of both arrays
        over images. A vertex whose measured or predicted column is constant
        (zero variance) has an undefined correlation and gets ``NaN`` (never a
        silent 0); :func:`nna_per_vertex` counts such NaNs as r = 0.
    """
    yt = as_array(y_true, "y_true", 2)
    yp = as_array(y_pred, "y_pred", 2)
    if yt.shape != yp.shape:
        raise BrainVizDataError("y_pred", f"shape {yp.shape} differs from y_true shape {yt.shape}")
    if yt.shape[0] < 2:
        raise BrainVizDataError("y_true", f"needs at least 2 images to correlate, got {yt.shape[0]}")
    check_finite(yt, "y_true")
    check_finite(yp, "y_pred")
    tn, _ = _zscore_rows_or_cols(yt, axis=0)
    pn, _ = _zscore_rows_or_cols(yp, axis=0)
    r = (tn * pn).sum(axis=0)
    return np.clip(r, -1.0, 1.0)


def pattern_correlations(a, b, undefined: float = np.nan, names: tuple[str, str] = ("a", "b")) -> np.ndarray:
    """Pearson correlation between every row of ``a`` and every row of ``b`` (response patterns).

    Parameters
    ----------
    a : (n_a, n_vertices) patterns (e.g. measured responses, one row per image).
    b : (n_b, n_vertices) patterns over the same vertices (e.g. predicted responses).
    undefined : value given to the correlations of a constant row (default NaN).
    names : the two arguments' names in error messages.

    Returns
    -------
    (n_a, n_b) float64, ``[i, j] = corr(a_i, b_j)`` across vertices.
    """
    m = as_array(a, names[0], 2)
    p = as_array(b, names[1], 2)
    if m.shape[1] != p.shape[1]:
        raise BrainVizDataError(names[1], f"has {p.shape[1]} vertices but {names[0]} has {m.shape[1]}")
    if m.shape[1] < 2:
        raise BrainVizDataError(names[0], f"needs at least 2 vertices to correlate patterns, got {m.shape[1]}")
    check_finite(m, names[0])
    check_finite(p, names[1])
    mn, _ = _zscore_rows_or_cols(m, axis=1)
    pn, _ = _zscore_rows_or_cols(p, axis=1)
    corr = mn @ pn.T
    if not np.isnan(undefined):
        corr = np.where(np.isnan(corr), undefined, corr)
    return corr


# --------------------------------------------------------------------------- noise ceiling

def noise_ceiling_from_repeats(repeats, n_avg: float | None = None, method: str = "general") -> np.ndarray:
    """Noise ceiling (fraction of explainable variance) of each vertex from repeated presentations.

    Parameters
    ----------
    repeats : (n_images, n_repeats, n_vertices) single-trial responses, every
        image shown ``n_repeats >= 2`` times (no NaNs).
    n_avg : number of trials averaged in the responses that will be predicted
        (default ``n_repeats``: the Algonauts responses average all repeats).
        May be fractional, e.g. the Algonauts ``1 / ((A/3 + B/2 + C/1) / (A+B+C))``.
    method : how the signal variance is estimated.

        * ``"general"`` (default; valid for any scaling of the data):
          ``signal_var = max(var_images(mean_repeats) - noise_var / n_repeats, 0)``
          (the variance of repeat means, ddof=1, contains the signal variance
          plus the noise variance divided by the number of averaged repeats).
        * ``"nsd"``: the NSD data paper formula for responses z-scored per
          session (total variance 1): ``signal_var = max(1 - noise_var, 0)``
          (the demo brain's convention).

    Returns
    -------
    nc : (n_vertices,) float64 fraction in [0, 1) (NSD / Algonauts publish it in
        percent: ``100 * nc``).

    Notes
    -----
    ``noise_var = mean over images of var(repeats, ddof=1)``,
    ``ncsnr = sqrt(signal_var) / sqrt(noise_var)``,
    ``NC = ncsnr**2 / (ncsnr**2 + 1 / n_avg)`` (Allen et al. 2022;
    Algonauts 2023). A vertex with zero noise variance and positive signal gets
    1; one with neither gets 0.
    """
    rep = as_array(repeats, "repeats", 3)
    n_img, n_rep, _ = rep.shape
    if n_rep < 2:
        raise BrainVizDataError("repeats", f"needs at least 2 repeats per image, got {n_rep}")
    if n_img < 2:
        raise BrainVizDataError("repeats", f"needs at least 2 images, got {n_img}")
    check_finite(rep, "repeats")
    if method not in ("general", "nsd"):
        raise BrainVizDataError("method", f"must be 'general' or 'nsd', got {method!r}")
    if n_avg is None:
        n_avg = float(n_rep)
    if not np.isfinite(n_avg) or n_avg <= 0:
        raise BrainVizDataError("n_avg", f"must be a positive number, got {n_avg}")

    noise_var = rep.var(axis=1, ddof=1).mean(axis=0)
    if method == "general":
        signal_var = rep.mean(axis=1).var(axis=0, ddof=1) - noise_var / n_rep
    else:
        signal_var = 1.0 - noise_var
    signal_var = np.maximum(signal_var, 0.0)
    # NC = s / (s + noise/n_avg), identical to the ncsnr form but safe at noise_var = 0
    denom = signal_var + noise_var / n_avg
    with np.errstate(invalid="ignore", divide="ignore"):
        nc = np.where(denom > 0, signal_var / np.where(denom > 0, denom, 1.0), 0.0)
    return nc


def nna_per_vertex(r, nc, clip_negative: bool = True, clip_max: bool = True) -> np.ndarray:
    """Noise-normalized accuracy of each vertex, ``r**2 / NC`` (fractions), as Algonauts 2023 scores it.

    Choices (documented, tested):

    * ``clip_negative=True``: negative correlations are set to 0 before
      squaring (as the Algonauts 2023 challenge code does), so an
      anti-correlated prediction never scores as well as a correlated one.
      NaN correlations (constant columns) count as 0.
    * ``clip_max=True``: values above 1 (r**2 > NC, possible with a noisy NC
      estimate) are set to 1, as the challenge code does.
    * Vertices with ``NC <= 0`` (or NaN) get NaN (the challenge code instead
      divides by 1e-14, which scores them 0 or 1 at random).

    Parameters
    ----------
    r : (n_vertices,) Pearson correlations.
    nc : (n_vertices,) noise ceilings, fractions in [0, 1].

    Returns
    -------
    (n_vertices,) float64, NaN where NC is not positive.
    """
    rr = as_array(r, "r", 1)
    ncf = as_array(nc, "nc", 1)
    if rr.shape != ncf.shape:
        raise BrainVizDataError("nc", f"has {ncf.shape[0]} vertices but r has {rr.shape[0]}")
    rr = np.where(np.isnan(rr), 0.0, rr)
    if clip_negative:
        rr = np.maximum(rr, 0.0)
    keep = np.isfinite(ncf) & (ncf > 0)
    acc = np.full(rr.shape, np.nan)
    acc[keep] = rr[keep] ** 2 / ncf[keep]
    if clip_max:
        acc = np.minimum(acc, 1.0)
    return acc


# --------------------------------------------------------------------------- retrieval

def retrieval_ranks(similarity, true_index=None) -> np.ndarray:
    """Rank of each query's true candidate among all candidates (1 = retrieved first).

    The one ranking of the library: encoder identification (``similarity`` =
    :func:`pattern_correlations` of measured and predicted responses), the whole-cortex
    retrieval of the evaluate stage, decoding (cosine similarities) and votes (combined scores).

    Parameters
    ----------
    similarity : (n_queries, n_candidates) scores, higher = more similar. NaN
        (e.g. the correlation of a constant pattern) ranks below every defined
        score and equal to other NaNs.
    true_index : (n_queries,) index of each query's true candidate; None = the
        diagonal (query ``i``'s true candidate is ``i``).

    Returns
    -------
    ranks : (n_queries,) float64 in [1, n_candidates]. Ties, one rule everywhere:
        ``rank = 1 + #better + #tied / 2``, the expected rank under a random tie break, so an
        uninformative constant predictor scores the chance level ``(n + 1) / 2`` (counting ties
        pessimistically would punish it, optimistically reward it).
    """
    s = as_array(similarity, "similarity", 2)
    n_q, n_c = s.shape
    if true_index is None:
        if n_q != n_c:
            raise BrainVizDataError("true_index", f"needed: similarity is not square ({n_q} x {n_c})")
        t = np.arange(n_q)
    else:
        t = np.asarray(true_index, dtype=np.int64)
        if t.shape != (n_q,):
            raise BrainVizDataError("true_index", f"need one index per query row ({n_q}), got {t.shape}")
        if t.min(initial=0) < 0 or t.max(initial=0) >= n_c:
            raise BrainVizDataError("true_index", f"indices must be in [0, {n_c})")
    s = np.where(np.isnan(s), -np.inf, s)
    true = s[np.arange(n_q), t][:, None]
    better = (s > true).sum(axis=1)
    tied = (s == true).sum(axis=1) - 1  # minus the true candidate itself
    return (1.0 + better + tied / 2.0).astype(np.float64)


def retrieval_summary(ranks) -> dict:
    """Summarize retrieval ranks.

    Parameters
    ----------
    ranks : (n_images,) ranks from :func:`retrieval_ranks` (1 = best).

    Returns
    -------
    dict with ``mean_rank`` (float), ``top1`` and ``top5`` (fraction of queries
    whose true image ranked ``<= 1`` / ``<= 5``, in [0, 1], as in report 004
    Fig. 4b) and ``n`` (number of queries, which is also the chance scale:
    random ranking gives ``mean_rank = (n + 1) / 2``).
    """
    rk = as_array(ranks, "ranks", 1)
    if rk.size == 0:
        raise BrainVizDataError("ranks", "is empty")
    check_finite(rk, "ranks")
    if (rk < 1).any():
        raise BrainVizDataError("ranks", "ranks start at 1; found values below 1")
    return {
        "mean_rank": float(rk.mean()),
        "top1": float(np.mean(rk <= 1)),
        "top5": float(np.mean(rk <= 5)),
        "n": int(rk.size),
    }


# --------------------------------------------------------------------------- ROI summary

def roi_summary(values, labels, exclude: Sequence[str] = ("Unknown", "")) -> pd.DataFrame:
    """Median and quartiles of a per-vertex value within each ROI.

    Parameters
    ----------
    values : (n_vertices,) per-vertex values (e.g. Pearson r). NaNs are ignored.
    labels : either a (n_vertices,) array of ROI names (one label per vertex;
        ``None`` and names in ``exclude`` are skipped), or a mapping
        ``{roi_name: (n_vertices,) bool mask or int index array}`` for
        overlapping ROIs.
    exclude : label names to skip.

    Returns
    -------
    DataFrame with columns ``roi, n, median, p25, p75`` (one row per ROI, in
    first-seen / mapping order). ``n`` counts non-NaN values; the statistics are
    NaN for an ROI with none.
    """
    vals = as_array(values, "values", 1)
    nv = vals.shape[0]
    groups: list[tuple[str, np.ndarray]] = []
    if isinstance(labels, Mapping):
        for name, sel in labels.items():
            sel = np.asarray(sel)
            if sel.dtype == bool:
                if sel.shape != (nv,):
                    raise BrainVizDataError(f"labels[{name!r}]", f"mask has shape {sel.shape}, expected ({nv},)")
                idx = np.flatnonzero(sel)
            else:
                idx = sel.astype(np.int64).ravel()
                if idx.size and (idx.min() < 0 or idx.max() >= nv):
                    raise BrainVizDataError(f"labels[{name!r}]", f"indices out of range for {nv} vertices")
            if str(name) not in exclude:
                groups.append((str(name), idx))
    else:
        lab = np.asarray(labels, dtype=object)
        if lab.shape != (nv,):
            raise BrainVizDataError("labels", f"has shape {lab.shape}, expected ({nv},) like values")
        seen: dict[str, list[int]] = {}
        for i, name in enumerate(lab):
            if name is None or (isinstance(name, float) and np.isnan(name)):
                continue
            key = str(name)
            if key in exclude:
                continue
            seen.setdefault(key, []).append(i)
        groups = [(k, np.asarray(v, dtype=np.int64)) for k, v in seen.items()]

    rows = []
    for name, idx in groups:
        v = vals[idx]
        v = v[~np.isnan(v)]
        if v.size:
            p25, med, p75 = np.percentile(v, [25, 50, 75])
        else:
            p25 = med = p75 = float("nan")
        rows.append({"roi": name, "n": int(v.size), "median": float(med), "p25": float(p25), "p75": float(p75)})
    return pd.DataFrame(rows, columns=["roi", "n", "median", "p25", "p75"])
