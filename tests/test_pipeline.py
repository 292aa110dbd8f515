"""End to end: a tiny demo brain -> `precompute all --quick` -> the DuckDB store -> the reader API."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from brainviz.demo_brain import build_demo_brain
from brainviz.store.reader import Store
from precompute.cli import main


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    demo = build_demo_brain(root / "demo", n_subjects=2, include_vim1=True, max_images=100, progress=False)
    args = ["--dataset", str(demo), "--store", str(root / "store.duckdb"), "--work-dir", str(root / "work"),
            "--cache-dir", str(root / "cache"), "--quick", "--n-perm", "10"]
    assert main(["all", *args]) == 0
    return root, args


def test_store_holds_every_analysis(built):
    root, _ = built
    with Store(root / "store.duckdb") as st:
        summary = st.summary()
        assert summary["simulated"] is True
        assert set(st.subjects().subject) == {"subj01", "subj02", "subj03"}
        kinds = set(st.models().kind)
        assert {"ridge", "ue_single", "ue_multi", "ue_transfer"} <= kinds
        emb = st.voxel_embeddings("ue_multi", "subj01")
        assert emb.shape == (st.n_vertices("subj01"), 32) and np.isfinite(emb).all()
        assert st.available_k("ue_multi", "joint")
        k = st.available_k("ue_multi", "joint")[0]
        labels = st.cluster_labels("ue_multi", "joint", k, "subj01")
        assert labels.shape == (st.n_vertices("subj01"),) and labels.max() < k
        assert len(st.cluster_descriptions("ue_multi", "joint", k)) == k
        assert len(st.cluster_top_images("ue_multi", "subj01", k, source="measured"))
        assert len(st.embedding_map("ue_multi", "subj01")) == st.n_vertices("subj01")
        vm = st.vertex_metrics("ue_multi", "subj01")
        assert len(vm) == st.n_vertices("subj01") and vm.nc.between(0, 1).all()
        assert len(st.retrieval()) and len(st.roi_metrics())
        rdms = st.list_rdms(subject="subj01")
        assert {"measured", "predicted"} <= set(rdms.source)
        square, keys = st.rdm(rdms.rdm_id.iloc[0])
        assert square.shape == (len(keys), len(keys)) and np.allclose(square, square.T)
        assert len(st.extreme_pairs(rdms.rdm_id.iloc[0])) > 0
        assert len(st.rsa()) and len(st.k92_rsa()) > 5 and len(st.pair_model())
        assert set(st.decoding(subject="subj01").roi_set) >= {"set1", "set2", "set3", "vote"}
        tc = st.transfer_curve()
        assert set(tc.method) == {"ue_transfer", "ridge"}
        assert st.predictions("ridge-subj01", "subj01").shape[1] == st.n_vertices("subj01")


def test_failed_rerun_keeps_last_good_store(built, monkeypatch):
    root, args = built
    store = root / "store.duckdb"
    before = hashlib.sha256(store.read_bytes()).hexdigest()

    def boom(*a, **k):
        raise RuntimeError("simulated crash in the middle of the analyses")

    monkeypatch.setattr("brainviz.pipeline.analyses.write_clusters", boom)
    with pytest.raises(RuntimeError):
        main(["analyze", *args])
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not [p for p in root.iterdir() if p.name.startswith(".store.duckdb")]
    with Store(store) as st:
        assert len(st.decoding())


def test_inspect_demo_brain(built, capsys):
    root, _ = built
    assert main(["inspect", str(root / "demo")]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "fsaverage5" in out and "FFA-1" in out
