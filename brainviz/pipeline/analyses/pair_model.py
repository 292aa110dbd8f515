"""The pair-dissimilarity model (:mod:`brainviz.pairs`) on the subjects' mean measured RDM: :class:`PairModelResult`.

:func:`run` yields the result and returns the headline numbers; :mod:`brainviz.pipeline.store_results` writes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from ... import rsa as rdmlib
from ...pairs import run_pair_experiment
from ..context import Context
from ..settings import AnalysisSettings


@dataclass(frozen=True)
class PairModelResult:
    """``table``: split, metric ('spearman' | 'r2'), value, baseline: the pair model scored on held-out images
    (one pair of rows per dataset: the subjects' mean RDM, the 92-image human IT)."""

    table: pd.DataFrame


def pair_rows(dataset: str, res: dict) -> list[dict]:
    """The rows of one pair experiment (:func:`brainviz.pairs.run_pair_experiment`'s dict) on ``dataset``."""
    return [dict(split=f"{dataset} / held-out images", metric="spearman", value=res["spearman"],
                 baseline=res["baseline_spearman"]),
            dict(split=f"{dataset} / held-out images", metric="r2", value=res["r2"], baseline=np.nan)]


def run(ctx: Context, settings: AnalysisSettings, extra_rows: list[dict] = ()) -> Iterator[PairModelResult]:
    """Pair-dissimilarity model on the demo/real subjects' mean measured RDM ('all' vertices), with
    ``extra_rows`` (the 92-image set's, :func:`brainviz.pipeline.analyses.k92.run`); returns its headline numbers."""
    main = [s for s in ctx.main_subjects if ctx.has_test(s)]
    rows = list(extra_rows)
    out = {}
    if main:
        keys = ctx.images[main[0]].test_keys
        subs = [s for s in main if ctx.images[s].test_keys == keys]
        brain = np.mean([rdmlib.rdm(ctx.responses(s, "test")) for s in subs], axis=0)
        emb = np.asarray(ctx.feature_subset(keys).pooled, np.float64)
        res = run_pair_experiment(emb, brain, test_fraction=settings.pair_test_fraction, seed=ctx.config.seed)
        label = "subject-mean RDM" + (" (SIMULATED demo brain)" if ctx.dataset.simulated else "")
        rows += pair_rows(label, res)
        out = {k: round(float(v), 3) for k, v in res.items() if isinstance(v, float)}
    if rows:
        yield PairModelResult(pd.DataFrame(rows))
    return out
