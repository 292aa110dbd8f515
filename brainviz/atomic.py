"""Write files so that readers never see a half-written result.

Everything is written to a temporary sibling path first and renamed into place
with :func:`os.replace`, which is atomic on POSIX file systems.

Temporary names carry the writer's process id (``.<name>.<pid>.<random><suffix>.tmp``):
a writer killed before it could clean up (SIGKILL, power loss) leaves its temp file
(and a DuckDB ``.wal`` beside it); the next writer of the same final path removes
the temp files of processes that no longer run (:func:`sweep_stale_temps`).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

#: Temp files of the old naming (no pid) are removed when untouched this long (seconds).
LEGACY_TEMP_AGE = 3600


def temp_prefix(final: str | Path) -> str:
    """Prefix of this process's temp files for ``final``: ``.<name>.<pid>.``."""
    return f".{Path(final).name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(final: str | Path) -> list[Path]:
    """Remove temp files/folders beside ``final`` left by dead writers; return what was removed.

    A name ``.<name>.<pid>.<random>...tmp`` (or ``...tmp.wal``) is removed when process
    ``pid`` no longer runs; a temp of the old naming without pid when untouched for
    :data:`LEGACY_TEMP_AGE` seconds. Temp files of live processes are never touched.
    """
    final = Path(final)
    folder = final.parent
    if not folder.is_dir():
        return []
    name = re.escape(final.name)
    with_pid = re.compile(rf"\.{name}\.(\d+)\.[A-Za-z0-9_]{{8}}.*\.tmp(\.wal)?")
    legacy = re.compile(rf"\.{name}\.[A-Za-z0-9_]{{8}}.*\.tmp(\.wal)?")
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    prefix = f".{final.name}."
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        m = with_pid.fullmatch(entry.name)
        if m:
            if int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
                continue
        elif legacy.fullmatch(entry.name):
            try:
                if time.time() - entry.lstat().st_mtime < LEGACY_TEMP_AGE:
                    continue
            except OSError:
                continue
        else:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` on success.

    On an exception the temporary file (or folder) is removed and ``final``
    keeps its previous content.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(final)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=suffix + ".tmp", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)  # let the writer create it (some libraries refuse existing files)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``final``; swap it into place on success.

    An existing ``final`` folder is replaced only after the new one is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
