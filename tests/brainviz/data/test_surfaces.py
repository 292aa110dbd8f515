"""fsaverage5 meshes, atlases, fsaverage -> fsaverage5 mapping and the visual-cortex mask."""
from __future__ import annotations

import numpy as np
import pytest

from brainviz.data import surfaces as S
from brainviz.errors import BrainVizDataError


@pytest.mark.parametrize("kind", S.MESH_KINDS)
def test_meshes_have_fsaverage5_shapes(kind):
    for h in S.HEMIS:
        m = S.load_mesh(kind, h)
        assert m.coordinates.shape == (S.N_FSAVERAGE5, 3)
        assert m.faces.ndim == 2 and m.faces.shape[1] == 3
        assert m.faces.min() >= 0 and m.faces.max() < S.N_FSAVERAGE5
        if kind != "flat":
            assert m.faces.shape[0] == 20_480
        assert np.isfinite(m.coordinates).all()
    assert S.load_mesh(kind, "lh") is S.load_mesh(kind, "lh")  # cached


def test_mesh_hemispheres_and_bad_kind():
    pial = S.load_meshes("pial")
    assert pial["lh"].coordinates[:, 0].mean() < 0 < pial["rh"].coordinates[:, 0].mean()
    with pytest.raises(BrainVizDataError):
        S.load_mesh("smoothwm", "lh")
    with pytest.raises(BrainVizDataError):
        S.load_mesh("pial", "both")


@pytest.mark.parametrize("data_type", ["sulcal", "curvature"])
def test_shading(data_type):
    for h in S.HEMIS:
        v = S.load_shading(data_type, h)
        assert v.shape == (S.N_FSAVERAGE5,) and np.isfinite(v).all() and v.std() > 0


def test_fsaverage_to_fsaverage5():
    full = np.arange(S.N_FSAVERAGE)
    small = S.fsaverage_to_fsaverage5(full)
    assert small.shape == (S.N_FSAVERAGE5,)
    np.testing.assert_array_equal(small, np.arange(S.N_FSAVERAGE5))
    two_d = np.stack([full, -full])
    assert S.fsaverage_to_fsaverage5(two_d).shape == (2, S.N_FSAVERAGE5)
    assert S.fsaverage_to_fsaverage5(two_d.T, axis=0).shape == (S.N_FSAVERAGE5, 2)
    np.testing.assert_array_equal(S.fsaverage_to_fsaverage5(small), small)
    with pytest.raises(BrainVizDataError):
        S.fsaverage_to_fsaverage5(np.zeros(1000))


def test_atlases_on_fsaverage5():
    for h in S.HEMIS:
        labels, names = S.read_atlas("aparc.a2009s", h)
        assert labels.shape == (S.N_FSAVERAGE5,)
        assert "S_calcarine" in names.values()
        calc = S.atlas_mask("aparc.a2009s", h, "S_calcarine")
        assert 100 < calc.sum() < 400
        areas = S.visuotopic_areas(h)
        assert areas["V1"].sum() > 150 and areas["V2"].sum() > 50 and areas["hV4"].sum() > 30
        # the PALS V1 and the ex-vivo V1 label agree
        v1 = S.read_label("V1_exvivo.thresh", h)
        assert v1.shape == (S.N_FSAVERAGE5,)
        assert (v1 & areas["V1"]).sum() > 0.5 * v1.sum()


def test_visual_cortex_mask():
    for h in S.HEMIS:
        m = S.visual_cortex_mask(h)
        assert m.dtype == bool and m.shape == (S.N_FSAVERAGE5,)
        assert 1500 < m.sum() < 5000
        assert m[S.visuotopic_areas(h)["V1"]].all()
        frontal = S.atlas_mask("aparc.a2009s", h, ["G_front_sup", "G_precentral", "S_central"])
        assert not (m & frontal).any()
        assert S.load_mesh("pial", h).coordinates[m, 1].max() < -20  # posterior cortex only


def test_geodesic_distance():
    d = S.geodesic_distance("lh", [0])
    assert d[0] == 0 and np.isfinite(d).all() and d.max() > 100
    nb = S.mesh_graph("lh")[0].indices
    assert np.all(d[nb] > 0) and np.all(d[nb] < 10)
    lim = S.geodesic_distance("lh", np.eye(1, S.N_FSAVERAGE5, 0, dtype=bool)[0], limit=10)
    assert np.isinf(lim).sum() > 9000


def test_missing_label_folder_raises(tmp_path):
    with pytest.raises(BrainVizDataError) as err:
        S.read_atlas("aparc.a2009s", "lh", data_root=tmp_path)
    assert "fsaverage_labels" in str(err.value)
    (tmp_path / "fsaverage_labels").mkdir()
    (tmp_path / "fsaverage_labels" / "lh.broken.annot").write_bytes(b"not an annot")
    with pytest.raises(BrainVizDataError) as err:
        S.read_atlas("broken", "lh", data_root=tmp_path)
    assert "lh.broken.annot" in str(err.value)
    with pytest.raises(BrainVizDataError):
        S.read_label("V9_exvivo", "lh", data_root=tmp_path)
