"""PNG and GIfTI bytes of a brain map for the download widget (:mod:`webapp.downloads`); both never
raise, a failure comes back as a message for the page. Nothing here imports Streamlit."""
from __future__ import annotations


def safe_render_png(values_by_hemi, **kwargs) -> tuple[bytes | None, str | None]:
    """:func:`brainviz.plotting.render_png` that never raises: (png, None) or (None, message)."""
    try:
        from brainviz.plotting import render_png

        return render_png(values_by_hemi, **kwargs), None
    except Exception as exc:  # off-screen GL missing, out of memory, ...
        return None, (f"The high-resolution render failed ({exc}). The brain view's PNG button "
                      "(top right of the map) saves a PNG of the current view instead.")


def gifti_zip_or_error(smap, stem: str, simulated: bool) -> tuple[bytes | None, str | None]:
    """(zip bytes, None) or (None, message) — never raises (a bad map must not break the page)."""
    from brainviz import export

    try:
        return export.gifti_zip(smap, stem, readme=export.readme_text(smap, stem, simulated)), None
    except Exception as exc:  # noqa: BLE001 - shown to the user instead of a traceback
        return None, f"The GIfTI export failed ({type(exc).__name__}: {exc})."
