"""DINOv2 Vision Transformers (``dinov2:<model>``, e.g. ``dinov2:vit_base_patch14``), report 004's backbone.

Names: ``dinov2:vit_small_patch14`` (Meta's ViT-S/14, ``dinov2_vits14``), ``dinov2:vit_base_patch14``
(ViT-B/14), ``dinov2:vit_large_patch14`` (ViT-L/14), ``dinov2:vit_giant_patch14`` (ViT-g/14, report
004's), each also with registers: ``dinov2:vit_small_patch14_reg4`` ... (Meta's ``dinov2_vits14_reg``).
The part after ``dinov2:`` is timm's model name without its ``_dinov2`` suffix, as ``open_clip:<model>``
is open_clip's name.

Why timm (1.0, pinned) and not Hugging Face transformers or Meta's torch.hub code: timm is already a
dependency, builds every DINOv2 size (SwiGLU giant and register variants included) as one
``VisionTransformer`` class whose ``blocks`` are plain modules (forward hooks for the layers and
the layer sweep), and its checkpoint filter reads both weight files users have: the timm / Hugging
Face hub files (``timm/vit_*_dinov2.lvd142m``: ``model.safetensors`` or ``pytorch_model.bin``) and
Meta's original ``dinov2_vits14_pretrain.pth`` (its ``mask_token`` dropped, the giant's fused SwiGLU
``w12`` / ``w3`` renamed, register tokens moved, the 518 px position embedding resampled to this
resolution). transformers would add a large dependency with a third naming of the same weights, and
torch.hub needs the network and executes downloaded code. Hugging Face *transformers* checkpoints
(``facebook/dinov2-*``, keys ``embeddings.*`` / ``encoder.layer.*``) are refused with a message
naming the two accepted formats.

Weights: ``None`` = a seeded random initialization (``random_weights`` True and ``weights_note``
saying so, as open_clip), else a local file read without executing code: ``.safetensors`` with
safetensors, anything else with ``torch.load(weights_only=True)`` (tensors and plain containers
only). Every tensor of the model must come from the file (missing or unknown tensors, or a shape of
another model size, are an error naming the file).

Resolution and tokens: images are centre-cropped and resized (bicubic) to 224 px, normalized with
the ImageNet mean and std (DINOv2's evaluation recipe), giving a 16 x 16 grid of 14 px patches.

Layers (L = 5, the UE's layer choice): the residual stream after the blocks at report 004's relative
depths 1/24, 6/24, 12/24, 18/24 and 24/24 (:data:`brainviz.features.efficientnet.REPORT_DEPTHS`):
block ``max(1, round(d * depth)) - 1`` (0-based). For ViT-L/14 (24 blocks) these are exactly the
report's blocks 1, 6, 12, 18 and 24; ViT-S and ViT-B (12 blocks): 0, 2, 5, 8, 11; ViT-g (40): 1, 9,
19, 29, 39. Prefix tokens (CLS, registers) are dropped and the 16 x 16 patch tokens are averaged
2 x 2 to an 8 x 8 grid (P = 64; ``pool_grid``): the feature cache and the encoder's training tensors
(n_images x L x P x C float16) then stay the size of open_clip ViT-B-32's 7 x 7 tokens instead of
four times larger (ViT-g at 16 x 16: 3.9 MB per image). C = the width (384 / 768 / 1024 / 1536).
Pooled: the CLS token after the final norm (DINOv2's ``x_norm_clstoken``, D = width).

Every block goes to the layer sweep (:mod:`brainviz.features.blocks`): ``block_modules`` lists all
``blocks`` (``block0`` ...), each recorded unpooled (all 16 x 16 patch tokens, prefix tokens dropped).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import BrainVizDataError
from ..gpu import resolve_device
from .base import Backbone
from .efficientnet import REPORT_DEPTHS
from .preprocess import Preprocessor
from .torchvision_compat import ensure_torchvision
from .weights import file_identity

#: Model names listed by the registry (the ``dinov2:`` part is added there).
DINOV2_MODELS = ("vit_small_patch14", "vit_base_patch14", "vit_large_patch14", "vit_giant_patch14")
#: Meta's hub names of the same models, for messages.
META_NAMES = {"vit_small_patch14": "dinov2_vits14", "vit_base_patch14": "dinov2_vitb14",
              "vit_large_patch14": "dinov2_vitl14", "vit_giant_patch14": "dinov2_vitg14"}
IMAGE_SIZE = 224
POOL_GRID = (8, 8)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Tensors a weights file may hold that the feature extractor does not use.
_UNUSED = re.compile(r"^(head\.|fc_norm\.|mask_token$)")


def import_timm():
    """Import ``timm`` (after making torchvision importable)."""
    ensure_torchvision()
    import timm

    return timm


def timm_name(model: str) -> str:
    """``vit_small_patch14`` -> ``vit_small_patch14_dinov2``; ``vit_small_patch14_reg4`` ->
    ``vit_small_patch14_reg4_dinov2`` (timm's names)."""
    return f"{model}_dinov2"


def model_names() -> list[str]:
    """Every ``<model>`` accepted after ``dinov2:`` (timm's DINOv2 models without the suffix)."""
    timm = import_timm()
    return sorted(n[: -len("_dinov2")] for n in timm.list_models("*_dinov2"))


def report_blocks(n_blocks: int, depths=REPORT_DEPTHS) -> list[int]:
    """0-based blocks at report 004's relative ``depths``: ``max(1, round(d * n_blocks)) - 1`` each
    (distinct, shallow to deep)."""
    return sorted({max(1, round(d * n_blocks)) - 1 for d in depths})


# ------------------------------------------------------------------------------------ weights files
def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without executing code.

    ``.safetensors``: safetensors; anything else: ``torch.load(weights_only=True)``. A training
    checkpoint's nesting (``model`` / ``state_dict`` / ``teacher`` holding the tensors, a
    ``backbone.`` prefix) is unwrapped. Raises BrainVizDataError naming the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise BrainVizDataError(path, "weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, truncated file, not a checkpoint at all
        raise BrainVizDataError(path, f"not a readable weights file ({type(exc).__name__}: {exc})") from None
    for key in ("model", "state_dict", "teacher"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BrainVizDataError(path, "holds no state dict (a mapping of tensor names to tensors)")
    if all(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items()}
    return sd


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a DINOv2 weights file (timm / HF-hub timm format, or Meta's original) into a timm
    ``VisionTransformer`` ``model`` in place; every tensor of the model must come from the file.

    Meta's format goes through timm's own converter (``checkpoint_filter_fn``: ``mask_token``
    dropped, SwiGLU ``w12``/``w3`` -> ``fc1``/``fc2``, register tokens, position embedding resampled
    to the model's grid); chunked blocks of Meta's training checkpoints (``blocks.<chunk>.<i>.``)
    are flattened first.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    path = Path(path).expanduser()
    sd = read_weights_file(path)
    if any(k.startswith(("embeddings.", "encoder.layer.")) for k in sd):
        raise BrainVizDataError(path, "is a Hugging Face transformers DINOv2 checkpoint (facebook/dinov2-*); use timm's "
                                      "file (timm/vit_*_dinov2.lvd142m: model.safetensors) or Meta's "
                                      "dinov2_vit*14_pretrain.pth")
    sd = {re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k): v for k, v in sd.items()}
    try:
        sd = checkpoint_filter_fn(sd, model)
    except Exception as exc:
        raise BrainVizDataError(path, f"cannot be converted for this model ({type(exc).__name__}: {exc})") from None
    sd = {k: v for k, v in sd.items() if not _UNUSED.match(k)}
    want = model.state_dict()
    missing = sorted(set(want) - set(sd))
    unknown = sorted(set(sd) - set(want))
    wrong = sorted(k for k in set(sd) & set(want) if tuple(sd[k].shape) != tuple(want[k].shape))
    if missing or unknown or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
        if unknown:
            parts.append(f"{len(unknown)} unknown tensors (e.g. {', '.join(unknown[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensors of another shape (e.g. {k}: {tuple(sd[k].shape)} in the file, "
                         f"{tuple(want[k].shape)} in the model)")
        raise BrainVizDataError(path, f"does not fit {type(model).__name__} "
                                      f"{(getattr(model, 'pretrained_cfg', None) or {}).get('architecture', '')}: "
                                      + "; ".join(parts) + " (another DINOv2 size or another network?)")
    model.load_state_dict(sd, strict=True)


# ------------------------------------------------------------------------------------ the backbone
class DinoV2Backbone(Backbone):
    """DINOv2 ViT feature extractor (see module docstring).

    Parameters
    ----------
    model : e.g. ``"vit_base_patch14"`` (``dinov2:`` name without the prefix).
    device : None (cuda if available, else cpu) or a device.
    weights : None (random init, seeded by ``seed``) or a weights file (see :func:`load_weights`).
    seed : seed of the random initialization.
    image_size : input resolution in pixels (a multiple of 14; default 224).
    pool_grid : (rows, cols) the patch tokens are average-pooled to for ``layers`` (default 8 x 8;
        at most the token grid; None = the token grid itself).
    """

    def __init__(self, model: str, device=None, weights: str | Path | None = None, seed: int = 0,
                 image_size: int = IMAGE_SIZE, pool_grid: tuple[int, int] | None = POOL_GRID):
        super().__init__()
        timm = import_timm()
        self.name = f"dinov2:{model}"
        self.device = resolve_device(device, strict=True)
        arch = timm_name(model)
        if arch not in timm.list_models("*_dinov2"):
            raise BrainVizDataError("backbone", f"unknown DINOv2 model {model!r}; available: "
                                                f"{', '.join('dinov2:' + n for n in model_names())}")
        if image_size % 14:
            raise BrainVizDataError("image_size", f"must be a multiple of the 14 px patch, got {image_size}")
        self.random_weights = weights is None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            vit = timm.create_model(arch, pretrained=False, num_classes=0, img_size=int(image_size))
        base = model.replace("_reg4", "")
        meta = META_NAMES[base] + ("_reg4" if base != model else "") if base in META_NAMES else arch
        if weights is None:
            self.weights_id = f"random-seed{int(seed)}"
            self.weights_note = (
                f"RANDOM weights ({self.name}, seed {seed}): no DINOv2 weights file was given, so these "
                f"features carry no learned visual knowledge; pass weights= a file ({meta}_pretrain.pth from Meta "
                f"or model.safetensors of timm/{arch}.lvd142m)")
        else:
            path = Path(weights).expanduser()
            self.weights_id = file_identity(path)
            self.weights_note = f"{self.name} weights from {path}"
            load_weights(vit, path)
        vit.eval().requires_grad_(False)
        self.model = vit.to(self.device)

        self.image_size = int(image_size)
        self._pre = Preprocessor(self.image_size, IMAGENET_MEAN, IMAGENET_STD)
        self.token_grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        if pool_grid is None:
            self.grid = self.token_grid
        else:
            self.grid = tuple(min(int(p), t) for p, t in zip(pool_grid, self.token_grid))
        self._n_prefix = int(vit.num_prefix_tokens)
        self._taps = report_blocks(len(vit.blocks))
        self.layer_names = tuple(f"block{i}" for i in self._taps)
        self.channels = (int(vit.embed_dim),) * len(self._taps)
        self.pooled_dim = int(vit.embed_dim)
        self._captured: dict[int, torch.Tensor] = {}
        for i in self._taps:
            vit.blocks[i].register_forward_hook(self._make_hook(i))

    def _make_hook(self, index: int):
        def hook(_module, _inputs, output):
            self._captured[index] = output

        return hook

    @property
    def preprocessor(self) -> Preprocessor:
        return self._pre

    def patch_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, n_prefix + P_tokens, C) block output -> (B, P_tokens, C) patch tokens (row-major)."""
        return tokens[:, self._n_prefix:, :]

    def _pool(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, P_tokens, C) -> (B, P, C) averaged over the cells of :attr:`grid` (row-major)."""
        if self.grid == self.token_grid:
            return patches
        B, _, C = patches.shape
        maps = patches.transpose(1, 2).reshape(B, C, *self.token_grid)
        return F.adaptive_avg_pool2d(maps, self.grid).flatten(2).transpose(1, 2)

    def _forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        # Backbone.forward holds a lock, so the hooks' shared dict is not raced.
        self._captured.clear()
        try:
            tokens = self.model.forward_features(x)                      # (B, n_prefix + P, C), final norm
            pooled = tokens[:, 0]                                        # CLS token
            feats = [self._pool(self.patch_tokens(self._captured[i])) for i in self._taps]
        finally:
            self._captured.clear()
        return feats, pooled

    # ---- every block, for the layer sweep (brainviz.features.blocks)
    def block_modules(self) -> list[tuple[str, torch.nn.Module]]:
        """(``block<i>``, module) of every transformer block, shallow to deep."""
        return [(f"block{i}", b) for i, b in enumerate(self.model.blocks)]

    def block_transform(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """A block's output -> its patch tokens at full resolution (B, P_tokens, C)."""
        return self.patch_tokens(t)
