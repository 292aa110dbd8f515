"""Streamlit scaffolding shared by every page: the page preamble (tab title, sidebar links, the
read-only store, heading, data banner), the cached store and live-model loaders, and the display
of store errors.

The store is opened once per process (:func:`webapp.storefile.open_store`) and shared by all
pages; it follows a rebuilt file by itself.

Store errors never reach the user as Streamlit's generic "This app has encountered an error":
opening problems stop the page with one message (:func:`page_store`), and a read that fails later
in a page (a damaged block, a file replaced by a bad one) is shown the same way by
:func:`install_store_error_display` (installed when this module is imported).
"""
from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import NoReturn

import streamlit as st

from brainviz.errors import BrainVizDataError
from brainviz.store.reader import Store

from . import messages as M
from . import storefile, uploads
from .pages import PAGES, page_of

PAGE_ICON = "🧠"

open_store = st.cache_resource(show_spinner="Opening the store…")(storefile.open_store)


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
                st.error(M.store_error_message(ex, storefile.store_path()), icon=":material/error:")
                return
            except Exception:  # pragma: no cover - fall back to Streamlit's own display
                pass
        shown(ex)

    show._brainviz = True  # type: ignore[attr-defined]
    eu.show_uncaught_app_exception = show


install_store_error_display()


def _release_at_exit() -> None:
    """Drop the cached store and live model before the interpreter tears modules down: DuckDB
    connections still referenced then are reported as leaked by its bindings (nanobind)."""
    for cached in (open_store, load_predictor):
        try:
            cached.clear()
        except Exception:  # pragma: no cover - nothing to report at exit
            pass


atexit.register(_release_at_exit)
uploads.install()  # per-session upload bytes; large freed blocks go back to the system (webapp/uploads.py)


# --------------------------------------------------------------------------- preamble
def page_config(script: str) -> None:
    """``st.set_page_config`` of the registered page ``script`` (a page passes its ``__file__``)."""
    st.set_page_config(page_title=page_of(script).browser_title, page_icon=PAGE_ICON, layout="wide")


def nav() -> None:
    """Sidebar links to every page (Streamlit's own page list is switched off in .streamlit/config.toml)."""
    with st.sidebar:
        for page in PAGES:
            st.page_link(page.script, label=page.label, icon=page.icon)
        st.divider()


def stop_on_store_error(exc: BaseException, path: Path, build_command: bool = False) -> NoReturn:
    """Stop the page with one message naming the store and what is wrong (no traceback);
    ``build_command``: show the build command below it."""
    st.error(M.store_error_message(exc, path), icon=":material/error:")
    if build_command:
        st.code(M.BUILD_COMMANDS[0], language="bash")
    st.stop()


def page_store(missing_note: str | None = None, build_command: bool = False) -> tuple[Store, Path]:
    """Draw the sidebar links and open the store; stop the page with a clear message when there is
    none (``missing_note``: Markdown added below that message) or it cannot be opened
    (``build_command``: see :func:`stop_on_store_error`)."""
    nav()
    path = storefile.store_path()
    if not path.is_file():
        st.info(M.missing_store_message(path))
        if missing_note:
            st.markdown(missing_note)
        st.stop()
    try:
        store = open_store(str(path), storefile.store_stamp(path))
    except BrainVizDataError as exc:
        stop_on_store_error(exc, path, build_command)
    return store, path


def stop_nothing_stored(what: str) -> NoReturn:
    """Stop the page with an info box: ``what`` the store lacks, and the build command."""
    st.info(M.rebuild_hint(what))
    st.stop()


def show_skips(store: Store, *words: str, subject: str | None = None, otherwise: str | None = None) -> bool:
    """Say why an analysis is missing (precompute's ``skipped_analyses`` whose name holds any of ``words``):
    one info box; ``otherwise`` (if given) when nothing was recorded. Returns True when a note was shown."""
    from webapp import viewmodel as V

    notes = V.skip_notes(store, *words, subject=subject)
    if notes:
        st.info("\n\n".join(notes))
    elif otherwise:
        st.info(otherwise)
    return bool(notes)


def show_banner(store: Store) -> None:
    """The data banner (SIMULATED or REAL) under a page's heading."""
    kind, text = M.banner(store)
    getattr(st, kind)(text)


def page_start(script: str) -> tuple[Store, Path]:
    """The preamble of every page but Home, given its ``__file__``: tab title, sidebar links, the
    store (or a message and stop), the page heading and the data banner. Returns (store, path)."""
    page_config(script)
    store, path = page_store()
    st.title(page_of(script).label)
    show_banner(store)
    return store, path


# --------------------------------------------------------------------------- live model
#: Environment variable naming the backbone weights file when it is no longer where the store's run had it.
ENV_WEIGHTS = "BRAINVIZ_WEIGHTS"


@st.cache_resource(show_spinner="Loading the backbone and encoder (once per server)…", max_entries=1)
def load_predictor(store_file: str, stamp: tuple, model_id: str, weights: str | None = None):
    """The live model of the store, loaded once per server and shared by every page that predicts
    (one at a time: a rebuilt store's model replaces the old one, which is freed).

    Its backbone gets the weights the store's run trained the encoder on (``weights``: a file in
    place of the recorded one, from ``$BRAINVIZ_WEIGHTS``; its content hash must match), or the
    load fails with one line naming the missing or different file.

    Also warms the mesh caches, plotly's lazy imports and the figure scaffold of every surface, so
    the first map is as fast as the next ones (cold, the first figure took ~300 ms).
    """
    import numpy as np

    from brainviz import plotting as B
    from brainviz import live as L

    predictor = L.LivePredictor.from_store(open_store(store_file, stamp), model_id, weights=weights,
                                           weights_hint=f"set {ENV_WEIGHTS}=FILE to its new place")
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
        stop_nothing_stored(f"{purpose} needs a Universal-Encoder model with a saved checkpoint; this store has none.")
    stamp = storefile.store_stamp(path)
    try:
        predictor = load_predictor(str(path), stamp, model_id, os.environ.get(ENV_WEIGHTS) or None)
    except BrainVizDataError as exc:
        st.error(f"The model could not be loaded: {exc}")
        st.stop()
    except Exception as exc:  # torch / weights problems: explain, no traceback
        st.error(f"The model could not be loaded ({type(exc).__name__}: {exc}).")
        st.stop()
    if getattr(predictor.backbone, "random_weights", False):
        st.warning(M.random_weights_warning(predictor.backbone.name, f"random init (seed {predictor.seed})", "Predictions"),
                   icon=":material/warning:")
    store_subjects = set(store.subjects()["subject"])
    subjects = [s for s in predictor.subjects if s in store_subjects] or list(predictor.subjects)
    return model_id, stamp, predictor, subjects
