"""Pair-dissimilarity model: predict the brain-RDM entry of an image pair from the
two images' embeddings (report 000), with its two lessons built in:

1. **No image leakage.** Images (not pairs) are split: training pairs are made
   only of training images and test pairs only of test images
   (:func:`split_images`, :func:`pairs_within`). Splitting *pairs* lets the model
   see every test image during training and inflates scores.
2. **Input symmetry.** d(a, b) = d(b, a) holds by construction: the pair
   features ``[a + b, |a - b|, a * b]`` are exactly symmetric in floating point,
   so ``predict(a, b) == predict(b, a)`` bit for bit.

A model is judged next to the zero-training baseline: the Spearman correlation,
on the same held-out pairs, between the brain RDM and the embedding's own RDM
(1 - Pearson between image embeddings).
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from .checks import as_matrix
from .errors import BrainVizDataError
from .metrics import pearson_per_vertex


def split_images(n_images: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random split of image indices (not pairs) into train and test.

    Parameters
    ----------
    n_images : int, >= 4
    test_fraction : float in (0, 1)
    seed : seed of ``numpy.random.default_rng``

    Returns
    -------
    train_idx, test_idx : sorted int64 arrays, disjoint, union = range(n_images),
        each with at least 2 images (so each has at least one pair).
    """
    if n_images < 4:
        raise BrainVizDataError("n_images", f"need at least 4 images, got {n_images}")
    if not 0 < test_fraction < 1:
        raise BrainVizDataError("test_fraction", f"must be in (0, 1), got {test_fraction}")
    n_test = int(np.clip(round(n_images * test_fraction), 2, n_images - 2))
    perm = np.random.default_rng(seed).permutation(n_images)
    return np.sort(perm[n_test:]).astype(np.int64), np.sort(perm[:n_test]).astype(np.int64)


def pairs_within(idx) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs (i < j) of the given image indices.

    Returns
    -------
    i, j : (len(idx) (len(idx) - 1) / 2,) int64 arrays of image indices.
    """
    idx = np.sort(np.asarray(idx, dtype=np.int64))
    a, b = np.triu_indices(len(idx), k=1)
    return idx[a], idx[b]


def pair_features(emb_a: np.ndarray, emb_b: np.ndarray, distances=None) -> np.ndarray:
    """Symmetric pair features.

    Parameters
    ----------
    emb_a, emb_b : (n_pairs, d) embeddings of the two images of each pair
    distances : (n_pairs, m) optional symmetric scalar features appended as-is
        (e.g. the embedding distance of the pair)

    Returns
    -------
    (n_pairs, 3 d [+ m]) ``[a + b, |a - b|, a * b (, distances)]``; exactly
    equal when a and b are swapped (IEEE addition and multiplication commute).
    """
    parts = [emb_a + emb_b, np.abs(emb_a - emb_b), emb_a * emb_b]
    if distances is not None:
        parts.append(np.asarray(distances, dtype=np.float64).reshape(len(emb_a), -1))
    return np.concatenate(parts, axis=1)


def _corr_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """(n_pairs,) 1 - Pearson r between the two raw embeddings of each pair
    (the zero-training baseline's dissimilarity); symmetric."""
    corr = pearson_per_vertex(emb_a.T, emb_b.T)  # column j of the transposes = pair j
    return 1.0 - np.where(np.isnan(corr), 0.0, corr)


def _square(rdm, n: int, where: str) -> np.ndarray:
    r = np.asarray(rdm, dtype=np.float64)
    if r.shape != (n, n):
        raise BrainVizDataError(where, f"expected a square ({n}, {n}) RDM matching the embeddings, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise BrainVizDataError(where, "RDM contains NaN or infinite values")
    return r


class PairDissimilarityModel(BaseEstimator, RegressorMixin):
    """Predict dissimilarity(image a, image b) from the two image embeddings.

    Pipeline (everything fitted on training images / their pairs only):
    StandardScaler + PCA of the image embeddings (``n_components``) -> symmetric
    pair features ``[a + b, |a - b|, a * b, d_corr, d_pca]`` (d_corr = 1 - Pearson
    of the raw embeddings, i.e. the zero-training baseline; d_pca = Euclidean
    distance in PCA space) -> StandardScaler -> Ridge (``estimator="ridge"``) or
    MLPRegressor (``estimator="mlp"``).

    The ridge penalty is chosen by **image-grouped** K-fold CV: each fold
    validates on the pairs among held-out training images, fitting on pairs of
    the remaining images. (Per-pair leave-one-out, as RidgeCV does, leaks images
    across folds and picks too small a penalty -- the lesson of report 000.)

    Parameters
    ----------
    n_components : int, PCA dimensions per image (capped at n_train_images - 1).
    estimator : "ridge" or "mlp"
    alphas : ridge penalties tried.
    cv_folds : folds of the image-grouped CV (ridge).
    hidden_layer_sizes, max_iter : MLP settings (early stopping on 10 % of pairs).
    max_pairs : int or None; train on at most this many random pairs.
    random_state : int, seed for folds, pair subsampling and the MLP.

    Attributes (after fit)
    ----------------------
    alpha_ : chosen ridge penalty; cv_scores_ : (len(alphas),) mean held-out R2;
    n_train_pairs_ : pairs used in the final fit.
    """

    def __init__(self, n_components: int = 32, estimator: str = "ridge",
                 alphas=tuple(np.logspace(-1, 6, 15)), cv_folds: int = 4, hidden_layer_sizes=(256, 64),
                 max_iter: int = 200, max_pairs: int | None = 200_000, random_state: int = 0):
        self.n_components = n_components
        self.estimator = estimator
        self.alphas = alphas
        self.cv_folds = cv_folds
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_iter = max_iter
        self.max_pairs = max_pairs
        self.random_state = random_state

    # -- helpers --------------------------------------------------------------------
    def _check_emb(self, emb, where: str) -> np.ndarray:
        e = as_matrix(emb, where)
        if e.shape[1] != self.n_features_in_:
            raise BrainVizDataError(where, f"expected (n, {self.n_features_in_}), got {e.shape}")
        return e

    def _features(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        """(n_pairs, 3 k + 2) raw (unscaled) pair features of raw embeddings."""
        za = self.pca_.transform(self.scaler_.transform(ea))
        zb = self.pca_.transform(self.scaler_.transform(eb))
        dist = np.stack([_corr_distance(ea, eb), np.linalg.norm(za - zb, axis=1)], axis=1)
        return pair_features(za, zb, dist)

    def _pairs(self, idx: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        i, j = pairs_within(idx)
        if self.max_pairs is not None and len(i) > self.max_pairs:
            pick = np.sort(rng.choice(len(i), self.max_pairs, replace=False))
            i, j = i[pick], j[pick]
        return i, j

    def _select_alpha(self, x_all, i, j, y, n) -> float:
        alphas = np.asarray(self.alphas, dtype=float)
        if len(alphas) == 1 or self.cv_folds < 2 or n < 2 * self.cv_folds:
            self.cv_scores_ = np.full(len(alphas), np.nan)
            return float(alphas[0]) if len(alphas) == 1 else float(np.median(alphas))
        fold = np.random.default_rng(self.random_state).permutation(n) % self.cv_folds
        scores = np.zeros(len(alphas))
        for f in range(self.cv_folds):
            tr = (fold[i] != f) & (fold[j] != f)
            va = (fold[i] == f) & (fold[j] == f)
            if tr.sum() < 2 or va.sum() < 2:
                continue
            sc = StandardScaler().fit(x_all[tr])
            xt, xv = sc.transform(x_all[tr]), sc.transform(x_all[va])
            for a, alpha in enumerate(alphas):
                scores[a] += r2_score(y[va], Ridge(alpha=alpha).fit(xt, y[tr]).predict(xv))
        self.cv_scores_ = scores / self.cv_folds
        return float(alphas[int(np.argmax(self.cv_scores_))])

    def fit(self, emb_train, rdm_train):
        """Fit on the pairs of the training images.

        Parameters
        ----------
        emb_train : (n_train, D) image embeddings
        rdm_train : (n_train, n_train) brain RDM restricted to those images
            (e.g. ``rdm[np.ix_(train_idx, train_idx)]``)
        """
        e = as_matrix(emb_train, "emb_train")
        if e.shape[0] < 3:
            raise BrainVizDataError("emb_train", f"expected (n_train >= 3, D), got {e.shape}")
        if self.estimator not in ("ridge", "mlp"):
            raise BrainVizDataError("estimator", f"use 'ridge' or 'mlp', got {self.estimator!r}")
        n = e.shape[0]
        r = _square(rdm_train, n, "rdm_train")
        self.n_features_in_ = e.shape[1]
        self.scaler_ = StandardScaler().fit(e)
        k = int(min(self.n_components, n - 1, e.shape[1]))
        self.pca_ = PCA(n_components=k, random_state=self.random_state).fit(self.scaler_.transform(e))
        i, j = self._pairs(np.arange(n), np.random.default_rng(self.random_state))
        x = self._features(e[i], e[j])
        y = r[i, j]
        if self.estimator == "ridge":
            self.alpha_ = self._select_alpha(x, i, j, y, n)
            self.pair_scaler_ = StandardScaler().fit(x)
            self.model_ = Ridge(alpha=self.alpha_).fit(self.pair_scaler_.transform(x), y)
        else:
            self.pair_scaler_ = StandardScaler().fit(x)
            self.model_ = MLPRegressor(hidden_layer_sizes=self.hidden_layer_sizes, max_iter=self.max_iter,
                                       early_stopping=True, random_state=self.random_state)
            self.model_.fit(self.pair_scaler_.transform(x), y)
        self.n_train_pairs_ = len(y)
        return self

    def predict_pairs(self, emb_a, emb_b) -> np.ndarray:
        """Predicted dissimilarity of each pair.

        Parameters
        ----------
        emb_a, emb_b : (n_pairs, D) embeddings of the first / second image of each pair

        Returns
        -------
        (n_pairs,) float64; ``predict_pairs(a, b) == predict_pairs(b, a)`` exactly.
        """
        ea, eb = self._check_emb(emb_a, "emb_a"), self._check_emb(emb_b, "emb_b")
        if ea.shape != eb.shape:
            raise BrainVizDataError("embeddings", f"pair sides differ in shape: {ea.shape} vs {eb.shape}")
        return self.model_.predict(self.pair_scaler_.transform(self._features(ea, eb)))

    def predict(self, emb) -> np.ndarray:
        """Predicted RDM among a set of images.

        Parameters
        ----------
        emb : (n, D) image embeddings

        Returns
        -------
        (n, n) float64 square RDM, symmetric, zero diagonal.
        """
        e = self._check_emb(emb, "emb")
        n = e.shape[0]
        i, j = pairs_within(np.arange(n))
        out = np.zeros((n, n))
        if len(i):
            v = self.predict_pairs(e[i], e[j])
            out[i, j] = v
            out[j, i] = v
        return out


def evaluate_pair_model(model: PairDissimilarityModel, emb, brain_rdm, test_idx,
                        feature_rdm=None) -> dict:
    """Held-out evaluation on the pairs among the test images only.

    Parameters
    ----------
    model : a fitted PairDissimilarityModel (fitted on images disjoint from ``test_idx``)
    emb : (n_images, D) embeddings of all images
    brain_rdm : (n_images, n_images) brain RDM
    test_idx : test image indices
    feature_rdm : (n_images, n_images), optional; the zero-training baseline
        RDM (default: 1 - Pearson between the embeddings).

    Returns
    -------
    dict: ``r2`` and ``spearman`` of the predictions on the test pairs,
    ``baseline_spearman`` (feature RDM vs brain RDM on the same pairs),
    ``n_test_images``, ``n_test_pairs``.
    """
    from .rsa import rdm as compute_rdm

    e = np.asarray(emb, dtype=np.float64)
    brain = _square(brain_rdm, e.shape[0], "brain_rdm")
    test_idx = np.asarray(test_idx, dtype=np.int64)
    i, j = pairs_within(test_idx)
    if len(i) < 2:
        raise BrainVizDataError("test_idx", "need at least 3 test images")
    feat = compute_rdm(e, "correlation", dtype=np.float64) if feature_rdm is None else \
        _square(feature_rdm, e.shape[0], "feature_rdm")
    y = brain[i, j]
    pred = model.predict_pairs(e[i], e[j])
    return {
        "r2": float(r2_score(y, pred)),
        "spearman": float(stats.spearmanr(pred, y).statistic),
        "baseline_spearman": float(stats.spearmanr(feat[i, j], y).statistic),
        "n_test_images": int(len(test_idx)),
        "n_test_pairs": int(len(i)),
    }


def run_pair_experiment(emb, brain_rdm, test_fraction: float = 0.2, seed: int = 0, **model_kwargs) -> dict:
    """Split images, fit a :class:`PairDissimilarityModel` on the training images'
    pairs, evaluate on the test images' pairs (:func:`evaluate_pair_model`).

    Parameters
    ----------
    emb : (n_images, D) embeddings; brain_rdm : (n_images, n_images)

    Returns
    -------
    dict of :func:`evaluate_pair_model` plus ``n_train_images``, ``n_train_pairs``, ``seed``.
    """
    e = np.asarray(emb, dtype=np.float64)
    brain = _square(brain_rdm, e.shape[0], "brain_rdm")
    train_idx, test_idx = split_images(e.shape[0], test_fraction, seed)
    model = PairDissimilarityModel(random_state=seed, **model_kwargs)
    model.fit(e[train_idx], brain[np.ix_(train_idx, train_idx)])
    out = evaluate_pair_model(model, e, brain, test_idx)
    out.update(n_train_images=int(len(train_idx)), n_train_pairs=int(model.n_train_pairs_), seed=seed)
    return out
