"""The one download widget of every brain map in the app: a high-resolution PNG and GIfTI files.

The PNG comes from :func:`webapp.exports.safe_render_png` (off-screen pyvista) and the GIfTI files
from :func:`webapp.exports.gifti_zip_or_error` (nibabel). GIfTI maps come as ONE zip holding
``lh.<name>.<kind>.gii`` and ``rh.<name>.<kind>.gii`` (+ a README.txt saying what the map is and how
to open it in nilearn), so one click gets both hemispheres.

Usage in a page::

    from webapp.downloads import map_downloads
    map_downloads({"clusters": {"png": dict(values_by_hemi=maps, categorical=True, ...),
                                "gifti": SurfaceMap.from_vertices(labels, vertices, surface, labels=names, ...)}},
                  surface=surface, sig=(...), stem="clusters_subj01", simulated=store.simulated)
"""
from __future__ import annotations

from typing import Mapping

import streamlit as st

from .exports import gifti_zip_or_error, safe_render_png


def map_downloads(maps: Mapping[str, Mapping], *, surface: str, sig: tuple = (), stem: str = "brainviz",
                  hemis=None, simulated: bool = False, key: str = "png") -> None:
    """Download block: a map chooser (when several), "Render high-resolution PNG" -> "Download PNG",
    and "Download GIfTI" beside it.

    Parameters
    ----------
    maps : {label: {"png": keyword arguments of :func:`brainviz.plotting.render_png` (values_by_hemi, cmap,
        vmin, vmax, title, categorical, category_names, ...), "gifti": a :class:`brainviz.export.SurfaceMap`
        (or None: no GIfTI for this map)}}.
    surface : the display surface of the PNG ('inflated', 'pial', 'flat').
    sig : what the page shows (model, subject, ...): a rendered PNG is offered only while it still matches.
    stem : file name stem (the map label is appended).
    hemis : hemispheres of the PNG (default both).
    simulated : say SIMULATED in the GIfTI README.
    key : widget key prefix (``<key>_which``, ``<key>_btn``, ``<key>_dl``, ``<key>_gifti``).
    """
    from brainviz.export import safe_stem

    if not maps:
        return
    labels = list(maps)
    which = st.radio("Map", labels, horizontal=True, key=f"{key}_which") if len(labels) > 1 else labels[0]
    spec = maps[which]
    name = safe_stem(f"{stem}_{which}" if len(labels) > 1 else stem)
    full_sig = (tuple(sig), which, surface, tuple(hemis) if hemis else None)
    c_png, c_gii = st.columns(2)
    with c_png:
        if st.button("Render high-resolution PNG of the map", key=f"{key}_btn"):
            with st.spinner("Rendering off-screen…"):
                kw = dict(spec["png"])
                if hemis is not None:
                    kw["hemis"] = hemis
                png, err = safe_render_png(surface=surface, **kw)
            st.session_state[f"{key}_state"] = (full_sig, png, err)
        got = st.session_state.get(f"{key}_state")
        if got and got[0] == full_sig:
            if got[2]:
                st.error(got[2])
            else:
                st.download_button("Download PNG", got[1], file_name=f"brainviz_{name}.png", mime="image/png",
                                   key=f"{key}_dl")
    with c_gii:
        smap = spec.get("gifti")
        if smap is None:
            st.caption("No GIfTI export for this map.")
        else:
            data, err = gifti_zip_or_error(smap, name, simulated)
            if err:
                st.error(err)
            else:
                st.download_button("Download GIfTI (lh + rh, zip)", data, file_name=f"brainviz_{name}_gifti.zip",
                                   mime="application/zip", key=f"{key}_gifti",
                                   help=f"{smap.file_name('lh', name)} and {smap.file_name('rh', name)}: one value "
                                        f"per vertex of {smap.surface} (nibabel / nilearn / FreeSurfer / Workbench)"
                                   + ("; label code c is key c + 1, key 0 = no data" if smap.kind == "label" else
                                      "; NaN = no data"))
