"""Streamlit scaffolding shared by every page: sidebar navigation and the read-only store.

Kept outside ``brainviz`` (the library never imports Streamlit). The store is
opened once per process (``st.cache_resource``) and shared by all pages.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from brainviz import app_support as S
from brainviz.errors import BrainVizDataError
from brainviz.store.reader import Store

open_store = st.cache_resource(show_spinner="Opening the store…")(S.open_store)


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
        st.error(f"The store could not be opened: {exc}")
        st.stop()
    return store, path
