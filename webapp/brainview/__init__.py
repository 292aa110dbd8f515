"""[Streamlit] The one brain view of every page: a custom component that keeps the cortex in the browser.

:func:`brain_view` draws a brain map (the arguments of :func:`brainviz.plotting.brain_figure`) with
the component in ``frontend/`` (three.js, built bundle in ``frontend/dist``, committed: no Node needed
to run the app; rebuild with ``npm ci && npm run build`` in ``frontend/``, see its README.md).

What travels per update: the meshes are static files (``mesh/<surface>-<digest>.bin``, written here
from nilearn's fsaverage5 at first use, ~0.5 MB per surface) that the browser fetches once per
surface and keeps; each rerun sends only the :class:`brainviz.plotting.ViewPayload` of the map (JSON
spec + bytes of uint16 values and ROI codes, <= 100 KB on fsaverage5, typically 20-40 KB). When the
map did not change, Streamlit sends a reference instead of the element (its forward-message cache).

A click on a vertex or on a legend entry comes back to Python as the component's value
(``{"source": "vertex" | "legend", "hemi", "vertex", "value", "roi", "category", "n", "t"}``) and
calls ``on_select``. Without WebGL the browser shows a static picture and a message.

Reference path (benchmarks): with ``?brain=plotly`` in the page URL every brain view is drawn with the
Plotly figure of before (:func:`brainviz.plotting.map_figure`, the cached scaffold, for continuous maps
without text labels; :func:`brainviz.plotting.brain_figure` otherwise), with the same drawn marker.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Sequence

import streamlit as st
import streamlit.components.v1 as components

from brainviz import plotting as B
from brainviz.atomic import atomic_path

FRONTEND = Path(__file__).resolve().parent / "frontend"
DIST = FRONTEND / "dist"

#: Query parameter that switches every brain view to the Plotly figure (benchmark reference).
REFERENCE_PARAM = ("brain", "plotly")


def _writable(folder: Path) -> bool:
    try:
        (folder / "mesh").mkdir(parents=True, exist_ok=True)
        return os.access(folder / "mesh", os.W_OK)
    except OSError:
        return False


@lru_cache(maxsize=1)
def asset_root() -> Path:
    """The folder the component is served from: the built bundle plus ``mesh/``.

    ``frontend/dist`` itself when it is writable (the mesh files are git-ignored there), else a copy of
    the bundle in a temporary folder (a read-only install).
    """
    if not (DIST / "index.html").is_file() or not (DIST / "brainview.js").is_file():
        raise RuntimeError(f"the brain view's built frontend is missing in {DIST} "
                           "(rebuild it: cd webapp/brainview/frontend && npm ci && npm run build)")
    if _writable(DIST):
        return DIST
    tmp = Path(tempfile.mkdtemp(prefix="brainviz-brainview-"))
    for f in ("index.html", "brainview.js"):
        shutil.copy2(DIST / f, tmp / f)
    (tmp / "mesh").mkdir()
    return tmp


@lru_cache(maxsize=len(B.SURFACES))
def ensure_mesh_file(surface: str) -> Path:
    """Write the mesh asset of ``surface`` beside the bundle once (atomic; kept across processes)."""
    path = asset_root() / "mesh" / B.mesh_asset_name(surface)
    if not path.is_file():
        with atomic_path(path) as tmp:
            tmp.write_bytes(B.mesh_asset(surface))
    return path


@lru_cache(maxsize=1)
def _component():
    """The declared component, or None when its built frontend is missing (then the Plotly figure is drawn)."""
    try:
        return components.declare_component("brainview", path=str(asset_root()))
    except RuntimeError:
        return None


_component()  # declared at import, as Streamlit expects


def reference_mode() -> bool:
    """True when the page URL asks for the Plotly reference figure (``?brain=plotly``)."""
    name, value = REFERENCE_PARAM
    return st.query_params.get(name) == value


def _drawn_marker(token: str, key: str) -> None:
    """Reference path: mark ``#brainview-drawn-<key>`` once a Plotly figure with ``layout.meta == token``
    is on the page (two animation frames after Plotly holds it), as the component does for its maps.
    (No '<' in the script: the HTML sanitizer drops a script whose text has '<' before a letter or digit.)"""
    st.html(
        "<script>(function(){const token=%s, id=%s, t0=performance.now();"
        "function mark(){let m=document.getElementById(id);"
        "if(!m){m=document.createElement('div');m.id=id;m.className='brainview-drawn';m.style.display='none';"
        "document.body.appendChild(m);}m.dataset.t=String(performance.timeOrigin+performance.now());"
        "m.dataset.token=token;}"
        "function poll(){for(const gd of document.querySelectorAll('.js-plotly-plot')){"
        "if(gd._fullLayout&&gd._fullLayout.meta===token){requestAnimationFrame(()=>requestAnimationFrame(mark));return;}}"
        "if(60000>performance.now()-t0)requestAnimationFrame(poll);}poll();})();</script>"
        % (json.dumps(token).replace("<", "\\u003c"), json.dumps(f"brainview-drawn-{key}").replace("<", "\\u003c")),
        unsafe_allow_javascript=True)


def brain_view(
    values_by_hemi: Mapping,
    *,
    key: str,
    surface: str = "inflated",
    hemis: Sequence[str] = B.HEMIS,
    cmap: str = "RdBu_r",
    categorical: bool = False,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    threshold: float | None = None,
    colorbar_title: str = "",
    category_names: Mapping | None = None,
    category_colors: Mapping | None = None,
    outlines: Mapping | None = None,
    rois: Mapping | None = None,
    labels: Mapping | None = None,
    view: str | None = None,
    height: int = 520,
    hover_name: str = "value",
    selected=None,
    token: str | None = None,
    on_select: Callable[[dict], None] | None = None,
) -> dict | None:
    """Draw a brain map in the page; return the last selection (a clicked vertex / legend entry) or None.

    Parameters are those of :func:`brainviz.plotting.view_payload` (``values_by_hemi``: ``{hemi:
    (10242,) float}``, NaN = gray); ``key`` names the view (stable across reruns: the view and its
    meshes stay in the browser); ``rois``: per-vertex names shown on hover (default: the outline
    labels); ``selected``: category whose border is highlighted; ``token``: what the browser reports
    once the map is drawn (default: a digest of the map); ``on_select(selection)``: called before the
    rerun that a click starts (set widget state there, e.g. the chosen cluster).
    """
    payload = B.view_payload(values_by_hemi, surface=surface, hemis=hemis, cmap=cmap, categorical=categorical,
                             title=title, vmin=vmin, vmax=vmax, threshold=threshold, colorbar_title=colorbar_title,
                             category_names=category_names, category_colors=category_colors, outlines=outlines,
                             rois=rois, labels=labels, view=view, height=height, hover_name=hover_name,
                             selected=selected, token=token)
    component = _component()
    if component is None:
        st.warning("The interactive brain view is not installed (its built frontend is missing in "
                   f"{DIST}); showing the Plotly figure instead. Rebuild it: "
                   "`cd webapp/brainview/frontend && npm ci && npm run build`.", icon=":material/warning:")
    if reference_mode() or component is None:  # the Plotly figures of before: cached scaffold for continuous maps
        common = dict(surface=surface, hemis=hemis, cmap=cmap, title=title, vmin=vmin, vmax=vmax, threshold=threshold,
                      colorbar_title=colorbar_title, outlines=outlines, view=view, height=height, hover_name=hover_name)
        if categorical or labels:
            fig = B.brain_figure(values_by_hemi, categorical=categorical, category_names=category_names,
                                 category_colors=category_colors, labels=labels, **common)
            fig.update_layout(meta=payload.token)
        else:
            fig = B.map_figure(values_by_hemi, meta=payload.token, **common)
        st.plotly_chart(fig, key=key, theme=None, config={"displaylogo": False})
        _drawn_marker(payload.token, key)
        return None
    ensure_mesh_file(surface)
    payload.spec["selectable"] = on_select is not None  # clicks come back only where the page uses them
    def callback() -> None:
        value = st.session_state.get(key)
        if isinstance(value, dict):
            on_select(value)

    return component(spec=payload.spec, blob=payload.blob, key=key, default=None,
                     on_change=callback if on_select is not None else None)


#: vertices-table ROI columns named on hover, most specific first (the streams last).
HOVER_ROI_COLUMNS = ("roi_prf", "roi_faces", "roi_bodies", "roi_places", "roi_words", "roi_streams")


def hover_rois(vertices) -> dict:
    """``{hemi: (10242,) str or None}``: every ROI a vertex belongs to, e.g. 'FFA-1 · ventral' (hover text).

    ``vertices``: a store's vertices table (columns ``hemi``, ``fsaverage5_index`` and the ROI columns
    that exist). Vertices of no ROI get None.
    """
    import numpy as np
    import pandas as pd

    cols = [c for c in HOVER_ROI_COLUMNS if c in vertices]
    # one name per distinct combination of ROIs (a few dozen), then one lookup per vertex
    codes, uniques = [], []
    for c in cols:
        k, u = pd.factorize(vertices[c], use_na_sentinel=True)
        codes.append(k)
        uniques.append([str(x) for x in u])
    combo_names = np.array([None], dtype=object)
    inverse = np.zeros(len(vertices), np.int64)
    if cols:
        combos, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        combo_names = np.array([" · ".join(uniques[j][k] for j, k in enumerate(row) if k >= 0) or None
                                for row in combos], dtype=object)
    names = combo_names[inverse] if len(vertices) else np.zeros(0, dtype=object)
    idx = vertices["fsaverage5_index"].to_numpy()
    hemi = vertices["hemi"].to_numpy()
    out = {}
    for h in B.HEMIS:
        arr = np.full(B.N_FSAVERAGE5, None, dtype=object)
        m = (hemi == h) & (idx >= 0) & (idx < B.N_FSAVERAGE5)
        arr[idx[m]] = names[m]
        out[h] = arr
    return out


_HOVER: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def store_hover_rois(store, subject: str) -> dict:
    """:func:`hover_rois` of a subject's vertices in ``store``, computed once per store and subject (read-only
    arrays, the same objects on every rerun: the payload encoder then reuses their codes too)."""
    per_store = _HOVER.setdefault(store, {})
    if subject not in per_store:
        rois = hover_rois(store.vertices(subject))
        for arr in rois.values():
            arr.setflags(write=False)
        per_store[subject] = rois
    return per_store[subject]


def selected_category(selection, present: Sequence) -> int | None:
    """The category code of a selection from :func:`brain_view` if it is one of ``present``, else None."""
    if not isinstance(selection, dict):
        return None
    code = selection.get("category")
    if code is None:
        return None
    try:
        code = int(code)
    except (TypeError, ValueError):
        return None
    return code if code in set(int(c) for c in present) else None
