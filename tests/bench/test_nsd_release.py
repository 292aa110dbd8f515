"""The NSD-sized benchmark dataset (bench/make_nsd_release.py) at CI size: the released Algonauts 2023
layout, the real counts scaled, few distinct image contents, deterministic."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.make_nsd_release import NC_FOLDER, NSD_TRAIN_TEST, NSD_VERTICES, make_release, release_counts
from brainviz.catalog import image_key
from brainviz.data.algonauts import load_dataset
from brainviz.errors import BrainVizDataError
from brainviz.features.cache import distinct_files
from brainviz.names import N_FSAVERAGE

SCALE = 0.005


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("nsd") / "data", scale=SCALE)


def test_full_size_counts_are_the_released_ones():
    c = release_counts()  # vertex counts checked against the real noise-ceiling files of the data root
    assert [(v["train"], v["test"]) for v in c.values()] == list(NSD_TRAIN_TEST)
    assert [(v["lh"], v["rh"]) for v in c.values()] == list(NSD_VERTICES)
    assert sum(v["train"] for v in c.values()) == 75_086
    assert release_counts(image_scale=0.1)["subj04"] == {"train": 878, "test": 40, "lh": 19004, "rh": 20544}
    with pytest.raises(BrainVizDataError, match="8 subjects"):
        release_counts(n_subjects=9)


def test_written_exactly_as_released(release):
    assert not (release / "manifest.json").exists()
    ds = load_dataset(release, validate=True)
    assert list(ds.subjects) == [f"subj{i:02d}" for i in range(1, 9)]
    want = release_counts(image_scale=SCALE, vertex_scale=SCALE)
    for name, sub in ds.subjects.items():
        d = release / name
        assert not (d / "test_split" / "test_fmri").exists()
        assert not list(d.rglob("*repeats*"))
        assert (len(sub.train_images), len(sub.test_images)) == (want[name]["train"], want[name]["test"])
        assert sub.n_vertices == {"lh": want[name]["lh"], "rh": want[name]["rh"]}
        assert not sub.has_responses("test")
        for h in ("lh", "rh"):
            mask = np.load(d / "roi_masks" / f"{h}.all-vertices_fsaverage_space.npy")
            assert mask.shape == (N_FSAVERAGE,) and mask.sum() == want[name][h]
            y = np.load(d / "training_split" / "training_fmri" / f"{h}_training_fmri.npy", mmap_mode="r")
            assert y.dtype == np.float32 and y.shape == (want[name]["train"], want[name][h])
            assert np.load(release / NC_FOLDER / name / f"{h}.npy").shape == (want[name][h],)
        keys = [image_key(p) for p in sub.train_images + sub.test_images]
        assert len(set(keys)) == len(keys)  # no image twice within a subject
        assert sub.train_images[0].name.startswith("train-0001_nsd-")


def test_few_contents_under_many_ids(release):
    """~every NSD id is its own image key, but the files show at most 1,000 contents (hard links),
    so features are computed once per content; the shared images are in every training set."""
    ds = load_dataset(release)
    paths = {image_key(p): p for sub in ds.subjects.values() for p in sub.train_images + sub.test_images}
    firsts, inverse = distinct_files(list(paths.values()))
    assert len(firsts) < len(paths) and len(firsts) <= 1000  # at NSD size: ~70,000 keys, 1,000 contents
    inodes = {p.stat().st_ino for p in paths.values()}
    assert len(inodes) == len(firsts)  # repeats of a content are hard links, not copies
    train_sets = [{image_key(p) for p in s.train_images} for s in ds.subjects.values()]
    assert len(set.intersection(*train_sets)) >= 20


def test_deterministic_and_never_overwrites(release, tmp_path):
    again = make_release(tmp_path / "again", scale=SCALE)
    for h in ("lh", "rh"):
        f = Path("subj08") / "training_split" / "training_fmri" / f"{h}_training_fmri.npy"
        np.testing.assert_array_equal(np.load(again / f), np.load(release / f))
    with pytest.raises(BrainVizDataError, match="not empty"):
        make_release(again, scale=SCALE)
