"""Benchmark: BrainViz RidgeEncoder vs scikit-learn RidgeCV(alphas, alpha_per_target=True), same data.

Data (deterministic): X (n_train + n_test, p) N(0, 1) features; Y = X W + noise
with a per-vertex signal-to-noise ratio spread over two decades (so the best
alpha differs between vertices). Both models get the same 15 alphas
(logspace(-1, 6)), pick one alpha per vertex and fit an intercept:

* BrainViz ``RidgeEncoder`` (himalaya, numpy backend here, float32, 5-fold CV);
* scikit-learn ``RidgeCV(alphas, alpha_per_target=True)`` (float64, efficient
  leave-one-out / GCV: the only CV that supports alpha_per_target).

Reported: fit time, peak memory, and held-out accuracy (per-vertex Pearson r
on the test images; equal within tolerance: |median r difference| < 0.01).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, BenchResult, Goal, Table, cli_main, run_isolated  # noqa: E402

ALPHAS = np.logspace(-1, 6, 15)
FULL = dict(n_train=2000, n_test=500, p=1000, v=10000)
QUICK = dict(n_train=150, n_test=50, p=40, v=200)


def make_data(n_train: int, n_test: int, p: int, v: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    X = rng.standard_normal((n, p), dtype=np.float32)
    W = rng.standard_normal((p, v)).astype(np.float32) / np.sqrt(p)
    snr = np.logspace(-1.5, 0.5, v).astype(np.float32)
    rng.shuffle(snr)
    Y = (X @ W) * snr + rng.standard_normal((n, v), dtype=np.float32)
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def _score(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    from brainviz.metrics import pearson_per_vertex

    return pearson_per_vertex(Y, P)


def w_brainviz(size: dict, out: str) -> dict:
    from brainviz.encoders.ridge import RidgeEncoder

    Xtr, Ytr, Xte, Yte = make_data(**size)
    t0 = time.perf_counter()
    model = RidgeEncoder(alphas=ALPHAS, cv=5, backend="numpy", seed=0).fit(Xtr, Ytr)
    fit_s = time.perf_counter() - t0
    r = _score(Yte, model.predict(Xte))
    np.savez(out, r=r, alphas=model.best_alphas_)
    return {"fit_s": fit_s}


def w_sklearn(size: dict, out: str) -> dict:
    from sklearn.linear_model import RidgeCV

    Xtr, Ytr, Xte, Yte = make_data(**size)
    t0 = time.perf_counter()
    model = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(Xtr.astype(np.float64), Ytr.astype(np.float64))
    fit_s = time.perf_counter() - t0
    r = _score(Yte, model.predict(Xte.astype(np.float64)).astype(np.float32))
    np.savez(out, r=r, alphas=np.asarray(model.alpha_))
    return {"fit_s": fit_s}


def run(quick: bool = False, size: dict | None = None) -> BenchResult:
    t_start = time.perf_counter()
    size = size or (QUICK if quick else FULL)
    res = BenchResult("ridge", f"Ridge encoders, {size['n_train']:,} train / {size['n_test']:,} test images x "
                               f"{size['p']:,} features x {size['v']:,} vertices, 15 alphas, per-vertex alpha")
    rows, scores = [], {}
    for label, fn, pre in (("BrainViz RidgeEncoder (himalaya, 5-fold)", "w_brainviz",
                            ("brainviz.encoders.ridge", "himalaya.ridge", "sklearn.model_selection")),
                           ("sklearn RidgeCV(alpha_per_target=True) (LOO)", "w_sklearn", ("sklearn.linear_model",))):
        out = OUT / f"ridge_{fn}.npz"
        m = run_isolated(f"bench.bench_ridge:{fn}", {"size": size, "out": str(out)},
                         preload=pre + ("brainviz.metrics",))
        if "error" in m:
            rows.append({"model": label, "note": m["error"]})
            continue
        d = np.load(out)
        scores[fn] = d
        rows.append({"model": label, "fit s": m["value"]["fit_s"], "peak RSS MB": m["peak_rss_mb"],
                     "peak anon MB": m["peak_anon_mb"], "median test r": float(np.nanmedian(d["r"])),
                     "mean test r": float(np.nanmean(d["r"]))})
    if len(scores) == 2:
        bv, sk = rows[0], rows[1]
        bv["speed-up vs sklearn"] = sk["fit s"] / bv["fit s"]
        sk["speed-up vs sklearn"] = 1.0
        bv["peak anon / sklearn"] = bv["peak anon MB"] / sk["peak anon MB"]
        sk["peak anon / sklearn"] = 1.0
        dr = np.abs(scores["w_brainviz"]["r"] - scores["w_sklearn"]["r"])
        la = np.abs(np.log10(scores["w_brainviz"]["alphas"]) - np.log10(scores["w_sklearn"]["alphas"]))
        diff = abs(bv["median test r"] - sk["median test r"])
        res.notes.append(f"per-vertex test r: |BrainViz - sklearn| median {np.median(dr):.4f}, max {dr.max():.4f}; "
                         f"chosen alphas within one grid step (0.5 decade) for {np.mean(la <= 0.51):.0%} of vertices "
                         "(different CV schemes: 5-fold vs leave-one-out).")
        res.add_summary("ridge fit time (per-vertex alpha)", bv["fit s"], "sklearn RidgeCV(alpha_per_target)",
                        bv["speed-up vs sklearn"], " s")
        res.add_summary("ridge median test r", bv["median test r"], f"sklearn: {sk['median test r']:.4f}",
                        bv["median test r"] / sk["median test r"])
        res.goals.append(Goal("accuracy equal to sklearn within tolerance (|median r difference| < 0.01)",
                              diff < 0.01, f"(median r {bv['median test r']:.4f} vs {sk['median test r']:.4f})"))
    res.tables.append(Table("Fit time (each in a fresh process), memory and held-out accuracy", rows,
                            ["model", "fit s", "speed-up vs sklearn", "peak RSS MB", "peak anon MB",
                             "peak anon / sklearn", "median test r", "mean test r", "note"]))
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(cli_main(run))
