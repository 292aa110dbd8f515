"""Read the BrainViz DuckDB store (read-only) for the app: the only place with SQL on the read side.

:class:`Store` opens the file read-only, checks ``meta.schema_version`` against
:data:`~brainviz.store.schema.SCHEMA_VERSION`, and offers typed methods that
return pandas DataFrames or numpy arrays. Column meanings are documented in
:mod:`brainviz.store.schema`.

Thread safety: a Store holds ONE read-only DuckDB connection per file version;
every method runs on its own short-lived cursor (``connection.cursor()``), so
one Store can be shared by all Streamlit sessions/threads. Opening is cheap
(one attach, a few catalog queries).

A rebuilt store is seen at once: ``precompute`` replaces the file atomically
(a new inode), and every method first compares the file's identity (inode,
size, mtime) with the version it has open. On a change the new file is opened
and validated, later calls read it, and the old version's connection is closed
as soon as no call is still reading it (so the replaced file's disk space is
released). Each file version is ATTACHed to its own in-memory DuckDB instance:
a plain ``duckdb.connect(path)`` would be handed the still-open database of the
old file by DuckDB's per-path instance cache. Extension autoloading and
autoinstall are off (opening, say, a SQLite file never downloads anything) and
the connection cannot read other files.

Validation on open (derived from :mod:`brainviz.store.schema`, never a copy):
the file is a DuckDB database and not truncated (every block its catalog and the
schema's tables point to lies inside the file: ``pragma_metadata_info`` and
``pragma_storage_info``; DuckDB's ``total_blocks`` is not used, as it still counts
free blocks DuckDB already cut from the file's end), has a ``meta`` table with this
:data:`~brainviz.store.schema.SCHEMA_VERSION`, holds some data (a store with
only a ``meta`` table is reported as empty), and every table of the schema has
exactly the schema's columns with the schema's types (array tables may be
absent: they are created on first write). Only the schema's own tables are
queried (by names from schema.py, quoted): table names found in the file never
become SQL. A file another program holds open for writing is reported as such.

Errors: a missing, unreadable, truncated, empty, drifted or wrong-version file
raises :class:`~brainviz.errors.BrainVizDataError` naming the file, what is
wrong and the command that rebuilds it; a read that fails later (a damaged
block) raises it too, never a raw DuckDB error. Asking for arrays that are not
stored (unknown model, subject, image, RDM) raises BrainVizDataError too.
DataFrame methods return an empty frame when nothing matches. Image and
checkpoint paths (provenance: what the store was built from) are stored relative
to the store's folder and returned resolved (:meth:`Store.resolve_path`); the
pages need neither: pictures come from :meth:`Store.thumbnails` (only the keys
asked for are read) and the live model from :meth:`Store.checkpoint`.
"""
from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import BrainVizDataError
from ..paths import DEFAULT_STORE, PROJECT_ROOT
from .schema import PREDICTION_SETS, SCHEMA_VERSION, TABLES, dim_key

REBUILD = "python -m precompute all"
#: DuckDB settings of every read connection: no extension is ever loaded or downloaded implicitly.
DUCKDB_CONFIG = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}
_ALIAS = "bv_store"
_HEADER_BYTES = 3 * 4096  # DuckDB file: main header + two database headers, then the blocks
_JSON_COLUMNS = {(t.name, c.name) for t in TABLES.values() for c in t.columns if c.type == "JSON"}


def _to_matrix(column: pa.ChunkedArray, field: str) -> np.ndarray:
    """An Arrow (fixed-size or variable) list column of n equal-length rows -> (n, d) float32."""
    arr = column.combine_chunks()
    n = len(arr)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if flat.size % n:
        raise BrainVizDataError(field, "stored rows differ in length")
    return flat.reshape(n, flat.size // n)


def _file_id(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_error(path: Path, exc: BaseException) -> BrainVizDataError:
    return BrainVizDataError(path, f"cannot read the store ({_first_line(exc)}); the file is damaged or "
                                   f"incomplete; rebuild it with `{REBUILD}`")


def _resolve(path: str | None, store_path: Path) -> str | None:
    if path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == "":
        return path
    p = Path(str(path)).expanduser()
    base = Path(store_path).parent
    if p.is_absolute():
        if p.exists():
            return str(p)
        # a store moved together with its files: keep the part below the store folder's name
        parts = p.parts
        if base.name in parts:
            i = len(parts) - 1 - parts[::-1].index(base.name)
            cand = base.joinpath(*parts[i + 1:])
            if cand.exists():
                return str(cand)
        return str(p)
    for root in (base, PROJECT_ROOT, Path.cwd()):
        if (root / p).exists():
            return str(root / p)
    return str(base / p)


def _frozen(params: Sequence[Any] | None) -> tuple | None:
    """Query parameters as a hashable key (lists, e.g. of image keys, become tuples); None when unhashable."""
    key = tuple(tuple(np.asarray(p).tolist()) if isinstance(p, (list, tuple, np.ndarray)) else p
                for p in (params or ()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _quote(name: str) -> str:
    """``name`` as a quoted SQL identifier (inner quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def _bytes_needed(con: duckdb.DuckDBPyConnection, tables: set[str]) -> int | None:
    """Bytes the attached store needs: the headers plus every block up to the last one its catalog
    (``pragma_metadata_info``) and ``tables`` (``pragma_storage_info``) point to; None when DuckDB
    reports no block size (nothing stored)."""
    row = con.execute("SELECT block_size FROM pragma_database_size() WHERE database_name = ?", [_ALIAS]).fetchone()
    if row is None or not row[0]:
        return None
    last = -1
    for (block,) in con.execute(f"SELECT block_id FROM pragma_metadata_info('{_ALIAS}')").fetchall():
        last = max(last, int(block))
    for t in sorted(tables):
        ids = con.execute("SELECT max(block_id), max(list_max(additional_block_ids)) FROM pragma_storage_info(?)",
                          [f"{_ALIAS}.main.{_quote(t)}"]).fetchone()
        last = max([last] + [int(b) for b in ids if b is not None])
    return _HEADER_BYTES + int(row[0]) * (last + 1)


def _lock_holder(exc: BaseException) -> str | None:
    """'PID n: program' when ``exc`` is DuckDB's "Conflicting lock is held" (another writer), else None."""
    text = str(exc)
    if "Conflicting lock" not in text and "Could not set lock" not in text:
        return None
    m = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", text)
    return f"PID {m.group(2)}: {m.group(1)}" if m else "another process"


_EXPECTED_TYPES: dict[tuple[str, str], str] = {}


def _expected_types() -> dict[tuple[str, str], str]:
    """{(table, column): DuckDB type name} of :data:`TABLES`, as DuckDB itself spells them.

    Built by running the schema's own DDL in a scratch in-memory database (array columns
    with size 1, compared without their size), so it follows schema.py exactly.
    """
    key = tuple((t.name, tuple((c.name, c.type) for c in t.columns)) for t in TABLES.values())
    cached = _EXPECTED_TYPES.get("__key__")
    if cached == repr(key):
        return _EXPECTED_TYPES
    con = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
    try:
        out: dict[Any, str] = {}
        for t in TABLES.values():
            con.execute(t.ddl(1 if t.array_column else None))
        for tbl, col, typ in con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall():
            out[(tbl, col)] = typ
    finally:
        con.close()
    _EXPECTED_TYPES.clear()
    _EXPECTED_TYPES.update(out)
    _EXPECTED_TYPES["__key__"] = repr(key)  # type: ignore[index]
    return _EXPECTED_TYPES


def _array_size(typ: str) -> int | None:
    m = re.fullmatch(r"(.+)\[(\d+)\]", typ)
    return int(m.group(2)) if m else None


def _strip_size(typ: str) -> str:
    return re.sub(r"\[\d+\]$", "[N]", typ)


def schema_problems(con: duckdb.DuckDBPyConnection, catalog: str, meta: dict[str, str]) -> list[str]:
    """What differs between the tables of ``catalog`` and :data:`TABLES` (empty list: none)."""
    expected = _expected_types()
    found: dict[str, dict[str, str]] = {}
    for tbl, col, typ in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name, ordinal_position",
            [catalog]).fetchall():
        found.setdefault(tbl, {})[col] = typ
    problems = []
    for name, table in TABLES.items():
        cols = found.get(name)
        if cols is None:
            if table.array_column is None:
                problems.append(f"table {name} is missing")
            continue
        missing = [c for c in table.column_names if c not in cols]
        extra = [c for c in cols if c not in table.column_names]
        if missing:
            problems.append(f"table {name} lacks column(s) {', '.join(missing)}")
        if extra:
            problems.append(f"table {name} has unexpected column(s) {', '.join(extra)}")
        for c in table.column_names:
            if c not in cols:
                continue
            want, got = expected[(name, c)], cols[c]
            if table.array_column == c:
                if _strip_size(got) != _strip_size(want) or _array_size(got) is None:
                    problems.append(f"column {name}.{c} is {got}, expected {_strip_size(want).replace('[N]', '[d]')}")
                elif meta.get(dim_key(name)) not in (None, str(_array_size(got))):
                    problems.append(f"column {name}.{c} is {got} but meta records size {meta.get(dim_key(name))}")
            elif got != want:
                problems.append(f"column {name}.{c} is {got}, expected {want}")
    return problems


#: Query results of one file version kept for the next identical query (a page reruns its reads on every
#: widget change): results up to RESULT_CACHE_ITEM_BYTES each, RESULT_CACHE_BYTES in all, least recently used
#: dropped first. Arrow tables are immutable, so a kept result is shared safely. The pandas frame of a kept result
#: (Store._df) is kept with it and dropped with it (roughly the same size again); callers get copies.
RESULT_CACHE_BYTES = 64 * 2**20
RESULT_CACHE_ITEM_BYTES = 8 * 2**20


class _Generation:
    """One version of the store file: its own in-memory DuckDB instance with the file ATTACHed read-only,
    and the results of its small queries (a file version never changes, so they stay true)."""

    def __init__(self, path: Path, stat: tuple, con: duckdb.DuckDBPyConnection, tables: set[str],
                 meta: dict[str, str]):
        self.path, self.stat, self.con, self.tables, self.meta = path, stat, con, tables, meta
        self.users = 0
        self.retired = False
        self.closed = False
        self._results: OrderedDict[tuple, pa.Table] = OrderedDict()
        self._result_bytes = 0
        # the pandas frames of kept results (Store._df), dropped with their result; handed out as copies
        self._frames: dict[tuple, pd.DataFrame] = {}
        self._results_lock = threading.Lock()
        self.resolved: dict[str, str | None] = {}  # stored image/checkpoint path -> resolved (Store.resolve_path)

    def cached(self, key: tuple) -> pa.Table | None:
        with self._results_lock:
            table = self._results.get(key)
            if table is not None:
                self._results.move_to_end(key)
            return table

    def remember(self, key: tuple, table: pa.Table) -> None:
        size = table.nbytes
        if size > RESULT_CACHE_ITEM_BYTES:
            return
        with self._results_lock:
            if key in self._results:
                return
            self._results[key] = table
            self._result_bytes += size
            while self._result_bytes > RESULT_CACHE_BYTES:
                gone, old = self._results.popitem(last=False)
                self._frames.pop(gone, None)
                self._result_bytes -= old.nbytes

    def frame(self, key: tuple) -> pd.DataFrame | None:
        """The pandas frame kept for the kept result ``key`` (None when either is not kept)."""
        with self._results_lock:
            return self._frames.get(key) if key in self._results else None

    def remember_frame(self, key: tuple, df: pd.DataFrame) -> None:
        """Keep ``df``, the pandas frame of the kept result ``key`` (nothing when that result is not kept)."""
        with self._results_lock:
            if key in self._results:
                self._frames[key] = df

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.con.close()
            except duckdb.Error:  # pragma: no cover - closing never matters to the caller
                pass

    @classmethod
    def open(cls, path: Path) -> "_Generation":
        if not path.is_file():
            what = "is a folder, not a store file" if path.is_dir() else "store file is missing"
            raise BrainVizDataError(path, f"{what}; build it with `{REBUILD}`")
        try:
            stat = _file_id(path)
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise BrainVizDataError(path, f"cannot read the store file ({exc.strerror})") from None
        if head.startswith(b"SQLite format 3\x00"):
            raise BrainVizDataError(path, f"this is a SQLite database, not a BrainViz store (DuckDB); "
                                          f"build a store with `{REBUILD}`")
        bad = "not a readable BrainViz store"
        try:
            con = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
        except duckdb.Error as exc:  # pragma: no cover - in-memory databases always open
            raise BrainVizDataError(path, f"{bad} ({_first_line(exc)})") from None
        try:
            try:
                con.execute("ATTACH '" + str(path).replace("'", "''") + f"' AS {_ALIAS} (READ_ONLY)")
                con.execute(f"USE {_ALIAS}")
                # the connection reads this store and nothing else
                con.execute("SET enable_external_access = false")
                con.execute("SET lock_configuration = true")
            except duckdb.Error as exc:
                held = _lock_holder(exc)
                if held is not None:
                    raise BrainVizDataError(path, f"the store is open for writing in another program ({held}); "
                                                  "wait until it has finished, or close it, then reload") from None
                raise BrainVizDataError(path, f"{bad} ({_first_line(exc)}); rebuild it with `{REBUILD}`") from None
            try:
                found_tables = {r[0] for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? "
                    "AND table_schema = 'main'", [_ALIAS]).fetchall()}
                tables = {t for t in TABLES if t in found_tables}  # only the schema's own tables are ever read
                need = _bytes_needed(con, tables)
                if need is not None and stat[1] < need:
                    raise BrainVizDataError(path, f"the store file is truncated ({stat[1]:,} bytes, its "
                                                  f"data needs {need:,}); rebuild it with `{REBUILD}`")
                if "meta" not in tables:
                    raise BrainVizDataError(path, f"not a BrainViz store (no meta table); rebuild it with `{REBUILD}`")
                meta = {str(k): v for k, v in con.execute("SELECT key, value FROM meta").fetchall()}
                found = meta.get("schema_version")
                if found != str(SCHEMA_VERSION):
                    raise BrainVizDataError(
                        path, f"store schema version {found} does not match this BrainViz (version "
                        f"{SCHEMA_VERSION}); rebuild it with `{REBUILD}`")
                data = [t for t in sorted(tables) if t != "meta"
                        and con.execute(f"SELECT count(*) FROM {_quote(t)}").fetchone()[0] > 0]
                if not data:
                    raise BrainVizDataError(path, "the store is empty: it holds no subjects, models or results "
                                                  f"(only a meta table); build it with `{REBUILD}`")
                problems = schema_problems(con, _ALIAS, meta)
                if problems:
                    more = f" and {len(problems) - 4} more" if len(problems) > 4 else ""
                    raise BrainVizDataError(path, f"the store does not match the BrainViz schema (version "
                                                  f"{SCHEMA_VERSION}): {'; '.join(problems[:4])}{more}; "
                                                  f"rebuild it with `{REBUILD}`")
            except duckdb.Error as exc:
                raise _read_error(path, exc) from None
        except BaseException:
            con.close()
            raise
        return cls(path, stat, con, tables, meta)


class _Cursor:
    """A DuckDB cursor that keeps its file version open until :meth:`close`."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, store: "Store", gen: _Generation):
        self._cur, self._store, self._gen = cur, store, gen
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def execute(self, *args: Any, **kw: Any):
        try:
            return self._cur.execute(*args, **kw)
        except duckdb.Error as exc:
            raise _read_error(self._store.path, exc) from None

    def close(self) -> None:
        if not self._done:
            self._done = True
            try:
                self._cur.close()
            finally:
                self._store._release(self._gen)

    def __del__(self) -> None:  # a caller that forgot close() must not pin the old file forever
        try:
            self.close()
        except Exception:
            pass


class Store:
    """Read-only access to a BrainViz store file.

    Parameters
    ----------
    path : the ``.duckdb`` file written by ``python -m precompute all``
        (default ``data/brainviz.duckdb``).
    """

    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._gen = _Generation.open(self.path)
        self._retired: list[_Generation] = []
        self._failed: tuple[tuple, BrainVizDataError] | None = None

    # ------------------------------------------------------------------ plumbing
    def _file_id(self) -> tuple[int, int, int]:
        return _file_id(self.path)

    @property
    def _stat(self) -> tuple[int, int, int]:
        return self._gen.stat

    def changed_on_disk(self) -> bool:
        """True when the file at ``path`` differs from the version this Store reads now.

        (Every read method switches to a replaced file by itself; see the module docstring.)
        """
        try:
            return self._file_id() != self._gen.stat
        except OSError:
            return True

    def _current(self) -> "_Generation":
        """The open file version, switching to a replaced file first (raises if the new one is bad)."""
        try:
            now = self._file_id()
        except OSError:
            raise BrainVizDataError(self.path, f"store file is missing; build it with `{REBUILD}`") from None
        with self._lock:
            gen = self._gen
            if now == gen.stat and not gen.closed:
                return gen
            if self._failed is not None and self._failed[0] == now:
                raise self._failed[1]
            if not gen.closed and not gen.retired:
                # replaced (or made unreadable): the old version is closed once nobody reads it
                gen.retired = True
                self._retired.append(gen)
            try:
                new = _Generation.open(self.path)
            except BrainVizDataError as exc:
                self._failed = (now, exc)
                self._sweep()
                raise
            self._failed = None
            self._gen = new
            self._sweep()
            return new

    def _sweep(self) -> None:
        """Close replaced file versions nobody reads any more (caller holds the lock)."""
        keep = []
        for g in self._retired:
            if g.users == 0:
                g.close()
            else:
                keep.append(g)
        self._retired = keep

    def _release(self, gen: "_Generation") -> None:
        with self._lock:
            gen.users -= 1
            if gen.retired and gen.users == 0:
                self._sweep()

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The read-only connection of the current file version (its default catalog is the store)."""
        return self._current().con

    @property
    def _tables(self) -> set[str]:
        return self._current().tables

    @property
    def _meta(self) -> dict[str, str]:
        return self._current().meta

    def close(self) -> None:
        with self._lock:
            for g in [self._gen, *self._retired]:
                g.close()
            self._retired = []

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _cursor(self) -> "_Cursor":
        """A cursor on the current file version; ``close()`` it when done (it keeps that version open)."""
        with self._lock:
            gen = self._current()
            gen.users += 1
        try:
            cur = gen.con.cursor()
            cur.execute(f"USE {_ALIAS}")
        except duckdb.Error as exc:
            self._release(gen)
            raise _read_error(self.path, exc) from None
        return _Cursor(cur, self, gen)

    @staticmethod
    def _key(sql: str, params: Sequence[Any] | None) -> tuple | None:
        """The key a result of ``sql`` with ``params`` is kept under (None: parameters not hashable)."""
        frozen = _frozen(params)
        return None if frozen is None else (sql, frozen)

    def _arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """The result of ``sql`` on the current file version (a kept result when the same query ran before: no
        cursor is opened for it)."""
        key = self._key(sql, params)
        if key is not None:
            table = self._current().cached(key)
            if table is not None:
                return table
        cur = self._cursor()
        try:
            table = cur.sql(sql, params=list(params) if params else None).arrow().read_all()
            if key is not None:
                cur._gen.remember(key, table)
            return table
        except duckdb.Error as exc:
            raise _read_error(self.path, exc) from None
        finally:
            cur.close()

    def resolve_path(self, path: str | None) -> str | None:
        """An image/checkpoint path as stored -> an existing file path where possible.

        Relative paths are tried against the store's folder (how stores are written now),
        then the project folder and the working folder (older stores); absolute paths that
        no longer exist are tried by their part below the store's folder name.
        """
        return self._resolver()(path)

    def _resolver(self):
        """:meth:`resolve_path` remembering its answers for the current file version (a page resolves every
        image's path on every rerun)."""
        try:
            memo = self._current().resolved
        except BrainVizDataError:  # the file went away: resolving needs only the path
            memo = {}

        def resolve(path: str | None) -> str | None:
            if not isinstance(path, str):
                return _resolve(path, self.path)
            if path not in memo:
                memo[path] = _resolve(path, self.path)
            return memo[path]
        return resolve

    def _select(self, table: str, columns: Sequence[str] | None = None, order: Sequence[str] = (),
                **filters: Any) -> pa.Table:
        """SELECT columns FROM table WHERE col = value for every non-None filter, ORDER BY order."""
        if table not in self._tables:
            names = columns or TABLES[table].column_names
            return pa.table({c: pa.array([], pa.null()) for c in names})
        return self._arrow(*self._select_sql(table, columns, order, **filters))

    @staticmethod
    def _select_sql(table: str, columns: Sequence[str] | None = None, order: Sequence[str] = (),
                    **filters: Any) -> tuple[str, list]:
        """(sql, params) of :meth:`_select`."""
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        where = [(k, v) for k, v in filters.items() if v is not None]
        sql = f'SELECT {cols} FROM "{table}"'
        if where:
            sql += " WHERE " + " AND ".join(f'"{k}" = ?' for k, _ in where)
        if order:
            sql += " ORDER BY " + ", ".join(f'"{c}"' for c in order)
        return sql, [v for _, v in where]

    def _df(self, table: str, columns: Sequence[str] | None = None, order: Sequence[str] = (),
            **filters: Any) -> pd.DataFrame:
        """:meth:`_select` as a pandas frame (JSON columns parsed). A page reads the same rows on every rerun:
        the frame of a kept result is kept too and handed out as a copy (the caller may change it)."""
        if table not in self._tables:
            return self._df_of(table, self._select(table, columns, order, **filters))
        sql, params = self._select_sql(table, columns, order, **filters)
        key = self._key(sql, params)
        gen = self._current()
        kept = None if key is None else gen.frame(key)
        if kept is not None:
            return kept.copy()
        df = self._df_of(table, self._arrow(sql, params))
        if key is not None:
            gen.remember_frame(key, df.copy())
        return df

    def _df_of(self, table: str, t: pa.Table) -> pd.DataFrame:
        """The pandas frame of ``t``, rows of ``table`` (JSON columns parsed)."""
        df = t.to_pandas()
        for col in t.column_names:
            if (table, col) in _JSON_COLUMNS:
                try:
                    values = [None if v is None else json.loads(v) for v in t.column(col).to_pylist()]
                except RecursionError:
                    raise BrainVizDataError(self.path, f"{table}.{col} holds JSON nested too deeply to read; "
                                                       f"rebuild the store with `{REBUILD}`") from None
                except ValueError as exc:
                    raise BrainVizDataError(self.path, f"{table}.{col} holds invalid JSON ({exc}); rebuild the "
                                                       f"store with `{REBUILD}`") from None
                df[col] = pd.Series(values, index=df.index, dtype=object)
        return df

    def _need(self, df_or_table: Any, what: str) -> None:
        if len(df_or_table) == 0:
            raise BrainVizDataError(self.path, f"no {what} in this store; rebuild it with `{REBUILD}`")

    # ------------------------------------------------------------------ overview
    def meta(self) -> dict[str, str]:
        """All ``meta`` facts as text (schema_version, created_at, brainviz_version, simulated, dim:*)."""
        return dict(self._meta)

    @property
    def simulated(self) -> bool:
        """True when the store was built from the simulated demo brain."""
        return self._meta.get("simulated") == "true"

    def summary(self) -> dict[str, Any]:
        """Overview: path, schema_version (int), created_at, brainviz_version, simulated (bool),
        datasets (list of dataset_id), subjects, models (lists of ids), rows (table -> row count)."""
        cur = self._cursor()
        try:
            rows = {t: cur.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                    for t in TABLES if t in self._tables}
        except duckdb.Error as exc:
            raise _read_error(self.path, exc) from None
        finally:
            cur.close()
        return {
            "path": str(self.path), "schema_version": int(self._meta["schema_version"]),
            "created_at": self._meta.get("created_at"), "brainviz_version": self._meta.get("brainviz_version"),
            "simulated": self.simulated,
            "datasets": self._select("datasets", ["dataset_id"], ["dataset_id"]).column(0).to_pylist(),
            "subjects": self._select("subjects", ["subject"], ["subject"]).column(0).to_pylist(),
            "models": self._select("models", ["model_id"], ["model_id"]).column(0).to_pylist(),
            "rows": rows,
        }

    def datasets(self) -> pd.DataFrame:
        """dataset_id, name, path, simulated, surface, manifest (dict)."""
        return self._df("datasets", order=["dataset_id"])

    def subjects(self) -> pd.DataFrame:
        """subject, dataset_id, source ('nsd'|'vim1'), n_train (fitted), n_test (evaluation images), n_lh, n_rh,
        evaluation ('test' fMRI | 'held-out' training images); sorted by subject."""
        return self._df("subjects", order=["subject"])

    def n_vertices(self, subject: str) -> int:
        """V = n_lh + n_rh of ``subject``."""
        t = self._select("subjects", ["n_lh", "n_rh"], subject=subject)
        self._need(t, f"subject {subject!r}")
        return int(t.column(0)[0].as_py() + t.column(1)[0].as_py())

    def vertices(self, subject: str) -> pd.DataFrame:
        """V rows ordered by vertex: vertex, hemi, hemi_index, surface_index, fsaverage5_index,
        roi_prf, roi_faces, roi_bodies, roi_places, roi_words, roi_streams (missing = no ROI),
        planted_region (missing for real data)."""
        cols = [c for c in TABLES["vertices"].column_names if c != "subject"]
        return self._df("vertices", cols, ["vertex"], subject=subject)

    # ------------------------------------------------------------------ images
    def images(self, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """image_key, dataset, dataset_id, path (resolved, :meth:`resolve_path`); in ``keys`` order
        if given (unknown keys raise)."""
        df = self._df("images", order=["image_key"])
        if "path" in df:
            resolve = self._resolver()
            df["path"] = pd.Series([None if pd.isna(v) else resolve(v) for v in df["path"]], index=df.index,
                                   dtype=object)
        if keys is None:
            return df
        df = df.set_index("image_key", drop=False)
        missing = [k for k in keys if k not in df.index]
        if missing:
            raise BrainVizDataError(self.path, f"images not in this store: {missing[:5]}")
        return df.loc[list(keys)].reset_index(drop=True)

    def image_splits(self, subject: str, split: str | None = None) -> pd.DataFrame:
        """image_key, split, row: the images ``subject`` saw, ordered by split then response row."""
        return self._df("image_splits", ["image_key", "split", "row"], ["split", "row"], subject=subject, split=split)

    def image_tags(self) -> pd.DataFrame:
        """Category scores in [0, 1], indexed by image_key; columns faces ... people, tags (text)."""
        df = self._df("image_tags", order=["image_key"])
        return df.set_index("image_key")

    def thumbnails(self, keys: Sequence[str]) -> dict[str, bytes]:
        """{image_key: the thumbnail's bytes (a JPEG file, ``thumbnails.format``)} of the ``keys`` that have one, in
        their order; only these rows are read (unknown keys are left out)."""
        keys = list(dict.fromkeys(str(k) for k in keys))
        if not keys or "thumbnails" not in self._tables:
            return {}
        t = self._arrow("SELECT image_key, data FROM thumbnails WHERE image_key IN (SELECT unnest(?))", [keys])
        got = dict(zip(t.column("image_key").to_pylist(), t.column("data").to_pylist()))
        return {k: got[k] for k in keys if k in got}

    def backbones(self) -> list[str]:
        """Backbones with stored pooled image features."""
        if "image_features" not in self._tables:
            return []
        return self._arrow("SELECT DISTINCT backbone FROM image_features ORDER BY 1").column(0).to_pylist()

    def image_features(self, backbone: str, image_keys: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """(keys, (n, D) float32 pooled features) of ``backbone``; all images sorted by key, or ``image_keys`` order."""
        t = self._select("image_features", ["image_key", "pooled"], ["image_key"], backbone=backbone)
        self._need(t, f"image features of backbone {backbone!r}")
        keys = t.column("image_key").to_pylist()
        mat = _to_matrix(t.column("pooled"), f"image_features[{backbone}]")
        return self._pick(keys, mat, image_keys, f"image features of {backbone!r}")

    def _pick(self, keys: list[str], mat: np.ndarray, wanted: Sequence[str] | None, what: str) -> tuple[list[str], np.ndarray]:
        if wanted is None:
            return keys, mat
        pos = {k: i for i, k in enumerate(keys)}
        missing = [k for k in wanted if k not in pos]
        if missing:
            raise BrainVizDataError(self.path, f"no {what} for images {list(missing)[:5]}")
        return list(wanted), mat[[pos[k] for k in wanted]]

    # ------------------------------------------------------------------ models
    def models(self, kind: str | None = None) -> pd.DataFrame:
        """model_id, kind, subjects (list), backbone, config (dict), checkpoint_path, created_at,
        provenance (dict); optionally only ``kind`` ('ridge'|'ue_single'|'ue_multi'|'ue_transfer')."""
        df = self._df("models", order=["model_id"], kind=kind)
        if "checkpoint_path" in df:
            df["checkpoint_path"] = [self.resolve_path(v) for v in df["checkpoint_path"]]
        return df

    def checkpoints(self) -> pd.DataFrame:
        """model_id, format, n_bytes, sha256 of the stored checkpoints (without their bytes), by model_id."""
        return self._df("checkpoints", ["model_id", "format", "n_bytes", "sha256"], ["model_id"])

    def checkpoint(self, model_id: str) -> bytes:
        """The stored checkpoint bytes of ``model_id`` (load with ``UniversalEncoder.load(data)``: tensors only)."""
        t = self._select("checkpoints", ["data"], model_id=model_id)
        if len(t) == 0:
            held = ", ".join(self.checkpoints()["model_id"]) or "none"
            raise BrainVizDataError(self.path, f"no checkpoint of model {model_id!r} in this store (checkpoints "
                                               f"stored: {held}); rebuild it with `{REBUILD}`")
        return t.column("data")[0].as_py()

    def voxel_embeddings(self, model_id: str, subject: str) -> np.ndarray:
        """(V, E) float32 voxel embeddings of ``subject``'s vertices 0..V-1 (bit-exact as written)."""
        t = self._select("voxel_embeddings", ["embedding"], ["vertex"], model_id=model_id, subject=subject)
        self._need(t, f"voxel embeddings for model {model_id!r}, subject {subject!r}")
        return _to_matrix(t.column("embedding"), f"voxel_embeddings[{model_id}, {subject}]")

    def embedding_map(self, model_id: str, subject: str | None = None) -> pd.DataFrame:
        """subject, vertex, x, y: the 2-D UMAP map of a model's voxel embeddings (all subjects if None)."""
        return self._df("embedding_maps", ["subject", "vertex", "x", "y"], ["subject", "vertex"],
                        model_id=model_id, subject=subject)

    def vertex_metrics(self, model_id: str, subject: str) -> pd.DataFrame:
        """vertex, r, nc, nna (V rows, ordered by vertex)."""
        return self._df("vertex_metrics", ["vertex", "r", "nc", "nna"], ["vertex"], model_id=model_id, subject=subject)

    def roi_metrics(self, model_id: str | None = None, subject: str | None = None) -> pd.DataFrame:
        """model_id, subject, roi, median_r, p25, p75, median_nna, n."""
        return self._df("roi_metrics", order=["model_id", "subject", "roi"], model_id=model_id, subject=subject)

    def retrieval(self, model_id: str | None = None, subject: str | None = None) -> pd.DataFrame:
        """model_id, subject, n_candidates, mean_rank, top1, top5."""
        return self._df("retrieval", order=["model_id", "subject"], model_id=model_id, subject=subject)

    @staticmethod
    def _image_set(image_set: str) -> str:
        if image_set not in PREDICTION_SETS:
            raise BrainVizDataError("image_set", f"got {image_set!r}, expected one of {PREDICTION_SETS}")
        return image_set

    def prediction_keys(self, model_id: str, subject: str, image_set: str = "test") -> list[str]:
        """Image keys with stored predictions for (model, subject) in ``image_set`` ('test' | 'tagged'), sorted."""
        t = self._select("predictions", ["image_key"], ["image_key"], model_id=model_id, subject=subject,
                         image_set=self._image_set(image_set))
        return t.column(0).to_pylist()

    def predictions(self, model_id: str, subject: str, image_keys: Sequence[str] | None = None,
                    image_set: str = "test") -> np.ndarray:
        """(n, V) float32 predicted responses of ``image_set`` ('test': evaluation images, 'tagged': every tagged
        image), rows in ``image_keys`` order (default: :meth:`prediction_keys`)."""
        what = f"{image_set} predictions for model {model_id!r}, subject {subject!r}"
        self._image_set(image_set)
        if image_keys is None:
            t = self._select("predictions", ["image_key", "values"], ["image_key"], model_id=model_id, subject=subject,
                             image_set=image_set)
            self._need(t, what)
            return _to_matrix(t.column("values"), what)
        keys = [str(k) for k in image_keys]
        if not keys:
            return np.zeros((0, self.n_vertices(subject)), np.float32)
        t = self._arrow('SELECT image_key, "values" FROM predictions WHERE model_id = ? AND subject = ? '
                        'AND image_set = ? AND image_key IN (SELECT unnest(?))', [model_id, subject, image_set, keys])
        got = t.column("image_key").to_pylist()
        return self._pick(got, _to_matrix(t.column("values"), what), keys, what)[1]

    # ------------------------------------------------------------------ clusters
    def cluster_scopes(self, model_id: str) -> list[str]:
        """Scopes clustered for ``model_id`` ('subj01', 'joint', 'joint:PPA' ...), sorted."""
        t = self._arrow("SELECT DISTINCT scope FROM clusters WHERE model_id = ? ORDER BY 1", [model_id])
        return t.column(0).to_pylist()

    def available_k(self, model_id: str, scope: str) -> list[int]:
        """The k values clustered for (model, scope), ascending."""
        t = self._arrow("SELECT DISTINCT k FROM clusters WHERE model_id = ? AND scope = ? ORDER BY 1", [model_id, scope])
        return [int(v) for v in t.column(0).to_pylist()]

    def clusters(self, model_id: str, scope: str, k: int, subject: str | None = None) -> pd.DataFrame:
        """subject, vertex, cluster (only clustered vertices), ordered by subject, vertex."""
        return self._df("clusters", ["subject", "vertex", "cluster"], ["subject", "vertex"],
                        model_id=model_id, scope=scope, k=int(k), subject=subject)

    def cluster_labels(self, model_id: str, scope: str, k: int, subject: str) -> np.ndarray:
        """(V,) int32 cluster of every vertex of ``subject``, -1 where not clustered (for brain plots)."""
        out = np.full(self.n_vertices(subject), -1, np.int32)
        df = self.clusters(model_id, scope, k, subject)
        out[df["vertex"].to_numpy()] = df["cluster"].to_numpy()
        return out

    def cluster_top_images(self, model_id: str, scope: str, k: int, *, subject: str | None = None,
                           source: str | None = None, cluster: int | None = None) -> pd.DataFrame:
        """cluster, subject, source, rank, image_key, score; ordered by cluster, subject, source, rank
        (pictures: :meth:`thumbnails`)."""
        return self._df("cluster_top_images", ["cluster", "subject", "source", "rank", "image_key", "score"],
                        ["cluster", "subject", "source", "rank"], model_id=model_id, scope=scope, k=int(k),
                        subject=subject, source=source, cluster=cluster)

    def cluster_descriptions(self, model_id: str, scope: str, k: int) -> pd.DataFrame:
        """cluster, n_vertices, description ('faces 9/10'), source, enrichment (dict); by cluster."""
        return self._df("cluster_descriptions", ["cluster", "n_vertices", "description", "source", "enrichment"],
                        ["cluster"], model_id=model_id, scope=scope, k=int(k))

    def vertex_reliability(self, subject: str) -> np.ndarray:
        """(V,) float32 noise ceiling (fraction: repetitions of the fitted images, else the dataset's published
        noise ceilings) used to pick clustered vertices; all NaN when the store has no reliability estimate."""
        out = np.full(self.n_vertices(subject), np.nan, np.float32)
        df = self._df("vertex_reliability", ["vertex", "nc"], ["vertex"], subject=subject)
        out[df["vertex"].to_numpy()] = df["nc"].to_numpy(np.float32)
        return out

    def cluster_settings(self, model_id: str, scope: str | None = None) -> pd.DataFrame:
        """scope, subject, base, region, percentile, nc_threshold, chosen_k, k_rule, is_default; by scope, subject."""
        return self._df("cluster_settings", ["scope", "subject", "base", "region", "percentile", "nc_threshold",
                                             "chosen_k", "k_rule", "is_default"], ["scope", "subject"],
                        model_id=model_id, scope=scope)

    def cluster_quality(self, model_id: str, scope: str | None = None) -> pd.DataFrame:
        """scope, k, metric, value, simulation_check; by scope, k, metric (stability curve + recovery scores)."""
        return self._df("cluster_quality", ["scope", "k", "metric", "value", "simulation_check"],
                        ["scope", "k", "metric"], model_id=model_id, scope=scope)

    # ------------------------------------------------------------------ RDMs and RSA
    def list_rdms(self, subject: str | None = None, roi: str | None = None, source: str | None = None) -> pd.DataFrame:
        """rdm_id, subject, roi, metric, source, n (no values); ordered by rdm_id."""
        return self._df("rdms", ["rdm_id", "subject", "roi", "metric", "source", "n"], ["rdm_id"],
                        subject=subject, roi=roi, source=source)

    def rdm(self, rdm_id: str) -> tuple[np.ndarray, list[str]]:
        """(square (n, n) float32 RDM with zero diagonal, n image keys in row order)."""
        t = self._select("rdms", ["n", "image_keys", "values"], rdm_id=rdm_id)
        self._need(t, f"RDM {rdm_id!r}")
        n = int(t.column("n")[0].as_py())
        vals = t.column("values").combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        out = np.zeros((n, n), np.float32)
        iu = np.triu_indices(n, 1)
        out[iu] = vals
        out[(iu[1], iu[0])] = vals
        return out, t.column("image_keys")[0].as_py()

    def extreme_pairs(self, rdm_id: str, kind: str | None = None) -> pd.DataFrame:
        """kind ('most_similar'|'most_dissimilar'), rank, image_a, image_b, value."""
        return self._df("extreme_pairs", ["kind", "rank", "image_a", "image_b", "value"], ["kind", "rank"],
                        rdm_id=rdm_id, kind=kind)

    def rsa(self, rdm_id: str | None = None) -> pd.DataFrame:
        """rdm_a, rdm_b, method, value, p_value, nc_lower, nc_upper (rows involving ``rdm_id`` if given)."""
        df = self._df("rsa", order=["rdm_a", "rdm_b", "method"])
        if rdm_id is not None:
            df = df[(df["rdm_a"] == rdm_id) | (df["rdm_b"] == rdm_id)].reset_index(drop=True)
        return df

    def k92_rsa(self) -> pd.DataFrame:
        """model, method, value, p_value, nc_lower, nc_upper."""
        return self._df("k92_rsa", order=["method", "model"])

    def k92_fit(self) -> pd.DataFrame:
        """model, method, value, value_sem, nc_lower, nc_upper, n_folds, weights (dict or None):
        the cross-validated layer mix on held-out images x subjects (empty in older stores)."""
        return self._df("k92_fit", order=["method", "model"])

    def decoding_rois(self, subject: str | None = None) -> pd.DataFrame:
        """subject, roi_set, roi, n_vertices (0 = this ROI of the set is absent from the data)."""
        return self._df("decoding_rois", order=["subject", "roi_set", "roi"], subject=subject)

    def decoding_weights(self, subject: str | None = None) -> pd.DataFrame:
        """subject, approach, roi_set, weight: the validated vote's weights over ROI sets."""
        return self._df("decoding_weights", order=["subject", "approach", "roi_set"], subject=subject)

    def pair_model(self) -> pd.DataFrame:
        """split, metric, value, baseline."""
        return self._df("pair_model", order=["split", "metric"])

    # ------------------------------------------------------------------ decoding, transfer
    def decoding(self, subject: str | None = None, roi_set: str | None = None) -> pd.DataFrame:
        """subject, roi_set, image_key, rank, top_keys (list), cosine."""
        return self._df("decoding", order=["subject", "roi_set", "image_key"], subject=subject, roi_set=roi_set)

    def transfer_curve(self, subject: str | None = None) -> pd.DataFrame:
        """subject, n_train, method, median_r, seed."""
        return self._df("transfer_curve", order=["subject", "method", "n_train", "seed"], subject=subject)

    # ------------------------------------------------------------------ what the run could not compute
    def skipped_analyses(self) -> pd.DataFrame:
        """analysis, subject (None = the whole run), reason, enable: what precompute skipped on this dataset."""
        return self._df("skipped_analyses", ["analysis", "subject", "reason", "enable"])

    def evaluation(self) -> dict[str, str]:
        """{subject: 'test' | 'held-out'}: where each subject's evaluation ('test') images come from."""
        t = self._select("subjects", ["subject", "evaluation"], ["subject"])
        return dict(zip(t.column(0).to_pylist(), t.column(1).to_pylist()))

    # ------------------------------------------------------------------ cluster variants
    def cluster_variants(self, model_id: str) -> pd.DataFrame:
        """scope, family, percentile, profile, n_images, measured_share, smoothing, smoothing_radius_mm,
        with_neighbours, profile_default, is_default: what each cluster scope of ``model_id`` clustered; by scope."""
        return self._df("cluster_variants", ["scope", "family", "percentile", "profile", "n_images", "measured_share",
                                             "smoothing", "smoothing_radius_mm", "with_neighbours", "profile_default",
                                             "is_default"],
                        ["scope"], model_id=model_id)


    # ------------------------------------------------------------------ the analyses' policy
    def analysis_settings(self) -> dict[str, float | tuple[float, ...]]:
        """{name: number, or tuple of numbers for a sequence field}: the policy the run's analyses used
        (table ``analysis_settings``; names: :class:`brainviz.pipeline.settings.AnalysisSettings`' numeric fields,
        e.g. ``min_stability``, ``reliability_percentiles``, ``cluster_ks``)."""
        df = self._df("analysis_settings", ["name", "position", "value"], ["name", "position"])
        out: dict[str, float | tuple[float, ...]] = {}
        for name, grp in df.groupby("name", sort=True):
            if grp["position"].isna().all():
                out[str(name)] = float(grp["value"].iloc[0])
            else:
                out[str(name)] = tuple(float(v) for v in grp.sort_values("position")["value"])
        return out


__all__ = ["Store", "REBUILD"]
