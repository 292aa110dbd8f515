"""The analyses' policy in one object: :class:`AnalysisSettings` (frozen).

Every number an analysis decides with (which vertices are reliable, how k is chosen, how the response
profiles are built, how many top images and extreme pairs are kept ...) is a field here, not a module
constant; the analyses of :mod:`brainviz.pipeline.analyses` take it as an argument, and the store keeps its
numeric fields in table ``analysis_settings`` (one row per number; a sequence field has one row per element,
``position`` 0, 1, ...; a single number has ``position`` NULL), so a page that states the policy ("the largest k
whose stability is at least 0.75") reads the number the run used (:meth:`brainviz.store.reader.Store.analysis_settings`).
The name fields (default scope and profile, ROI sets) are not numbers: the stored results carry them
(``cluster_variants.is_default``, ``rdms.roi``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

import pandas as pd

__all__ = ["AnalysisSettings", "NUMERIC_FIELDS"]


@dataclass(frozen=True)
class AnalysisSettings:
    """The analyses' policy (defaults: the choices made on the demo brain, README 'Results on the demo brain').

    Clusters (:mod:`brainviz.pipeline.analyses.clusters`):

    * ``cluster_ks``: the k written for every scope that chooses its own k (the k range; ``PipelineConfig.cluster_ks``).
    * ``reliability_percentiles``: reliability thresholds precomputed for the page (percentiles 0..100 of each
      subject's noise ceilings); ``default_percentile``: the default (75: the top quarter).
    * ``min_stability``: k is the largest k whose bootstrap stability is at least this
      (:func:`brainviz.clusters.choose_k`); ``stability_rounds`` rounds of two subsamples of ``stability_fraction``
      of the vertices each, at most ``stability_max_vertices`` vertices (a fixed random sample).
    * ``good_subject_share``: a subject joins the joint clustering when its median noise ceiling is at least this
      share of the best subject's.
    * ``smoothing_beta``: strength of the smoothing on the cortex (:func:`brainviz.clusters.smooth_labels`) of the
      smoothed labels written beside the plain ones (tried 0.5, 1 and 2 on the demo brain).
    * ``min_profile_images`` / ``max_profile_images``: a response profile holds the images seen by the most
      subjects, coverage level by coverage level, until at least the first, and at most the second;
      ``min_common_images``: the measured profile of several subjects needs this many images all of them saw;
      ``profile_components``: principal components kept of a response profile (:func:`brainviz.clusters.profile_block`).
    * ``n_top_images``: top images kept per cluster (measured, predicted, pooled).
    * ``max_predicted_images``: at most this many images predicted per subject for the clusters (top images "by the
      encoder", the encoder's accuracy on the fitted images, the response profiles;
      :func:`brainviz.pipeline.analyses.cluster_images.predicted_keys`): the profile images a subject did not see,
      then the tagged images, then a seeded sample of its fitted images (at most a quarter), then a seeded sample of
      the rest. Predicting costs images x vertices in time and in the file each subject's predictions occupy while
      the clusters run (10,000 x 39,500 challenge vertices x 4 B = 1.6 GB per NSD subject, against 70,000 NSD
      images x 11 GB); the demo brain (969 images) and any dataset with fewer images predicts every image.
    * ``default_scope`` / ``default_profile``: the clustering the app opens with; ``smoothed_by_default``: the
      profiles whose views open smoothed (smoothing raised the embeddings' category-region ARI by +0.01 to +0.06
      on both demo seeds; the response profiles moved by -0.02 to +0.02).
    * ``embedding_model``: the model whose voxel embeddings are clustered (and whose predictions enter RSA).

    RDMs: ``rdm_rois`` (ROI groups with an RDM per subject; 'all' = every challenge-space vertex),
    ``n_extreme_pairs`` (pairs kept per kind and RDM). 92-image set: ``layer_mix_repeats`` (repeats of the
    cross-validated layer mix). Pair model: ``pair_test_fraction`` (held-out share of the images).
    """

    cluster_ks: tuple[int, ...] = (4, 6, 8, 10, 12, 14, 16)
    reliability_percentiles: tuple[float, ...] = (50.0, 75.0, 90.0)
    default_percentile: float = 75.0
    min_stability: float = 0.75
    stability_rounds: int = 10
    stability_fraction: float = 0.8
    stability_max_vertices: int = 2500
    good_subject_share: float = 0.5
    smoothing_beta: float = 0.5
    min_profile_images: int = 200
    max_profile_images: int = 2000
    min_common_images: int = 20
    profile_components: int = 50
    n_top_images: int = 10
    max_predicted_images: int = 10000
    n_extreme_pairs: int = 10
    layer_mix_repeats: int = 5
    pair_test_fraction: float = 0.3
    # names (not numbers: the stored results carry them)
    default_scope: str = "joint:non-early"
    default_profile: str = "combined"
    smoothed_by_default: tuple[str, ...] = ("embeddings",)
    embedding_model: str = "ue_multi"
    rdm_rois: tuple[str, ...] = ("early visual", "faces", "places", "bodies", "words", "all")

    @classmethod
    def for_config(cls, config: Any) -> "AnalysisSettings":
        """The defaults with the run's k range (``config.cluster_ks`` of a :class:`~brainviz.pipeline.context.PipelineConfig`)."""
        return cls(cluster_ks=tuple(int(k) for k in config.cluster_ks))

    def with_(self, **changes: Any) -> "AnalysisSettings":
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return replace(self, **changes)

    def to_rows(self) -> pd.DataFrame:
        """The numeric fields as rows (name, position, value): ``position`` None for a number, 0, 1, ... for
        each element of a sequence (table ``analysis_settings``)."""
        rows = []
        for name in NUMERIC_FIELDS:
            v = getattr(self, name)
            if isinstance(v, tuple):
                rows += [dict(name=name, position=i, value=float(x)) for i, x in enumerate(v)]
            else:
                rows.append(dict(name=name, position=None, value=float(v)))
        return pd.DataFrame(rows, columns=["name", "position", "value"]).astype({"position": "Int32"})

    @classmethod
    def from_numbers(cls, numbers: Mapping[str, Any]) -> "AnalysisSettings":
        """Settings from ``{name: number or tuple}`` (:meth:`brainviz.store.reader.Store.analysis_settings`);
        fields not given keep their defaults, names that are not numeric fields are refused."""
        unknown = sorted(set(numbers) - set(NUMERIC_FIELDS))
        if unknown:
            from ..errors import BrainVizDataError

            raise BrainVizDataError("analysis_settings", f"unknown settings {unknown}; expected {list(NUMERIC_FIELDS)}")
        types = {f.name: f.type for f in fields(cls)}
        out = {}
        for name, v in numbers.items():
            integer = "int" in str(types[name])
            conv = (lambda x: int(round(float(x)))) if integer else float  # noqa: E731
            out[name] = tuple(conv(x) for x in v) if isinstance(v, (tuple, list)) else conv(v)
        return cls(**out)


#: The fields stored as numbers (every field but the names).
NUMERIC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AnalysisSettings)
                                        if f.name not in ("default_scope", "default_profile", "smoothed_by_default",
                                                          "embedding_model", "rdm_rois"))
