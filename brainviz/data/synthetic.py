"""Deterministic synthetic (features, responses) pairs for tests and benchmarks of the encoders."""
from __future__ import annotations

import numpy as np

__all__ = ["synthetic_data"]



def synthetic_data(n_images: int = 64, n_voxels: int = 200, n_subjects: int = 1, *, n_layers: int = 2,
                   n_patches: int = 4, n_channels: int = 8, seed: int = 0,
                   noise: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deterministic {``subjNN``: (X (n, L, P, C) float32, Y (n, V) float32)} for tests and benchmarks.

    Y is a fixed random linear read-out of patch-averaged features plus Gaussian
    noise (``noise`` x its standard deviation), so an encoder can learn it.
    """
    out = {}
    for s in range(n_subjects):
        rng = np.random.default_rng([int(seed), s])
        X = rng.standard_normal((n_images, n_layers, n_patches, n_channels)).astype(np.float32)
        w = rng.standard_normal((n_layers * n_channels, n_voxels)) / np.sqrt(n_layers * n_channels)
        clean = X.mean(axis=2).reshape(n_images, -1) @ w
        Y = clean + noise * clean.std() * rng.standard_normal(clean.shape)
        out[f"subj{s + 1:02d}"] = (X, Y.astype(np.float32))
    return out
