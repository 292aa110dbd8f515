"""Interactive brain figures with Plotly (one ``Mesh3d`` per hemisphere).

* :func:`brain_figure` returns a Plotly figure of any map (continuous or categorical).
* :func:`map_figure` is the fast path for continuous maps that change often (live
  prediction): the mesh, lighting, hemisphere letters and layout of each (surface,
  hemispheres, view, height) are built once and cached; a new map only replaces the
  per-vertex colors, the hover values, the colour bar limits and the title. Same look
  as :func:`brain_figure` (sulcal shading, ROI outlines, colour bar), ~10x cheaper to
  build and to serialize (colors travel as uint8 RGB arrays instead of hex strings).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from ._maps import (DEFAULT_VIEW, HEMIS, N_FSAVERAGE5, VIEWS, _as_hemi_array, _label_codes, _meshes, _mpl_cmap,
                    layout_coords, outline_segments, vertex_rgb)

__all__ = ["brain_figure", "map_figure"]


def _segments_to_lines(segs: np.ndarray):
    """(n, 2, 3) segments -> x, y, z lists with None breaks (one Scatter3d trace)."""
    n = len(segs)
    pts = np.full((n, 3, 3), np.nan, np.float64)
    pts[:, :2] = segs
    flat = pts.reshape(-1, 3).round(2)
    out = []
    for k in range(3):
        col = flat[:, k].astype(object)
        col[np.isnan(flat[:, k])] = None
        out.append(col.tolist())
    return out


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _to_hex(rgb: np.ndarray) -> np.ndarray:
    """(n, 3) RGB in [0, 1] -> (n,) '#rrggbb' strings (built as ASCII bytes: ~5x faster than np.char)."""
    u8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    chars = np.empty((len(u8), 7), dtype=np.uint8)
    chars[:, 0] = ord("#")
    chars[:, 1::2] = _HEX_DIGITS[u8 >> 4]
    chars[:, 2::2] = _HEX_DIGITS[u8 & 15]
    return chars.view("S7").ravel().astype("U7")


def _plotly_colorscale(cmap, n: int = 11):
    cm = _mpl_cmap(cmap)
    return [[i / (n - 1), "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in cm(i / (n - 1))[:3])] for i in range(n)]


# --------------------------------------------------------------------------- plotly
def brain_figure(
    values_by_hemi: Mapping[str, np.ndarray],
    surface: str = "inflated",
    hemis: Sequence[str] = HEMIS,
    cmap: str = "RdBu_r",
    categorical: bool = False,
    title: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    threshold: float | None = None,
    colorbar_title: str = "",
    category_names: Mapping | None = None,
    category_colors: Mapping | None = None,
    outlines: Mapping[str, np.ndarray] | None = None,
    labels: Mapping[str, Mapping[str, int]] | None = None,
    view: str | None = None,
    height: int = 520,
    hover_name: str = "value",
):
    """Plotly figure of a brain map: one shaded ``Mesh3d`` per hemisphere.

    Parameters
    ----------
    values_by_hemi : ``{hemi: (10242,) float}`` with NaN for "no value" (gray).
    surface : 'inflated' | 'pial' | 'flat'.
    hemis : which hemispheres to draw (side by side).
    cmap : matplotlib colormap name (continuous maps).
    categorical : values are integer labels (clusters, regions); a legend replaces the colorbar.
    category_names / category_colors : ``{label: name}`` / ``{label: '#rrggbb'}`` for the legend.
    outlines : ``{hemi: (10242,) labels}``; borders of labelled regions are drawn dark.
    labels : ``{hemi: {text: vertex}}`` text labels placed at those vertices (e.g. ROI names).
    view : a key of :data:`VIEWS` (default ventral-lateral; 'top' for the flat surface).
    """
    import plotly.graph_objects as go

    hemis = tuple(h for h in HEMIS if h in hemis) or HEMIS
    coords = layout_coords(surface, hemis)
    meshes = _meshes(surface)
    rgb, info = vertex_rgb(values_by_hemi, hemis=hemis, cmap=cmap, vmin=vmin, vmax=vmax, categorical=categorical,
                           category_colors_=category_colors, threshold=threshold)
    traces = []
    names = dict(category_names or {})
    for h in hemis:
        c = coords[h]
        f = meshes[h][1]
        v = _as_hemi_array(values_by_hemi.get(h), h)
        idx = np.arange(N_FSAVERAGE5, dtype=np.int32)
        if categorical:
            codes = np.unique(v[np.isfinite(v)])
            txt = np.full(N_FSAVERAGE5, "—", dtype=object)
            for cval in codes:
                txt[v == cval] = str(names.get(int(cval), int(cval)) if float(cval).is_integer() else cval)
            extra = dict(customdata=idx, text=txt, hovertemplate=f"{h} vertex %{{customdata}}<br>%{{text}}<extra></extra>")
        else:
            extra = dict(customdata=np.c_[idx, v.astype(np.float32)],
                         hovertemplate=f"{h} vertex %{{customdata[0]}}<br>{hover_name}: %{{customdata[1]:.3g}}<extra></extra>")
        traces.append(go.Mesh3d(
            x=c[:, 0], y=c[:, 1], z=c[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
            vertexcolor=_to_hex(rgb[h]).astype(object), **extra, name=h, showscale=False, flatshading=False,
            **_mesh_lighting(surface),
        ))
    if outlines:
        segs = [outline_segments(outlines[h], h, surface, coords[h]) for h in hemis if outlines.get(h) is not None]
        segs = np.concatenate(segs) if segs else np.zeros((0, 2, 3))
        if len(segs):
            x, y, z = _segments_to_lines(segs)
            traces.append(go.Scatter3d(x=x, y=y, z=z, mode="lines", line=dict(color="black", width=3),
                                       hoverinfo="skip", showlegend=False, name="outlines"))
    traces.append(go.Scatter3d(**_hemisphere_letters(coords, hemis, surface)))
    if categorical:
        for cat, col in info["colors"].items():
            traces.append(go.Scatter3d(x=[None], y=[None], z=[None], mode="markers",
                                       marker=dict(size=8, color=col, symbol="square"), hoverinfo="skip",
                                       name=str(names.get(cat, cat)), showlegend=True))
    else:
        traces.append(go.Scatter3d(**_colorbar_trace(coords, hemis, info["vmin"], info["vmax"], cmap, colorbar_title)))
    if labels:
        xs, ys, zs, ts = [], [], [], []
        for h in hemis:
            for text, vi in (labels.get(h) or {}).items():
                p = coords[h][int(vi)]
                xs.append(p[0]); ys.append(p[1]); zs.append(p[2]); ts.append(str(text))
        if ts:
            traces.append(go.Scatter3d(x=xs, y=ys, z=zs, mode="text", text=ts, hoverinfo="skip", showlegend=False,
                                       textfont=dict(size=11, color="black")))
    layout = _scene_layout(coords, hemis, surface, view, height, title)
    if categorical:
        layout["legend"] = dict(itemsizing="constant", x=1.0, y=0.95, bgcolor="rgba(255,255,255,0.7)",
                                title=dict(text=colorbar_title))
    return go.Figure(data=traces, layout=layout)


def _mesh_lighting(surface: str) -> dict:
    """Mesh3d ``lighting`` / ``lightposition`` of a surface (flat: no shading)."""
    if surface == "flat":
        return dict(lighting=dict(ambient=1.0, diffuse=0.0, specular=0.0), lightposition=dict(x=0, y=0, z=100000))
    return dict(lighting=dict(ambient=0.55, diffuse=0.6, specular=0.08, roughness=0.7, fresnel=0.1),
                lightposition=dict(x=0, y=-100000, z=-50000))


def _hemisphere_letters(coords: Mapping[str, np.ndarray], hemis: Sequence[str], surface: str) -> dict:
    """Scatter3d properties of the 'L' / 'R' letters beside each hemisphere (orientation in any view)."""
    hx, hy, hz, ht = [], [], [], []
    for h in hemis:
        c = coords[h]
        ht.append("L" if h == "lh" else "R")
        if surface == "flat":
            hx.append(float(c[:, 0].mean())); hy.append(float(c[:, 1].max() + 12)); hz.append(0.0)
        else:
            hx.append(float(c[:, 0].min() - 10 if h == "lh" else c[:, 0].max() + 10))
            hy.append(float(c[:, 1].min() + 25)); hz.append(float(c[:, 2].mean()))
    return dict(x=hx, y=hy, z=hz, mode="text", text=ht, hoverinfo="skip", showlegend=False,
                textfont=dict(size=16, color="#333"), name="hemispheres")


def _colorbar_trace(coords: Mapping[str, np.ndarray], hemis: Sequence[str], vmin: float, vmax: float, cmap,
                    colorbar_title: str, **colorbar) -> dict:
    """Scatter3d properties of an invisible marker that carries the colour bar of a continuous map."""
    anchor = np.concatenate([coords[h] for h in hemis]).mean(0)
    return dict(
        x=[float(anchor[0])], y=[float(anchor[1])], z=[float(anchor[2])], mode="markers", hoverinfo="skip",
        showlegend=False,
        marker=dict(size=0.1, opacity=0, color=[vmin], cmin=vmin, cmax=vmax, colorscale=_plotly_colorscale(cmap),
                    showscale=True,
                    colorbar=dict(title=dict(text=colorbar_title), thickness=14, len=0.6, **colorbar)),
    )


def _scene_layout(coords: Mapping[str, np.ndarray], hemis: Sequence[str], surface: str, view: str | None,
                  height: int, title: str | None) -> dict:
    """Layout of a brain figure: invisible axes, camera preset, aspect, title, stable ``uirevision``."""
    if view is None:
        view = "top" if surface == "flat" else DEFAULT_VIEW
    cam = VIEWS.get(view, VIEWS[DEFAULT_VIEW])
    axis = dict(visible=False, showbackground=False)
    allc = np.concatenate([coords[h] for h in hemis])
    ext = allc.max(0) - allc.min(0)
    if surface == "flat":
        r = ext[:2] / ext[:2].max() * 1.6
        aspect = dict(aspectmode="manual", aspectratio=dict(x=float(r[0]), y=float(r[1]), z=0.05))
    else:
        aspect = dict(aspectmode="data")
    layout = dict(
        height=height, margin=dict(l=0, r=0, t=36 if title else 4, b=0),
        paper_bgcolor="white",
        scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, **aspect,
                   camera=dict(eye=dict(zip("xyz", cam["eye"])), up=dict(zip("xyz", cam["up"])),
                               center=dict(zip("xyz", cam.get("center", (0, 0, 0)))),
                               projection=dict(type="perspective")),
                   dragmode="orbit" if surface != "flat" else "pan"),
        uirevision=f"{surface}-{view}-{','.join(hemis)}",
    )
    if title:
        layout["title"] = dict(text=title, x=0.01, font=dict(size=15))
    return layout


# --------------------------------------------------------------------------- fast continuous maps
#: Template of :func:`map_figure`: only what a brain map shows of plotly's default template (fonts,
#: colour bar without outline or ticks marks), so a figure does not carry (and copy, and serialize)
#: the whole default template on every update.
_MAP_TEMPLATE = {"layout": {"font": {"color": "#2a3f5f"}, "hoverlabel": {"align": "left"}}}


@lru_cache(maxsize=32)
def _map_scaffold(surface: str, hemis: tuple[str, ...], view: str | None, height: int, hover_name: str):
    """What stays the same between maps of one (surface, hemispheres, view, height): built once.

    Returns ``(meshes, letters, layout, coords)``: Mesh3d property dicts with the geometry
    (float32 / int32 arrays, never copied per map) and lighting, the hemisphere-letter
    trace, the layout without title, and the laid-out coordinates.
    """
    coords = layout_coords(surface, hemis)
    meshes = _meshes(surface)
    out = []
    for h in hemis:
        c = np.ascontiguousarray(coords[h], dtype=np.float32)
        # 10,242 vertices: face indices fit uint16 (half the bytes to copy, encode and send)
        f = np.ascontiguousarray(meshes[h][1], dtype=np.uint16 if len(c) < 65536 else np.int32)
        out.append(dict(
            type="mesh3d", x=c[:, 0].copy(), y=c[:, 1].copy(), z=c[:, 2].copy(),
            i=f[:, 0].copy(), j=f[:, 1].copy(), k=f[:, 2].copy(), name=h, showscale=False, flatshading=False,
            hovertemplate=f"{h} vertex %{{customdata[0]:.0f}}<br>{hover_name}: %{{customdata[1]:.3g}}<extra></extra>",
            **_mesh_lighting(surface)))
    letters = dict(type="scatter3d", **_hemisphere_letters(coords, hemis, surface))
    layout = _scene_layout(coords, hemis, surface, view, height, None)
    layout["template"] = _MAP_TEMPLATE
    return tuple(out), letters, layout, coords


def _rgb_u8(rgb: np.ndarray) -> np.ndarray:
    """(n, 3) RGB in [0, 1] -> (n, 3) uint8 for plotly.js ``vertexcolor``.

    plotly.js reads a channel array whose largest channel is <= 1 as fractions of 1: a
    near-black (1, 1, 0) would turn yellow. Such colors (max channel < 2 of 255) are
    lifted to (2, 2, 2), which looks the same.
    """
    u8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    u8[u8.max(1) < 2] = 2
    return u8


_OUTLINE_CACHE: dict = {}


def _outline_trace(outlines: Mapping[str, np.ndarray], hemis: Sequence[str], surface: str,
                   coords: Mapping[str, np.ndarray]) -> dict | None:
    """Scatter3d dict of the ROI borders, cached by (surface, hemis, label content)."""
    import hashlib

    digest = hashlib.sha1()
    for h in hemis:
        if outlines.get(h) is not None:
            digest.update(h.encode() + _label_codes(outlines[h]).astype(np.int32).tobytes())
    key = (surface, tuple(hemis), digest.hexdigest())
    if key not in _OUTLINE_CACHE:
        segs = [outline_segments(outlines[h], h, surface, coords[h]) for h in hemis if outlines.get(h) is not None]
        segs = np.concatenate(segs) if segs else np.zeros((0, 2, 3))
        trace = None
        if len(segs):
            x, y, z = _segments_to_lines(segs)
            trace = dict(type="scatter3d", x=x, y=y, z=z, mode="lines", line=dict(color="black", width=3),
                         hoverinfo="skip", showlegend=False, name="outlines")
        if len(_OUTLINE_CACHE) > 16:
            _OUTLINE_CACHE.clear()
        _OUTLINE_CACHE[key] = trace
    return _OUTLINE_CACHE[key]


def map_figure(
    values_by_hemi: Mapping[str, np.ndarray],
    surface: str = "inflated",
    hemis: Sequence[str] = HEMIS,
    cmap: str = "RdBu_r",
    title: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    threshold: float | None = None,
    colorbar_title: str = "",
    outlines: Mapping[str, np.ndarray] | None = None,
    view: str | None = None,
    height: int = 520,
    hover_name: str = "value",
    meta: str | None = None,
):
    """Plotly figure of a continuous brain map, built on a cached scaffold (fast path of :func:`brain_figure`).

    Parameters are those of :func:`brain_figure` for continuous maps (no categorical maps,
    no text labels). Per call only the (10242, 3) float32 RGB vertex colors, the (10242, 2)
    float32 hover values (vertex, value), the colour-bar limits and the title are new; the
    mesh geometry, lighting, hemisphere letters and layout come from a cache keyed by
    (surface, hemispheres, view, height), the ROI outline trace from a cache keyed by the
    labels. The figure is assembled without plotly's per-property validation (its parts
    are built here, with known-valid values).

    ``meta`` is stored in ``layout.meta`` (the page uses it to tell, in the browser, that
    the figure of a given image has been drawn).

    Returns a ``plotly.graph_objects.Figure`` (one ``Mesh3d`` per hemisphere, the outline
    trace when ``outlines`` is given, the hemisphere letters, an invisible colour-bar trace).
    """
    import plotly.graph_objects as go

    hemis = tuple(h for h in HEMIS if h in hemis) or HEMIS
    if view is None:
        view = "top" if surface == "flat" else DEFAULT_VIEW
    meshes, letters, layout, coords = _map_scaffold(surface, hemis, view, int(height), hover_name)
    rgb, info = vertex_rgb(values_by_hemi, hemis=hemis, cmap=cmap, vmin=vmin, vmax=vmax, threshold=threshold)
    idx = np.arange(N_FSAVERAGE5, dtype=np.float32)
    traces = []
    for h, mesh in zip(hemis, meshes):
        v = _as_hemi_array(values_by_hemi.get(h), h)
        traces.append({**mesh, "vertexcolor": _rgb_u8(rgb[h]),
                       "customdata": np.stack([idx, v.astype(np.float32)], axis=1)})
    if outlines:
        line = _outline_trace(outlines, hemis, surface, coords)
        if line is not None:
            traces.append(line)
    traces.append(letters)
    traces.append(dict(type="scatter3d", **_colorbar_trace(coords, hemis, info["vmin"], info["vmax"], cmap,
                                                           colorbar_title, outlinewidth=0, ticks="")))
    lay = dict(layout)
    if title:
        lay["title"] = dict(text=title, x=0.01, font=dict(size=15))
        lay["margin"] = dict(l=0, r=0, t=36, b=0)
    if meta is not None:
        lay["meta"] = str(meta)
    return go.Figure(data=traces, layout=lay, skip_invalid=False, _validate=False)
