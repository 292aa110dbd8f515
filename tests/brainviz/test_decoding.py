"""Ridge decoder, retrieval, voting and metrics on planted linear data."""
from __future__ import annotations

import numpy as np
import pytest

from brainviz.decoding import (Retrieval, RidgeDecoder, cosine_similarity_matrix, decode_roi_sets, decoding_metrics,
                               identify_by_encoder, identify_roi_sets, retrieve, validated_vote,
                               vote)
from brainviz.errors import BrainVizDataError


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    n_tr, n_te, d = 200, 40, 12
    emb = rng.normal(size=(n_tr + n_te, d))
    sets = {name: emb @ rng.normal(size=(d, v)) + rng.normal(scale=noise, size=(n_tr + n_te, v))
            for name, v, noise in [("set1", 80, 12.0), ("set2", 60, 12.0), ("set3", 100, 12.0)]}
    return emb, sets, n_tr


def test_decoder_retrieval_beats_chance(planted):
    emb, sets, n_tr = planted
    dec = RidgeDecoder().fit(sets["set1"][:n_tr], emb[:n_tr])
    pred = dec.predict(sets["set1"][n_tr:])
    assert pred.shape == (40, 12)
    res = retrieve(pred, emb[n_tr:], k=5)
    assert res.similarity.shape == (40, 40) and res.top_k.shape == (40, 5)
    m = decoding_metrics(res.similarity, np.arange(40), pred, emb[n_tr:])
    assert m["top1"] > 5 * m["chance_top1"]
    assert m["mean_rank"] < m["chance_mean_rank"] / 2
    assert m["cosine_to_true"] > 0.3
    assert np.all(res.ranks(np.arange(40))[res.top_k[:, 0] == np.arange(40)] == 1)


def test_vote_combines_sets(planted):
    emb, sets, n_tr = planted
    df, sims = decode_roi_sets({k: v[:n_tr] for k, v in sets.items()}, emb[:n_tr],
                               {k: v[n_tr:] for k, v in sets.items()}, emb[n_tr:])
    assert list(df["model"]) == ["set1", "set2", "set3", "vote", "vote (equal weights)"]
    t = df.set_index("model")
    assert t.loc["vote (equal weights)", "mean_rank"] <= t.loc[["set1", "set2", "set3"], "mean_rank"].mean()
    assert abs(sum(t.loc["vote", "weights"].values()) - 1) < 0.01
    assert t.loc["vote", "top1"] > 5 * t.loc["vote", "chance_top1"]
    assert sims["vote"].shape == (40, 40)


def test_vote_methods():
    a = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    b = 100 * np.array([[1.0, 3.0, 2.0], [0.0, 2.0, 1.0]])
    z = vote([a, b], "zscore")
    assert z.shape == (2, 3) and np.allclose(z[0], [0, 0, 0])  # opposite votes cancel, scale-free
    r = vote([a, b], "rank")
    np.testing.assert_allclose(r, [[2, 2, 2], [1, 3, 2]])
    np.testing.assert_allclose(vote([a], "rank", weights=[2.0]), [[3, 1, 2], [1, 3, 2]])
    with pytest.raises(BrainVizDataError):
        vote([a, b[:, :2]])
    with pytest.raises(BrainVizDataError):
        vote([a], "majority")


def test_ranks_and_cosine():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1]])
    np.testing.assert_array_equal(Retrieval(sim, np.zeros((2, 1), int)).ranks([0, 1]), [1, 1.5])  # a tie counts half
    c = cosine_similarity_matrix([[1.0, 0.0], [0.0, 0.0]], [[2.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(c, [[1.0, np.sqrt(0.5)], [0.0, 0.0]])


def test_decoder_bad_input():
    with pytest.raises(BrainVizDataError):
        RidgeDecoder().fit(np.ones((5, 3)), np.ones((4, 2)))
    x = np.random.default_rng(0).normal(size=(10, 4))
    dec = RidgeDecoder().fit(x, x[:, :2])
    with pytest.raises(BrainVizDataError):
        dec.predict(np.ones((3, 5)))
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(BrainVizDataError):
        dec.predict(bad)


def test_validated_vote_not_below_best_single_set():
    """One informative ROI set and two near-useless ones: the equal-weight vote is
    dragged down, the validated vote (weights chosen on other queries) is not."""
    rng = np.random.default_rng(7)
    n = 120
    truth = np.arange(n)
    good = np.eye(n) * 2.0 + rng.normal(size=(n, n))
    noise = {f"set{i}": np.eye(n) * 0.15 + rng.normal(size=(n, n)) for i in (2, 3)}
    sims = {"set1": good, **noise}
    single = {k: decoding_metrics(v, truth)["mean_rank"] for k, v in sims.items()}
    eq = decoding_metrics(vote(list(sims.values())), truth)["mean_rank"]
    vv = validated_vote(sims, truth, n_folds=2, seed=0)
    got = decoding_metrics(vv.score, truth)
    assert eq > min(single.values()) + 3  # equal weights are worse than the best set here
    assert got["mean_rank"] <= min(single.values()) + 1e-9
    assert got["top1"] >= decoding_metrics(good, truth)["top1"] - 1e-9
    assert vv.weights.shape == (2, 3) and np.allclose(vv.weights.sum(axis=1), 1)
    assert np.all(vv.weights[:, 0] >= 0.5) and set(np.unique(vv.fold)) == {0, 1}


def test_identify_by_encoder():
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(30, 50))
    measured = 3 * pred + 1.0 + rng.normal(scale=2.0, size=(30, 50))  # scale/offset do not matter (Pearson)
    sim = identify_by_encoder(measured, pred)
    np.testing.assert_allclose(sim[0, 1], np.corrcoef(measured[0], pred[1])[0, 1])
    assert decoding_metrics(sim, np.arange(30))["top1"] > 0.8
    df, sims = identify_roi_sets({"a": measured[:, :25], "b": measured[:, 25:]}, {"a": pred[:, :25], "b": pred[:, 25:]})
    assert list(df.model) == ["a", "b", "vote", "vote (equal weights)"] and sims["vote"].shape == (30, 30)
    with pytest.raises(BrainVizDataError):
        identify_by_encoder(measured, pred[:, :10])
