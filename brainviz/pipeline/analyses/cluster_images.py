"""What the clusters need of the responses and predictions, one subject at a time (issue 29: memory that does
not grow with images x vertices of every subject at once).

A subject's (n_images, V) responses are read in column blocks (:func:`zscored_blocks`: each block z-scored per
vertex over all of the subject's images with the library's one z-score, so every value equals the in-memory
``zscore(responses)``), and every labeling of that subject's vertices (every scope and k) is reduced at once to
per-image cluster means (:class:`Labelings`, :func:`labeling_means`: n_images x clusters, small). The pooled means
over a scope's subjects are accumulated subject by subject (:class:`PooledMeans`), keeping only what the cluster
names and the pooled top images need. :func:`predicted_keys` bounds the images whose predictions are computed
(:attr:`~brainviz.pipeline.settings.AnalysisSettings.max_predicted_images`).

The results equal :func:`brainviz.clusters.top_images` and :func:`brainviz.clusters.pooled_cluster_means` /
:func:`~brainviz.clusters.pooled_top_images` up to float rounding of the means (same ranking, same tie rule;
``tests/brainviz/pipeline/test_cluster_images.py``).
"""
from __future__ import annotations

from collections import Counter
from typing import Hashable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from ...metrics import zscore

#: memory bound of one column block of a subject's responses or predictions (float32)
BLOCK_BYTES = 128 * 2**20


def column_blocks(n_rows: int, n_cols: int, max_bytes: int = BLOCK_BYTES) -> list[tuple[int, int]]:
    """Column ranges ``(j0, j1)`` covering ``0..n_cols`` whose (n_rows, j1 - j0) float32 blocks fit ``max_bytes``;
    at least 2 columns each (a one-column reduction sums in another order than a wide one)."""
    n_blocks = max(1, -(-n_rows * n_cols * 4 // max(1, max_bytes)))
    n_blocks = max(1, min(n_blocks, n_cols // 2))
    edges = np.linspace(0, n_cols, n_blocks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def zscored_blocks(parts: Sequence, n_cols: int, max_bytes: int = BLOCK_BYTES,
                   edges: Sequence[tuple[int, int]] | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(j0, j1, z)``: column block ``j0:j1`` of the rows of ``parts`` stacked (2-D array-likes with ``n_cols``
    columns: memmaps, :class:`~brainviz.data.streaming.RowConcat` ...; e.g. a subject's training and test responses),
    z-scored per column over all those rows (:func:`brainviz.metrics.zscore`: each column's value is the one the
    whole array z-scored would give). ``edges``: the column ranges (default :func:`column_blocks`)."""
    from ...data.streaming import read_cols

    n_rows = sum(int(p.shape[0]) for p in parts)
    for j0, j1 in column_blocks(n_rows, n_cols, max_bytes) if edges is None else edges:
        y = np.concatenate([read_cols(p, j0, j1) for p in parts]) if len(parts) > 1 else read_cols(parts[0], j0, j1)
        yield j0, j1, zscore(y)


class Labelings:
    """Several labelings of one subject's vertices as one sparse (V, n_clusters in all) indicator matrix.

    ``labelings``: {key: (V,) int labels, < 0 = not clustered}. ``clusters_``: {key: (start column, (c,) sorted
    label values)}; ``matrix_``: CSR (V, total) float64 with a 1 where a vertex is in a cluster; ``counts_``: (total,)
    vertices per cluster."""

    def __init__(self, labelings: Mapping[Hashable, np.ndarray]):
        import scipy.sparse as sp

        self.clusters_: dict = {}
        rows, cols, start, n_vertices = [], [], 0, None
        for key, lab in labelings.items():
            lab = np.asarray(lab)
            n_vertices = len(lab) if n_vertices is None else n_vertices
            inside = np.flatnonzero(lab >= 0)
            values = np.unique(lab[inside])
            self.clusters_[key] = (start, values)
            rows.append(inside)
            cols.append(start + np.searchsorted(values, lab[inside]))
            start += len(values)
        r = np.concatenate(rows) if rows else np.zeros(0, int)
        c = np.concatenate(cols) if cols else np.zeros(0, int)
        self.matrix_ = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_vertices or 0, start))
        self.counts_ = np.bincount(c, minlength=start).astype(np.float64)


def labeling_means(blocks: Iterable[tuple[int, int, np.ndarray]], labelings: Labelings,
                   n_rows: int) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
    """{key: ((c,) cluster labels, (n_rows, c) float32 mean of each cluster's vertices per image)} of every labeling
    at once, from the column ``blocks`` of :func:`zscored_blocks` (sums in float64). A labeling with no clustered
    vertex gives (0,) clusters."""
    total = labelings.matrix_.shape[1]
    sums = np.zeros((n_rows, total))
    for j0, j1, z in blocks:
        if total:
            sums += np.asarray((labelings.matrix_[j0:j1].T @ z.T).T)
    means = (sums / np.maximum(labelings.counts_, 1)).astype(np.float32)
    return {key: (values, means[:, start:start + len(values)]) for key, (start, values) in labelings.clusters_.items()}


class PooledMeans:
    """:func:`brainviz.clusters.pooled_cluster_means` and :func:`~brainviz.clusters.pooled_top_images` of one
    labeling, accumulated one subject at a time (:meth:`add`).

    ``seen``: {subject: its (n_s,) image keys} for every subject of the scope; ``keep``: image keys whose pooled
    means are kept whole (the tagged images: :func:`brainviz.clusters.name_clusters` regresses on them);
    ``k_top``: top images per cluster. Kept whole as well: every image seen more than once (by two subjects of
    the scope); of the images seen once only each subject's ``k_top`` best per cluster are kept (their pooled mean
    is that subject's mean), which holds every pooled top image (same tie rule: image key order).
    """

    def __init__(self, seen: Mapping[str, Sequence[str]], keep: Iterable[str], k_top: int):
        count = Counter(str(k) for keys in seen.values() for k in keys)
        keep = set(map(str, keep))
        self.rows = sorted(k for k, c in count.items() if c > 1 or k in keep)
        self._row = {k: i for i, k in enumerate(self.rows)}
        self._count = count
        self.k_top = int(k_top)
        self.n_keys = len(count)
        self._sum: dict[int, np.ndarray] = {}
        self._n: dict[int, np.ndarray] = {}
        self._cand: dict[int, list[tuple[str, float]]] = {}

    def add(self, keys: Sequence[str], clusters: np.ndarray, means: np.ndarray) -> None:
        """One subject's (n_s,) image ``keys`` and its (n_s, c) cluster ``means`` (clusters (c,)); a subject with no
        clustered vertex (c = 0) adds nothing, as in :func:`~brainviz.clusters.pooled_cluster_means`."""
        keys = np.asarray([str(k) for k in keys], dtype=object)
        kept = np.array([k in self._row for k in keys], bool)
        idx = np.array([self._row[k] for k in keys[kept]], dtype=np.int64)
        once = np.flatnonzero(~kept)
        once = once[np.argsort(keys[once], kind="stable")]  # key order: the tie rule of the pooled ranking
        for j, c in enumerate(np.asarray(clusters).tolist()):
            col = means[:, j]
            if c not in self._sum:
                self._sum[c], self._n[c], self._cand[c] = np.zeros(len(self.rows)), np.zeros(len(self.rows)), []
            np.add.at(self._sum[c], idx, col[kept].astype(np.float64))
            np.add.at(self._n[c], idx, 1.0)
            best = once[np.argsort(-col[once], kind="stable")[:self.k_top]]
            self._cand[c] += [(str(keys[i]), float(col[i])) for i in best]

    def means(self) -> pd.DataFrame:
        """(kept images x clusters) pooled means (index image_key sorted; columns in the order the subjects
        brought them, as :func:`~brainviz.clusters.pooled_cluster_means`), NaN where no subject who saw the image
        has the cluster: the tagged images' rows of that frame."""
        with np.errstate(invalid="ignore", divide="ignore"):
            data = {c: np.where(self._n[c] > 0, self._sum[c] / self._n[c], np.nan).astype(np.float32) for c in self._sum}
        return pd.DataFrame(data, index=pd.Index(self.rows, name="image_key"), columns=list(self._sum))

    def top(self, means: pd.DataFrame | None = None) -> pd.DataFrame:
        """The pooled top images (columns of :func:`~brainviz.clusters.pooled_top_images`; image_index = row of
        the image among the keys held here, sorted). ``means``: :meth:`means` when the caller has it."""
        means = self.means() if means is None else means
        n_top = min(self.k_top, self.n_keys)
        rows = []
        for c in sorted(means.columns):
            col = means[c].to_numpy()
            have = np.isfinite(col)
            pairs = list(zip(np.asarray(self.rows, dtype=object)[have].tolist(), col[have].tolist())) + self._cand[c]
            pairs.sort(key=lambda kv: kv[0])
            vals = np.array([v for _, v in pairs], dtype=np.float64)
            order = np.argsort(-vals, kind="stable")[:n_top]
            rows += [(int(c), rank, int(i), pairs[i][0], float(vals[i])) for rank, i in enumerate(order, start=1)]
        return pd.DataFrame(rows, columns=["cluster", "rank", "image_index", "image_key", "score"])


def predicted_keys(main_keys: Sequence[str], required: Iterable[str], tagged: Iterable[str], fitted: Iterable[str],
                   max_images: int, seed: int = 0) -> list[str]:
    """The images whose predictions one subject gets (top images "by the encoder", the encoder's accuracy, the
    response profiles), at most ``max_images`` of ``main_keys`` unless ``required`` needs more, in the order of
    ``main_keys``: every one when there are no more than ``max_images``; else ``required`` (the profile images the
    subject did not see: the profiles cannot do without them), then the ``tagged`` images (what the pages and the
    cluster names look at), then a seeded sample of the ``fitted`` images (at most a quarter of ``max_images``:
    the accuracy on the fitted images weights the predictions in the profiles), then a seeded sample of the rest.
    Predicting costs images x vertices (time, and the subject's predictions on disk while the clusters run)."""
    main_keys = [str(k) for k in main_keys]
    if len(main_keys) <= max_images:
        return main_keys
    main = set(main_keys)
    rng = np.random.default_rng(seed)
    chosen = dict.fromkeys(k for k in map(str, required) if k in main)
    for k in map(str, tagged):
        if len(chosen) >= max_images:
            break
        if k in main:
            chosen.setdefault(k)
    fit = [k for k in dict.fromkeys(map(str, fitted)) if k in main and k not in chosen]
    n_fit = max(0, min(len(fit), max_images // 4, max_images - len(chosen)))
    chosen.update(dict.fromkeys(fit[i] for i in np.sort(rng.choice(len(fit), n_fit, replace=False))))
    rest = [k for k in main_keys if k not in chosen]
    n_rest = max(0, min(len(rest), max_images - len(chosen)))
    chosen.update(dict.fromkeys(rest[i] for i in np.sort(rng.choice(len(rest), n_rest, replace=False))))
    return [k for k in main_keys if k in chosen]
