"""RDM analyses beyond :mod:`brainviz.rdm`, split as rsatoolbox splits them.

* :mod:`brainviz.rsa.calc` -- RDMs from repeated measurements: per-repeat RDMs and
  cross-validated (unbiased) distances.
* :mod:`brainviz.rsa.inference` -- noise ceilings that match the comparison
  (within-subject split-half reliability vs the between-subject Nili ceiling),
  the network-depth sweep against a group of subject RDMs, and the
  cross-validated weighted mix of layer RDMs (rsatoolbox ``ModelWeighted`` +
  ``crossval``).

Comparisons (Spearman, Kendall tau-a, Pearson) are :func:`brainviz.rdm.rsa`.
"""
from .calc import crossvalidated_rdm, repeat_rdms
from .inference import (CEILING_KINDS, WithinSubjectCeiling, fit_layer_mix, layer_sweep,
                        within_subject_ceiling)

__all__ = ["CEILING_KINDS", "WithinSubjectCeiling", "crossvalidated_rdm", "fit_layer_mix", "layer_sweep",
           "repeat_rdms", "within_subject_ceiling"]
