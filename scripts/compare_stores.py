"""Compare two BrainViz stores table by table: ``python scripts/compare_stores.py A.duckdb B.duckdb``.

For every table present in both stores: the columns only in one, the row counts, and the values of the common
columns, row by row after sorting both on their scalar columns (numbers within ``--tol``: |a - b| <= tol + tol * |b|,
NaN equals NaN; numeric lists element-wise; JSON values parsed and compared the same way; text, integers, booleans,
bytes exactly). Lists the tables only in one store. Ignored by default: ``meta`` keys created_at, timings and
git_commit, ``models.created_at`` and JSON keys git_commit (what differs between two runs of the same code);
``--ignore`` adds more: ``table.column``, ``meta.<key>`` or ``json:<key>`` (e.g. ``json:work_dir`` when the runs
used different work folders). Paths (``images.path``, ``models.checkpoint_path``) are compared as stored;
``--resolve-paths`` compares them as the reader resolves them, relative ones against each store's folder.

Exit status: 0 when no difference is found, 1 otherwise, 2 when a store cannot be read. Reads the stores
read-only; needs only duckdb, numpy and pyarrow.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_IGNORE = ("meta.created_at", "meta.timings", "meta.git_commit", "models.created_at", "json:git_commit")
PATH_COLUMNS = {("images", "path"), ("models", "checkpoint_path")}
_SCALAR_SORT = ("VARCHAR", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BOOLEAN", "DOUBLE", "FLOAT", "JSON",
                "TIMESTAMP", "DATE", "HUGEINT", "UBIGINT", "UINTEGER")


def _columns(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for table, col, typ in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_catalog = ? "
            "AND table_schema = 'main' ORDER BY table_name, ordinal_position", [db]).fetchall():
        out.setdefault(table, {})[col] = typ
    return out


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    out = con.sql(sql).arrow()
    return out.read_all() if hasattr(out, "read_all") else out  # duckdb >= 1.4: a RecordBatchReader


def _close(a: float, b: float, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol + tol * abs(b)


def _json_equal(a, b, tol: float, ignore: set[str]) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        ka, kb = set(a) - ignore, set(b) - ignore
        return ka == kb and all(_json_equal(a[k], b[k], tol, ignore) for k in ka)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y, tol, ignore) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return _close(float(a), float(b), tol)
    return a == b


def _text_json(x: str | None):
    if x is None:
        return None
    try:
        return json.loads(x)
    except ValueError:
        return x


def _numeric(arr: pa.ChunkedArray) -> np.ndarray:
    return arr.combine_chunks().to_numpy(zero_copy_only=False).astype(np.float64)


def _compare_column(a: pa.ChunkedArray, b: pa.ChunkedArray, typ: str, tol: float, ignore_json: set[str],
                    paths: tuple[Path, Path] | None) -> tuple[int, str]:
    """(number of differing rows, an example)."""
    t = a.type
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        x, y = _numeric(a), _numeric(b)
        bad = ~((np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= tol + tol * np.abs(y)))
        i = np.flatnonzero(bad)
        return len(i), (f"row {i[0]}: {x[i[0]]!r} vs {y[i[0]]!r} (max |diff| "
                        f"{np.nanmax(np.abs(x - y)[bad]):.3g})" if len(i) else "")
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and \
            (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        ca, cb = a.combine_chunks(), b.combine_chunks()
        # a NULL list has length -1 (equal to another NULL list, never to an empty one)
        la = np.asarray(pc.fill_null(pc.list_value_length(ca), -1).to_numpy(zero_copy_only=False))
        lb = np.asarray(pc.fill_null(pc.list_value_length(cb), -1).to_numpy(zero_copy_only=False))
        if not np.array_equal(la, lb):
            i = int(np.flatnonzero(la != lb)[0])
            return int((la != lb).sum()), f"row {i}: list lengths {la[i]} vs {lb[i]}"
        x = ca.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        y = cb.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~((np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= tol + tol * np.abs(y)))
        if not bad.any():
            return 0, ""
        row = np.repeat(np.arange(len(la)), np.maximum(la, 0))[bad]
        return len(np.unique(row)), (f"row {row[0]}: element values differ (max |diff| "
                                     f"{np.nanmax(np.abs(x - y)[bad]):.3g}, {int(bad.sum())} elements)")
    xa, xb = a.to_pylist(), b.to_pylist()
    if typ == "JSON" or typ == "VARCHAR" and paths is None and any(
            isinstance(v, str) and v[:1] in "{[" for v in xa[:50]):
        bad = [i for i, (u, v) in enumerate(zip(xa, xb))
               if not _json_equal(_text_json(u), _text_json(v), tol, ignore_json)]
    elif paths is not None:
        def resolve(v, root: Path):
            return None if v is None else os.path.normpath(v if os.path.isabs(v) else root / v)
        bad = [i for i, (u, v) in enumerate(zip(xa, xb)) if resolve(u, paths[0]) != resolve(v, paths[1])]
    else:
        bad = [i for i, (u, v) in enumerate(zip(xa, xb)) if u != v]
    if not bad:
        return 0, ""
    i = bad[0]
    show = lambda v: (repr(v)[:120] + "...") if len(repr(v)) > 120 else repr(v)  # noqa: E731
    return len(bad), f"row {i}: {show(xa[i])} vs {show(xb[i])}"


def compare(path_a: Path, path_b: Path, tol: float = 1e-6, ignore: tuple[str, ...] = (),
            resolve_paths: bool = False) -> list[str]:
    """Lines describing every difference between the stores (empty: none), plus a summary line per table
    (starting with 'same')."""
    ignore = set(DEFAULT_IGNORE) | set(ignore)
    ignore_json = {x[5:] for x in ignore if x.startswith("json:")}
    ignore_meta = {x[5:] for x in ignore if x.startswith("meta.")}
    con = duckdb.connect()
    con.execute(f"ATTACH '{path_a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{path_b}' AS b (READ_ONLY)")
    cols_a, cols_b = _columns(con, "a"), _columns(con, "b")
    out, same = [], []
    for t in sorted(set(cols_a) - set(cols_b)):
        out.append(f"table {t}: only in A ({con.execute(f'SELECT count(*) FROM a.{t}').fetchall()[0][0]} rows)")
    for t in sorted(set(cols_b) - set(cols_a)):
        out.append(f"table {t}: only in B ({con.execute(f'SELECT count(*) FROM b.{t}').fetchall()[0][0]} rows)")
    for t in sorted(set(cols_a) & set(cols_b)):
        ca, cb = cols_a[t], cols_b[t]
        for c in ca:
            if c not in cb:
                out.append(f"{t}.{c}: column only in A")
        for c in cb:
            if c not in ca:
                out.append(f"{t}.{c}: column only in B")
        common = [c for c in ca if c in cb and f"{t}.{c}" not in ignore]
        na = con.execute(f'SELECT count(*) FROM a."{t}"').fetchall()[0][0]
        nb = con.execute(f'SELECT count(*) FROM b."{t}"').fetchall()[0][0]
        if na != nb:
            out.append(f"table {t}: {na} rows in A, {nb} in B")
            continue
        where = ""
        if t == "meta" and ignore_meta:
            where = " WHERE key NOT IN (" + ", ".join(f"'{k}'" for k in sorted(ignore_meta)) + ")"
        keys = [c for c in common if ca[c] in _SCALAR_SORT and ca[c] not in ("DOUBLE", "FLOAT")] + \
               [c for c in common if ca[c] in ("DOUBLE", "FLOAT")]
        order = (" ORDER BY " + ", ".join(f'"{c}"' for c in keys)) if keys else ""
        sel = ", ".join(f'"{c}"' for c in common)
        ta = _arrow(con, f'SELECT {sel} FROM a."{t}"{where}{order}')
        tb = _arrow(con, f'SELECT {sel} FROM b."{t}"{where}{order}')
        if ta.num_rows != tb.num_rows:
            out.append(f"table {t}: {ta.num_rows} compared rows in A, {tb.num_rows} in B")
            continue
        diffs = []
        for c in common:
            paths = (path_a.parent, path_b.parent) if resolve_paths and (t, c) in PATH_COLUMNS else None
            n, example = _compare_column(ta.column(c), tb.column(c), ca[c], tol, ignore_json, paths)
            if n:
                if t == "meta":  # name the keys
                    ka, va, vb = ta.column("key").to_pylist(), ta.column(c).to_pylist(), tb.column(c).to_pylist()
                    for k, u, v in zip(ka, va, vb):
                        if not _json_equal(_text_json(u), _text_json(v), tol, ignore_json):
                            s = lambda x: (str(x)[:100] + "...") if len(str(x)) > 100 else str(x)  # noqa: E731
                            diffs.append(f"meta[{k}]: {s(u)!r} vs {s(v)!r}")
                else:
                    diffs.append(f"{t}.{c}: {n} of {ta.num_rows} rows differ; {example}")
        if diffs:
            out += diffs
        else:
            same.append(f"same {t} ({na} rows)")
    con.close()
    return out + same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--tol", type=float, default=1e-6, help="float tolerance (absolute and relative), default 1e-6")
    ap.add_argument("--ignore", action="append", default=[],
                    help="table.column, meta.<key> or json:<key> to leave out (repeatable)")
    ap.add_argument("--resolve-paths", action="store_true",
                    help="compare images.path / models.checkpoint_path resolved against each store's folder")
    ap.add_argument("--quiet", action="store_true", help="print only the differences")
    args = ap.parse_args(argv)
    for p in (args.a, args.b):
        if not p.is_file():
            print(f"{p}: no such store file", file=sys.stderr)
            return 2
    try:
        lines = compare(args.a, args.b, args.tol, tuple(args.ignore), args.resolve_paths)
    except duckdb.Error as exc:
        print(f"cannot read the stores: {exc}", file=sys.stderr)
        return 2
    differences = [ln for ln in lines if not ln.startswith("same ")]
    for ln in lines if not args.quiet else differences:
        print(ln)
    print(f"{len(differences)} difference(s); ignored: {', '.join(sorted(set(DEFAULT_IGNORE) | set(args.ignore)))}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
