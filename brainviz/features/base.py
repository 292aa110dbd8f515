"""The :class:`Backbone` interface shared by every image feature extractor.

A backbone maps a batch of preprocessed images ``(B, 3, S, S)`` to

- ``layers``: ``(B, L, P, C)`` float32, L chosen layers, P spatial patches
  (row-major over the ``grid`` of patches), C = ``n_channels`` = the largest
  true channel count; layer ``l`` holds real values in ``[..., :channels[l]]``
  and zeros after that;
- ``pooled``: ``(B, D)`` float32, the backbone's image embedding.
"""
from __future__ import annotations

import abc
import contextlib
import threading
from typing import Sequence

import torch
from PIL import Image

from .preprocess import Preprocessor


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op CPU threads (``None``: leave unchanged).

    The setting is process-global; other threads running torch meanwhile are
    affected too (only their speed, never their results).
    """
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Backbone(abc.ABC):
    """An image feature extractor, loaded once, in eval mode, without gradients.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"efficientnet-lite0"`` or ``"open_clip:ViT-B-32"``.
    layer_names : tuple[str, ...]
        The L layers, shallow to deep.
    channels : tuple[int, ...]
        True channel count of each layer (length L).
    grid : tuple[int, int]
        Patch grid (rows, cols); ``n_patches = rows * cols``.
    pooled_dim : int
        D, length of the pooled image embedding.
    image_size : int
        Input resolution S (square).
    device : torch.device
    weights_id : str
        Identity of the weights, used in cache keys (e.g. ``"sha256:..."``).
    weights_note : str
        Human-readable description of the weights, for the app to show.
    random_weights : bool
        True when the weights are a random initialization (features are then
        not meaningful for brain encoding; the app should warn).
    """

    name: str
    layer_names: tuple[str, ...]
    channels: tuple[int, ...]
    grid: tuple[int, int]
    pooled_dim: int
    image_size: int
    device: torch.device
    weights_id: str
    weights_note: str
    random_weights: bool = False

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # ---- derived sizes -------------------------------------------------
    @property
    def n_layers(self) -> int:
        """L, the number of layers."""
        return len(self.layer_names)

    @property
    def n_patches(self) -> int:
        """P, the number of spatial patches per layer."""
        return int(self.grid[0] * self.grid[1])

    @property
    def n_channels(self) -> int:
        """C, the common (padded) channel count = ``max(channels)``."""
        return int(max(self.channels))

    # ---- preprocessing -------------------------------------------------
    @property
    @abc.abstractmethod
    def preprocessor(self) -> Preprocessor:
        """The :class:`Preprocessor` with this backbone's resolution and normalization."""

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image (any mode, any size) or path -> (3, S, S) float32 tensor."""
        return self.preprocessor(image)

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """List of PIL images or paths -> (B, 3, S, S) float32 tensor."""
        return self.preprocessor.batch(images)

    # ---- forward ---------------------------------------------------------
    @abc.abstractmethod
    def _forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, S, S) on device -> ([L x (B, P, C_l)], pooled (B, D))."""

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the backbone on a preprocessed batch.

        Parameters
        ----------
        batch : torch.Tensor
            (B, 3, S, S) float, as returned by :meth:`preprocess_batch`.

        Returns
        -------
        layers : torch.Tensor
            (B, L, P, C) float32 on ``device``, zero-padded beyond each layer's channels.
        pooled : torch.Tensor
            (B, D) float32 on ``device``.

        Both are inference-mode tensors (``.clone()`` them outside
        ``torch.inference_mode`` before using them in autograd).
        """
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, S, S) batch, got shape {tuple(batch.shape)}")
        with self._lock, torch.inference_mode():
            x = batch.to(self.device, dtype=torch.float32, non_blocking=True)
            feats, pooled = self._forward(x)
            out = x.new_zeros((x.shape[0], self.n_layers, self.n_patches, self.n_channels))
            for i, f in enumerate(feats):
                out[:, i, :, : f.shape[-1]] = f
            return out, pooled.float()

    __call__ = forward

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, L={self.n_layers}, P={self.n_patches}, "
            f"C={self.n_channels}, D={self.pooled_dim}, device={self.device}, weights={self.weights_id!r})"
        )
