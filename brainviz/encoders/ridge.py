"""Voxel-wise ridge regression encoder (the baseline), with himalaya.

Features: the backbone's multi-layer features, each layer average-pooled to a
``spatial_grid x spatial_grid`` grid of patch cells (true channels only),
concatenated and standardized. Targets: responses (n_images, n_vertices).
Each vertex gets its own regularization strength ``alpha`` chosen by K-fold
cross-validation (himalaya ``RidgeCV`` with ``local_alpha=True``).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from ..errors import BrainVizDataError
from ._inputs import as_layers, as_responses, pooled_layer_features

__all__ = ["RidgeEncoder", "ridge_features"]


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


@contextlib.contextmanager
def _himalaya_backend(name: str) -> Iterator[Any]:
    """Temporarily switch the (global) himalaya backend."""
    from himalaya.backend import get_backend, set_backend

    previous = get_backend()
    backend = set_backend(name, on_error="raise")
    try:
        yield backend
    finally:
        set_backend(previous, on_error="warn")


def _default_backend() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return "torch_cuda"
    except Exception:  # pragma: no cover - torch is a dependency
        pass
    return "numpy"


class RidgeEncoder:
    """Ridge encoder with a per-vertex alpha chosen by cross-validation.

    Parameters
    ----------
    alphas : candidate regularization strengths.
    cv : number of K folds (shuffled with ``seed``).
    spatial_grid : per-layer pooled grid side (see :func:`ridge_features`).
    backend : himalaya backend name; default ``"torch_cuda"`` when a GPU is
        available, else ``"numpy"``.
    n_targets_batch : vertices solved at once (bounds memory).
    seed : seed of the fold shuffling.

    Attributes (after fit)
    ----------------------
    coef_ : (n_features, n_vertices) float32 weights on standardized features.
    intercept_ : (n_vertices,) float32, the training mean response.
    best_alphas_ : (n_vertices,) alpha chosen per vertex.
    x_mean_, x_scale_ : (n_features,) standardization.
    n_features_in_, n_vertices_ : ints.
    """

    def __init__(self, alphas=np.logspace(-1, 6, 15), cv: int = 5, spatial_grid: int = 2,
                 backend: str | None = None, n_targets_batch: int | None = 4096, seed: int = 0):
        self.alphas = np.asarray(alphas, dtype=np.float64)
        self.cv = cv
        self.spatial_grid = spatial_grid
        self.backend = backend
        self.n_targets_batch = n_targets_batch
        self.seed = seed

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X: Any, Y: Any) -> "RidgeEncoder":
        """Fit on features X (see :func:`ridge_features`) and responses Y (n_images, n_vertices)."""
        from himalaya.ridge import RidgeCV
        from sklearn.model_selection import KFold

        if self.alphas.ndim != 1 or self.alphas.size == 0 or (self.alphas <= 0).any():
            raise BrainVizDataError("alphas", "must be a non-empty 1-D array of positive values")
        F = ridge_features(X, self.spatial_grid)
        n = F.shape[0]
        Yc = as_responses(Y, n, "Y")
        if not isinstance(self.cv, int) or self.cv < 2 or self.cv > n:
            raise BrainVizDataError("cv", f"must be an int in [2, n_images={n}], got {self.cv}")
        self.x_mean_ = F.mean(axis=0)
        scale = F.std(axis=0)
        self.x_scale_ = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        Xs = ((F - self.x_mean_) / self.x_scale_).astype(np.float32)
        y_mean = Yc.mean(axis=0)
        Ys = Yc - y_mean

        splitter = KFold(n_splits=self.cv, shuffle=True, random_state=self.seed)
        with _himalaya_backend(self.backend or _default_backend()) as backend:
            model = RidgeCV(alphas=self.alphas, cv=splitter, fit_intercept=False,
                            solver_params={"local_alpha": True,
                                           "n_targets_batch": self.n_targets_batch,
                                           "n_targets_batch_refit": self.n_targets_batch,
                                           "warn": False})
            model.fit(Xs, Ys)
            self.coef_ = np.asarray(backend.to_numpy(model.coef_), dtype=np.float32).reshape(Xs.shape[1], -1)
            self.best_alphas_ = np.asarray(backend.to_numpy(model.best_alphas_), dtype=np.float64)
        self.intercept_ = y_mean.astype(np.float32)
        self.n_features_in_ = int(Xs.shape[1])
        self.n_vertices_ = int(Yc.shape[1])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise BrainVizDataError("RidgeEncoder", "is not fitted; call fit(X, Y) first")

    def predict(self, X: Any) -> np.ndarray:
        """Predicted responses (n_images, n_vertices) float32."""
        self._check_fitted()
        F = ridge_features(X, self.spatial_grid)
        if F.shape[1] != self.n_features_in_:
            raise BrainVizDataError("X", f"gives {F.shape[1]} features, the model was fitted on {self.n_features_in_}")
        Xs = (F - self.x_mean_) / self.x_scale_
        return (Xs @ self.coef_ + self.intercept_).astype(np.float32)

    def score(self, X: Any, Y: Any) -> np.ndarray:
        """Per-vertex Pearson r (n_vertices,) between predictions and Y."""
        from ..metrics import pearson_per_vertex

        pred = self.predict(X)
        return pearson_per_vertex(as_responses(Y, pred.shape[0], "Y"), pred)

    def __repr__(self) -> str:
        return (f"RidgeEncoder(n_alphas={self.alphas.size}, cv={self.cv}, "
                f"spatial_grid={self.spatial_grid}, backend={self.backend!r})")
