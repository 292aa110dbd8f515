"""Representational similarity analysis, split as rsatoolbox splits it.

* :mod:`brainviz.rsa.calc` -- computing RDMs: blockwise RDMs of responses (1 - Pearson,
  Euclidean), extreme pairs, square / condensed forms, per-layer RDMs of a feature set,
  per-repeat and cross-validated (unbiased) RDMs from repeated measurements.
* :mod:`brainviz.rsa.compare` -- comparing RDMs: Spearman, Kendall tau-a, Pearson (:func:`rsa`).
* :mod:`brainviz.rsa.inference` -- the image-label permutation test, noise ceilings that
  match the comparison (within-subject split-half reliability vs the between-subject Nili
  ceiling), the 92-image RSA table, the network-depth sweep against a group of subject RDMs,
  and the cross-validated weighted mix of layer RDMs (rsatoolbox ``ModelWeighted`` + ``crossval``).

Every public name is re-exported here: ``from brainviz import rsa; rsa.rdm(...)``.
"""
from .calc import (CV_METRICS, EXTREME_KINDS, METRICS, as_square, block_rdms, crossvalidated_rdm, extreme_pairs,
                   extreme_pairs_from_rdm, feature_rdms, iter_rdm_blocks, rdm, repeat_rdms, upper_triangle)
from .compare import RSA_METHODS, kendall_tau_a, rsa
from .inference import (CEILING_KINDS, LayerMixResult, PermutationResult, WithinSubjectCeiling, fit_layer_mix,
                        k92_rsa_table, layer_sweep, rdm_noise_ceiling, rsa_permutation_test, spearman_brown,
                        within_subject_ceiling)

__all__ = [
    "CEILING_KINDS", "CV_METRICS", "EXTREME_KINDS", "LayerMixResult", "METRICS", "PermutationResult", "RSA_METHODS",
    "WithinSubjectCeiling", "as_square", "block_rdms", "crossvalidated_rdm", "extreme_pairs", "extreme_pairs_from_rdm",
    "feature_rdms", "fit_layer_mix", "iter_rdm_blocks", "k92_rsa_table", "kendall_tau_a", "layer_sweep", "rdm",
    "rdm_noise_ceiling", "repeat_rdms", "rsa", "rsa_permutation_test", "spearman_brown", "upper_triangle",
    "within_subject_ceiling",
]
