"""Out-of-core paths: streamed (memory-mapped, blockwise) computations equal the in-memory ones.

Small synthetic datasets in the exact Algonauts layout, written the way the
NSD-sized benchmark writes them (bench/make_nsd_sized.py: chunked open_memmap).
"""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from bench.make_nsd_sized import make_dataset, write_responses
from brainviz import rsa as R
from brainviz.data.algonauts import load_dataset
from brainviz.data.streaming import (RowConcat, RunningMoments, iter_row_batches,
                                     streamed_vertex_stats, streamed_xty, subject_responses)
from brainviz.ddp import shard_indices
from brainviz.errors import BrainVizDataError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nsd_small")
    return make_dataset(root, n_subjects=2, n_train=57, n_test=4, n_lh=130, n_rh=170, surface="fsaverage5",
                        seed=3, chunk_mb=0)  # chunk_mb=0 -> one row per chunk: exercises chunked writes


def test_generated_dataset_is_valid_and_deterministic(dataset, tmp_path):
    ds = load_dataset(dataset, validate=True)
    assert list(ds.subjects) == ["subj01", "subj02"]
    sub = ds.subjects["subj01"]
    assert (len(sub.train_images), len(sub.test_images)) == (57, 4)
    assert sub.n_vertices == {"lh": 130, "rh": 170}
    assert not sub.has_responses("test")  # as the real release
    again = make_dataset(tmp_path / "again", n_subjects=1, n_train=57, n_test=4, n_lh=130, n_rh=170,
                         surface="fsaverage5", seed=3, chunk_mb=0)
    np.testing.assert_array_equal(load_dataset(again).subjects["subj01"].responses("train"), sub.responses("train"))
    assert ds.simulated  # marked, so the app never shows it as real data


def test_chunk_size_does_not_change_values(tmp_path):
    write_responses(tmp_path / "a.npy", 23, 7, [1, 2], chunk_bytes=4 * 7 * 5)
    b = np.load(tmp_path / "a.npy")
    write_responses(tmp_path / "a.npy", 23, 7, [1, 2], chunk_bytes=4 * 7 * 5)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), b)
    assert b.dtype == np.float32 and b.shape == (23, 7)


def test_lazy_responses_equal_loaded_responses(dataset):
    sub = load_dataset(dataset).subjects["subj02"]
    full = sub.responses("train")
    lazy = subject_responses(sub, "train")
    assert lazy.shape == full.shape and len(lazy) == 57
    np.testing.assert_array_equal(np.asarray(lazy), full)
    np.testing.assert_array_equal(lazy[5:9], full[5:9])
    rows = np.array([40, 3, 17, 3])
    np.testing.assert_array_equal(lazy[rows], full[rows])
    cols = np.array([0, 129, 130, 299, 5])  # across the lh/rh boundary, unsorted
    np.testing.assert_array_equal(lazy[rows, cols], full[rows][:, cols])
    mask = sub.roi_mask("V1v")
    np.testing.assert_array_equal(lazy[2:6, mask], full[2:6][:, mask])
    np.testing.assert_array_equal(lazy[7], full[7])


@pytest.mark.parametrize("batch", [1, 5, 57, 1000])
def test_streamed_vertex_stats_equal_in_memory(dataset, batch):
    sub = load_dataset(dataset).subjects["subj01"]
    full = sub.responses("train").astype(np.float64)
    st = streamed_vertex_stats(subject_responses(sub), batch_rows=batch)
    np.testing.assert_allclose(st["mean"], full.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st["std"], full.std(axis=0), rtol=1e-10)
    np.testing.assert_array_equal(st["min"], full.min(axis=0))
    np.testing.assert_array_equal(st["max"], full.max(axis=0))
    assert int(st["n"]) == 57


def test_running_moments_of_shards_merge_to_the_whole(dataset):
    """Per-rank statistics over DistributedSampler shards, merged, equal the whole data's."""
    Y = subject_responses(load_dataset(dataset).subjects["subj01"])
    full = np.asarray(Y, dtype=np.float64)
    merged = RunningMoments(Y.shape[1])
    for rank in range(3):
        part = RunningMoments(Y.shape[1])
        for _, block in iter_row_batches(Y, batch_rows=4, rows=shard_indices(57, rank, 3, drop_last=True)):
            part.update(block)
        merged.merge(part)
    assert merged.n == 57  # 57 = 3 x 19: no padding
    np.testing.assert_allclose(merged.mean, full.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.var(ddof=1), full.var(axis=0, ddof=1), rtol=1e-10)


def test_iter_row_batches_bounds_block_memory(dataset):
    Y = subject_responses(load_dataset(dataset).subjects["subj01"])
    blocks = list(iter_row_batches(Y, max_bytes=300 * 4 * 10))  # 10 rows of 300 float32
    assert [len(r) for r, _ in blocks] == [10] * 5 + [7]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), np.asarray(Y))


@pytest.mark.parametrize("center", [True, False])
def test_streamed_xty_equals_in_memory_and_solves_ridge(dataset, center):
    from sklearn.linear_model import Ridge

    Y = subject_responses(load_dataset(dataset).subjects["subj02"])
    X = np.random.default_rng(0).standard_normal((57, 6)).astype(np.float32)
    got = streamed_xty(X, Y, batch_rows=8, center=center)
    Xf, Yf = X.astype(np.float64), np.asarray(Y, np.float64)
    if center:
        Xf, Yf = Xf - Xf.mean(0), Yf - Yf.mean(0)
    np.testing.assert_allclose(got["xtx"], Xf.T @ Xf, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(got["xty"], Xf.T @ Yf, rtol=1e-10, atol=1e-9)
    if center:  # the primal ridge solution from the streamed normal equations = sklearn's in memory
        alpha = 3.0
        W = np.linalg.solve(got["xtx"] + alpha * np.eye(6), got["xty"])
        ref = Ridge(alpha=alpha).fit(X.astype(np.float64), np.asarray(Y, np.float64))
        np.testing.assert_allclose(W.T, ref.coef_, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_blockwise_rdm_of_lazy_memmapped_responses_equals_in_memory(dataset, metric):
    """float32 memmaps take rdm's float32 standardization path; same RDM as scipy in float64."""
    Y = subject_responses(load_dataset(dataset).subjects["subj01"])
    full = np.asarray(Y, np.float64)
    ref = squareform(pdist(full, metric))
    for block in (7, 57, 2048):
        got = R.rdm(Y, metric=metric, block=block)
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)
    ext = R.extreme_pairs(Y, metric=metric, k=5, kind="largest", block=10)
    iu = np.triu_indices(57, 1)
    order = np.lexsort((iu[1], iu[0], -ref[iu]))[:5]
    assert list(zip(ext.i, ext.j)) == [(int(iu[0][o]), int(iu[1][o])) for o in order]


def test_float32_rdm_path_rejects_bad_rows():
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    x[4] = 2.0
    with pytest.raises(BrainVizDataError, match="row 4 is constant"):
        R.rdm(x)
    x[4] = np.nan
    with pytest.raises(BrainVizDataError, match="row 4 contains NaN"):
        R.rdm(x)


def test_streamed_pass_memory_is_bounded(tmp_path):
    """A streamed pass over a 16 MB memmap allocates only its blocks (tracemalloc sees numpy)."""
    write_responses(tmp_path / "y.npy", 2048, 2048, [0])  # 16 MB float32
    Y = np.load(tmp_path / "y.npy", mmap_mode="r")
    tracemalloc.start()
    try:
        streamed_vertex_stats(Y, max_bytes=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # a 1 MB float32 block, its float64 copies, and the per-vertex state


def test_rowconcat_rejects_mismatched_parts():
    with pytest.raises(BrainVizDataError):
        RowConcat([np.zeros((3, 2)), np.zeros((4, 2))])
    with pytest.raises(BrainVizDataError):
        RowConcat([])
