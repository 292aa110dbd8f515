"""Run a backbone over many images (batched, with progress) or one live image (fast path)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..errors import BrainVizDataError
from .base import Backbone, torch_threads
from .featureset import FeatureSet

ImageLike = Image.Image | str | Path


class _ImageDataset(Dataset):
    """Preprocessed images: item i -> (3, S, S) float32 tensor (for DataLoader worker processes)."""

    def __init__(self, images: Sequence[ImageLike], backbone: Backbone):
        self.images = images
        self.pre = backbone.preprocessor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pre(self.images[i])


def _default_keys(images: Sequence[ImageLike]) -> list[str]:
    return [str(im) if isinstance(im, (str, Path)) else f"image-{i:05d}" for i, im in enumerate(images)]


def prefetched_batches(backbone: Backbone, images: Sequence[ImageLike], batch_size: int) -> Iterator[torch.Tensor]:
    """Yield preprocessed (B, 3, S, S) float32 batches; batch k+1 is prepared while the caller uses batch k.

    One background thread decodes, resizes and normalizes the next batch
    (Pillow and numpy release the GIL, so this overlaps the network's
    forward) straight into one of two reused buffers (pinned for a GPU): no
    per-image tensors, no collate copy. A yielded batch is valid until the
    next one is requested (its buffer is then refilled). Errors (e.g. an
    unreadable image) are raised in the caller's thread.
    """
    n = len(images)
    if n == 0:
        return
    pre = backbone.preprocessor
    size = min(batch_size, n)
    pin = backbone.device.type == "cuda"
    buffers = [torch.empty((size, 3, pre.size, pre.size), dtype=torch.float32, pin_memory=pin)
               for _ in range(2 if n > size else 1)]
    starts = list(range(0, n, batch_size))

    def make(k: int) -> torch.Tensor:
        i0 = starts[k]
        return pre.batch(images[i0:i0 + batch_size], out=buffers[k % len(buffers)])

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="brainviz-preprocess") as pool:
        pending = pool.submit(make, 0)
        try:
            for k in range(len(starts)):
                batch = pending.result()
                if k + 1 < len(starts):
                    pending = pool.submit(make, k + 1)
                yield batch
        finally:
            pending.cancel()


def extract_into(
    backbone: Backbone,
    images: Sequence[ImageLike],
    layers_out: np.ndarray,
    pooled_out: np.ndarray,
    batch_size: int = 32,
    progress: bool = True,
    num_workers: int = 0,
    num_threads: int | None = None,
) -> None:
    """Fill ``layers_out`` (n, L, P, C) and ``pooled_out`` (n, D) in place (e.g. open memmaps).

    ``num_workers``: 0 (default) prepares the next batch in a background thread
    of this process (:func:`prefetched_batches`); > 0 uses a torch DataLoader
    with that many worker processes instead (each a copy of the process: only
    worth it with spare cores). ``num_threads`` sets torch's CPU threads for the
    run (None: torch's default). The features do not depend on either.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if num_workers > 0:
        batches: Iterable[torch.Tensor] = DataLoader(
            _ImageDataset(images, backbone), batch_size=batch_size, shuffle=False, num_workers=num_workers,
            pin_memory=backbone.device.type == "cuda",
        )
    else:
        batches = prefetched_batches(backbone, images, batch_size)
    row = 0
    threads = torch_threads(num_threads if backbone.device.type == "cpu" else None)
    bar = tqdm(total=len(images), desc=f"features {backbone.name}", unit="img", disable=not progress)
    with threads, bar:
        for batch in batches:
            layers, pooled = backbone.forward(batch)
            b = batch.shape[0]
            layers_out[row : row + b] = layers.cpu().numpy().astype(layers_out.dtype, copy=False)
            pooled_out[row : row + b] = pooled.cpu().numpy().astype(pooled_out.dtype, copy=False)
            row += b
            bar.update(b)


def extract_features(
    backbone: Backbone | str,
    images: Sequence[ImageLike],
    batch_size: int = 32,
    progress: bool = True,
    keys: Sequence[str] | None = None,
    num_workers: int = 0,
    num_threads: int | None = None,
) -> FeatureSet:
    """Features of ``images`` (PIL images or paths), computed in batches, held in memory.

    Parameters
    ----------
    backbone : Backbone or str
        A backbone or a registry name (loaded with :func:`get_backbone`).
    images : sequence of PIL.Image or path
    keys : sequence of str, optional
        Row keys; default: the path string, or ``image-00000`` ... for PIL images.
    num_threads : int, optional
        torch CPU threads for this run (None: torch's default). On an oversubscribed
        CPU, 1 thread can be faster than 2.

    Returns
    -------
    FeatureSet
        layers (n, L, P, C) float16, pooled (n, D) float32.
    """
    if isinstance(backbone, str):
        from .registry import get_backbone

        backbone = get_backbone(backbone)
    images = list(images)
    keys = _default_keys(images) if keys is None else [str(k) for k in keys]
    if len(keys) != len(images):
        raise BrainVizDataError("keys", f"{len(keys)} keys for {len(images)} images")
    n = len(images)
    layers = np.zeros((n, backbone.n_layers, backbone.n_patches, backbone.n_channels), dtype=np.float16)
    pooled = np.zeros((n, backbone.pooled_dim), dtype=np.float32)
    if n:
        extract_into(backbone, images, layers, pooled, batch_size, progress, num_workers, num_threads)
    return FeatureSet(
        keys=tuple(keys), layers=layers, pooled=pooled, layer_names=backbone.layer_names,
        channels=backbone.channels, backbone=backbone.name, weights_id=backbone.weights_id, grid=backbone.grid,
    )


def features_for_pil(
    backbone: Backbone | str,
    images: Image.Image | Sequence[Image.Image],
    keys: Sequence[str] | None = None,
    num_threads: int | None = 1,
) -> FeatureSet:
    """Fast path for live prediction: no cache, no DataLoader, no progress bar.

    ``images`` is one PIL image or a short list. Layers are rounded to float16
    exactly like cached features, so live and precomputed predictions agree.
    On CPU the forward runs with ``num_threads`` torch threads (default 1: for a
    single image, intra-op threading costs more than it gains, measured ~18 ms
    CPU per image for efficientnet-lite0; None leaves torch's setting).

    Returns
    -------
    FeatureSet
        layers (B, L, P, C) float16, pooled (B, D) float32, keys ``image-00000``... by default.
    """
    if isinstance(backbone, str):
        from .registry import get_backbone

        backbone = get_backbone(backbone)
    if isinstance(images, (Image.Image, str, Path)):
        images = [images]
    images = list(images)
    keys = [f"image-{i:05d}" for i in range(len(images))] if keys is None else [str(k) for k in keys]
    if len(keys) != len(images):
        raise BrainVizDataError("keys", f"{len(keys)} keys for {len(images)} images")
    batch = backbone.preprocess_batch(images)
    with torch_threads(num_threads if backbone.device.type == "cpu" else None):
        layers, pooled = backbone.forward(batch)
    return FeatureSet(
        keys=tuple(keys),
        layers=layers.cpu().numpy().astype(np.float16),
        pooled=pooled.cpu().numpy().astype(np.float32),
        layer_names=backbone.layer_names, channels=backbone.channels, backbone=backbone.name,
        weights_id=backbone.weights_id, grid=backbone.grid,
    )
