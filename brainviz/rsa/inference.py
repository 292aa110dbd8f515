"""Inference on RDMs (rsatoolbox's ``inference`` part): the image-label permutation test,
noise ceilings that match the comparison, the RSA table of the 92-image set, the
network-depth sweep, and a cross-validated weighted mix of layers.

Two kinds of noise ceiling, never to be mixed up (``CEILING_KINDS``):

* ``"between-subject (Nili)"`` -- :func:`rdm_noise_ceiling`: bounds on the
  mean RSA of ONE model RDM compared with EVERY subject's RDM (Nili et al. 2014).
  It applies to a network layer or a reference model scored against a group.
* ``"within-subject (split-half)"`` -- :func:`within_subject_ceiling`: how well the
  (unknown) noise-free RDM of ONE subject could correlate with that subject's
  measured, repeat-averaged RDM, from the reliability of RDMs computed from
  independent repeats, Spearman-Brown corrected to all repeats. It applies to
  subject-specific comparisons (a subject's measured RDM vs the RDM of that
  subject's own predicted responses).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import BrainVizDataError
from ..jobs import run_jobs
from ..metrics import zscore
from .calc import as_square, upper_triangle
from .compare import _check_method, _compare_vectors, kendall_tau_a

CEILING_KINDS = ("between-subject (Nili)", "within-subject (split-half)")


# ----------------------------------------------------------------------------------------
# permutation test and between-subject (Nili) ceiling
# ----------------------------------------------------------------------------------------
@dataclass
class PermutationResult:
    """Result of :func:`rsa_permutation_test`.

    statistic : observed RSA value (mean over the ``rdm_b`` stack when one is given)
    p_value : (1 + #{null >= statistic}) / (1 + n_perm), one-sided (greater)
    null : (n_perm,) statistic under random image relabelling of ``rdm_a``
    """

    statistic: float
    p_value: float
    null: np.ndarray


def rsa_permutation_test(rdm_a, rdm_b, n_perm: int = 1000, seed: int = 0,
                         method: str = "spearman") -> PermutationResult:
    """Image-label permutation test of RSA (Kriegeskorte et al. 2008; Nili et al. 2014).

    The null distribution relabels the images of ``rdm_a`` (rows and columns
    permuted together), which keeps the RDM's structure but breaks its
    correspondence with ``rdm_b``.

    Parameters
    ----------
    rdm_a : (n, n) square or condensed RDM (e.g. a model)
    rdm_b : (n, n) / condensed RDM, or a stack (m, n, n) / (m, n (n - 1) / 2)
        (e.g. the subjects' RDMs); with a stack the statistic is the mean RSA
        over the stack.
    n_perm : number of permutations
    seed : seed of ``numpy.random.default_rng``
    method : see :func:`rsa`

    Returns
    -------
    PermutationResult
    """
    _check_method(method)
    sq_a = as_square(rdm_a)
    n = sq_a.shape[0]
    b = np.asarray(rdm_b, dtype=np.float64)
    if b.ndim == 1 or (b.ndim == 2 and b.shape == (n, n)):
        b = b[None]
    stack = np.stack([upper_triangle(x) for x in b])
    if stack.shape[1] != n * (n - 1) // 2:
        raise BrainVizDataError("rdm_b", f"does not match rdm_a's {n} images (shape {b.shape})")
    if n_perm < 1:
        raise BrainVizDataError("n_perm", f"must be >= 1, got {n_perm}")
    iu = np.triu_indices(n, k=1)
    vec_a = sq_a[iu]
    if not np.all(np.isfinite(vec_a)):
        raise BrainVizDataError("rdm_a", "RDM contains NaN or infinite values")
    if np.ptp(vec_a) == 0 or any(np.ptp(v) == 0 for v in stack):  # a constant RDM: its RSA is undefined
        return PermutationResult(statistic=float("nan"), p_value=float("nan"), null=np.full(n_perm, np.nan))
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(n_perm)])

    if method == "kendall_tau_a":
        def stat(v):
            return float(np.mean([kendall_tau_a(v, s) for s in stack]))

        observed = stat(vec_a)
        null = np.array([stat(sq_a[np.ix_(p, p)][iu]) for p in perms])
    else:
        # Pearson of (ranked) vectors: relabelling only reorders the entries of a,
        # so its mean / sd are unchanged and r = mean(z_a * z_b); average over the stack.
        if method == "spearman":
            ranked = np.zeros((n, n))
            ranked[iu] = stats.rankdata(vec_a)
            ranked = ranked + ranked.T
            target = zscore(np.stack([stats.rankdata(s) for s in stack]), axis=-1).mean(axis=0)
        else:
            ranked = sq_a
            target = zscore(stack, axis=-1).mean(axis=0)
        za = zscore(ranked[iu], axis=-1)
        observed = float(np.mean(za * target))
        null = np.empty(n_perm)
        for k0 in range(0, n_perm, 256):
            p = perms[k0:k0 + 256]
            v = ranked[p[:, :, None], p[:, None, :]][:, iu[0], iu[1]]
            null[k0:k0 + len(p)] = (zscore(v, axis=-1) * target).mean(axis=1)
    p_value = (1.0 + np.sum(null >= observed - 1e-12)) / (1.0 + n_perm)
    return PermutationResult(statistic=observed, p_value=float(p_value), null=null)


def _pool(vectors: np.ndarray, method: str) -> np.ndarray:
    """Group RDM maximizing the given comparison (as rsatoolbox.util.pooling.pool_rdm):
    mean of ranks for rank methods, mean of z-scored vectors for Pearson."""
    if method == "pearson":
        return zscore(vectors, axis=-1).mean(axis=0)
    return np.stack([stats.rankdata(v) for v in vectors]).mean(axis=0)


def rdm_noise_ceiling(rdms, method: str = "spearman") -> tuple[float, float]:
    """Noise ceiling of RSA for a group of subject RDMs (Nili et al. 2014).

    Parameters
    ----------
    rdms : (n_subjects, n, n) square or (n_subjects, n (n - 1) / 2) condensed RDMs
    method : see :func:`rsa`

    Returns
    -------
    lower, upper : float
        upper = mean over subjects of rsa(subject, pooled RDM of ALL subjects)
        (overfits: the subject is in its own reference); lower = mean over
        subjects of rsa(subject, pooled RDM of the OTHER subjects) (leave one
        out). Pooling = mean of ranks for rank methods, of z-scores for Pearson,
        as rsatoolbox.inference.boot_noise_ceiling, with which this agrees.
    """
    _check_method(method)
    a = np.asarray(rdms, dtype=np.float64)
    if a.ndim not in (2, 3) or a.shape[0] < 2:
        raise BrainVizDataError("rdms", f"need a stack of >= 2 RDMs (n_subjects, n, n), got shape {a.shape}")
    vectors = np.stack([upper_triangle(x) for x in a])
    upper = [_compare_vectors(_pool(vectors, method), v, method) for v in vectors]
    lower = [_compare_vectors(_pool(np.delete(vectors, s, axis=0), method), vectors[s], method)
             for s in range(len(vectors))]
    return float(np.mean(lower)), float(np.mean(upper))


# ----------------------------------------------------------------------------------------
# the real 92-image analysis
# ----------------------------------------------------------------------------------------
def k92_rsa_table(model_rdms: Mapping[str, np.ndarray], human_it, method: str = "kendall_tau_a",
                  subjects: Sequence[str] | None = None, n_perm: int = 1000,
                  seed: int = 0, n_jobs: int = 1) -> pd.DataFrame:
    """RSA of candidate RDMs against the human IT RDMs of the 92-image set.

    Parameters
    ----------
    model_rdms : {name: (92, 92) RDM}
        Candidate representations (reference models, network layers...).
    human_it : (n_rdms, 92, 92)
        Human IT RDMs (``K92.human_it``: 4 subjects x 2 sessions).
    method : "kendall_tau_a" (default; Nili et al. 2014, fair to categorical
        models) or "spearman" / "pearson".
    subjects : (n_rdms,) subject labels, optional
        When given (``K92.human_it_subjects``), RDMs of the same subject are
        averaged first and the units of the analysis are subjects (4); else
        each RDM is a unit (8; then two sessions of one subject sit in each
        leave-one-out reference, which lifts the lower noise bound).
    n_perm, seed : image-label permutation test (:func:`rsa_permutation_test`)
        of the mean-over-units statistic.
    n_jobs : models scored side by side in threads (:func:`brainviz.jobs.run_jobs`; the
        Kendall tau-a permutations are numpy sorts, which release the GIL); same result.

    Returns
    -------
    DataFrame, one row per model in input order, columns:
    ``model``; ``method``; ``rsa`` (mean over units of rsa(model, unit));
    ``rsa_sem`` (standard error over units); ``rsa_group`` (rsa with the pooled
    group RDM: mean of ranks / z-scores); ``rsa_mean`` (rsa with the plain mean of
    the units' RDMs, the "subject-mean RDM"; the Nili bounds do NOT apply to
    these two group comparisons); ``per_unit`` (list, rsa with each unit); ``p_value`` (permutation, one-sided); ``nc_lower``, ``nc_upper``
    (:func:`rdm_noise_ceiling` of the units, same for every row); ``n_units``.
    """
    _check_method(method)
    h = np.asarray(human_it, dtype=np.float64)
    if h.ndim != 3 or h.shape[1] != h.shape[2]:
        raise BrainVizDataError("human_it", f"expected (n_rdms, n, n), got shape {h.shape}")
    if subjects is not None:
        subjects = np.asarray(subjects)
        if subjects.shape != (h.shape[0],):
            raise BrainVizDataError("subjects", f"need one label per RDM ({h.shape[0]}), got {subjects.shape}")
        h = np.stack([h[subjects == s].mean(axis=0) for s in dict.fromkeys(subjects.tolist())])
    units = np.stack([upper_triangle(x) for x in h])
    lower, upper = rdm_noise_ceiling(units, method)
    group = _pool(units, method)
    plain_mean = units.mean(axis=0)

    def score(name: str, model) -> dict:
        m = np.asarray(model, dtype=np.float64)
        if as_square(m).shape != h.shape[1:]:
            raise BrainVizDataError(f"model_rdms[{name!r}]", f"expected {h.shape[1:]}, got {m.shape}")
        vm = upper_triangle(m)
        per_unit = np.array([_compare_vectors(vm, u, method) for u in units])
        test = rsa_permutation_test(m, units, n_perm=n_perm, seed=seed, method=method)
        return {
            "model": name, "method": method, "rsa": float(per_unit.mean()),
            "rsa_sem": float(per_unit.std(ddof=1) / np.sqrt(len(per_unit))) if len(per_unit) > 1 else np.nan,
            "rsa_group": _compare_vectors(vm, group, method), "rsa_mean": _compare_vectors(vm, plain_mean, method),
            "per_unit": per_unit.tolist(), "p_value": test.p_value,
            "nc_lower": lower, "nc_upper": upper, "n_units": len(units),
        }

    rows = list(run_jobs([(name, lambda name=name, model=model: score(name, model))
                          for name, model in model_rdms.items()], n_jobs, describe=False).values())
    return pd.DataFrame(rows, columns=["model", "method", "rsa", "rsa_sem", "rsa_group", "rsa_mean", "per_unit",
                                       "p_value", "nc_lower", "nc_upper", "n_units"])



@dataclass
class WithinSubjectCeiling:
    """Result of :func:`within_subject_ceiling`.

    r_single : mean RSA between RDMs of single repeats (over all repeat pairs)
    reliability : Spearman-Brown prediction of the RSA between two independent
        RDMs each averaged over ``n_repeats`` repeats: K r / (1 + (K - 1) r)
    ceiling : sqrt(max(reliability, 0)), the expected RSA of the noise-free RDM
        with the measured K-repeat RDM (correction for attenuation); the most a
        subject-specific model can reach
    n_repeats : K

    The Spearman-Brown step assumes RDM noise averages like pattern noise; for
    1 - Pearson RDMs of averaged patterns it does slightly better, so the
    ceiling is conservative at low SNR (synthetic check, 3 repeats: 0.79 vs a
    true 0.83 at single-repeat RDM reliability ~0.4; tests/brainviz/rsa/test_rsa_ceilings.py).
    kind : ``"within-subject (split-half)"``
    """

    r_single: float
    reliability: float
    ceiling: float
    n_repeats: int
    kind: str = CEILING_KINDS[1]


def spearman_brown(r: float, factor: float) -> float:
    """Reliability of a measure ``factor`` times longer: f r / (1 + (f - 1) r)."""
    return float(factor * r / (1 + (factor - 1) * r))


def within_subject_ceiling(repeat_rdms, method: str = "spearman") -> WithinSubjectCeiling:
    """Within-subject noise ceiling from the RDMs of independent repeats of ONE subject.

    Parameters
    ----------
    repeat_rdms : (n_repeats, n, n) square or (n_repeats, n (n - 1) / 2) condensed
        RDMs, each from one repeat / session / split-half of the same images
        (e.g. :func:`brainviz.rsa.calc.repeat_rdms`, or the two session RDMs of a
        92-image subject).
    method : "spearman" or "pearson" (the attenuation correction is exact for
        Pearson and close for Spearman; not defined for Kendall tau-a).

    Returns
    -------
    WithinSubjectCeiling
    """
    _check_method(method)
    if method == "kendall_tau_a":
        raise BrainVizDataError("method", "the split-half ceiling uses Spearman or Pearson, not Kendall tau-a")
    a = np.asarray(repeat_rdms, dtype=np.float64)
    if a.ndim not in (2, 3) or a.shape[0] < 2:
        raise BrainVizDataError("repeat_rdms", f"need >= 2 RDMs of independent repeats, got shape {a.shape}")
    vec = np.stack([upper_triangle(x) for x in a])
    k = len(vec)
    r1 = float(np.mean([_compare_vectors(vec[i], vec[j], method) for i, j in combinations(range(k), 2)]))
    rel = spearman_brown(r1, k)
    return WithinSubjectCeiling(r_single=r1, reliability=rel, ceiling=float(np.sqrt(max(rel, 0.0))), n_repeats=k)


def layer_sweep(model_rdms: Mapping[str, np.ndarray], human_rdms, subjects: Sequence[str] | None = None,
                methods: Sequence[str] = ("kendall_tau_a", "spearman"), depth: Mapping[str, float] | None = None,
                n_perm: int = 1000, seed: int = 0, n_jobs: int = 1) -> pd.DataFrame:
    """RSA of every layer (and reference model) with a group of subject RDMs, for several methods.

    Parameters
    ----------
    model_rdms : {name: (n, n) RDM}, e.g. :func:`brainviz.rsa.calc.block_rdms`
    human_rdms : (n_rdms, n, n), e.g. ``K92.human_it`` (4 subjects x 2 sessions)
    subjects : (n_rdms,) subject labels; sessions of a subject are averaged first
    methods : RSA methods (see :func:`rsa`)
    depth : {name: relative depth in [0, 1]} for network layers (NaN for others)
    n_perm, seed : image-label permutation test of the mean-over-subjects statistic
    n_jobs : models scored side by side (see :func:`k92_rsa_table`)

    Returns
    -------
    DataFrame, one row per (model, method): the columns of
    :func:`k92_rsa_table` (``rsa`` mean over subjects, ``rsa_sem``,
    ``rsa_group`` vs the rank-pooled group RDM, ``rsa_mean`` vs the plain
    subject-mean RDM, ``p_value``, ``nc_lower``, ``nc_upper``: between-subject
    Nili bounds of the SAME statistic) plus ``depth`` and ``per_subject`` (list).
    """
    frames = []
    for m in methods:
        t = k92_rsa_table(model_rdms, human_rdms, method=m, subjects=subjects, n_perm=n_perm, seed=seed,
                          n_jobs=n_jobs)
        t["depth"] = [float(depth[n]) if depth is not None and n in depth else np.nan for n in t.model]
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def _nnls_weights(layer_vecs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative least squares weights of mean-removed layer RDM vectors (L, m) for a
    mean-removed target (m,) (what rsatoolbox's fit_regress_nn does for 'corr')."""
    from scipy.optimize import nnls

    a = (layer_vecs - layer_vecs.mean(axis=1, keepdims=True)).T
    a = a / np.maximum(np.linalg.norm(a, axis=0, keepdims=True), 1e-12)  # scale-free layers
    w, _ = nnls(a, target - target.mean())
    return w / np.maximum(np.linalg.norm(layer_vecs - layer_vecs.mean(axis=1, keepdims=True), axis=1), 1e-12)


@dataclass
class LayerMixResult:
    """Result of :func:`fit_layer_mix`.

    folds : DataFrame (repeat, fold, model, method, value, nc_lower, nc_upper): the
        held-out score of each model on each test fold (test images x test
        subjects) and the Nili bounds of those test images
    summary : DataFrame (model, method, value, value_sem, nc_lower, nc_upper,
        reaches_lower, n_folds): means over folds (SEM over folds; folds overlap
        in their training data, so it is optimistic)
    weights : Series, the layer weights fitted on ALL images and subjects (for display)
    """

    folds: pd.DataFrame
    summary: pd.DataFrame
    weights: pd.Series


def fit_layer_mix(layer_rdms: Mapping[str, np.ndarray], subject_rdms, method: str = "kendall_tau_a",
                  k_pattern: int = 3, k_rdm: int = 2, n_repeats: int = 5, seed: int = 0) -> LayerMixResult:
    """Cross-validated weighted mix of layer RDMs ("mixed and reweighted" models).

    The scheme of rsatoolbox's ``inference.sets_k_fold`` + ``crossval`` with a
    ``ModelWeighted`` fitted by non-negative least squares (``fit_regress_nn``,
    'corr') and a ``ModelSelect``, written out here with this module's fast
    comparisons (rsatoolbox's own ``crossval`` with Kendall tau-a took > 10 min on
    the 92-image set on a 2-core machine). Images are split into ``k_pattern``
    folds and subjects into ``k_rdm`` folds; for each pair of folds the models
    are fitted on the pairs among TRAINING images of TRAINING subjects and
    scored only on pairs among HELD-OUT images of HELD-OUT subjects (mean over
    those subjects). Models: ``mix of all layers (fitted)`` (NNLS weights on
    the training subjects' mean RDM), ``best layer (chosen on training folds)``
    (highest mean training score) and each layer alone (no fitting). The
    ceiling of each fold is the between-subject (Nili) bound of the held-out
    images (:func:`rdm_noise_ceiling` of all subjects restricted to
    those images, as rsatoolbox's ``crossval`` computes it). Repeated with
    ``n_repeats`` random fold assignments.

    Parameters
    ----------
    layer_rdms : {name: (n, n) RDM}
    subject_rdms : (n_subjects, n, n) (sessions already averaged)
    method : "kendall_tau_a", "spearman" or "pearson" (evaluation statistic)
    k_pattern, k_rdm : folds over images and over subjects
    n_repeats : random fold assignments
    seed : seed of numpy.random.default_rng for the folds

    Returns
    -------
    LayerMixResult
    """
    _check_method(method)
    names = list(layer_rdms)
    if len(names) < 2:
        raise BrainVizDataError("layer_rdms", "need at least 2 layer RDMs to mix")
    subj = np.stack([as_square(x) for x in np.asarray(subject_rdms, dtype=np.float64)])
    if subj.ndim != 3 or subj.shape[0] < k_rdm or k_rdm < 2:
        raise BrainVizDataError("subject_rdms", f"need (n_subjects >= k_rdm >= 2, n, n), got shape {subj.shape}")
    n = subj.shape[1]
    if n < 3 * k_pattern:
        raise BrainVizDataError("subject_rdms", f"{n} images are too few for {k_pattern} image folds")
    layers = np.stack([as_square(layer_rdms[k]) for k in names])
    if layers.shape[1:] != (n, n):
        raise BrainVizDataError("layer_rdms", f"every layer RDM must be {n} x {n}")

    def vecs(stack, idx):
        sub = stack[:, idx][:, :, idx]
        iu = np.triu_indices(len(idx), 1)
        return sub[:, iu[0], iu[1]]

    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(n_repeats):
        img_fold = rng.permutation(np.arange(n) % k_pattern)
        sub_fold = rng.permutation(np.arange(len(subj)) % k_rdm)
        f = 0
        for fi in range(k_pattern):
            tr_i, te_i = np.nonzero(img_fold != fi)[0], np.nonzero(img_fold == fi)[0]
            l_tr, l_te = vecs(layers, tr_i), vecs(layers, te_i)
            lower, upper = rdm_noise_ceiling(vecs(subj, te_i), method)
            for fs in range(k_rdm):
                s_tr, s_te = np.nonzero(sub_fold != fs)[0], np.nonzero(sub_fold == fs)[0]
                d_tr, d_te = vecs(subj[s_tr], tr_i), vecs(subj[s_te], te_i)
                w = _nnls_weights(l_tr, d_tr.mean(axis=0))
                train_score = [np.mean([_compare_vectors(l, d, method) for d in d_tr]) for l in l_tr]
                preds = {"mix of all layers (fitted)": w @ l_te,
                         "best layer (chosen on training folds)": l_te[int(np.argmax(train_score))]}
                preds.update({f"layer: {k}": l_te[j] for j, k in enumerate(names)})
                for model, pv in preds.items():
                    val = (np.mean([_compare_vectors(pv, d, method) for d in d_te])
                           if np.ptp(pv) > 0 else 0.0)
                    rows.append(dict(repeat=rep, fold=f, model=model, method=method, value=float(val),
                                     nc_lower=float(lower), nc_upper=float(upper)))
                f += 1
    folds = pd.DataFrame(rows)
    g = folds.groupby("model", sort=False)
    summary = pd.DataFrame({
        "value": g.value.mean(), "value_sem": g.value.std(ddof=1) / np.sqrt(g.size()),
        "nc_lower": g.nc_lower.mean(), "nc_upper": g.nc_upper.mean(), "n_folds": g.size()}).reset_index()
    summary.insert(1, "method", method)
    summary["reaches_lower"] = summary.value >= summary.nc_lower
    all_i = np.arange(n)
    w = _nnls_weights(vecs(layers, all_i), vecs(subj, all_i).mean(axis=0))
    weights = pd.Series(w / w.sum() if w.sum() > 0 else w, index=names, name="weight")
    return LayerMixResult(folds=folds, summary=summary, weights=weights)
