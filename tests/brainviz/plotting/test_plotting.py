"""brainviz.plotting: fsaverage5 mapping, Plotly brain figures, off-screen PNG renders."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from brainviz import plotting as B
from brainviz.data.surfaces import load_meshes
from brainviz.plotting._plotly import _map_scaffold, _rgb_u8

N = B.N_FSAVERAGE5


def _map(fill=np.nan, region=slice(0, 3000), value=1.0):
    out = {}
    for h in B.HEMIS:
        a = np.full(N, fill)
        a[region] = value if np.isscalar(value) else value[: len(range(*region.indices(N)))]
        out[h] = a
    return out


def test_vertex_values_to_fsaverage5_scatters_and_drops():
    vt = pd.DataFrame({"hemi": ["lh", "lh", "rh", "rh"], "fsaverage5_index": [5, -1, 7, 10241]})
    m = B.vertex_values_to_fsaverage5(np.array([1.0, 2.0, 3.0, np.nan]), vt)
    assert m["lh"][5] == 1.0 and np.isnan(m["lh"]).sum() == N - 1
    assert m["rh"][7] == 3.0 and np.isnan(m["rh"][10241])
    with pytest.raises(ValueError, match="values"):
        B.vertex_values_to_fsaverage5(np.zeros(3), vt)


def test_vertex_values_duplicates_mean_or_mode():
    vt = pd.DataFrame({"hemi": ["lh"] * 3, "fsaverage5_index": [4, 4, 4]})
    assert B.vertex_values_to_fsaverage5(np.array([1.0, 2.0, 6.0]), vt)["lh"][4] == 3.0
    assert B.vertex_values_to_fsaverage5(np.array([2.0, 2.0, 6.0]), vt, categorical=True)["lh"][4] == 2.0


@pytest.mark.parametrize("surface", B.SURFACES)
def test_brain_figure_meshes_colors_and_layout(surface):
    vals = _map(value=np.linspace(-1, 1, 3000))
    fig = B.brain_figure(vals, surface=surface, title="t", colorbar_title="r")
    meshes = [t for t in fig.data if isinstance(t, go.Mesh3d)]
    assert len(meshes) == 2
    lh, rh = meshes
    assert len(lh.x) == N and len(lh.vertexcolor) == N and len(lh.i) > 18000
    assert np.max(lh.x) < np.min(rh.x)  # hemispheres side by side, lh on the left
    colors = np.array(lh.vertexcolor)
    # vertices without a value are gray (r == g == b), the others are colored
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colors])
    gray = (rgb.max(1) - rgb.min(1)) <= 2
    assert gray[3000:].all() and (~gray[:3000]).mean() > 0.9
    assert len(set(colors[3000:])) > 20  # shading by sulcal depth, not one flat gray
    bars = [t for t in fig.data if isinstance(t, go.Scatter3d) and t.marker is not None and t.marker.showscale]
    assert len(bars) == 1 and bars[0].marker.cmin == pytest.approx(-bars[0].marker.cmax)
    assert fig.layout.scene.xaxis.visible is False


def test_brain_figure_categorical_outlines_labels_single_hemi():
    lab = _map(value=np.repeat(np.arange(3.0), 1000))
    rois = {h: np.where(np.arange(N) < 1500, "FFA-1", None).astype(object) for h in B.HEMIS}
    pos = B.roi_label_positions(rois)
    fig = B.brain_figure(lab, hemis=("rh",), categorical=True, category_names={0: "faces"}, outlines=rois,
                         labels=pos)
    assert sum(isinstance(t, go.Mesh3d) for t in fig.data) == 1
    legend = [t.name for t in fig.data if getattr(t, "showlegend", None)]
    assert legend == ["faces", "1", "2"]
    lines = [t for t in fig.data if t.name == "outlines"]
    assert lines and sum(x is None for x in lines[0].x) > 10
    texts = [t for t in fig.data if getattr(t, "mode", None) == "text"]
    assert any("FFA-1" in list(t.text) for t in texts)


def test_outline_segments_and_vertices():
    inside = load_meshes("pial")["lh"].coordinates[:, 1] < -60  # a patch: the occipital lobe
    lab = np.where(inside, "A", None).astype(object)
    segs = B.outline_segments(lab, "lh")
    assert segs.ndim == 3 and segs.shape[1:] == (2, 3) and len(segs) > 10
    assert len(B.outline_segments(np.full(N, None, dtype=object), "lh")) == 0
    m = B.outline_vertices(lab, "lh")
    assert 0 < m.sum() < 0.5 * inside.sum() and not m[~inside].any()


def test_color_limits_and_colors():
    lo, hi = B.color_limits({"lh": np.array([-1.0, 0.5, 2.0, np.nan])})
    assert lo == -hi
    lo, hi = B.color_limits({"lh": np.array([0.1, 0.5, 0.9])})
    assert 0 < lo < hi
    assert B.color_limits({"lh": np.full(3, np.nan)}) == (0.0, 1.0)
    cc = B.category_colors([0, 1, 2], {1: "#000000"})
    assert cc[1] == "#000000" and cc[0] != cc[2]
    assert B.fade_color("#ff0000", 1.0) == "#d9d9d9"
    with pytest.raises(ValueError, match="colormap"):
        B.brain_figure(_map(value=1.0), cmap="no-such-map")
    with pytest.raises(ValueError, match="10242"):
        B.brain_figure({"lh": np.zeros(5)})
    with pytest.raises(ValueError, match="surface"):
        B.brain_figure(_map(value=1.0), surface="teapot")


def test_render_png_is_a_real_image():
    vals = _map(value=np.linspace(-1, 1, 3000))
    try:
        png = B.render_png(vals, title="test", views=("posterior-ventral",), size=(500, 380), dpi=100)
    except RuntimeError as exc:  # no off-screen OpenGL on this machine
        pytest.skip(f"off-screen rendering unavailable: {exc}")
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img.std() > 10
    sat = img.max(-1) - img.min(-1)
    assert (sat > 60).mean() > 0.01  # colored vertices present


def test_render_png_categorical_flat():
    lab = _map(value=np.repeat(np.arange(3.0), 1000))
    try:
        png = B.render_png(lab, surface="flat", categorical=True, category_names={0: "a"}, size=(400, 300), dpi=100,
                           outlines={h: np.where(np.arange(N) < 1500, "R", None).astype(object) for h in B.HEMIS})
    except RuntimeError as exc:
        pytest.skip(f"off-screen rendering unavailable: {exc}")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- fast path (map_figure)
def _rgb_of_hex(colors) -> np.ndarray:
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colors])


@pytest.mark.parametrize("surface", B.SURFACES)
def test_map_figure_looks_like_brain_figure(surface):
    """Same geometry, vertex colors, colour bar and camera as the uncached builder."""
    vals = _map(value=np.linspace(-1, 1, 3000))
    kw = dict(surface=surface, title="t", colorbar_title="r", vmin=-1, vmax=1)
    old, new = B.brain_figure(vals, **kw), B.map_figure(vals, meta="token-1", **kw)
    old_m = [t for t in old.data if isinstance(t, go.Mesh3d)]
    new_m = [t for t in new.data if isinstance(t, go.Mesh3d)]
    assert len(new_m) == 2
    for a, b in zip(old_m, new_m):
        np.testing.assert_allclose(np.asarray(b.x), np.asarray(a.x), atol=1e-4)
        assert np.array_equal(np.asarray(b.i, np.int64), np.asarray(a.i, np.int64))
        rgb = np.asarray(b.vertexcolor)
        assert rgb.shape == (N, 3) and rgb.dtype == np.uint8
        assert np.abs(rgb.astype(int) - _rgb_of_hex(a.vertexcolor)).max() <= 1
        assert a.lighting == b.lighting
    gray = np.ptp(np.asarray(new_m[0].vertexcolor).astype(int), axis=1) <= 2
    assert gray[3000:].all() and (~gray[:3000]).mean() > 0.9  # no value: shaded gray; values: colored
    cd = np.asarray(new_m[0].customdata)
    assert cd.shape == (N, 2) and cd[10, 0] == 10 and np.isnan(cd[5000, 1])
    bars = [t for t in new.data if isinstance(t, go.Scatter3d) and t.marker is not None and t.marker.showscale]
    assert len(bars) == 1 and (bars[0].marker.cmin, bars[0].marker.cmax) == (-1, 1)
    assert new.layout.scene.camera == old.layout.scene.camera
    assert new.layout.uirevision == old.layout.uirevision and new.layout.meta == "token-1"
    assert new.layout.title.text == "t"


def test_map_figure_reuses_the_scaffold_and_draws_outlines():
    vals = _map(value=np.linspace(0, 1, 3000))
    B.map_figure(vals, view="ventral")
    hits = _map_scaffold.cache_info().hits
    B.map_figure(_map(value=2.0), view="ventral")
    assert _map_scaffold.cache_info().hits == hits + 1
    rois = {h: np.where(np.arange(N) < 1500, "V1", None).astype(object) for h in B.HEMIS}
    fig = B.map_figure(vals, outlines=rois, hemis=("lh",))
    assert sum(isinstance(t, go.Mesh3d) for t in fig.data) == 1
    lines = [t for t in fig.data if t.name == "outlines"]
    assert lines and sum(x is None for x in lines[0].x) > 10
    # near-black colors are kept dark (plotly.js reads channel arrays with max <= 1 as fractions)
    assert _rgb_u8(np.array([[1 / 255, 1 / 255, 0.0]])).tolist() == [[2, 2, 2]]


def test_map_figure_is_cheaper_to_send():
    """The figure as st.plotly_chart serializes it: smaller than the uncached builder's."""
    import plotly.io
    import plotly.tools

    vals = _map(value=np.linspace(-1, 1, 3000))
    sizes = [len(plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(f, True), validate=False))
             for f in (B.brain_figure(vals), B.map_figure(vals))]
    assert sizes[1] < 0.75 * sizes[0]
