"""Comparing RDMs (rsatoolbox's ``rdm.compare`` part): Spearman, Kendall tau-a, Pearson
over the upper triangles (i < j).

Use ``"kendall_tau_a"`` when an RDM has many ties, e.g. categorical model RDMs: tau-b
and Spearman reward tied predictions (Nili et al. 2014).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import BrainVizDataError
from .calc import upper_triangle

RSA_METHODS = ("spearman", "kendall_tau_a", "pearson")


def _tau_a_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-a from scipy's tau-b: tau_a = (C - D) / n0 and
    tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)), n1 / n2 = pairs tied in x / y."""
    n0 = x.size * (x.size - 1) / 2

    def tied(v):
        _, c = np.unique(v, return_counts=True)
        return float((c * (c - 1) / 2).sum())

    n1, n2 = tied(x), tied(y)
    if n1 == n0 or n2 == n0:  # a constant vector: no concordant or discordant pair
        return 0.0
    tau_b = stats.kendalltau(x, y, variant="b").statistic
    return float(tau_b * np.sqrt((n0 - n1) * (n0 - n2)) / n0)


def kendall_tau_a(x, y, backend: str = "auto") -> float:
    """Kendall's tau-a between two vectors: (concordant - discordant) / (n (n - 1) / 2).

    Unlike tau-b, ties are NOT removed from the denominator, so a model that
    predicts ties (a categorical RDM) is not rewarded for them (Nili et al. 2014).

    Parameters
    ----------
    x, y : (m,) arrays
    backend : "auto" (rsatoolbox's O(m log m) implementation when importable,
        else scipy), "rsatoolbox" or "scipy".
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 2:
        raise BrainVizDataError("rdm", f"vectors must have the same length >= 2, got {x.size} and {y.size}")
    if backend in ("auto", "rsatoolbox"):
        try:
            from rsatoolbox.rdm.compare import _tau_a
        except ImportError:
            if backend == "rsatoolbox":
                raise
        else:
            return float(_tau_a(x.copy(), y.copy()))
    elif backend != "scipy":
        raise BrainVizDataError("backend", f"use 'auto', 'rsatoolbox' or 'scipy', got {backend!r}")
    return _tau_a_scipy(x, y)


def _check_method(method: str) -> None:
    if method not in RSA_METHODS:
        raise BrainVizDataError("method", f"unknown RSA method {method!r}; use one of {RSA_METHODS}")


def _compare_vectors(a: np.ndarray, b: np.ndarray, method: str) -> float:
    if method == "spearman":
        r = stats.spearmanr(a, b).statistic
    elif method == "pearson":
        r = stats.pearsonr(a, b).statistic
    else:
        return kendall_tau_a(a, b)
    return float(r)


def rsa(rdm_a, rdm_b, method: str = "spearman") -> float:
    """Similarity of two RDMs over their upper triangles (i < j).

    Parameters
    ----------
    rdm_a, rdm_b : (n, n) square or condensed RDMs of the same n (same image order)
    method : "spearman" (scipy.stats.spearmanr), "kendall_tau_a" (see
        :func:`kendall_tau_a`), or "pearson".

    Returns
    -------
    float in [-1, 1]; NaN for Spearman/Pearson when an RDM is constant.
    """
    _check_method(method)
    a, b = upper_triangle(rdm_a), upper_triangle(rdm_b)
    if a.shape != b.shape:
        raise BrainVizDataError("rdm", f"RDMs differ in size: {a.size} vs {b.size} pairs")
    if a.size < 2:
        raise BrainVizDataError("rdm", "need at least 3 images (2 pairs)")
    return _compare_vectors(a, b, method)
