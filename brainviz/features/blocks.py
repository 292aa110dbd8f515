"""Activations of EVERY block of a backbone, at full spatial resolution (forward hooks).

The encoder's :class:`~brainviz.features.base.Backbone` keeps a few layers pooled
to a common grid (``FeatureSet.layers``). Representational analyses (which block
of a network is most IT-like, Khaligh-Razavi & Kriegeskorte 2014) need every
block, unpooled. :func:`extract_blocks` registers a forward hook on each block
module, runs the backbone's own forward, copies each block's output to CPU, and
removes the hooks again (the backbone object is shared and stays unchanged).

Blocks (shallow to deep, see :func:`block_modules`):

* EfficientNet-Lite: the 16 MBConv blocks (``block{i}_s{stride}``, output
  (C, H, W) at the block's own resolution, e.g. block0 16 x 112 x 112 at 224 px),
  the head (``head``: ReLU6 of the 1 x 1 head convolution, 1280 x 7 x 7) and
  ``pooled`` (the global average of the head, 1280).
* open_clip ViTs: every transformer block (``resblock{i}``: the residual stream,
  all patch tokens, prefix/CLS tokens dropped, P x width) and ``pooled`` (the
  L2-normalized CLIP image embedding).
* DINOv2 ViTs (timm): every transformer block (``block{i}``: the residual stream, all
  16 x 16 patch tokens at 224 px, CLS and register tokens dropped, P x width), through the
  backbone's own ``block_modules`` / ``block_transform``, and ``pooled`` (the CLS token).
* Any other backbone: it may define ``block_modules() -> [(name, module)]`` and,
  optionally, ``block_transform(name, tensor) -> tensor``.

Memory: the activations of all blocks are held in RAM, about 0.6 M float32 per
image for EfficientNet-Lite0 (92 images: ~220 MB). Use it for small image sets
(the 92-image set); pass ``blocks=`` to keep only some.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import BrainVizDataError
from .base import Backbone


@dataclass
class BlockActivations:
    """Full-resolution activations of the blocks of one backbone for n images.

    Attributes
    ----------
    names : list[str]
        Block names, shallow to deep (``pooled`` last when present).
    arrays : dict[str, ndarray]
        name -> (n_images, n_features) float32, the block's output flattened
        (C x H x W for convolutions, P x width for transformers).
    shapes : dict[str, tuple[int, ...]]
        name -> the per-image shape before flattening.
    depth : dict[str, float]
        name -> relative depth in [0, 1] (block index / (n_blocks - 1)).
    backbone : str
        The backbone's registry name.
    """

    names: list[str]
    arrays: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    depth: dict[str, float]
    backbone: str = ""
    keys: list[str] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0]) if self.arrays else 0


def _relu6_like(model, t: torch.Tensor) -> torch.Tensor:
    act = getattr(model, "_swish", None)
    if isinstance(act, torch.nn.ReLU6):
        return F.relu6(t)
    return act(t.clone()) if act is not None else t


def block_modules(backbone: Backbone) -> list[tuple[str, torch.nn.Module]]:
    """The (name, module) pairs whose outputs :func:`extract_blocks` records, shallow to deep.

    Raises BrainVizDataError for a backbone whose blocks are unknown.
    """
    own = getattr(backbone, "block_modules", None)
    if callable(own):
        return list(own())
    model = getattr(backbone, "model", None)
    blocks = getattr(model, "_blocks", None)
    if blocks is not None:  # EfficientNet-Lite
        out, stride = [], 2
        for i, block in enumerate(blocks):
            stride *= int(block._depthwise_conv.stride[0])
            out.append((f"block{i}_s{stride}", block))
        out.append(("head", model._conv_head))
        return out
    resblocks = getattr(getattr(model, "transformer", None), "resblocks", None)
    if resblocks is not None:  # open_clip ViT
        return [(f"resblock{i}", b) for i, b in enumerate(resblocks)]
    raise BrainVizDataError("backbone", f"{getattr(backbone, 'name', type(backbone).__name__)}: "
                                        "unknown block structure (define block_modules())")


def _transform(backbone: Backbone, name: str, out) -> torch.Tensor:
    own = getattr(backbone, "block_transform", None)
    t = out[0] if isinstance(out, (tuple, list)) else out
    if callable(own):
        return own(name, t)
    model = getattr(backbone, "model", None)
    if model is None:
        return t
    if name == "head" and hasattr(model, "_conv_head"):
        return _relu6_like(model, t)  # the head's activation is applied outside the conv module
    if name.startswith("resblock"):
        if not bool(getattr(model.transformer, "batch_first", True)):
            t = t.transpose(0, 1)
        return t[:, -backbone.n_patches:, :]  # patch tokens; prefix (CLS) tokens dropped
    return t


def extract_blocks(backbone: Backbone, images: Sequence, batch_size: int = 16, blocks: Sequence[str] | None = None,
                   include_pooled: bool = True, progress: bool = False,
                   keys: Sequence[str] | None = None) -> BlockActivations:
    """Run ``backbone`` on ``images`` and record every block's full-resolution output.

    Parameters
    ----------
    backbone : a loaded :class:`Backbone` (EfficientNet-Lite, open_clip ViT, or one
        defining ``block_modules()``)
    images : sequence of PIL images or paths
    batch_size : images per forward pass
    blocks : names to keep (default: all of :func:`block_modules`)
    include_pooled : also keep the backbone's pooled embedding under ``"pooled"``
    progress : tqdm bar
    keys : optional image keys (row order)

    Returns
    -------
    BlockActivations (arrays (n_images, n_features) float32 per block)
    """
    mods = block_modules(backbone)
    all_names = [n for n, _ in mods]
    if blocks is not None:
        unknown = sorted(set(blocks) - set(all_names) - {"pooled"})
        if unknown:
            raise BrainVizDataError("blocks", f"unknown blocks {unknown}; this backbone has {all_names}")
        mods = [(n, m) for n, m in mods if n in blocks]
        include_pooled = include_pooled and "pooled" in blocks
    if len(images) == 0:
        raise BrainVizDataError("images", "no images given")
    captured: dict[str, torch.Tensor] = {}

    def hook_for(name):
        def hook(_module, _inputs, output):
            captured[name] = _transform(backbone, name, output).detach().float().cpu()
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in mods]
    chunks: dict[str, list[np.ndarray]] = {n: [] for n, _ in mods}
    shapes: dict[str, tuple[int, ...]] = {}
    pooled_chunks: list[np.ndarray] = []
    try:
        for b0 in tqdm(range(0, len(images), batch_size), desc=f"blocks {backbone.name}", disable=not progress):
            batch = backbone.preprocess_batch(list(images[b0:b0 + batch_size]))
            captured.clear()
            _, pooled = backbone.forward(batch)
            for n, _ in mods:
                if n not in captured:
                    raise BrainVizDataError("backbone", f"block {n} did not run in the forward pass")
                t = captured[n].contiguous()
                shapes[n] = tuple(int(s) for s in t.shape[1:])
                chunks[n].append(t.reshape(t.shape[0], -1).numpy().astype(np.float32, copy=False))
            pooled_chunks.append(pooled.float().cpu().numpy())
    finally:
        for h in handles:
            h.remove()
        captured.clear()
    names = [n for n, _ in mods]
    arrays = {n: np.concatenate(chunks[n]) for n in names}
    if include_pooled:
        names.append("pooled")
        arrays["pooled"] = np.concatenate(pooled_chunks).astype(np.float32)
        shapes["pooled"] = (arrays["pooled"].shape[1],)
    depth = {n: (i / (len(names) - 1) if len(names) > 1 else 0.0) for i, n in enumerate(names)}
    return BlockActivations(names=names, arrays=arrays, shapes=shapes, depth=depth, backbone=backbone.name,
                            keys=list(keys) if keys is not None else [])
