"""RDMs from repeated measurements (rsatoolbox's ``rdm.calc`` part).

``repeats`` are (n_images, n_repeats, n_features) single-trial (or single-session)
response patterns, e.g. ``AlgonautsSubject.repeats("test")``.

The plain RDM of repeat-AVERAGED patterns is biased: independent noise adds
to every pattern, so squared Euclidean distances grow by 2 sigma^2 p / K and
correlation distances are pulled towards 1. Cross-validated distances use only
products of patterns from DIFFERENT repeats, whose noise is independent, so
the noise terms have expectation zero (Walther et al. 2016; rsatoolbox's
``crossnobis`` with identity noise is the Euclidean case).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import squareform

from ..errors import BrainVizDataError
from ..rdm import rdm as _rdm

CV_METRICS = ("correlation", "sqeuclidean")


def _check_repeats(repeats) -> np.ndarray:
    a = np.asarray(repeats, dtype=np.float64)
    if a.ndim != 3:
        raise BrainVizDataError("repeats", f"expected (n_images, n_repeats, n_features), got shape {a.shape}")
    n, k, p = a.shape
    if n < 2 or k < 2 or p < 2:
        raise BrainVizDataError("repeats", f"need >= 2 images, >= 2 repeats and >= 2 features, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise BrainVizDataError("repeats", "contains NaN or infinite values")
    return a


def repeat_rdms(repeats, metric: str = "correlation") -> np.ndarray:
    """(n_repeats, n_images, n_images) float64: the RDM of each repeat's patterns alone.

    Parameters
    ----------
    repeats : (n_images, n_repeats, n_features)
    metric : "correlation" (1 - Pearson) or "euclidean", see :func:`brainviz.rdm.rdm`
    """
    a = _check_repeats(repeats)
    return np.stack([_rdm(a[:, k, :], metric).astype(np.float64) for k in range(a.shape[1])])


def crossvalidated_inner_products(repeats, center: bool) -> np.ndarray:
    """(n, n) cross-validated second moment G_ij = mean over repeat pairs k != l of x_ik . x_jl / p.

    ``center``: subtract each single pattern's mean over features first (for
    correlation distances). Unbiased for the noise-free products when noise is
    independent across repeats.
    """
    a = _check_repeats(repeats)
    n, k, p = a.shape
    if center:
        a = a - a.mean(axis=2, keepdims=True)
    total = a.sum(axis=1)  # (n, p)
    same = np.einsum("nkp,mkp->nm", a, a)  # sum over k of x_ik . x_jk
    g = (total @ total.T - same) / (k * (k - 1) * p)
    return (g + g.T) / 2


def crossvalidated_rdm(repeats, metric: str = "correlation", form: str = "square") -> np.ndarray:
    """Cross-validated RDM from repeated measurements.

    Parameters
    ----------
    repeats : (n_images, n_repeats, n_features), n_repeats >= 2
    metric :
        ``"correlation"``: 1 - r_cv with r_cv(i, j) = G_ij / sqrt(G_ii G_jj), G the
        cross-validated inner products of the mean-centred patterns
        (:func:`crossvalidated_inner_products`); numerator and denominators are
        each unbiased, so the ratio is unbiased up to O(1/p) terms. NaN where an
        image's cross-validated variance G_ii <= 0 (no reliable signal); can
        leave [0, 2] for noisy data (that is the point: no bias towards 1).
        ``"sqeuclidean"``: G_ii + G_jj - 2 G_ij = mean over k != l of
        (x_ik - x_jk) . (x_il - x_jl) / p, the squared Euclidean distance per
        feature, unbiased (equal to rsatoolbox's ``crossnobis`` with identity noise);
        can be negative when two images do not differ.
    form : "square" (n, n) or "condensed".

    Returns
    -------
    (n, n) or (n (n - 1) / 2,) float64, zero diagonal.
    """
    if metric not in CV_METRICS:
        raise BrainVizDataError("metric", f"unknown cross-validated metric {metric!r}; use one of {CV_METRICS}")
    if form not in ("square", "condensed"):
        raise BrainVizDataError("form", f"use 'square' or 'condensed', got {form!r}")
    g = crossvalidated_inner_products(repeats, center=metric == "correlation")
    d = np.diag(g)
    if metric == "correlation":
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.sqrt(np.outer(d, d))
            out = np.where((d[:, None] > 0) & (d[None, :] > 0), 1.0 - g / denom, np.nan)
    else:
        out = d[:, None] + d[None, :] - 2 * g
    np.fill_diagonal(out, 0.0)
    out = (out + out.T) / 2
    return out if form == "square" else squareform(out, checks=False)
