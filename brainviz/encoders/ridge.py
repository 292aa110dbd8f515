"""Voxel-wise ridge regression encoder (the baseline), per-vertex alpha by cross-validation.

Features: the backbone's multi-layer features, each layer average-pooled to a
``spatial_grid x spatial_grid`` grid of patch cells (true channels only),
concatenated and standardized. Targets: responses (n_images, n_vertices).
Each vertex gets its own regularization strength ``alpha``.

How the fit works (one decomposition serves every alpha and every vertex):

1. One symmetric eigendecomposition of the centered design's Gram matrix
   (``X^T X``, p x p, when n_images >= n_features, else ``X X^T``), in
   float64. With it, for every alpha, the hat matrix is
   ``H_a = 11^T / n + B diag(g_a) B^T`` and the weights ``W_a = C diag(q_a) B^T Y``
   (B: n x r image-space basis, C: p x r, g_a, q_a: r factors), so changing
   alpha only rescales r numbers.
2. Vertices are processed in chunks of ``n_targets_batch`` (memory stays
   bounded whatever the number of vertices, and ``Y`` may be a memory map):
   per chunk ``Z = B^T Y_chunk`` once, then for each alpha the closed-form
   leave-one-out residuals ``(y - H_a y) / (1 - diag(H_a))`` (exact, intercept
   unpenalized: the criterion of scikit-learn's ``RidgeCV`` with
   ``alpha_per_target=True``), one float32 (n x r) @ (r x chunk) product.
   With an integer ``cv`` (K folds) each fold has its own decomposition and the
   held-out squared error is summed over folds instead.
3. Each vertex keeps the alpha with the lowest CV error (``best_alphas_``);
   its weights come from the same decomposition, ``C diag(q_best) Z``.

Cost: about (n_alphas + 1) * 2 * n * min(n, p) * n_vertices float32 flops
plus one p x p eigendecomposition; memory: the design, the decomposition and
O(n * n_targets_batch) per chunk, besides the (p, n_vertices) weights.
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import BrainVizDataError
from ._inputs import as_layers, as_responses, pooled_layer_features

__all__ = ["RidgeEncoder", "ridge_features"]

#: default candidate penalties (for standardized features; a tuple: estimator defaults stay immutable)
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))
#: relative eigenvalue floor: components below ``tol * max eigenvalue`` carry no signal
_EIG_RTOL = 1e-10
#: floor of ``1 - h_ii`` in the leave-one-out residuals
_LOO_MIN = 1e-6


def ridge_features(X: Any, spatial_grid: int = 2) -> np.ndarray:
    """Design matrix of the ridge encoder (before standardization).

    Parameters
    ----------
    X : FeatureSet-like (``.layers`` (n_images, L, P, C), ``.channels``), a 4-D
        array (n_images, L, P, C), or a 2-D array (n_images, n_features) used as is.
    spatial_grid : side of the pooled grid per layer (2 -> 4 cells per layer).

    Returns
    -------
    (n_images, n_features) float32.
    """
    if not hasattr(X, "layers"):
        arr = X if hasattr(X, "ndim") else np.asarray(X)
        if arr.ndim == 2:
            out = np.asarray(arr, dtype=np.float32)
            if not np.isfinite(out).all():
                raise BrainVizDataError("X", "features contain NaN or infinite values")
            return out
    layers, channels = as_layers(X)
    return pooled_layer_features(layers, channels, spatial_grid)


# ---------------------------------------------------------------------------------------- array backends
class _NumpyOps:
    """float32 numpy on the CPU (BLAS threads as configured, e.g. by threadpoolctl)."""

    device = "cpu"

    @staticmethod
    def asarray(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    @staticmethod
    def to_numpy(a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def empty(shape: tuple[int, ...]) -> np.ndarray:
        return np.empty(shape, dtype=np.float32)

    @staticmethod
    def index(idx: np.ndarray) -> np.ndarray:
        return idx

    matmul = staticmethod(np.matmul)
    mul = staticmethod(np.multiply)


class _TorchOps:
    """float32 torch tensors on ``device`` (a GPU: the same algorithm, its matrix products there)."""

    def __init__(self, device: Any):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.matmul = torch.matmul
        self.mul = torch.mul

    def asarray(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)

    @staticmethod
    def to_numpy(a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def empty(self, shape: tuple[int, ...]):
        return self.torch.empty(shape, dtype=self.torch.float32, device=self.device)

    def index(self, idx: np.ndarray):
        return self.torch.as_tensor(idx, device=self.device)


def _ops(device: str):
    """Array backend for ``device``: ``"cpu"`` -> numpy, anything else -> torch on that device."""
    if device == "cpu":
        return _NumpyOps()
    try:
        return _TorchOps(device)
    except (RuntimeError, ValueError) as exc:
        raise BrainVizDataError("device", f"cannot use {device!r} ({exc})") from None


# ---------------------------------------------------------------------------------------- the solver
def _eigh_threads(size: int):
    """One BLAS thread for the eigendecomposition of a moderate matrix.

    LAPACK's tridiagonal reduction is memory bound; on a busy CPU extra BLAS
    threads mostly spin (1,000 x 1,000 on the shared 2-core machine: 0.64 s with
    one thread, 4.3 s with two). Large matrices keep the library's setting.
    """
    if size > 2048:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class _Decomposition:
    """Eigendecomposition of one centered design Xc (m, p), for every alpha at once.

    Attributes: ``B`` (m, r) image-space basis, ``C`` (p, r), ``g`` and ``q``
    (n_alphas, r) float32 factors such that, for alpha a,
    ``Xc W_a = B diag(g_a) B^T y`` (the fitted values) and ``W_a = C diag(q_a) B^T y``.
    ``leverage`` (n_alphas, m): diagonal of ``B diag(g_a) B^T`` (float64, when asked).
    B, C, g, q live on the backend's device; C, g, q also as numpy (``*_np``).
    """

    def __init__(self, Xc: np.ndarray, alphas: np.ndarray, ops, leverage: bool = False):
        m, p = Xc.shape
        X64 = Xc.astype(np.float64)
        gram = X64.T @ X64 if m >= p else X64 @ X64.T
        with _eigh_threads(gram.shape[0]):
            lam, vecs = np.linalg.eigh(gram)
        keep = lam > _EIG_RTOL * max(float(lam[-1]), np.finfo(np.float64).tiny)
        lam, vecs = lam[keep], vecs[:, keep]
        inv = 1.0 / (lam[None, :] + alphas[:, None])  # (A, r)
        if m >= p:  # B = Xc V (columns of norm sqrt(lam)), C = V
            B, C, g = X64 @ vecs, vecs, inv
        else:  # B = U (unit columns), C = Xc^T U
            B, C, g = vecs, X64.T @ vecs, lam[None, :] * inv
        self.rank = int(lam.size)
        self.g_np = g.astype(np.float32)
        self.q_np = inv.astype(np.float32)
        self.C_np = C.astype(np.float32)
        self.leverage = ((B * B) @ g.T).T if leverage else None  # (A, m)
        self.B = ops.asarray(B)
        self.C = ops.asarray(self.C_np)
        self.g = ops.asarray(self.g_np)
        self.q = ops.asarray(self.q_np)


def _sq_errors(ops, B, factors, Z, Y, weights=None) -> np.ndarray:
    """Per alpha a and target j: sum_i (w_ai * ((B diag(f_a) Z)_ij - Y_ij))^2.

    B (m, r), factors (A, r), Z (r, c), Y (m, c), weights (A, m) or None, all on
    the backend's device. Returns (A, c) float32 numpy.
    """
    m, c = Y.shape
    dz = ops.empty(tuple(Z.shape))
    R = ops.empty((m, c))
    out = []
    for a in range(factors.shape[0]):
        ops.mul(Z, factors[a][:, None], out=dz)
        ops.matmul(B, dz, out=R)
        R -= Y
        if weights is not None:
            R *= weights[a][:, None]
        R *= R
        out.append(ops.to_numpy(R.sum(0)))
    return np.stack(out)


class _Fold:
    """One K-fold split: decomposition of the training rows, projected held-out rows."""

    def __init__(self, Xs: np.ndarray, train: np.ndarray, val: np.ndarray, alphas: np.ndarray, ops):
        mean = Xs[train].mean(axis=0)
        self.dec = _Decomposition(Xs[train] - mean, alphas, ops)
        self.P = ops.asarray((Xs[val] - mean) @ self.dec.C_np)  # (n_val, r): held-out rows in the fold's basis
        self.train, self.val = ops.index(train), ops.index(val)

    def errors(self, ops, Yc) -> np.ndarray:
        """(A, c) summed squared held-out errors for the chunk Yc (n, c) on the device."""
        Ytr = Yc[self.train]
        mu = Ytr.mean(0)
        Ytr -= mu
        Z = self.dec.B.T @ Ytr
        return _sq_errors(ops, self.P, self.dec.q, Z, Yc[self.val] - mu)


def _response_chunk(Y: Any, j0: int, j1: int) -> np.ndarray:
    """Columns j0:j1 of Y as a new C-contiguous float32 array (checked finite). A lazy Y
    (:class:`~brainviz.data.streaming.RowConcat`, ``RowSubset``: e.g. ``Context.responses(s, "train", lazy=True)``)
    is read with :func:`~brainviz.data.streaming.read_cols`: only those columns of its rows."""
    if isinstance(Y, np.ndarray):  # in memory or a memory map
        chunk = np.array(Y[:, j0:j1], dtype=np.float32, order="C", copy=True)
    else:
        from ..data.streaming import read_cols

        chunk = read_cols(Y, j0, j1)
        if not chunk.flags.owndata or not chunk.flags.writeable:  # e.g. a view of one whole memmap
            chunk = np.array(chunk, order="C", copy=True)
    finite = np.isfinite(chunk)
    if not finite.all():
        i, j = (int(k) for k in np.argwhere(~finite)[0])
        raise BrainVizDataError("Y", f"contains NaN or infinite values (first at index {(i, j0 + j)})")
    return chunk


class RidgeEncoder(BaseEstimator):
    """Ridge encoder with a per-vertex alpha chosen by cross-validation.

    Parameters
    ----------
    alphas : (n_alphas,) candidate regularization strengths (> 0).
    cv : ``"loo"`` (default): exact leave-one-out in closed form from one
        decomposition; or an int K >= 2: K folds (shuffled with ``seed``), one
        decomposition per fold.
    spatial_grid : per-layer pooled grid side (see :func:`ridge_features`).
    device : ``"cpu"`` (numpy), a torch device such as ``"cuda"``, or None
        (``"cuda"`` when a GPU is available, else ``"cpu"``).
    n_targets_batch : vertices solved at once (bounds memory: about
        ``3 * n_images * n_targets_batch`` float32 per chunk); None: all at once.
    seed : seed of the fold shuffling (integer ``cv`` only).

    Attributes (after fit)
    ----------------------
    coef_ : (n_features, n_vertices) float32 weights on standardized features.
    intercept_ : (n_vertices,) float32, the training mean response.
    best_alphas_ : (n_vertices,) float64, the alpha chosen per vertex.
    cv_errors_ : (n_vertices,) float32, CV mean squared error at that alpha
        (leave-one-out or K-fold, per image).
    x_mean_, x_scale_ : (n_features,) standardization.
    n_features_in_, n_vertices_ : ints.
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, cv: int | str = "loo", spatial_grid: int = 2,
                 device: str | None = None, n_targets_batch: int | None = 4096, seed: int = 0):
        self.alphas = alphas
        self.cv = cv
        self.spatial_grid = spatial_grid
        self.device = device
        self.n_targets_batch = n_targets_batch
        self.seed = seed

    # ------------------------------------------------------------------ fit / predict
    def _check_params(self, n: int, v: int) -> tuple[np.ndarray, int]:
        try:
            alphas = np.asarray(self.alphas, dtype=np.float64)
        except (TypeError, ValueError):
            alphas = np.empty(0)
        if alphas.ndim != 1 or alphas.size == 0 or not np.isfinite(alphas).all() or (alphas <= 0).any():
            raise BrainVizDataError("alphas", "must be a non-empty 1-D array of positive values")
        if isinstance(self.cv, str):
            if self.cv != "loo":
                raise BrainVizDataError("cv", f"must be 'loo' or an int number of folds, got {self.cv!r}")
            if n < 2:
                raise BrainVizDataError("X", f"leave-one-out needs at least 2 images, got {n}")
        elif isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or not 2 <= self.cv <= n:
            raise BrainVizDataError("cv", f"must be 'loo' or an int in [2, n_images={n}], got {self.cv!r}")
        batch = self.n_targets_batch
        if batch is None:
            batch = v
        elif isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise BrainVizDataError("n_targets_batch", f"must be a positive int or None, got {batch!r}")
        return alphas, int(min(batch, v))

    def fit(self, X: Any, Y: Any) -> "RidgeEncoder":
        """Fit on features X (see :func:`ridge_features`) and responses Y (n_images, n_vertices).

        ``Y`` is read chunk by chunk (``n_targets_batch`` vertices at a time) and
        never copied whole, so it may be a memory-mapped array larger than RAM, or a lazy
        :class:`~brainviz.data.streaming.RowConcat` / ``RowSubset`` of memory maps.
        """
        F = ridge_features(X, self.spatial_grid)
        n, p = F.shape
        Y = as_responses(Y, n, load=False)  # may be a memory map: read and checked in chunks
        v = int(Y.shape[1])
        alphas, batch = self._check_params(n, v)
        from ..gpu import resolve_device

        ops = _ops(str(resolve_device(self.device)))

        scale = F.std(axis=0, dtype=np.float64)
        self.x_mean_ = F.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.x_scale_ = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        Xs = ((F - self.x_mean_) / self.x_scale_).astype(np.float32)

        full = _Decomposition(Xs, alphas, ops, leverage=self.cv == "loo")
        if self.cv == "loo":
            folds = []
            loo_w = ops.asarray(1.0 / np.maximum(1.0 - (1.0 / n + full.leverage), _LOO_MIN))  # (A, n)
        else:
            from sklearn.model_selection import KFold

            splitter = KFold(n_splits=int(self.cv), shuffle=True, random_state=self.seed)
            folds = [_Fold(Xs, tr, va, alphas, ops) for tr, va in splitter.split(Xs)]

        coef = np.empty((p, v), dtype=np.float32)
        intercept = np.empty(v, dtype=np.float32)
        best = np.empty(v, dtype=np.intp)
        cv_err = np.empty(v, dtype=np.float32)
        for j0 in range(0, v, batch):
            j1 = min(v, j0 + batch)
            chunk = _response_chunk(Y, j0, j1)
            mean = chunk.mean(axis=0, dtype=np.float64).astype(np.float32)
            chunk -= mean
            intercept[j0:j1] = mean
            Yc = ops.asarray(chunk)
            del chunk
            Z = full.B.T @ Yc  # (r, c): the only pass over the chunk shared by every alpha
            if folds:
                err = sum(f.errors(ops, Yc) for f in folds)
            else:
                err = _sq_errors(ops, full.B, full.g, Z, Yc, loo_w)
            k = err.argmin(axis=0)
            best[j0:j1] = k
            cv_err[j0:j1] = err[k, np.arange(j1 - j0)] / n
            del Yc
            coef[:, j0:j1] = ops.to_numpy(full.C @ (ops.asarray(full.q_np[k].T) * Z))
        self.coef_ = coef
        self.intercept_ = intercept
        self.best_alphas_ = alphas[best]
        self.cv_errors_ = cv_err
        self.n_features_in_ = int(p)
        self.n_vertices_ = v
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise BrainVizDataError("RidgeEncoder", "is not fitted; call fit(X, Y) first")

    def predict(self, X: Any, subject: str | None = None) -> np.ndarray:
        """Predicted responses (n_images, n_vertices) float32.

        ``subject`` is accepted and ignored (a ridge model belongs to one subject), so every
        encoder is called the same way: ``model.predict(X, subject=...)``.
        """
        self._check_fitted()
        F = ridge_features(X, self.spatial_grid)
        if F.shape[1] != self.n_features_in_:
            raise BrainVizDataError("X", f"gives {F.shape[1]} features, the model was fitted on {self.n_features_in_}")
        Xs = (F - self.x_mean_) / self.x_scale_
        return (Xs @ self.coef_ + self.intercept_).astype(np.float32)

    def score(self, X: Any, Y: Any, subject: str | None = None) -> np.ndarray:
        """Per-vertex Pearson r (n_vertices,) between predictions and Y (``subject``: ignored, see :meth:`predict`)."""
        from ..metrics import pearson_per_vertex

        pred = self.predict(X)
        return pearson_per_vertex(as_responses(Y, pred.shape[0], "Y"), pred)
