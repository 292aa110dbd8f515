"""Engine-independent parts of a brain map: fsaverage5 values, colors, outlines, layout.

Every map is a dict ``{hemi: (10242,) float}`` with NaN where a vertex has no value
(not in challenge space, filtered out, below threshold). Vertices without a value are
drawn in gray over the sulcal-depth shading, so the anatomy stays readable. Meshes and
sulcal depth come from :mod:`brainviz.data.surfaces` (nilearn's bundled fsaverage5).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.surfaces import Mesh, load_meshes, load_shading
from ..names import HEMIS, N_FSAVERAGE5

SURFACES = ("inflated", "pial", "flat")

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
def _meshes(surface: str) -> dict[str, Mesh]:
    """``{hemi: Mesh(coordinates (10242, 3) float32, faces (F, 3) int32)}`` of a surface that can be drawn."""
    if surface not in SURFACES + ("sphere", "white_matter"):
        raise ValueError(f"unknown surface {surface!r}; choose one of {', '.join(SURFACES)}")
    return load_meshes(surface)


@lru_cache(maxsize=2)
def background_shading() -> dict[str, np.ndarray]:
    """Per-vertex gray level in [0, 1] from sulcal depth (gyri light, sulci dark)."""
    out = {}
    for h in HEMIS:
        s = np.asarray(load_shading("sulcal", h), np.float64)
        # positive sulcal depth = deep (sulcus) in FreeSurfer convention
        t = 1.0 / (1.0 + np.exp(-2.0 * s))  # 0 (gyrus) .. 1 (sulcus)
        lo, hi = BACKGROUND_GRAY
        out[h] = (hi - (hi - lo) * t).astype(np.float32)
    return out


@lru_cache(maxsize=4)
def _neighbors(surface: str = "inflated"):
    """Edge list (E, 2) of each hemisphere's mesh (topology is the same for all but flat)."""
    out = {}
    for h, (_, faces) in _meshes(surface).items():
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        out[h] = e
    return out


def layout_coords(surface: str = "inflated", hemis: Sequence[str] = HEMIS, gap: float = 8.0) -> dict[str, np.ndarray]:
    """Vertex coordinates with hemispheres placed side by side (lh left, rh right)."""
    meshes = _meshes(surface)
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
    c0, faces = _meshes(surface)[hemi]
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


def roi_label_positions(roi_by_hemi: Mapping[str, np.ndarray], surface: str = "inflated") -> dict[str, dict[str, int]]:
    """``{hemi: {roi: vertex}}``: the labelled vertex closest to each ROI's centroid."""
    coords = _meshes(surface)
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
