"""Tests for brainviz.features: backbones, preprocessing, extraction, the on-disk cache."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brainviz.errors import BrainVizDataError
from brainviz.features import (
    FeatureSet,
    available_backbones,
    cached_features,
    extract_features,
    features_for_pil,
    get_backbone,
    load_image,
    to_rgb,
)
from brainviz.features.base import Backbone
from brainviz.features.cache import LAYERS_FILE, META_FILE, POOLED_FILE
from brainviz.features.openclip import evenly_spaced_blocks, import_open_clip


def _rng_image(seed: int, size=(40, 40), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


@pytest.fixture(scope="module")
def effnet() -> Backbone:
    return get_backbone("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def vit() -> Backbone:
    return get_backbone("open_clip:ViT-B-32", device="cpu")


@pytest.fixture()
def image_files(tmp_path) -> tuple[list[str], list[Path]]:
    folder = tmp_path / "imgs"
    folder.mkdir()
    keys, paths = [], []
    for i in range(5):
        p = folder / f"img{i}.png"
        _rng_image(i, size=(48 + i, 40)).save(p)
        keys.append(f"nsd-{i + 1:05d}")
        paths.append(p)
    return keys, paths


# ---- registry ------------------------------------------------------------------
def test_registry_names_and_errors():
    names = available_backbones()
    assert names[0] == "efficientnet-lite0" and "open_clip:ViT-B-32" in names
    with pytest.raises(BrainVizDataError):
        get_backbone("resnet-imaginary", device="cpu")
    with pytest.raises(BrainVizDataError):
        get_backbone("open_clip:NotAModel-1", device="cpu")
    with pytest.raises(BrainVizDataError):
        get_backbone("efficientnet-lite0", device="cpu", weights="/nonexistent/weights.pth")
    if not torch.cuda.is_available():
        with pytest.raises(BrainVizDataError):
            get_backbone("efficientnet-lite0", device="cuda")


def test_backbones_are_loaded_once(effnet):
    assert get_backbone("efficientnet-lite0", device="cpu") is effnet
    assert not effnet.model.training
    assert all(not p.requires_grad for p in effnet.model.parameters())


def test_evenly_spaced_blocks():
    assert evenly_spaced_blocks(12, 4) == [2, 5, 8, 11]
    assert evenly_spaced_blocks(24, 4) == [5, 11, 17, 23]
    assert evenly_spaced_blocks(3, 4) == [0, 1, 2]


# ---- efficientnet-lite0 --------------------------------------------------------
def test_efficientnet_shapes_and_padding(effnet):
    assert effnet.weights_id.startswith("imagenet:") and not effnet.random_weights
    assert "ImageNet" in effnet.weights_note
    assert effnet.layer_names == ("block2_s4", "block4_s8", "block7_s16", "block10_s16", "block15_s32")
    assert effnet.channels == (24, 40, 80, 112, 320)
    assert (effnet.n_patches, effnet.n_channels, effnet.pooled_dim, effnet.image_size) == (49, 320, 1280, 224)
    batch = effnet.preprocess_batch([_rng_image(i) for i in range(3)])
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == torch.float32
    layers, pooled = effnet.forward(batch)
    assert layers.shape == (3, 5, 49, 320) and layers.dtype == torch.float32
    assert pooled.shape == (3, 1280) and pooled.dtype == torch.float32
    assert torch.isfinite(layers).all() and torch.isfinite(pooled).all()
    for i, c in enumerate(effnet.channels):
        assert torch.count_nonzero(layers[:, i, :, c:]) == 0
        assert torch.count_nonzero(layers[:, i, :, :c]) > 0
    again, pooled2 = effnet.forward(batch)
    assert torch.equal(again, layers) and torch.equal(pooled2, pooled)


def test_efficientnet_matches_unfused_pretrained_model(effnet):
    """The speed-optimized backbone equals the plain library model with the shipped ImageNet weights."""
    import torch.nn.functional as F
    from efficientnet_lite_pytorch import EfficientNet

    from brainviz.features.efficientnet import default_weights_file

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(default_weights_file("lite0"), map_location="cpu", weights_only=True))
    ref.eval()
    x = effnet.preprocess_batch([_rng_image(10, (64, 64)), _rng_image(11, (80, 50), "L")])
    layers, pooled = effnet.forward(x)
    with torch.inference_mode():
        torch.testing.assert_close(pooled, ref.extract_features(x).mean(dim=(2, 3)), rtol=1e-3, atol=1e-3)
        h = ref._swish(ref._bn0(ref._conv_stem(x)))
        for i, block in enumerate(ref._blocks[:11]):
            h = block(h)
        want = F.adaptive_avg_pool2d(h, (7, 7)).flatten(2).transpose(1, 2)  # block10_s16
    torch.testing.assert_close(layers[:, 3, :, :112], want, rtol=1e-3, atol=1e-3)


# ---- open_clip ViT-B-32 -------------------------------------------------------
def test_open_clip_random_weights(vit):
    assert vit.random_weights and vit.weights_id == "random-seed0"
    assert "RANDOM" in vit.weights_note
    assert vit.layer_names == ("resblock1", "resblock4", "resblock6", "resblock9", "resblock11")
    assert vit.grid == (7, 7) and vit.channels == (768,) * 5 and vit.pooled_dim == 512
    layers, pooled = vit.forward(vit.preprocess_batch([_rng_image(0), _rng_image(1, mode="L")]))
    assert layers.shape == (2, 5, 49, 768) and pooled.shape == (2, 512)
    assert torch.allclose(pooled.norm(dim=1), torch.ones(2), atol=1e-5)
    # the hooks give exactly open_clip's own intermediate patch tokens
    x = vit.preprocess_batch([_rng_image(0), _rng_image(1, mode="L")])
    with torch.inference_mode():
        ref = vit.model.forward_intermediates(x, indices=[1, 4, 6, 9, 11], output_fmt="NLC")
    for i, t in enumerate(ref["image_intermediates"]):
        torch.testing.assert_close(layers[:, i], t)


def test_open_clip_state_dict_round_trip(tmp_path, vit):
    open_clip = import_open_clip()
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    # the seeded random init of the registry is reproducible
    ref_sd = vit.model.state_dict()
    assert all(torch.equal(v, ref_sd[k]) for k, v in model.visual.state_dict().items())
    with torch.no_grad():  # make the saved weights differ from the random init
        model.visual.conv1.weight.add_(0.05 * torch.randn_like(model.visual.conv1.weight))
    path = tmp_path / "vit_b32_test.pt"
    torch.save(model.state_dict(), path)
    loaded = get_backbone("open_clip:ViT-B-32", device="cpu", weights=path)
    assert not loaded.random_weights and loaded.weights_id.startswith("sha256:")
    want = model.visual.state_dict()
    got = loaded.model.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    x = loaded.preprocess_batch([_rng_image(5), _rng_image(6, size=(90, 30))])
    layers, pooled = loaded.forward(x)
    with torch.inference_mode():
        ref = model.encode_image(x, normalize=True)
        inter = model.visual.forward_intermediates(x, indices=[1, 4, 6, 9, 11], output_fmt="NLC")
    torch.testing.assert_close(pooled, ref)
    torch.testing.assert_close(layers[:, 4], inter["image_intermediates"][4])
    rand_layers, _ = vit.forward(x)
    assert not torch.allclose(rand_layers, layers)


# ---- DINOv2 (timm) ---------------------------------------------------------------
def _timm_vit(arch: str, seed: int, img_size: int):
    from brainviz.features.dinov2 import import_timm

    torch.manual_seed(seed)
    return import_timm().create_model(arch, pretrained=False, num_classes=0, img_size=img_size).eval()


def test_dinov2_report_blocks():
    from brainviz.features.dinov2 import report_blocks

    assert report_blocks(12) == [0, 2, 5, 8, 11]        # ViT-S/14, ViT-B/14
    assert report_blocks(24) == [0, 5, 11, 17, 23]      # ViT-L/14: report 004's blocks 1, 6, 12, 18, 24
    assert report_blocks(40) == [1, 9, 19, 29, 39]      # ViT-g/14


def test_dinov2_random_weights_layers_and_pooling():
    """Seeded random init (named as such); layers = the report-depth blocks' patch tokens (prefix tokens
    dropped) averaged 2 x 2, exactly timm's own intermediates; pooled = the final-norm CLS token."""
    from brainviz.features.dinov2 import DinoV2Backbone

    bb = DinoV2Backbone("vit_small_patch14", device="cpu", seed=3, image_size=112, pool_grid=(4, 4))
    assert bb.random_weights and bb.weights_id == "random-seed3" and "RANDOM" in bb.weights_note
    assert "dinov2_vits14_pretrain.pth" in bb.weights_note
    assert bb.layer_names == ("block0", "block2", "block5", "block8", "block11")
    assert bb.token_grid == (8, 8) and bb.grid == (4, 4) and bb.n_patches == 16
    assert bb.channels == (384,) * 5 and bb.pooled_dim == 384
    x = bb.preprocess_batch([_rng_image(0), _rng_image(1, mode="L")])
    layers, pooled = bb.forward(x)
    assert layers.shape == (2, 5, 16, 384) and pooled.shape == (2, 384)
    with torch.inference_mode():
        final, inter = bb.model.forward_intermediates(x, indices=[0, 2, 5, 8, 11], output_fmt="NCHW")
    for i, t in enumerate(inter):  # (B, C, 8, 8) patch tokens -> 2 x 2 means, row-major
        want = torch.nn.functional.avg_pool2d(t, 2).flatten(2).transpose(1, 2)
        torch.testing.assert_close(layers[:, i], want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pooled, final[:, 0])  # final: the normed tokens, CLS first
    # the same seed builds the same network, another seed another one
    again = DinoV2Backbone("vit_small_patch14", device="cpu", seed=3, image_size=112, pool_grid=(4, 4))
    other = DinoV2Backbone("vit_small_patch14", device="cpu", seed=4, image_size=112, pool_grid=(4, 4))
    torch.testing.assert_close(again.forward(x)[0], layers)
    assert not torch.allclose(other.forward(x)[0], layers)
    # registers: 5 prefix tokens dropped; native grid kept when pool_grid is None
    reg = DinoV2Backbone("vit_small_patch14_reg4", device="cpu", image_size=56, pool_grid=None)
    assert reg.grid == (4, 4) and reg.forward(reg.preprocess_batch([_rng_image(2)]))[0].shape == (1, 5, 16, 384)
    assert "dinov2_vits14_reg4_pretrain.pth" in reg.weights_note


def test_dinov2_registry_and_identity(tmp_path):
    from brainviz.features import weights_identity

    assert "dinov2:vit_base_patch14" in available_backbones() and "dinov2:vit_giant_patch14" in available_backbones()
    bb = get_backbone("dinov2:vit_small_patch14", device="cpu", seed=5)
    assert bb.name == "dinov2:vit_small_patch14" and bb.weights_id == weights_identity(bb.name, None, 5) == "random-seed5"
    assert bb.image_size == 224 and bb.grid == (8, 8) and bb.token_grid == (16, 16)
    assert get_backbone("dinov2:vit_small_patch14", device="cpu", seed=5) is bb
    with pytest.raises(BrainVizDataError, match="unknown DINOv2 model.*dinov2:vit_base_patch14"):
        get_backbone("dinov2:vit_tiny_patch99", device="cpu")
    with pytest.raises(BrainVizDataError, match="weights file not found"):
        get_backbone("dinov2:vit_small_patch14", device="cpu", weights=tmp_path / "nope.pth")
    with pytest.raises(BrainVizDataError, match="not found"):  # dinov2 has no pretrained tags: always a file
        weights_identity("dinov2:vit_small_patch14", "lvd142m")


@pytest.mark.parametrize("fmt", ["model.safetensors", "pytorch_model.bin"])
def test_dinov2_timm_hub_weights(tmp_path, fmt):
    """timm / Hugging Face hub files of timm/vit_*_dinov2.lvd142m: the same tensors, the same features."""
    from safetensors.torch import save_file

    from brainviz.features.dinov2 import DinoV2Backbone

    src = _timm_vit("vit_small_patch14_dinov2", seed=11, img_size=112)
    path = tmp_path / fmt
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(path)) if fmt.endswith(".safetensors") else torch.save(sd, path)
    bb = DinoV2Backbone("vit_small_patch14", device="cpu", weights=path, image_size=112, pool_grid=None)
    assert not bb.random_weights and bb.weights_id.startswith("sha256:")
    got = bb.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in src.state_dict().items())
    x = bb.preprocess_batch([_rng_image(3), _rng_image(4, size=(70, 30))])
    layers, pooled = bb.forward(x)
    with torch.inference_mode():
        tokens = src.forward_features(x)
        _, inter = src.forward_intermediates(x, indices=[11], output_fmt="NLC")
    torch.testing.assert_close(pooled, tokens[:, 0])
    torch.testing.assert_close(layers[:, 4], inter[0])


def test_dinov2_meta_original_weights(tmp_path):
    """Meta's dinov2_vits14_pretrain.pth naming (mask_token, 518 px position embedding with the CLS slot)
    is converted by timm's filter: every other tensor unchanged, the position embedding resampled."""
    from brainviz.features.dinov2 import DinoV2Backbone

    src = _timm_vit("vit_small_patch14_dinov2", seed=12, img_size=518)  # imports timm (torchvision first)
    from timm.layers import resample_abs_pos_embed

    meta = dict(src.state_dict())
    meta["mask_token"] = torch.zeros(1, 384)
    assert meta["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(meta, path)
    bb = DinoV2Backbone("vit_small_patch14", device="cpu", weights=path, image_size=112)
    got = bb.model.state_dict()
    for k, v in meta.items():
        if k not in ("pos_embed", "mask_token"):
            assert torch.equal(got[k], v), k
    want = resample_abs_pos_embed(meta["pos_embed"], new_size=[8, 8], num_prefix_tokens=1)
    torch.testing.assert_close(got["pos_embed"], want)
    assert bb.forward(bb.preprocess_batch([_rng_image(5)]))[0].shape == (1, 5, 64, 384)


def test_dinov2_meta_giant_swiglu_and_registers(tmp_path):
    """The conversions Meta's giant and register checkpoints need (fused SwiGLU w12 / w3 -> fc1 / fc2;
    register_tokens and the CLS position slot), on a tiny ViT of the same kind."""
    from brainviz.features.dinov2 import import_timm, load_weights

    import_timm()  # torchvision made importable before timm
    from timm.layers import SwiGLUPacked
    from timm.models.vision_transformer import VisionTransformer

    def tiny():
        return VisionTransformer(img_size=28, patch_size=14, embed_dim=24, depth=2, num_heads=2, init_values=1e-5,
                                 mlp_ratio=2.66667 * 2, mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU,
                                 reg_tokens=4, no_embed_class=True, num_classes=0)

    torch.manual_seed(0)
    src = tiny()
    sd = src.state_dict()
    pos0 = torch.randn(1, 1, 24)
    meta = {k.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3"): v for k, v in sd.items()
            if k not in ("reg_token", "cls_token", "pos_embed")}
    meta.update(mask_token=torch.zeros(1, 24), register_tokens=sd["reg_token"], cls_token=sd["cls_token"] - pos0,
                pos_embed=torch.cat([pos0, sd["pos_embed"]], dim=1))
    assert any(".w12." in k for k in meta)
    path = tmp_path / "dinov2_vitg14_reg4_pretrain.pth"
    torch.save(meta, path)
    torch.manual_seed(1)
    dst = tiny()
    load_weights(dst, path)
    for k, v in sd.items():
        torch.testing.assert_close(dst.state_dict()[k], v, msg=k)


def test_dinov2_bad_weights_files(tmp_path):
    """Refused with the file named: another model size, a transformers checkpoint, a pickle with code, junk."""
    from brainviz.features.dinov2 import DinoV2Backbone

    def load(p):
        return DinoV2Backbone("vit_small_patch14", device="cpu", weights=p, image_size=56)

    base = tmp_path / "vitb.pth"
    torch.save(_timm_vit("vit_base_patch14_dinov2", seed=0, img_size=56).state_dict(), base)
    with pytest.raises(BrainVizDataError, match="vitb.pth.*another shape"):
        load(base)
    hf = tmp_path / "hf.bin"
    torch.save({"embeddings.cls_token": torch.zeros(1, 1, 384), "encoder.layer.0.norm1.weight": torch.ones(384)}, hf)
    with pytest.raises(BrainVizDataError, match="transformers"):
        load(hf)
    partial = tmp_path / "partial.pth"
    sd = _timm_vit("vit_small_patch14_dinov2", seed=0, img_size=56).state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith("blocks.3.")}, partial)
    with pytest.raises(BrainVizDataError, match="missing"):
        load(partial)
    code = tmp_path / "code.pth"
    torch.save({"w": torch.zeros(1), "obj": Path("/")}, code)  # a pickled class: weights_only refuses it
    with pytest.raises(BrainVizDataError, match="code.pth: not a readable weights file"):
        load(code)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(BrainVizDataError, match="junk.safetensors: not a readable"):
        load(junk)


def test_dinov2_cached_features(tmp_path, image_files):
    """The pipeline's path: cached_features with a dinov2 name (random weights, seeded) -> (n, 5, 64, 384)."""
    keys, paths = image_files
    fs = cached_features("dinov2:vit_small_patch14", keys[:2], paths[:2], tmp_path / "c", device="cpu",
                         progress=False, seed=1)
    assert fs.layers.shape == (2, 5, 64, 384) and fs.pooled.shape == (2, 384)
    assert fs.layer_names == ("block0", "block2", "block5", "block8", "block11")
    (entry,) = _entries(tmp_path / "c")
    assert "random-seed1" in entry.name


# ---- preprocessing -------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: _rng_image(0, (40, 40), "L"),
        lambda: _rng_image(0, (40, 40), "1"),
        lambda: _rng_image(0, (40, 40), "RGBA"),
        lambda: _rng_image(0, (40, 40), "LA"),
        lambda: _rng_image(0, (40, 40), "CMYK"),
        lambda: _rng_image(0, (40, 40), "P"),
        lambda: Image.fromarray((np.arange(30 * 20, dtype=np.uint16) * 100).reshape(20, 30)),  # 16-bit
        lambda: Image.fromarray(np.linspace(0, 1, 200, dtype=np.float32).reshape(10, 20)),  # 'F'
        lambda: _rng_image(1, (1, 1)),
        lambda: _rng_image(2, (3, 517)),
        lambda: _rng_image(3, (999, 37)),
    ],
)
def test_preprocess_any_mode_and_size(effnet, make):
    img = make()
    x = effnet.preprocess(img)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_transparent_and_gray_inputs(effnet):
    clear = Image.new("RGBA", (30, 50), (255, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (128, 128, 128)
    gray = _rng_image(4, (64, 64), "L")
    np.testing.assert_array_equal(effnet.preprocess(gray).numpy(), effnet.preprocess(gray.convert("RGB")).numpy())
    sixteen = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert to_rgb(sixteen).getpixel((0, 0)) == (255, 255, 255)


def test_bad_image_files(tmp_path, effnet):
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(BrainVizDataError):
        load_image(bad)
    with pytest.raises(BrainVizDataError):
        extract_features(effnet, [tmp_path / "missing.png"], progress=False)


# ---- extraction ----------------------------------------------------------------
def test_extract_features_and_live_fast_path(effnet, image_files):
    keys, paths = image_files
    fs = extract_features(effnet, paths, batch_size=2, progress=False, keys=keys)
    assert isinstance(fs, FeatureSet) and fs.keys == tuple(keys)
    assert fs.layers.shape == (5, 5, 49, 320) and fs.layers.dtype == np.float16
    assert fs.pooled.shape == (5, 1280) and fs.pooled.dtype == np.float32
    live = features_for_pil(effnet, Image.open(paths[3]))
    assert live.layers.shape == (1, 5, 49, 320) and live.layers.dtype == np.float16
    np.testing.assert_allclose(live.pooled[0], fs.pooled[3], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(live.layers[0].astype(np.float32), fs.layers[3].astype(np.float32), rtol=1e-2, atol=1e-2)


def test_preprocess_batch_is_bitwise_the_reference_formula(effnet, vit):
    """The in-place batch fill gives exactly ``(float32(pixels) * scale + offset)``, channel-major."""
    from brainviz.features.preprocess import center_square_resize

    images = [_rng_image(0, (300, 200)), _rng_image(1, (40, 40), "L"), _rng_image(2, (13, 77), "RGBA")]
    for bb in (effnet, vit):
        pre = bb.preprocessor
        ref = np.stack([(np.asarray(center_square_resize(to_rgb(im), pre.size), dtype=np.float32) * pre._scale
                         + pre._offset).transpose(2, 0, 1) for im in images])
        np.testing.assert_array_equal(bb.preprocess_batch(images).numpy(), ref)
        np.testing.assert_array_equal(pre.image_array(images[1]), ref[1])
        buf = torch.full((4, 3, pre.size, pre.size), np.nan)
        out = pre.batch(images, out=buf)
        assert out.data_ptr() == buf.data_ptr() and out.shape[0] == 3
        np.testing.assert_array_equal(out.numpy(), ref)
        with pytest.raises(ValueError, match="out"):
            pre.batch(images, out=torch.empty((2, 3, pre.size, pre.size)))


def test_extract_features_equals_a_plain_batch_loop(effnet, image_files):
    """Prefetching (thread, reused buffers) and worker processes give the plain loop's features bitwise."""
    _, paths = image_files
    layers, pooled = [], []
    for i in range(0, len(paths), 2):  # batches 2, 2, 1: both buffers reused, short last batch
        lay, pool = effnet.forward(torch.stack([effnet.preprocess(p) for p in paths[i:i + 2]]))
        layers.append(lay.numpy().astype(np.float16))
        pooled.append(pool.numpy())
    for workers in (0, 1):
        fs = extract_features(effnet, paths, batch_size=2, progress=False, num_workers=workers)
        np.testing.assert_array_equal(fs.layers, np.concatenate(layers))
        np.testing.assert_array_equal(fs.pooled, np.concatenate(pooled))


def test_prefetch_raises_bad_images_in_the_caller(tmp_path, effnet, image_files):
    _, paths = image_files
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BrainVizDataError, match="broken.jpg"):
        extract_features(effnet, [*paths[:3], bad, paths[4]], batch_size=2, progress=False)


def test_featureset_subset_and_spatial_pool(effnet, image_files):
    keys, paths = image_files
    fs = extract_features(effnet, paths, progress=False, keys=keys)
    sub = fs.subset([keys[4], keys[0]])
    np.testing.assert_array_equal(sub.layers[0], fs.layers[4])
    np.testing.assert_array_equal(sub.pooled[1], fs.pooled[0])
    with pytest.raises(BrainVizDataError):
        fs.subset(["nsd-99999"])
    sp = fs.spatial_pool(grid=2)
    assert sp.shape == (5, 4 * sum(fs.channels)) and sp.dtype == np.float32
    # first block = layer 0, top-left cell (rows 0..3, cols 0..3 of the 7x7 grid)
    grid = fs.layers[:, 0, :, :24].astype(np.float32).reshape(5, 7, 7, 24)
    np.testing.assert_allclose(sp[:, :24], grid[:, 0:4, 0:4].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert fs.spatial_pool(grid=1, layers=["block15_s32"]).shape == (5, 320)
    with pytest.raises(BrainVizDataError):
        FeatureSet(keys=("a", "a"), layers=np.zeros((2, 1, 4, 3), np.float16), pooled=np.zeros((2, 5), np.float32),
                   layer_names=("l0",), channels=(3,), backbone="x")


# ---- cache ---------------------------------------------------------------------
def _fail_forward(*_a, **_k):
    raise AssertionError("forward must not run on a cache hit")


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_cache_round_trip_no_recompute(tmp_path, image_files, effnet, monkeypatch):
    keys, paths = image_files
    cache = tmp_path / "cache"
    first = cached_features("efficientnet-lite0", keys, paths, cache, batch_size=2, device="cpu", progress=False)
    assert isinstance(first.layers, np.memmap) and isinstance(first.pooled, np.memmap)
    assert first.layers.shape == (5, 5, 49, 320) and first.layers.dtype == np.float16
    assert first.channels == effnet.channels and first.keys == tuple(keys)
    direct = extract_features(effnet, paths, batch_size=2, progress=False, keys=keys)
    np.testing.assert_array_equal(np.asarray(first.layers), direct.layers)
    monkeypatch.setattr(type(effnet), "forward", _fail_forward)
    monkeypatch.setattr("brainviz.features.registry.get_backbone", _fail_forward)
    second = cached_features("efficientnet-lite0", keys, paths, cache, device="cpu", progress=False, verify="full")
    np.testing.assert_array_equal(np.asarray(second.layers), np.asarray(first.layers))
    np.testing.assert_array_equal(np.asarray(second.pooled), np.asarray(first.pooled))
    assert len(_entries(cache)) == 1
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_cache_computes_each_distinct_content_once(tmp_path, image_files, effnet, monkeypatch):
    """One image under several keys (hard links, byte copies) is computed once; every row equals the
    features of its own file (the NSD-sized benchmark shows 1,000 contents under ~70,000 NSD ids)."""
    import shutil

    from brainviz.features.cache import distinct_files

    keys, paths = image_files
    dup = tmp_path / "dups"
    dup.mkdir()
    (dup / "link0.png").hardlink_to(paths[0])
    shutil.copyfile(paths[3], dup / "copy3.png")
    shutil.copyfile(paths[1], dup / "copy1.png")
    all_paths = [paths[0], dup / "link0.png", paths[1], dup / "copy3.png", paths[2], paths[3], paths[4],
                 dup / "copy1.png", tmp_path / "missing.png"]
    firsts, inverse = distinct_files(all_paths)
    assert firsts == [0, 2, 3, 4, 6, 8] and inverse.tolist() == [0, 0, 1, 2, 3, 2, 4, 1, 5]
    seen = []
    forward = type(effnet).forward
    monkeypatch.setattr(type(effnet), "forward", lambda self, b: seen.append(len(b)) or forward(self, b))
    all_keys = [f"nsd-{i:05d}" for i in range(8)]
    fs = cached_features("efficientnet-lite0", all_keys, all_paths[:8], tmp_path / "c", batch_size=2,
                         device="cpu", progress=False)
    assert sum(seen) == 5  # 5 distinct contents among 8 files
    direct = extract_features(effnet, all_paths[:8], batch_size=2, progress=False, keys=all_keys)
    np.testing.assert_array_equal(np.asarray(fs.layers), direct.layers.astype(np.float16))
    np.testing.assert_allclose(np.asarray(fs.pooled), direct.pooled, rtol=1e-5, atol=1e-5)


def test_cache_key_changes_with_images(tmp_path, image_files):
    keys, paths = image_files
    cache = tmp_path / "cache"
    a = cached_features("efficientnet-lite0", keys, paths, cache, device="cpu", progress=False)
    pooled_a = np.array(a.pooled)
    _rng_image(99, size=(48, 40)).save(paths[2])  # same name, new content
    os.utime(paths[2], ns=(1, 1))  # a different mtime
    b = cached_features("efficientnet-lite0", keys, paths, cache, device="cpu", progress=False)
    assert len(_entries(cache)) == 2
    assert not np.allclose(np.asarray(b.pooled[2]), pooled_a[2])
    np.testing.assert_allclose(np.asarray(b.pooled[0]), pooled_a[0], rtol=1e-5, atol=1e-5)
    cached_features("efficientnet-lite0", keys[::-1], paths[::-1], cache, device="cpu", progress=False)
    assert len(_entries(cache)) == 3
    cached_features("efficientnet-lite0", keys, paths, cache, device="cpu", progress=False, image_hash="content")
    assert len(_entries(cache)) == 4


@pytest.mark.parametrize("damage", ["truncate", "meta", "flip"])
def test_corrupt_cache_is_detected(tmp_path, image_files, damage):
    keys, paths = image_files
    cache = tmp_path / "cache"
    good = cached_features("efficientnet-lite0", keys, paths, cache, device="cpu", progress=False)
    want = np.array(good.pooled)
    del good
    (entry,) = _entries(cache)
    verify = "quick"
    if damage == "truncate":
        data = (entry / LAYERS_FILE).read_bytes()
        (entry / LAYERS_FILE).write_bytes(data[: len(data) // 2])
    elif damage == "meta":
        (entry / META_FILE).write_text("{ not json")
    else:  # same size, different bytes: only the full checksum sees it
        raw = bytearray((entry / POOLED_FILE).read_bytes())
        raw[-8:] = b"\x00\x00\x80\x3f" * 2
        (entry / POOLED_FILE).write_bytes(bytes(raw))
        verify = "full"
    with pytest.raises(BrainVizDataError):
        cached_features("efficientnet-lite0", keys, paths, cache, device="cpu", progress=False,
                        verify=verify, on_corrupt="raise")
    with pytest.warns(RuntimeWarning, match="damaged"):
        fixed = cached_features("efficientnet-lite0", keys, paths, cache, device="cpu", progress=False, verify=verify)
    np.testing.assert_allclose(np.asarray(fixed.pooled), want, rtol=1e-5, atol=1e-5)
    json.loads((entry / META_FILE).read_text())


def test_interrupted_run_leaves_no_entry(tmp_path, image_files, effnet, monkeypatch):
    keys, paths = image_files
    cache = tmp_path / "cache"
    real_forward = type(effnet).forward
    calls = {"n": 0}

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interrupt")
        return real_forward(self, batch)

    monkeypatch.setattr(type(effnet), "forward", flaky)
    with pytest.raises(KeyboardInterrupt):
        cached_features("efficientnet-lite0", keys, paths, cache, batch_size=2, device="cpu", progress=False)
    assert not list(cache.iterdir())
    monkeypatch.setattr(type(effnet), "forward", real_forward)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean miss, not a "damaged" recompute
        fs = cached_features("efficientnet-lite0", keys, paths, cache, batch_size=2, device="cpu", progress=False)
    assert fs.layers.shape[0] == 5


def test_cache_input_errors(tmp_path, image_files):
    keys, paths = image_files
    with pytest.raises(BrainVizDataError):
        cached_features("efficientnet-lite0", keys[:3], paths, tmp_path / "c", device="cpu", progress=False)
    with pytest.raises(BrainVizDataError):
        cached_features("efficientnet-lite0", [keys[0]] * 5, paths, tmp_path / "c", device="cpu", progress=False)
    with pytest.raises(BrainVizDataError):
        cached_features("efficientnet-lite0", keys, paths[:4] + [tmp_path / "gone.png"], tmp_path / "c",
                        device="cpu", progress=False)
