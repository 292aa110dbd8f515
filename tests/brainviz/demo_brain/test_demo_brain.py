"""The simulated demo brain keeps its promises (spec: ../shared/specs/demo-brain.md), on a small build."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from brainviz.data.algonauts import load_dataset
from brainviz.data.images import image_set_for_subject, load_nsd_shared1000
from brainviz.demo_brain import FIELD_DEG, REGIONS, build_demo_brain, contrast_energy, prf_response
from brainviz.demo_brain.tuning import zscore
from brainviz.errors import BrainVizDataError
from brainviz.metrics import noise_ceiling_from_repeats, pearson_per_vertex
from brainviz.names import HEMIS, PERCENT

N_IMAGES = 300


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo_brain"
    return build_demo_brain(out, seed=3, n_subjects=2, include_vim1=True, max_images=N_IMAGES, progress=False)


@pytest.fixture(scope="module")
def dataset(demo):
    return load_dataset(demo, validate=True)


def _gt(demo: Path, subject: str, name: str) -> np.ndarray:
    return np.concatenate([np.load(demo / "ground_truth" / subject / f"{h}_{name}.npy") for h in HEMIS], axis=-1 if name.endswith("clean") else 0)


def _cohen_d(a, b) -> float:
    return float((a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))


def test_layout_and_manifest(demo, dataset):
    m = json.loads((demo / "manifest.json").read_text())
    assert m["simulated"] is True and m["surface"] == "fsaverage5" and m["seed"] == 3
    assert list(dataset.subjects) == ["subj01", "subj02", "subj03"] == list(m["subjects"])
    assert dataset.simulated and dataset.ground_truth_dir is not None
    clean = dataset.clean_responses("subj01", "test")  # ground truth, rows and columns as the measured responses
    assert clean.shape == dataset.subjects["subj01"].responses("test").shape
    np.testing.assert_array_equal(clean, _gt(demo, "subj01", "test_clean"))
    assert m["subjects"]["subj01"]["snr"] == "7T-like" and m["subjects"]["subj03"]["snr"] == "3T-like"
    assert m["subjects"]["subj03"]["dataset"] == "vim1"
    assert {r["name"] for r in m["regions"]} == set(REGIONS.values())
    for name, s in dataset.subjects.items():
        summ = s.summary()
        assert summ["surface"] == "fsaverage5" and summ["test_responses"] and summ["repeats"]
        assert 1500 < summ["vertices"]["lh"] < 5000 and 1500 < summ["vertices"]["rh"] < 5000
        assert summ["n_train"] == m["subjects"][name]["n_train"]
        assert s.repeats("train").shape == (summ["n_train"], 3, sum(summ["vertices"].values()))
        rois = summ["rois"]
        assert set(rois["prf-visualrois"]) == {"V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"}
        assert {"OFA", "FFA-1", "FFA-2"} <= set(rois["floc-faces"])
        assert {"EBA", "FBA-1"} <= set(rois["floc-bodies"])
        assert {"OPA", "PPA", "RSC"} <= set(rois["floc-places"])
        assert {"OWFA", "VWFA-1", "VWFA-2"} <= set(rois["floc-words"])
        assert len(rois["streams"]) == 7
        gt = demo / "ground_truth" / name
        for h in HEMIS:
            n = summ["vertices"][h]
            assert np.load(gt / f"{h}_region.npy").shape == (n,)
            assert np.load(gt / f"{h}_prf.npy").shape == (n, 3)
            assert np.load(gt / f"{h}_target_nc.npy").shape == (n,)
            assert np.load(gt / f"{h}_train_clean.npy").shape == (summ["n_train"], n)
            assert np.load(gt / f"{h}_test_clean.npy").shape == (summ["n_test"], n)
        assert set(json.loads((gt / "regions.json").read_text()).values()) == set(REGIONS.values())


def test_splits(dataset):
    s1, s2, s3 = dataset.subjects.values()
    names = lambda paths: [p.name.split("_", 1)[1] for p in paths]  # noqa: E731
    assert names(s1.test_images) == names(s2.test_images)            # common test set
    t1, t2 = set(names(s1.train_images)), set(names(s2.train_images))
    assert 0 < len(t1 & t2) < len(t1)                                  # partial overlap
    assert not t1 & set(names(s1.test_images))
    assert len(s1.test_images) == round(0.2 * N_IMAGES)
    assert len(s3.train_images) + len(s3.test_images) == N_IMAGES
    assert s3.train_images[0].suffix == ".jpg"
    # the images are the real shared images, byte for byte
    shared = load_nsd_shared1000()
    key = s1.test_images[0].name.split("_", 1)[1][:-4]
    assert s1.test_images[0].read_bytes() == shared.paths[shared.index(key)].read_bytes()


def test_image_set_for_subject(dataset):
    s1, _, s3 = dataset.subjects.values()
    imgs = image_set_for_subject(s1)
    assert len(imgs) == len(s1.train_images) + len(s1.test_images)
    assert not imgs.scores["faces"].isna().any()
    assert image_set_for_subject(s3).scores["faces"].isna().all()


@pytest.mark.parametrize("subject", ["subj01", "subj02"])
def test_planted_regions_prefer_their_category(demo, dataset, subject):
    s = dataset.subjects[subject]
    y = np.concatenate([s.responses("train"), s.responses("test")])
    scores = image_set_for_subject(s).scores
    region = _gt(demo, subject, "region")
    code = {v: k for k, v in REGIONS.items()}
    for reg, cat in [("faces", "faces"), ("bodies", "bodies"), ("food", "food"), ("words", "words"),
                     ("places-indoor", "indoor"), ("places-outdoor", "outdoor")]:
        m = region == code[reg]
        assert m.sum() >= 10, reg
        r = y[:, m].mean(axis=1)
        pos = scores[cat].to_numpy() > 0.5
        assert _cohen_d(r[pos], r[~pos]) > 1.0, (reg, cat)
    # the two PPA sub-regions split indoor from outdoor scenes
    ind = (scores["indoor"] > 0.5) & ~(scores["outdoor"] > 0.5)
    out = (scores["outdoor"] > 0.5) & ~(scores["indoor"] > 0.5)
    r_in = y[:, region == code["places-indoor"]].mean(1) - y[:, region == code["places-outdoor"]].mean(1)
    assert _cohen_d(r_in[ind.to_numpy()], r_in[out.to_numpy()]) > 1.0


def test_prf_responds_to_contrast_at_its_location(demo):
    prf_deg = _gt(demo, "subj01", "prf")
    early = np.isfinite(prf_deg[:, 0])
    prf = prf_deg[early] / (FIELD_DEG["nsd"] / 2)  # field units
    n_lh = np.load(demo / "ground_truth" / "subj01" / "lh_region.npy").shape[0]
    lh = np.arange(len(early))[early] < n_lh
    # contralateral visual fields (pRFs on the vertical meridian may reach slightly across)
    assert (prf[lh, 0] > 0).mean() > 0.95 and (prf[~lh, 0] < 0).mean() > 0.95
    assert (prf[lh, 0] > -0.1).all() and (prf[~lh, 0] < 0.1).all()
    # a grating patch in the upper right quadrant
    size = 64
    blank = np.full((size, size), 0.5)
    patch = blank.copy()
    yy, xx = np.mgrid[:size, :size]
    box = (yy >= 8) & (yy < 24) & (xx >= 40) & (xx < 56)       # x, y in [0.25, 0.75] field units
    patch[box] += 0.4 * np.sin(2 * np.pi * xx[box] / 8)
    r = prf_response(contrast_energy(np.stack([blank, patch])), prf)
    delta = r[1] - r[0]
    inside = (np.abs(prf[:, 0] - 0.5) < 0.2) & (np.abs(prf[:, 1] - 0.5) < 0.2)
    far = (prf[:, 0] < -0.2) | (prf[:, 1] < -0.3)
    assert inside.sum() >= 5 and far.sum() >= 50
    assert delta[inside].mean() > 5 * delta[far].mean()
    assert np.median(delta[inside]) > np.percentile(delta[far], 95)


def test_early_clean_responses_follow_the_prf_model(demo, dataset):
    s = dataset.subjects["subj01"]
    prf_deg = _gt(demo, "subj01", "prf")
    early = np.flatnonzero(np.isfinite(prf_deg[:, 0]))[::10]
    from PIL import Image
    gray = np.stack([np.asarray(Image.open(p).convert("L").resize((64, 64), Image.Resampling.BILINEAR,
                                                                  reducing_gap=2.0), np.float32) / 255
                     for p in s.train_images])
    pred = zscore(prf_response(contrast_energy(gray), prf_deg[early] / (FIELD_DEG["nsd"] / 2)))
    clean = zscore(_gt(demo, "subj01", "train_clean")[:, early])
    r = pearson_per_vertex(pred, clean)
    assert np.median(r) > 0.9


def test_noise_ceiling_matches_target(demo, dataset):
    for name, s in dataset.subjects.items():
        target = _gt(demo, name, "target_nc") / PERCENT  # percent on disk, like the real NSD maps
        reps = np.concatenate([s.repeats("train"), s.repeats("test")])
        est = noise_ceiling_from_repeats(reps, method="nsd")  # trials z-scored per session
        assert abs(np.median(est) - np.median(target)) < 0.03, name
        assert np.corrcoef(est, target)[0, 1] > 0.5
        region = _gt(demo, name, "region")
        assert np.median(target[region == 1]) > np.median(target[region == 8])  # early visual is cleaner
    m = json.loads((demo / "manifest.json").read_text())["subjects"]
    assert m["subj03"]["target_nc_median"] < m["subj01"]["target_nc_median"]  # 3T-like


def _npy_bytes(root: Path) -> dict[str, bytes]:
    """Array bytes of every .npy file (pickled ROI mappings: their repr)."""
    out = {}
    for p in sorted(root.rglob("*.npy")):
        a = np.load(p, allow_pickle=True)
        out[str(p.relative_to(root))] = repr(a.item()).encode() if a.dtype == object else a.tobytes()
    return out


def test_deterministic(tmp_path):
    kw = dict(n_subjects=1, include_vim1=True, max_images=60, progress=False)
    a = _npy_bytes(build_demo_brain(tmp_path / "a", seed=7, **kw))
    b = _npy_bytes(build_demo_brain(tmp_path / "b", seed=7, **kw))
    c = _npy_bytes(build_demo_brain(tmp_path / "c", seed=8, **kw))
    assert a.keys() == b.keys() and len(a) > 20
    assert all(a[k] == b[k] for k in a)
    assert (tmp_path / "a" / "manifest.json").read_text() == (tmp_path / "b" / "manifest.json").read_text()
    assert a["subj01/training_split/training_fmri/lh_training_fmri.npy"] != c["subj01/training_split/training_fmri/lh_training_fmri.npy"]


def test_missing_inputs_raise(tmp_path):
    with pytest.raises(BrainVizDataError):
        build_demo_brain(tmp_path / "out", data_root=tmp_path / "nowhere", progress=False)
    assert not (tmp_path / "out").exists()


def test_demo_brain_names_images_as_the_release_does(demo, dataset):
    """File names carry the 0-based 73k NSD index (the Algonauts 2023 convention): each name's id is the
    shared1000 TSV's nsd_id of the very image file it was copied from, so its tags are its own."""
    from PIL import Image

    from brainviz.catalog import image_key

    shared = load_nsd_shared1000()
    by_key = dict(zip(shared.keys, shared.paths))
    sub = dataset.subjects["subj01"]
    for p in sub.train_images[:5] + sub.test_images[:5]:
        key = image_key(p)
        assert key in by_key, p.name
        with Image.open(p) as a, Image.open(by_key[key]) as b:  # the same picture
            assert np.array_equal(np.asarray(a), np.asarray(b))
