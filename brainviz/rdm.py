"""Representational dissimilarity matrices (RDMs) and representational similarity analysis.

Conventions
-----------
* ``responses`` are (n_images, n_features) arrays (voxels/vertices or network
  units); rows are images. Any array-like with 2-D slicing works, including
  ``np.memmap``: RDMs are computed blockwise, so only ``block`` rows at a time
  are standardized and only a (block, block) tile of the RDM exists at a time.
* Dissimilarity metrics: ``"correlation"`` (1 - Pearson r, in [0, 2]) and
  ``"euclidean"``.
* A *square* RDM is (n, n), symmetric, zero diagonal. A *condensed* RDM is the
  upper triangle (i < j) in row-major order, length n (n - 1) / 2, as
  ``scipy.spatial.distance.squareform`` / ``pdist`` write it. Every function
  taking an RDM accepts either form unless it says otherwise.
* RSA methods: ``"spearman"``, ``"kendall_tau_a"`` (use it when an RDM has many
  ties, e.g. categorical model RDMs: tau-b and Spearman reward tied predictions,
  Nili et al. 2014), ``"pearson"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import squareform

from .errors import BrainVizDataError

METRICS = ("correlation", "euclidean")
RSA_METHODS = ("spearman", "kendall_tau_a", "pearson")
EXTREME_KINDS = ("lowest", "closest_to_1", "largest")


# ----------------------------------------------------------------------------------------
# blockwise RDM computation
# ----------------------------------------------------------------------------------------
def _check_responses(responses) -> tuple[int, int]:
    shape = getattr(responses, "shape", None)
    if shape is None or len(shape) != 2:
        raise BrainVizDataError("responses", f"expected a 2-D (n_images, n_features) array, got shape {shape}")
    n, p = int(shape[0]), int(shape[1])
    if n < 2 or p < 1:
        raise BrainVizDataError("responses", f"need at least 2 images and 1 feature, got shape {shape}")
    return n, p


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise BrainVizDataError("metric", f"unknown metric {metric!r}; use one of {METRICS}")


def _rows(responses, i0: int, i1: int) -> np.ndarray:
    x = np.asarray(responses[i0:i1], dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = i0 + int(np.nonzero(~np.isfinite(x).all(axis=1))[0][0])
        raise BrainVizDataError("responses", f"row {bad} contains NaN or infinite values")
    return x


class _Standardizer:
    """Per-row preparation for the chunked matrix products (statistics in float64).

    correlation: z_i = (x_i - mean(x_i)) / ||x_i - mean(x_i)||, so 1 - r_ij = 1 - z_i . z_j.
    euclidean:   c_i = x_i - column_mean (translation invariant; limits cancellation),
                 d_ij^2 = |c_i|^2 + |c_j|^2 - 2 c_i . c_j.
    """

    def __init__(self, responses, metric: str, block: int, dtype):
        self.x, self.metric, self.dtype = responses, metric, np.dtype(dtype)
        n, p = _check_responses(responses)
        in_dtype = np.dtype(getattr(responses, "dtype", np.float64))
        # float32/float16 inputs lose nothing when centred in float32; float64 ones are centred in float64
        self.in_float32 = in_dtype.kind == "f" and in_dtype.itemsize <= 4
        if metric == "euclidean":
            total = np.zeros(p)
            for i0 in range(0, n, block):
                total += _rows(responses, i0, min(n, i0 + block)).sum(axis=0)
            self.col_mean = total / n

    def __call__(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self.dtype == np.float32 and self.in_float32:
            return self._float32(i0, i1)
        x = _rows(self.x, i0, i1)
        if self.metric == "correlation":
            x = x - x.mean(axis=1, keepdims=True)
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            if np.any(norm == 0):
                bad = i0 + int(np.nonzero(norm[:, 0] == 0)[0][0])
                raise BrainVizDataError("responses", f"row {bad} is constant; 1 - Pearson is undefined")
            return (x / norm).astype(self.dtype), None
        x = x - self.col_mean
        return x.astype(self.dtype), np.einsum("ij,ij->i", x, x).astype(self.dtype)

    def _float32(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Float32 inputs: the same result from one float32 buffer updated in place (means and norms
        still accumulated in float64); no float64 copy of the block, ~1.4x faster end to end
        (bench/bench_rdm.py)."""
        x = np.array(self.x[i0:i1], dtype=np.float32)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            raise BrainVizDataError("responses", f"row {i0 + int(np.nonzero(~finite)[0][0])} contains NaN or infinite values")
        if self.metric == "correlation":
            x -= x.mean(axis=1, dtype=np.float64, keepdims=True).astype(np.float32)
            norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
            if np.any(norm == 0):
                bad = i0 + int(np.nonzero(norm == 0)[0][0])
                raise BrainVizDataError("responses", f"row {bad} is constant; 1 - Pearson is undefined")
            x *= (1.0 / norm).astype(np.float32)[:, None]
            return x, None
        x -= self.col_mean.astype(np.float32)
        return x, np.einsum("ij,ij->i", x, x, dtype=np.float64).astype(np.float32)


def iter_rdm_blocks(responses, metric: str = "correlation", block: int = 2048,
                    dtype=np.float32) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield the upper-triangular tiles of the RDM, one (block, block) tile at a time.

    Parameters
    ----------
    responses : (n_images, n_features) array-like (ndarray or memmap)
    metric : "correlation" (1 - Pearson) or "euclidean"
    block : int
        Rows per tile; memory is O(block * n_features + block**2).
    dtype : float32 (default) or float64, precision of the matrix products.

    Yields
    ------
    i0, j0 : int
        Row / column offsets of the tile, with ``j0 >= i0``.
    tile : (bi, bj) ndarray of ``dtype``
        ``RDM[i0:i0+bi, j0:j0+bj]``. On diagonal tiles (``i0 == j0``) the
        diagonal is exactly 0 and the tile is symmetric.
    """
    _check_metric(metric)
    n, _ = _check_responses(responses)
    if block < 1:
        raise BrainVizDataError("block", f"must be >= 1, got {block}")
    prep = _Standardizer(responses, metric, block, dtype)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        a, na = prep(i0, i1)
        for j0 in range(i0, n, block):
            j1 = min(n, j0 + block)
            b, nb = (a, na) if j0 == i0 else prep(j0, j1)
            g = a @ b.T
            if metric == "correlation":
                tile = np.clip(1.0 - g, 0.0, 2.0)
            else:
                tile = np.sqrt(np.maximum(na[:, None] + nb[None, :] - 2.0 * g, 0.0))
            tile = tile.astype(dtype, copy=False)
            if j0 == i0:
                tile = (tile + tile.T) / 2
                np.fill_diagonal(tile, 0.0)
            yield i0, j0, tile


def rdm(responses, metric: str = "correlation", form: str = "square", block: int = 2048,
        dtype=np.float32) -> np.ndarray:
    """Representational dissimilarity matrix of the images' response patterns.

    Blockwise: the (n, n) result is filled tile by tile from chunked matrix
    products of standardized rows (see :func:`iter_rdm_blocks`); no other
    n x n temporary is made.

    Parameters
    ----------
    responses : (n_images, n_features) array-like
    metric : "correlation" (1 - Pearson r) or "euclidean"
    form : "square" -> (n, n), or "condensed" -> (n (n - 1) / 2,) upper triangle, pdist order.
    block, dtype : see :func:`iter_rdm_blocks`.

    Returns
    -------
    ndarray of ``dtype``; equals ``scipy.spatial.distance.pdist(responses, metric)``
    up to float32 rounding (about 1e-6 relative for correlation).
    """
    if form not in ("square", "condensed"):
        raise BrainVizDataError("form", f"use 'square' or 'condensed', got {form!r}")
    n, _ = _check_responses(responses)
    out = np.zeros((n, n), dtype=dtype)
    for i0, j0, tile in iter_rdm_blocks(responses, metric, block, dtype):
        bi, bj = tile.shape
        out[i0:i0 + bi, j0:j0 + bj] = tile
        if j0 != i0:
            out[j0:j0 + bj, i0:i0 + bi] = tile.T
    return out if form == "square" else squareform(out, checks=False)


# ----------------------------------------------------------------------------------------
# extreme pairs (running top-k, no n x n materialization)
# ----------------------------------------------------------------------------------------
def _score(values: np.ndarray, kind: str, target: float) -> np.ndarray:
    if kind == "lowest":
        return values.astype(np.float64)
    if kind == "largest":
        return -values.astype(np.float64)
    return np.abs(values.astype(np.float64) - target)


class _RunningTopK:
    """The k smallest scores seen so far, ordered by (score, i, j): deterministic,
    independent of the block size even with ties."""

    def __init__(self, k: int):
        self.k = k
        self.score = np.empty(0)
        self.i = np.empty(0, np.int64)
        self.j = np.empty(0, np.int64)
        self.value = np.empty(0)

    def push(self, score, i, j, value):
        if len(self.score) >= self.k:  # cheap pre-filter against the current worst
            keep = score <= self.score[-1]
            score, i, j, value = score[keep], i[keep], j[keep], value[keep]
        if len(score) > self.k:  # keep every candidate tied with the k-th best
            kth = np.partition(score, self.k - 1)[self.k - 1]
            keep = score <= kth
            score, i, j, value = score[keep], i[keep], j[keep], value[keep]
        if len(score) == 0:
            return
        s = np.concatenate([self.score, score])
        ii = np.concatenate([self.i, i])
        jj = np.concatenate([self.j, j])
        vv = np.concatenate([self.value, value])
        order = np.lexsort((jj, ii, s))[: self.k]
        self.score, self.i, self.j, self.value = s[order], ii[order], jj[order], vv[order]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"i": self.i.astype(np.int64), "j": self.j.astype(np.int64),
                             "value": self.value.astype(np.float64)})


def _check_extreme(k: int, kind: str) -> None:
    if kind not in EXTREME_KINDS:
        raise BrainVizDataError("kind", f"unknown kind {kind!r}; use one of {EXTREME_KINDS}")
    if k < 1:
        raise BrainVizDataError("k", f"must be >= 1, got {k}")


def _push_tile(top: _RunningTopK, tile: np.ndarray, i0: int, j0: int, kind: str, target: float):
    if i0 == j0:
        ti, tj = np.triu_indices(tile.shape[0], k=1, m=tile.shape[1])
    else:
        ti, tj = np.indices(tile.shape).reshape(2, -1)
    vals = tile[ti, tj]
    top.push(_score(vals, kind, target), ti + i0, tj + j0, vals.astype(np.float64))


def extreme_pairs(responses, metric: str = "correlation", k: int = 10, kind: str = "lowest",
                  block: int = 2048, dtype=np.float32, target: float = 1.0) -> pd.DataFrame:
    """The k image pairs with the most extreme dissimilarity, computed blockwise.

    Only (block, block) RDM tiles and a running top-k exist in memory, so this
    scales to N = 73,000 images (time O(N^2 * n_features)).

    Parameters
    ----------
    responses : (n_images, n_features) array-like (ndarray or memmap)
    metric : "correlation" or "euclidean"
    k : number of pairs
    kind : "lowest" (most similar), "largest" (most dissimilar) or
        "closest_to_1" (|d - target| smallest; for 1 - Pearson, d = 1 means
        uncorrelated responses).
    block, dtype : see :func:`iter_rdm_blocks`.
    target : the value "closest_to_1" is measured against (default 1.0).

    Returns
    -------
    DataFrame with columns ``i < j`` (int row indices of ``responses``) and
    ``value`` (the dissimilarity), best first; ties broken by (i, j).
    """
    _check_extreme(k, kind)
    top = _RunningTopK(k)
    for i0, j0, tile in iter_rdm_blocks(responses, metric, block, dtype):
        _push_tile(top, tile, i0, j0, kind, target)
    return top.frame()


def extreme_pairs_from_rdm(rdm_square, k: int = 10, kind: str = "lowest", block: int = 2048,
                           target: float = 1.0) -> pd.DataFrame:
    """:func:`extreme_pairs` for an existing square (n, n) RDM (ndarray or memmap),
    read one row block at a time. Only the upper triangle (i < j) is used."""
    _check_extreme(k, kind)
    shape = getattr(rdm_square, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != shape[1] or shape[0] < 2:
        raise BrainVizDataError("rdm", f"expected a square (n, n) RDM with n >= 2, got shape {shape}")
    n = shape[0]
    top = _RunningTopK(k)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        for j0 in range(i0, n, block):
            tile = np.asarray(rdm_square[i0:i1, j0:min(n, j0 + block)], dtype=np.float64)
            if not np.all(np.isfinite(tile)):
                raise BrainVizDataError("rdm", "RDM contains NaN or infinite values")
            _push_tile(top, tile, i0, j0, kind, target)
    return top.frame()


# ----------------------------------------------------------------------------------------
# RSA
# ----------------------------------------------------------------------------------------
def upper_triangle(rdm_) -> np.ndarray:
    """Condensed (n (n - 1) / 2,) float64 vector of a square (n, n) or condensed RDM."""
    a = np.asarray(rdm_, dtype=np.float64)
    if a.ndim == 2:
        if a.shape[0] != a.shape[1]:
            raise BrainVizDataError("rdm", f"square RDM expected, got shape {a.shape}")
        a = a[np.triu_indices(a.shape[0], k=1)]
    elif a.ndim != 1:
        raise BrainVizDataError("rdm", f"expected a square (n, n) or condensed RDM, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise BrainVizDataError("rdm", "RDM contains NaN or infinite values")
    return a


def _n_from_condensed(m: int) -> int:
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise BrainVizDataError("rdm", f"length {m} is not n (n - 1) / 2 for any n")
    return n


def as_square(rdm_) -> np.ndarray:
    """(n, n) float64 square form of a square or condensed RDM."""
    a = np.asarray(rdm_, dtype=np.float64)
    if a.ndim == 1:
        _n_from_condensed(a.size)
        return squareform(a, checks=False)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise BrainVizDataError("rdm", f"expected a square (n, n) or condensed RDM, got shape {a.shape}")
    return a


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


@dataclass
class PermutationResult:
    """Result of :func:`rsa_permutation_test`.

    statistic : observed RSA value (mean over the ``rdm_b`` stack when one is given)
    p_value : (1 + #{null >= statistic}) / (1 + n_perm), one-sided (greater)
    null : (n_perm,) statistic under random image relabelling of ``rdm_a``
    """

    statistic: float
    p_value: float
    null: np.ndarray


def _zscore_rows(v: np.ndarray) -> np.ndarray:
    v = v - v.mean(axis=-1, keepdims=True)
    sd = v.std(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / sd


def rsa_permutation_test(rdm_a, rdm_b, n_perm: int = 1000, seed: int = 0,
                         method: str = "spearman") -> PermutationResult:
    """Image-label permutation test of RSA (Kriegeskorte et al. 2008; Nili et al. 2014).

    The null distribution relabels the images of ``rdm_a`` (rows and columns
    permuted together), which keeps the RDM's structure but breaks its
    correspondence with ``rdm_b``.

    Parameters
    ----------
    rdm_a : (n, n) square or condensed RDM (e.g. a model)
    rdm_b : (n, n) / condensed RDM, or a stack (m, n, n) / (m, n (n - 1) / 2)
        (e.g. the subjects' RDMs); with a stack the statistic is the mean RSA
        over the stack.
    n_perm : number of permutations
    seed : seed of ``numpy.random.default_rng``
    method : see :func:`rsa`

    Returns
    -------
    PermutationResult
    """
    _check_method(method)
    sq_a = as_square(rdm_a)
    n = sq_a.shape[0]
    b = np.asarray(rdm_b, dtype=np.float64)
    if b.ndim == 1 or (b.ndim == 2 and b.shape == (n, n)):
        b = b[None]
    stack = np.stack([upper_triangle(x) for x in b])
    if stack.shape[1] != n * (n - 1) // 2:
        raise BrainVizDataError("rdm_b", f"does not match rdm_a's {n} images (shape {b.shape})")
    if n_perm < 1:
        raise BrainVizDataError("n_perm", f"must be >= 1, got {n_perm}")
    iu = np.triu_indices(n, k=1)
    vec_a = sq_a[iu]
    if not np.all(np.isfinite(vec_a)):
        raise BrainVizDataError("rdm_a", "RDM contains NaN or infinite values")
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(n_perm)])

    if method == "kendall_tau_a":
        def stat(v):
            return float(np.mean([kendall_tau_a(v, s) for s in stack]))

        observed = stat(vec_a)
        null = np.array([stat(sq_a[np.ix_(p, p)][iu]) for p in perms])
    else:
        # Pearson of (ranked) vectors: relabelling only reorders the entries of a,
        # so its mean / sd are unchanged and r = mean(z_a * z_b); average over the stack.
        if method == "spearman":
            ranked = np.zeros((n, n))
            ranked[iu] = stats.rankdata(vec_a)
            ranked = ranked + ranked.T
            target = _zscore_rows(np.stack([stats.rankdata(s) for s in stack])).mean(axis=0)
        else:
            ranked = sq_a
            target = _zscore_rows(stack).mean(axis=0)
        za = _zscore_rows(ranked[iu])
        observed = float(np.mean(za * target))
        null = np.empty(n_perm)
        for k0 in range(0, n_perm, 256):
            p = perms[k0:k0 + 256]
            v = ranked[p[:, :, None], p[:, None, :]][:, iu[0], iu[1]]
            null[k0:k0 + len(p)] = (_zscore_rows(v) * target).mean(axis=1)
    p_value = (1.0 + np.sum(null >= observed - 1e-12)) / (1.0 + n_perm)
    return PermutationResult(statistic=observed, p_value=float(p_value), null=null)


def _pool(vectors: np.ndarray, method: str) -> np.ndarray:
    """Group RDM maximizing the given comparison (as rsatoolbox.util.pooling.pool_rdm):
    mean of ranks for rank methods, mean of z-scored vectors for Pearson."""
    if method == "pearson":
        return _zscore_rows(vectors).mean(axis=0)
    return np.stack([stats.rankdata(v) for v in vectors]).mean(axis=0)


def rdm_noise_ceiling(rdms, method: str = "spearman") -> tuple[float, float]:
    """Noise ceiling of RSA for a group of subject RDMs (Nili et al. 2014).

    Parameters
    ----------
    rdms : (n_subjects, n, n) square or (n_subjects, n (n - 1) / 2) condensed RDMs
    method : see :func:`rsa`

    Returns
    -------
    lower, upper : float
        upper = mean over subjects of rsa(subject, pooled RDM of ALL subjects)
        (overfits: the subject is in its own reference); lower = mean over
        subjects of rsa(subject, pooled RDM of the OTHER subjects) (leave one
        out). Pooling = mean of ranks for rank methods, of z-scores for Pearson,
        as rsatoolbox.inference.boot_noise_ceiling, with which this agrees.
    """
    _check_method(method)
    a = np.asarray(rdms, dtype=np.float64)
    if a.ndim not in (2, 3) or a.shape[0] < 2:
        raise BrainVizDataError("rdms", f"need a stack of >= 2 RDMs (n_subjects, n, n), got shape {a.shape}")
    vectors = np.stack([upper_triangle(x) for x in a])
    upper = [_compare_vectors(_pool(vectors, method), v, method) for v in vectors]
    lower = [_compare_vectors(_pool(np.delete(vectors, s, axis=0), method), vectors[s], method)
             for s in range(len(vectors))]
    return float(np.mean(lower)), float(np.mean(upper))


# ----------------------------------------------------------------------------------------
# the real 92-image analysis
# ----------------------------------------------------------------------------------------
def k92_rsa_table(model_rdms: Mapping[str, np.ndarray], human_it, method: str = "kendall_tau_a",
                  subjects: Sequence[str] | None = None, n_perm: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """RSA of candidate RDMs against the human IT RDMs of the 92-image set.

    Parameters
    ----------
    model_rdms : {name: (92, 92) RDM}
        Candidate representations (reference models, network layers...).
    human_it : (n_rdms, 92, 92)
        Human IT RDMs (``K92.human_it``: 4 subjects x 2 sessions).
    method : "kendall_tau_a" (default; Nili et al. 2014, fair to categorical
        models) or "spearman" / "pearson".
    subjects : (n_rdms,) subject labels, optional
        When given (``K92.human_it_subjects``), RDMs of the same subject are
        averaged first and the units of the analysis are subjects (4); else
        each RDM is a unit (8; then two sessions of one subject sit in each
        leave-one-out reference, which lifts the lower noise bound).
    n_perm, seed : image-label permutation test (:func:`rsa_permutation_test`)
        of the mean-over-units statistic.

    Returns
    -------
    DataFrame, one row per model in input order, columns:
    ``model``; ``method``; ``rsa`` (mean over units of rsa(model, unit));
    ``rsa_sem`` (standard error over units); ``rsa_group`` (rsa with the pooled
    group RDM: mean of ranks / z-scores); ``rsa_mean`` (rsa with the plain mean of
    the units' RDMs, the "subject-mean RDM"; the Nili bounds do NOT apply to
    these two group comparisons); ``per_unit`` (list, rsa with each unit); ``p_value`` (permutation, one-sided); ``nc_lower``, ``nc_upper``
    (:func:`rdm_noise_ceiling` of the units, same for every row); ``n_units``.
    """
    _check_method(method)
    h = np.asarray(human_it, dtype=np.float64)
    if h.ndim != 3 or h.shape[1] != h.shape[2]:
        raise BrainVizDataError("human_it", f"expected (n_rdms, n, n), got shape {h.shape}")
    if subjects is not None:
        subjects = np.asarray(subjects)
        if subjects.shape != (h.shape[0],):
            raise BrainVizDataError("subjects", f"need one label per RDM ({h.shape[0]}), got {subjects.shape}")
        h = np.stack([h[subjects == s].mean(axis=0) for s in dict.fromkeys(subjects.tolist())])
    units = np.stack([upper_triangle(x) for x in h])
    lower, upper = rdm_noise_ceiling(units, method)
    group = _pool(units, method)
    plain_mean = units.mean(axis=0)
    rows = []
    for name, model in model_rdms.items():
        m = np.asarray(model, dtype=np.float64)
        if as_square(m).shape != h.shape[1:]:
            raise BrainVizDataError(f"model_rdms[{name!r}]", f"expected {h.shape[1:]}, got {m.shape}")
        vm = upper_triangle(m)
        per_unit = np.array([_compare_vectors(vm, u, method) for u in units])
        test = rsa_permutation_test(m, units, n_perm=n_perm, seed=seed, method=method)
        rows.append({
            "model": name, "method": method, "rsa": float(per_unit.mean()),
            "rsa_sem": float(per_unit.std(ddof=1) / np.sqrt(len(per_unit))) if len(per_unit) > 1 else np.nan,
            "rsa_group": _compare_vectors(vm, group, method), "rsa_mean": _compare_vectors(vm, plain_mean, method),
            "per_unit": per_unit.tolist(), "p_value": test.p_value,
            "nc_lower": lower, "nc_upper": upper, "n_units": len(units),
        })
    return pd.DataFrame(rows, columns=["model", "method", "rsa", "rsa_sem", "rsa_group", "rsa_mean", "per_unit",
                                       "p_value", "nc_lower", "nc_upper", "n_units"])


def feature_rdms(features, metric: str = "correlation", include_pooled: bool = True,
                 prefix: str = "") -> dict[str, np.ndarray]:
    """Per-layer RDMs of a ``brainviz.features.FeatureSet`` (duck-typed).

    Parameters
    ----------
    features : object with ``layers`` (n_images, L, P, C) (zero-padded to a
        common C), ``channels`` (L,) true channel counts, ``layer_names`` (L,),
        and ``pooled`` (n_images, D).
    metric : see :func:`rdm`
    include_pooled : add the pooled embedding's RDM under ``"pooled"``.
    prefix : prepended to every name (e.g. ``"efficientnet-lite0/"``).

    Returns
    -------
    {name: (n_images, n_images) float64 square RDM}; a layer's pattern is its
    (P * channels[l]) unpadded activations, flattened.
    """
    layers = features.layers
    n, n_layers = layers.shape[0], layers.shape[1]
    channels = list(getattr(features, "channels", [layers.shape[3]] * n_layers))
    names = list(getattr(features, "layer_names", [f"layer{l}" for l in range(n_layers)]))
    out = {}
    for l in range(n_layers):
        x = np.asarray(layers[:, l, :, : channels[l]], dtype=np.float32).reshape(n, -1)
        out[f"{prefix}{names[l]}"] = rdm(x, metric).astype(np.float64)
    if include_pooled and getattr(features, "pooled", None) is not None:
        out[f"{prefix}pooled"] = rdm(np.asarray(features.pooled, np.float32), metric).astype(np.float64)
    return out
