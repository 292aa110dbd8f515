"""The precompute pipeline: features -> train -> evaluate -> analyses -> one DuckDB store.

Each stage is a function of a :class:`~brainviz.pipeline.context.Context`; the
``precompute`` CLI only parses arguments and calls them. Intermediate results
(feature cache, checkpoints, predictions, results tables) live in the work
folder so a stage can be re-run alone; the store is written last, to a
temporary file renamed into place, so a failed run never harms the last good store.
"""
from .context import Context, PipelineConfig  # noqa: F401
