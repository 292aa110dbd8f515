"""Out-of-core (streamed) data access: lazy hemisphere concatenation, row blocks, streamed statistics.

NSD-sized data (8 subjects x ~9,000 images x ~40,000 vertices float32, ~12 GB)
is never loaded whole: the Algonauts loader memory-maps every response file;
:class:`RowConcat` joins the two hemispheres lazily (only the rows asked for
are read), :func:`iter_row_batches` streams an array in bounded blocks, and
:class:`RunningMoments`, :func:`streamed_vertex_stats` and :func:`streamed_xty`
compute per-vertex statistics and the ridge normal equations' right-hand side
``X^T Y`` one block at a time. They equal the in-memory computations (``tests/brainviz/data/test_outofcore.py``).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import BrainVizDataError

__all__ = ["RowConcat", "RowSubset", "read_rows", "read_cols", "subject_responses", "iter_row_batches", "RunningMoments", "streamed_vertex_stats",
           "streamed_xty"]



def read_rows(a, rows) -> np.ndarray:
    """Rows of ``a`` (slice or int array); int arrays are read in file order (fast on memmaps)."""
    if isinstance(rows, slice):
        return np.asarray(a[rows])
    idx = np.asarray(rows)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if idx.ndim == 0:
        return np.asarray(a[int(idx)])
    order = np.argsort(idx, kind="stable")
    if np.all(order == np.arange(len(idx))):
        return np.asarray(a[idx])
    out = np.asarray(a[idx[order]])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return out[inv]


def read_cols(a, j0: int, j1: int) -> np.ndarray:
    """Columns ``j0:j1`` of every row of a 2-D ``a`` (ndarray, memmap, :class:`RowConcat`, :class:`RowSubset`) as a
    C-ordered float32 (n, j1 - j0) array, without reading the other columns into memory (a memmap's pages of every
    row are touched: a column block of an NSD-sized subject costs one pass over its file, not its size in memory)."""
    if isinstance(a, RowConcat):
        blocks = []
        for k, p in enumerate(a.parts):
            lo, hi = max(j0, int(a.offsets[k])), min(j1, int(a.offsets[k + 1]))
            if lo < hi:
                blocks.append(read_cols(p, lo - int(a.offsets[k]), hi - int(a.offsets[k])))
        return np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    if isinstance(a, RowSubset):
        if isinstance(a.base, RowConcat):  # the rows of each part: only those are read
            return read_cols(RowConcat([RowSubset(p, a.rows) for p in a.base.parts]), j0, j1)
        if isinstance(a.base, RowSubset):
            return read_cols(RowSubset(a.base.base, a.base.rows[a.rows]), j0, j1)
        return np.ascontiguousarray(a.base[a.rows, j0:j1], dtype=np.float32)
    return np.ascontiguousarray(a[:, j0:j1], dtype=np.float32)


class RowConcat:
    """Lazy ``np.concatenate(parts, axis=1)`` of 2-D arrays with the same rows (e.g. lh, rh memmaps).

    Indexing reads only what is asked: ``rc[i0:i1]`` -> (i1 - i0, n_cols) array,
    ``rc[rows]`` (int array, any order), ``rc[rows, cols]`` (cols: slice, int or
    bool array over the concatenated columns). ``np.asarray(rc)`` materializes
    everything (avoid for NSD-sized data).

    Parameters
    ----------
    parts : 2-D arrays (ndarray or memmap) with equal ``shape[0]``.
    dtype : output dtype (default float32).
    """

    def __init__(self, parts: Sequence[Any], dtype=np.float32):
        parts = list(parts)
        if not parts or any(len(getattr(p, "shape", ())) != 2 for p in parts):
            raise BrainVizDataError("RowConcat", "expected one or more 2-D arrays")
        n = {int(p.shape[0]) for p in parts}
        if len(n) != 1:
            raise BrainVizDataError("RowConcat", f"parts have different row counts {sorted(n)}")
        self.parts = parts
        self.dtype = np.dtype(dtype)
        self.widths = [int(p.shape[1]) for p in parts]
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)
        self.shape = (n.pop(), int(self.offsets[-1]))
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __getitem__(self, key):
        cols = None
        if isinstance(key, tuple):
            if len(key) != 2:
                raise IndexError("RowConcat takes [rows] or [rows, cols]")
            key, cols = key
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0] if cols is None else self[np.array([key]), cols][0]
        blocks = [read_rows(p, key).astype(self.dtype, copy=False) for p in self.parts]
        if cols is None:
            return np.concatenate(blocks, axis=1) if len(blocks) > 1 else np.array(blocks[0], copy=True)
        return self._select_cols(blocks, cols)

    def _select_cols(self, blocks, cols) -> np.ndarray:
        if isinstance(cols, slice):
            cols = np.arange(self.shape[1])[cols]
        cols = np.asarray(cols)
        if cols.dtype == bool:
            if cols.shape != (self.shape[1],):
                raise IndexError(f"boolean column mask of shape {cols.shape}, expected ({self.shape[1]},)")
            cols = np.flatnonzero(cols)
        cols = np.where(cols < 0, cols + self.shape[1], cols)
        part = np.searchsorted(self.offsets, cols, side="right") - 1
        out = np.empty((blocks[0].shape[0], len(cols)), dtype=self.dtype)
        for k, b in enumerate(blocks):
            m = part == k
            if m.any():
                out[:, m] = b[:, cols[m] - self.offsets[k]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[0:self.shape[0]]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"RowConcat(shape={self.shape}, parts={self.widths}, dtype={self.dtype})"


class RowSubset:
    """Lazy ``base[rows]``: the rows ``rows`` (int array, any order) of a 2-D or n-D array-like (memmap,
    :class:`RowConcat`), read only when indexed (``rs[i0:i1]``, ``rs[idx]``); ``np.asarray(rs)`` reads all.

    E.g. the training rows of a subject's memory-mapped responses when some images are held out.
    """

    def __init__(self, base: Any, rows: Sequence[int]):
        self.base = base
        self.rows = np.asarray(rows, dtype=np.int64)
        if self.rows.ndim != 1 or (len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= base.shape[0])):
            raise BrainVizDataError("RowSubset", f"rows must be a 1-D array of indices below {base.shape[0]}")
        self.dtype = np.dtype(base.dtype)
        self.shape = (len(self.rows),) + tuple(int(s) for s in base.shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.base[int(self.rows[key])])
        return read_rows(self.base, self.rows[key])

    def __array__(self, dtype=None, copy=None):
        out = self[0:self.shape[0]]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"RowSubset(shape={self.shape}, dtype={self.dtype})"


def subject_responses(subject, split: str = "train") -> RowConcat:
    """Lazy (n_images, n_vertices) responses of an :class:`~brainviz.data.algonauts.AlgonautsSubject`
    (lh then rh, as ``subject.responses(split)`` returns them in memory)."""
    from .algonauts import HEMIS

    if not subject.has_responses(split):
        raise BrainVizDataError(subject.path, f"no {split} responses in this dataset")
    return RowConcat([subject.hemi_responses(split, h) for h in HEMIS])


def iter_row_batches(a, batch_rows: int | None = None, max_bytes: int = 64 * 2**20,
                     rows: Sequence[int] | None = None, dtype=np.float32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream an (n, ...) array (ndarray, memmap, :class:`RowConcat`) in row blocks.

    Parameters
    ----------
    a : array-like with ``shape`` and row slicing.
    batch_rows : rows per block (default: as many as fit in ``max_bytes``).
    max_bytes : memory bound of one block when ``batch_rows`` is None.
    rows : optional subset / order of rows to visit (e.g. :func:`brainviz.ddp.shard_indices`).
    dtype : dtype of the yielded blocks.

    Yields
    ------
    (row_indices, block) : int64 (b,) and (b, ...) ``dtype`` array.
    """
    n = int(a.shape[0])
    row_bytes = int(np.prod(a.shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    if batch_rows is None:
        batch_rows = max(1, int(max_bytes // max(1, row_bytes)))
    if batch_rows < 1:
        raise BrainVizDataError("batch_rows", f"must be >= 1, got {batch_rows}")
    if rows is None:
        for i0 in range(0, n, batch_rows):
            i1 = min(n, i0 + batch_rows)
            yield np.arange(i0, i1), np.asarray(a[i0:i1], dtype=dtype)
    else:
        rows = np.asarray(rows, dtype=np.int64)
        for k in range(0, len(rows), batch_rows):
            r = rows[k:k + batch_rows]
            yield r, np.asarray(read_rows(a, r), dtype=dtype)


class RunningMoments:
    """Per-column count, mean, variance, min and max, updated one row block at a time.

    Block statistics are merged with Chan et al.'s parallel formula (float64),
    so the result equals ``a.mean(0)``, ``a.var(0, ddof)`` up to rounding for
    any block size; two instances (e.g. two ranks' shards) merge with :meth:`merge`.
    """

    def __init__(self, n_cols: int):
        self.n = 0
        self.mean = np.zeros(n_cols)
        self.m2 = np.zeros(n_cols)
        self.min = np.full(n_cols, np.inf)
        self.max = np.full(n_cols, -np.inf)

    def update(self, block: np.ndarray) -> "RunningMoments":
        b = np.asarray(block, dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != self.mean.shape[0]:
            raise BrainVizDataError("block", f"expected (rows, {self.mean.shape[0]}), got {b.shape}")
        if not np.isfinite(b).all():
            raise BrainVizDataError("block", "contains NaN or infinite values")
        nb = b.shape[0]
        if nb == 0:
            return self
        mb = b.mean(axis=0)
        m2b = ((b - mb) ** 2).sum(axis=0)
        self._combine(nb, mb, m2b)
        self.min = np.minimum(self.min, b.min(axis=0))
        self.max = np.maximum(self.max, b.max(axis=0))
        return self

    def _combine(self, nb: int, mb: np.ndarray, m2b: np.ndarray) -> None:
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta ** 2 * (self.n * nb / n)
        self.n = n

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        if other.n:
            self._combine(other.n, other.mean, other.m2)
            self.min = np.minimum(self.min, other.min)
            self.max = np.maximum(self.max, other.max)
        return self

    def var(self, ddof: int = 0) -> np.ndarray:
        return self.m2 / max(1, self.n - ddof)

    def std(self, ddof: int = 0) -> np.ndarray:
        return np.sqrt(self.var(ddof))


def streamed_vertex_stats(Y, batch_rows: int | None = None, max_bytes: int = 64 * 2**20,
                          rows: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Per-vertex ``mean``, ``std`` (ddof 0), ``min``, ``max`` (float64) of (n_images, n_vertices) ``Y``,
    read one block of rows at a time (``rows``: optional subset)."""
    mom = RunningMoments(int(Y.shape[1]))
    for _, block in iter_row_batches(Y, batch_rows, max_bytes, rows):
        mom.update(block)
    return {"n": np.array(mom.n), "mean": mom.mean, "std": mom.std(), "min": mom.min, "max": mom.max}


def streamed_xty(X, Y, batch_rows: int | None = None, max_bytes: int = 64 * 2**20,
                 center: bool = True) -> dict[str, np.ndarray]:
    """``X^T X`` and ``X^T Y`` (float64) accumulated over row blocks: the data pass of a ridge
    solver in its primal form (solve ``(X^T X + alpha I) W = X^T Y`` afterwards, per alpha).

    With ``center`` the columns of X and Y are centered with their means (computed in a
    first streamed pass), as the ridge encoder does. Memory: O(p^2 + p v + block).

    Returns
    -------
    dict with ``xtx`` (p, p), ``xty`` (p, v), ``x_mean`` (p,), ``y_mean`` (v,), ``n``.
    """
    n, p = int(X.shape[0]), int(X.shape[1])
    if int(Y.shape[0]) != n:
        raise BrainVizDataError("Y", f"has {Y.shape[0]} rows, X has {n}")
    v = int(Y.shape[1])
    row_bytes = (p + v) * 8
    batch = batch_rows or max(1, int(max_bytes // row_bytes))
    x_mean, y_mean = np.zeros(p), np.zeros(v)
    if center:
        for i0 in range(0, n, batch):
            x_mean += np.asarray(X[i0:i0 + batch], np.float64).sum(axis=0)
            y_mean += np.asarray(Y[i0:i0 + batch], np.float64).sum(axis=0)
        x_mean /= n
        y_mean /= n
    xtx, xty = np.zeros((p, p)), np.zeros((p, v))
    for i0 in range(0, n, batch):
        xb = np.asarray(X[i0:i0 + batch], np.float64) - x_mean
        yb = np.asarray(Y[i0:i0 + batch], np.float64) - y_mean
        xtx += xb.T @ xb
        xty += xb.T @ yb
    return {"xtx": xtx, "xty": xty, "x_mean": x_mean, "y_mean": y_mean, "n": np.array(n)}
