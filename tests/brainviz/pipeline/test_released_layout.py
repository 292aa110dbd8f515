"""Real NSD data in EXACTLY the released Algonauts 2023 layout, end to end: no manifest, no test fMRI, no
repetitions, 0-based NSD ids, fsaverage vertices with challenge masks (tests/released_layout.py).

`precompute inspect` and `precompute all` (quick settings; default settings in one slow test) run on it, the
evaluation uses held-out training images (brainviz.splits), the skipped analyses say why, and every page
renders without an error box."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from brainviz.data.algonauts import load_dataset
from brainviz.demo_brain import build_demo_brain
from brainviz.names import N_FSAVERAGE, N_FSAVERAGE5
from brainviz.store.reader import Store
from tests.released_layout import released_layout, write_noise_ceilings
from tests import ROOT
from tests.precompute_cli import run_precompute


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("released")
    demo = build_demo_brain(root / "demo", n_subjects=3, include_vim1=False, max_images=240, seed=5, progress=False)
    return released_layout(demo, root / "algonauts2023", extra_per_hemi=600, seed=5)


@pytest.fixture(scope="module")
def built(released, tmp_path_factory):
    root = tmp_path_factory.mktemp("released_run")
    args = ["--dataset", str(released), "--store", str(root / "store.duckdb"), "--work-dir", str(root / "work"),
            "--cache-dir", str(root / "cache"), "--n-perm", "10"]
    rc, out, err = run_precompute(["all", *args, "--quick"])
    assert rc == 0, err[-3000:]
    return root, args, out


def test_fixture_is_exactly_the_released_layout(released):
    assert not (released / "manifest.json").exists() and not (released / "ground_truth").exists()
    ds = load_dataset(released)
    assert not ds.simulated
    for s in ds.subjects.values():
        assert s.surface == "fsaverage" and not s.has_responses("test") and not s.has_repeats("train")
        assert s.test_images and all(p.name.startswith("test-") for p in s.test_images)
        mask = s.surface_masks["lh"]
        assert mask.shape == (N_FSAVERAGE,) and (np.flatnonzero(mask) >= N_FSAVERAGE5).sum() == 600
        # 0-based 73k ids, as released: every name is the shared1000 image of that 0-based nsd_id
        from brainviz.catalog import image_key
        from brainviz.data.images import load_nsd_shared1000
        shared = load_nsd_shared1000()
        assert {image_key(p) for p in s.train_images} <= set(shared.keys)


def test_inspect_says_how_it_will_evaluate(released):
    rc, out, err = run_precompute(["inspect", str(released)])
    assert rc == 0, err
    assert "real (no manifest" in out and "test responses: no" in out
    assert "training images held out" in out and "no test fMRI" in out
    assert "reliability threshold of the clusters" in out and "--noise-ceiling DIR" in out


def test_all_runs_and_evaluates_on_held_out_images(built, released):
    root, _, out = built
    assert "training images held out" in out and "skipped (why, and what would enable it)" in out
    ds = load_dataset(released)
    with Store(root / "store.duckdb") as st:
        subj = st.subjects()
        assert set(subj.evaluation) == {"held-out"}
        assert (subj.n_train + subj.n_test == [len(ds.subjects[s].train_images) for s in subj.subject]).all()
        # evaluated on images never fitted, the same images in every subject
        held = {s: set(st.image_splits(s, "test").image_key) for s in subj.subject}
        fitted = {s: set(st.image_splits(s, "train").image_key) for s in subj.subject}
        assert all(not held[s] & fitted[s] for s in held) and len({frozenset(h) for h in held.values()}) == 1
        ret = st.retrieval()
        assert len(ret) and (ret.n_candidates == subj.n_test.iloc[0]).all()
        vm = st.vertex_metrics("ridge-subj01", "subj01")
        assert len(vm) == st.n_vertices("subj01") and vm.r.median() > 0.1  # the responses carry signal
        assert vm.nc.isna().all() and vm.nna.isna().all()  # no reliability estimate: not invented
        assert len(st.transfer_curve()) and len(st.rsa()) and len(st.decoding()) and len(st.pair_model())
        # clusters without reliability: every vertex of a scope, no duplicate threshold scopes, NULL thresholds
        settings = st.cluster_settings("ue_multi")
        assert not settings.scope.str.contains("@p").any()
        assert settings.nc_threshold.isna().all() and settings.percentile.isna().all()
        k = int(settings.query("scope == 'joint'").chosen_k.iloc[0])
        assert (st.cluster_labels("ue_multi", "joint", k, "subj01") >= 0).all()
        # the default view clusters the combined profile, which needs no test fMRI: measured responses where a
        # subject saw the image, the encoder's predictions where it did not (the three subjects share only 27
        # of their images, so the profile takes every image any of them saw)
        variants = st.cluster_variants("ue_multi").set_index("scope")
        d = variants[variants.is_default.astype(bool)]
        assert d.index.tolist() == ["joint:non-early+combined"] and d.profile.iloc[0] == "combined"
        assert 0.3 < d.measured_share.iloc[0] < 0.9 and d.n_images.iloc[0] > 100
        kd = int(settings.query("scope == 'joint:non-early+combined'").chosen_k.iloc[0])
        assert (st.cluster_labels("ue_multi", "joint:non-early+combined", kd, "subj01") >= 0).any()
        # smoothing on the fsaverage5 mesh: the 600 fsaverage-only vertices per hemisphere have no neighbours
        assert 0 < variants.loc["joint:non-early~smoothed", "with_neighbours"] < 1
        skipped = st.skipped_analyses()
        assert {"reliability threshold of the clusters (every vertex is clustered)",
                "noise ceiling and noise-normalized accuracy",
                "within-subject RDM noise ceiling and cross-validated RDMs"} <= set(skipped.analysis)
        assert (skipped.enable.str.len() > 10).all()
        # tags found through the released 0-based names
        assert st.image_tags().faces.notna().sum() > 100
        meta = st.meta()
    assert json.loads(meta["headline"])["encoders"]


def test_published_noise_ceilings_are_used_when_they_match(built, released, tmp_path):
    root, args, _ = built
    nc_dir = write_noise_ceilings(released, tmp_path / "nc")
    store = tmp_path / "nc.duckdb"
    a = [x if x != str(root / "store.duckdb") else str(store) for x in args]
    rc, out, err = run_precompute(["analyze", *a, "--quick", "--noise-ceiling", str(nc_dir)])
    assert rc == 0, err[-2000:]
    with Store(store) as st:
        nc = st.vertex_reliability("subj01")
        expect = np.concatenate([np.load(nc_dir / "subj01" / f"{h}.npy") for h in ("lh", "rh")]) / 100
        np.testing.assert_allclose(nc, expect, rtol=1e-6)
        settings = st.cluster_settings("ue_multi")
        assert settings.scope.str.contains("@p").any() and settings.nc_threshold.notna().all()
        assert "reliability threshold of the clusters (every vertex is clustered)" not in set(
            st.skipped_analyses().analysis)
    # a folder given explicitly must describe every subject: wrong counts are an error naming the file
    bad = tmp_path / "bad"
    (bad / "subj01").mkdir(parents=True)
    for h in ("lh", "rh"):
        np.save(bad / "subj01" / f"{h}.npy", np.full(7, 30.0, np.float32))
    rc, out, err = run_precompute(["inspect", str(released), "--noise-ceiling", str(bad)])
    assert rc == 2 and "subj01" in err and "lh.npy" in err and "7 values" in err


@pytest.mark.slow
def test_all_with_default_settings(released, tmp_path):
    """The default settings (not --quick) on the released layout: completes, scores on held-out images."""
    args = ["--dataset", str(released), "--store", str(tmp_path / "store.duckdb"), "--work-dir", str(tmp_path / "w"),
            "--cache-dir", str(tmp_path / "cache"), "--n-perm", "20", "--quiet"]
    rc, out, err = run_precompute(["all", *args])
    assert rc == 0, err[-3000:]
    with Store(tmp_path / "store.duckdb") as st:
        enc = st.roi_metrics()
        allr = enc[enc.roi == "all"].set_index(["model_id", "subject"]).median_r
        assert allr.loc[("ue_multi", "subj01")] > 0.1 and allr.loc[("ridge-subj01", "subj01")] > 0.1
        assert len(st.transfer_curve().n_train.unique()) >= 3


def test_every_page_renders_on_the_released_store(built, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root, _, _ = built
    monkeypatch.setenv("BRAINVIZ_STORE", str(root / "store.duckdb"))
    seen = {}
    for page in [None] + sorted(p.stem for p in (ROOT / "pages").glob("*.py")):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        at.run(timeout=180)
        if page:
            at.switch_page(f"pages/{page}.py")
            at.run(timeout=180)
        assert not at.exception, (page, [e.message for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        for table in at.dataframe:  # a column of "None" only says nothing (the skip notes say why it is missing)
            df = table.value
            assert not [c for c in df.columns if df[c].isna().all()], (page, list(df.columns))
        seen[page] = "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning")
                               for e in getattr(at, kind))
    assert "REAL data" in seen[None] and "held out of the training images" in seen[None]
    assert "Not computed on this dataset" in seen[None] or "Not computed" in seen[None]
    assert "held out of the training images" in seen["4_Model_evaluation"]
    assert "No reliability estimate" in seen["1_Voxel_clusters"]
