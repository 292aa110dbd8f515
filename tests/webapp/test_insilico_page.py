"""The In-silico experiment page and the shared PNG + GIfTI download widget (Streamlit AppTest, synthetic store)."""
from __future__ import annotations

import io
import zipfile

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from tests.apptest import page, run, texts


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(i)
    Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _download_labels(at) -> list[str]:
    return [d.proto.label for d in at.get("download_button")]


def test_page_default_nsd_faces_vs_everything_else(with_store):
    at = run(page("6_In_silico_experiment"))
    msg = texts(at)
    assert "SIMULATED" in msg
    assert "tagged *faces*" in msg and "not tagged *faces*" in msg and "trained on" in msg
    assert any(e.proto.component_name.endswith("brainview") for e in at.get("component_instance"))  # the brain map
    labels = {m.label: m.value for m in at.metric}
    assert int(labels["Set A images"]) >= 3 and int(labels["Set B images"]) >= 3
    assert any("Contrast" in str(h.value) for h in at.header)
    assert at.dataframe  # per-ROI table
    assert "Download GIfTI (lh + rh, zip)" in _download_labels(at)
    # other maps, q, outlines
    at.radio(key="is_map").set_value("effect size d")
    at.select_slider(key="is_q").set_value(0.01)
    at.selectbox(key="is_outlines").set_value("none")
    run(at)
    at.radio(key="png_which").set_value("effect size d")
    at.button(key="png_btn").click()
    run(at)
    # the PNG is offered, or a clear message says why rendering failed
    assert "Download PNG" in _download_labels(at) or any("render" in e.value for e in at.error)


def test_page_uploaded_set_with_bad_files(with_store):
    at = run(page("6_In_silico_experiment"))
    at.radio(key="is_src_A").set_value("Upload images")
    run(at)
    assert any("Upload images" in str(i.value) for i in at.info)
    files = [(f"img{i}.png", _png(i), "image/png") for i in range(5)] + [("broken.png", b"not a png", "image/png")]
    at.file_uploader(key="is_up_A").set_value(files)
    run(at)
    msg = texts(at)
    assert "5** uploaded images predicted" in msg and "1 skipped" in msg
    assert any(e.label.startswith("Set A: 1 files skipped") for e in at.expander)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Set A images"] == "5"
    # the RDM section uses the uploaded set and lists extreme pairs
    assert "Most similar pairs" in msg and "Most dissimilar pairs" in msg


def test_page_too_few_images_explains(with_store):
    at = run(page("6_In_silico_experiment"))
    at.radio(key="is_src_B").set_value("Upload images")
    run(at)
    at.file_uploader(key="is_up_B").set_value([("one.png", _png(1), "image/png"), ("bad.png", b"x", "image/png")])
    run(at)
    assert any("fewer than 3 images" in str(i.value) for i in at.info)
    assert not at.exception


def test_shared_widget_gifti_zip_content(app_store):
    from brainviz import export as X
    from brainviz.store.reader import Store
    from webapp.exports import gifti_zip_or_error

    with Store(app_store) as st:
        vertices = st.vertices("subj01")
        surface = X.store_surface(st, "subj01")
    vals = np.linspace(-1, 1, len(vertices))
    data, err = gifti_zip_or_error(X.SurfaceMap.from_vertices(vals, vertices, surface, name="t"), "t_map", True)
    assert err is None
    z = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(z.namelist()) == ["README.txt", "lh.t_map.func.gii", "rh.t_map.func.gii"]
    lh = nib.GiftiImage.from_bytes(z.read("lh.t_map.func.gii")).darrays[0].data
    assert lh.shape == (10242,) and np.isfinite(lh).sum() == int((vertices["hemi"] == "lh").sum())
    bad, err = gifti_zip_or_error(X.SurfaceMap({"lh": np.zeros(5)}, "fsaverage5", "x"), "x", False)
    assert bad is None and "failed" in err


@pytest.mark.parametrize("name", ["1_Voxel_clusters", "3_Live_prediction", "4_Model_evaluation"])
def test_every_brain_map_page_offers_gifti_beside_png(with_store, name):
    at = run(page(name))
    assert "Download GIfTI (lh + rh, zip)" in _download_labels(at)
    assert at.button(key="png_btn")  # the PNG render button of the same widget
