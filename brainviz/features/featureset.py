"""``FeatureSet``: multi-layer features of a set of images (numpy only; no torch needed).

- ``layers``: (n_images, L, P, C) float16, often a read-only memmap. Layer ``l``
  has real values in ``[..., :channels[l]]`` and zeros after that; P patches are
  row-major over ``grid`` (rows, cols).
- ``pooled``: (n_images, D) float32, the backbone's image embedding.
- ``keys``: image keys (e.g. ``"nsd-02950"``) in row order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..errors import BrainVizDataError


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features of ``n`` images from one backbone (see module docstring for shapes)."""

    keys: tuple[str, ...]
    layers: np.ndarray
    pooled: np.ndarray
    layer_names: tuple[str, ...]
    channels: tuple[int, ...]
    backbone: str
    weights_id: str = ""
    grid: tuple[int, int] | None = None
    _index: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(str(k) for k in self.keys)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "layer_names", tuple(self.layer_names))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        n = len(keys)
        where = f"FeatureSet({self.backbone})"
        if self.layers.ndim != 4 or self.layers.shape[0] != n:
            raise BrainVizDataError(where, f"layers shape {self.layers.shape} is not ({n}, L, P, C)")
        if self.pooled.ndim != 2 or self.pooled.shape[0] != n:
            raise BrainVizDataError(where, f"pooled shape {self.pooled.shape} is not ({n}, D)")
        _, n_layers, n_patches, n_channels = self.layers.shape
        if len(self.layer_names) != n_layers or len(self.channels) != n_layers:
            raise BrainVizDataError(where, f"{n_layers} layers but {len(self.layer_names)} names, {len(self.channels)} channel counts")
        if self.channels and max(self.channels) > n_channels:
            raise BrainVizDataError(where, f"channels {self.channels} exceed C = {n_channels}")
        grid = self.grid
        if grid is None:
            side = math.isqrt(n_patches)
            grid = (side, side) if side * side == n_patches else (1, n_patches)
        grid = (int(grid[0]), int(grid[1]))
        if grid[0] * grid[1] != n_patches:
            raise BrainVizDataError(where, f"grid {grid} does not give P = {n_patches} patches")
        object.__setattr__(self, "grid", grid)
        index = {k: i for i, k in enumerate(keys)}
        if len(index) != n:
            dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
            raise BrainVizDataError(where, f"duplicate image keys, e.g. {dup}")
        object.__setattr__(self, "_index", index)

    # ---- sizes -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_images(self) -> int:
        return len(self.keys)

    @property
    def n_layers(self) -> int:
        return self.layers.shape[1]

    @property
    def n_patches(self) -> int:
        return self.layers.shape[2]

    @property
    def pooled_dim(self) -> int:
        return self.pooled.shape[1]

    # ---- selection -----------------------------------------------------------
    def indices(self, keys: Iterable[str]) -> np.ndarray:
        """Row indices (int64) of ``keys``; raises BrainVizDataError for unknown keys."""
        keys = list(keys)
        missing = [k for k in keys if k not in self._index]
        if missing:
            raise BrainVizDataError(
                f"FeatureSet({self.backbone})", f"{len(missing)} image keys have no features, e.g. {missing[:5]}"
            )
        return np.fromiter((self._index[k] for k in keys), dtype=np.int64, count=len(keys))

    def subset(self, keys: Sequence[str]) -> "FeatureSet":
        """A new in-memory FeatureSet with the rows of ``keys``, in that order."""
        idx = self.indices(keys)
        order = np.argsort(idx, kind="stable")  # read the memmap in file order
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        layers = np.asarray(self.layers[idx[order]])[inverse]
        pooled = np.asarray(self.pooled[idx[order]])[inverse]
        return FeatureSet(
            keys=tuple(keys), layers=layers, pooled=pooled, layer_names=self.layer_names,
            channels=self.channels, backbone=self.backbone, weights_id=self.weights_id, grid=self.grid,
        )

    def layer(self, layer: int | str) -> np.ndarray:
        """(n, P, C_l) view of one layer (by index or name), without the zero padding."""
        i = self.layer_names.index(layer) if isinstance(layer, str) else int(layer)
        return self.layers[:, i, :, : self.channels[i]]

    # ---- derived features ----------------------------------------------------
    def spatial_pool(
        self,
        grid: int = 2,
        layers: Sequence[int | str] | None = None,
        chunk: int = 256,
    ) -> np.ndarray:
        """Average the patch grid into ``grid`` x ``grid`` cells per layer, for ridge baselines.

        Cells use adaptive-average-pool bins (bin i spans rows
        ``floor(i*H/g) .. ceil((i+1)*H/g)``), so bins may overlap by one patch.

        Returns
        -------
        np.ndarray
            (n_images, sum over the chosen layers of grid*grid*C_l) float32.
            Per layer the block is ordered (cell_row, cell_col, channel), channel fastest;
            layers follow ``layers`` (default: all, in order).
        """
        sel = list(range(self.n_layers)) if layers is None else [
            self.layer_names.index(l) if isinstance(l, str) else int(l) for l in layers
        ]
        gh, gw = self.grid
        rows = [(math.floor(i * gh / grid), math.ceil((i + 1) * gh / grid)) for i in range(grid)]
        cols = [(math.floor(j * gw / grid), math.ceil((j + 1) * gw / grid)) for j in range(grid)]
        width = sum(grid * grid * self.channels[i] for i in sel)
        out = np.empty((self.n_images, width), dtype=np.float32)
        for start in range(0, self.n_images, chunk):
            stop = min(start + chunk, self.n_images)
            block = np.asarray(self.layers[start:stop], dtype=np.float32)  # (b, L, P, C)
            col = 0
            for i in sel:
                c = self.channels[i]
                x = block[:, i, :, :c].reshape(stop - start, gh, gw, c)
                for r0, r1 in rows:
                    for c0, c1 in cols:
                        out[start:stop, col : col + c] = x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))
                        col += c
        return out

    def __repr__(self) -> str:
        return (
            f"FeatureSet(backbone={self.backbone!r}, n={self.n_images}, layers={self.layer_names}, "
            f"L,P,C={self.layers.shape[1:]}, D={self.pooled_dim}, weights={self.weights_id!r})"
        )
