"""Benchmark: BrainViz RidgeEncoder vs scikit-learn RidgeCV(alphas, alpha_per_target=True), same data.

Data (deterministic): X (n_train + n_test, p) N(0, 1) features; Y = X W + noise
with a per-vertex signal-to-noise ratio spread over two decades (so the best
alpha differs between vertices). Every model gets the same 15 alphas
(logspace(-1, 6)), picks one alpha per vertex and fits an intercept:

* BrainViz ``RidgeEncoder`` (default settings, CPU): one eigendecomposition of
  the features serves every alpha and vertex, exact leave-one-out in closed
  form, vertices in chunks of 4,096, float32 products. Run twice, before and
  after the references (the machine is shared: the mean of the two is compared,
  and both are shown);
* scikit-learn ``RidgeCV(alphas, alpha_per_target=True)`` (float64, efficient
  leave-one-out: the same criterion);
* the previous BrainViz encoder: himalaya ``RidgeCV`` (5-fold, ``local_alpha``,
  numpy backend, float32, batches of 4,096 vertices), as the "before" figure.

Reported: fit time, memory (``fit anon``: the peak anonymous memory the fit
adds above what the process held just before it; ``peak anon`` / ``peak RSS``:
the whole worker, data generation and scoring included), and held-out accuracy (per-vertex Pearson r
on the test images; equal within tolerance: |median r difference| < 0.005).

NSD-sized run (one subject: 9,000 train / 500 test images x 1,000 features x
40,000 vertices; only BrainViz, responses memory-mapped from disk so the peak
anon memory is the encoder's own): about 5-10 min on the shared 2-core CPU, so
not in the default run; add it with::

    python -m bench --only ridge --ridge-nsd         # or BRAINVIZ_BENCH_RIDGE_NSD=1
    python bench/bench_ridge.py --nsd                # this benchmark alone, printed
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, BenchResult, Goal, MemSampler, Table, cli_main, fmt, run_isolated  # noqa: E402

ALPHAS = np.logspace(-1, 6, 15)
FULL = dict(n_train=2000, n_test=500, p=1000, v=10000)
QUICK = dict(n_train=150, n_test=50, p=40, v=200)
NSD = dict(n_train=9000, n_test=500, p=1000, v=40000)
NSD_ENV = "BRAINVIZ_BENCH_RIDGE_NSD"
R_TOL = 0.005  # |median r difference| allowed between BrainViz and scikit-learn


def make_data(n_train: int, n_test: int, p: int, v: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    X = rng.standard_normal((n, p), dtype=np.float32)
    W = rng.standard_normal((p, v)).astype(np.float32) / np.sqrt(p)
    snr = np.logspace(-1.5, 0.5, v).astype(np.float32)
    rng.shuffle(snr)
    Y = (X @ W) * snr + rng.standard_normal((n, v), dtype=np.float32)
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def make_data_on_disk(folder: Path, n_train: int, n_test: int, p: int, v: int, seed: int = 0,
                      chunk: int = 2048) -> Path:
    """The same kind of data as :func:`make_data`, responses written to .npy files chunk by chunk.

    ``folder/X.npy`` (n, p), ``folder/Y_train.npy`` (n_train, v), ``folder/Y_test.npy``
    (n_test, v), float32; never more than ``chunk`` vertices in memory. Reused when present.
    """
    folder = Path(folder)
    done = folder / "done.txt"
    tag = f"{n_train} {n_test} {p} {v} {seed}"
    if done.exists() and done.read_text() == tag:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    n = n_train + n_test
    X = np.random.default_rng([seed, 0]).standard_normal((n, p), dtype=np.float32)
    np.save(folder / "X.npy", X)
    snr = np.logspace(-1.5, 0.5, v).astype(np.float32)
    np.random.default_rng([seed, 1]).shuffle(snr)
    ytr = np.lib.format.open_memmap(folder / "Y_train.npy", mode="w+", dtype=np.float32, shape=(n_train, v))
    yte = np.lib.format.open_memmap(folder / "Y_test.npy", mode="w+", dtype=np.float32, shape=(n_test, v))
    for k, j0 in enumerate(range(0, v, chunk)):
        j1 = min(v, j0 + chunk)
        rng = np.random.default_rng([seed, 2, k])
        W = rng.standard_normal((p, j1 - j0)).astype(np.float32) / np.sqrt(p)
        Y = (X @ W) * snr[j0:j1] + rng.standard_normal((n, j1 - j0), dtype=np.float32)
        ytr[:, j0:j1] = Y[:n_train]
        yte[:, j0:j1] = Y[n_train:]
    ytr.flush()
    yte.flush()
    del ytr, yte
    done.write_text(tag)
    return folder


def _score(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    from brainviz.metrics import pearson_per_vertex

    return pearson_per_vertex(Y, P)


def w_brainviz(size: dict, out: str) -> dict:
    from brainviz.encoders.ridge import RidgeEncoder

    Xtr, Ytr, Xte, Yte = make_data(**size)
    with MemSampler() as ms:
        t0 = time.perf_counter()
        model = RidgeEncoder(alphas=ALPHAS, device="cpu", seed=0).fit(Xtr, Ytr)
        fit_s = time.perf_counter() - t0
    r = _score(Yte, model.predict(Xte))
    np.savez(out, r=r, alphas=model.best_alphas_)
    return {"fit_s": fit_s, "fit_anon_mb": ms.peak_anon_mb - ms.base_anon_mb}


def w_brainviz_disk(folder: str, n_train: int, out: str) -> dict:
    """Fit on memory-mapped responses (the NSD-sized run)."""
    from brainviz.encoders.ridge import RidgeEncoder

    X = np.load(Path(folder) / "X.npy")
    Ytr = np.load(Path(folder) / "Y_train.npy", mmap_mode="r")
    with MemSampler() as ms:
        t0 = time.perf_counter()
        model = RidgeEncoder(alphas=ALPHAS, device="cpu", seed=0).fit(X[:n_train], Ytr)
        fit_s = time.perf_counter() - t0
    Yte = np.load(Path(folder) / "Y_test.npy", mmap_mode="r")
    r = _score(np.asarray(Yte), model.predict(X[n_train:]))
    np.savez(out, r=r, alphas=model.best_alphas_)
    return {"fit_s": fit_s, "fit_anon_mb": ms.peak_anon_mb - ms.base_anon_mb}


def w_sklearn(size: dict, out: str) -> dict:
    from sklearn.linear_model import RidgeCV

    Xtr, Ytr, Xte, Yte = make_data(**size)
    with MemSampler() as ms:
        t0 = time.perf_counter()
        model = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(Xtr.astype(np.float64), Ytr.astype(np.float64))
        fit_s = time.perf_counter() - t0
    r = _score(Yte, model.predict(Xte.astype(np.float64)).astype(np.float32))
    np.savez(out, r=r, alphas=np.asarray(model.alpha_))
    return {"fit_s": fit_s, "fit_anon_mb": ms.peak_anon_mb - ms.base_anon_mb}


def w_himalaya(size: dict, out: str) -> dict:
    """The previous BrainViz encoder: standardize, himalaya RidgeCV(local_alpha) with 5 shuffled folds."""
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from sklearn.model_selection import KFold

    Xtr, Ytr, Xte, Yte = make_data(**size)
    set_backend("numpy", on_error="raise")
    with MemSampler() as ms:
        t0 = time.perf_counter()
        mean, std = Xtr.mean(0), Xtr.std(0)
        Xs = ((Xtr - mean) / std).astype(np.float32)
        y_mean = Ytr.mean(0)
        model = RidgeCV(alphas=ALPHAS, cv=KFold(5, shuffle=True, random_state=0), fit_intercept=False,
                        solver_params={"local_alpha": True, "n_targets_batch": 4096,
                                       "n_targets_batch_refit": 4096, "warn": False})
        model.fit(Xs, Ytr - y_mean)
        fit_s = time.perf_counter() - t0
    r = _score(Yte, (((Xte - mean) / std) @ np.asarray(model.coef_) + y_mean).astype(np.float32))
    np.savez(out, r=r, alphas=np.asarray(model.best_alphas_))
    return {"fit_s": fit_s, "fit_anon_mb": ms.peak_anon_mb - ms.base_anon_mb}


def _row(label: str, m: dict, out: Path) -> tuple[dict, dict | None]:
    if "error" in m:
        return {"model": label, "note": m["error"]}, None
    d = dict(np.load(out))
    return ({"model": label, "fit s": m["value"]["fit_s"], "fit anon MB": m["value"]["fit_anon_mb"],
             "peak RSS MB": m["peak_rss_mb"],
             "peak anon MB": m["peak_anon_mb"], "base anon MB": m["base_anon_mb"],
             "median test r": float(np.nanmedian(d["r"])), "mean test r": float(np.nanmean(d["r"]))}, d)


def run_nsd(res: BenchResult, size: dict = NSD) -> None:
    """NSD-sized BrainViz fit (responses memory-mapped): time, memory, accuracy; appended to ``res``."""
    t0 = time.perf_counter()
    folder = make_data_on_disk(OUT / "ridge_nsd", **size)
    gen_s = time.perf_counter() - t0
    out = OUT / "ridge_w_brainviz_nsd.npz"
    m = run_isolated("bench.bench_ridge:w_brainviz_disk",
                     {"folder": str(folder), "n_train": size["n_train"], "out": str(out)}, timeout=3600,
                     preload=("brainviz.encoders.ridge", "sklearn.base", "brainviz.metrics", "threadpoolctl"))
    row, d = _row("BrainViz RidgeEncoder (Y memory-mapped)", m, out)
    y_mb = size["n_train"] * size["v"] * 4 / 2**20
    if d is not None:
        row["fit anon / Y size"] = row["fit anon MB"] / y_mb
        res.add_summary(f"ridge fit, NSD-sized {size['n_train']:,} x {size['p']:,} x {size['v']:,}",
                        row["fit s"], "fit's own peak anon MB (memory-mapped Y)", row["fit anon MB"], " s")
        res.goals.append(Goal("NSD-sized fit holds less than the responses in memory (chunked vertices)",
                              row["fit anon MB"] < y_mb,
                              f"(fit's own peak anon {row['fit anon MB']:,.0f} MB, weights included; Y is "
                              f"{y_mb:,.0f} MB)"))
    for k in ("median test r", "mean test r"):
        if k in row:
            row[k] = f"{row[k]:.4f}"
    res.tables.append(Table(f"NSD-sized, one subject: {size['n_train']:,} train / {size['n_test']:,} test images x "
                            f"{size['p']:,} features x {size['v']:,} vertices ({y_mb:,.0f} MB of float32 training "
                            "responses, memory-mapped)", [row],
                            ["model", "fit s", "fit anon MB", "fit anon / Y size", "peak anon MB", "peak RSS MB",
                             "median test r", "mean test r", "note"]))
    res.notes.append(f"NSD-sized data generated in {gen_s:.0f} s (bench/out/ridge_nsd, reused when present); peak RSS "
                     "also counts the page cache of the memory-mapped responses; scikit-learn not run at this size "
                     "(float64 copies of Y: > 5 GB, and ~20x the 2,000-image time).")


def run(quick: bool = False, size: dict | None = None, nsd: bool | None = None) -> BenchResult:
    t_start = time.perf_counter()
    size = size or (QUICK if quick else FULL)
    if nsd is None:
        nsd = os.environ.get(NSD_ENV) == "1"
    res = BenchResult("ridge", f"Ridge encoders, {size['n_train']:,} train / {size['n_test']:,} test images x "
                               f"{size['p']:,} features x {size['v']:,} vertices, 15 alphas, per-vertex alpha")
    bv_pre = ("brainviz.encoders.ridge", "sklearn.base", "brainviz.metrics", "threadpoolctl")
    runs = (("bv1", "w_brainviz", bv_pre),
            ("sklearn", "w_sklearn", ("sklearn.linear_model", "brainviz.metrics")),
            ("himalaya", "w_himalaya", ("himalaya.ridge", "sklearn.model_selection", "brainviz.metrics")),
            ("bv2", "w_brainviz", bv_pre))
    got: dict[str, tuple[dict, dict | None]] = {}
    for tag, fn, pre in runs:
        out = OUT / f"ridge_{tag}.npz"
        m = run_isolated(f"bench.bench_ridge:{fn}", {"size": size, "out": str(out)}, preload=pre)
        got[tag] = _row(tag, m, out)
    labels = {"bv": "BrainViz RidgeEncoder (one eigendecomposition, exact LOO, chunks of 4,096)",
              "sklearn": "sklearn RidgeCV(alpha_per_target=True) (LOO)",
              "himalaya": "previous BrainViz encoder: himalaya RidgeCV (5-fold)"}
    rows = []
    bv_runs = [got[t] for t in ("bv1", "bv2") if got[t][1] is not None]
    if bv_runs:
        bv = dict(bv_runs[0][0])
        bv["model"] = labels["bv"]
        bv["fit s"] = float(np.mean([r["fit s"] for r, _ in bv_runs]))
        bv["note"] = "fit s = mean of runs before / after the references: " + " / ".join(
            f"{fmt(r['fit s'])}" for r, _ in bv_runs)
        bv["peak anon MB"] = max(r["peak anon MB"] for r, _ in bv_runs)
        bv["peak RSS MB"] = max(r["peak RSS MB"] for r, _ in bv_runs)
        bv["fit anon MB"] = max(r["fit anon MB"] for r, _ in bv_runs)
        rows.append(bv)
    else:
        rows.append({"model": labels["bv"], "note": got["bv1"][0].get("note")})
    for tag in ("sklearn", "himalaya"):
        row = dict(got[tag][0])
        row["model"] = labels[tag]
        rows.append(row)
    sk_row, sk = got["sklearn"]
    if bv_runs and sk is not None:
        bv_row, bv_d = rows[0], bv_runs[0][1]
        for row in rows:
            if "fit s" in row:
                row["speed-up vs sklearn"] = sk_row["fit s"] / row["fit s"]
                row["fit anon / sklearn"] = row["fit anon MB"] / sk_row["fit anon MB"]
        dr = np.abs(bv_d["r"] - sk["r"])
        same_alpha = np.mean(np.isclose(bv_d["alphas"], sk["alphas"]))
        diff = abs(bv_row["median test r"] - sk_row["median test r"])
        res.notes.append(f"per-vertex test r: |BrainViz - sklearn| median {np.median(dr):.2g}, max {dr.max():.2g}; "
                         f"same alpha chosen for {same_alpha:.1%} of vertices (same leave-one-out criterion).")
        res.add_summary("ridge fit time (per-vertex alpha)", bv_row["fit s"], "sklearn RidgeCV(alpha_per_target)",
                        bv_row["speed-up vs sklearn"], " s")
        res.add_summary("ridge median test r", f"{bv_row['median test r']:.4f}",
                        f"sklearn: {sk_row['median test r']:.4f}", bv_row["median test r"] / sk_row["median test r"])
        res.add_summary("ridge fit's own peak anon memory", bv_row["fit anon MB"], "sklearn RidgeCV(alpha_per_target)",
                        bv_row["fit anon / sklearn"], " MB")
        hi = rows[2]
        if "fit s" in hi:
            res.add_summary("ridge fit time (per-vertex alpha)", bv_row["fit s"],
                            "previous encoder (himalaya RidgeCV, 5-fold)", hi["fit s"] / bv_row["fit s"], " s")
        res.goals.append(Goal(f"accuracy equal to sklearn (|median r difference| < {R_TOL})", diff < R_TOL,
                              f"(median r {bv_row['median test r']:.4f} vs {sk_row['median test r']:.4f})"))
        if not quick:  # tiny sizes time process noise, not the solver
            res.goals.append(Goal(">= 2x faster than sklearn RidgeCV(alpha_per_target=True)",
                                  bv_row["speed-up vs sklearn"] >= 2.0, f"({bv_row['speed-up vs sklearn']:.2f}x)"))
    for row in rows:
        for k in ("median test r", "mean test r"):
            if k in row:
                row[k] = f"{row[k]:.4f}"
    res.tables.append(Table("Fit time (each in a fresh process), memory and held-out accuracy", rows,
                            ["model", "fit s", "speed-up vs sklearn", "fit anon MB", "fit anon / sklearn",
                             "peak anon MB", "peak RSS MB", "median test r", "mean test r", "note"]))
    try:
        res.notes.append(f"load average (1, 5, 15 min) after the {size['n_train']:,}-image runs: "
                         + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    except OSError:  # pragma: no cover
        pass
    if nsd:
        run_nsd(res)
    else:
        res.notes.append(f"NSD-sized run (9,000 x 1,000 x 40,000) not in this run: `python -m bench --only ridge "
                         f"--ridge-nsd` (or {NSD_ENV}=1).")
    res.seconds = time.perf_counter() - t_start
    return res


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny sizes")
    ap.add_argument("--nsd", action="store_true", help="also the NSD-sized run (9,000 x 1,000 x 40,000)")
    args = ap.parse_args(argv)
    if args.nsd:
        os.environ[NSD_ENV] = "1"
    return cli_main(run, ["--quick"] if args.quick else [])


if __name__ == "__main__":
    raise SystemExit(main())
