"""In-silico experiments (brainviz.insilico) and `python -m precompute predict`."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainviz import insilico as I
from brainviz.errors import BrainVizDataError
from precompute.cli import main


# --------------------------------------------------------------------------- statistics
def test_contrast_matches_scipy_welch_and_bh():
    from scipy import stats

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 300))
    b = rng.normal(size=(55, 300)) * 1.7
    a[:, :30] += 1.0
    res = I.contrast(a, b, q=0.05)
    ref = stats.ttest_ind(a, b, equal_var=False, axis=0)
    np.testing.assert_allclose(res.t, ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(res.p, ref.pvalue, rtol=1e-8)
    np.testing.assert_allclose(res.df, ref.df, rtol=1e-10)
    np.testing.assert_allclose(res.p_fdr, stats.false_discovery_control(ref.pvalue, method="bh"), rtol=1e-10)
    assert (res.significant == (res.p_fdr <= 0.05)).all()
    d = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / 2)
    np.testing.assert_allclose(res.d, d, rtol=1e-10)
    assert res.n_a == 40 and res.n_b == 55


def test_fdr_finds_the_true_effects_and_controls_false_discoveries():
    fdp, power = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a = rng.normal(size=(60, 2000))
        b = rng.normal(size=(60, 2000))
        a[:, :100] += 1.0  # d = 1 in 100 vertices
        res = I.contrast(a, b, q=0.05)
        sig = np.flatnonzero(res.significant)
        fdp.append((sig >= 100).mean() if len(sig) else 0.0)
        power.append(res.significant[:100].mean())
    # Benjamini-Hochberg: expected false discovery proportion <= q * m0 / m = 0.0475
    assert np.mean(fdp) <= 0.06 and max(fdp) < 0.15
    assert np.mean(power) >= 0.95  # and almost every true effect is found
    assert np.isnan(res.t_thresholded[~res.significant]).all()
    assert res.t_threshold() is not None and res.t_threshold() > 2
    # stricter q -> fewer (or as many) discoveries
    assert I.contrast(a, b, q=0.001).significant.sum() <= res.significant.sum()


def test_effect_size_threshold_drops_tiny_differences_that_pass_fdr():
    """Noise-free predictions: with many images a tiny shift passes FDR everywhere; |d| >= min_d keeps only the
    vertices where the sets differ by a size that matters."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 200))
    b = rng.normal(size=(400, 200))
    a[:, :150] += 0.25  # small (d = 0.25) but everywhere
    a[:, 150:170] += 1.5  # large in 20 vertices
    res = I.contrast(a, b, q=0.05, min_d=0.8)
    assert res.significant[:150].mean() > 0.9  # FDR alone: most of the tiny effects pass
    assert res.passes[150:170].all() and not res.passes[:150].any() and not res.passes[170:].any()
    assert np.isnan(res.t_thresholded[:150]).all() and np.isfinite(res.t_thresholded[150:170]).all()
    row = I.roi_table(res, {}).iloc[0]
    assert row["pct_sig_A>B"] > 70 and row["pct_pass_A>B"] == 10.0
    assert (I.contrast(a, b, q=0.05).passes == I.contrast(a, b, q=0.05).significant).all()  # min_d = 0: FDR alone
    with pytest.raises(BrainVizDataError, match="min_d"):
        I.contrast(a, b, min_d=-1)


def test_contrast_refuses_bad_input():
    with pytest.raises(BrainVizDataError, match="at least 3"):
        I.contrast(np.zeros((2, 5)), np.zeros((10, 5)))
    with pytest.raises(BrainVizDataError, match="same vertices"):
        I.contrast(np.zeros((5, 5)), np.zeros((5, 6)))
    with pytest.raises(BrainVizDataError, match="FDR level"):
        I.fdr(np.array([0.1]), q=1.5)
    flat = I.contrast(np.ones((4, 3)), np.ones((5, 3)))  # zero variance: no effect, no crash
    assert (flat.t == 0).all() and (flat.p == 1).all() and not flat.significant.any()


def test_tag_sets_exclude_training_images_and_combine_categories():
    tags = pd.DataFrame({"faces": [1.0, 0.8, 0.0, 0.0, 0.2, 0.0], "places": [0.0, 0.0, 0.9, 0.3, 0.0, 0.0],
                         "indoor": [0.0, 0.0, 0.0, 1.0, 0.0, 0.0], "tags": ""},
                        index=[f"nsd-0000{i}" for i in range(6)])
    a, b = I.tag_sets(tags, "faces", exclude=["nsd-00001"])
    assert a == ["nsd-00000"] and b == ["nsd-00002", "nsd-00003", "nsd-00004", "nsd-00005"]
    a, b = I.tag_sets(tags, ("places", "indoor"))
    assert a == ["nsd-00002", "nsd-00003"] and "nsd-00003" not in b
    a, b = I.tag_sets(tags, "faces", versus="places", keys=[f"nsd-0000{i}" for i in range(4)])
    assert a == ["nsd-00000", "nsd-00001"] and b == ["nsd-00002"]
    with pytest.raises(BrainVizDataError, match="not a tag category"):
        I.tag_sets(tags, "cars")


def test_roi_table_top_images_and_group_rdms():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(10, 50))
    a[:, :10] += 3
    b = rng.normal(size=(12, 50))
    res = I.contrast(a, b)
    roi = np.zeros(50, bool)
    roi[:10] = True
    table = I.roi_table(res, {"face patch": roi, "empty": np.zeros(50, bool)})
    assert list(table["roi"]) == ["all vertices", "face patch"]
    row = table.set_index("roi").loc["face patch"]
    assert row["n_vertices"] == 10 and row["pct_sig_A>B"] == 100 and row["mean_t"] > 5
    names = [f"img{i}" for i in range(10)]
    a[7, :10] += 10
    top = I.top_images(a, names, roi, k=3)
    assert top["name"].iloc[0] == "img7" and list(top["rank"]) == [1, 2, 3]
    x = rng.normal(size=(6, 40))
    x[1] = x[0] * 2 + 0.01 * rng.normal(size=40)  # img0 ~ img1: most similar pair
    rd = I.group_rdms(x, names[:6], {"all": np.ones(40, bool), "tiny": np.eye(40, dtype=bool)[0]}, k=2)
    assert set(rd) == {"all"}  # groups with < 2 vertices are skipped
    g = rd["all"]
    assert g.rdm.shape == (6, 6) and np.allclose(g.rdm, g.rdm.T)
    assert {g.most_similar["name_a"].iloc[0], g.most_similar["name_b"].iloc[0]} == {"img0", "img1"}
    assert g.most_dissimilar["value"].iloc[0] >= g.most_similar["value"].iloc[0]
    means = I.roi_means_table(a, names, {"face patch": roi})
    assert means.shape == (10, 1) and means.index[7] == "img7"


def test_auc_of_map():
    assert I.auc_of_map(np.array([3.0, 2.0, 1.0, 0.0]), np.array([True, True, False, False])) == 1.0
    assert I.auc_of_map(np.array([0.0, 1.0, 2.0, 3.0]), np.array([True, True, False, False])) == 0.0
    assert I.auc_of_map(np.array([1.0, np.nan, 1.0]), np.array([True, True, False])) == 0.5


# --------------------------------------------------------------------------- image sets
def _png(size=(64, 64), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _image_folder(root: Path) -> tuple[Path, list[str], dict[str, str]]:
    """Good images (one in a sub-folder, one CMYK JPEG) and bad files with the expected reason."""
    root.mkdir(parents=True)
    good = ["a.png", "b.png", "cmyk.jpg", "sub/c.png"]
    for i, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(_png(color=(40 * i, 100, 200 - 40 * i)))
    Image.new("CMYK", (64, 64), (10, 200, 30, 0)).save(root / "cmyk.jpg")
    (root / "notes.txt").write_text("not an image")
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(noisy, "PNG")
    (root / "truncated.png").write_bytes(noisy.getvalue()[:2000])
    (root / "tiny.png").write_bytes(_png(size=(8, 8)))
    (root / "empty.png").write_bytes(b"")
    (root / ".hidden.png").write_bytes(_png())  # ignored (hidden)
    bad = {"notes.txt": "not an image", "truncated.png": "corrupt or truncated", "tiny.png": "too small",
           "empty.png": "empty"}
    return root, good, bad


def test_list_and_decode_folder_and_zip(tmp_path, monkeypatch):
    folder, good, bad = _image_folder(tmp_path / "imgs")
    entries, problems = I.list_image_files(folder)
    assert [n for n, _ in problems] == [".hidden.png"] and "hidden" in problems[0][1]  # listed, not read
    assert ".hidden.png" not in [e.name for e in entries]
    decoded = list(I.iter_decoded(entries))
    assert [n for n, img, _ in decoded if img is not None] == sorted(good)
    reasons = {n: r for n, img, r in decoded if img is None}
    assert set(reasons) == set(bad)
    for name, part in bad.items():
        assert part in reasons[name], (name, reasons[name])
    # the same as a zip (with a macOS resource folder that must be ignored)
    zpath = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, f"set/{p.relative_to(folder)}")
        z.writestr("__MACOSX/set/._a.png", b"junk")
    entries_z, problems_z = I.list_image_files(zpath)
    assert [e.name for e in entries_z] == [f"set/{e.name}" for e in entries]
    assert {n for n, _ in problems_z} == {"set/.hidden.png", "__MACOSX/set/._a.png"}
    # a member over the size limit is refused from its header, before decompression
    import brainviz.live as live

    monkeypatch.setattr(live, "MAX_BYTES", 150)
    entries_small, problems_small = I.list_image_files(zpath)
    assert {n for n, _ in problems_small} >= {"set/a.png", "set/b.png"}
    assert all("limit" in r for n, r in problems_small if "hidden" not in n and "MACOSX" not in n)
    monkeypatch.undo()
    # uploads: loose files + a zip; the per-set limit is enforced with a reason
    ups = [("x.png", _png()), ("more.zip", zpath.read_bytes())]
    e_up, p_up = I.image_entries_from_uploads(ups, max_images=3)
    assert [e.name for e in e_up][:2] == ["x.png", "more.zip/set/a.png"] and len(e_up) == 3
    assert p_up and all("limit of 3" in r for n, r in p_up if "hidden" not in n and "MACOSX" not in n)
    with pytest.raises(BrainVizDataError, match="no such"):
        I.list_image_files(tmp_path / "missing")
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(BrainVizDataError, match="not a folder or a zip"):
        I.list_image_files(tmp_path / "fake.zip")


# --------------------------------------------------------------------------- predict command
def test_predict_command_on_good_and_bad_files(app_store, tmp_path, capsys):
    from brainviz.store.reader import Store

    folder, good, bad = _image_folder(tmp_path / "imgs")
    # two of the store's own images, to compare with its stored predictions
    with Store(app_store) as st:
        imgs = st.images()
        keys = ["nsd-00021", "nsd-00022"]  # test images of subj01
        for k in keys:
            (folder / f"{k}.png").write_bytes(Path(imgs.set_index("image_key").loc[k, "path"]).read_bytes())
        stored = st.predictions("ue_multi", "subj01", keys)
        V = st.n_vertices("subj01")
        n_lh = int((st.vertices("subj01")["hemi"] == "lh").sum())
    out = tmp_path / "out"
    rc = main(["predict", "--images", str(folder), "--out", str(out), "--store", str(app_store), "--no-progress",
               "--batch-size", "2"])
    assert rc == 0
    err = capsys.readouterr().err
    for name in bad:
        assert f"skipped {name}" in err
    expected = sorted(good + [f"{k}.png" for k in keys])
    files = pd.read_csv(out / "images.csv")
    assert files["file"].tolist() == expected and files["row"].tolist() == list(range(len(expected)))
    assert "CMYK" in files.set_index("file").loc["cmyk.jpg", "notes"]
    pred = np.load(out / "predictions.npy")
    assert pred.dtype == np.float32 and pred.shape == (len(expected), V) and np.isfinite(pred).all()
    # same numbers as the pipeline's stored predictions (features rounded alike)
    rows = [expected.index(f"{k}.png") for k in keys]
    np.testing.assert_allclose(pred[rows], stored, atol=2e-3)
    badf = pd.read_csv(out / "bad_files.csv")
    assert set(badf["file"]) == set(bad) | {".hidden.png"}  # every file not used, with its reason
    roi = pd.read_csv(out / "roi_means.csv")
    assert roi["file"].tolist() == expected and {"faces", "early visual"} <= set(roi.columns)
    mean = nib.load(out / "lh.mean.func.gii").darrays[0].data
    assert mean.shape == (10242,) and np.isfinite(mean).sum() == n_lh
    per = nib.load(out / "rh.predicted.func.gii")
    assert [d.meta["Name"] for d in per.darrays] == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == len(expected) and summary["n_bad"] == len(bad) + 1 and summary["simulated"] is True
    assert summary["images_per_second"] > 0 and summary["surface"] == "fsaverage5"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # temp folder renamed away
    # running again into the same (previous output) folder replaces it
    assert main(["predict", "--images", str(folder / "sub"), "--out", str(out), "--store", str(app_store),
                 "--no-progress"]) == 0
    assert np.load(out / "predictions.npy").shape == (1, V)


@pytest.mark.parametrize("args, message", [
    (["--images", "{tmp}/nope"], "no such folder"),
    (["--images", "{imgs}", "--subject", "subj09"], "not a subject"),
    (["--images", "{imgs}", "--model", "ridge-subj01"], "needs a Universal-Encoder"),
    (["--images", "{imgs}", "--model", "nonsense"], "not a model id"),
    (["--images", "{imgs}", "--out", "{tmp}/foreign"], "predict did not write"),
    (["--images", "{imgs}", "--batch-size", "0"], "must be >= 1"),
    (["--images", "{imgs}/bad"], "none of the 1 files"),
])
def test_predict_command_bad_arguments_exit_2_with_one_line(app_store, tmp_path, capsys, args, message):
    imgs = tmp_path / "imgs"
    (imgs / "bad").mkdir(parents=True)
    (imgs / "a.png").write_bytes(_png())
    (imgs / "bad" / "x.png").write_bytes(b"garbage")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("keep me")
    argv = [a.format(tmp=tmp_path, imgs=imgs) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    rc = main(["predict", *argv, "--store", str(app_store), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: ") and message in err[-1] and "Traceback" not in "\n".join(err)
    assert (tmp_path / "foreign" / "thesis.tex").read_text() == "keep me"
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- SIMULATION CHECK (ground truth)
def test_simulation_check_faces_places_food_contrasts_find_the_planted_regions(tmp_path):
    """SIMULATION CHECK: reads the demo brain's planted regions (ground truth), only to score the result.

    One demo-brain subject (seed 0, the same subj01 as the full demo), a ridge encoder trained on its
    450 training images, predictions for the other 550 NSD shared images; "category vs everything
    else" Welch t maps must rank the planted region's vertices above all others (AUC >= 0.9). Places: the
    demo brain plants an outdoor- and an indoor-preferring region, localised by the 'places' and 'indoor' tags.
    Measured on the full demo store's ue_multi / ue_single models too (README / closing note).
    """
    from tests.insilico_recovery import ridge_check

    table = ridge_check(tmp_path, seed=0)
    assert set(table["check"]) == {"faces", "places-outdoor", "places-indoor", "food"}
    assert (table["n_a"] >= 20).all() and (table["n_b"] >= 100).all()
    assert (table["auc"] >= 0.9).all(), table.to_string()


def test_predict_store_images_from_the_store_alone(app_store):
    """The store's predictions of tagged images, else its thumbnails through the predictor: close numbers."""
    from brainviz.live import LivePredictor
    from brainviz.store.reader import Store

    with Store(app_store) as st:
        predictor = LivePredictor.from_store(st, "ue_multi")
        keys = ["nsd-00003", "nsd-00005", "nsd-00021", "nsd-00029"]  # not subj02's training images
        stored, how = I.predict_store_images(predictor, st, keys, "subj02")
        assert how == "stored"
        np.testing.assert_array_equal(stored, st.predictions("ue_multi", "subj02", keys, "tagged"))
        predictor.model_id = "ue_multi-renamed"  # no stored predictions under this id
        seen = []
        from_thumbs, how = I.predict_store_images(predictor, st, keys, "subj02",
                                                  progress=lambda d, t: seen.append((d, t)))
        assert how == "thumbnails" and seen[-1] == (4, 4)
        thumbs = st.thumbnails(keys)  # what was predicted: the store's pictures, nothing else
        direct = I.predict_entries(predictor, [I.ImageEntry(k, lambda k=k: thumbs[k]) for k in keys], ["subj02"])
        np.testing.assert_allclose(from_thumbs, direct.responses["subj02"], rtol=0, atol=1e-6)
        # a JPEG thumbnail (quality 90) is not the PNG file: related numbers, not equal ones (r 0.91 here, on the
        # fixture's flat synthetic pictures and tiny model; 0.99 per image in the median on the demo brain's, brainviz/thumbnails.py)
        assert np.corrcoef(from_thumbs.ravel(), stored.ravel())[0, 1] > 0.8
