"""The 92-image loader on the real shared data (skipped when absent) and on broken files."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from brainviz.data.kriegeskorte92 import (BRAIN_FILE, K92, SUPPLEMENTAL_FILE, load_kriegeskorte92)
from brainviz.errors import BrainVizDataError
from brainviz.paths import KRIEGESKORTE92, resolve_data_root


def _real_root():
    try:
        root = resolve_data_root()
    except BrainVizDataError:
        return None
    return root if (root / KRIEGESKORTE92 / SUPPLEMENTAL_FILE).is_file() else None


REAL = _real_root()
needs_real = pytest.mark.skipif(REAL is None, reason="shared kriegeskorte92 data not available")


@pytest.fixture(scope="module")
def k92() -> K92:
    return load_kriegeskorte92(REAL)


@needs_real
def test_shapes_and_images(k92):
    assert k92.images.shape == (92, 175, 175, 3) and k92.images.dtype == np.uint8
    assert k92.n_images == 92 and len(k92.image_keys) == 92
    assert k92.image_keys[0] == "k92-00001" and k92.image_keys[-1] == "k92-00092"
    pil = k92.pil_images()
    assert len(pil) == 92 and pil[0].mode == "RGB" and pil[0].size == (175, 175)
    assert np.array_equal(np.asarray(pil[5]), k92.images[5])


@needs_real
def test_human_rdms(k92):
    h = k92.human_it
    assert h.shape == (8, 92, 92)
    assert np.array_equal(h, np.transpose(h, (0, 2, 1)))
    assert np.all(np.diagonal(h, axis1=1, axis2=2) == 0)
    assert np.all(h >= 0) and h.max() < 2
    assert list(k92.human_it_subjects) == ["BE", "BE", "KO", "KO", "SN", "SN", "TI", "TI"]
    mean, subjects = k92.human_it_subject_mean()
    assert mean.shape == (4, 92, 92) and subjects == ["BE", "KO", "SN", "TI"]
    np.testing.assert_allclose(mean[1], h[2:4].mean(0))


@needs_real
def test_categories(k92):
    c = k92.categories
    assert len(c) == 92 and list(c.index) == k92.image_keys
    assert c["animate"].sum() == 48 and c["inanimate"].sum() == 44
    assert not (c["animate"] & c["inanimate"]).any()
    assert c["face"].sum() == 24 and c["body"].sum() == 24
    assert (c["human"] <= c["animate"]).all() and (c["face"] <= c["animate"]).all()
    assert c["natural_object"].sum() + c["artificial_object"].sum() == 44
    assert set(c["category"]) == {"human bodypart", "human face", "nonhuman bodypart",
                                  "nonhuman face", "natural inanimate", "artificial inanimate"}
    assert (c.loc[c["category"] == "artificial inanimate", "natural"] == False).all()  # noqa: E712


@needs_real
def test_models(k92):
    for name in ["animacy", "FaceBodyManmadeNatobj", "monkeyIT", "EVA", "HMAX", "V1", "Silhouette",
                 "RADON", "HMAX-natImPatch", "behaviour"]:
        m = k92.models[name]
        assert m.shape == (92, 92) and np.allclose(m, m.T) and np.all(np.diag(m) == 0), name
    anim = k92.models["animacy"]
    animate = k92.categories["animate"].to_numpy()
    # animacy model: 0 within animate, 1 between animate and inanimate
    assert np.all(anim[np.ix_(animate, animate)] == 0) and np.all(anim[np.ix_(animate, ~animate)] == 1)
    np.testing.assert_allclose(k92.monkey_it, k92.models["monkeyIT"])
    assert k92.behaviour.shape == (16, 92, 92)


def test_missing_folder(tmp_path):
    with pytest.raises(BrainVizDataError, match="kriegeskorte92"):
        load_kriegeskorte92(tmp_path)


def test_corrupt_file(tmp_path):
    folder = tmp_path / KRIEGESKORTE92
    folder.mkdir()
    (folder / SUPPLEMENTAL_FILE).write_bytes(b"this is not a mat file" * 10)
    with pytest.raises(BrainVizDataError, match=SUPPLEMENTAL_FILE):
        load_kriegeskorte92(tmp_path)


@needs_real
def test_malformed_brain_rdm(tmp_path):
    import shutil

    folder = tmp_path / KRIEGESKORTE92
    shutil.copytree(REAL / KRIEGESKORTE92, folder)
    scipy.io.savemat(folder / BRAIN_FILE, {"RDMs": np.zeros((3, 3))})
    with pytest.raises(BrainVizDataError, match=BRAIN_FILE):
        load_kriegeskorte92(tmp_path)
    scipy.io.savemat(folder / BRAIN_FILE, {"other": np.zeros(3)})
    with pytest.raises(BrainVizDataError, match="RDMs"):
        load_kriegeskorte92(tmp_path)
