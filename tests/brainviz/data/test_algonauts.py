"""The Algonauts 2023 layout loader on fixtures in the exact real layout and shapes."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from brainviz.data.algonauts import AlgonautsSubject, load_dataset, parse_image_name
from brainviz.names import N_FSAVERAGE5, ROI_CLASSES, ROI_SETS
from brainviz.errors import BrainVizDataError
from tests.algonauts_fixtures import make_subject


@pytest.fixture(scope="module")
def real_shaped(tmp_path_factory):
    root = tmp_path_factory.mktemp("algonauts")
    make_subject(root, "subj01", test_fmri=True, repeats=True)
    return root


def test_real_shapes_load(real_shaped):
    ds = load_dataset(real_shaped)
    s = ds.subjects["subj01"]
    assert not ds.simulated
    assert ds.planted_regions("subj01") is None and ds.clean_responses("subj01", "test") is None  # no ground truth
    assert s.surface == "fsaverage"
    assert s.n_vertices == {"lh": 19_004, "rh": 20_544}
    assert len(s.train_images) == 12 and len(s.test_images) == 5
    y = s.responses("train")
    assert y.shape == (12, 19_004 + 20_544) and y.dtype == np.float32
    assert s.responses("test").shape == (5, 39_548)
    assert s.repeats("train").shape == (12, 3, 39_548)
    assert set(s.roi_classes) == set(ROI_CLASSES)


def test_roi_selection_across_hemispheres(real_shaped):
    s = AlgonautsSubject(real_shaped / "subj01")
    vt = s.vertex_table()
    assert len(vt) == 39_548 and list(vt.hemi.unique()) == ["lh", "rh"]
    ffa = s.roi_mask("FFA-1")
    assert ffa.sum() == (vt["floc-faces"] == "FFA-1").sum() > 0
    for name, rois in ROI_SETS.items():
        m = s.roi_mask(name)
        expected = np.zeros(len(vt), bool)
        for cls in ROI_CLASSES:
            expected |= vt[cls].isin(rois).to_numpy()
        np.testing.assert_array_equal(m, expected)
        assert s.responses("train", rois=name).shape == (12, int(m.sum()))
    # one hemisphere only
    assert s.responses("train", rois="faces", hemis=("rh",)).shape[1] == s.roi_mask("faces", hemis=("rh",)).sum()


def test_fsaverage_to_fsaverage5_index(real_shaped):
    s = AlgonautsSubject(real_shaped / "subj01")
    vt = s.vertex_table()
    small = vt.surface_index < N_FSAVERAGE5
    assert (vt.fsaverage5_index[small] == vt.surface_index[small]).all()
    assert (vt.fsaverage5_index[~small] == -1).all()


def test_fsaverage5_surface(tmp_path):
    make_subject(tmp_path, "subj02", n_lh=3000, n_rh=3100, n_surface=N_FSAVERAGE5)
    s = AlgonautsSubject(tmp_path / "subj02")
    assert s.surface == "fsaverage5"
    assert (s.vertex_table().fsaverage5_index == s.vertex_table().surface_index).all()


def test_unknown_roi_name(real_shaped):
    s = AlgonautsSubject(real_shaped / "subj01")
    with pytest.raises(BrainVizDataError, match="unknown ROI"):
        s.roi_mask("FFA-9")


def test_image_names():
    assert parse_image_name("train-0001_nsd-00013.png") == {"split": "train", "index": 1, "dataset": "nsd", "id": 13}
    with pytest.raises(BrainVizDataError):
        parse_image_name("image13.png")


# ------------------------------------------------------------------ malformed input

def _small(tmp_path, **kw):
    return make_subject(tmp_path, "subj01", n_lh=300, n_rh=320, n_surface=N_FSAVERAGE5, **kw)


def _fmri(d, hemi="lh"):
    return d / "training_split" / "training_fmri" / f"{hemi}_training_fmri.npy"


def test_missing_file(tmp_path):
    d = _small(tmp_path)
    _fmri(d).unlink()
    with pytest.raises(BrainVizDataError, match="lh_training_fmri.npy.*missing"):
        AlgonautsSubject(d)


def test_wrong_length(tmp_path):
    d = _small(tmp_path)
    np.save(_fmri(d, "rh"), np.zeros((12, 319), np.float32))
    with pytest.raises(BrainVizDataError, match="rh_training_fmri.npy: has 319 vertices"):
        AlgonautsSubject(d)


def test_nans(tmp_path):
    d = _small(tmp_path)
    y = np.load(_fmri(d))
    y[3, 7] = np.nan
    np.save(_fmri(d), y)
    with pytest.raises(BrainVizDataError, match=r"NaN.*\(3, 7\)"):
        AlgonautsSubject(d)


def test_mismatched_image_count(tmp_path):
    d = _small(tmp_path)
    next((d / "training_split" / "training_images").iterdir()).unlink()
    with pytest.raises(BrainVizDataError, match="12 rows but the folder holds 11 images"):
        AlgonautsSubject(d)


def test_wrong_dtype(tmp_path):
    d = _small(tmp_path)
    np.save(_fmri(d), np.zeros((12, 300), np.int32))
    with pytest.raises(BrainVizDataError, match="dtype int32"):
        AlgonautsSubject(d)


def test_corrupt_npy(tmp_path):
    d = _small(tmp_path)
    _fmri(d).write_bytes(b"not numpy")
    with pytest.raises(BrainVizDataError, match="not a readable .npy"):
        AlgonautsSubject(d)


def test_bad_roi_file(tmp_path):
    d = _small(tmp_path)
    np.save(d / "roi_masks" / "lh.floc-faces_challenge_space.npy", np.zeros(10, np.int64))
    with pytest.raises(BrainVizDataError, match="lh.floc-faces_challenge_space.npy: expected shape"):
        AlgonautsSubject(d)
    np.save(d / "roi_masks" / "lh.floc-faces_challenge_space.npy", np.full(300, 42, np.int64))
    with pytest.raises(BrainVizDataError, match=r"ROI ids \[42\]"):
        AlgonautsSubject(d)


def test_bad_surface_mask(tmp_path):
    d = _small(tmp_path)
    np.save(d / "roi_masks" / "lh.all-vertices_fsaverage_space.npy", np.ones(5000, np.int64))
    with pytest.raises(BrainVizDataError, match="expected length 163842"):
        AlgonautsSubject(d)


def test_bad_image_name(tmp_path):
    d = _small(tmp_path)
    (d / "training_split" / "training_images" / "cat.png").write_bytes(b"")
    with pytest.raises(BrainVizDataError, match="cat.png: image name"):
        AlgonautsSubject(d)


def test_no_subjects(tmp_path):
    with pytest.raises(BrainVizDataError, match="no subjNN folders"):
        load_dataset(tmp_path)


def test_inspect_cli(real_shaped, tmp_path):
    out = subprocess.run([sys.executable, "-m", "precompute", "inspect", str(real_shaped)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "19004" in out.stdout.replace(",", "") and "FFA-1" in out.stdout and "fsaverage" in out.stdout
    bad = tmp_path / "bad"
    shutil.copytree(real_shaped, bad)
    _fmri(bad / "subj01").unlink()
    out = subprocess.run([sys.executable, "-m", "precompute", "inspect", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "lh_training_fmri.npy" in out.stderr and "Traceback" not in out.stderr
