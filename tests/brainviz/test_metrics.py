"""Metrics against hand-worked examples."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from brainviz.errors import BrainVizDataError
from brainviz.metrics import (
    nna_per_vertex,
    noise_ceiling_from_repeats,
    pattern_correlations,
    pearson_per_vertex,
    retrieval_ranks,
    retrieval_summary,
    roi_summary,
    zscore,
)


# --------------------------------------------------------------------------- Pearson

def test_pearson_hand_worked():
    # column 0: true [1,2,3], pred [1,2,4]: deviations [-1,0,1] and [-4/3,-1/3,5/3]
    #   cov sum = 3, ss_true = 2, ss_pred = 14/3  ->  r = 3 / sqrt(28/3)
    # column 1: perfectly anti-correlated -> -1
    # column 2: constant prediction -> NaN (documented)
    y_true = np.array([[1, 1, 1], [2, 2, 5], [3, 3, 2]], dtype=np.float32)
    y_pred = np.array([[1, 3, 7], [2, 2, 7], [4, 1, 7]], dtype=np.float32)
    r = pearson_per_vertex(y_true, y_pred)
    assert r.shape == (3,)
    assert r[0] == pytest.approx(3 / math.sqrt(28 / 3), abs=1e-12)
    assert r[1] == pytest.approx(-1.0, abs=1e-12)
    assert np.isnan(r[2])


def test_pearson_constant_true_column_is_nan_and_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    a[:, 3] = 2.5
    r = pearson_per_vertex(a, b)
    for v in range(3):
        assert r[v] == pytest.approx(np.corrcoef(a[:, v], b[:, v])[0, 1], abs=1e-12)
    assert np.isnan(r[3])


def test_pearson_bad_input():
    with pytest.raises(BrainVizDataError, match="y_pred"):
        pearson_per_vertex(np.zeros((5, 3)), np.zeros((5, 2)))
    with pytest.raises(BrainVizDataError, match="y_true"):
        pearson_per_vertex(np.zeros(5), np.zeros(5))
    bad = np.ones((4, 2))
    bad[1, 1] = np.nan
    with pytest.raises(BrainVizDataError, match="NaN"):
        pearson_per_vertex(bad, np.ones((4, 2)))


def test_pattern_correlations_match_numpy_and_constant_rows():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 30)), rng.standard_normal((5, 30))
    b[3] = 1.5  # a constant pattern: undefined
    c = pattern_correlations(a, b)
    assert c.shape == (4, 5)
    for i in range(4):
        for j in (0, 1, 2, 4):
            assert c[i, j] == pytest.approx(np.corrcoef(a[i], b[j])[0, 1], abs=1e-12)
    assert np.isnan(c[:, 3]).all()
    assert (pattern_correlations(a, b, undefined=0.0)[:, 3] == 0).all()
    with pytest.raises(BrainVizDataError, match="b"):
        pattern_correlations(a, b[:, :10])


# --------------------------------------------------------------------------- noise ceiling

def test_noise_ceiling_general_hand_worked():
    # image 1 repeats [1, 3] (var 2), image 2 [5, 5] (var 0) -> noise var 1
    # repeat means [2, 5], var (ddof=1) 4.5; signal = 4.5 - 1/2 = 4; ncsnr^2 = 4
    # NC = 4 / (4 + 1/2) = 0.888...
    rep = np.array([[[1.0], [3.0]], [[5.0], [5.0]]])
    nc = noise_ceiling_from_repeats(rep)
    assert nc.shape == (1,)
    assert nc[0] == pytest.approx(4 / 4.5)
    # averaging a single trial: NC = 4 / (4 + 1) = 0.8
    assert noise_ceiling_from_repeats(rep, n_avg=1)[0] == pytest.approx(0.8)


def test_noise_ceiling_nsd_formula_hand_worked():
    # repeats [0, 1] and [2, 3]: noise var 0.5 -> NSD (z-scored) signal var 1 - 0.5 = 0.5
    # ncsnr^2 = 1; with n_avg = 3: NC = 1 / (1 + 1/3) = 0.75
    rep = np.array([[[0.0], [1.0]], [[2.0], [3.0]]])
    assert noise_ceiling_from_repeats(rep, n_avg=3, method="nsd")[0] == pytest.approx(0.75)
    # general formula on the same data: means [0.5, 2.5] var 2, signal 2 - 0.5/2 = 1.75
    assert noise_ceiling_from_repeats(rep, n_avg=3)[0] == pytest.approx(1.75 / (1.75 + 0.5 / 3))


def test_noise_ceiling_edge_cases_and_simulation():
    rng = np.random.default_rng(1)
    n, k = 4000, 3
    signal = rng.standard_normal((n, 1, 2))
    rep = signal + rng.standard_normal((n, k, 2))  # signal var 1, noise var 1
    nc = noise_ceiling_from_repeats(rep)
    assert nc == pytest.approx([0.75, 0.75], abs=0.02)  # 1 / (1 + 1/3)
    # pure noise -> signal clipped at 0 -> NC 0; noise-free signal -> 1
    assert noise_ceiling_from_repeats(rng.standard_normal((n, k, 1)))[0] < 0.03
    assert noise_ceiling_from_repeats(np.repeat(signal[:, :, :1], k, axis=1))[0] == pytest.approx(1.0)
    with pytest.raises(BrainVizDataError, match="repeats"):
        noise_ceiling_from_repeats(np.zeros((5, 1, 3)))
    with pytest.raises(BrainVizDataError, match="method"):
        noise_ceiling_from_repeats(rep, method="other")


# --------------------------------------------------------------------------- noise-normalized accuracy

def _median_nna(r, nc, **kw) -> float:
    """The score evaluate stores: the median over vertices of nna_per_vertex (roi_summary of 'all')."""
    v = nna_per_vertex(r, nc, **kw)
    return float(roi_summary(v, {"all": np.ones(len(v), bool)})["median"].iloc[0])


def test_noise_normalized_accuracy_hand_worked():
    r = np.array([0.5, -0.3, 0.2, np.nan, 0.9])
    nc = np.array([0.5, 0.4, 0.0, 0.2, 0.6])
    # vertex 2 excluded (NC = 0); per vertex: .25/.5 = .5; negative r -> 0; NaN r -> 0;
    # .81/.6 = 1.35 -> clipped to 1.  median([.5, 0, 0, 1]) = .25
    np.testing.assert_allclose(nna_per_vertex(r, nc), [0.5, 0.0, np.nan, 0.0, 1.0])
    assert _median_nna(r, nc) == pytest.approx(0.25)
    # keeping negative r: vertex 1 -> .09/.4 = .225; median([.5, .225, 0, 1]) = .3625
    assert _median_nna(r, nc, clip_negative=False) == pytest.approx(0.3625)
    # without the clip at 1 the median is unchanged here
    assert _median_nna(r, nc, clip_max=False) == pytest.approx(0.25)
    assert nna_per_vertex(r, nc, clip_max=False)[4] == pytest.approx(1.35)
    assert math.isnan(_median_nna([0.5], [0.0]))
    with pytest.raises(BrainVizDataError, match="nc"):
        nna_per_vertex([0.1, 0.2], [0.1])


# --------------------------------------------------------------------------- z-score

def test_zscore_one_rule():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5)) * [1, 10, 0.1, 1, 1] + [0, 5, -2, 0, 0]
    x[:, 3] = 7.0  # constant: 0 everywhere, never NaN or inf
    x[:, 4] = 1e6 + 1e-9 * rng.standard_normal(40)  # rounding-level spread: constant too
    z = zscore(x)
    assert z.dtype == np.float64 and np.isfinite(z).all()
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, :3].std(0), 1, rtol=1e-12)
    assert (z[:, 3] == 0).all() and (z[:, 4] == 0).all()
    np.testing.assert_allclose(zscore(x.T, axis=1), z.T)  # along rows
    z32 = zscore(x[:, :3].astype(np.float32))  # memory-mapped float32 responses stay float32
    assert z32.dtype == np.float32 and np.allclose(z32, z[:, :3], atol=1e-5)


# --------------------------------------------------------------------------- retrieval

MEASURED = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 3, 2, 4]], dtype=float)
# predicted 0 and 1 are identical (a tie); predicted 2 is the reverse
PREDICTED = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]], dtype=float)


def test_retrieval_ranks_with_ties():
    # corr(m0, p) = [1, 1, -1]: true p0 ties with p1            -> avg 1.5, pess 2, opt 1
    # corr(m1, p) = [-1, -1, 1]: p2 better, p0 ties with true p1 -> avg 2.5, pess 3, opt 2
    # corr(m2, p) = [.8, .8, -.8]: true p2 below both            -> 3 in every mode
    corr = pattern_correlations(MEASURED, PREDICTED)
    np.testing.assert_allclose(retrieval_ranks(corr), [1.5, 2.5, 3.0])  # the one ties rule: a tie counts half


def test_retrieval_ranks_true_index():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1]])  # not square: the true candidates are given
    np.testing.assert_array_equal(retrieval_ranks(sim, [0, 1]), [1, 1.5])
    np.testing.assert_array_equal(retrieval_ranks(sim, [2, 1]), [2, 1.5])
    with pytest.raises(BrainVizDataError, match="true_index"):
        retrieval_ranks(sim, [0, 5])
    with pytest.raises(BrainVizDataError, match="true_index"):
        retrieval_ranks(sim)  # the diagonal needs a square matrix


def test_retrieval_perfect_and_constant():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((20, 30))
    np.testing.assert_array_equal(retrieval_ranks(pattern_correlations(m, m + 0.01 * rng.standard_normal(m.shape))),
                                  np.ones(20))
    # a constant predictor ties everywhere: chance level (n + 1) / 2 with average ties
    const = np.tile(np.arange(30.0), (20, 1))
    np.testing.assert_allclose(retrieval_ranks(pattern_correlations(m, const)), np.full(20, 10.5))
    # constant patterns: undefined correlations rank below every defined one, tied with each other
    flat = m.copy()
    flat[:10] = 1.0
    np.testing.assert_allclose(retrieval_ranks(pattern_correlations(m, flat))[:10], np.full(10, 15.5))
    with pytest.raises(TypeError):  # one ties rule: there is nothing to choose
        retrieval_ranks(np.eye(3), ties="pessimistic")


def test_retrieval_summary():
    s = retrieval_summary(np.array([1, 1.5, 3, 6, 2]))
    assert s == {"mean_rank": pytest.approx(2.7), "top1": pytest.approx(0.2), "top5": pytest.approx(0.8), "n": 5}
    with pytest.raises(BrainVizDataError):
        retrieval_summary(np.array([0.0, 1.0]))


# --------------------------------------------------------------------------- ROI summary

def test_roi_summary_labels_and_masks():
    values = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 10.0])
    labels = np.array(["A", "A", "B", "A", "B", "Unknown"], dtype=object)
    df = roi_summary(values, labels)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["roi", "n", "median", "p25", "p75"]
    a = df.set_index("roi").loc["A"]
    assert (a["n"], a["median"], a["p25"], a["p75"]) == (3, 2.0, 1.5, 3.0)
    b = df.set_index("roi").loc["B"]
    assert (b["n"], b["median"]) == (1, 3.0)
    assert "Unknown" not in set(df["roi"])
    # overlapping ROIs as masks / index arrays
    df2 = roi_summary(values, {"all": np.ones(6, bool), "first": np.array([0, 1])})
    assert df2.set_index("roi").loc["all", "n"] == 5
    assert df2.set_index("roi").loc["first", "median"] == 1.5
    with pytest.raises(BrainVizDataError, match="labels"):
        roi_summary(values, labels[:3])
