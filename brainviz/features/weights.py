"""Identity strings for backbone weights (used in feature-cache keys).

The identity is computable without building the model, so a cache hit never
loads a network: ``imagenet:<file stem>`` for shipped EfficientNet weights,
``random-seed<N>`` for a seeded random initialization, ``tag:<name>`` for an
open_clip pretrained tag, ``sha256:<16 hex>`` for a local weights file.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from ..errors import BrainVizDataError

_FILE_IDS: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npz")


def looks_like_path(weights: str | os.PathLike) -> bool:
    """True for ``Path`` objects and strings that name a file (vs. a pretrained tag)."""
    if isinstance(weights, os.PathLike):
        return True
    s = str(weights)
    return os.sep in s or s.startswith("~") or s.lower().endswith(_WEIGHT_SUFFIXES) or os.path.exists(s)


def file_identity(path: str | Path) -> str:
    """``sha256:<first 16 hex>`` of a weights file's bytes (memoized per path, size, mtime)."""
    path = Path(path).expanduser()
    try:
        st = path.stat()
    except OSError as exc:
        raise BrainVizDataError(path, "weights file not found") from exc
    if not path.is_file():
        raise BrainVizDataError(path, "weights path is not a file")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _FILE_IDS:
            return _FILE_IDS[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    ident = f"sha256:{h.hexdigest()[:16]}"
    with _LOCK:
        _FILE_IDS[key] = ident
    return ident


def weights_identity(backbone_name: str, weights: str | Path | None = None, seed: int = 0) -> str:
    """The ``weights_id`` that ``get_backbone(backbone_name, weights=weights, seed=seed)`` will have."""
    if backbone_name.startswith("efficientnet-"):
        if weights is None or weights == "imagenet":
            from .efficientnet import default_weights_file

            return f"imagenet:{default_weights_file(backbone_name.split('-', 1)[1]).stem}"
        return file_identity(weights)
    if weights is None:
        return f"random-seed{int(seed)}"
    if looks_like_path(weights):
        return file_identity(weights)
    return f"tag:{weights}"
