"""fMRI -> image-embedding decoding, retrieval, and voting across ROI sets (report 003).

A :class:`RidgeDecoder` maps the responses of one ROI set (n_images, V_set) to
the backbone's image embedding (n_images, D). Decoded embeddings identify the
seen image among candidates by cosine similarity (:func:`retrieve`). Decoders
trained on the three ROI sets of report 003 (``brainviz.data.algonauts.ROI_SETS``)
are combined by :func:`vote`, which replaces the report's CLIP voting (choosing
the most self-consistent reconstruction) with a retrieval-level ensemble;
:func:`validated_vote` chooses the vote's weights on held-out queries only
(cross-fitted), so the combination cannot be worse than the best single set by
construction of the candidates it chooses from (one-hot weights included).

The other direction, identification through an ENCODER (Kay et al. 2008):
:func:`identify_by_encoder` correlates a measured response with the encoder's
predicted response to every candidate image (same candidates, same ranks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import linalg, stats
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from .checks import as_matrix
from .errors import BrainVizDataError
from .metrics import pattern_correlations, retrieval_ranks, zscore

VOTE_METHODS = ("zscore", "rank")
#: roi-set label of the whole-cortex decoder / identifier
WHOLE_CORTEX = "whole cortex"


class RidgeDecoder(BaseEstimator, RegressorMixin):
    """Ridge regression from ROI responses to image embeddings.

    Responses are z-scored per voxel (train statistics); one ridge penalty,
    shared by all embedding dimensions, is chosen from ``alphas`` by efficient
    leave-one-out (``sklearn.linear_model.RidgeCV``, SVD/eigen GCV); the
    intercept absorbs the embedding mean.

    Parameters
    ----------
    alphas : penalties tried (scaled for z-scored inputs: the useful range
        grows with the number of voxels).
    alpha_per_target : choose a penalty per embedding dimension instead.

    Attributes (after fit)
    ----------------------
    alpha_ : float or (D,) array, the chosen penalty(ies).
    n_features_in_ : V_set; n_outputs_ : D.
    """

    def __init__(self, alphas=tuple(np.logspace(0, 6, 13)), alpha_per_target: bool = False):
        self.alphas = alphas
        self.alpha_per_target = alpha_per_target

    def fit(self, responses, embeddings):
        """Fit on training images.

        Parameters
        ----------
        responses : (n_train, V_set) fMRI responses of one ROI set
        embeddings : (n_train, D) the backbone's image embeddings of the same images
        """
        x = as_matrix(responses, "responses")
        y = as_matrix(embeddings, "embeddings", x.shape[0])
        if x.shape[0] < 3:
            raise BrainVizDataError("responses", f"need at least 3 training images, got {x.shape[0]}")
        self.scaler_ = StandardScaler().fit(x)
        self.model_ = RidgeCV(alphas=np.asarray(self.alphas, dtype=float),
                              alpha_per_target=self.alpha_per_target).fit(self.scaler_.transform(x), y)
        self.alpha_ = self.model_.alpha_
        self.n_features_in_ = x.shape[1]
        self.n_outputs_ = y.shape[1]
        return self

    def predict(self, responses) -> np.ndarray:
        """(n, V_set) responses -> (n, D) predicted embeddings (float64)."""
        x = as_matrix(responses, "responses")
        if x.shape[1] != self.n_features_in_:
            raise BrainVizDataError("responses", f"expected {self.n_features_in_} voxels, got {x.shape[1]}")
        return self.model_.predict(self.scaler_.transform(x))


def cosine_similarity_matrix(a, b) -> np.ndarray:
    """(n_a, D), (n_b, D) -> (n_a, n_b) cosine similarities (0 for zero vectors)."""
    a = as_matrix(a, "a")
    b = as_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise BrainVizDataError("embeddings", f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a / np.where(na > 0, na, 1.0)) @ (b / np.where(nb > 0, nb, 1.0)).T


@dataclass
class Retrieval:
    """Result of :func:`retrieve`.

    similarity : (n_queries, n_candidates) cosine similarity (or a vote score)
    top_k : (n_queries, k) candidate indices, best first (ties -> lower index)
    """

    similarity: np.ndarray
    top_k: np.ndarray

    def ranks(self, true_index) -> np.ndarray:
        """(n_queries,) 1-based rank of each query's true candidate (1 = retrieved
        first; ties: :func:`brainviz.metrics.retrieval_ranks`)."""
        return retrieval_ranks(self.similarity, true_index)


def _top_k(sim: np.ndarray, k: int) -> np.ndarray:
    k = int(min(k, sim.shape[1]))
    idx = np.argsort(-sim, axis=1, kind="stable")
    return idx[:, :k]


def retrieve(pred_embeddings, candidate_embeddings, k: int = 5) -> Retrieval:
    """Identify images by cosine similarity of decoded and candidate embeddings.

    Parameters
    ----------
    pred_embeddings : (n_queries, D) decoded embeddings
    candidate_embeddings : (n_candidates, D) true embeddings of the candidate images
    k : number of top candidates returned

    Returns
    -------
    Retrieval (similarity (n_queries, n_candidates), top_k (n_queries, k))
    """
    sim = cosine_similarity_matrix(pred_embeddings, candidate_embeddings)
    return Retrieval(similarity=sim, top_k=_top_k(sim, k))


def vote(similarities: Sequence[np.ndarray], method: str = "zscore", weights=None) -> np.ndarray:
    """Combine the retrieval scores of several decoders (e.g. one per ROI set).

    Parameters
    ----------
    similarities : list of (n_queries, n_candidates) score matrices over the
        same queries and candidates
    method :
        ``"zscore"``: z-score each query row of each matrix across candidates
        (so decoders with different similarity scales count equally), then
        average -- a soft vote that keeps confidence information.
        ``"rank"``: Borda count -- each decoder gives every candidate its rank
        within the query row (ties averaged, higher similarity = more points),
        points are averaged; robust to one decoder's outlying scores.
    weights : optional (n_models,) non-negative weights (e.g. validation top-1).

    Returns
    -------
    (n_queries, n_candidates) combined score; higher = more likely. Feed it to
    :func:`brainviz.metrics.retrieval_ranks` / :func:`decoding_metrics`.
    """
    if method not in VOTE_METHODS:
        raise BrainVizDataError("method", f"unknown vote method {method!r}; use one of {VOTE_METHODS}")
    mats = [np.asarray(s, dtype=np.float64) for s in similarities]
    if not mats:
        raise BrainVizDataError("similarities", "need at least one similarity matrix")
    if any(m.ndim != 2 or m.shape != mats[0].shape for m in mats):
        raise BrainVizDataError("similarities", f"all matrices must share one 2-D shape, got {[m.shape for m in mats]}")
    w = np.ones(len(mats)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(mats),) or np.any(w < 0) or w.sum() <= 0:
        raise BrainVizDataError("weights", "need one non-negative weight per matrix, not all zero")
    out = np.zeros_like(mats[0])
    for m, wi in zip(mats, w):
        if method == "zscore":
            score = zscore(m, axis=1)  # each query row over its candidates
        else:
            score = stats.rankdata(m, axis=1)
        out += wi * score
    return out / w.sum()


def decoding_metrics(similarity, true_index, pred_embeddings=None, true_embeddings=None) -> dict:
    """Retrieval metrics of one decoder (or vote).

    Parameters
    ----------
    similarity : (n_queries, n_candidates) scores
    true_index : (n_queries,) index of each query's true candidate
    pred_embeddings, true_embeddings : optional (n_queries, D) decoded and true
        embeddings, for the mean cosine similarity

    Returns
    -------
    dict: ``top1``, ``top5`` (fractions), ``mean_rank``, ``median_rank``
    (1-based), ``chance_top1`` (1 / n_candidates), ``chance_mean_rank``
    ((n_candidates + 1) / 2), ``n_queries``, ``n_candidates`` and, when
    embeddings are given, ``cosine_to_true`` (mean over queries).
    """
    ranks = retrieval_ranks(similarity, true_index)
    n_c = np.asarray(similarity).shape[1]
    out = {
        "top1": float(np.mean(ranks <= 1)), "top5": float(np.mean(ranks <= 5)),
        "mean_rank": float(ranks.mean()), "median_rank": float(np.median(ranks)),
        "chance_top1": 1.0 / n_c, "chance_mean_rank": (n_c + 1) / 2.0,
        "n_queries": int(len(ranks)), "n_candidates": int(n_c),
    }
    if pred_embeddings is not None and true_embeddings is not None:
        p = as_matrix(pred_embeddings, "pred_embeddings")
        t = as_matrix(true_embeddings, "true_embeddings", p.shape[0])
        out["cosine_to_true"] = float(np.mean(np.diag(cosine_similarity_matrix(p, t))))
    return out


def decode_roi_sets(train_responses: Mapping[str, np.ndarray], train_embeddings,
                    test_responses: Mapping[str, np.ndarray], test_embeddings,
                    vote_method: str = "zscore", alphas=None, vote_over: Sequence[str] | None = None,
                    seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Train one decoder per ROI set, retrieve the test images among themselves,
    and vote.

    Parameters
    ----------
    train_responses : {set name: (n_train, V_set)}
    train_embeddings : (n_train, D)
    test_responses : {set name: (n_test, V_set)} (same keys)
    test_embeddings : (n_test, D); the candidates are the test images, the
        true candidate of query q is q.
    vote_method : see :func:`vote`
    alphas : penalties for :class:`RidgeDecoder` (default its own)
    vote_over : the sets that vote (default all; e.g. leave out the whole-cortex decoder)
    seed : fold assignment of :func:`validated_vote`

    Returns
    -------
    metrics : DataFrame, one row per set plus ``"vote"`` (weights chosen on held-out
        queries, :func:`validated_vote`) and ``"vote (equal weights)"``, columns
        ``model``, the keys of :func:`decoding_metrics` (``cosine_to_true`` is NaN
        for the votes) and ``weights`` (dict, the validated vote's mean weights).
    similarities : {set name, "vote" or "vote (equal weights)": (n_test, n_test) scores}
    """
    if set(train_responses) != set(test_responses) or not train_responses:
        raise BrainVizDataError("test_responses", "train and test need the same, non-empty ROI sets")
    y_tr = as_matrix(train_embeddings, "train_embeddings")
    y_te = as_matrix(test_embeddings, "test_embeddings")
    truth = np.arange(y_te.shape[0])
    rows, sims = [], {}
    for name in train_responses:
        dec = RidgeDecoder() if alphas is None else RidgeDecoder(alphas=alphas)
        dec.fit(train_responses[name], y_tr)
        pred = dec.predict(test_responses[name])
        sims[name] = retrieve(pred, y_te).similarity
        rows.append({"model": name, **decoding_metrics(sims[name], truth, pred, y_te)})
    rows += _vote_rows(sims, truth, vote_over, vote_method, seed)
    return pd.DataFrame(rows), sims


#: default bound of one column block of :func:`decode_roi_sets_streamed` (float64 train + test rows)
BLOCK_BYTES = 64 * 2**20


def decode_roi_sets_streamed(train_responses, train_embeddings, test_responses, test_embeddings,
                             masks: Mapping[str, np.ndarray], vote_method: str = "zscore", alphas=None,
                             vote_over: Sequence[str] | None = None, seed: int = 0,
                             max_bytes: int = BLOCK_BYTES) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """:func:`decode_roi_sets` on whole-brain responses read in column blocks: the same metrics, similarities
    and votes (to float rounding) without holding any ROI set's responses whole when it has more vertices
    than training images.

    Per set, the way scikit-learn's ``RidgeCV`` itself fits it: with fewer vertices than training images
    (its "cov" mode) the set's columns are gathered (n_train x V_set, smaller than n_train^2) and
    :class:`RidgeDecoder` fits them as in memory; otherwise (its "gram" mode) the decoder is fitted from the
    (n_train, n_train) kernel of the z-scored responses and predicts from the (n_test, n_train) kernel, both
    summed over column blocks (:func:`_gram_fit_predict`). Memory: O(n_train * min(n_train, V_set)) per set
    (sets one after the other) plus one block, whatever the number of vertices.

    Parameters
    ----------
    train_responses : (n_train, V) array-like read with :func:`brainviz.data.streaming.read_cols` (ndarray,
        memmap, ``RowConcat``, ``RowSubset``: e.g. ``Context.responses(subject, "train", lazy=True)``)
    train_embeddings : (n_train, D)
    test_responses : (n_test, V) array-like, as ``train_responses``
    test_embeddings : (n_test, D); query q's true candidate is q
    masks : {set name: (V,) bool} the vertices of each ROI set (e.g. all True: whole cortex)
    vote_method, alphas, vote_over, seed : as :func:`decode_roi_sets`
    max_bytes : bound of one column block (float64, train and test rows)

    Returns
    -------
    metrics, similarities : as :func:`decode_roi_sets`
    """
    from .data.streaming import read_cols

    if not masks:
        raise BrainVizDataError("masks", "need at least one ROI set")
    n_tr, v = (int(k) for k in train_responses.shape)
    if tuple(test_responses.shape[1:]) != (v,):
        raise BrainVizDataError("test_responses", f"expected {v} vertices, got shape {tuple(test_responses.shape)}")
    if n_tr < 3:
        raise BrainVizDataError("responses", f"need at least 3 training images, got {n_tr}")
    y_tr = as_matrix(train_embeddings, "train_embeddings", n_tr)
    y_te = as_matrix(test_embeddings, "test_embeddings", int(test_responses.shape[0]))
    width = max(2, int(max_bytes) // (8 * (n_tr + y_te.shape[0])))
    edges = [(j0, min(v, j0 + width)) for j0 in range(0, v, width)]

    def blocks(mask: np.ndarray):
        """(train, test) float32 columns of ``mask``, one column block at a time."""
        for j0, j1 in edges:
            m = mask[j0:j1]
            if m.any():
                a, b = read_cols(train_responses, j0, j1), read_cols(test_responses, j0, j1)
                yield (a, b) if m.all() else (a[:, m], b[:, m])

    truth = np.arange(y_te.shape[0])
    rows, sims = [], {}
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.shape != (v,) or not mask.any():
            raise BrainVizDataError("masks", f"{name!r}: expected a ({v},) boolean mask with some vertices")
        dec = RidgeDecoder() if alphas is None else RidgeDecoder(alphas=alphas)
        if n_tr > mask.sum():  # fewer vertices than images: the set's columns, in memory
            parts = list(blocks(mask))
            x_tr = np.concatenate([a for a, _ in parts], axis=1)
            x_te = np.concatenate([b for _, b in parts], axis=1)
            del parts
            pred = dec.fit(x_tr, y_tr).predict(x_te)
            del x_tr, x_te
        else:
            pred = _gram_fit_predict(dec, blocks(mask), y_tr)
        sims[name] = retrieve(pred, y_te).similarity
        rows.append({"model": name, **decoding_metrics(sims[name], truth, pred, y_te)})
    rows += _vote_rows(sims, truth, vote_over, vote_method, seed)
    return pd.DataFrame(rows), sims


def _gram_fit_predict(dec: RidgeDecoder, blocks, y) -> np.ndarray:
    """``dec.fit(x_tr, y).predict(x_te)`` (float64 (n_test, D)) from column blocks ``(x_tr, x_te)`` of responses
    with at least as many columns as rows of x_tr, never holding x_tr whole.

    The computation of :class:`RidgeDecoder` (z-score each vertex with its training statistics,
    ``sklearn.preprocessing.StandardScaler``) and of ``sklearn.linear_model.RidgeCV`` in its "gram" mode
    (n_samples <= n_features): centred design Xc, kernel K = Xc Xc^T, its eigendecomposition, for each alpha
    the dual coefficients c = (K + alpha I)^-1 (y - mean y) and efficient leave-one-out errors (intercept
    unpenalized), the alpha with the lowest mean squared error (first of ties; per embedding dimension with
    ``alpha_per_target``); the prediction Xc_test Xc^T c + mean y. Sets ``dec.alpha_`` and ``n_features_in_``."""
    n = y.shape[0]
    K = np.zeros((n, n))
    K_te, v = None, 0
    for x_tr, x_te in blocks:
        x = as_matrix(x_tr, "responses", n)  # float64, a copy of the float32 block
        scaler = StandardScaler().fit(x)
        x = scaler.transform(x, copy=False)
        offset = x.mean(axis=0)  # RidgeCV centres the (z-scored) design again
        x -= offset
        t = scaler.transform(as_matrix(x_te, "responses")) - offset
        # K += x x^T in place (no n x n temporary): BLAS syrk into the lower triangle of the Fortran-ordered K.T
        linalg.blas.dsyrk(1.0, x.T, beta=1.0, c=K.T, trans=1, lower=1, overwrite_c=1)
        K_te = t @ x.T if K_te is None else K_te + t @ x.T
        v += x.shape[1]
    if K_te is None or v < n:
        raise BrainVizDataError("responses", f"the kernel fit needs at least {n} vertices, got {v}")
    y_mean = y.mean(axis=0)
    yc = y - y_mean
    # K.T (Fortran-ordered, its lower triangle filled) is decomposed in place; the MRRR driver needs O(n)
    # workspace besides Q (the default divide and conquer: 2 n^2 more, 1.3 GB at n = 9,000)
    eigvals, Q = linalg.eigh(K.T, lower=True, overwrite_a=True, check_finite=False, driver="evr")
    QT_y, QT_1 = Q.T @ yc, Q.sum(axis=0)
    np.multiply(Q, Q, out=K)  # K's memory holds Q**2 (the leverages' factors)
    best_c = best_score = best_alpha = None
    per_target = bool(dec.alpha_per_target) and y.shape[1] > 1
    for alpha in map(float, np.atleast_1d(np.asarray(dec.alphas, dtype=float))):
        D = 1.0 / (eigvals + alpha)
        c = Q @ (D[:, None] * QT_y)
        d = K @ D - (Q @ (D * QT_1)) / n  # diag of (K + alpha I)^-1 minus the intercept's share
        score = np.mean(-(c / d[:, None]) ** 2, axis=0 if per_target else None)
        if best_score is None:
            best_c, best_score = c, score
            best_alpha = np.full(y.shape[1], alpha) if per_target else alpha
        elif per_target:
            better = score > best_score
            best_c[:, better], best_score[better], best_alpha[better] = c[:, better], score[better], alpha
        elif score > best_score:
            best_c, best_score, best_alpha = c, score, alpha
    dec.alpha_, dec.n_features_in_, dec.n_outputs_ = best_alpha, v, y.shape[1]
    return K_te @ best_c + y_mean


def _vote_rows(sims: dict, truth: np.ndarray, vote_over, method: str, seed: int) -> list[dict]:
    """Add the validated and the equal-weight vote to ``sims`` (in place); their metric rows."""
    voters = list(vote_over) if vote_over is not None else [n for n in sims]
    missing = [n for n in voters if n not in sims]
    if missing or not voters:
        raise BrainVizDataError("vote_over", f"unknown or empty voters {missing or voters}")
    rows = []
    if len(voters) > 1 and len(truth) >= 4:
        vv = validated_vote({n: sims[n] for n in voters}, truth, method=method, seed=seed)
        sims["vote"] = vv.score
        rows.append({"model": "vote", **decoding_metrics(vv.score, truth), "cosine_to_true": np.nan,
                     "weights": dict(zip(vv.names, np.round(vv.weights.mean(axis=0), 3).tolist()))})
    sims["vote (equal weights)"] = vote([sims[n] for n in voters], method=method)
    if "vote" not in sims:  # one voter or < 4 queries: nothing to validate weights on
        sims["vote"] = sims["vote (equal weights)"]
        rows.append({"model": "vote", **decoding_metrics(sims["vote"], truth), "cosine_to_true": np.nan,
                     "weights": {n: round(1 / len(voters), 3) for n in voters}})
    rows.append({"model": "vote (equal weights)", **decoding_metrics(sims["vote (equal weights)"], truth),
                 "cosine_to_true": np.nan, "weights": {n: round(1 / len(voters), 3) for n in voters}})
    return rows


def identify_roi_sets(test_responses: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray],
                      vote_method: str = "zscore", vote_over: Sequence[str] | None = None,
                      seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Identification through an encoder, per ROI set, plus the same votes as the decoder.

    Parameters
    ----------
    test_responses : {set name: (n_test, V_set)} measured held-out responses
    predicted : {set name: (n_test, V_set)} the encoder's predictions for the same
        test images (the candidates; query q's true candidate is q)
    vote_method, vote_over, seed : as :func:`decode_roi_sets`

    Returns
    -------
    metrics, similarities : as :func:`decode_roi_sets` (``cosine_to_true`` NaN)
    """
    if set(test_responses) != set(predicted) or not predicted:
        raise BrainVizDataError("predicted", "measured and predicted need the same, non-empty ROI sets")
    rows, sims = [], {}
    truth = None
    for name in test_responses:
        sims[name] = identify_by_encoder(test_responses[name], predicted[name])
        truth = np.arange(sims[name].shape[0])
        if sims[name].shape[0] != sims[name].shape[1]:
            raise BrainVizDataError("predicted", "need one prediction per test image (same order)")
        rows.append({"model": name, **decoding_metrics(sims[name], truth), "cosine_to_true": np.nan})
    rows += _vote_rows(sims, truth, vote_over, vote_method, seed)
    return pd.DataFrame(rows), sims


# ----------------------------------------------------------------------------------------
# identification through an encoder (responses are compared in voxel space)
# ----------------------------------------------------------------------------------------
def identify_by_encoder(measured, predicted) -> np.ndarray:
    """Identification scores: Pearson r of each measured response with the encoder's
    predicted response to each candidate image (Kay et al. 2008).

    Parameters
    ----------
    measured : (n_queries, V) measured held-out responses (one ROI set or whole cortex)
    predicted : (n_candidates, V) encoder predictions for the candidate images, same voxels

    Returns
    -------
    (n_queries, n_candidates) float64 correlations
    (:func:`brainviz.metrics.pattern_correlations`); feed to
    :func:`brainviz.metrics.retrieval_ranks`. Constant rows give 0.
    """
    return pattern_correlations(measured, predicted, undefined=0.0, names=("measured", "predicted"))


def _weight_grid(n_models: int, step: float) -> np.ndarray:
    """All non-negative weight vectors on the simplex with the given step (one-hots included)."""
    k = int(round(1 / step))
    out = []

    def rec(prefix, left, slots):
        if slots == 1:
            out.append(prefix + [left])
            return
        for i in range(left + 1):
            rec(prefix + [i], left - i, slots - 1)

    rec([], k, n_models)
    return np.asarray(out, dtype=np.float64) / k


@dataclass
class ValidatedVote:
    """Result of :func:`validated_vote`.

    score : (n_queries, n_candidates) combined score; query q's row uses weights
        chosen WITHOUT query q
    fold : (n_queries,) fold index of each query
    weights : (n_folds, n_models) weights chosen for each fold (rows sum to 1)
    names : the models' names, column order of ``weights``
    """

    score: np.ndarray
    fold: np.ndarray
    weights: np.ndarray
    names: list[str]


def validated_vote(similarities: Mapping[str, np.ndarray], true_index, n_folds: int = 2, method: str = "zscore",
                   step: float = 0.25, seed: int = 0) -> ValidatedVote:
    """Vote over models with weights chosen on held-out queries (cross-fitting).

    The queries are split at random into ``n_folds`` folds. For each fold, every
    weight vector of a simplex grid (step ``step``; includes each single model
    alone and equal weights) is scored on the OTHER folds' queries by mean
    rank of the true candidate (ties: higher top-1, then the earlier grid
    point); the best one is applied to this fold. So the weights never see the
    queries they are scored on, and since "the best single model alone" is one
    of the choices, the vote matches it whenever no mix is better on
    validation data.

    Parameters
    ----------
    similarities : {name: (n_queries, n_candidates)} scores over the same queries and candidates
    true_index : (n_queries,) index of each query's true candidate
    n_folds : >= 2
    method : see :func:`vote`
    step : grid step of the weights (1 / integer)
    seed : fold assignment

    Returns
    -------
    ValidatedVote
    """
    names = list(similarities)
    if not names:
        raise BrainVizDataError("similarities", "need at least one similarity matrix")
    mats = [np.asarray(similarities[n], dtype=np.float64) for n in names]
    truth = np.asarray(true_index, dtype=np.int64)
    n_q = mats[0].shape[0]
    if n_folds < 2 or n_folds > n_q:
        raise BrainVizDataError("n_folds", f"need 2 <= n_folds <= n_queries ({n_q}), got {n_folds}")
    if not 0 < step <= 1 or abs(1 / step - round(1 / step)) > 1e-9:
        raise BrainVizDataError("step", f"must be 1 / an integer, got {step}")
    # per-model standardized scores, so a weighted sum of them is the weighted vote
    unit = [vote([m], method=method) for m in mats]
    grid = _weight_grid(len(mats), step)
    fold = np.random.default_rng(seed).permutation(np.arange(n_q) % n_folds)
    score = np.zeros_like(mats[0])
    chosen = np.zeros((n_folds, len(mats)))
    for f in range(n_folds):
        val, held = fold != f, fold == f
        best, best_key = None, None
        for w in grid:
            s = sum(wi * u[val] for wi, u in zip(w, unit))
            r = retrieval_ranks(s, truth[val])
            key = (r.mean(), -np.mean(r <= 1))
            if best_key is None or key < best_key:
                best, best_key = w, key
        chosen[f] = best
        score[held] = sum(wi * u[held] for wi, u in zip(best, unit))
    return ValidatedVote(score=score, fold=fold, weights=chosen, names=names)
