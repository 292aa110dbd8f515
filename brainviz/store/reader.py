"""Read the BrainViz DuckDB store (read-only) for the app: the only place with SQL on the read side.

:class:`Store` opens the file read-only, checks ``meta.schema_version`` against
:data:`~brainviz.store.schema.SCHEMA_VERSION`, and offers typed methods that
return pandas DataFrames or numpy arrays. Column meanings are documented in
:mod:`brainviz.store.schema`.

Thread safety: a Store holds ONE read-only DuckDB connection; every method
runs on its own short-lived cursor (``connection.cursor()``, a separate
DuckDB connection to the same database), so one Store can be shared by all
Streamlit sessions/threads (e.g. via ``st.cache_resource``). Opening is cheap
(one connect and one small query). The store file is replaced atomically by
``precompute``; an open Store keeps reading the old file until reopened
(:meth:`Store.changed_on_disk` tells when to).

Errors: a missing, unreadable or wrong-version file raises
:class:`~brainviz.errors.BrainVizDataError` naming the file and the command
that rebuilds it; asking for arrays that are not stored (unknown model,
subject, image, RDM) raises BrainVizDataError too. DataFrame methods return an
empty frame when nothing matches.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import BrainVizDataError
from ..paths import DEFAULT_STORE
from .schema import SCHEMA_VERSION, TABLES

REBUILD = "python -m precompute all"
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


class Store:
    """Read-only access to a BrainViz store file.

    Parameters
    ----------
    path : the ``.duckdb`` file written by ``python -m precompute all``
        (default ``data/brainviz.duckdb``).
    """

    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        if not self.path.is_file():
            raise BrainVizDataError(self.path, f"store file is missing; build it with `{REBUILD}`")
        self._stat = self._file_id()
        try:
            self._con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            raise BrainVizDataError(self.path, f"not a readable BrainViz store ({exc}); rebuild it with `{REBUILD}`") from None
        self._lock = threading.Lock()
        try:
            self._tables = {r[0] for r in self._con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
            if "meta" not in self._tables:
                raise BrainVizDataError(self.path, f"not a BrainViz store (no meta table); rebuild it with `{REBUILD}`")
            self._meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        except BaseException:
            self._con.close()
            raise
        found = self._meta.get("schema_version")
        if found != str(SCHEMA_VERSION):
            self._con.close()
            raise BrainVizDataError(
                self.path, f"store schema version {found} does not match this BrainViz (version "
                f"{SCHEMA_VERSION}); rebuild it with `{REBUILD}`")

    # ------------------------------------------------------------------ plumbing
    def _file_id(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed_on_disk(self) -> bool:
        """True when the file at ``path`` was replaced since this Store opened it (reopen to see it)."""
        try:
            return self._file_id() != self._stat
        except FileNotFoundError:
            return True

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._con.cursor()

    def _arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        cur = self._cursor()
        try:
            return cur.sql(sql, params=list(params) if params else None).arrow().read_all()
        finally:
            cur.close()

    def _select(self, table: str, columns: Sequence[str] | None = None, order: Sequence[str] = (),
                **filters: Any) -> pa.Table:
        """SELECT columns FROM table WHERE col = value for every non-None filter, ORDER BY order."""
        if table not in self._tables:
            names = columns or TABLES[table].column_names
            return pa.table({c: pa.array([], pa.null()) for c in names})
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        where = [(k, v) for k, v in filters.items() if v is not None]
        sql = f'SELECT {cols} FROM "{table}"'
        if where:
            sql += " WHERE " + " AND ".join(f'"{k}" = ?' for k, _ in where)
        if order:
            sql += " ORDER BY " + ", ".join(f'"{c}"' for c in order)
        return self._arrow(sql, [v for _, v in where])

    def _df(self, table: str, columns: Sequence[str] | None = None, order: Sequence[str] = (),
            **filters: Any) -> pd.DataFrame:
        t = self._select(table, columns, order, **filters)
        df = t.to_pandas()
        for col in t.column_names:
            if (table, col) in _JSON_COLUMNS:
                df[col] = pd.Series([None if v is None else json.loads(v) for v in t.column(col).to_pylist()],
                                    index=df.index, dtype=object)
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
        """subject, dataset_id, source ('nsd'|'vim1'), n_train, n_test, n_lh, n_rh; sorted by subject."""
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
        """image_key, dataset, dataset_id, path; in ``keys`` order if given (unknown keys raise)."""
        df = self._df("images", order=["image_key"])
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
        return self._df("models", order=["model_id"], kind=kind)

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

    def prediction_keys(self, model_id: str, subject: str) -> list[str]:
        """Image keys with stored predictions for (model, subject), sorted."""
        t = self._select("predictions", ["image_key"], ["image_key"], model_id=model_id, subject=subject)
        return t.column(0).to_pylist()

    def predictions(self, model_id: str, subject: str, image_keys: Sequence[str] | None = None) -> np.ndarray:
        """(n, V) float32 predicted responses, rows in ``image_keys`` order (default: :meth:`prediction_keys`)."""
        what = f"predictions for model {model_id!r}, subject {subject!r}"
        if image_keys is None:
            t = self._select("predictions", ["image_key", "values"], ["image_key"], model_id=model_id, subject=subject)
            self._need(t, what)
            return _to_matrix(t.column("values"), what)
        keys = [str(k) for k in image_keys]
        if not keys:
            return np.zeros((0, self.n_vertices(subject)), np.float32)
        t = self._arrow('SELECT image_key, "values" FROM predictions WHERE model_id = ? AND subject = ? '
                        'AND image_key IN (SELECT unnest(?))', [model_id, subject, keys])
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
        """cluster, subject, source, rank, image_key, score, path; ordered by cluster, subject, source, rank."""
        where = [("t.model_id", model_id), ("t.scope", scope), ("t.k", int(k)), ("t.subject", subject),
                 ("t.source", source), ("t.cluster", cluster)]
        where = [(c, v) for c, v in where if v is not None]
        sql = ("SELECT t.cluster, t.subject, t.source, t.rank, t.image_key, t.score, i.path "
               "FROM cluster_top_images t LEFT JOIN images i USING (image_key) WHERE "
               + " AND ".join(f"{c} = ?" for c, _ in where)
               + " ORDER BY t.cluster, t.subject, t.source, t.rank")
        return self._arrow(sql, [v for _, v in where]).to_pandas()

    def cluster_descriptions(self, model_id: str, scope: str, k: int) -> pd.DataFrame:
        """cluster, n_vertices, description ('faces 9/10'), source, enrichment (dict); by cluster."""
        return self._df("cluster_descriptions", ["cluster", "n_vertices", "description", "source", "enrichment"],
                        ["cluster"], model_id=model_id, scope=scope, k=int(k))

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


__all__ = ["Store", "REBUILD"]
