"""Brain maps on the fsaverage5 surface: interactive Plotly figures and off-screen PNG renders.

Every map is a dict ``{hemi: (10242,) float}`` with NaN where a vertex has no value
(not in challenge space, filtered out, below threshold). Vertices without a value are
drawn in gray over the sulcal-depth shading, so the anatomy stays readable.

* :func:`vertex_values_to_fsaverage5` turns a challenge-space vector (V,) into such a map.
* :func:`brain_figure` returns a Plotly figure (one ``Mesh3d`` per hemisphere).
* :func:`map_figure` is the fast path for continuous maps that change often (live
  prediction): the mesh, lighting, hemisphere letters and layout of each (surface,
  hemispheres, view, height) are built once and cached; a new map only replaces the
  per-vertex colors, the hover values, the colour bar limits and the title. Same look
  as :func:`brain_figure` (sulcal shading, ROI outlines, colour bar), ~10x cheaper to
  build and to serialize (colors travel as float32 RGB arrays instead of hex strings).
* :func:`render_png` renders the same map off-screen with pyvista and returns PNG bytes.

Surfaces: ``inflated`` (default; hemispheres placed side by side), ``pial`` and ``flat``
(nilearn's fsaverage5 flat patches, viewed from above). Meshes come from
``brainviz.data.surfaces`` when it provides them, else straight from nilearn's bundled
fsaverage5 (no download either way).
"""
from __future__ import annotations

import io
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .names import HEMIS, N_FSAVERAGE5

SURFACES = ("inflated", "pial", "flat")
_NILEARN_PART = {"lh": "left", "rh": "right"}

#: Camera presets (Plotly scene eye / up vectors; the scene uses aspectmode="data").
VIEWS: dict[str, dict] = {
    "posterior-ventral": {"eye": (0.0, -1.45, -1.25), "up": (0, 0, 1), "center": (0.0, 0.0, 0.0)},
    "ventral-lateral (left)": {"eye": (-1.15, -0.9, -0.9), "up": (0, 0, 1)},
    "ventral-lateral (right)": {"eye": (1.15, -0.9, -0.9), "up": (0, 0, 1)},
    "posterior": {"eye": (0.0, -1.3, -0.35), "up": (0, 0, 1)},
    "ventral": {"eye": (0.0, -0.2, -1.5), "up": (0, -1, 0)},  # occipital pole up, L on the left
    "lateral (left)": {"eye": (-1.5, -0.3, 0.1), "up": (0, 0, 1)},
    "lateral (right)": {"eye": (1.5, -0.3, 0.1), "up": (0, 0, 1)},
    "top": {"eye": (0.0, -0.05, 0.85), "up": (0, 1, 0)},
}
#: Default camera: from behind and below, both occipital poles and the ventral (fusiform,
#: parahippocampal) surfaces in view, with the lateral occipito-temporal cortex at the sides.
DEFAULT_VIEW = "posterior-ventral"

#: Qualitative palette for categorical maps (clusters, planted regions, ROIs).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d", "#31a354",
    "#756bb1", "#843c39", "#d6616b", "#e7ba52", "#5254a3", "#8ca252", "#bd9e39", "#de9ed6",
)
BACKGROUND_GRAY = (0.50, 0.80)  # sulcus, gyrus gray levels


# --------------------------------------------------------------------------- meshes
@lru_cache(maxsize=8)
def load_meshes(surface: str = "inflated") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{hemi: (coords (10242, 3) float32, faces (F, 3) int32)}`` of an fsaverage5 surface."""
    if surface not in SURFACES + ("sphere", "white_matter"):
        raise ValueError(f"unknown surface {surface!r}; choose one of {', '.join(SURFACES)}")
    meshes = _meshes_from_surfaces_module(surface)
    if meshes is None:
        from nilearn import datasets

        fs = datasets.load_fsaverage("fsaverage5")
        meshes = {}
        for h in HEMIS:
            part = fs[surface].parts[_NILEARN_PART[h]]
            meshes[h] = (np.asarray(part.coordinates, np.float32), np.asarray(part.faces, np.int32))
    return meshes


def _meshes_from_surfaces_module(surface: str):
    """Meshes from ``brainviz.data.surfaces`` if it exposes them; ``None`` otherwise."""
    try:
        from .data import surfaces as S  # written by another module owner
    except Exception:
        return None
    fn = getattr(S, "load_mesh", None) or getattr(S, "fsaverage5_mesh", None) or getattr(S, "get_mesh", None)
    if fn is None:
        return None
    try:
        out = {}
        for h in HEMIS:
            m = fn(surface, h)
            coords = getattr(m, "coords", None)
            if coords is None:
                coords = getattr(m, "coordinates", None)
            faces = getattr(m, "faces", None)
            if coords is None and isinstance(m, tuple):
                coords, faces = m
            coords = np.asarray(coords, np.float32)
            faces = np.asarray(faces, np.int32)
            if coords.shape != (N_FSAVERAGE5, 3) or faces.ndim != 2 or faces.shape[1] != 3:
                return None
            out[h] = (coords, faces)
        return out
    except Exception:
        return None


@lru_cache(maxsize=2)
def background_shading() -> dict[str, np.ndarray]:
    """Per-vertex gray level in [0, 1] from sulcal depth (gyri light, sulci dark)."""
    from nilearn import datasets

    out = {}
    try:
        d = datasets.load_fsaverage_data("fsaverage5", mesh_type="inflated", data_type="sulcal")
        for h in HEMIS:
            s = np.asarray(d.data.parts[_NILEARN_PART[h]], np.float64)
            # positive sulcal depth = deep (sulcus) in FreeSurfer convention
            t = 1.0 / (1.0 + np.exp(-2.0 * s))  # 0 (gyrus) .. 1 (sulcus)
            lo, hi = BACKGROUND_GRAY
            out[h] = (hi - (hi - lo) * t).astype(np.float32)
    except Exception:  # pragma: no cover - nilearn data always ships
        out = {h: np.full(N_FSAVERAGE5, 0.7, np.float32) for h in HEMIS}
    return out


@lru_cache(maxsize=4)
def _neighbors(surface: str = "inflated"):
    """Edge list (E, 2) of each hemisphere's mesh (topology is the same for all but flat)."""
    out = {}
    for h, (_, faces) in load_meshes(surface).items():
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        out[h] = e
    return out


def layout_coords(surface: str = "inflated", hemis: Sequence[str] = HEMIS, gap: float = 8.0) -> dict[str, np.ndarray]:
    """Vertex coordinates with hemispheres placed side by side (lh left, rh right)."""
    meshes = load_meshes(surface)
    out = {}
    for h in hemis:
        c = meshes[h][0].copy()
        if surface == "flat":
            c[:, 2] = 0.0
        if len(hemis) > 1:
            if h == "lh":
                c[:, 0] -= c[:, 0].max() + gap / 2
            else:
                c[:, 0] -= c[:, 0].min() - gap / 2
        out[h] = c
    return out


# --------------------------------------------------------------------------- values
def vertex_values_to_fsaverage5(values, vertices: pd.DataFrame, *, categorical: bool = False) -> dict[str, np.ndarray]:
    """Scatter a challenge-space vector onto fsaverage5.

    Parameters
    ----------
    values : (V,) array
        One value per challenge-space vertex, in the row order of ``vertices``.
    vertices : DataFrame
        V rows with columns ``hemi`` ('lh'/'rh') and ``fsaverage5_index`` (int; -1 when the
        vertex has no fsaverage5 counterpart, those are dropped).
    categorical : bool
        When several vertices land on one fsaverage5 vertex (real fsaverage data shown on
        fsaverage5), take the most frequent value instead of the mean.

    Returns
    -------
    ``{'lh': (10242,) float64, 'rh': (10242,) float64}``, NaN where no vertex maps.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) != len(vertices):
        raise ValueError(f"{len(values)} values for {len(vertices)} vertices")
    hemi = vertices["hemi"].to_numpy()
    idx = vertices["fsaverage5_index"].to_numpy().astype(np.int64)
    out = {}
    for h in HEMIS:
        m = (hemi == h) & (idx >= 0) & (idx < N_FSAVERAGE5) & np.isfinite(values)
        arr = np.full(N_FSAVERAGE5, np.nan)
        ii, vv = idx[m], values[m]
        if len(ii) == len(np.unique(ii)):
            arr[ii] = vv
        elif categorical:
            df = pd.DataFrame({"i": ii, "v": vv})
            mode = df.groupby("i")["v"].agg(lambda s: s.value_counts().index[0])
            arr[mode.index.to_numpy()] = mode.to_numpy()
        else:
            sums = np.bincount(ii, weights=vv, minlength=N_FSAVERAGE5)
            cnt = np.bincount(ii, minlength=N_FSAVERAGE5)
            ok = cnt > 0
            arr[ok] = sums[ok] / cnt[ok]
        out[h] = arr
    return out


def _mpl_cmap(cmap):
    import matplotlib

    if isinstance(cmap, str):
        try:
            return matplotlib.colormaps[cmap]
        except KeyError:
            raise ValueError(f"unknown colormap {cmap!r}") from None
    return cmap


def color_limits(values_by_hemi: Mapping[str, np.ndarray], vmin=None, vmax=None, symmetric=None):
    """Robust (1st-99th percentile) limits; symmetric around 0 when the data has both signs."""
    allv = np.concatenate([np.asarray(v, float).ravel() for v in values_by_hemi.values()]) if values_by_hemi else np.array([])
    allv = allv[np.isfinite(allv)]
    if allv.size == 0:
        return (0.0 if vmin is None else vmin), (1.0 if vmax is None else vmax)
    lo, hi = np.percentile(allv, [1, 99])
    if symmetric is None:
        symmetric = lo < 0 < hi and min(-lo, hi) > 0.2 * max(-lo, hi)
    if symmetric:
        a = max(abs(lo), abs(hi)) or 1.0
        lo, hi = -a, a
    if vmin is not None:
        lo = vmin
    if vmax is not None:
        hi = vmax
    if hi <= lo:
        hi = lo + 1e-6
    return float(lo), float(hi)


def category_colors(categories: Sequence, category_colors: Mapping | None = None) -> dict:
    """``{category: '#rrggbb'}``; given colors win, the rest cycle through :data:`PALETTE`."""
    out = {}
    given = dict(category_colors or {})
    k = 0
    for c in categories:
        if c in given:
            out[c] = given[c]
        else:
            out[c] = PALETTE[k % len(PALETTE)]
            k += 1
    return out


def fade_color(color: str, amount: float = 0.65, to: str = "#d9d9d9") -> str:
    """Blend ``#rrggbb`` toward ``to`` (used to de-emphasize unselected categories)."""
    a, b = _hex_to_rgb(color), _hex_to_rgb(to)
    c = (1 - amount) * a + amount * b
    return "#%02x%02x%02x" % tuple(int(round(255 * x)) for x in c)


def _hex_to_rgb(h: str) -> np.ndarray:
    h = h.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], np.float64) / 255.0


def vertex_rgb(values_by_hemi: Mapping[str, np.ndarray], *, hemis=HEMIS, cmap="RdBu_r", vmin=None, vmax=None,
               categorical=False, category_colors_=None, threshold=None):
    """Per-vertex RGB in [0, 1]: colormap where there is a value, shaded gray elsewhere.

    Returns ``(rgb_by_hemi, info)``; ``info`` holds ``vmin``, ``vmax`` or ``colors``
    (category -> hex) for the legend / colorbar.
    """
    shade = background_shading()
    info: dict = {}
    vals = {h: _as_hemi_array(values_by_hemi.get(h), h) for h in hemis}
    if threshold is not None and not categorical:
        vals = {h: np.where(np.abs(v) >= threshold, v, np.nan) for h, v in vals.items()}
    if categorical:
        cats = sorted({float(x) for v in vals.values() for x in np.unique(v[np.isfinite(v)])})
        cats = [int(c) if float(c).is_integer() else c for c in cats]
        colors = category_colors(cats, category_colors_)
        info["colors"] = colors
    else:
        lo, hi = color_limits(vals, vmin, vmax)
        info["vmin"], info["vmax"] = lo, hi
        cm = _mpl_cmap(cmap)
    out = {}
    for h in hemis:
        v = vals[h]
        g = shade[h].astype(np.float64)
        rgb = np.repeat(g[:, None], 3, axis=1)
        ok = np.isfinite(v)
        if categorical:
            for c, col in info["colors"].items():
                m = ok & (v == c)
                rgb[m] = _hex_to_rgb(col)
        elif ok.any():
            t = np.clip((v[ok] - lo) / (hi - lo), 0, 1)
            rgb[ok] = cm(t)[:, :3]
        # keep a hint of anatomy under the colors
        rgb[ok] *= (0.82 + 0.18 * (g[ok] - BACKGROUND_GRAY[0]) / (BACKGROUND_GRAY[1] - BACKGROUND_GRAY[0]))[:, None]
        out[h] = np.clip(rgb, 0, 1)
    return out, info


def _as_hemi_array(v, h) -> np.ndarray:
    if v is None:
        return np.full(N_FSAVERAGE5, np.nan)
    a = np.asarray(v, dtype=np.float64).ravel()
    if a.shape != (N_FSAVERAGE5,):
        raise ValueError(f"{h}: expected {N_FSAVERAGE5} fsaverage5 values, got {a.shape[0]}")
    return a


def _label_codes(labels) -> np.ndarray:
    lab = pd.Series(np.asarray(labels, dtype=object).ravel())
    lab = lab.where(~lab.isin(["", "Unknown", 0, None]) & lab.notna(), None)
    lab = lab.where(~lab.map(lambda x: isinstance(x, float) and np.isnan(x)), None)
    codes, _ = pd.factorize(lab, use_na_sentinel=True)
    return codes


def outline_vertices(labels, hemi: str) -> np.ndarray:
    """Boolean (10242,) mask of labelled vertices with a differently labelled neighbor.

    ``labels``: (10242,) array; NaN / None / '' / 0 / 'Unknown' = unlabelled.
    """
    codes = _label_codes(labels)
    e = _neighbors("inflated")[hemi]
    a, b = codes[e[:, 0]], codes[e[:, 1]]
    diff = a != b
    mask = np.zeros(len(codes), bool)
    mask[e[diff & (a >= 0), 0]] = True
    mask[e[diff & (b >= 0), 1]] = True
    return mask


def _vertex_normals(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = coords[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(coords, dtype=np.float64)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(norm > 0, norm, 1)


def outline_segments(labels, hemi: str, surface: str = "inflated", coords: np.ndarray | None = None,
                     lift: float = 0.6) -> np.ndarray:
    """Line segments ``(n, 2, 3)`` tracing the borders between labelled regions on a mesh.

    Each border crosses the triangles whose corners carry different labels; the segment
    joins the midpoints of the crossing edges, lifted ``lift`` mm off the surface so it is
    drawn on top of it.
    """
    codes = _label_codes(labels)
    c0, faces = load_meshes(surface)[hemi]
    c = c0 if coords is None else coords
    if surface == "flat":
        c = c.copy()
        c[:, 2] = 0
        normals = np.tile([0.0, 0.0, 1.0], (len(c), 1))
    else:
        normals = _vertex_normals(c, faces)
    c = c + lift * normals
    L = codes[faces]
    mixed = ~((L[:, 0] == L[:, 1]) & (L[:, 1] == L[:, 2])) & (L >= 0).any(1)
    if not mixed.any():
        return np.zeros((0, 2, 3), np.float32)
    F, Lm = faces[mixed], L[mixed]
    cross = np.stack([Lm[:, 0] != Lm[:, 1], Lm[:, 1] != Lm[:, 2], Lm[:, 2] != Lm[:, 0]], axis=1)
    mids = np.stack([(c[F[:, 0]] + c[F[:, 1]]) / 2, (c[F[:, 1]] + c[F[:, 2]]) / 2,
                     (c[F[:, 2]] + c[F[:, 0]]) / 2], axis=1)
    two = cross.sum(1) == 2
    segs = [mids[two][cross[two]].reshape(-1, 2, 3)]
    three = cross.sum(1) == 3
    if three.any():
        cen = c[F[three]].mean(1)
        for e in range(3):
            segs.append(np.stack([mids[three][:, e], cen], axis=1))
    return np.concatenate(segs).astype(np.float32)


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
    meshes = load_meshes(surface)
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
    meshes = load_meshes(surface)
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


def roi_label_positions(roi_by_hemi: Mapping[str, np.ndarray], surface: str = "inflated") -> dict[str, dict[str, int]]:
    """``{hemi: {roi: vertex}}``: the labelled vertex closest to each ROI's centroid."""
    coords = load_meshes(surface)
    out = {}
    for h, lab in roi_by_hemi.items():
        lab = np.asarray(lab, dtype=object)
        pos = {}
        for name in pd.unique(pd.Series(lab).dropna()):
            if name in ("", "Unknown", 0):
                continue
            idx = np.flatnonzero(lab == name)
            if len(idx) < 3:
                continue
            c = coords[h][0][idx]
            pos[str(name)] = int(idx[np.argmin(((c - c.mean(0)) ** 2).sum(1))])
        out[h] = pos
    return out


# --------------------------------------------------------------------------- png (pyvista)
def render_png(
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
    views: Sequence[str] = ("posterior-ventral", "lateral (left)", "lateral (right)", "ventral"),
    size: tuple[int, int] = (1400, 1050),
    dpi: int = 200,
) -> bytes:
    """High-resolution PNG of a brain map, rendered off-screen with pyvista (EGL / OSMesa).

    One panel per view (flat surface: one top view), plus a colorbar or legend and the
    title, composed with matplotlib. Raises ``RuntimeError`` with a readable message when
    off-screen rendering is not available.
    """
    import os

    if not os.environ.get("DISPLAY"):  # headless server: render with EGL, no X connection attempt
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    try:
        import pyvista as pv
    except Exception as e:  # pragma: no cover
        raise RuntimeError(f"pyvista is not available: {e}") from e
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    hemis = tuple(h for h in HEMIS if h in hemis) or HEMIS
    if surface == "flat":
        views = ("top",)
    coords = layout_coords(surface, hemis)
    meshes = load_meshes(surface)
    rgb, info = vertex_rgb(values_by_hemi, hemis=hemis, cmap=cmap, vmin=vmin, vmax=vmax, categorical=categorical,
                           category_colors_=category_colors, threshold=threshold)
    images = []
    try:
        for view in views:
            p = pv.Plotter(off_screen=True, window_size=list(size))
            p.set_background("white")
            for h in hemis:
                f = meshes[h][1]
                faces = np.hstack([np.full((len(f), 1), 3, np.int64), f.astype(np.int64)]).ravel()
                mesh = pv.PolyData(coords[h].astype(np.float64), faces)
                mesh.point_data["rgb"] = (rgb[h] * 255).astype(np.uint8)
                p.add_mesh(mesh, scalars="rgb", rgb=True, smooth_shading=True, ambient=0.35, diffuse=0.7,
                           specular=0.05)
                if outlines and outlines.get(h) is not None:
                    segs = outline_segments(outlines[h], h, surface, coords[h], lift=0.8)
                    if len(segs):
                        lines = pv.line_segments_from_points(segs.reshape(-1, 3).astype(np.float64))
                        p.add_mesh(lines, color="black", line_width=max(2, size[0] // 500))
            cam = VIEWS.get(view, VIEWS[DEFAULT_VIEW])
            allc = np.concatenate([coords[h] for h in hemis])
            center = (allc.min(0) + allc.max(0)) / 2
            radius = float(np.linalg.norm(allc.max(0) - allc.min(0)))
            eye = np.asarray(cam["eye"], float)
            eye = eye / np.linalg.norm(eye)
            p.camera.focal_point = tuple(center)
            p.camera.position = tuple(center + eye * radius * 1.9)
            p.camera.up = tuple(cam["up"])
            if surface == "flat":
                p.enable_parallel_projection()
            p.reset_camera_clipping_range()
            p.camera.zoom(1.35)
            img = p.screenshot(return_img=True)
            p.close()
            images.append((view, np.asarray(img)))
    except Exception as e:
        raise RuntimeError(f"off-screen rendering failed ({type(e).__name__}: {e})") from e
    if not images or all(np.asarray(im).std() < 1 for _, im in images):
        raise RuntimeError("off-screen rendering produced a blank image")

    n = len(images)
    w_in = size[0] / dpi * n * 0.75 + 1.6
    h_in = size[1] / dpi * 0.75 + (0.5 if title else 0.2)
    fig = plt.figure(figsize=(w_in, h_in), dpi=dpi)
    for i, (view, im) in enumerate(images):
        ax = fig.add_axes([0.01 + i * (0.86 / n), 0.02, 0.86 / n, 0.88 if title else 0.94])
        ax.imshow(im)
        ax.set_axis_off()
        ax.set_title(view, fontsize=8, color="#444")
    if categorical:
        names = dict(category_names or {})
        handles = [Patch(color=c, label=str(names.get(k, k))) for k, c in info["colors"].items()]
        if handles:
            fig.legend(handles=handles, loc="center right", fontsize=6, frameon=False, title=colorbar_title or None,
                       title_fontsize=7, ncol=1 if len(handles) <= 16 else 2)
    else:
        cax = fig.add_axes([0.905, 0.2, 0.015, 0.6])
        norm = matplotlib.colors.Normalize(info["vmin"], info["vmax"])
        cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=_mpl_cmap(cmap)), cax=cax)
        cb.ax.tick_params(labelsize=6)
        if colorbar_title:
            cb.set_label(colorbar_title, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buf.getvalue()
