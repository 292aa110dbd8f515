"""Cross-validated distances (unbiased on synthetic data with known truth), the
within-subject split-half ceiling, the depth sweep and the cross-validated layer mix."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from brainviz import rsa as R
from brainviz.errors import BrainVizDataError
from brainviz.rsa import crossvalidated_rdm, fit_layer_mix, layer_sweep, repeat_rdms, within_subject_ceiling


def _true_patterns(rng, n=12, p=400):
    return rng.normal(size=(n, p))


def test_crossvalidated_distances_unbiased():
    """Mean over simulations: the cross-validated estimate hits the true distance,
    the plain estimate from repeat-averaged patterns is biased upwards."""
    rng = np.random.default_rng(0)
    u = _true_patterns(rng)
    n, p = u.shape
    true_sq = pdist(u, "sqeuclidean") / p
    true_corr = pdist(u, "correlation")
    cv_sq, cv_corr, plain_sq, plain_corr = [], [], [], []
    for _ in range(60):
        reps = u[:, None, :] + rng.normal(scale=1.5, size=(n, 3, p))
        cv_sq.append(crossvalidated_rdm(reps, "sqeuclidean", form="condensed"))
        cv_corr.append(crossvalidated_rdm(reps, "correlation", form="condensed"))
        m = reps.mean(axis=1)
        plain_sq.append(pdist(m, "sqeuclidean") / p)
        plain_corr.append(pdist(m, "correlation"))
    # plain: squared Euclidean inflated by 2 sigma^2 / K = 1.5 per feature (true mean ~2)
    assert np.mean(plain_sq) - np.mean(true_sq) > 1.0
    assert abs(np.mean(cv_sq) - np.mean(true_sq)) < 0.05
    np.testing.assert_allclose(np.mean(cv_sq, axis=0), true_sq, atol=0.12)
    # correlation distances of independent true patterns are ~1 either way: use correlated truth below
    assert abs(np.mean(cv_corr) - np.mean(true_corr)) < 0.03


def test_crossvalidated_correlation_unbiased_structured():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1, 600))
    u = 0.8 * base + rng.normal(size=(10, 600)) * np.linspace(0.3, 1.5, 10)[:, None]
    true = pdist(u, "correlation")
    cv, plain = [], []
    for _ in range(40):
        reps = u[:, None, :] + rng.normal(scale=1.2, size=(10, 2, 600))
        cv.append(crossvalidated_rdm(reps, "correlation", form="condensed"))
        plain.append(pdist(reps.mean(axis=1), "correlation"))
    bias_cv = np.abs(np.mean(cv, axis=0) - true).mean()
    bias_plain = np.abs(np.mean(plain, axis=0) - true).mean()
    assert bias_plain > 0.15 and bias_cv < 0.03


def test_crossvalidated_sqeuclidean_equals_rsatoolbox_crossnobis():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(2)
    reps = rng.normal(size=(6, 3, 20))
    ours = crossvalidated_rdm(reps, "sqeuclidean", form="condensed")
    n, k, p = reps.shape
    ds = rsatoolbox.data.Dataset(reps.transpose(1, 0, 2).reshape(n * k, p),
                                 obs_descriptors={"image": np.tile(np.arange(n), k), "rep": np.repeat(np.arange(k), n)})
    ref = rsatoolbox.rdm.calc_rdm(ds, method="crossnobis", descriptor="image", cv_descriptor="rep")
    np.testing.assert_allclose(ours, ref.get_vectors()[0], rtol=1e-8, atol=1e-10)


def test_crossvalidated_bad_input():
    with pytest.raises(BrainVizDataError, match="repeats"):
        crossvalidated_rdm(np.ones((4, 1, 5)))
    with pytest.raises(BrainVizDataError, match="metric"):
        crossvalidated_rdm(np.ones((4, 2, 5)), "cosine")


def test_within_subject_ceiling_matches_true_rdm():
    """The split-half ceiling predicts how well the noise-free RDM correlates with the
    measured, repeat-averaged one (and a noiseless subject has ceiling 1)."""
    rng = np.random.default_rng(3)
    u = rng.normal(size=(30, 50)) @ rng.normal(size=(50, 300)) / 7 + rng.normal(size=(1, 300))
    true_rdm = R.rdm(u, dtype=np.float64)
    got, want = [], []
    for _ in range(15):
        reps = u[:, None, :] + rng.normal(scale=1.5, size=(30, 3, 300))
        wc = within_subject_ceiling(repeat_rdms(reps), method="spearman")
        assert wc.n_repeats == 3 and wc.reliability > wc.r_single
        got.append(wc.ceiling)
        want.append(R.rsa(true_rdm, R.rdm(reps.mean(axis=1), dtype=np.float64), "spearman"))
    assert 0.5 < np.mean(want) < 0.95
    # close, and conservative (averaging patterns denoises 1 - Pearson a bit more than averaging RDMs)
    assert -0.06 < np.mean(got) - np.mean(want) < 0.01
    clean = np.repeat(u[:, None, :], 2, axis=1)
    assert within_subject_ceiling(repeat_rdms(clean)).ceiling == pytest.approx(1.0)
    with pytest.raises(BrainVizDataError):
        within_subject_ceiling(repeat_rdms(clean), method="kendall_tau_a")


def _group(rng, n=24, n_sub=4):
    """Layers of increasing similarity to a latent 'IT' RDM, and noisy subjects of it."""
    latent = rng.normal(size=(n, 30))
    it = R.rdm(latent, dtype=np.float64)
    layers = {}
    for i, w in enumerate([0.0, 0.5, 1.0, 2.0]):
        layers[f"block{i}"] = R.rdm(w * latent + rng.normal(size=(n, 30)), dtype=np.float64)
    subj = np.stack([R.rdm(latent + 0.6 * rng.normal(size=(n, 30)), dtype=np.float64) for _ in range(n_sub)])
    return it, layers, subj


def test_layer_sweep_two_methods_with_ceiling():
    rng = np.random.default_rng(4)
    _, layers, subj = _group(rng)
    depth = {k: i / 3 for i, k in enumerate(layers)}
    t = layer_sweep(layers, np.repeat(subj, 2, axis=0), subjects=np.repeat(["a", "b", "c", "d"], 2),
                    depth=depth, n_perm=50)
    assert set(t.method) == {"kendall_tau_a", "spearman"} and len(t) == 8
    for m, g in t.groupby("method"):
        assert g.rsa.is_monotonic_increasing  # planted: deeper = more IT-like
        assert g.p_value.iloc[-1] < 0.05 and g.nc_lower.nunique() == 1
        assert (g.nc_lower <= g.nc_upper).all()
        assert np.allclose(g.rsa, [np.mean(v) for v in g.per_unit])
    assert t.depth.tolist()[:4] == [0, 1 / 3, 2 / 3, 1]


def test_layer_mix_held_out():
    rng = np.random.default_rng(5)
    _, layers, subj = _group(rng, n=30)
    res = fit_layer_mix(layers, subj, method="spearman", n_repeats=2, k_pattern=3, k_rdm=2)
    s = res.summary.set_index("model")
    assert {"mix of all layers (fitted)", "best layer (chosen on training folds)"} <= set(s.index)
    assert s.loc["mix of all layers (fitted)", "value"] > s.loc["layer: block0", "value"]
    assert (res.folds.groupby("model").size() == 12).all()  # 2 repeats x (3 x 2) folds
    assert res.weights.idxmax() == "block3" and (res.weights >= 0).all()
    assert s.nc_lower.notna().all()
