"""GIfTI export (brainviz.export): nibabel round trips, vertex counts, label tables, nilearn plotting."""
from __future__ import annotations

import io
import zipfile

import matplotlib

matplotlib.use("Agg")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brainviz import export as X  # noqa: E402
from brainviz.errors import BrainVizDataError  # noqa: E402


def _vertices(n_lh: int, n_rh: int, surface_n: int, seed: int = 0) -> pd.DataFrame:
    """A challenge-space vertices table: random distinct surface vertices per hemisphere."""
    rng = np.random.default_rng(seed)
    lh = np.sort(rng.choice(surface_n, n_lh, replace=False))
    rh = np.sort(rng.choice(surface_n, n_rh, replace=False))
    idx = np.concatenate([lh, rh])
    return pd.DataFrame({"hemi": ["lh"] * n_lh + ["rh"] * n_rh, "surface_index": idx,
                         "fsaverage5_index": np.where(idx < 10242, idx, -1)})


def test_func_gifti_round_trip_fsaverage5(tmp_path):
    v = _vertices(700, 900, 10242)
    vals = np.random.default_rng(1).normal(size=len(v)).astype(np.float32)
    m = X.SurfaceMap.from_vertices(vals, v, "fsaverage5", name="Welch t", meta={"brainviz:simulated": "true"})
    paths = X.save_gifti(m, tmp_path, "t_map")
    assert [p.name for p in paths] == ["lh.t_map.func.gii", "rh.t_map.func.gii"]
    for h, start, stop in (("lh", 0, 700), ("rh", 700, 1600)):
        img = nib.load(tmp_path / f"{h}.t_map.func.gii")
        assert len(img.darrays) == 1
        da = img.darrays[0]
        assert da.data.dtype == np.float32 and da.data.shape == (10242,)
        assert nib.nifti1.intent_codes.niistring[da.intent] == "NIFTI_INTENT_ESTIMATE"
        idx = v["surface_index"].to_numpy()[start:stop]
        np.testing.assert_array_equal(da.data[idx], vals[start:stop])
        others = np.setdiff1d(np.arange(10242), idx)
        assert np.isnan(da.data[others]).all()
        assert img.meta["AnatomicalStructurePrimary"] == X.STRUCTURE[h]
        assert img.meta["brainviz:surface"] == "fsaverage5" and img.meta["brainviz:simulated"] == "true"
        assert da.meta["Name"] == "Welch t"
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left


def test_func_gifti_on_fsaverage_has_nan_outside_the_data(tmp_path):
    v = _vertices(300, 250, 163_842, seed=2)
    assert v["surface_index"].max() >= 10242  # real-data indices beyond fsaverage5
    vals = np.arange(len(v), dtype=np.float32)
    m = X.SurfaceMap.from_vertices(vals, v, "fsaverage", name="r")
    X.save_gifti(m, tmp_path, "r")
    lh = nib.load(tmp_path / "lh.r.func.gii").darrays[0].data
    rh = nib.load(tmp_path / "rh.r.func.gii").darrays[0].data
    assert lh.shape == rh.shape == (163_842,)
    assert np.isfinite(lh).sum() == 300 and np.isfinite(rh).sum() == 250
    np.testing.assert_array_equal(rh[v["surface_index"].to_numpy()[300:]], vals[300:])


def test_several_maps_are_several_data_arrays(tmp_path):
    v = _vertices(50, 60, 10242)
    vals = np.random.default_rng(3).normal(size=(4, len(v))).astype(np.float32)
    m = X.SurfaceMap.from_vertices(vals, v, "fsaverage5", name="predicted", map_names=["a.png", "b", "c", "d"])
    X.save_gifti(m, tmp_path, "pred")
    img = nib.load(tmp_path / "lh.pred.func.gii")
    assert [d.meta["Name"] for d in img.darrays] == ["a.png", "b", "c", "d"]
    stacked = np.stack([d.data for d in img.darrays])
    np.testing.assert_array_equal(stacked[:, v["surface_index"].to_numpy()[:50]], vals[:, :50])


def test_label_gifti_keeps_names_colors_and_codes(tmp_path):
    v = _vertices(400, 400, 10242, seed=4)
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, len(v)).astype(float)
    labels[:10] = np.nan  # no data (e.g. filtered out)
    names = {0: "cluster 0: faces 9/10", 1: "cluster 1: places", 2: "cluster 2: food"}
    colors = {0: "#e45756", 1: "#54a24b", 2: "#9d755d"}
    m = X.SurfaceMap.from_vertices(labels, v, "fsaverage5", name="clusters k=3", labels=names, colors=colors)
    X.save_gifti(m, tmp_path, "clusters")
    img = nib.load(tmp_path / "lh.clusters.label.gii")
    da = img.darrays[0]
    assert da.data.dtype == np.int32 and da.data.shape == (10242,)
    assert nib.nifti1.intent_codes.niistring[da.intent] == "NIFTI_INTENT_LABEL"
    table = img.labeltable.get_labels_as_dict()
    assert table == {0: "???", 1: names[0], 2: names[1], 3: names[2]}
    rgba = {lab.key: lab.rgba for lab in img.labeltable.labels}
    assert rgba[1][:3] == pytest.approx((0xe4 / 255, 0x57 / 255, 0x56 / 255))
    idx = v["surface_index"].to_numpy()[:400]
    expected = np.where(np.isnan(labels[:400]), 0, labels[:400] + 1)
    np.testing.assert_array_equal(da.data[idx], expected)
    assert (np.delete(da.data, idx) == 0).all()


def test_label_without_a_name_is_refused():
    v = _vertices(20, 20, 10242)
    with pytest.raises(BrainVizDataError, match="no name"):
        X.SurfaceMap.from_vertices(np.full(40, 4.0), v, "fsaverage5", labels={0: "a"}).images()


def test_wrong_surface_is_refused():
    v = _vertices(20, 20, 163_842, seed=6)
    with pytest.raises(BrainVizDataError, match="fsaverage5"):
        X.SurfaceMap.from_vertices(np.zeros(40), v, "fsaverage5")
    with pytest.raises(BrainVizDataError, match="values"):
        X.func_gifti(np.zeros(100), "lh", surface="fsaverage5")


def test_zip_holds_both_hemispheres_and_a_readme():
    v = _vertices(30, 30, 10242)
    m = X.SurfaceMap.from_vertices(np.ones(60), v, "fsaverage5", name="mean")
    z = zipfile.ZipFile(io.BytesIO(X.gifti_zip(m, "mean", readme=X.readme_text(m, "mean", simulated=True))))
    assert sorted(z.namelist()) == ["README.txt", "lh.mean.func.gii", "rh.mean.func.gii"]
    assert "SIMULATED" in z.read("README.txt").decode()
    img = nib.GiftiImage.from_bytes(z.read("rh.mean.func.gii"))
    assert np.nansum(img.darrays[0].data) == 30


def test_fsaverage5_display_maps_export_unchanged():
    maps = {"lh": np.r_[np.arange(5.0), np.full(10237, np.nan)], "rh": np.full(10242, 2.0)}
    m = X.SurfaceMap.from_fsaverage5(maps, name="x")
    imgs = m.images()
    np.testing.assert_array_equal(imgs["lh"].darrays[0].data[:5], np.arange(5.0))
    assert np.isnan(imgs["lh"].darrays[0].data[5:]).all()


def test_nilearn_plots_the_exported_maps(tmp_path):
    from nilearn import datasets, plotting, surface

    fs = datasets.load_fsaverage("fsaverage5")
    v = _vertices(2000, 2000, 10242, seed=7)
    vals = np.random.default_rng(8).normal(size=len(v))
    X.save_gifti(X.SurfaceMap.from_vertices(vals, v, "fsaverage5", name="t"), tmp_path, "t")
    X.save_gifti(X.SurfaceMap.from_vertices(np.arange(len(v)) % 3, v, "fsaverage5", labels={0: "a", 1: "b", 2: "c"}),
                 tmp_path, "clusters")
    import matplotlib.pyplot as plt

    for h, part in (("lh", "left"), ("rh", "right")):
        data = surface.load_surf_data(str(tmp_path / f"{h}.t.func.gii"))
        assert data.shape == (10242,)
        fig = plotting.plot_surf_stat_map(fs["inflated"].parts[part], data, hemi=part, engine="matplotlib")
        assert fig is not None
        plt.close("all")
        labels = surface.load_surf_data(str(tmp_path / f"{h}.clusters.label.gii"))
        assert labels.shape == (10242,) and set(np.unique(labels)) <= {0, 1, 2, 3}
        fig = plotting.plot_surf_roi(fs["inflated"].parts[part], labels, hemi=part, engine="matplotlib")
        assert fig is not None
        plt.close("all")


def test_store_surface_reads_the_dataset(tmp_path):
    class FakeStore:
        def subjects(self):
            return pd.DataFrame({"subject": ["subj01"], "dataset_id": ["nsd"]})

        def datasets(self):
            return pd.DataFrame({"dataset_id": ["nsd"], "surface": ["fsaverage"]})

        def vertices(self, subject):
            return _vertices(5, 5, 10242)

    assert X.store_surface(FakeStore(), "subj01") == "fsaverage"  # the store says so, even if indices are small
    assert X.infer_surface(_vertices(5, 5, 163_842, seed=9)) == "fsaverage"
