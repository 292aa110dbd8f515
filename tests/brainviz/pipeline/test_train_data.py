"""The ridge encoders of `precompute train` are fitted on the memory-mapped training responses, read a chunk of
vertices at a time, not on a copy of the whole subject (issue 29)."""
from __future__ import annotations

import numpy as np

from brainviz.encoders.ridge import RidgeEncoder
from brainviz.names import N_FSAVERAGE5
from brainviz.pipeline.context import Context, PipelineConfig
from brainviz.pipeline.train import training_data
from tests.algonauts_fixtures import make_subject


def test_ridge_training_data_stays_on_disk_and_fits_the_same_model(tmp_path):
    make_subject(tmp_path / "ds", n_lh=30, n_rh=34, n_surface=N_FSAVERAGE5, n_train=40, n_test=2)
    ctx = Context(PipelineConfig(dataset=tmp_path / "ds", cache_dir=tmp_path / "cache", progress=False))
    keys, Y = training_data(ctx, "subj01")
    eager = ctx.responses("subj01", "train")
    assert keys == list(ctx.images["subj01"].train_keys) and len(keys) < 40  # some images held out (released layout)
    assert not isinstance(Y, np.ndarray) and Y.shape == eager.shape  # lazy rows of the memory maps
    X = np.random.default_rng(0).standard_normal((len(keys), 9)).astype(np.float32)
    a = RidgeEncoder(n_targets_batch=16, device="cpu").fit(X, Y)
    b = RidgeEncoder(n_targets_batch=16, device="cpu").fit(X, eager)
    for name in ("coef_", "intercept_", "best_alphas_", "cv_errors_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
