"""Input checks shared by the encoders (features and responses), on top of :mod:`brainviz.checks`."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..checks import check_finite
from ..errors import BrainVizDataError


def as_layers(X: Any, name: str = "X") -> tuple[np.ndarray, list[int]]:
    """Return multi-layer features as an ``(n_images, L, P, C)`` array and true channel counts.

    Parameters
    ----------
    X : a FeatureSet-like object (attributes ``layers`` (n_images, L, P, C) and
        optionally ``channels`` (L,) true channels per layer, the rest being zero
        padding), or a 4-D array ``(n_images, L, P, C)`` (all channels true).

    Returns
    -------
    layers : the array (not copied; may be a float16 memmap).
    channels : list of L ints, each in [1, C].
    """
    if hasattr(X, "layers"):
        layers = X.layers
        channels = getattr(X, "channels", None)
        name = f"{name}.layers"
    else:
        layers, channels = X, None
    if not hasattr(layers, "shape") or not hasattr(layers, "dtype"):
        layers = np.asarray(layers)
    if len(layers.shape) != 4:
        raise BrainVizDataError(name, f"expected (n_images, L, P, C) features, got shape {tuple(layers.shape)}")
    if not np.issubdtype(layers.dtype, np.floating):
        raise BrainVizDataError(name, f"expected float features, got dtype {layers.dtype}")
    n, L, P, C = (int(s) for s in layers.shape)
    if min(n, L, P, C) < 1:
        raise BrainVizDataError(name, f"has an empty dimension: shape {tuple(layers.shape)}")
    if channels is None:
        channels = [C] * L
    channels = [int(c) for c in channels]
    if len(channels) != L or any(c < 1 or c > C for c in channels):
        raise BrainVizDataError(f"{name[:-len('.layers')] if name.endswith('.layers') else name}.channels",
                                f"expected {L} channel counts in [1, {C}], got {channels}")
    return layers, channels


def as_responses(Y: Any, n_images: int, name: str = "Y", *, load: bool = True) -> Any:
    """Check responses ``(n_images, n_vertices)`` and return them as float32.

    ``load=False``: check the shape and dtype only and return an array-like ``Y``
    itself, not copied (e.g. a memory map the caller reads in chunks and checks
    for NaN there).
    """
    lazy = not load and hasattr(Y, "shape") and hasattr(Y, "dtype")
    if lazy:
        arr = Y
    else:
        try:
            arr = np.asarray(Y, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise BrainVizDataError(name, f"not a numeric array ({exc})") from None
    if len(arr.shape) != 2:
        raise BrainVizDataError(name, f"expected (n_images, n_vertices) responses, got shape {tuple(arr.shape)}")
    if arr.shape[0] != n_images:
        raise BrainVizDataError(name, f"has {arr.shape[0]} rows but the features have {n_images} images")
    if arr.shape[1] < 1:
        raise BrainVizDataError(name, "has no vertices")
    if lazy:
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise BrainVizDataError(name, f"not a numeric array (dtype {arr.dtype})")
    elif load:
        check_finite(arr, name)
    return arr


def grid_side(P: int, name: str = "X") -> int:
    """Side of the square patch grid of ``P`` patches (raises if P is not a square)."""
    side = int(round(math.sqrt(P)))
    if side * side != P:
        raise BrainVizDataError(name, f"P={P} patches do not form a square grid; use spatial_grid=1")
    return side


def pool_bins(size: int, grid: int) -> list[tuple[int, int]]:
    """Bins of adaptive average pooling (same as torch.nn.AdaptiveAvgPool1d)."""
    return [((i * size) // grid, -((-(i + 1) * size) // grid)) for i in range(grid)]


def pooled_layer_features(layers: np.ndarray, channels: Sequence[int], grid: int,
                          chunk: int = 256) -> np.ndarray:
    """Average-pool each layer's patch grid to ``grid x grid``, keep true channels, concatenate.

    Parameters
    ----------
    layers : (n_images, L, P, C) features, P a square number (unless grid == 1).
    channels : (L,) true channel counts.
    grid : pooled grid side (1 = global average).

    Returns
    -------
    (n_images, sum_l grid*grid*channels[l]) float32, ordered layer, cell, channel.
    """
    n, L, P, C = (int(s) for s in layers.shape)
    if grid < 1:
        raise BrainVizDataError("spatial_grid", f"must be >= 1, got {grid}")
    if grid == 1:
        cells = [np.arange(P)]
    else:
        side = grid_side(P)
        if grid > side:
            raise BrainVizDataError("spatial_grid", f"{grid} exceeds the {side}x{side} patch grid")
        bins = pool_bins(side, grid)
        cells = []
        for r0, r1 in bins:
            for c0, c1 in bins:
                cells.append(np.array([r * side + c for r in range(r0, r1) for c in range(c0, c1)]))
    width = sum(len(cells) * c for c in channels)
    out = np.empty((n, width), dtype=np.float32)
    for s in range(0, n, chunk):
        block = np.asarray(layers[s:s + chunk], dtype=np.float32)
        parts = []
        for l in range(L):
            for idx in cells:
                parts.append(block[:, l, idx, :channels[l]].mean(axis=1))
        out[s:s + chunk] = np.concatenate(parts, axis=1)
    if not np.isfinite(out).all():
        raise BrainVizDataError("X", "features contain NaN or infinite values")
    return out
