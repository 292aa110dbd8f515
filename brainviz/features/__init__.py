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

The names are re-exported here, imported on first use: ``brainviz.features.weights``
(the weights' identity and the store's record of them, read by the app's Home page)
and ``brainviz.features.featureset`` load without torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Backbone": ".base",
    "FEATURES_VERSION": ".cache", "cached_features": ".cache", "image_set_hash": ".cache",
    "extract_features": ".extract", "features_for_pil": ".extract",
    "FeatureSet": ".featureset",
    "Preprocessor": ".preprocess", "load_image": ".preprocess", "to_rgb": ".preprocess",
    "DEFAULT_BACKBONE": ".registry", "available_backbones": ".registry", "clear_backbone_cache": ".registry",
    "get_backbone": ".registry",
    "WeightsSpec": ".weights", "weights_identity": ".weights", "weights_spec": ".weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
