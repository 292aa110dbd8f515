"""The evaluate stage: every model's test predictions; the transfer curve.

Output (through :mod:`brainviz.pipeline.workdir`): ``predictions/<model>/<subj>.npy`` ((n_test, V) float32,
test-image order), what the analyze stage scores (:mod:`brainviz.pipeline.analyses.encoders`) and writes into
the store once; ``results/transfer_curve.csv`` (the transfer curve: costly to recompute, so kept in the work
folder like a checkpoint; the analyze stage copies it into the store).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..jobs import run_jobs
from ..encoders.ridge import RidgeEncoder
from ..encoders.universal import UniversalEncoder
from ..metrics import pearson_per_vertex
from .context import Context
from .train import ue_config
from .workdir import load_model, load_registry, save_predictions, write_results

__all__ = ["TRANSFER_REPEATS", "predict", "evaluate", "transfer_curve"]

#: Random image subsamples per transfer-curve size (report 004 Fig. 6: mean and sd over runs).
TRANSFER_REPEATS = 3


def predict(model, ctx: Context, subject: str, keys: list[str]) -> np.ndarray:
    """(n, V) predictions of ``model`` (any encoder: ``predict(X, subject=...)``) for ``subject`` on images ``keys``."""
    return model.predict(ctx.feature_subset(keys), subject=subject).astype(np.float32)


def evaluate(ctx: Context, registry: dict | None = None) -> list[tuple[str, str]]:
    """Predict every model's test images and save the predictions in the work folder (what the analyze stage
    scores, :mod:`brainviz.pipeline.analyses.encoders`); returns the (model_id, subject) pairs predicted, in
    registry order."""
    registry = registry or load_registry(ctx)

    def run(model_id: str, entry: dict) -> list[tuple[str, str]]:
        """One model's test predictions, saved."""
        done = []
        model = load_model(entry)
        for s in entry["subjects"]:
            if not ctx.has_test(s):
                continue
            save_predictions(ctx, model_id, s, predict(model, ctx, s, ctx.images[s].test_keys))
            done.append((model_id, s))
        return done

    with ctx.timed("evaluate"):  # models side by side (brainviz.jobs)
        done = run_jobs([(f"{m} ({', '.join(e['subjects'])})", lambda m=m, e=e: run(m, e))
                         for m, e in registry.items()], ctx.workers())
    return [pair for out in done.values() for pair in out]


#: Universal Encoder settings of the transfer step, taken from the run's configuration (defaults + --ue).
TRANSFER_SETTINGS = ("transfer_updates", "transfer_epochs", "transfer_lr")


def transfer_curve(ctx: Context) -> pd.DataFrame:
    """Median test r of the held-out subject vs number of its training images.

    ``ue_transfer``: the pre-trained Universal Encoder (other subjects only) with
    only the new subject's voxel embeddings learned; ``ridge``: a ridge model
    trained from scratch on the same images (with every image: the train stage's
    ``ue_transfer-<subj>`` and ``ridge-<subj>`` models, when trained with this run's settings). Same random subsets for both; each size
    below "all" is run on TRANSFER_REPEATS subsamples (column ``seed`` = subsample index),
    as report 004 Fig. 6 (mean and sd over runs).
    """
    new = ctx.transfer_subject
    registry = load_registry(ctx)
    pre_id = f"ue_pretrain-{new}"
    if new is None or pre_id not in registry or not ctx.has_test(new):
        return pd.DataFrame()
    keys = ctx.images[new].train_keys
    Y = ctx.responses(new, "train")
    test_keys = ctx.images[new].test_keys
    y_test = ctx.responses(new, "test")
    X_test = ctx.layers(test_keys)
    run_cfg = ue_config(ctx)
    # with every image, the train stage already fitted both models (when with this run's transfer settings);
    # its ridge uses the train stage's alpha grid, so the curve's last ridge point is the encoder table's model
    trained = registry.get(f"ue_transfer-{new}", {}).get("config", {})
    reuse_all = f"ridge-{new}" in registry and all(trained.get(k) == getattr(run_cfg, k)
                                                   for k in (*TRANSFER_SETTINGS, "seed"))
    sizes = [n if n and n < len(keys) else len(keys) for n in ctx.config.transfer_sizes]
    repeats = 1 if ctx.config.quick else TRANSFER_REPEATS
    runs = [(n, rep) for n in sorted(set(sizes)) for rep in range(repeats if n < len(keys) else 1)]

    def run(n: int, rep: int) -> list[dict]:
        # subsample `rep` of size n, the same images for both methods; "all images" runs once
        rng = np.random.default_rng([ctx.config.seed, n, rep])
        idx = np.sort(rng.choice(len(keys), n, replace=False))
        sub_keys = [keys[i] for i in idx]
        if n == len(keys) and reuse_all:
            enc = load_model(registry[f"ue_transfer-{new}"])
            ridge = load_model(registry[f"ridge-{new}"])
        else:
            enc = UniversalEncoder.load(registry[pre_id]["checkpoint"])
            for name in TRANSFER_SETTINGS:  # this run's transfer settings, not the checkpoint's
                setattr(enc.config, name, getattr(run_cfg, name))
            enc.config.progress = False
            enc.config.seed = ctx.config.seed + rep  # each run also starts the new embeddings afresh
            enc.transfer(new, ctx.layers(sub_keys), Y[idx])
            ridge = RidgeEncoder(seed=ctx.config.seed, cv=min(5, n)).fit(ctx.feature_subset(sub_keys), Y[idx])
        r_ue = pearson_per_vertex(y_test, enc.predict(X_test, new))
        r_ridge = pearson_per_vertex(y_test, ridge.predict(ctx.feature_subset(test_keys)))
        return [dict(subject=new, n_train=int(n), method=method, median_r=float(np.nanmedian(r)), seed=int(rep))
                for method, r in (("ue_transfer", r_ue), ("ridge", r_ridge))]

    with ctx.timed("transfer_curve"):
        # largest first (each run takes about as long: the number of steps is set by transfer_updates;
        # the reused "all images" point is quick); the table keeps the order of `runs`
        names = {r: f"ue_pretrain-{new} + {new} with {r[0]} images (subsample {r[1] + 1})" for r in runs}
        done = run_jobs([(names[r], lambda r=r: run(*r)) for r in sorted(runs, key=lambda r: -r[0])],
                        ctx.workers(run_cfg.device))
        rows = [row for r in runs for row in done[names[r]]]
    table = pd.DataFrame(rows)
    write_results(ctx, "transfer_curve", table)
    return table
