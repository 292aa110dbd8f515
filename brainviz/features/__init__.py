"""Image feature extractors and the memory-mapped feature cache.

Public API::

    get_backbone(name="efficientnet-lite0", device=None, weights=None) -> Backbone
    available_backbones() -> list[str]
    extract_features(backbone, images, batch_size=32, progress=True) -> FeatureSet
    cached_features(backbone_name, image_keys, image_paths, cache_dir, weights=None, batch_size=32) -> FeatureSet
    features_for_pil(backbone, images) -> FeatureSet          # live fast path, no cache

``FeatureSet.layers`` is (n_images, L, P, C) float16 (zero-padded to the largest
layer's channels; ``channels`` gives each layer's true count) and
``FeatureSet.pooled`` is (n_images, D) float32, the backbone's image embedding.
"""
from .base import Backbone
from .cache import FEATURES_VERSION, cached_features, image_set_hash
from .extract import extract_features, features_for_pil
from .featureset import FeatureSet
from .preprocess import Preprocessor, load_image, to_rgb
from .registry import DEFAULT_BACKBONE, available_backbones, clear_backbone_cache, get_backbone
from .weights import weights_identity

__all__ = [
    "Backbone",
    "DEFAULT_BACKBONE",
    "FEATURES_VERSION",
    "FeatureSet",
    "Preprocessor",
    "available_backbones",
    "cached_features",
    "clear_backbone_cache",
    "extract_features",
    "features_for_pil",
    "get_backbone",
    "image_set_hash",
    "load_image",
    "to_rgb",
    "weights_identity",
]
