"""open_clip Vision-Transformer backbones (``open_clip:<model>``, e.g. ``open_clip:ViT-B-32``).

Layers: the residual-stream tokens after ``n_layers`` (default 5, as report 004)
evenly spaced transformer blocks (ViT-B-32: blocks 1, 4, 6, 9, 11, 0-based), captured with forward hooks on
``model.visual.transformer.resblocks``; prefix tokens (CLS) are dropped, so
P = grid tokens (7 x 7 = 49 for ViT-B-32 at 224 px), C = the width (768).
Pooled: the CLIP image embedding, L2-normalized (512-d for ViT-B-32).

Weights: ``None`` = a seeded random initialization (no CLIP weights are
available offline; ``random_weights`` is True and ``weights_note`` says so), a
pretrained tag such as ``"laion2b_s34b_b79k"`` (needs internet or the open_clip
cache), or a local state-dict file.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import BrainVizDataError
from ..gpu import resolve_device
from .base import Backbone
from .preprocess import Preprocessor
from .torchvision_compat import ensure_torchvision
from ..safe_load import safe_message
from .weights import file_identity, looks_like_path

DEFAULT_N_LAYERS = 5


def import_open_clip():
    """Import ``open_clip`` (after making torchvision importable)."""
    ensure_torchvision()
    import open_clip

    return open_clip


def evenly_spaced_blocks(n_blocks: int, n_layers: int) -> list[int]:
    """0-based indices of ``n_layers`` evenly spaced blocks ending with the last one."""
    n_layers = max(1, min(n_layers, n_blocks))
    return [round((i + 1) * n_blocks / n_layers) - 1 for i in range(n_layers)]


class OpenClipBackbone(Backbone):
    """open_clip ViT feature extractor (see module docstring)."""

    def __init__(
        self,
        model_name: str,
        device=None,
        weights: str | Path | None = None,
        seed: int = 0,
        n_layers: int = DEFAULT_N_LAYERS,
    ):
        super().__init__()
        open_clip = import_open_clip()
        self.name = f"open_clip:{model_name}"
        self.device = resolve_device(device, strict=True)
        if model_name not in open_clip.list_models():
            raise BrainVizDataError("backbone", f"unknown open_clip model {model_name!r}")
        self.random_weights = weights is None
        if weights is None:
            self.weights_id = f"random-seed{int(seed)}"
            self.weights_note = (
                f"RANDOM weights ({model_name}, seed {seed}): no pretrained CLIP weights were given, "
                "so these features carry no learned visual knowledge; pass weights= a pretrained tag or a state-dict file"
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                model = open_clip.create_model(model_name, pretrained=None)
        else:
            if looks_like_path(weights):
                path = Path(weights).expanduser()
                self.weights_id = file_identity(path)
                self.weights_note = f"{model_name} weights from {path}"
                pretrained = str(path)
            else:
                self.weights_id = f"tag:{weights}"
                self.weights_note = f"{model_name} pretrained '{weights}' (open_clip)"
                pretrained = str(weights)
            try:
                model = open_clip.create_model(model_name, pretrained=pretrained)
            except Exception as exc:
                raise BrainVizDataError(
                    weights, f"could not load {model_name} weights ({type(exc).__name__}: {safe_message(exc)})"
                ) from None
        visual = model.visual
        resblocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        if resblocks is None or not hasattr(visual, "grid_size"):
            raise BrainVizDataError("backbone", f"{model_name} is not a ViT (no visual.transformer.resblocks)")
        visual.eval().requires_grad_(False)
        self.model = visual.to(self.device)  # the text tower is not needed
        del model

        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", visual.image_size)
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.image_size = int(size)
        mean = cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))
        std = cfg.get("std", (0.26862954, 0.26130258, 0.27577711))
        self._pre = Preprocessor(self.image_size, mean, std)

        self.grid = tuple(int(g) for g in visual.grid_size)
        self._taps = evenly_spaced_blocks(len(resblocks), n_layers)
        self.layer_names = tuple(f"resblock{i}" for i in self._taps)
        width = int(visual.conv1.out_channels)
        self.channels = (width,) * len(self._taps)
        self.pooled_dim = int(visual.output_dim)
        self._batch_first = bool(getattr(visual.transformer, "batch_first", True))
        self._captured: dict[int, torch.Tensor] = {}
        for i in self._taps:
            resblocks[i].register_forward_hook(self._make_hook(i))

    def _make_hook(self, index: int):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            self._captured[index] = out if self._batch_first else out.transpose(0, 1)

        return hook

    @property
    def preprocessor(self) -> Preprocessor:
        return self._pre

    def _forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        # Backbone.forward holds a lock, so the hooks' shared dict is not raced.
        self._captured.clear()
        try:
            emb = self.model(x)
            if isinstance(emb, (tuple, list)):
                emb = emb[0]
            pooled = F.normalize(emb, dim=-1)
            # tokens are (B, n_prefix + P, width), CLS first; keep the last P (the patch grid)
            feats = [self._captured[i][:, -self.n_patches :, :] for i in self._taps]
        finally:
            self._captured.clear()
        return feats, pooled
