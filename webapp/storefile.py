"""The store file of the app: where it is, its cache stamp, and the process's one open Store of it.

The app reads one precomputed DuckDB file (``$BRAINVIZ_STORE`` or ``data/brainviz.duckdb``)
through :class:`brainviz.store.reader.Store`; nothing here imports Streamlit.
"""
from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Mapping

from brainviz.paths import DEFAULT_STORE

ENV_STORE = "BRAINVIZ_STORE"


def store_path(env: Mapping[str, str] | None = None) -> Path:
    """``$BRAINVIZ_STORE`` if set, else ``data/brainviz.duckdb`` in the project."""
    env = os.environ if env is None else env
    p = env.get(ENV_STORE)
    return Path(p).expanduser() if p else DEFAULT_STORE


def store_stamp(path: str | Path) -> tuple:
    """(inode, size, mtime) of the store file — part of cache keys, so a rebuilt store is reopened."""
    try:
        st = os.stat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        return (0, 0, 0)


_STORES: dict[str, object] = {}
_STORES_LOCK = threading.Lock()


@atexit.register
def _close_stores() -> None:
    with _STORES_LOCK:
        for store in _STORES.values():
            store.close()
        _STORES.clear()


def open_store(path: str | Path, stamp: tuple = ()):
    """The process's one read-only :class:`~brainviz.store.reader.Store` of ``path`` (raises
    BrainVizDataError naming the file, what is wrong and the rebuild command).

    One Store per path, shared by every page and session: it switches to a rebuilt file by
    itself and closes the replaced one once no page reads it (see the reader's docstring), so
    wrapping this in ``st.cache_resource`` keyed by ``stamp`` (:func:`store_stamp`) never
    leaves an old file open. A store that fails to open is not kept: the next call retries.
    """
    from brainviz.store.reader import Store

    key = os.path.abspath(path)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = Store(path)
            _STORES[key] = store
    store._current()  # noqa: SLF001  (switch to a replaced file now; raises if the new one is bad)
    return store
