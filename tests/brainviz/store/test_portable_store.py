"""A store is self-contained: copied ALONE to another folder, with the files it was built from gone
(image files, checkpoint files, work folder, caches, dataset), every page renders with its pictures
and the Live and In-silico pages predict (Streamlit AppTest)."""
from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from brainviz.sample_store import build_app_store
from tests.apptest import HOME, PAGES, TIMEOUT, charts, page, run, texts

#: Pictures each page shows on first sight of the small app store (top images, extreme pairs, closest
#: images, retrieved images, top images of each set); 0: the page shows none.
MIN_IMAGES = {"1_Voxel_clusters": 2, "2_RDM_explorer": 0, "3_Live_prediction": 7, "4_Model_evaluation": 0,
              "5_Decoding": 2, "6_In_silico_experiment": 2}


@pytest.fixture(scope="module")
def lone_store(tmp_path_factory):
    """The app store copied alone to a new folder; everything it was built from is deleted."""
    build = tmp_path_factory.mktemp("build")
    built = build_app_store(build)
    lone = tmp_path_factory.mktemp("elsewhere") / "copied.duckdb"
    shutil.copyfile(built, lone)
    shutil.rmtree(build)  # image files, store.json: nothing of the build is left
    return lone


@pytest.fixture
def only_the_store(lone_store, tmp_path, monkeypatch):
    """The app run on the lone store from an empty working folder, with no data root, no cache and no
    weights file to fall back on; ``misses`` counts pictures a page asked for that the store lacks."""
    from webapp import viewmodel as V

    monkeypatch.setenv("BRAINVIZ_STORE", str(lone_store))
    monkeypatch.setenv("BRAINVIZ_DATA", str(tmp_path / "no_data_root"))
    monkeypatch.delenv("BRAINVIZ_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    misses = []
    placeholder = V.placeholder
    monkeypatch.setattr(V, "placeholder", lambda *a, **k: misses.append(a) or placeholder(*a, **k))
    return misses


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(i).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_the_copied_store_holds_what_the_pages_show(lone_store):
    from brainviz.encoders.universal import UniversalEncoder
    from brainviz.store.reader import Store

    with Store(lone_store) as st:
        keys = st.images()["image_key"].tolist()
        assert not any(p and os.path.exists(p) for p in st.images()["path"])  # the files are gone
        thumbs = st.thumbnails(keys)
        assert set(thumbs) == set(keys)  # every image, the 92-image set included
        for data in thumbs.values():
            with Image.open(io.BytesIO(data)) as im:
                assert im.format == "JPEG" and max(im.size) <= 256
        ck = st.checkpoints()
        assert list(ck["model_id"]) == ["ue_multi"] and ck["n_bytes"].iloc[0] == len(st.checkpoint("ue_multi"))
        enc = UniversalEncoder.load(st.checkpoint("ue_multi"))
        assert set(enc.subjects) == {"subj01", "subj02"}
        for s in enc.subjects:  # what the In-silico page's NSD sets read
            tagged = st.prediction_keys("ue_multi", s, "tagged")
            train = set(st.image_splits(s, "train")["image_key"])
            assert set(tagged) == (set(st.image_tags().index) & set(keys)) - train


@pytest.mark.parametrize("name", ["Home"] + list(PAGES))
def test_every_page_renders_its_pictures_from_the_store_alone(only_the_store, name):
    from streamlit.testing.v1 import AppTest

    at = run(AppTest.from_file(HOME, default_timeout=TIMEOUT)) if name == "Home" else run(page(name))
    assert not at.error, [e.value for e in at.error]
    assert len(at.image) >= MIN_IMAGES.get(name, 0), (name, len(at.image))
    assert not only_the_store, f"{name}: {len(only_the_store)} pictures missing from the store"
    if name == "3_Live_prediction":  # the example image (the store's thumbnail) was predicted
        assert "Latency" in texts(at) and charts(at) >= 2


def test_live_and_insilico_predict_uploads_from_the_store_alone(only_the_store):
    at = run(page("3_Live_prediction"))
    at.radio(key="src_a").set_value("Upload")
    run(at)
    at.file_uploader(key="up_a_0").set_value(("mine.png", _png(0), "image/png"))
    run(at)
    assert not at.error and "Latency" in texts(at) and charts(at) >= 2

    at = run(page("6_In_silico_experiment"))
    for slot in "AB":
        at.radio(key=f"is_src_{slot}").set_value("Upload images")
        run(at)
        at.file_uploader(key=f"is_up_{slot}").set_value(
            [(f"{slot}{i}.png", _png(i + 10 * (slot == "B")), "image/png") for i in range(4)])
        run(at)
    assert not at.error, [e.value for e in at.error]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Set A images"] == "4" and labels["Set B images"] == "4"
    assert "4** uploaded images predicted" in texts(at) and at.get("plotly_chart") and len(at.image) >= 2
    assert not only_the_store


# --------------------------------------------------------------------------- the pieces
def test_thumbnails_keep_small_images_shrink_large_ones_and_name_bad_files(tmp_path):
    from brainviz.errors import BrainVizDataError
    from brainviz.thumbnails import THUMBNAIL_SIDE, thumbnail, thumbnail_of_file, thumbnails_of_files

    rgba = Image.new("RGBA", (600, 300), (255, 0, 0, 0))  # transparent: on NSD gray, as the backbone sees it
    t = thumbnail(rgba)
    assert (t.width, t.height) == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2) and t.format == "jpeg"
    with Image.open(io.BytesIO(t.data)) as im:
        assert im.mode == "RGB" and im.size == (256, 128) and max(abs(v - 128) for v in im.getpixel((5, 5))) <= 3
    small = thumbnail(np.full((40, 30, 3), 200, np.uint8))
    assert (small.width, small.height) == (30, 40)  # never enlarged
    files = []
    for i, size in enumerate([(500, 400), (64, 64), (300, 900)]):
        files.append(tmp_path / f"{i}.jpg")
        Image.new("RGB", size, (i * 60, 90, 30)).save(files[-1])
    got = [t for _, chunk in thumbnails_of_files(files, workers=2, chunk=2) for t in chunk]
    assert [(t.width, t.height) for t in got] == [(256, 205), (64, 64), (85, 256)]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(BrainVizDataError, match="bad.png"):
        thumbnail_of_file(tmp_path / "bad.png")


def test_writer_and_reader_of_thumbnails_checkpoints_and_tagged_predictions(tmp_path):
    from brainviz.encoders.universal import CHECKPOINT_FORMAT, UniversalEncoder
    from brainviz.errors import BrainVizDataError
    from brainviz.store.reader import Store
    from brainviz.store.writer import StoreWriter
    from brainviz.thumbnails import thumbnail

    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2, 4, 8)).astype(np.float32)  # (images, layers, patches, channels)
    enc = UniversalEncoder(embed_dim=4, proj_dim=4, n_epochs=1, batch_voxels=64, batch_images=4, progress=False,
                           device="cpu").fit({"subj01": (X, rng.normal(size=(12, 5)).astype(np.float32))})
    data = enc.to_bytes()
    enc.save(tmp_path / "full.pt")
    assert len(data) < (tmp_path / "full.pt").stat().st_size  # no optimizer state, no best-epoch weights
    p = tmp_path / "s.duckdb"
    keys = ["nsd-00001", "nsd-00002", "k92-00001"]
    with StoreWriter(p) as w:
        w.add_images(keys[:2], [tmp_path / "a.png", tmp_path / "b.png"], dataset_id="demo")
        w.add_images(keys[2:])  # no file
        w.add_thumbnails(keys, [thumbnail(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(3)])
        w.add_model("ue_multi", "ue_multi", ["subj01"], backbone="efficientnet-lite0")
        w.add_checkpoint("ue_multi", data, CHECKPOINT_FORMAT)
        w.add_predictions("ue_multi", "subj01", keys[:1], np.zeros((1, 5), np.float32))
        w.add_predictions("ue_multi", "subj01", keys[:2], np.ones((2, 5), np.float32), image_set="tagged")
        with pytest.raises(BrainVizDataError, match="image_set"):
            w.add_predictions("ue_multi", "subj01", keys[:1], np.ones((1, 5), np.float32), image_set="all-images")
        with pytest.raises(BrainVizDataError, match="no bytes"):
            w.add_checkpoint("other", b"", CHECKPOINT_FORMAT)
    with Store(p) as st:
        assert st.images()["path"].isna().tolist() == [True, False, False]  # k92 first (sorted keys)
        assert set(st.thumbnails(keys + ["nsd-09999"])) == set(keys)
        assert st.thumbnails([]) == {}
        row = st.checkpoints().iloc[0]
        assert row["model_id"] == "ue_multi" and row["n_bytes"] == len(data) and row["format"] == CHECKPOINT_FORMAT
        assert st.checkpoint("ue_multi") == data
        with pytest.raises(BrainVizDataError, match="no checkpoint of model 'ridge'"):
            st.checkpoint("ridge")
        assert st.prediction_keys("ue_multi", "subj01") == keys[:1]
        assert st.prediction_keys("ue_multi", "subj01", "tagged") == keys[:2]
        assert st.predictions("ue_multi", "subj01", keys[:2], "tagged").sum() == 10
        assert (st.predictions("ue_multi", "subj01") == 0).all()
        back = UniversalEncoder.load(st.checkpoint("ue_multi"))
        np.testing.assert_array_equal(back.predict(X[:3], "subj01"), enc.predict(X[:3], "subj01"))
    with pytest.raises(BrainVizDataError, match="not a readable checkpoint"):
        UniversalEncoder.load(b"garbage", name="stored checkpoint of model 'x'")
