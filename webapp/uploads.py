"""[Streamlit] What one browser session may keep uploaded on the server, and giving memory back.

Streamlit keeps every uploaded file in the server's memory for the session; its own limit,
``server.maxUploadSize``, is per file. And a closed tab's session is kept for reconnection
(``server.disconnectedSessionTTL``, 2 minutes) and then only dropped from a cache, without
being shut down: its uploaded files stayed in the upload manager for the life of the server
(Streamlit 1.67; ``bench/bench_upload_memory.py --sessions``). Three guards, installed once per
process by :func:`install` (``webapp.shell`` calls it):

* **Per session**: an upload that would take the files one session holds past
  :data:`MAX_SESSION_BYTES` (two In-silico sets of ``brainviz.insilico.MAX_SET_BYTES`` and one
  Live-prediction image) is refused by the upload endpoint (HTTP 413) and never stored. The
  In-silico page bounds each set further (:mod:`brainviz.insilico`: bytes, zip members,
  images, decoded pixels) and remembers one result per set.
* **Ended sessions are freed**: every :data:`REAP_EVERY_S` seconds a daemon thread drops the
  sessions whose reconnection time is over (as Streamlit's own cache would on its next write)
  and removes the uploaded files of every session that no longer exists (:func:`reap`).
* **Memory back to the system**: glibc serves large blocks (an upload, a decoded image) from
  its heap once it has freed a few; that memory then stays with the process after the session
  ends. :func:`install` makes every block of :data:`MMAP_THRESHOLD` bytes or more a mapping of
  its own (returned to the system when freed), so a finished session's uploads are given back
  (``bench/bench_upload_memory.py --sessions``).

Both rely on Streamlit / glibc details; when they are not there (another Streamlit version,
another C library) nothing is installed and the per-set bounds still hold.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

from brainviz.insilico import MAX_SET_BYTES
from brainviz.live import MAX_BYTES, MB

#: Bytes of uploaded files one session may hold: two In-silico sets and one Live-prediction image.
MAX_SESSION_BYTES = 2 * MAX_SET_BYTES + MAX_BYTES
#: Blocks of at least this many bytes get a memory mapping of their own (glibc ``M_MMAP_THRESHOLD``);
#: ``$BRAINVIZ_MMAP_THRESHOLD`` (bytes; 0 = glibc's own choice) overrides it.
MMAP_THRESHOLD = int(os.environ.get("BRAINVIZ_MMAP_THRESHOLD", 1 * MB))
_M_MMAP_THRESHOLD = -3  # glibc malloc.h
#: Seconds between two looks for ended sessions.
REAP_EVERY_S = 5.0

_installed: dict[str, bool] = {}
_lock = threading.Lock()


def session_bytes(manager, session_id: str, except_file: str | None = None) -> int:
    """Bytes of the files ``session_id`` holds in Streamlit's uploaded-file manager."""
    files = getattr(manager, "file_storage", {}).get(session_id) or {}
    return sum(len(f.data) for fid, f in files.items() if fid != except_file)


def _limit_session_uploads(limit: int) -> bool:
    """Refuse (HTTP 413) an upload that takes one session's files past ``limit`` bytes."""
    try:
        from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    except ImportError:  # pragma: no cover - another Streamlit layout
        return False
    add = MemoryUploadedFileManager.add_file
    if getattr(add, "_brainviz_limit", None) is not None:
        add._brainviz_limit[0] = limit  # type: ignore[attr-defined]
        return True
    box = [limit]

    def add_file(self, session_id, file):
        with self._lock:
            held = session_bytes(self, session_id, except_file=file.file_id)
        if held + len(file.data) > box[0]:
            try:
                from starlette.exceptions import HTTPException
            except ImportError:  # pragma: no cover
                raise ValueError("upload limit of this session reached") from None
            raise HTTPException(status_code=413, detail=(
                f"this session already holds {held / MB:.0f} MB of uploads; the limit is {box[0] / MB:.0f} MB "
                "(remove files, or reload the page)"))
        return add(self, session_id, file)

    add_file._brainviz_limit = box  # type: ignore[attr-defined]
    MemoryUploadedFileManager.add_file = add_file
    return True


def forget(uploaded) -> bool:
    """Remove ``uploaded`` (a ``st.file_uploader`` file whose bytes the page has taken) from Streamlit's
    upload manager, for a page that replaces the uploader by an empty one after each file (the frontend
    then never deletes it). Returns whether it was removed (False without a script run or on another
    Streamlit layout: the file then goes with the session)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # pragma: no cover - another Streamlit layout
        return False
    ctx = get_script_run_ctx()
    file_id = getattr(uploaded, "file_id", None)
    if ctx is None or file_id is None or not Runtime.exists():
        return False
    mgr = Runtime.instance().uploaded_file_mgr
    remove = getattr(mgr, "remove_file", None)
    if remove is None:  # pragma: no cover
        return False
    remove(ctx.session_id, file_id)
    return True


def _give_large_blocks_back(threshold: int) -> bool:
    """glibc: serve blocks >= ``threshold`` bytes from their own mappings (freed = returned)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def reap(runtime) -> list[str]:
    """Free what ended sessions still hold: drop the disconnected sessions whose reconnection time
    is over from Streamlit's session storage, and remove the uploaded files of every session that
    is neither active nor waiting for a reconnection. Returns the session ids whose files went."""
    mgr = runtime.uploaded_file_mgr
    files = getattr(mgr, "file_storage", None)
    if files is None:
        return []
    sm = getattr(runtime, "_session_mgr", None)
    storage = getattr(sm, "_session_storage", None)
    lock = getattr(sm, "_storage_lock", None)
    waiting: set[str] = set()
    if storage is not None and lock is not None:
        with lock:
            cache = getattr(storage, "_cache", None)
            if cache is not None and hasattr(cache, "expire"):
                cache.expire()  # what Streamlit's next session write would do: expired sessions are let go
            waiting = {info.session.id for info in storage.list()}
    elif storage is None:
        return []  # another Streamlit layout: cannot tell a waiting session from an ended one
    with getattr(mgr, "_lock", _lock):
        candidates = list(files)
    gone = [sid for sid in candidates if sid not in waiting and not runtime.is_active_session(sid)]
    for sid in gone:
        mgr.remove_session_files(sid)
    return gone


def _reaper() -> None:
    import time

    from streamlit.runtime import Runtime

    while True:
        time.sleep(REAP_EVERY_S)
        try:
            if Runtime.exists():
                reap(Runtime.instance())
        except Exception:  # noqa: BLE001  (never take the server down; try again later)
            pass


def install(limit: int = MAX_SESSION_BYTES, threshold: int = MMAP_THRESHOLD) -> dict[str, bool]:
    """Install the guards (idempotent); returns which ones are active."""
    with _lock:
        if not _installed:
            _installed["session_limit"] = _limit_session_uploads(limit)
            _installed["mmap_threshold"] = bool(threshold) and _give_large_blocks_back(threshold)
            threading.Thread(target=_reaper, name="brainviz-upload-reaper", daemon=True).start()
            _installed["reaper"] = True
        elif _installed.get("session_limit"):
            _limit_session_uploads(limit)
        return dict(_installed)


