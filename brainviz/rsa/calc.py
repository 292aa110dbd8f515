"""Computing RDMs (rsatoolbox's ``rdm.calc`` part).

Blockwise RDMs of (n_images, n_features) responses (:func:`rdm`, :func:`iter_rdm_blocks`),
their most / least similar pairs without an n x n matrix (:func:`extreme_pairs`), square and
condensed forms (:func:`upper_triangle`, :func:`as_square`), per-layer RDMs of a feature set
(:func:`feature_rdms`, :func:`block_rdms`), and RDMs from repeated measurements (:func:`repeat_rdms`,
:func:`crossvalidated_rdm`).

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

Repeated measurements
---------------------
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

from typing import Iterator

import numpy as np
import pandas as pd
from scipy.spatial.distance import squareform

from ..errors import BrainVizDataError

METRICS = ("correlation", "euclidean")
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
# square / condensed forms
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


# ----------------------------------------------------------------------------------------
# per-layer RDMs of a feature set
# ----------------------------------------------------------------------------------------
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


def block_rdms(acts, metric: str = "correlation") -> dict[str, np.ndarray]:
    """{block name: (n_images, n_images) float64 RDM} of every block (full resolution), shallow to deep.

    ``acts``: a :class:`brainviz.features.blocks.BlockActivations` (duck-typed: ``names``, ``arrays``).
    """
    return {n: rdm(acts.arrays[n], metric).astype(np.float64) for n in acts.names}


# ----------------------------------------------------------------------------------------
# RDMs from repeated measurements
# ----------------------------------------------------------------------------------------
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
    metric : "correlation" (1 - Pearson) or "euclidean", see :func:`rdm`
    """
    a = _check_repeats(repeats)
    return np.stack([rdm(a[:, k, :], metric).astype(np.float64) for k in range(a.shape[1])])


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
    same = sum(a[:, r] @ a[:, r].T for r in range(k))  # sum over repeats of x_ir . x_jr (BLAS, not einsum's loop)
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
