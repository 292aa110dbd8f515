"""The analyses' typed results, their one writer (brainviz.pipeline.store_results) and the policy object
(brainviz.pipeline.settings.AnalysisSettings) stored as numbers; scripts/compare_stores.py."""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from brainviz.errors import BrainVizDataError
from brainviz.pipeline import analyses
from brainviz.pipeline.analyses.clusters import ClusterScopeResult, VertexReliability, VoxelEmbeddings
from brainviz.pipeline.analyses.decoding import DecodingResult
from brainviz.pipeline.analyses.encoders import EncoderScores, EvaluationPredictions, TransferCurve
from brainviz.pipeline.analyses.k92 import K92Result
from brainviz.pipeline.analyses.pair_model import PairModelResult
from brainviz.pipeline.analyses.rdms import RDMResult, RSAResult, extreme_pairs
from brainviz.pipeline.settings import NUMERIC_FIELDS, AnalysisSettings
from brainviz.pipeline.store_results import WRITERS, write_all, write_result
from brainviz.store.reader import Store
from brainviz.store.writer import StoreWriter
from brainviz.thumbnails import thumbnail
from tests import ROOT



def _result_types() -> set[type]:
    """Every dataclass defined in a module of brainviz.pipeline.analyses (the typed results)."""
    out = set()
    for info in pkgutil.iter_modules(analyses.__path__):
        mod = importlib.import_module(f"{analyses.__name__}.{info.name}")
        out |= {obj for obj in vars(mod).values()
                if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == mod.__name__}
    return out


def test_every_result_type_has_a_writer():
    types = _result_types()
    assert {EncoderScores, ClusterScopeResult, RDMResult, RSAResult, DecodingResult, K92Result} <= types
    missing = sorted(t.__name__ for t in types - set(WRITERS))
    assert not missing, f"result types without a store writer: {missing}"
    assert all(dataclasses.fields(t) and t.__dataclass_params__.frozen for t in types)  # frozen results


def test_unknown_result_type_is_refused(tmp_path):
    with StoreWriter(tmp_path / "s.duckdb") as w:
        with pytest.raises(BrainVizDataError, match="no store writer.*dict"):
            write_result(w, {"not": "a result"})


def test_analyses_never_import_the_store():
    """Each analysis module computes results only: no brainviz.store, no duckdb (checked in a fresh process)."""
    code = ("import sys\n"
            "import brainviz.pipeline.analyses.clusters, brainviz.pipeline.analyses.rdms, "
            "brainviz.pipeline.analyses.k92, brainviz.pipeline.analyses.pair_model, "
            "brainviz.pipeline.analyses.decoding, brainviz.pipeline.analyses.encoders\n"
            "bad = sorted(m for m in sys.modules if m == 'duckdb' or m.startswith('brainviz.store'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def _examples() -> dict[type, tuple[object, dict[str, int]]]:
    """One small result of each type and the rows it must add to each table."""
    keys = [f"nsd-{i:05d}" for i in range(6)]
    square = np.abs(np.subtract.outer(np.arange(6.0), np.arange(6.0)))
    labels = {3: {"subj01": np.array([0, 1, 2, -1, 0], np.int32)}}
    desc = pd.DataFrame({"cluster": [0, 1, 2], "n_vertices": [2, 1, 1], "description": ["faces", "places", "mixed"],
                         "source": "measured"})
    top = pd.DataFrame({"cluster": [0, 1], "rank": [1, 1], "image_key": keys[:2], "score": [1.0, 0.5], "k": 3,
                        "subject": "subj01", "source": "measured"})
    quality = pd.DataFrame({"k": [3], "metric": ["stability"], "value": [0.8], "simulation_check": [False]})
    rdm = RDMResult("subj01|all|correlation|measured", keys, square, "correlation", "measured", subject="subj01",
                    roi="all", extremes=extreme_pairs(keys, square, "correlation", 2))
    k92_keys = [f"k92-{i:05d}" for i in range(1, 4)]
    return {
        AnalysisSettings: (AnalysisSettings(), {"analysis_settings": len(AnalysisSettings().to_rows())}),
        EncoderScores: (EncoderScores(
            "ridge-subj01", "ridge", "subj01", n_train=10, n_test=6, r=np.linspace(0, 1, 5), nc=np.full(5, 0.5),
            nna=np.full(5, 0.2), retrieval={"mean_rank": 1.5, "top1": 0.5, "top5": 1.0},
            rois=pd.DataFrame({"roi": ["all"], "median_r": [0.5], "p25": [0.2], "p75": [0.7], "median_nna": [0.2],
                               "n": [5]})),
            {"vertex_metrics": 5, "retrieval": 1, "roi_metrics": 1}),
        EvaluationPredictions: (EvaluationPredictions("ridge-subj01", "subj01", keys, np.zeros((6, 5), np.float32)),
                                {"predictions": 6}),
        TransferCurve: (TransferCurve(pd.DataFrame({"subject": ["subj05"], "n_train": [25], "method": ["ridge"],
                                                    "median_r": [0.1], "seed": [0]})), {"transfer_curve": 1}),
        VoxelEmbeddings: (VoxelEmbeddings("ue_multi", {"subj01": np.ones((5, 4), np.float32)},
                                          {"subj01": np.zeros((5, 2), np.float32)}),
                          {"voxel_embeddings": 5, "embedding_maps": 5}),
        VertexReliability: (VertexReliability("subj01", np.full(5, 0.3, np.float32), "training repeats"),
                            {"vertex_reliability": 5}),
        ClusterScopeResult: (ClusterScopeResult(
            "ue_multi", "joint", pd.DataFrame({"subject": ["subj01"], "base": "joint", "region": None,
                                               "percentile": [75.0], "nc_threshold": [0.3], "chosen_k": 3,
                                               "k_rule": "stability >= 0.75", "is_default": True}),
            {"family": "joint", "percentile": 75.0, "profile": "embeddings", "n_images": None, "measured_share": None,
             "smoothing": 0.0, "smoothing_radius_mm": None, "with_neighbours": None, "profile_default": True,
             "is_default": True}, labels, {3: desc}, top, quality),
            {"cluster_settings": 1, "cluster_variants": 1, "clusters": 4, "cluster_descriptions": 3,
             "cluster_top_images": 2, "cluster_quality": 1}),
        RDMResult: (rdm, {"rdms": 1, "extreme_pairs": 6}),
        RSAResult: (RSAResult(pd.DataFrame({"rdm_a": ["a"], "rdm_b": ["b"], "method": ["spearman"], "value": [0.3]})),
                    {"rsa": 1}),
        K92Result: (K92Result(
            k92_keys, [thumbnail(np.zeros((8, 8, 3), np.uint8)) for _ in k92_keys],
            pd.DataFrame({"faces": [1.0, 0.0, 0.0]}, index=k92_keys), dict(zip(k92_keys, ["face", "body", "place"])),
            "efficientnet-lite0", np.ones((3, 4), np.float32),
            pd.DataFrame({"model": ["m"], "method": ["spearman"], "value": [0.2]}),
            pd.DataFrame({"model": ["mix"], "method": ["spearman"], "value": [0.25], "weights": [{"a": 1.0}]}),
            (RDMResult("k92|m", k92_keys, np.ones((3, 3)) - np.eye(3), "correlation", "k92:m"),)),
            {"images": 3, "thumbnails": 3, "image_tags": 3, "image_features": 3, "k92_rsa": 1, "k92_fit": 1,
             "rdms": 1}),
        PairModelResult: (PairModelResult(pd.DataFrame({"split": ["s"], "metric": ["r2"], "value": [0.1]})),
                          {"pair_model": 1}),
        DecodingResult: (DecodingResult(
            "subj01", pd.DataFrame({"roi_set": ["faces"], "roi": ["FFA-1"], "n_vertices": [3]}),
            pd.DataFrame({"roi_set": ["faces"], "image_key": [keys[0]], "rank": [1.0], "top_keys": [keys[:5]],
                          "cosine": [np.nan], "approach": ["decoder"]}),
            pd.DataFrame({"approach": ["decoder"], "roi_set": ["faces"], "weight": [1.0]})),
            {"decoding_rois": 1, "decoding": 1, "decoding_weights": 1}),
    }


def test_writer_maps_each_result_type_to_its_tables(tmp_path):
    examples = _examples()
    assert set(examples) == set(WRITERS)  # a new result type needs an example here too
    path = tmp_path / "s.duckdb"
    with StoreWriter(path) as w:
        def count(t: str) -> int:
            present = w._con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                                     [t]).fetchall()[0][0]
            return w._con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] if present else 0

        for typ, (result, tables) in examples.items():
            before = {t: count(t) for t in tables}
            write_result(w, result)
            for t, n in tables.items():
                got = count(t) - before[t]
                assert got == n, f"{typ.__name__} -> {t}: {got} rows, expected {n}"


def test_write_all_writes_each_yielded_result_and_returns_the_headline(tmp_path):
    def gen():
        yield RSAResult(pd.DataFrame({"rdm_a": ["a"], "rdm_b": ["b"], "method": ["spearman"], "value": [0.3]}))
        yield PairModelResult(pd.DataFrame({"split": ["s"], "metric": ["r2"], "value": [0.1]}))
        return {"headline": 1}

    with StoreWriter(tmp_path / "s.duckdb") as w:
        assert write_all(w, gen()) == {"headline": 1}
        assert w._con.execute("SELECT count(*) FROM rsa").fetchall() == [(1,)]
        assert w._con.execute("SELECT count(*) FROM pair_model").fetchall() == [(1,)]


def test_settings_are_stored_as_numbers_and_read_back(tmp_path):
    settings = AnalysisSettings(min_stability=0.6, cluster_ks=(3, 5, 7), reliability_percentiles=(60.0, 80.0),
                                default_percentile=80.0, n_top_images=12)
    path = tmp_path / "s.duckdb"
    with StoreWriter(path) as w:
        write_result(w, settings)
    with duckdb.connect(str(path), read_only=True) as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'analysis_settings'").fetchall())
        assert types == {"name": "VARCHAR", "position": "INTEGER", "value": "DOUBLE"}
        rows = con.execute("SELECT position, value FROM analysis_settings WHERE name = 'cluster_ks' "
                           "ORDER BY position").fetchall()
        assert rows == [(0, 3.0), (1, 5.0), (2, 7.0)]
        assert con.execute("SELECT position, value FROM analysis_settings WHERE name = 'min_stability'"
                           ).fetchall() == [(None, 0.6)]
        assert {r[0] for r in con.execute("SELECT DISTINCT name FROM analysis_settings").fetchall()} == \
            set(NUMERIC_FIELDS)
    with Store(path) as st:
        numbers = st.analysis_settings()
    assert numbers["min_stability"] == 0.6 and numbers["cluster_ks"] == (3.0, 5.0, 7.0)
    assert numbers["reliability_percentiles"] == (60.0, 80.0) and numbers["n_top_images"] == 12.0
    back = AnalysisSettings.from_numbers(numbers)
    assert back == settings  # every numeric field round-trips (the names keep their defaults)
    assert isinstance(back.n_top_images, int) and back.cluster_ks == (3, 5, 7)
    with pytest.raises(BrainVizDataError, match="unknown settings"):
        AnalysisSettings.from_numbers({"min_stabilty": 0.5})


def test_settings_change_the_scope_plan():
    """The clusters' plan follows the settings object (not module constants): thresholds, k range, smoothing."""
    from brainviz.pipeline.analyses.clusters import _scope_plan

    s = AnalysisSettings(cluster_ks=(3, 4), reliability_percentiles=(60.0, 80.0), default_percentile=80.0,
                         smoothing_beta=1.0)
    plan = _scope_plan(s, ["subj01"], ["subj01"])
    scopes = {p["scope"] for p in plan}
    assert "joint:non-early@p60" in scopes and "joint:non-early@p75" not in scopes
    assert all(tuple(p["ks"]) in ((3, 4), (2,)) for p in plan)
    assert any(1.0 in p["smoothing"] for p in plan)
    assert not {p["scope"] for p in _scope_plan(AnalysisSettings(), ["subj01"], ["subj01"])} & {"joint:non-early@p60"}


def test_compare_stores(app_store, tmp_path):
    """scripts/compare_stores.py: a store equals its copy (exit 0); a changed value, a missing row and a table
    only in one store are found (exit 1)."""
    import shutil

    script = ROOT / "scripts" / "compare_stores.py"
    copy = tmp_path / "copy.duckdb"
    shutil.copy(app_store, copy)
    run = lambda *a: subprocess.run([sys.executable, str(script), *map(str, a)], capture_output=True, text=True,  # noqa: E731
                                    timeout=300)
    same = run(app_store, copy)
    assert same.returncode == 0, same.stdout[-2000:] + same.stderr[-2000:]
    assert "0 difference(s)" in same.stdout
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE rsa SET value = value + 0.01 WHERE rdm_a = (SELECT min(rdm_a) FROM rsa)")
        con.execute("DELETE FROM retrieval WHERE subject = 'subj02'")
        con.execute("UPDATE meta SET value = '2000-01-01' WHERE key = 'created_at'")  # ignored
        con.execute("CREATE TABLE extra (x INTEGER)")
    diff = run(app_store, copy)
    assert diff.returncode == 1, diff.stdout[-2000:]
    assert "rsa.value:" in diff.stdout and "table retrieval:" in diff.stdout and "table extra: only in B" in diff.stdout
    assert "created_at" not in diff.stdout.split("difference(s)")[0]
    tiny = tmp_path / "tiny.duckdb"
    shutil.copy(app_store, tiny)
    with duckdb.connect(str(tiny)) as con:
        con.execute("UPDATE rsa SET value = value + 1e-9")  # within the tolerance
    assert run(app_store, tiny).returncode == 0


def test_stability_caption_reads_the_policy_numbers():
    """webapp.viewmodel.stability_rule: the clusters page's threshold and caption from the stored numbers."""
    from webapp.viewmodel import stability_rule

    numbers = {"min_stability": 0.6, "stability_fraction": 0.8, "stability_rounds": 7.0}
    thr, text = stability_rule(numbers, [0.5, 0.7], "voxel embeddings")
    assert thr == 0.6 and "at least 0.6:" in text and "80 % subsamples" in text and "7 rounds" in text
    assert "tentative" not in text
    thr, text = stability_rule(numbers, [0.5, 0.55], "voxel embeddings", smoothed=True)
    assert "no k reaches 0.6" in text and "smoothed labels keep this k" in text
    thr, text = stability_rule({}, [0.5], "voxel embeddings")  # a store without the numbers: no made-up threshold
    assert thr is None and "the run's threshold" in text and "0.75" not in text
