"""RidgeEncoder's solver: closed-form CV equals direct solves, chunking changes nothing, memory stays bounded."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from brainviz.encoders import ridge as ridge_mod
from brainviz.encoders.ridge import RidgeEncoder
from brainviz.errors import BrainVizDataError

ALPHAS = np.logspace(-1, 4, 8)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The CPU is shared with other jobs: oversubscribed BLAS threads only spin."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _problem(n: int, p: int, v: int, seed: int = 0):
    """Features with unequal scales and offsets; responses with SNR spread over two decades, offset 5."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + rng.standard_normal(p)).astype(np.float32)
    W = rng.standard_normal((p, v)) / np.sqrt(p)
    Y = (X @ W) * np.logspace(-1, 1, v) + rng.standard_normal((n, v)) + 5
    return X, Y.astype(np.float32)


def _standardize(X: np.ndarray) -> np.ndarray:
    X = X.astype(np.float64)
    return (X - X.mean(0)) / X.std(0)


def _direct_fit(Xs: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with an unpenalized intercept by a direct float64 solve: (coef (p, v), intercept (v,))."""
    xm, ym = Xs.mean(0), Y.mean(0)
    Xc = Xs - xm
    coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(Xs.shape[1]), Xc.T @ (Y - ym))
    return coef, ym - xm @ coef


def _direct_cv_errors(Xs: np.ndarray, Y: np.ndarray, splits) -> np.ndarray:
    """(n_alphas, v) summed squared held-out errors, refitting on every training split."""
    err = np.zeros((ALPHAS.size, Y.shape[1]))
    for a, alpha in enumerate(ALPHAS):
        for train, val in splits:
            coef, b = _direct_fit(Xs[train], Y[train], alpha)
            err[a] += ((Xs[val] @ coef + b - Y[val]) ** 2).sum(0)
    return err


@pytest.mark.parametrize("n, p", [(60, 12), (25, 40)])  # more images than features, and fewer
def test_loo_equals_direct_leave_one_out(n, p):
    X, Y = _problem(n, p, 15)
    model = RidgeEncoder(alphas=ALPHAS, device="cpu").fit(X, Y)
    Xs, Y64 = _standardize(X), Y.astype(np.float64)
    err = _direct_cv_errors(Xs, Y64, [(np.delete(np.arange(n), i), np.array([i])) for i in range(n)])
    best = err.argmin(0)
    np.testing.assert_array_equal(model.best_alphas_, ALPHAS[best])
    np.testing.assert_allclose(model.cv_errors_, err[best, np.arange(15)] / n, rtol=1e-4)
    for j in range(15):
        coef, b = _direct_fit(Xs, Y64[:, [j]], ALPHAS[best[j]])
        np.testing.assert_allclose(model.coef_[:, j], coef[:, 0], rtol=1e-4, atol=1e-5 * np.abs(coef).max())
        np.testing.assert_allclose(model.predict(X[:5])[:, j], (Xs[:5] @ coef + b)[:, 0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n, p", [(48, 10), (24, 30)])
def test_kfold_equals_direct_fold_solves(n, p):
    from sklearn.model_selection import KFold

    X, Y = _problem(n, p, 12, seed=1)
    model = RidgeEncoder(alphas=ALPHAS, cv=4, seed=3, device="cpu").fit(X, Y)
    Xs, Y64 = _standardize(X), Y.astype(np.float64)
    err = _direct_cv_errors(Xs, Y64, list(KFold(4, shuffle=True, random_state=3).split(Xs)))
    best = err.argmin(0)
    np.testing.assert_array_equal(model.best_alphas_, ALPHAS[best])
    np.testing.assert_allclose(model.cv_errors_, err[best, np.arange(12)] / n, rtol=1e-4)
    for j in range(12):
        coef, _ = _direct_fit(Xs, Y64[:, [j]], ALPHAS[best[j]])
        np.testing.assert_allclose(model.coef_[:, j], coef[:, 0], rtol=1e-4, atol=1e-5 * np.abs(coef).max())


def test_same_alphas_and_predictions_as_sklearn_ridgecv_alpha_per_target():
    from sklearn.linear_model import RidgeCV

    X, Y = _problem(120, 30, 40, seed=2)
    Xs = _standardize(X)  # the encoder standardizes its features; give sklearn the same design
    ours = RidgeEncoder(alphas=ALPHAS, device="cpu").fit(X, Y)
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(Xs, Y.astype(np.float64))
    np.testing.assert_array_equal(ours.best_alphas_, ref.alpha_)
    np.testing.assert_allclose(ours.predict(X), ref.predict(Xs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cv", ["loo", 3])
def test_chunking_gives_identical_results(cv):
    X, Y = _problem(70, 20, 53, seed=4)
    whole = RidgeEncoder(alphas=ALPHAS, cv=cv, n_targets_batch=None, device="cpu").fit(X, Y)
    for batch in (1, 7, 52):
        part = RidgeEncoder(alphas=ALPHAS, cv=cv, n_targets_batch=batch, device="cpu").fit(X, Y)
        np.testing.assert_array_equal(part.best_alphas_, whole.best_alphas_)
        np.testing.assert_array_equal(part.intercept_, whole.intercept_)
        # float32 products of other widths sum in another order: equal to float32 rounding
        np.testing.assert_allclose(part.coef_, whole.coef_, rtol=1e-5, atol=2e-6 * np.abs(whole.coef_).max())
        np.testing.assert_allclose(part.cv_errors_, whole.cv_errors_, rtol=1e-5)


def test_memory_mapped_responses_are_read_in_bounded_chunks(tmp_path):
    """Y on disk (memory-mapped) is never copied whole: traced allocations stay well under its size."""
    n, p, v = 300, 10, 6000
    X, _ = _problem(n, p, 1, seed=5)
    rng = np.random.default_rng(5)
    Y = np.lib.format.open_memmap(tmp_path / "Y.npy", mode="w+", dtype=np.float32, shape=(n, v))
    Y[:] = X[:, :1] * rng.standard_normal(v, dtype=np.float32) + rng.standard_normal((n, v), dtype=np.float32)
    Y.flush()
    Y = np.load(tmp_path / "Y.npy", mmap_mode="r")
    y_bytes = n * v * 4  # 7.2 MB; the weights (p, v) are 0.24 MB

    def traced_peak(batch):
        tracemalloc.start()
        try:
            model = RidgeEncoder(alphas=ALPHAS, n_targets_batch=batch, device="cpu").fit(X, Y)
            return tracemalloc.get_traced_memory()[1], model
        finally:
            tracemalloc.stop()

    peak_chunked, chunked = traced_peak(250)
    peak_whole, whole = traced_peak(None)
    assert peak_chunked < 0.4 * y_bytes, (peak_chunked, y_bytes)
    assert peak_whole > y_bytes  # the measure does see a whole-array copy
    # float32 products of 250 and of 6,000 columns round differently: where two alphas' CV errors tie to
    # float32 rounding (a few of 6,000 vertices on some BLAS builds), either may be chosen
    np.testing.assert_allclose(chunked.cv_errors_, whole.cv_errors_, rtol=1e-5)
    same = chunked.best_alphas_ == whole.best_alphas_
    assert same.mean() > 0.998, same.mean()
    np.testing.assert_allclose(chunked.coef_[:, same], whole.coef_[:, same], rtol=1e-5,
                               atol=2e-6 * np.abs(whole.coef_).max())
    ref = RidgeEncoder(alphas=ALPHAS, n_targets_batch=250, device="cpu").fit(X, np.array(Y))
    np.testing.assert_array_equal(chunked.coef_, ref.coef_)


def test_torch_backend_gives_the_numpy_results(monkeypatch):
    """The GPU code path (torch tensors), run on the CPU, agrees with numpy."""
    pytest.importorskip("torch")
    X, Y = _problem(50, 15, 20, seed=6)
    for cv in ("loo", 3):
        ref = RidgeEncoder(alphas=ALPHAS, cv=cv, n_targets_batch=8, device="cpu").fit(X, Y)
        with monkeypatch.context() as m:
            m.setattr(ridge_mod, "_ops", lambda device: ridge_mod._TorchOps("cpu"))
            got = RidgeEncoder(alphas=ALPHAS, cv=cv, n_targets_batch=8, device="cuda").fit(X, Y)
        np.testing.assert_array_equal(got.best_alphas_, ref.best_alphas_)
        np.testing.assert_allclose(got.coef_, ref.coef_, rtol=1e-4, atol=1e-5)


def test_constant_features_and_constant_vertices():
    X, Y = _problem(40, 6, 5, seed=7)
    X[:, 2] = 3.0  # no variance: standardized to zeros, carries no weight
    Y[:, 1] = 2.0  # a constant vertex: predicted exactly
    model = RidgeEncoder(alphas=ALPHAS, device="cpu").fit(X, Y)
    assert np.all(np.isfinite(model.coef_)) and np.abs(model.coef_[2]).max() < 1e-10
    np.testing.assert_allclose(model.predict(X)[:, 1], 2.0, atol=1e-5)


def test_estimator_api_and_errors():
    from sklearn.base import clone

    enc = RidgeEncoder(alphas=[1.0, 10.0], cv=3, n_targets_batch=2)
    assert enc.alphas == [1.0, 10.0] and enc.get_params()["cv"] == 3  # stored as given
    assert not [k for k in vars(enc) if k.endswith("_")]  # no fitted state before fit
    assert clone(enc).get_params() == enc.get_params()
    assert "cv=3" in repr(enc) and "alphas=array" in repr(RidgeEncoder(alphas=np.ones(2)))
    X, Y = _problem(30, 5, 4)
    with pytest.raises(BrainVizDataError, match="not fitted"):
        enc.predict(X)
    enc.fit(X, Y)
    assert enc.best_alphas_.shape == (4,) and enc.coef_.shape == (5, 4) and enc.n_vertices_ == 4
    for bad, field in ((dict(alphas=[1.0, -1.0]), "alphas"), (dict(alphas=[]), "alphas"),
                       (dict(cv="kfold"), "cv"), (dict(cv=1), "cv"), (dict(cv=31), "cv"),
                       (dict(n_targets_batch=0), "n_targets_batch")):
        with pytest.raises(BrainVizDataError, match=field):
            RidgeEncoder(**bad).fit(X, Y)
    Ybad = Y.copy()
    Ybad[4, 3] = np.nan
    with pytest.raises(BrainVizDataError, match=r"\(4, 3\)"):  # global index, whatever the chunk
        RidgeEncoder(n_targets_batch=2, device="cpu").fit(X, Ybad)
    with pytest.raises(BrainVizDataError, match="rows"):
        RidgeEncoder().fit(X, Y[:10])
    with pytest.raises(BrainVizDataError, match="features"):
        enc.predict(X[:, :4])


def test_checkpoint_round_trip_through_the_restricted_loader(tmp_path):
    import joblib

    from brainviz.safe_load import load_joblib

    X, Y = _problem(30, 5, 4)
    model = RidgeEncoder(alphas=ALPHAS, device="cpu").fit(X, Y)
    joblib.dump(model, tmp_path / "ridge.joblib")
    back = load_joblib(tmp_path / "ridge.joblib", [RidgeEncoder.__module__])
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_lazy_responses_are_read_in_column_chunks(tmp_path):
    """Y as the pipeline passes it (ctx.responses(s, "train", lazy=True): the training rows of the two hemispheres'
    memory maps, a RowSubset of a RowConcat) gives the in-memory fit, bit for bit, and is never read whole."""
    from brainviz.data.streaming import RowConcat, RowSubset

    X, Y = _problem(50, 12, 41, seed=6)
    extra = np.random.default_rng(6).standard_normal((7, 41)).astype(np.float32)  # held-out rows
    full = np.concatenate([Y[:20], extra, Y[20:]])
    parts = []
    for k, cols in enumerate((slice(0, 17), slice(17, 41))):
        np.save(tmp_path / f"h{k}.npy", full[:, cols])
        parts.append(np.load(tmp_path / f"h{k}.npy", mmap_mode="r"))
    rows = np.r_[0:20, 27:57]
    lazy = RowSubset(RowConcat(parts), rows)
    want = RidgeEncoder(alphas=ALPHAS, n_targets_batch=9, device="cpu").fit(X, Y)
    for y in (lazy, RowConcat([p[rows] for p in parts]), RowConcat([np.asarray(full[rows])])):
        got = RidgeEncoder(alphas=ALPHAS, n_targets_batch=9, device="cpu").fit(X, y)
        for name in ("coef_", "intercept_", "best_alphas_", "cv_errors_"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    with pytest.MonkeyPatch.context() as mp:  # never materialised whole
        mp.setattr(RowSubset, "__array__", lambda *a, **k: pytest.fail("the lazy responses were read whole"))
        mp.setattr(RowConcat, "__array__", lambda *a, **k: pytest.fail("the lazy responses were read whole"))
        RidgeEncoder(alphas=ALPHAS, n_targets_batch=9, device="cpu").fit(X, lazy)
    np.testing.assert_array_equal(np.asarray(lazy), Y)  # the caller's data is unchanged
    one = RowConcat([Y.copy()])  # one chunk of every column: read_cols returns a view, which is copied
    whole = RidgeEncoder(alphas=ALPHAS, n_targets_batch=None, device="cpu").fit(X, one)
    np.testing.assert_array_equal(one.parts[0], Y)
    np.testing.assert_array_equal(whole.intercept_, want.intercept_)
