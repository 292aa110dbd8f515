"""Pair-dissimilarity model: symmetry, leak-free split, held-out evaluation."""
from __future__ import annotations

import numpy as np
import pytest

from brainviz.errors import BrainVizDataError
from brainviz.pairs import (PairDissimilarityModel, evaluate_pair_model, pair_features, pairs_within,
                            run_pair_experiment, split_images)
from brainviz.rsa import rdm


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(90, 24))
    brain = rdm(emb @ rng.normal(size=(24, 60)) + rng.normal(scale=3.0, size=(90, 60)), "correlation",
                dtype=np.float64)
    return emb, brain


def test_split_leaks_no_image():
    train, test = split_images(100, 0.25, seed=3)
    assert len(test) == 25 and len(train) == 75
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(100))
    ti, tj = pairs_within(train)
    si, sj = pairs_within(test)
    assert len(ti) == 75 * 74 // 2 and (ti < tj).all()
    train_imgs = set(ti) | set(tj)
    test_imgs = set(si) | set(sj)
    assert train_imgs == set(train) and test_imgs == set(test) and not train_imgs & test_imgs
    t2, s2 = split_images(100, 0.25, seed=3)
    assert np.array_equal(t2, train) and np.array_equal(s2, test)
    with pytest.raises(BrainVizDataError):
        split_images(3, 0.5)
    with pytest.raises(BrainVizDataError):
        split_images(10, 1.0)


def test_pair_features_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    assert np.array_equal(pair_features(a, b), pair_features(b, a))
    assert pair_features(a, b).shape == (7, 15)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", ["ridge", "mlp"])
def test_model_exactly_symmetric(planted, estimator):
    emb, brain = planted
    kw = {"hidden_layer_sizes": (16,), "max_iter": 30} if estimator == "mlp" else {}
    model = PairDissimilarityModel(n_components=8, estimator=estimator, **kw).fit(emb[:60], brain[:60, :60])
    a, b = emb[60:75], emb[75:90]
    assert np.array_equal(model.predict_pairs(a, b), model.predict_pairs(b, a))
    full = model.predict(emb[60:])
    assert full.shape == (30, 30) and np.array_equal(full, full.T) and np.all(np.diag(full) == 0)


def test_held_out_evaluation(planted):
    emb, brain = planted
    out = run_pair_experiment(emb, brain, test_fraction=0.3, seed=0, n_components=16)
    assert out["n_test_images"] == 27 and out["n_test_pairs"] == 27 * 26 // 2
    assert out["n_train_images"] == 63 and out["n_train_pairs"] == 63 * 62 // 2
    # the planted relation is learnable and the baseline sees it too
    assert out["spearman"] > 0.3 and out["baseline_spearman"] > 0.3
    assert np.isfinite(out["r2"])


def test_grouped_cv_picks_alpha(planted):
    emb, brain = planted
    m = PairDissimilarityModel(n_components=8, cv_folds=3).fit(emb[:60], brain[:60, :60])
    assert m.alpha_ in m.alphas and m.cv_scores_.shape == (len(m.alphas),)


def test_bad_input(planted):
    emb, brain = planted
    with pytest.raises(BrainVizDataError, match="rdm_train"):
        PairDissimilarityModel().fit(emb[:10], brain[:9, :9])
    m = PairDissimilarityModel(n_components=4).fit(emb[:20], brain[:20, :20])
    with pytest.raises(BrainVizDataError):
        m.predict(emb[:, :5])
    with pytest.raises(BrainVizDataError, match="test_idx"):
        evaluate_pair_model(m, emb, brain, [1, 2])
