"""brainviz.live: upload validation (bad files of every kind) and the live predictor."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from brainviz import live as L
from brainviz.errors import BrainVizDataError
from tests import ROOT
from tests.upload_samples import ACCEPTED_FILES, BAD_FILES, animated_gif, bomb_png, good_png, png_bytes

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_rejected_with_a_clear_message(name):
    data, fragment = BAD_FILES[name]
    with pytest.raises(L.ImageValidationError) as ei:
        L.validate_image(data, name=name)
    assert fragment in str(ei.value)
    assert name in str(ei.value)
    assert isinstance(ei.value, BrainVizDataError)


@pytest.mark.parametrize("name", list(ACCEPTED_FILES))
def test_convertible_files_become_rgb_with_a_note(name):
    data, fragment = ACCEPTED_FILES[name]
    img = L.validate_image(data, name=name)
    assert img.mode == "RGB"
    assert any(fragment in n for n in img.info["brainviz_notes"])


def test_animated_gif_uses_the_first_frame():
    img = L.validate_image(animated_gif())
    assert img.getpixel((5, 5)) == (255, 0, 0)
    assert img.info["brainviz_source"]["frames"] == 3


def test_sixteen_bit_keeps_the_contrast():
    arr = np.tile(np.linspace(0, 65535, 32, dtype=np.uint16), (32, 1))
    img = L.validate_image(png_bytes(Image.fromarray(arr)))
    g = np.asarray(img)[..., 0]
    assert g.min() < 5 and g.max() > 250


def test_bomb_is_rejected_before_decoding():
    t = time.perf_counter()
    with pytest.raises(L.ImageValidationError, match="megapixels|too large"):
        L.validate_image(bomb_png(9000, 9000))  # 81 MP: over our 40 MP limit, under PIL's own error
    assert time.perf_counter() - t < 1.0


def test_pixel_limit_is_a_parameter():
    with pytest.raises(L.ImageValidationError, match="megapixels"):
        L.validate_image(good_png((64, 64)), max_pixels=1000)


def test_unsupported_type_and_oversized_file():
    b = io.BytesIO()
    Image.new("RGB", (32, 32)).save(b, format="ICO")
    with pytest.raises(L.ImageValidationError, match="not supported"):
        L.validate_image(b.getvalue())
    with pytest.raises(L.ImageValidationError, match="MB"):
        L.validate_image(good_png(), max_bytes=100)
    with pytest.raises(L.ImageValidationError):
        L.validate_image("not bytes")  # type: ignore[arg-type]


def test_transparent_and_large_images():
    img = L.validate_image(png_bytes(Image.new("RGBA", (40, 40), (255, 0, 0, 0))))
    assert img.getpixel((0, 0)) == (128, 128, 128)
    big = L.validate_image(good_png((2000, 1500)))
    assert max(big.size) == L.MAX_SIDE
    assert any("downscaled" in n for n in big.info["brainviz_notes"])


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (60, 30), "white")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    b = io.BytesIO()
    img.save(b, format="JPEG", exif=exif)
    assert L.validate_image(b.getvalue()).size == (30, 60)


# --------------------------------------------------------------------------- helpers
def test_pattern_similarity_and_nearest():
    bank = RNG.normal(size=(5, 50))
    r = L.pattern_similarity(bank[2] * 3 + 1, bank)
    assert np.argmax(r) == 2 and r[2] == pytest.approx(1.0)
    near = L.nearest_images(bank[4], bank, list("abcde"), k=2)
    assert near[0][0] == "e"
    m = L.roi_means(np.arange(4.0), {"x": np.array([1, 1, 0, 0], bool), "none": np.zeros(4, bool)})
    assert m == {"x": 0.5}


def test_pick_live_model_prefers_multi_subject_checkpoints():
    import pandas as pd

    models = pd.DataFrame([
        {"model_id": "r", "kind": "ridge", "subjects": ["a"], "checkpoint_path": "r.pkl"},
        {"model_id": "s", "kind": "ue_single", "subjects": ["a"], "checkpoint_path": "s.pt"},
        {"model_id": "m", "kind": "ue_multi", "subjects": ["a", "b"], "checkpoint_path": "m.pt"},
        {"model_id": "m2", "kind": "ue_multi", "subjects": ["a", "b"], "checkpoint_path": None},
    ])
    assert L.pick_live_model(models) == "m"
    assert L.pick_live_model(models.iloc[:1]) is None
    # a store's candidates are the models whose checkpoint it holds, whatever their checkpoint_path
    assert L.pick_live_model(models, stored={"m2", "s"}) == "m2"
    assert L.pick_live_model(models, stored={"s"}) == "s"
    assert L.pick_live_model(models, stored=set()) is None


# --------------------------------------------------------------------------- predictor on the synthetic store
@pytest.fixture(scope="module")
def store(app_store):
    from brainviz.store.reader import Store

    with Store(app_store) as s:
        yield s


@pytest.fixture(scope="module")
def predictor(store):
    return L.get_live_predictor(store)


def test_predictor_predicts_every_subject(predictor, store):
    img = L.validate_image(good_png((80, 80)))
    res = predictor.predict(img)
    assert set(res.predictions) == set(store.subjects()["subject"])
    for s, p in res.predictions.items():
        assert p.shape == (store.n_vertices(s),) and p.dtype == np.float32 and np.isfinite(p).all()
    assert res.device.startswith(("cpu", "cuda"))
    assert set(res.timings_ms) == {"features", "encoder", "total"}


def test_live_prediction_matches_the_stored_precomputed_one(predictor, store):
    key = store.prediction_keys("ue_multi", "subj01")[3]
    path = store.images([key])["path"].iloc[0]
    with open(path, "rb") as f:
        img = L.validate_image(f.read())
    live = predictor.predict(img, ["subj01"]).predictions["subj01"]
    stored = store.predictions("ue_multi", "subj01", [key])[0]
    np.testing.assert_allclose(live, stored, atol=1e-3, rtol=1e-3)
    keys = store.prediction_keys("ue_multi", "subj01")
    bank = store.predictions("ue_multi", "subj01", keys)
    assert L.nearest_images(live, bank, keys, k=1)[0][0] == key


def test_predictor_is_cached_and_rejects_unknown_subjects(predictor, store, monkeypatch):
    reads = []
    checkpoint = store.checkpoint
    monkeypatch.setattr(store, "checkpoint", lambda m: reads.append(m) or checkpoint(m))
    assert L.get_live_predictor(store) is predictor and L.get_live_predictor(store) is predictor
    assert reads == []  # the stored checkpoint was read once, when the predictor was built
    with pytest.raises(BrainVizDataError, match="subj99"):
        predictor.predict(Image.new("RGB", (32, 32)), ["subj99"])
    batch = predictor.predict([Image.new("RGB", (32, 32)), Image.new("RGB", (40, 40), "red")], ["subj02"])
    assert batch.predictions["subj02"].shape == (2, store.n_vertices("subj02"))


def test_store_without_checkpoint_gives_a_clear_error(tmp_path):
    from brainviz.store.writer import StoreWriter
    from brainviz.store.reader import Store

    p = tmp_path / "s.duckdb"
    with StoreWriter(p) as w:
        w.add_model("r", "ridge", ["subj01"], backbone="efficientnet-lite0")
        w.add_model("u", "ue_multi", ["subj01"], backbone="efficientnet-lite0", checkpoint_path=tmp_path / "gone.pt")
    with Store(p) as s:
        with pytest.raises(BrainVizDataError, match="checkpoint"):
            L.get_live_predictor(s)
        with pytest.raises(BrainVizDataError, match="checkpoint"):
            L.LivePredictor.from_store(s)
        with pytest.raises(BrainVizDataError, match="not in this store"):
            L.LivePredictor.from_store(s, model_id="nope")
    p2 = tmp_path / "ridge_only.duckdb"
    with StoreWriter(p2) as w:
        w.add_model("r", "ridge", ["subj01"], backbone="efficientnet-lite0")
    with Store(p2) as s:
        with pytest.raises(BrainVizDataError, match="no Universal-Encoder"):
            L.get_live_predictor(s)


def test_importing_live_changes_no_pillow_setting():
    """The uploader's limits are checked by validate_image; PIL's process-wide bomb limit stays as it was (other
    code of the process, e.g. feature extraction of large dataset images, keeps PIL's own rule)."""
    import subprocess
    import sys

    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import brainviz.live; "
            "assert Image.MAX_IMAGE_PIXELS == before, Image.MAX_IMAGE_PIXELS")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
