"""The one writer of analysis results: :func:`write_result` maps each typed result of
:mod:`brainviz.pipeline.analyses` (and the run's :class:`~brainviz.pipeline.settings.AnalysisSettings`) to the
store's tables through a :class:`~brainviz.store.writer.StoreWriter`. It is the only module that names the
tables of analysis results; :data:`WRITERS` lists one writer per result type (a test checks that every result
type of the analyses has one).
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from ..errors import BrainVizDataError
from ..store.writer import StoreWriter
from .analyses.clusters import ClusterScopeResult, VertexReliability, VoxelEmbeddings
from .analyses.decoding import DecodingResult
from .analyses.encoders import EncoderScores, EvaluationPredictions, TransferCurve
from .analyses.k92 import K92Result
from .analyses.pair_model import PairModelResult
from .analyses.rdms import RDMResult, RSAResult
from .settings import AnalysisSettings

__all__ = ["write_result", "WRITERS"]


def _settings(w: StoreWriter, s: AnalysisSettings) -> None:
    w.write_table("analysis_settings", s.to_rows())


def _encoder_scores(w: StoreWriter, r: EncoderScores) -> None:
    w.add_vertex_metrics(r.model_id, r.subject, r.r, nc=r.nc, nna=r.nna)
    w.add_retrieval(r.model_id, r.subject, n_candidates=int(r.n_test), mean_rank=float(r.retrieval["mean_rank"]),
                    top1=float(r.retrieval["top1"]), top5=float(r.retrieval["top5"]))
    if len(r.rois):
        w.write_table("roi_metrics", r.rois.assign(model_id=r.model_id, subject=r.subject))


def _predictions(w: StoreWriter, r: EvaluationPredictions) -> None:
    w.add_predictions(r.model_id, r.subject, r.image_keys, r.values, image_set="test")


def _transfer_curve(w: StoreWriter, r: TransferCurve) -> None:
    w.write_table("transfer_curve", r.table)


def _embeddings(w: StoreWriter, r: VoxelEmbeddings) -> None:
    for s, emb in r.embeddings.items():
        w.add_voxel_embeddings(r.model_id, s, emb)
    for s, xy in r.map_xy.items():
        w.add_embedding_map(r.model_id, s, xy)


def _reliability(w: StoreWriter, r: VertexReliability) -> None:
    import numpy as np

    w.write_table("vertex_reliability", pd.DataFrame({
        "subject": r.subject, "vertex": np.arange(len(r.nc), dtype=np.int32), "nc": r.nc.astype(np.float32),
        "source": r.source}))


def _cluster_scope(w: StoreWriter, r: ClusterScopeResult) -> None:
    w.write_table("cluster_settings", r.settings.assign(model_id=r.model_id, scope=r.scope))
    w.write_table("cluster_variants", pd.DataFrame([{"model_id": r.model_id, "scope": r.scope, **r.variant}]))
    for k, labels in r.labels.items():
        for s, lab in labels.items():
            w.add_clusters(r.model_id, r.scope, k, s, lab)
        if k in r.descriptions:
            w.add_cluster_descriptions(r.model_id, r.scope, k, r.descriptions[k])
    if len(r.top_images):
        w.write_table("cluster_top_images", r.top_images.assign(model_id=r.model_id, scope=r.scope))
    if len(r.quality):
        w.write_table("cluster_quality", r.quality.assign(model_id=r.model_id, scope=r.scope))


def _rdm(w: StoreWriter, r: RDMResult) -> None:
    w.add_rdm(r.rdm_id, r.image_keys, r.values, metric=r.metric, source=r.source, subject=r.subject, roi=r.roi)
    if r.extremes is not None:
        w.add_extreme_pairs(r.rdm_id, r.extremes)


def _rsa(w: StoreWriter, r: RSAResult) -> None:
    w.write_table("rsa", r.table)


def _k92(w: StoreWriter, r: K92Result) -> None:
    w.add_images(r.image_keys, dataset_id=None)  # no files: the pictures are the store's thumbnails
    w.add_thumbnails(r.image_keys, r.thumbnails)
    w.add_image_tags(r.scores, tags=r.tags)
    w.add_image_features(r.backbone, r.image_keys, r.pooled)
    w.write_table("k92_rsa", r.rsa)
    for rdm in r.rdms:
        _rdm(w, rdm)
    w.write_table("k92_fit", r.fit)


def _pair_model(w: StoreWriter, r: PairModelResult) -> None:
    w.write_table("pair_model", r.table)


def _decoding(w: StoreWriter, r: DecodingResult) -> None:
    w.write_table("decoding_rois", r.rois.assign(subject=r.subject))
    if len(r.ranks):
        w.write_table("decoding", r.ranks.assign(subject=r.subject))
    if len(r.weights):
        w.write_table("decoding_weights", r.weights.assign(subject=r.subject))


#: result type -> the function writing it (its tables).
WRITERS: dict[type, Callable[[StoreWriter, Any], None]] = {
    AnalysisSettings: _settings,
    EncoderScores: _encoder_scores,
    EvaluationPredictions: _predictions,
    TransferCurve: _transfer_curve,
    VoxelEmbeddings: _embeddings,
    VertexReliability: _reliability,
    ClusterScopeResult: _cluster_scope,
    RDMResult: _rdm,
    RSAResult: _rsa,
    K92Result: _k92,
    PairModelResult: _pair_model,
    DecodingResult: _decoding,
}


def write_result(w: StoreWriter, result: Any) -> None:
    """Write one typed result into the store being built by ``w`` (its tables: :data:`WRITERS`)."""
    writer = WRITERS.get(type(result))
    if writer is None:
        raise BrainVizDataError(f"result {type(result).__name__}",
                                f"no store writer for this result type; expected one of "
                                f"{sorted(t.__name__ for t in WRITERS)}")
    writer(w, result)


def write_all(w: StoreWriter, results) -> Any:
    """Write every result a generator of the analyses yields (:func:`write_result`), as it is yielded; returns the
    generator's return value (its headline numbers)."""
    while True:
        try:
            result = next(results)
        except StopIteration as stop:
            return stop.value
        write_result(w, result)
