"""Write the BrainViz DuckDB store atomically.

:class:`StoreWriter` builds a NEW database in a temporary file next to the
final path and, on :meth:`~StoreWriter.commit`, checkpoints it, closes it and
renames it onto the final path with :func:`os.replace` (atomic on POSIX). On
any exception inside ``with StoreWriter(p) as w:`` or on
:meth:`~StoreWriter.abort`, the temporary file is deleted and the previous
store (if any) stays byte-identical. A process killed with SIGKILL may leave a
``.<name>.<pid>.*.tmp`` file (and its ``.wal``) behind; it is never read, and the
next StoreWriter of the same path removes it once that pid no longer runs
(:func:`brainviz.atomic.sweep_stale_temps`).

Paths (``images.path``, ``models.checkpoint_path``) are stored relative to the
store's folder when the file lies below the folder above it (e.g. the project
for ``data/brainviz.duckdb``), else absolute; the reader resolves them against
the store's location, so a moved project or another working folder still
finds them.

Everything is bulk-inserted from pandas DataFrames or Arrow tables
(``INSERT INTO t BY NAME SELECT * FROM <registered>``); fixed-size embedding
columns are written from Arrow ``FixedSizeListArray``\\ s, so float32 values
round-trip bit-exact. Column meanings: :mod:`brainviz.store.schema`.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__
from ..atomic import sweep_stale_temps, temp_prefix
from ..errors import BrainVizDataError
from .schema import MODEL_KINDS, ROI_COLUMNS, SCHEMA_VERSION, TABLES, TAG_CATEGORIES, create_statements, dim_key

Data = pd.DataFrame | pa.Table


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def to_json(obj: Any) -> str | None:
    """``json.dumps`` that accepts numpy scalars/arrays and paths; None stays None; str is kept."""
    if obj is None or isinstance(obj, str):
        return obj
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _close_and_remove(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        con.close()
    finally:
        _remove(path)


def _float_matrix(field: str, arr: Any, n_cols: int | None = None) -> np.ndarray:
    """Check a 2-D finite numeric array and return it as C-contiguous float32."""
    a = np.asarray(arr)
    if a.ndim != 2:
        raise BrainVizDataError(field, f"expected a 2-D array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise BrainVizDataError(field, f"expected numbers, got dtype {a.dtype}")
    if n_cols is not None and a.shape[1] != n_cols:
        raise BrainVizDataError(field, f"expected {n_cols} columns, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise BrainVizDataError(field, "contains NaN or infinite values")
    return a


def fixed_size_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """(n, d) float32 -> Arrow FixedSizeListArray of n lists of size d (zero-copy)."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), m.shape[1])


def _list_array(matrix: np.ndarray) -> pa.Array:
    """(n, d) float32 -> Arrow (large) ListArray of n variable lists, each of length d."""
    n, d = matrix.shape
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
    if n * d < 2**31 - 1:
        return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * d), flat)
    return pa.LargeListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int64) * d), flat)


class StoreWriter:
    """Build a new store in a temp file; :meth:`commit` renames it onto ``final_path``.

    Use as a context manager (commits on success, aborts on an exception)::

        with StoreWriter("data/brainviz.duckdb") as w:
            w.add_dataset(...)
            w.add_voxel_embeddings("ue_multi", "subj01", emb)   # emb (V, E) float32

    Only one writer per final path at a time. Not thread-safe.
    """

    def __init__(self, final_path: str | Path):
        self.final_path = Path(final_path)
        if self.final_path.is_dir():
            raise BrainVizDataError(self.final_path, "is a folder; give the path of a store file, e.g. data/brainviz.duckdb")
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(self.final_path)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(self.final_path), suffix=".tmp", dir=self.final_path.parent)
        os.close(fd)
        os.unlink(tmp)  # DuckDB creates the file itself
        self.tmp_path = Path(tmp)
        self._con = duckdb.connect(str(self.tmp_path))
        # if the writer is dropped without commit/abort, the temp file still goes away
        self._finalizer = weakref.finalize(self, _close_and_remove, self._con, self.tmp_path)
        self._dims: dict[str, int] = {}
        try:
            for ddl in create_statements():
                self._con.execute(ddl)
            self.set_meta(schema_version=SCHEMA_VERSION, brainviz_version=__version__,
                          created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        except BaseException:
            self.abort()
            raise

    # ------------------------------------------------------------------ lifecycle
    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def commit(self) -> Path:
        """Checkpoint, close and atomically rename the temp file onto ``final_path``; return it."""
        self._check_open()
        try:
            if self._con.execute("SELECT count(*) FROM meta WHERE key = 'simulated'").fetchone()[0] == 0:
                sim = self._con.execute("SELECT coalesce(bool_or(simulated), false) FROM datasets").fetchone()[0]
                self.set_meta(simulated=bool(sim))
            self._con.execute("CHECKPOINT")
            self._con.close()
            os.replace(self.tmp_path, self.final_path)
            _remove(self.tmp_path)  # a WAL left by the checkpoint, if any
        except BaseException:
            self.abort()
            raise
        self._finalizer.detach()
        return self.final_path

    def abort(self) -> None:
        """Close and delete the temp file; the previous store is untouched. Idempotent."""
        self._finalizer()

    def _check_open(self) -> None:
        if self.closed:
            raise BrainVizDataError(self.tmp_path, "the store writer is already committed or aborted")

    # ------------------------------------------------------------------ generic
    def set_meta(self, **facts: Any) -> None:
        """Set ``meta`` facts (values stored as text; bools as 'true'/'false', dicts as JSON)."""
        self._check_open()
        rows = []
        for k, v in facts.items():
            text = ("true" if v else "false") if isinstance(v, (bool, np.bool_)) else (
                v if isinstance(v, str) else to_json(v) if isinstance(v, (dict, list)) else str(v))
            rows.append((k, text))
        self._con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows)

    def write_table(self, name: str, data: Data, *, ignore_duplicates: bool = False) -> int:
        """Bulk-insert ``data`` (DataFrame or Arrow table) into table ``name``; return rows written.

        Columns are matched by name; any subset of the schema's columns is
        allowed as long as the NOT NULL ones are present (missing ones are
        NULL). JSON columns accept dicts/lists (serialized here). A table with
        a ``FLOAT[d]`` column is created on its first write with ``d`` taken
        from the data. ``ignore_duplicates`` skips rows whose primary key is
        already stored (tables with a primary key only).
        """
        self._check_open()
        table = TABLES.get(name)
        if table is None:
            raise BrainVizDataError(f"table {name}", f"unknown table; expected one of {sorted(TABLES)}")
        if isinstance(data, pd.DataFrame):
            data = data.reset_index(drop=True)
            for col in data.columns:
                if col in table.column_names and table.column(col).type == "JSON":
                    data[col] = [to_json(v) for v in data[col]]
            try:
                data = pa.Table.from_pandas(data, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise BrainVizDataError(f"table {name}", f"cannot convert the DataFrame to Arrow ({exc})") from None
        elif not isinstance(data, pa.Table):
            raise BrainVizDataError(f"table {name}", f"expected a DataFrame or Arrow table, got {type(data).__name__}")
        extra = [c for c in data.column_names if c not in table.column_names]
        if extra:
            raise BrainVizDataError(f"table {name}", f"unknown columns {extra}; expected {table.column_names}")
        missing = [c for c in table.required if c not in data.column_names]
        if missing:
            raise BrainVizDataError(f"table {name}", f"missing required columns {missing}")
        if data.num_rows == 0:
            return 0
        if table.array_column is not None:
            self._ensure_array_table(name, data.column(table.array_column))
        view = f"_bv_in_{uuid.uuid4().hex}"
        self._con.register(view, data)
        try:
            verb = "INSERT OR IGNORE" if ignore_duplicates else "INSERT"
            self._con.execute(f'{verb} INTO "{name}" BY NAME SELECT * FROM "{view}"')
        except duckdb.Error as exc:
            raise BrainVizDataError(f"table {name}", f"insert failed: {exc}") from None
        finally:
            self._con.unregister(view)
        return data.num_rows

    def _ensure_array_table(self, name: str, column: pa.ChunkedArray) -> None:
        typ = column.type
        if pa.types.is_fixed_size_list(typ):
            dim = typ.list_size
        else:
            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            if len(lengths) == 0 or lengths.min() != lengths.max():
                raise BrainVizDataError(f"table {name}", "array column rows differ in length")
            dim = int(lengths[0])
        if name in self._dims:
            if self._dims[name] != dim:
                raise BrainVizDataError(
                    f"table {name}", f"this store holds arrays of size {self._dims[name]}, got size {dim} "
                    "(one size per store; see brainviz/store/schema.py)")
            return
        self._con.execute(TABLES[name].ddl(dim))
        self._dims[name] = dim
        self.set_meta(**{dim_key(name): dim})

    def relative_path(self, path: str | Path | None) -> str | None:
        """``path`` as stored: relative to the store's folder when it lies below that folder's
        parent (e.g. the project folder for ``data/brainviz.duckdb``), else absolute."""
        if path is None:
            return None
        a = Path(os.path.abspath(Path(path).expanduser()))
        base = Path(os.path.abspath(self.final_path.parent))
        if a == base.parent or base.parent in a.parents:
            return os.path.relpath(a, base)
        return str(a)

    @staticmethod
    def _frame(n: int, **cols: Any) -> pa.Table:
        """Arrow table of ``n`` rows; scalar values are broadcast."""
        out = {}
        for k, v in cols.items():
            if isinstance(v, pa.Array):
                out[k] = v
            elif np.ndim(v) == 0 and not isinstance(v, (list, tuple)):
                out[k] = pa.array([v] * n) if v is not None else pa.nulls(n)
            else:
                out[k] = pa.array(np.asarray(v)) if isinstance(v, np.ndarray) else pa.array(list(v))
            if len(out[k]) != n:
                raise BrainVizDataError(k, f"expected {n} values, got {len(out[k])}")
        return pa.table(out)

    # ------------------------------------------------------------------ datasets, subjects, vertices
    def add_dataset(self, dataset_id: str, name: str, path: str | Path, *, simulated: bool,
                    surface: str, manifest: Mapping[str, Any] | None = None) -> None:
        """One input dataset folder (``manifest``: its manifest.json as a dict)."""
        self.write_table("datasets", pd.DataFrame([{
            "dataset_id": dataset_id, "name": name, "path": str(path), "simulated": bool(simulated),
            "surface": surface, "manifest": to_json(manifest)}]))

    def add_subject(self, subject: str, dataset_id: str, source: str, *, n_train: int, n_test: int,
                    n_lh: int, n_rh: int, evaluation: str = "test") -> None:
        """One subject; ``source`` is the image dataset ('nsd' or 'vim1'); ``n_train`` fitted and ``n_test``
        evaluation images, which come from ``evaluation`` ('test' fMRI or 'held-out' training images)."""
        self.write_table("subjects", pd.DataFrame([{
            "subject": subject, "dataset_id": dataset_id, "source": source, "n_train": int(n_train),
            "n_test": int(n_test), "n_lh": int(n_lh), "n_rh": int(n_rh), "evaluation": str(evaluation)}]))

    def add_vertices(self, subject: str, vertex_table: pd.DataFrame,
                     planted_region: Sequence[str | None] | np.ndarray | None = None) -> None:
        """Vertices of ``subject`` from :meth:`AlgonautsSubject.vertex_table` (V rows, lh first).

        ROI names "Unknown" become NULL; ``planted_region`` is (V,) region names
        (demo brain ground truth; None/"" for none) or None for real data.
        """
        vt = vertex_table.reset_index(drop=True)
        for col in ("hemi", "index", "surface_index", "fsaverage5_index"):
            if col not in vt.columns:
                raise BrainVizDataError(f"vertices of {subject}", f"vertex table lacks column {col!r}")
        n = len(vt)
        cols: dict[str, Any] = {
            "subject": subject, "vertex": np.arange(n, dtype=np.int32), "hemi": vt["hemi"].astype(str).to_numpy(),
            "hemi_index": vt["index"].to_numpy(np.int32), "surface_index": vt["surface_index"].to_numpy(np.int32),
            "fsaverage5_index": vt["fsaverage5_index"].to_numpy(np.int32)}
        for cls, col in ROI_COLUMNS.items():
            if cls in vt.columns:
                cols[col] = [None if (v is None or pd.isna(v) or v == "Unknown") else str(v) for v in vt[cls]]
        if planted_region is not None:
            cols["planted_region"] = [None if (v is None or v == "" or pd.isna(v)) else str(v) for v in planted_region]
        self.write_table("vertices", self._frame(n, **cols))

    # ------------------------------------------------------------------ images
    def add_images(self, image_keys: Sequence[str], paths: Sequence[str | Path],
                   dataset_id: str | None = None) -> None:
        """Images (keys like 'nsd-02950'; the dataset is the key's prefix). Already stored keys are skipped."""
        keys = [str(k) for k in image_keys]
        bad = [k for k in keys if "-" not in k]
        if bad:
            raise BrainVizDataError("image_key", f"expected '<dataset>-<id>' keys, got {bad[:3]}")
        df = pd.DataFrame({"image_key": keys, "dataset": [k.split("-", 1)[0] for k in keys],
                           "dataset_id": dataset_id, "path": [self.relative_path(p) for p in paths]})
        self.write_table("images", df.drop_duplicates("image_key"), ignore_duplicates=True)

    def add_image_splits(self, subject: str, split: str, image_keys: Sequence[str]) -> None:
        """The (n,) images of ``subject``'s ``split`` in response-row order (row = position)."""
        n = len(image_keys)
        self.write_table("image_splits", self._frame(n, subject=subject, image_key=[str(k) for k in image_keys],
                                                     split=split, row=np.arange(n, dtype=np.int32)))

    def add_image_tags(self, scores: pd.DataFrame, tags: Mapping[str, str] | pd.Series | None = None) -> None:
        """Category scores, a DataFrame indexed by image_key with columns from TAG_CATEGORIES.

        ``tags`` maps image_key -> free text. Already stored keys are skipped.
        """
        unknown = [c for c in scores.columns if c not in TAG_CATEGORIES]
        if unknown:
            raise BrainVizDataError("image_tags", f"unknown categories {unknown}; expected {list(TAG_CATEGORIES)}")
        df = scores.astype(np.float32).copy()
        df.insert(0, "image_key", [str(k) for k in scores.index])
        if tags is not None:
            df["tags"] = [tags.get(k) for k in df["image_key"]]
        self.write_table("image_tags", df[~df["image_key"].duplicated()], ignore_duplicates=True)

    def add_image_features(self, backbone: str, image_keys: Sequence[str], pooled: np.ndarray) -> None:
        """(n, D) pooled features of ``backbone`` for ``image_keys`` (stored as FLOAT[D])."""
        m = _float_matrix(f"image_features[{backbone}]", pooled)
        if m.shape[0] != len(image_keys):
            raise BrainVizDataError(f"image_features[{backbone}]", f"{m.shape[0]} rows but {len(image_keys)} keys")
        self.write_table("image_features", self._frame(len(m), backbone=backbone, image_key=[str(k) for k in image_keys],
                                                       pooled=fixed_size_list(m)))

    # ------------------------------------------------------------------ models and their outputs
    def add_model(self, model_id: str, kind: str, subjects: Sequence[str], *, backbone: str | None = None,
                  config: Mapping[str, Any] | None = None, checkpoint_path: str | Path | None = None,
                  provenance: Mapping[str, Any] | None = None, created_at: datetime | None = None) -> None:
        """One trained encoder; ``kind`` in MODEL_KINDS."""
        if kind not in MODEL_KINDS:
            raise BrainVizDataError(f"models.kind of {model_id}", f"got {kind!r}, expected one of {MODEL_KINDS}")
        self.write_table("models", pd.DataFrame([{
            "model_id": model_id, "kind": kind, "subjects": [str(s) for s in subjects], "backbone": backbone,
            "config": to_json(config), "checkpoint_path": self.relative_path(checkpoint_path),
            "created_at": created_at or datetime.now(timezone.utc).replace(tzinfo=None),
            "provenance": to_json(provenance)}]))

    def add_voxel_embeddings(self, model_id: str, subject: str, embeddings: np.ndarray) -> None:
        """(V, E) float32 voxel embeddings of ``subject``'s vertices 0..V-1 (stored as FLOAT[E], bit-exact)."""
        m = _float_matrix(f"voxel_embeddings[{model_id}, {subject}]", embeddings)
        self.write_table("voxel_embeddings", self._frame(
            len(m), model_id=model_id, subject=subject, vertex=np.arange(len(m), dtype=np.int32),
            embedding=fixed_size_list(m)))

    def add_embedding_map(self, model_id: str, subject: str, xy: np.ndarray) -> None:
        """(V, 2) 2-D map coordinates of ``subject``'s vertices 0..V-1."""
        m = _float_matrix(f"embedding_maps[{model_id}, {subject}]", xy, n_cols=2)
        self.write_table("embedding_maps", self._frame(
            len(m), model_id=model_id, subject=subject, vertex=np.arange(len(m), dtype=np.int32), x=m[:, 0], y=m[:, 1]))

    def add_clusters(self, model_id: str, scope: str, k: int, subject: str, labels: np.ndarray,
                     vertices: np.ndarray | None = None) -> None:
        """(n,) cluster labels of ``subject``'s ``vertices`` (default 0..n-1); labels < 0 are not stored."""
        lab = np.asarray(labels)
        if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
            raise BrainVizDataError(f"clusters[{model_id}, {scope}, k={k}]", f"expected 1-D integer labels, got {lab.dtype} {lab.shape}")
        vert = np.arange(len(lab)) if vertices is None else np.asarray(vertices)
        if vert.shape != lab.shape:
            raise BrainVizDataError(f"clusters[{model_id}, {scope}, k={k}]", f"{len(vert)} vertices but {len(lab)} labels")
        keep = lab >= 0
        if (lab[keep] >= k).any():
            raise BrainVizDataError(f"clusters[{model_id}, {scope}, k={k}]", "labels must be < k")
        n = int(keep.sum())
        self.write_table("clusters", self._frame(n, model_id=model_id, scope=scope, k=int(k), subject=subject,
                                                 vertex=vert[keep].astype(np.int32), cluster=lab[keep].astype(np.int32)))

    def add_cluster_top_images(self, model_id: str, scope: str, k: int, subject: str, source: str,
                               top: pd.DataFrame) -> None:
        """Top images from :func:`brainviz.clusters.top_images` (columns cluster, rank, image_key, score)."""
        if source not in ("measured", "predicted"):
            raise BrainVizDataError("cluster_top_images.source", f"got {source!r}, expected 'measured' or 'predicted'")
        df = top[["cluster", "rank", "image_key", "score"]].copy()
        df["model_id"], df["scope"], df["k"], df["subject"], df["source"] = model_id, scope, int(k), subject, source
        self.write_table("cluster_top_images", df)

    def add_cluster_descriptions(self, model_id: str, scope: str, k: int, descriptions: pd.DataFrame) -> None:
        """Columns cluster, n_vertices, description, and optionally source, enrichment (dicts)."""
        df = descriptions.copy()
        df["model_id"], df["scope"], df["k"] = model_id, scope, int(k)
        self.write_table("cluster_descriptions", df)

    def add_vertex_metrics(self, model_id: str, subject: str, r: np.ndarray, nc: np.ndarray | None = None,
                           nna: np.ndarray | None = None) -> None:
        """(V,) Pearson r, noise ceiling and noise-normalized accuracy, both fractions (NaN allowed, e.g. nc = 0)."""
        r = np.asarray(r, dtype=np.float32)
        cols: dict[str, Any] = {"model_id": model_id, "subject": subject,
                                "vertex": np.arange(len(r), dtype=np.int32), "r": r}
        for name, v in (("nc", nc), ("nna", nna)):
            if v is not None:
                cols[name] = np.asarray(v, dtype=np.float32)
        self.write_table("vertex_metrics", self._frame(len(r), **cols))

    def add_retrieval(self, model_id: str, subject: str, *, n_candidates: int, mean_rank: float,
                      top1: float, top5: float) -> None:
        """Retrieval summary of one model and subject."""
        self.write_table("retrieval", pd.DataFrame([{
            "model_id": model_id, "subject": subject, "n_candidates": int(n_candidates),
            "mean_rank": float(mean_rank), "top1": float(top1), "top5": float(top5)}]))

    def add_predictions(self, model_id: str, subject: str, image_keys: Sequence[str], values: np.ndarray) -> None:
        """(n, V) predicted responses of ``subject``'s vertices for ``image_keys`` (one row per image)."""
        m = _float_matrix(f"predictions[{model_id}, {subject}]", values)
        if m.shape[0] != len(image_keys):
            raise BrainVizDataError(f"predictions[{model_id}, {subject}]", f"{m.shape[0]} rows but {len(image_keys)} keys")
        self.write_table("predictions", self._frame(len(m), model_id=model_id, subject=subject,
                                                    image_key=[str(k) for k in image_keys], values=_list_array(m)))

    # ------------------------------------------------------------------ RDMs
    def add_rdm(self, rdm_id: str, image_keys: Sequence[str], rdm: np.ndarray, *, metric: str, source: str,
                subject: str | None = None, roi: str | None = None) -> None:
        """An (n, n) symmetric RDM (or its condensed (n(n-1)/2,) form) over ``image_keys``."""
        a = np.asarray(rdm, dtype=np.float32)
        n = len(image_keys)
        if a.ndim == 2:
            if a.shape != (n, n):
                raise BrainVizDataError(f"rdm {rdm_id}", f"expected shape ({n}, {n}), got {a.shape}")
            a = a[np.triu_indices(n, 1)]
        if a.shape != (n * (n - 1) // 2,):
            raise BrainVizDataError(f"rdm {rdm_id}", f"expected {n * (n - 1) // 2} condensed values, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise BrainVizDataError(f"rdm {rdm_id}", "contains NaN or infinite values")
        self.write_table("rdms", pa.table({
            "rdm_id": [rdm_id], "subject": pa.array([subject], pa.string()), "roi": pa.array([roi], pa.string()),
            "metric": [metric], "source": [source], "n": pa.array([n], pa.int32()),
            "image_keys": pa.array([[str(k) for k in image_keys]], pa.list_(pa.string())),
            "values": pa.ListArray.from_arrays(pa.array([0, len(a)], pa.int32()), pa.array(a))}))

    def add_extreme_pairs(self, rdm_id: str, pairs: pd.DataFrame) -> None:
        """Columns kind, rank, image_a, image_b, value."""
        df = pairs.copy()
        df["rdm_id"] = rdm_id
        self.write_table("extreme_pairs", df)
