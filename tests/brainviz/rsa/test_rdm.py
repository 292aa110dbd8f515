"""RDMs, extreme pairs, RSA, permutation test, noise ceiling."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from brainviz import rsa as R
from brainviz.errors import BrainVizDataError


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(57, 23))


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
@pytest.mark.parametrize("block", [1, 7, 64])
def test_rdm_matches_pdist(x, metric, block):
    ref = pdist(x, metric)
    d64 = R.rdm(x, metric, form="condensed", block=block, dtype=np.float64)
    np.testing.assert_allclose(d64, ref, rtol=1e-10, atol=1e-12)
    d32 = R.rdm(x, metric, block=block)
    assert d32.dtype == np.float32 and d32.shape == (57, 57)
    assert np.array_equal(d32, d32.T) and np.all(np.diag(d32) == 0)
    np.testing.assert_allclose(squareform(d32, checks=False), ref, rtol=1e-4, atol=1e-5)


def test_rdm_memmap(tmp_path, x):
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    np.testing.assert_allclose(R.rdm(mm, "correlation", block=10), squareform(pdist(x, "correlation")),
                               atol=1e-5)


def test_rdm_bad_input():
    with pytest.raises(BrainVizDataError):
        R.rdm(np.ones(5))
    with pytest.raises(BrainVizDataError, match="constant"):
        R.rdm(np.ones((4, 3)), "correlation")
    bad = np.random.default_rng(0).normal(size=(4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(BrainVizDataError, match="row 2"):
        R.rdm(bad)
    with pytest.raises(BrainVizDataError, match="metric"):
        R.rdm(np.eye(3), "cosine")


def test_extreme_pairs_known_matrix():
    d = np.array([[0.0, 0.2, 1.5, 0.9],
                  [0.2, 0.0, 1.0, 1.8],
                  [1.5, 1.0, 0.0, 0.5],
                  [0.9, 1.8, 0.5, 0.0]])
    low = R.extreme_pairs_from_rdm(d, k=2, kind="lowest", block=3)
    assert low[["i", "j"]].values.tolist() == [[0, 1], [2, 3]] and low["value"].tolist() == [0.2, 0.5]
    high = R.extreme_pairs_from_rdm(d, k=2, kind="largest", block=1)
    assert high[["i", "j"]].values.tolist() == [[1, 3], [0, 2]]
    one = R.extreme_pairs_from_rdm(d, k=2, kind="closest_to_1", block=2)
    assert one[["i", "j"]].values.tolist() == [[1, 2], [0, 3]]


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
@pytest.mark.parametrize("kind", ["lowest", "largest", "closest_to_1"])
def test_extreme_pairs_blockwise_equals_direct(x, metric, kind):
    d = pdist(x, metric)
    iu = np.triu_indices(len(x), k=1)
    score = {"lowest": d, "largest": -d, "closest_to_1": np.abs(d - 1)}[kind]
    order = np.argsort(score, kind="stable")[:6]
    for block in (5, 16, 100):
        got = R.extreme_pairs(x, metric, k=6, kind=kind, block=block, dtype=np.float64)
        assert got["i"].tolist() == iu[0][order].tolist()
        assert got["j"].tolist() == iu[1][order].tolist()
        np.testing.assert_allclose(got["value"], d[order])
        assert (got["i"] < got["j"]).all()


def test_extreme_pairs_ties_deterministic():
    d = np.ones((6, 6)) - np.eye(6)  # all pairs tied
    for block in (1, 2, 4, 6):
        got = R.extreme_pairs_from_rdm(d, k=3, block=block)
        assert got[["i", "j"]].values.tolist() == [[0, 1], [0, 2], [0, 3]]


def test_rsa_spearman_matches_scipy(x):
    a = pdist(x)
    b = a + np.random.default_rng(1).normal(scale=2, size=a.shape)
    assert R.rsa(a, squareform(b), "spearman") == pytest.approx(stats.spearmanr(a, b).statistic)
    assert R.rsa(squareform(a), b, "pearson") == pytest.approx(stats.pearsonr(a, b).statistic)


def test_kendall_tau_a_hand_worked_with_ties():
    # pairs of (x, y): (1,1) (1,2) (2,2) (3,3): 6 pairs, 4 concordant, 0 discordant,
    # 1 tied in x, 1 tied in y -> tau-a = 4 / 6, tau-b = 4 / sqrt(5 * 5) = 0.8
    x, y = [1, 1, 2, 3], [1, 2, 2, 3]
    for backend in ("auto", "scipy", "rsatoolbox"):
        assert R.kendall_tau_a(x, y, backend=backend) == pytest.approx(4 / 6)
    assert stats.kendalltau(x, y).statistic == pytest.approx(0.8)
    # one discordant pair: (1,3) (2,1) (2,2): pairs (1,2): D, (1,3): D, (2,3): x tie -> -2/3
    assert R.kendall_tau_a([1, 2, 2], [3, 1, 2]) == pytest.approx(-2 / 3)
    assert R.kendall_tau_a([1, 1, 1], [1, 2, 3]) == 0.0


def test_kendall_tau_a_backends_agree_on_categorical(x):
    a = pdist(x)
    cat = (np.arange(len(x)) < 20).astype(float)
    model = pdist(cat[:, None], "cityblock")  # binary categorical RDM, many ties
    t1, t2 = R.kendall_tau_a(model, a, "rsatoolbox"), R.kendall_tau_a(model, a, "scipy")
    assert t1 == pytest.approx(t2, abs=1e-12)
    assert abs(t1) < abs(stats.kendalltau(model, a).statistic)  # tau-a <= tau-b with ties
    assert R.rsa(model, a, "kendall_tau_a") == pytest.approx(t1)


@pytest.mark.parametrize("method", ["spearman", "kendall_tau_a", "pearson"])
def test_permutation_test(method):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 10))
    a = squareform(pdist(x))
    related = squareform(pdist(x + rng.normal(scale=0.7, size=x.shape)))
    unrelated = squareform(pdist(rng.normal(size=(30, 10))))
    n_perm = 99 if method == "kendall_tau_a" else 300
    res = R.rsa_permutation_test(a, related, n_perm=n_perm, seed=0, method=method)
    assert res.statistic == pytest.approx(R.rsa(a, related, method))
    assert res.p_value == pytest.approx(1 / (n_perm + 1))
    assert res.null.shape == (n_perm,)
    assert R.rsa_permutation_test(a, unrelated, n_perm=n_perm, seed=0, method=method).p_value > 0.05
    again = R.rsa_permutation_test(a, related, n_perm=n_perm, seed=0, method=method)
    assert np.array_equal(again.null, res.null)


def test_permutation_test_stack_statistic_is_mean():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 6))
    a = squareform(pdist(x))
    stack = np.stack([squareform(pdist(x + rng.normal(scale=s, size=x.shape))) for s in (0.5, 1, 2)])
    for method in ("spearman", "pearson", "kendall_tau_a"):
        res = R.rsa_permutation_test(a, stack, n_perm=20, seed=1, method=method)
        assert res.statistic == pytest.approx(np.mean([R.rsa(a, s, method) for s in stack]))
    # the vectorized null equals the direct computation
    res = R.rsa_permutation_test(a, stack, n_perm=5, seed=2, method="spearman")
    rng2 = np.random.default_rng(2)
    for k in range(5):
        p = rng2.permutation(20)
        direct = np.mean([R.rsa(a[np.ix_(p, p)], s, "spearman") for s in stack])
        assert res.null[k] == pytest.approx(direct)


@pytest.mark.filterwarnings("ignore:Noise ceiling for tau")
@pytest.mark.parametrize("method,rsa_method", [("spearman", "spearman"), ("kendall_tau_a", "tau-a"),
                                               ("pearson", "corr")])
def test_noise_ceiling(method, rsa_method):
    rng = np.random.default_rng(5)
    truth = rng.normal(size=(25, 8))
    subjects = np.stack([squareform(pdist(truth + rng.normal(scale=1.0, size=truth.shape)))
                         for _ in range(5)])
    lower, upper = R.rdm_noise_ceiling(subjects, method)
    assert 0 < lower <= upper <= 1
    import rsatoolbox
    from rsatoolbox.inference import boot_noise_ceiling

    vec = np.stack([R.upper_triangle(s) for s in subjects])
    ref = boot_noise_ceiling(rsatoolbox.rdm.RDMs(vec), method=rsa_method)
    np.testing.assert_allclose([lower, upper], ref, rtol=1e-9)


def test_k92_rsa_table_synthetic():
    rng = np.random.default_rng(6)
    truth = rng.normal(size=(20, 5))
    human = np.stack([squareform(pdist(truth + rng.normal(scale=0.8, size=truth.shape))) for _ in range(4)])
    models = {"truth": squareform(pdist(truth)), "noise": squareform(pdist(rng.normal(size=(20, 5))))}
    df = R.k92_rsa_table(models, human, method="spearman", subjects=["a", "a", "b", "b"], n_perm=50)
    assert list(df["model"]) == ["truth", "noise"] and (df["n_units"] == 2).all()
    t = df.set_index("model")
    assert t.loc["truth", "rsa"] > t.loc["noise", "rsa"]
    assert t.loc["truth", "p_value"] < 0.05 < t.loc["noise", "p_value"]
    assert (df["nc_lower"] <= df["nc_upper"]).all()
    # models scored side by side (brainviz.jobs): the same table, rows in input order (Kendall tau-a too)
    for method in ("spearman", "kendall_tau_a"):
        one = R.k92_rsa_table(models, human, method=method, subjects=["a", "a", "b", "b"], n_perm=30)
        two = R.k92_rsa_table(models, human, method=method, subjects=["a", "a", "b", "b"], n_perm=30, n_jobs=2)
        pd.testing.assert_frame_equal(one, two)
    with pytest.raises(BrainVizDataError):
        R.k92_rsa_table({"bad": np.zeros((5, 5))}, human)


def test_rsa_bad_input():
    with pytest.raises(BrainVizDataError, match="method"):
        R.rsa(np.ones(3), np.ones(3), "cosine")
    with pytest.raises(BrainVizDataError, match="differ"):
        R.rsa(np.ones(3), np.ones(6))
    with pytest.raises(BrainVizDataError):
        R.rsa(np.array([1.0, np.nan, 2.0]), np.ones(3))
