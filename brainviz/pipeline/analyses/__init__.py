"""The analyses of the analyze stage, one module per analysis; each computes typed results and knows nothing
of the store (no :mod:`brainviz.store`, no DuckDB):

* ``encoders.py``   -- :class:`~.encoders.EncoderScores` per model x subject from the evaluate stage's test
  predictions (r, noise ceiling, nna, retrieval, per-ROI summaries), the :class:`~.encoders.TransferCurve`.
* ``clusters.py``   -- :class:`~.clusters.VoxelEmbeddings`, :class:`~.clusters.VertexReliability`,
  :class:`~.clusters.ClusterScopeResult` per clustering (scope x profile x smoothing, every k).
* ``rdms.py``       -- :class:`~.rdms.RDMResult` (an RDM with its descriptors and extreme pairs),
  :class:`~.rdms.RSAResult`.
* ``k92.py``        -- :class:`~.k92.K92Result`: the real 92-image human-IT set.
* ``pair_model.py`` -- :class:`~.pair_model.PairModelResult`.
* ``decoding.py``   -- :class:`~.decoding.DecodingResult` per subject.

Each module's ``run(ctx, settings)`` is a generator: it yields its results as they are computed and returns
its headline numbers (``headline = yield from run(ctx, settings)``); the policy is one
:class:`~brainviz.pipeline.settings.AnalysisSettings`. :mod:`brainviz.pipeline.store_results` maps every result
type to its tables (the only place that names them). The submodules are not imported here (the evaluate stage
imports ``encoders`` alone, without the clusters' dependencies).
"""
