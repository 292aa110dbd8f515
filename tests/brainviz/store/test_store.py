"""The DuckDB store: schema, atomic writer, read-only reader."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from brainviz.errors import BrainVizDataError
from brainviz.store.reader import REBUILD, Store
from brainviz.store.schema import SCHEMA_VERSION, TABLES, TAG_CATEGORIES
from brainviz.store.writer import StoreWriter

RNG = np.random.default_rng(0)
SUBJECTS = {"subj01": (7, 5), "subj02": (4, 6)}  # n_lh, n_rh
E, D = 12, 9
KEYS = [f"nsd-{i:05d}" for i in range(1, 9)] + ["k92-00001", "k92-00002"]


def _vertex_table(n_lh: int, n_rh: int) -> pd.DataFrame:
    rows = []
    for hemi, n in (("lh", n_lh), ("rh", n_rh)):
        for i in range(n):
            rows.append({"hemi": hemi, "index": i, "surface_index": 10 * i, "fsaverage5_index": 10 * i,
                         "prf-visualrois": "V1v" if i == 0 else "Unknown", "floc-faces": "FFA-1" if i == 1 else "Unknown",
                         "floc-places": "PPA" if i == 2 else "Unknown", "streams": "ventral"})
    return pd.DataFrame(rows)


def _build(path: Path) -> dict:
    """Write one of everything; return what was written."""
    d: dict = {"emb": {}, "pred": {}, "xy": {}}
    with StoreWriter(path) as w:
        w.add_dataset("demo", "Demo brain", "/data/demo", simulated=True, surface="fsaverage5",
                      manifest={"seed": 1, "subjects": list(SUBJECTS)})
        w.add_images(KEYS, [f"/img/{k}.png" for k in KEYS], dataset_id="demo")
        w.add_images(KEYS[:3], ["dup"] * 3)  # already stored: skipped
        tags = pd.DataFrame(RNG.random((len(KEYS), len(TAG_CATEGORIES))), index=KEYS,
                            columns=list(TAG_CATEGORIES)).astype(np.float32)
        d["tags"] = tags
        w.add_image_tags(tags, tags={k: f"tag {k}" for k in KEYS})
        w.add_model("ue_multi", "ue_multi", list(SUBJECTS), backbone="effnet",
                    config={"E": E, "lr": np.float32(0.5)}, provenance={"seed": 3})
        w.add_model("ridge01", "ridge", ["subj01"])
        from brainviz.thumbnails import thumbnail

        d["thumbs"] = {k: thumbnail(RNG.integers(0, 255, (6, 9, 3), dtype=np.uint8)) for k in KEYS}
        w.add_thumbnails(KEYS, list(d["thumbs"].values()))
        w.add_thumbnails(KEYS[:2], list(d["thumbs"].values())[:2])  # already stored: skipped
        w.add_checkpoint("ue_multi", b"\x00bytes of a checkpoint", "test/1")
        for s, (n_lh, n_rh) in SUBJECTS.items():
            v = n_lh + n_rh
            w.add_subject(s, "demo", "nsd", n_train=6, n_test=2, n_lh=n_lh, n_rh=n_rh)
            w.add_vertices(s, _vertex_table(n_lh, n_rh), planted_region=["faces"] * 2 + [None] * (v - 2))
            w.add_image_splits(s, "train", KEYS[:6])
            w.add_image_splits(s, "test", KEYS[6:8])
            d["emb"][s] = (RNG.standard_normal((v, E)) * 1e3).astype(np.float32)
            w.add_voxel_embeddings("ue_multi", s, d["emb"][s])
            d["xy"][s] = RNG.standard_normal((v, 2)).astype(np.float32)
            w.add_embedding_map("ue_multi", s, d["xy"][s])
            w.add_clusters("ue_multi", "joint", 3, s, np.arange(v) % 3)
            w.add_clusters("ue_multi", "joint", 2, s, np.arange(v) % 2)
            w.add_cluster_top_images("ue_multi", "joint", 3, s, "predicted", pd.DataFrame(
                {"cluster": [0, 0, 1], "rank": [1, 2, 1], "image_key": KEYS[:3], "score": [3.0, 2.0, 1.0]}))
            w.add_vertex_metrics("ue_multi", s, RNG.random(v), nc=RNG.random(v), nna=np.full(v, np.nan))
            w.add_retrieval("ue_multi", s, n_candidates=2, mean_rank=1.5, top1=0.5, top5=1.0)
            d["pred"][s] = RNG.standard_normal((len(KEYS), v)).astype(np.float32)
            w.add_predictions("ue_multi", s, KEYS, d["pred"][s])
        w.add_clusters("ue_multi", "subj01:PPA", 2, "subj01", np.array([0, 1]), vertices=np.array([2, 9]))
        w.add_cluster_descriptions("ue_multi", "joint", 3, pd.DataFrame(
            {"cluster": [0, 1], "n_vertices": [5, 4], "description": ["faces 9/10", "food 3/10"],
             "source": "predicted", "enrichment": [{"faces": {"count": 9}}, {}]}))
        w.write_table("roi_metrics", pd.DataFrame({"model_id": ["ue_multi"], "subject": ["subj01"], "roi": ["FFA-1"],
                                                   "median_r": [0.4], "n": [1]}))
        d["rdm"] = RNG.random((4, 4)).astype(np.float32)
        d["rdm"] = d["rdm"] + d["rdm"].T
        np.fill_diagonal(d["rdm"], 0)
        w.add_rdm("subj01/FFA/measured", KEYS[:4], d["rdm"], metric="correlation", source="measured",
                  subject="subj01", roi="FFA")
        w.add_rdm("layer:conv1", KEYS[:3], np.array([0.1, 0.2, 0.3]), metric="euclidean", source="layer:conv1")
        w.add_extreme_pairs("subj01/FFA/measured", pd.DataFrame(
            {"kind": ["most_similar", "most_dissimilar"], "rank": [1, 1], "image_a": KEYS[:2],
             "image_b": KEYS[2:4], "value": [0.1, 1.9]}))
        w.write_table("rsa", pd.DataFrame({"rdm_a": ["subj01/FFA/measured"], "rdm_b": ["layer:conv1"],
                                           "method": ["spearman"], "value": [0.3], "p_value": [0.01]}))
        w.write_table("k92_rsa", pd.DataFrame({"model": ["effnet"], "method": ["kendall_tau_a"], "value": [0.2],
                                               "nc_lower": [0.3], "nc_upper": [0.4]}))
        w.write_table("pair_model", pd.DataFrame({"split": ["test"], "metric": ["spearman"], "value": [0.5],
                                                  "baseline": [0.1]}))
        w.write_table("decoding", pd.DataFrame({"subject": ["subj01"], "roi_set": ["set1"], "image_key": [KEYS[6]],
                                                "rank": [1], "top_keys": [[KEYS[6], KEYS[7]]], "cosine": [0.7]}))
        w.write_table("k92_fit", pd.DataFrame({"model": ["mix of all layers (fitted)"], "method": ["kendall_tau_a"],
                                               "value": [0.17], "nc_lower": [0.25], "weights": [{"block13": 1.0}]}))
        w.write_table("decoding_rois", pd.DataFrame({"subject": ["subj01"] * 2, "roi_set": ["set2"] * 2,
                                                     "roi": ["OFA", "mTL-faces"], "n_vertices": [12, 0]}))
        w.write_table("decoding_weights", pd.DataFrame({"subject": ["subj01"], "approach": ["decoder"],
                                                        "roi_set": ["set3"], "weight": [1.0]}))
        w.write_table("vertex_reliability", pd.DataFrame({"subject": "subj01", "vertex": np.arange(12, dtype=np.int32),
                                                          "nc": np.linspace(0, 0.55, 12).astype(np.float32),
                                                          "source": "training repeats"}))
        w.write_table("cluster_settings", pd.DataFrame({"model_id": "ue_multi", "scope": "joint", "subject": list(SUBJECTS),
                                                        "base": "joint", "region": None, "percentile": 75.0,
                                                        "nc_threshold": [0.412, 0.38], "chosen_k": 3,
                                                        "k_rule": "stability >= 0.75", "is_default": True}))
        w.write_table("cluster_variants", pd.DataFrame({
            "model_id": "ue_multi", "scope": ["joint", "joint+combined~smoothed"], "family": "joint", "percentile": 75.0,
            "profile": ["embeddings", "combined"], "n_images": [None, 40], "measured_share": [None, 0.5],
            "smoothing": [0.0, 0.5], "smoothing_radius_mm": [None, 5.0], "with_neighbours": [None, 0.8],
            "profile_default": [True, False], "is_default": [True, False]}))
        w.write_table("cluster_quality", pd.DataFrame({"model_id": "ue_multi", "scope": "joint", "k": [2, 3, 3],
                                                       "metric": ["stability", "stability", "ari"],
                                                       "value": [0.9, 0.8, 0.5],
                                                       "simulation_check": [False, False, True]}))
        w.write_table("transfer_curve", pd.DataFrame({"subject": ["subj05"] * 2, "n_train": [10, 20],
                                                      "method": ["ue_transfer"] * 2, "median_r": [0.1, 0.2],
                                                      "seed": [0, 0]}))
        w.write_table("skipped_analyses", pd.DataFrame({"analysis": ["transfer curve"], "subject": [None],
                                                        "reason": ["one subject"], "enable": ["two subjects"]}))
        w.write_table("analysis_settings", pd.DataFrame({"name": ["min_stability", "cluster_ks", "cluster_ks"],
                                                         "position": pd.array([None, 0, 1], dtype="Int32"),
                                                         "value": [0.75, 3.0, 5.0]}))
        d["feat"] = RNG.standard_normal((len(KEYS), D)).astype(np.float32)
        w.add_image_features("effnet", KEYS, d["feat"])
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "brainviz.duckdb"
    d = _build(path)
    return path, d


def _tree(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_commit_leaves_only_the_store(built):
    path, _ = built
    assert _tree(path.parent) == ["brainviz.duckdb"]


def test_round_trip_every_table(built):
    path, d = built
    with Store(path) as st:
        summ = st.summary()
        assert summ["schema_version"] == SCHEMA_VERSION and summ["simulated"] is True
        assert summ["subjects"] == list(SUBJECTS) and summ["models"] == ["ridge01", "ue_multi"]
        assert set(summ["rows"]) == set(TABLES)
        assert all(n > 0 for n in summ["rows"].values())
        assert st.meta()["dim:voxel_embeddings"] == str(E)
        assert st.thumbnails(KEYS) == {k: t.data for k, t in d["thumbs"].items()}
        assert st.checkpoint("ue_multi") == b"\x00bytes of a checkpoint"
        assert st.analysis_settings() == {"min_stability": 0.75, "cluster_ks": (3.0, 5.0)}
        rel = st.vertex_reliability("subj01")
        assert rel.shape == (12,) and np.allclose(rel, np.linspace(0, 0.55, 12))
        assert np.isnan(st.vertex_reliability("subj02")).all()
        cs = st.cluster_settings("ue_multi")
        assert cs["subject"].tolist() == list(SUBJECTS) and cs["chosen_k"].tolist() == [3, 3]
        assert cs["region"].isna().all() and cs["is_default"].all()
        cv = st.cluster_variants("ue_multi")
        assert cv["scope"].tolist() == ["joint", "joint+combined~smoothed"]
        assert cv["profile"].tolist() == ["embeddings", "combined"] and cv["smoothing"].tolist() == [0.0, 0.5]
        assert pd.isna(cv.loc[0, "n_images"]) and cv.loc[1, "n_images"] == 40 and cv["is_default"].tolist() == [True, False]
        cq = st.cluster_quality("ue_multi", "joint")
        assert cq[["k", "metric"]].values.tolist() == [[2, "stability"], [3, "ari"], [3, "stability"]]
        assert cq["simulation_check"].tolist() == [False, True, False]
        ds = st.datasets()
        assert ds.loc[0, "manifest"] == {"seed": 1, "subjects": list(SUBJECTS)}

        subj = st.subjects()
        assert subj["subject"].tolist() == list(SUBJECTS) and subj["n_lh"].tolist() == [7, 4]
        vt = st.vertices("subj01")
        assert len(vt) == 12 and vt["vertex"].tolist() == list(range(12))
        assert vt["hemi"].tolist() == ["lh"] * 7 + ["rh"] * 5
        assert vt.loc[0, "roi_prf"] == "V1v" and pd.isna(vt.loc[3, "roi_prf"])  # Unknown -> NULL
        assert vt.loc[1, "roi_faces"] == "FFA-1" and vt["roi_words"].isna().all()
        assert vt["planted_region"].tolist()[:2] == ["faces", "faces"] and vt["planted_region"][2:].isna().all()

        imgs = st.images()
        assert imgs["image_key"].tolist() == sorted(KEYS)
        assert st.images([KEYS[2], KEYS[0]])["path"].tolist() == [f"/img/{KEYS[2]}.png", f"/img/{KEYS[0]}.png"]
        assert st.images(["k92-00001"])["dataset"].item() == "k92"
        with pytest.raises(BrainVizDataError):
            st.images(["nsd-99999"])
        sp = st.image_splits("subj02", "test")
        assert sp["image_key"].tolist() == KEYS[6:8] and sp["row"].tolist() == [0, 1]
        tags = st.image_tags()
        assert list(tags.index) == sorted(KEYS)
        np.testing.assert_array_equal(tags.loc[KEYS, list(TAG_CATEGORIES)].to_numpy(np.float32), d["tags"].to_numpy())
        assert tags.loc[KEYS[0], "tags"] == f"tag {KEYS[0]}"

        models = st.models()
        assert models["model_id"].tolist() == ["ridge01", "ue_multi"]
        ue = st.models(kind="ue_multi").iloc[0]
        assert ue["config"] == {"E": E, "lr": 0.5} and list(ue["subjects"]) == list(SUBJECTS)

        for s in SUBJECTS:
            emb = st.voxel_embeddings("ue_multi", s)
            assert emb.dtype == np.float32 and emb.tobytes() == d["emb"][s].tobytes()  # bit-exact
            m = st.embedding_map("ue_multi", s)
            np.testing.assert_array_equal(m[["x", "y"]].to_numpy(np.float32), d["xy"][s])
            order = [KEYS.index(k) for k in st.prediction_keys("ue_multi", s)]
            assert st.predictions("ue_multi", s).tobytes() == d["pred"][s][order].tobytes()
        assert len(st.embedding_map("ue_multi")) == 12 + 10
        with pytest.raises(BrainVizDataError, match="voxel embeddings"):
            st.voxel_embeddings("ridge01", "subj01")

        assert st.prediction_keys("ue_multi", "subj01") == sorted(KEYS)
        sub = st.predictions("ue_multi", "subj02", [KEYS[5], KEYS[1]])
        np.testing.assert_array_equal(sub, d["pred"]["subj02"][[5, 1]])
        assert st.predictions("ue_multi", "subj02", []).shape == (0, 10)
        with pytest.raises(BrainVizDataError):
            st.predictions("ue_multi", "subj02", ["nsd-99999"])

        assert st.cluster_scopes("ue_multi") == ["joint", "subj01:PPA"]
        assert st.available_k("ue_multi", "joint") == [2, 3]
        cl = st.clusters("ue_multi", "joint", 3)
        assert list(cl.columns) == ["subject", "vertex", "cluster"] and len(cl) == 22
        assert cl[cl.subject == "subj02"]["cluster"].tolist() == [i % 3 for i in range(10)]
        lab = st.cluster_labels("ue_multi", "subj01:PPA", 2, "subj01")
        assert lab.shape == (12,) and lab[2] == 0 and lab[9] == 1 and (np.delete(lab, [2, 9]) == -1).all()
        top = st.cluster_top_images("ue_multi", "joint", 3, subject="subj01")
        assert top["image_key"].tolist() == KEYS[:3] and "path" not in top  # pictures: Store.thumbnails
        assert list(st.thumbnails(top["image_key"])) == KEYS[:3]
        assert len(st.cluster_top_images("ue_multi", "joint", 3, cluster=0)) == 4
        desc = st.cluster_descriptions("ue_multi", "joint", 3)
        assert desc["description"].tolist() == ["faces 9/10", "food 3/10"]
        assert desc.loc[0, "enrichment"] == {"faces": {"count": 9}}

        vm = st.vertex_metrics("ue_multi", "subj02")
        assert len(vm) == 10 and vm["nna"].isna().all()
        assert st.roi_metrics("ue_multi")["median_r"].tolist() == pytest.approx([0.4])
        assert st.retrieval(subject="subj02")["top1"].tolist() == [0.5]

        rd = st.list_rdms()
        assert rd["rdm_id"].tolist() == ["layer:conv1", "subj01/FFA/measured"]
        mat, keys = st.rdm("subj01/FFA/measured")
        assert keys == KEYS[:4]
        np.testing.assert_array_equal(mat, d["rdm"])
        mat, _ = st.rdm("layer:conv1")
        np.testing.assert_allclose(mat, [[0, .1, .2], [.1, 0, .3], [.2, .3, 0]], rtol=1e-6)
        ep = st.extreme_pairs("subj01/FFA/measured")
        assert ep["kind"].tolist() == ["most_dissimilar", "most_similar"]
        assert len(st.rsa("layer:conv1")) == 1 and pd.isna(st.rsa().loc[0, "nc_lower"])
        assert st.k92_rsa()["method"].tolist() == ["kendall_tau_a"]
        assert st.pair_model()["baseline"].tolist() == pytest.approx([0.1])
        dec = st.decoding("subj01")
        assert list(dec.loc[0, "top_keys"]) == [KEYS[6], KEYS[7]]
        assert st.transfer_curve("subj05")["n_train"].tolist() == [10, 20]
        skipped = st.skipped_analyses()
        assert skipped.analysis.tolist() == ["transfer curve"] and skipped.subject.isna().all()
        assert set(st.evaluation().values()) == {"test"}  # the default: test fMRI

        assert st.backbones() == ["effnet"]
        keys, feat = st.image_features("effnet")
        order = [KEYS.index(k) for k in keys]
        assert feat.tobytes() == d["feat"][order].tobytes()
        keys, feat = st.image_features("effnet", KEYS[:2])
        assert keys == KEYS[:2] and feat.tobytes() == d["feat"][:2].tobytes()
        assert not st.changed_on_disk()


def test_reader_is_read_only(built):
    path, _ = built
    st = Store(path)
    with pytest.raises(duckdb.Error):
        st._con.execute("CREATE TABLE x (a INTEGER)")
    with pytest.raises(duckdb.Error):
        st._con.execute("DELETE FROM meta")
    st.close()


def test_reader_shared_between_threads(built):
    path, d = built
    st = Store(path)
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(5):
                assert st.voxel_embeddings("ue_multi", "subj01").tobytes() == d["emb"]["subj01"].tobytes()
                assert len(st.clusters("ue_multi", "joint", 3)) == 22
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st.close()
    assert not errors


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failed_write_keeps_previous_store(tmp_path):
    path = tmp_path / "brainviz.duckdb"
    with StoreWriter(path) as w:
        w.add_model("m", "ridge", ["subj01"])
    before = _digest(path)
    with pytest.raises(RuntimeError, match="boom"):
        with StoreWriter(path) as w:
            w.add_model("m2", "ridge", ["subj01"])
            w.add_voxel_embeddings("m2", "subj01", np.ones((3, 4), np.float32))
            raise RuntimeError("boom")
    assert _digest(path) == before
    assert _tree(tmp_path) == ["brainviz.duckdb"]
    # a bad call inside the writer (error from the writer itself) aborts too
    with pytest.raises(BrainVizDataError):
        with StoreWriter(path) as w:
            w.add_voxel_embeddings("m2", "subj01", np.full((3, 4), np.nan, np.float32))
    assert _digest(path) == before and _tree(tmp_path) == ["brainviz.duckdb"]
    with Store(path) as st:
        assert st.models()["model_id"].tolist() == ["m"]


def test_abort_and_commit_replace(tmp_path):
    path = tmp_path / "s.duckdb"
    w = StoreWriter(path)
    assert w.tmp_path.exists() and w.tmp_path.parent == tmp_path
    w.abort()
    w.abort()  # idempotent
    assert not path.exists() and _tree(tmp_path) == []
    with pytest.raises(BrainVizDataError):
        w.add_model("m", "ridge", [])
    with StoreWriter(path) as w:
        w.add_model("old", "ridge", ["subj01"])
    st_old = Store(path)
    with StoreWriter(path) as w:
        w.add_model("new", "ridge", ["subj01"])
    assert st_old.changed_on_disk()
    # issue 15: an open Store switches to the replaced file at its next read
    assert st_old.models()["model_id"].tolist() == ["new"]
    assert not st_old.changed_on_disk()
    st_old.close()
    with Store(path) as st:
        assert st.models()["model_id"].tolist() == ["new"] and st.simulated is False
    assert _tree(tmp_path) == ["s.duckdb"]


def test_writer_dropped_without_commit_cleans_up(tmp_path):
    w = StoreWriter(tmp_path / "s.duckdb")
    tmp = w.tmp_path
    del w
    assert not tmp.exists() and _tree(tmp_path) == []


def test_writer_rejects_bad_input(tmp_path):
    with StoreWriter(tmp_path / "s.duckdb") as w:
        with pytest.raises(BrainVizDataError, match="unknown table"):
            w.write_table("nope", pd.DataFrame({"a": [1]}))
        with pytest.raises(BrainVizDataError, match="unknown columns"):
            w.write_table("retrieval", pd.DataFrame({"model_id": ["m"], "bogus": [1]}))
        with pytest.raises(BrainVizDataError, match="missing required"):
            w.write_table("retrieval", pd.DataFrame({"model_id": ["m"]}))
        with pytest.raises(BrainVizDataError, match="kind"):
            w.add_model("m", "svm", [])
        w.add_voxel_embeddings("m", "subj01", np.zeros((2, 4), np.float32))
        with pytest.raises(BrainVizDataError, match="size 4"):
            w.add_voxel_embeddings("m", "subj02", np.zeros((2, 5), np.float32))
        with pytest.raises(BrainVizDataError, match="shape"):
            w.add_rdm("r", ["a-1", "a-2"], np.zeros((3, 3)), metric="euclidean", source="measured")
        with pytest.raises(BrainVizDataError, match="labels must be < k"):
            w.add_clusters("m", "joint", 2, "subj01", np.array([0, 2]))


def test_missing_file_and_not_a_store(tmp_path):
    missing = tmp_path / "none.duckdb"
    with pytest.raises(BrainVizDataError) as ei:
        Store(missing)
    assert str(missing) in str(ei.value) and REBUILD in str(ei.value)
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BrainVizDataError, match="precompute all"):
        Store(junk)
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(BrainVizDataError, match="no meta table"):
        Store(empty)


def test_schema_version_mismatch(tmp_path):
    path = tmp_path / "s.duckdb"
    with StoreWriter(path) as w:
        w.set_meta(schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(BrainVizDataError) as ei:
        Store(path)
    msg = str(ei.value)
    assert str(path) in msg and f"version {SCHEMA_VERSION + 1}" in msg and REBUILD in msg


def test_schema_documents_every_table():
    for t in TABLES.values():
        assert t.doc and all(c.doc for c in t.columns)
    import brainviz.store.schema as schema
    for name in TABLES:
        assert name in schema.__doc__


def test_reader_keeps_small_results_per_file_version(tmp_path, monkeypatch):
    """A page reruns the same reads on every widget change: a file version answers them once; a replaced file
    answers anew; a result over the per-item bound is not kept."""
    from brainviz.store import reader as R

    path = tmp_path / "s.duckdb"
    with StoreWriter(path) as w:
        w.add_model("old", "ridge", ["subj01"])
    st = Store(path)
    first = st._select("models", ["model_id"])
    assert st._select("models", ["model_id"]) is first  # the kept result, not a new query
    assert st._select("models", ["model_id"], model_id="old") is not first  # other parameters, other result
    with StoreWriter(path) as w:
        w.add_model("new", "ridge", ["subj01"])
    assert st.models()["model_id"].tolist() == ["new"]  # the replaced file is read, not the kept result
    assert st._select("models", ["model_id"]).column(0).to_pylist() == ["new"]
    monkeypatch.setattr(R, "RESULT_CACHE_ITEM_BYTES", 0)
    big = st._select("models", ["model_id", "kind"])
    assert st._select("models", ["model_id", "kind"]) is not big
    st.close()


def test_reader_answers_a_kept_read_without_a_cursor_and_hands_out_copies(tmp_path, monkeypatch):
    """A repeated read opens no cursor and converts nothing again; each caller gets its own frame (changing it
    leaves the next read as stored); a replaced file is read anew."""
    path = tmp_path / "s.duckdb"
    with StoreWriter(path) as w:
        w.add_model("old", "ridge", ["subj01"])
    st = Store(path)
    first = st.models()
    opened = []
    real_cursor = Store._cursor
    monkeypatch.setattr(Store, "_cursor", lambda self: opened.append(1) or real_cursor(self))
    converted = []
    real_df_of = Store._df_of
    monkeypatch.setattr(Store, "_df_of", lambda self, *a: converted.append(1) or real_df_of(self, *a))
    again = st.models()
    assert not opened and not converted
    assert again is not first and again.equals(first)
    again.loc[0, "model_id"] = "changed"
    assert st.models()["model_id"].tolist() == ["old"]
    with StoreWriter(path) as w:
        w.add_model("new", "ridge", ["subj01"])
    assert st.models()["model_id"].tolist() == ["new"] and opened and converted
    st.close()
