"""Encoders: image features -> voxel responses, scikit-learn style.

Every encoder keeps ``__init__`` free of logic (arguments stored; checked in ``fit``), names
its fitted attributes with a trailing ``_`` and predicts with one call,
``model.predict(X, subject=None)`` (``X``: a FeatureSet or an (n, L, P, C) array; ``subject``
is ignored by the per-subject :class:`RidgeEncoder` and names the subject of a multi-subject
:class:`UniversalEncoder`).

The public names are re-exported here, imported on first use (torch loads only with
:class:`UniversalEncoder`).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "RidgeEncoder": ".ridge", "ridge_features": ".ridge", "DEFAULT_ALPHAS": ".ridge",
    "UniversalConfig": ".universal", "UniversalEncoder": ".universal", "CHECKPOINT_FORMAT": ".universal",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
