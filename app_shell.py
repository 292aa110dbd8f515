"""Streamlit scaffolding shared by every page: sidebar navigation and the read-only store.

Kept outside ``brainviz`` (the library never imports Streamlit). The store is
opened once per process (:func:`brainviz.app_support.open_store`) and shared by all
pages; it follows a rebuilt file by itself.

Store errors never reach the user as Streamlit's generic "This app has encountered
an error": opening problems stop the page with one message (:func:`page_store`), and
a read that fails later in a page (a damaged block, a file replaced by a bad one) is
shown the same way by :func:`install_store_error_display`.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from brainviz import app_support as S
from brainviz.errors import BrainVizDataError
from brainviz.store.reader import Store

open_store = st.cache_resource(show_spinner="Opening the store…")(S.open_store)


def install_store_error_display() -> None:
    """Show an uncaught BrainVizDataError / DuckDB error of a page as one clear ``st.error``
    naming the store, instead of Streamlit's generic error box (other errors: unchanged).

    Streamlit (1.67) shows uncaught page exceptions through
    ``streamlit.error_util.show_uncaught_app_exception``; this wraps it once per process.
    """
    import duckdb
    import streamlit.error_util as eu

    shown = getattr(eu, "show_uncaught_app_exception", None)
    if shown is None or getattr(shown, "_brainviz", False):
        return

    def show(ex: BaseException) -> None:
        if isinstance(ex, (BrainVizDataError, duckdb.Error)):
            try:
                st.error(S.store_error_message(ex, S.store_path()), icon=":material/error:")
                return
            except Exception:  # pragma: no cover - fall back to Streamlit's own display
                pass
        shown(ex)

    show._brainviz = True  # type: ignore[attr-defined]
    eu.show_uncaught_app_exception = show


install_store_error_display()


def page_store() -> tuple[Store, Path]:
    """Draw the sidebar links and open the store; stop the page with a clear message when there is none."""
    with st.sidebar:
        for target, label, icon in S.NAV:
            st.page_link(target, label=label, icon=icon)
        st.divider()
    path = S.store_path()
    if not path.is_file():
        st.info(S.missing_store_message(path))
        st.stop()
    try:
        store = open_store(str(path), S.store_stamp(path))
    except BrainVizDataError as exc:
        st.error(S.store_error_message(exc, path), icon=":material/error:")
        st.stop()
    return store, path


@st.cache_resource(show_spinner="Loading the backbone and encoder (once per server)…")
def load_predictor(store_file: str, stamp: tuple, model_id: str):
    """The live model of the store, loaded once per server and shared by every page that predicts.

    Also warms the mesh caches, plotly's lazy imports and the figure scaffold of every surface, so
    the first map is as fast as the next ones (cold, the first figure took ~300 ms).
    """
    import numpy as np

    from brainviz import plotting as B
    from brainviz import live as L

    predictor = L.LivePredictor.from_store(open_store(store_file, stamp), model_id)
    empty = {h: np.zeros(B.N_FSAVERAGE5) for h in B.HEMIS}
    for surf in B.SURFACES:
        B.map_figure(empty, surface=surf, vmin=-1, vmax=1, hover_name="predicted")
    return predictor


def page_predictor(store: Store, path: Path, purpose: str):
    """(model_id, stamp, predictor, subjects) for a page that predicts; stops the page with a clear
    message when the store has no Universal-Encoder checkpoint or it cannot be loaded.
    ``purpose``: what the page calls it in messages, e.g. "Live prediction"."""
    from brainviz import live as L

    model_id = L.pick_live_model(store.models())
    if model_id is None:
        st.info(f"{purpose} needs a Universal-Encoder model with a saved checkpoint; this store has none. "
                f"Rebuild with `{S.BUILD_COMMANDS[0]}`.")
        st.stop()
    stamp = S.store_stamp(path)
    try:
        predictor = load_predictor(str(path), stamp, model_id)
    except BrainVizDataError as exc:
        st.error(f"The model could not be loaded: {exc}")
        st.stop()
    except Exception as exc:  # torch / weights problems: explain, no traceback
        st.error(f"The model could not be loaded ({type(exc).__name__}: {exc}).")
        st.stop()
    store_subjects = set(store.subjects()["subject"])
    subjects = [s for s in predictor.subjects if s in store_subjects] or list(predictor.subjects)
    return model_id, stamp, predictor, subjects
