"""The precompute pipeline: features -> train -> evaluate -> analyze -> one DuckDB store.

Each stage is a function of a :class:`~brainviz.pipeline.context.Context`, in the module named
after it; the ``precompute`` CLI only parses arguments and calls them:

* ``context.py``  -- the run's configuration, dataset, images and feature cache (the features stage).
* ``train.py``    -- :func:`~brainviz.pipeline.train.train`: ridge and Universal Encoder models.
* ``evaluate.py`` -- :func:`~brainviz.pipeline.evaluate.evaluate` (every model's test predictions) and
  :func:`~brainviz.pipeline.evaluate.transfer_curve`.
* ``settings.py`` -- :class:`~brainviz.pipeline.settings.AnalysisSettings`: the analyses' policy in one object.
* ``analyses/``   -- one module per analysis (encoder scores, clusters, RDMs + RSA, 92-image set, pair model,
  decoding), each yielding typed results; ``store_results.py`` -- the one writer of those results.
* ``analyze.py``  -- :func:`~brainviz.pipeline.analyze.analyze`: runs the analyses and writes the store.
* ``workdir.py``  -- the one reader / writer of the work folder (registry, checkpoints, predictions, transfer
  curve), used by every stage.

What makes a run resumable lives in the work folder so a stage can be re-run alone; the store is
written last, to a temporary file renamed into place, so a failed run never harms the last good store.
"""
from .context import Context, PipelineConfig  # noqa: F401
