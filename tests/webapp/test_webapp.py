"""The app's own package ``webapp/``: page registry, store file, Markdown, view-model, exports (no
Streamlit needed), and the shared page preamble (Streamlit AppTest)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from brainviz.errors import BrainVizDataError
from brainviz.rois import ROI_GROUP_COLUMNS, cluster_roi_counts, cluster_roi_majority, roi_groups
from webapp import exports, messages, storefile
from webapp import viewmodel as V
from webapp.pages import APP_NAME, HOME, PAGES, page_of
from tests import ROOT


# --------------------------------------------------------------------------- package boundaries
def test_streamlit_free_modules_import_without_streamlit():
    code = ("import sys; sys.modules['streamlit'] = None\n"
            "import webapp.pages, webapp.storefile, webapp.messages, webapp.viewmodel, webapp.exports\n"
            "import brainviz.rois, precompute.predict\n"
            "assert 'streamlit' not in {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def _imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
    return out


def test_library_holds_no_app_code():
    """brainviz/ never imports streamlit nor webapp, and names no page script."""
    for path in (ROOT / "brainviz").rglob("*.py"):
        assert not _imported_modules(path) & {"streamlit", "webapp"}, path
        assert "pages/" not in path.read_text(), f"{path} names a page script"


# --------------------------------------------------------------------------- page registry
def test_registry_lists_every_page_file_once():
    on_disk = {HOME} | {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    assert [p.script for p in PAGES].count(HOME) == 1 and PAGES[0].script == HOME
    assert {p.script for p in PAGES} == on_disk and len(PAGES) == len(on_disk)
    assert len({p.label for p in PAGES}) == len(PAGES)
    assert all(p.icon.startswith(":material/") for p in PAGES)


def test_page_of_and_titles():
    page = page_of(str(ROOT / "pages" / "2_RDM_explorer.py"))
    assert page.label == "RDM explorer" and page.browser_title == f"RDM explorer · {APP_NAME}"
    assert page_of("app.py").browser_title == APP_NAME
    assert page_of(str(ROOT / "app.py")).label == "Home"
    with pytest.raises(KeyError):
        page_of("pages/7_Nothing.py")
    with pytest.raises(KeyError):
        page_of("other_app.py")


# --------------------------------------------------------------------------- store file and messages
def test_store_path_and_stamp(tmp_path):
    assert storefile.store_path({}).name == "brainviz.duckdb"
    assert storefile.store_path({storefile.ENV_STORE: str(tmp_path / "x.duckdb")}) == tmp_path / "x.duckdb"
    f = tmp_path / "s.duckdb"
    assert storefile.store_stamp(f) == (0, 0, 0)
    f.write_bytes(b"1")
    first = storefile.store_stamp(f)
    f.write_bytes(b"12")
    assert first != storefile.store_stamp(f) != (0, 0, 0)


def test_open_store_names_a_bad_file(tmp_path):
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"not a store" * 50)
    with pytest.raises(BrainVizDataError) as got:
        storefile.open_store(str(bad), storefile.store_stamp(bad))
    msg = messages.store_error_message(got.value, bad)
    assert msg.startswith(f"**The BrainViz store `{bad}` could not be opened:**")


def test_messages():
    assert messages.banner(SimpleNamespace(simulated=True))[0] == "warning"
    kind, text = messages.banner(SimpleNamespace(simulated=False))
    assert kind == "info" and "REAL" in text
    assert messages.data_label(SimpleNamespace(simulated=True)) == "SIMULATED"
    miss = messages.missing_store_message("/x/y.duckdb")
    assert "`/x/y.duckdb`" in miss and all(c in miss for c in messages.BUILD_COMMANDS)
    assert storefile.ENV_STORE in miss
    assert messages.rebuild_hint("No RDMs.") == "No RDMs. Rebuild with `python -m precompute all`."
    other = messages.store_error_message(BrainVizDataError("/elsewhere", "broken"), "/x/y.duckdb")
    assert "/elsewhere" in other
    generic = messages.store_error_message(OSError("disk gone\nmore"), "/x/y.duckdb")
    assert "(OSError: disk gone)" in generic and "more" not in generic and "python -m precompute all" in generic


# --------------------------------------------------------------------------- view-model
def _vertices() -> pd.DataFrame:
    """Six vertices: 4 on lh, 2 on rh (one of them off fsaverage5)."""
    return pd.DataFrame({
        "hemi": ["lh", "lh", "lh", "lh", "rh", "rh"],
        "fsaverage5_index": [0, 1, 2, 3, 5, -1],
        "roi_prf": ["V1", "V2", None, None, "V1", None],
        "roi_faces": [None, None, "FFA-1", None, None, None],
        "roi_places": [None, None, None, "PPA", None, None],
        "planted_region": ["early", "early", "faces", "food", "early", None],
    })


def test_roi_groups_masks_and_names():
    v = _vertices()
    g = roi_groups(v)
    assert set(g) == {"early visual", "faces", "places", "food (planted)"}
    assert g["early visual"].tolist() == [True, True, False, False, True, False]
    assert "food (planted)" not in roi_groups(v, include_planted_food=False)
    assert set(ROI_GROUP_COLUMNS.values()) <= set(V.ROI_CLASS_COLUMNS.values())
    assert V.roi_names(v) == ["FFA-1", "PPA", "V1", "V2"]
    assert V.roi_mask(v, ["faces", "V2"]).tolist() == [False, True, True, False, False, False]


def test_cluster_roi_majority():
    """The ROI group holding most of a cluster's vertices, only when it holds at least min_share of them."""
    g = roi_groups(_vertices(), include_planted_food=False)  # early visual: 0, 1, 4; faces: 2; places: 3
    labels = np.array([0, 0, 1, 2, 0, -1])
    assert cluster_roi_counts(labels, g) == {0: {"early visual": 3}, 1: {"faces": 1}, 2: {"places": 1}}
    maj = cluster_roi_majority(labels, g)
    assert maj[0] == ("early visual", 1.0)
    assert maj[1] == ("faces", 1.0) and maj[2] == ("places", 1.0)
    assert cluster_roi_majority(np.array([3, 3, 3, 3, -1, 3]), g) == {}  # best share 2/5 < 0.5
    assert cluster_roi_majority(np.array([3, 3, 3, 3, -1, 3]), g, min_share=0.4) == {3: ("early visual", 0.4)}


def test_label_map_and_planted_regions():
    v = _vertices()
    lm = V.label_map(v, "roi_prf")
    assert lm["lh"].shape == (10242,) and lm["lh"][0] == "V1" and lm["lh"][2] is None and lm["rh"][5] == "V1"
    codes, names = V.planted_codes(v)
    assert names == {0: "early", 1: "faces", 2: "food"} and np.isnan(codes[-1])
    assert V.planted_colors(names)[2] == V.PLANTED_COLORS["food"]
    assert V.planted_codes(v.drop(columns="planted_region")) is None
    tab, ari = V.recovery_table(np.array([0, 0, 1, 2, 0, -1]), v)
    assert ari == pytest.approx(1.0) and tab.loc["early", 0] == 3
    # an unclustered vertex before others: counts still pair each vertex's region with its own cluster
    tab, ari = V.recovery_table(np.array([0, -1, 1, 2, 0, -1]), v)
    assert tab.to_dict() == {0: {"early": 2, "faces": 0, "food": 0}, 1: {"early": 0, "faces": 1, "food": 0},
                             2: {"early": 0, "faces": 0, "food": 1}}


def test_model_and_result_tables():
    assert V.model_family("ue_single-subj01") == "ue_single"
    models = pd.DataFrame({"model_id": ["ridge-subj01", "ue_multi", "ue_single-subj01"],
                           "kind": ["ridge", "ue_multi", "ue_single"]})
    store = SimpleNamespace(models=lambda: models, cluster_scopes=lambda i: ["joint"] if i == "ue_multi" else [])
    assert V.model_options(store) == ["ue_multi", "ue_single-subj01", "ridge-subj01"]
    assert V.model_options(store, kinds=["ridge"]) == ["ridge-subj01"]
    assert V.model_options(store, need_clusters=True) == ["ue_multi"]
    tc = V.transfer_summary(pd.DataFrame({"subject": ["s"] * 2, "method": ["ue"] * 2, "n_train": [10, 10],
                                          "median_r": [0.2, 0.4]}))
    assert tc.loc[0, "median_r"] == pytest.approx(0.3) and tc.loc[0, "n_seeds"] == 2


def test_image_captions_and_rdm_order():
    tags = pd.DataFrame({"faces": [0.9, 0.1, 0.0], "food": [0.6, 0.8, 0.1], "tags": ["", "", ""]},
                        index=["a", "b", "c"])
    assert V.tag_caption("a", tags) == "a · faces, food"
    assert V.tag_caption("zzz", tags) == "zzz"
    assert V.main_category(["a", "b", "c", "zzz"], tags) == ["faces", "food", "other", "other"]
    rdm = np.array([[0, 1, .1], [1, 0, 1], [.1, 1, 0]], float)
    order, cats = V.rdm_order(rdm, ["a", "b", "c"], "category", tags)
    assert cats == sorted(cats) and sorted(order.tolist()) == [0, 1, 2]
    order, _ = V.rdm_order(rdm, ["a", "b", "c"], "clustering", tags)
    assert abs(order.tolist().index(0) - order.tolist().index(2)) == 1  # the close pair stays together
    assert V.rdm_order(rdm, ["a", "b", "c"], "stored", tags)[0].tolist() == [0, 1, 2]
    assert V.source_label("layer:block2") == V.source_label(V.source_label("layer:block2")) == "layer: block2"
    rdms = pd.DataFrame({"rdm_id": ["r1"], "source": ["measured"], "roi": ["faces"], "subject": [None],
                         "metric": ["correlation"]})
    assert V.rdm_labels(rdms) == {"r1": "measured · faces · correlation"}
    assert V.pair_kinds(["largest", "weird_kind", "lowest"]) == [
        ("lowest", "Most similar pairs"), ("largest", "Most dissimilar pairs"), ("weird_kind", "Weird kind")]


def test_placeholder_picture():
    im = V.placeholder(64)
    assert im.size == (64, 64) and im.mode == "RGB"


def test_viewmodel_on_the_app_store(app_store):
    from brainviz.store.reader import Store

    with Store(app_store) as store:
        ov = V.overview(store)
        assert ov["simulated"] and not ov["headline"].empty
        assert {"model_id", "kind", "median_r", "top1", "top5"} <= set(ov["headline"].columns)
        assert ov["headline"]["top1"].between(0, 1).all()
        ids = V.k92_rdm_ids(store)
        assert ids and ids[0] == "k92|human-IT"
        keys = store.images()["image_key"].tolist()[:3]
        pics = V.thumbnails(store, keys + ["nope"])  # the store's JPEG bytes; a placeholder for an unknown key
        assert list(pics) == keys + ["nope"] and pics["nope"] is V.placeholder()
        assert all(isinstance(pics[k], bytes) and pics[k][:2] == b"\xff\xd8" for k in keys)
        assert V.thumbnail(store, keys[0]) == pics[keys[0]]


# --------------------------------------------------------------------------- exports
def test_exports_never_raise():
    png, err = exports.safe_render_png({"lh": np.zeros(3)}, surface="no-such-surface")
    assert png is None and "PNG button" in err
    data, err = exports.gifti_zip_or_error(object(), "x", False)
    assert data is None and err.startswith("The GIfTI export failed")


# --------------------------------------------------------------------------- page preamble (AppTest)
STORE_PAGES = [p for p in PAGES if p.script != HOME]


@pytest.mark.parametrize("page", STORE_PAGES, ids=[p.label for p in STORE_PAGES])
def test_preamble_with_a_broken_store_shows_a_message(page, tmp_path, monkeypatch):
    from tests.apptest import run, texts
    from tests.apptest import page as open_page

    bad = tmp_path / "broken.duckdb"
    bad.write_bytes(b"this is not a duckdb file" * 100)
    monkeypatch.setenv("BRAINVIZ_STORE", str(bad))
    at = run(open_page(Path(page.script).stem))  # run() asserts: no exception shown
    assert at.error and "could not be opened" in at.error[0].value and str(bad) in at.error[0].value
    assert "Traceback" not in texts(at)
    assert not at.title  # stopped before the page body


@pytest.mark.parametrize("page", STORE_PAGES, ids=[p.label for p in STORE_PAGES])
def test_preamble_heading_banner_and_sidebar(page, app_store, monkeypatch):
    from tests.apptest import page as open_page
    from tests.apptest import run

    monkeypatch.setenv("BRAINVIZ_STORE", str(app_store))
    at = run(open_page(Path(page.script).stem))
    assert at.title[0].value == page.label
    assert at.warning and at.warning[0].value.startswith("**SIMULATED data**")
    links = [e for e in at.sidebar.children.values() if e.type == "page_link"]
    assert [e.proto.label for e in links] == [p.label for p in PAGES]
    assert [e.proto.icon for e in links] == [p.icon for p in PAGES]


def test_cluster_scope_picks_the_stored_variant():
    variants = pd.DataFrame({
        "scope": ["joint", "joint@p50", "joint~smoothed", "joint+combined", "joint+combined~smoothed", "subj01"],
        "family": ["joint", "joint", "joint", "joint", "joint", "subj01"],
        "percentile": [75.0, 50.0, 75.0, 75.0, 75.0, 75.0],
        "profile": ["embeddings", "embeddings", "embeddings", "combined", "combined", "embeddings"],
        "smoothing": [0.0, 0.0, 0.5, 0.0, 0.5, 0.0]})
    assert V.cluster_scope(variants, "embeddings", "joint", 75.0, False) == "joint"
    assert V.cluster_scope(variants, "embeddings", "joint", 50.0, False) == "joint@p50"
    assert V.cluster_scope(variants, "embeddings", "joint", 75.0, True) == "joint~smoothed"
    assert V.cluster_scope(variants, "combined", "joint", 75.0, True) == "joint+combined~smoothed"
    assert V.cluster_scope(variants, "embeddings", "joint", 50.0, True) is None  # not computed
    assert V.cluster_scope(variants, "measured", "joint", 75.0, False) is None
    # no reliability estimate: NULL percentiles, the family's only threshold
    none = variants.assign(percentile=np.nan)
    assert V.cluster_scope(none.iloc[[0]], "embeddings", "joint", None, False) == "joint"
    assert V.profile_label("combined") == "embeddings + responses (combined)" and V.profile_label("x") == "x"


def test_scope_label_names_what_was_clustered():
    assert V.scope_label("joint:non-early") == "joint (reliable subjects together) · outside early visual cortex (V1-hV4)"
    assert V.scope_label("joint") == "joint (reliable subjects together) · whole visual cortex"
    assert V.scope_label("joint:PPA") == "joint (reliable subjects together) · inside PPA"
    assert V.scope_label("subj01") == "subj01 · outside early visual cortex (V1-hV4)"


def test_unclustered_reasons_test_the_scope_region_before_reliability():
    """Why a vertex is gray on the clusters page: outside the scope's region first (as precompute selects), then
    below the reliability threshold; without a reliability estimate nothing is called unreliable."""
    verts = pd.DataFrame({"roi_prf": ["V1v", "V1v", None, None, None], "roi_places": [None, None, "PPA", None, None]})
    labels = np.array([-1, 0, -1, -1, 1])
    rel = np.array([0.01, 0.5, 0.01, 0.9, 0.5])  # a V1 vertex of low reliability; a PPA one; a reliable one
    why = V.unclustered_reasons(labels, verts, "non-early", rel, 0.1)
    assert why.tolist() == [V.OUTSIDE_SCOPE, V.CLUSTERED, V.UNRELIABLE, V.OUTSIDE_SCOPE, V.CLUSTERED]
    why = V.unclustered_reasons(labels, verts, None, rel, 0.1)  # whole cortex: the V1 vertex is unreliable
    assert why.tolist() == [V.UNRELIABLE, V.CLUSTERED, V.UNRELIABLE, V.OUTSIDE_SCOPE, V.CLUSTERED]
    why = V.unclustered_reasons(labels, verts, "PPA", rel, float("nan"))  # no estimate: nothing unreliable
    assert why.tolist() == [V.OUTSIDE_SCOPE, V.CLUSTERED, V.OUTSIDE_SCOPE, V.OUTSIDE_SCOPE, V.CLUSTERED]


def test_tag_captions_in_one_pass_match_each_image_alone():
    """The selectbox captions of thousands of images come from one pass over the score matrix: categories above
    0.5, highest first, ties in column order, at most three, NaN never shown, untagged keys bare."""
    tags = pd.DataFrame({"faces": [0.9, 0.2, np.nan, 0.7], "bodies": [0.6, 0.1, 0.8, 0.7],
                         "food": [0.95, 0.0, 0.9, 0.7], "words": [0.55, 0.0, 0.2, 0.7], "tags": ["a", "b", "c", "d"]},
                        index=["i1", "i2", "i3", "i4"])
    got = V.tag_captions(["i1", "i2", "i3", "i4", "unknown"], tags)
    assert got == {"i1": "i1 · food, faces, bodies", "i2": "i2", "i3": "i3 · food, bodies",
                   "i4": "i4 · faces, bodies, food", "unknown": "unknown"}
    assert all(V.tag_caption(k, tags) == v for k, v in got.items())
    assert V.tag_captions(["i1"], None) == {"i1": "i1"}


def test_identification_summary_orders_approaches_by_best_top1_and_finds_identical_rankings():
    keys = [f"i{j}" for j in range(4)]
    rows = []
    for approach, sets in {"decoder": {"set1": [1, 3, 2, 4], "whole cortex": [2, 2, 2, 2]},
                           "encoder:ue_multi": {"set1": [1, 1, 1, 2], "set3": [1, 1, 2, 2],
                                                "whole cortex": [1, 1, 1, 2], "vote": [1, 1, 2, 2]}}.items():
        for s, ranks in sets.items():
            rows += [{"approach": approach, "roi_set": s, "image_key": k, "rank": r} for k, r in zip(keys, ranks)]
    ranks = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # stored order does not matter
    summary = V.identification_summary(ranks)
    assert summary["approach"].tolist()[:1] == ["encoder:ue_multi"]  # best top-1 (0.75) first
    assert summary[summary["approach"] == "encoder:ue_multi"]["roi_set"].tolist() == ["set1", "set3", "whole cortex",
                                                                                        "vote"]
    dec = summary.set_index(["approach", "roi_set"]).loc[("decoder", "set1")]
    assert dec["top1"] == 0.25 and dec["top5"] == 1.0 and dec["mean_rank"] == 2.5 and dec["n"] == 4
    assert V.identical_rankings(summary) == {("set1", "whole cortex"): ["encoder:ue_multi"],
                                             ("set3", "vote"): ["encoder:ue_multi"]}
    rois = pd.DataFrame({"roi_set": ["set1", "set1", "set2", "set3"], "n_vertices": [60, 40, 100, 99]})
    assert V.sets_covering_every_vertex(rois, 100) == {"set1"}  # set2 (overlapping category ROIs) never counts
    assert V.sets_covering_every_vertex(rois.iloc[:0], 100) == set()


def test_vertex_values_and_roi_ceilings_on_the_scale_of_r():
    vertices = pd.DataFrame({"vertex": range(4), "roi_faces": ["FFA-1", "FFA-1", None, None],
                             "roi_prf": [None, None, "V1v", "V1v"], "roi_bodies": None, "roi_places": None,
                             "roi_words": None, "roi_streams": None})
    vm = pd.DataFrame({"vertex": [0, 1, 2], "r": [0.2, 0.4, 0.1], "nc": [0.25, 0.49, -0.1]})
    assert np.allclose(V.vertex_values(vm, "r", 4), [0.2, 0.4, 0.1, np.nan], equal_nan=True)
    assert np.allclose(V.vertex_values(vm, "nc", 4), [0.5, 0.7, 0.0, np.nan], equal_nan=True)  # √nc, clipped at 0
    ceil = V.roi_ceilings(vm, vertices)
    assert np.isclose(ceil["FFA-1"], np.sqrt(0.37))  # median of nc, then √
    assert np.isclose(ceil["V1v"], 0.0) and np.isclose(ceil["all"], 0.5)


def test_bounded_points_samples_each_cluster_in_proportion():
    pts = pd.DataFrame({"cluster": np.repeat([0, 1, 2], [9000, 2990, 10]), "x": np.arange(12000.0)})
    assert V.bounded_points(pts, max_points=20000) is pts  # fits: unchanged
    got = V.bounded_points(pts, max_points=1200, seed=0)
    assert len(got) <= 1200 and got["x"].is_monotonic_increasing  # order kept
    assert got.groupby("cluster").size().to_dict() == {0: 900, 1: 299, 2: 1}  # proportional, every cluster kept
    assert got.equals(V.bounded_points(pts, max_points=1200, seed=0))  # deterministic
