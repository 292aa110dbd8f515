"""Streamlit AppTest of every page on the synthetic store (and without a store).

Each test runs a page script headless, interacts with its main widgets and checks that
no exception (traceback) is shown and that the expected content is there.
"""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import HOME, PAGES, TIMEOUT, brains, charts, page, run, texts
from tests.upload_samples import ACCEPTED_FILES, BAD_FILES


# --------------------------------------------------------------------------- no store / bad store
def test_home_without_store_shows_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINVIZ_STORE", str(tmp_path / "missing.duckdb"))
    at = run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    msg = texts(at)
    assert "python -m precompute all" in msg and "make demo" in msg
    assert not at.error


@pytest.mark.parametrize("name", list(PAGES))
def test_pages_without_store_show_the_build_command(name, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINVIZ_STORE", str(tmp_path / "missing.duckdb"))
    at = run(page(name))
    assert "python -m precompute all" in texts(at)


def test_home_with_a_broken_store_explains(tmp_path, monkeypatch):
    bad = tmp_path / "broken.duckdb"
    bad.write_bytes(b"this is not a duckdb file" * 100)
    monkeypatch.setenv("BRAINVIZ_STORE", str(bad))
    at = run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    assert at.error and "could not be opened" in at.error[0].value
    assert "python -m precompute all" in texts(at) + "".join(c.value for c in at.code)


# --------------------------------------------------------------------------- home
def test_home_shows_what_is_loaded(with_store):
    at = run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    assert "SIMULATED" in at.warning[0].value
    labels = {m.label: m.value for m in at.metric}
    assert labels["Subjects"] == "2" and labels["Data"] == "SIMULATED" and labels["Models"] == "2"
    assert "efficientnet" in texts(at)  # backbone named
    assert "Guided tour" in texts(at)
    assert len(at.dataframe) >= 3  # subjects, models, headline


# --------------------------------------------------------------------------- voxel clusters
def test_clusters_page_widgets(with_store):
    at = run(page("1_Voxel_clusters"))
    assert "SIMULATED" in at.warning[0].value
    assert charts(at) >= 4  # brain, map, planted, recovered
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Category-region ARI"] == "0.61" and metrics["Coverage"] == "70 %"
    assert metrics["Early visual: position explained"] == "—"  # no early visual vertex scored in this scope
    assert "noise-free simulated (what is reachable) **0.93** · measured (what the data hold) **0.84** · " \
           "ridge-predicted" in texts(at)
    k = at.select_slider[0]
    k.set_value(5)
    run(at)
    assert {m.label: m.value for m in at.metric}["Category-region ARI"] == "0.51"
    assert "Yardsticks" not in texts(at)  # scored at the chosen k only
    at.select_slider[0].set_value(3)
    run(at)
    assert len(at.selectbox(key="cluster_pick").options) == 3
    at.selectbox(key="cluster_pick").set_value(1)
    run(at)
    assert "**Cluster 1**" in texts(at)
    assert len(at.image) >= 2  # top images (measured + predicted)
    at.radio(key="surface").set_value("flat")
    at.radio(key="hemis").set_value("lh")
    run(at)
    outline = next(s for s in at.selectbox if s.label == "ROI outlines")
    outline.set_value("none")
    at.multiselect[0].set_value(["faces"])
    next(tg for tg in at.toggle if tg.label.startswith("Highlight")).set_value(True)
    run(at)
    assert "How k was chosen" in [h.value for h in at.subheader]  # the joint scope's stability curve
    scope = next(s for s in at.selectbox if s.label == "Clustered over")
    scope.set_value("subj02")
    run(at)
    assert next(s for s in at.selectbox if s.label == "Brain shown").value == "subj02"
    assert "One subject alone: k = 3, the k chosen by bootstrap stability for 'joint" in texts(at)


def test_clusters_page_states_the_stored_policy(app_store, tmp_path, monkeypatch):
    """'How k was chosen' states the stability threshold, subsample share and rounds the run used: the numbers
    of table analysis_settings (here changed in a copy of the store), never a number parsed from text."""
    import shutil

    import duckdb

    copy = tmp_path / "policy.duckdb"
    shutil.copy(app_store, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE analysis_settings SET value = 0.6 WHERE name = 'min_stability'")
        con.execute("UPDATE analysis_settings SET value = 7 WHERE name = 'stability_rounds'")
    monkeypatch.setenv("BRAINVIZ_STORE", str(copy))
    at = run(page("1_Voxel_clusters"))
    text = texts(at)
    assert "How k was chosen" in [h.value for h in at.subheader]
    assert "the largest k whose stability is at least 0.6:" in text and "over 7 rounds" in text
    assert "80 % subsamples" in text and "0.75" not in text


def test_clusters_page_what_is_clustered_and_smoothing(with_store):
    """The page's choice of what is clustered (store table cluster_variants) and of smoothing on the cortex:
    each choice shows its own stored clustering and scores; the comparison table lists every variant."""
    at = run(page("1_Voxel_clusters"))
    what = next(r for r in at.radio if r.label == "What is clustered")
    assert list(what.options) == ["embeddings + responses (combined)", "encoder embeddings"]
    assert what.value == "embeddings"  # the store's default view
    smooth = at.toggle(key="smooth")
    assert "β = 0.5" in smooth.label and smooth.value is False
    assert "Default: encoder embeddings" in texts(at)
    table = next(d.value for d in at.dataframe if "what is clustered" in d.value.columns)
    assert len(table) == 3 and set(table["smoothed"]) == {"no", "β = 0.5"}
    smooth.set_value(True)
    run(at)
    assert {m.label: m.value for m in at.metric}["Category-region ARI"] == "0.66"
    assert "smoothed labels keep this k" in texts(at)
    next(r for r in at.radio if r.label == "What is clustered").set_value("combined")
    run(at)
    assert {m.label: m.value for m in at.metric}["Category-region ARI"] == "0.72"
    assert not [tg for tg in at.toggle if tg.label.startswith("Smooth")]  # no smoothed variant stored for it
    assert next(s for s in at.selectbox if s.label == "Clustered over").options == ["joint · whole visual cortex"]


def _embedding_map(at) -> tuple[set[str], int]:
    """(trace types, dots) of the Voxel clusters page's 2-D map as sent to the browser."""
    import base64
    import json

    import numpy as np

    fig = json.loads(next(c for c in at.get("plotly_chart") if "umap_select" in c.proto.id).proto.spec)
    dots = sum(len(np.frombuffer(base64.b64decode(t["x"]["bdata"]), t["x"]["dtype"])) if isinstance(t["x"], dict)
               else len(t["x"]) for t in fig["data"])
    return {t.get("type", "scatter") for t in fig["data"]}, dots


def test_clusters_page_embedding_map_is_bounded(with_store, monkeypatch):
    """All subjects of a scope at NSD size are ~80,000 clustered vertices: the 2-D map sends a sample of each cluster
    above V.MAX_MAP_POINTS dots and says so."""
    from webapp import viewmodel as V

    monkeypatch.setattr(V, "MAX_MAP_POINTS", 40)
    at = run(page("1_Voxel_clusters"))
    at.toggle(key="map_all_subjects").set_value(True)
    run(at)
    _, dots = _embedding_map(at)
    assert 0 < dots <= 40
    assert f"Shown: {dots:,} of the" in texts(at)


def test_clusters_page_embedding_map_svg_up_to_the_bound_webgl_above(with_store, monkeypatch):
    """The 2-D map draws with SVG (no WebGL context made on every rerun) up to ``C.SVG_MAX_POINTS`` dots and
    with WebGL above."""
    from webapp import charts as C

    types, n = _embedding_map(run(page("1_Voxel_clusters")))
    assert n > 1 and types == {"scatter"}
    monkeypatch.setattr(C, "SVG_MAX_POINTS", n - 1)
    types, n2 = _embedding_map(run(page("1_Voxel_clusters")))
    assert n2 == n and types == {"scattergl"}


def test_clusters_page_png_download(with_store):
    at = run(page("1_Voxel_clusters"))
    at.button(key="png_btn").click()
    run(at)
    assert at.get("download_button") or any("render" in e.value for e in at.error)
    at.radio(key="png_which").set_value("planted regions")
    at.button(key="png_btn").click()
    run(at)
    # either the PNG is offered, or a clear message says why rendering failed
    assert at.get("download_button") or any("render" in e.value for e in at.error)


# --------------------------------------------------------------------------- RDM explorer
def test_rdm_page_widgets(with_store):
    at = run(page("2_RDM_explorer"))
    assert charts(at) >= 3
    msg = texts(at)
    assert "REAL" in msg and "Kriegeskorte" in msg
    order = next(r for r in at.radio if r.label == "Order images by")
    order.set_value("clustering")
    run(at)
    next(s for s in at.selectbox if s.label == "Metric").set_value("euclidean")
    run(at)
    next(s for s in at.selectbox if s.label == "Source").set_value("predicted")
    run(at)
    next(s for s in at.selectbox if s.label == "ROI (set)").set_value("faces")
    run(at)
    assert any(str(m.value).startswith("dissimilarity **") for m in at.markdown)  # extreme pairs with values
    assert any("RSA" in str(h.value) for h in at.subheader)


# --------------------------------------------------------------------------- live prediction
def test_live_page_example_and_compare(with_store):
    at = run(page("3_Live_prediction"))
    msg = texts(at)
    assert "Latency" in msg and "cpu" in msg.lower()
    assert charts(at) >= 2  # brain + ROI bars
    assert any("Closest known images" in str(h.value) for h in at.subheader)
    at.toggle(key="compare").set_value(True)
    run(at)
    assert charts(at) >= 5  # + A, B, difference
    at.radio(key="png_which").set_value("difference A − B")
    at.button(key="png_btn").click()
    run(at)
    assert at.get("download_button") or any("render" in e.value for e in at.error)
    next(s for s in at.selectbox if s.label == "Subject").set_value("subj02")
    at.radio(key="src_a").set_value("Camera")
    run(at)
    assert at.camera_input


def upload_to_live_page(name: str, data: bytes):
    """The Live prediction page after uploading ``data`` as file ``name``."""
    at = run(page("3_Live_prediction"))
    at.radio(key="src_a").set_value("Upload")
    run(at)
    at.file_uploader(key="up_a_0").set_value((name, data, "image/png"))
    return run(at)


def test_live_page_keeps_the_brain_view_without_an_image(with_store):
    """Upload chosen, no file yet: a message, and the brain view stays on the page, an empty cortex, so the
    browser keeps its meshes and WebGL state."""
    at = run(page("3_Live_prediction"))
    assert brains(at) == 1
    at.radio(key="src_a").set_value("Upload")
    run(at)
    assert any("Pick an example, upload an image" in i.value for i in at.info)
    assert brains(at) == 1
    view = next(e for e in at.get("component_instance") if e.proto.component_name.endswith("brainview"))
    assert "no image yet" in view.proto.json_args


def test_live_page_takes_each_upload_and_empties_the_uploader(with_store):
    """A dropped file is taken into the session and the uploader replaced by an empty one (a new key), so the
    next file is one upload and one rerun (replacing a full uploader's file reruns the page without a file
    first); the last file's map stays until another file is dropped, also over reruns for other reasons."""
    data, _ = ACCEPTED_FILES[next(iter(ACCEPTED_FILES))]
    at = upload_to_live_page("first.png", data)

    def view():
        return next(e for e in at.get("component_instance") if e.proto.component_name.endswith("brainview")).proto

    first = view()
    assert "Showing first.png" in texts(at) and "Latency" in texts(at)
    assert at.file_uploader(key="up_a_1").value is None  # an empty uploader, ready for the next file
    assert not [u for u in at.get("file_uploader") if u.key == "up_a_0"]
    run(at)  # a rerun without a new file: the same map
    assert view().json_args == first.json_args and view().special_args == first.special_args
    assert "Showing first.png" in texts(at)
    other = next(d for d, _ in ACCEPTED_FILES.values() if d != data)
    at.file_uploader(key="up_a_1").set_value(("second.png", other, "image/png"))
    run(at)
    assert "Showing second.png" in texts(at) and "first.png" not in texts(at)
    assert view().special_args != first.special_args  # the new image's map
    assert at.file_uploader(key="up_a_2").value is None


def test_a_taken_upload_leaves_streamlits_upload_manager(monkeypatch):
    """uploads.forget removes the file from the session's files in Streamlit's upload manager (the frontend
    never deletes the file of an uploader the page replaced)."""
    from types import SimpleNamespace

    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from webapp import uploads

    mgr = MemoryUploadedFileManager("/upload")
    mgr.add_file("s1", UploadedFileRec("f1", "a.png", "image/png", b"abc"))
    mgr.add_file("s1", UploadedFileRec("f2", "b.png", "image/png", b"defg"))
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: SimpleNamespace(uploaded_file_mgr=mgr)))
    monkeypatch.setattr("streamlit.runtime.scriptrunner.get_script_run_ctx", lambda: SimpleNamespace(session_id="s1"))
    assert uploads.forget(SimpleNamespace(file_id="f1"))
    assert [f.file_id for f in mgr.get_files("s1", ["f1", "f2"])] == ["f2"]
    assert uploads.session_bytes(mgr, "s1") == 4


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_live_page_bad_uploads_show_a_message(with_store, name):
    data, fragment = BAD_FILES[name]
    at = upload_to_live_page(name, data)
    assert at.error, "no message for a bad upload"
    assert "cannot be used" in at.error[0].value and fragment in at.error[0].value


@pytest.mark.parametrize("name", list(ACCEPTED_FILES))
def test_live_page_convertible_uploads_predict(with_store, name):
    data, fragment = ACCEPTED_FILES[name]
    at = upload_to_live_page(name, data)
    assert not at.error
    assert fragment in texts(at)
    assert "Latency" in texts(at)


# --------------------------------------------------------------------------- model evaluation
def test_evaluation_page_widgets(with_store):
    at = run(page("4_Model_evaluation"))
    assert charts(at) >= 4
    for metric in ("nc", "nna", "r"):
        next(r for r in at.radio if r.label == "Map").set_value(metric)
        run(at)
    at.toggle(key="roi_individual").set_value(True)
    next(s for s in at.selectbox if s.label == "Model").set_value("ridge-subj01")
    at.slider[0].set_value(0.1)
    next(s for s in at.selectbox if s.label == "ROI outlines").set_value("faces (floc-faces)")
    run(at)
    assert any("Transfer" in str(h.value) for h in at.subheader)
    assert any("retrieval" in str(h.value) for h in at.subheader)
    at.button(key="png_btn").click()
    run(at)
    assert at.get("download_button") or any("render" in e.value for e in at.error)


# --------------------------------------------------------------------------- decoding
def test_decoding_page_widgets(with_store):
    at = run(page("5_Decoding"))
    msg = texts(at)
    assert "vote" in msg and "True image" in msg
    assert len(at.image) >= 2
    next(s for s in at.selectbox if s.label == "Subject").set_value("subj02")
    run(at)
    next(s for s in at.selectbox if s.label == "Held-out image").select_index(1)
    at.slider[0].set_value(3)
    run(at)
    assert "ranked" in texts(at)
