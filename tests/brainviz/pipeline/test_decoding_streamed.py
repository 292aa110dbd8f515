"""The decoding analysis reads a subject's training responses in column blocks (issue 29): the ridge decoder of a
ROI set with more vertices than training images is fitted from the kernel of the z-scored responses summed over
blocks (brainviz.decoding.decode_roi_sets_streamed), with the results of the in-memory decode_roi_sets."""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from brainviz import decoding as dec_mod
from brainviz.data import streaming
from brainviz.data.streaming import RowConcat, RowSubset
from brainviz.decoding import WHOLE_CORTEX, RidgeDecoder, decode_roi_sets, decode_roi_sets_streamed, identify_roi_sets
from brainviz.names import ROI_SETS
from brainviz.pipeline.analyses import decoding as analysis

N_TR, N_TE, V, D = 60, 20, 310, 8


def _problem(seed=0):
    """(train + test responses (n, V) float32, embeddings (n, D), {set: (V,) mask}): one set with fewer vertices
    than training images (fitted on its columns), one with more and whole cortex (fitted from the kernel), a
    constant vertex (z-scored like StandardScaler: 0)."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(N_TR + N_TE, D))
    y = (emb @ rng.normal(size=(D, V)) + rng.normal(scale=6.0, size=(N_TR + N_TE, V))).astype(np.float32)
    y[:, 7] = 1.5
    masks = {"set1": np.zeros(V, bool), "set3": np.zeros(V, bool)}
    masks["set1"][rng.choice(V, 40, replace=False)] = True
    masks["set3"][rng.choice(V, 150, replace=False)] = True
    masks["set3"][7] = True
    masks[WHOLE_CORTEX] = np.ones(V, bool)
    return y, emb, masks


def _in_memory(y, emb, masks, voters, seed=0):
    return decode_roi_sets({n: y[:N_TR, m] for n, m in masks.items()}, emb[:N_TR],
                           {n: y[N_TR:, m] for n, m in masks.items()}, emb[N_TR:], vote_over=voters, seed=seed)


def _assert_same(got, want):
    (gm, gs), (wm, ws) = got, want
    assert list(gs) == list(ws)
    for name in ws:
        np.testing.assert_allclose(gs[name], ws[name], rtol=1e-9, atol=1e-10)
    pd.testing.assert_frame_equal(gm.drop(columns="weights"), wm.drop(columns="weights"), rtol=1e-9)
    assert gm.weights.iloc[-2:].tolist() == wm.weights.iloc[-2:].tolist()  # the votes' weights


@pytest.mark.parametrize("max_bytes", [10**9, 8 * (N_TR + N_TE) * 23])  # one block; blocks of 23 columns
def test_streamed_decoder_equals_in_memory(max_bytes):
    y, emb, masks = _problem()
    lazy_tr = RowSubset(RowConcat([y[:, :100], y[:, 100:]]), np.arange(N_TR))  # as Context.responses(lazy=True)
    got = decode_roi_sets_streamed(lazy_tr, emb[:N_TR], y[N_TR:], emb[N_TR:], masks, vote_over=["set1", "set3"],
                                   max_bytes=max_bytes)
    _assert_same(got, _in_memory(y, emb, masks, ["set1", "set3"]))
    assert got[0].set_index("model").loc[WHOLE_CORTEX, "top1"] > 0.5  # the planted signal is found


@pytest.mark.parametrize("alpha_per_target", [False, True])
def test_kernel_fit_equals_ridge_decoder(alpha_per_target):
    """_gram_fit_predict is RidgeDecoder (StandardScaler + RidgeCV) fitted from blocks: same alphas, predictions."""
    rng = np.random.default_rng(3)
    for noise in (1.0, 30.0):  # alphas chosen inside the grid
        emb = rng.normal(size=(N_TR + N_TE, D))
        y = (emb @ rng.normal(size=(D, V)) + rng.normal(scale=noise, size=(N_TR + N_TE, V))).astype(np.float32)
        want = RidgeDecoder(alpha_per_target=alpha_per_target).fit(y[:N_TR], emb[:N_TR])
        got = RidgeDecoder(alpha_per_target=alpha_per_target)
        pred = dec_mod._gram_fit_predict(got, ((y[:N_TR, j:j + 40], y[N_TR:, j:j + 40]) for j in range(0, V, 40)),
                                         emb[:N_TR])
        np.testing.assert_array_equal(got.alpha_, want.alpha_)
        np.testing.assert_allclose(pred, want.predict(y[N_TR:]), rtol=1e-9, atol=1e-10)
        assert np.unique(want.alpha_).size > 1 or 1.0 < float(np.max(want.alpha_)) < 1e6


class _Subject:
    def __init__(self, masks):
        self.masks = masks

    def roi_mask(self, name=None):
        if name is None:
            return np.ones(V, bool)
        if name in self.masks:
            return self.masks[name]
        return self.masks["set1"] if name in ROI_SETS["set1"] else np.zeros(V, bool)


def test_pipeline_reads_training_responses_in_blocks(monkeypatch):
    """decoding.run never loads the training responses whole (no eager ctx.responses(.., "train")), reads at most
    one block of columns at a time and fits RidgeDecoder on fewer columns than images (whole cortex: the kernel),
    with the ranks, weights and headline of the in-memory computation."""
    y, emb, masks = _problem(1)
    masks = {k: v for k, v in masks.items() if k != WHOLE_CORTEX}  # set2 is absent: not a voter
    keys = [f"img{i:03d}" for i in range(N_TR + N_TE)]
    calls = []

    def responses(s, split, lazy=False):
        calls.append((split, lazy))
        rows = slice(0, N_TR) if split == "train" else slice(N_TR, None)
        whole = RowConcat([y[:, :150], y[:, 150:]])
        return RowSubset(whole, np.arange(N_TR + N_TE)[rows]) if lazy else y[rows].copy()

    pred = y[N_TR:] + np.random.default_rng(2).normal(scale=3.0, size=(N_TE, V)).astype(np.float32)
    ctx = SimpleNamespace(
        features=SimpleNamespace(pooled=emb.astype(np.float32), indices=lambda ks: np.array([keys.index(k) for k in ks])),
        dataset=SimpleNamespace(subjects={"subj01": _Subject(masks)}),
        images={"subj01": SimpleNamespace(train_keys=keys[:N_TR], test_keys=keys[N_TR:])},
        responses=responses, config=SimpleNamespace(seed=0), main_subjects=["subj01"],
        has_test=lambda s: True, timed=lambda stage: contextlib.nullcontext(), workers=lambda *a: 1)
    monkeypatch.setattr(analysis, "load_registry", lambda c: {"ridge-subj01": {"kind": "ridge", "subjects": ["subj01"]}})
    monkeypatch.setattr(analysis, "load_predictions", lambda c, m, s: pred)
    width = 12
    monkeypatch.setattr(analysis, "BLOCK_BYTES", 8 * (N_TR + N_TE) * width, raising=False)
    read, fitted = [], []
    real_read, real_fit = streaming.read_cols, RidgeDecoder.fit

    def spy_read(a, j0, j1):
        read.append(j1 - j0)
        return real_read(a, j0, j1)

    def spy_fit(self, x, e):
        fitted.append(np.shape(x)[1])
        return real_fit(self, x, e)

    monkeypatch.setattr(streaming, "read_cols", spy_read)
    monkeypatch.setattr(RidgeDecoder, "fit", spy_fit)
    gen = analysis.run(ctx, None)
    results = []
    while True:
        try:
            results.append(next(gen))
        except StopIteration as stop:
            headline = stop.value
            break

    assert ("train", False) not in calls and ("train", True) in calls
    assert read and max(read) <= width
    assert fitted == [40]  # set1 alone on its columns; set3 (150) and whole cortex (310) > 60 images: the kernel
    (res,) = results
    all_masks = {**masks, WHOLE_CORTEX: np.ones(V, bool)}
    voters = ["set1", "set3"]
    want = {"decoder": _in_memory(y, emb, all_masks, voters),
            "encoder:ridge": identify_roi_sets({n: y[N_TR:, m] for n, m in all_masks.items()},
                                               {n: pred[:, m] for n, m in all_masks.items()}, vote_over=voters)}
    rows = []
    for approach, (metrics, sims) in want.items():
        for name, sim in sims.items():
            rows += analysis._rank_rows("subj01", approach, name, sim, keys[N_TR:])
        w = metrics.set_index("model").loc["vote", "weights"]
        assert res.weights[res.weights.approach == approach].set_index("roi_set").weight.to_dict() == w
        assert headline["subj01"][approach]["vote"]["top1"] == round(float(metrics.set_index("model").loc["vote", "top1"]), 3)
    expected = pd.DataFrame(rows).drop(columns="subject")
    pd.testing.assert_frame_equal(res.ranks, expected)
    assert set(res.ranks.roi_set) >= {"set1", "set3", WHOLE_CORTEX, "vote"}
