"""Benchmark: peak memory of NSD-sized data, streamed (memory-mapped) vs loaded into memory.

Dataset: :mod:`bench.make_nsd_sized` (default 2 subjects x 9,000 images x 39,548
vertices float32 = 2.8 GB of responses on disk; ``--subjects 8`` for the full
~12 GB). Each path runs in a fresh process:

* ``streamed``: ``load_dataset(validate=True)`` (every file checked, chunked) ->
  per subject, responses memory-mapped and joined lazily
  (:class:`~brainviz.data.streaming.RowConcat`), then three streamed passes:
  per-vertex statistics (:func:`streamed_vertex_stats`), the ridge data pass
  ``X^T X``, ``X^T Y`` with 128 random features (:func:`streamed_xty`), and one
  epoch of the Universal Encoder's batch reads (DistributedSampler-style shard,
  32 images x 2,000 random voxels per step).
* ``in-memory`` (reference): the same validation, then every subject's
  ``subject.responses("train")`` held at once (what joint training's data
  preparation holds), statistics and ``X^T Y`` with numpy on the full arrays.

Both paths' per-vertex means, standard deviations and ``X^T Y`` are compared
(they must agree to float rounding).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import MB, OUT, BenchResult, Goal, Table, cli_main, run_isolated  # noqa: E402

N_FEATURES = 128
PRELOAD = ("brainviz.data.algonauts", "brainviz.data.streaming", "brainviz.ddp")


def _features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, N_FEATURES), dtype=np.float32)


def w_streamed(dataset: str, check: str, max_mb: int = 64) -> dict:
    from brainviz.data.algonauts import load_dataset
    from brainviz.data.streaming import streamed_vertex_stats, streamed_xty, subject_responses
    from brainviz.ddp import shard_indices

    phases = {}
    t = time.perf_counter()
    ds = load_dataset(dataset, validate=True)
    phases["load + validate"] = time.perf_counter() - t
    out = {}
    for name, sub in ds.subjects.items():
        Y = subject_responses(sub, "train")
        t = time.perf_counter()
        st = streamed_vertex_stats(Y, max_bytes=max_mb * MB)
        phases["vertex stats"] = phases.get("vertex stats", 0) + time.perf_counter() - t
        t = time.perf_counter()
        xt = streamed_xty(_features(Y.shape[0]), Y, max_bytes=max_mb * MB)
        phases["ridge X^T Y"] = phases.get("ridge X^T Y", 0) + time.perf_counter() - t
        t = time.perf_counter()
        rng = np.random.default_rng(0)
        order = shard_indices(Y.shape[0], 0, 1, shuffle=True, seed=0, epoch=0)
        acc = 0.0
        for b in range(0, len(order), 32):
            rows = np.sort(order[b:b + 32])
            vox = np.sort(rng.choice(Y.shape[1], min(2000, Y.shape[1]), replace=False))
            acc += float(Y[rows, vox].sum(dtype=np.float64))
        phases["UE epoch of batch reads"] = phases.get("UE epoch of batch reads", 0) + time.perf_counter() - t
        out[name] = {"mean": st["mean"], "std": st["std"], "xty": xt["xty"]}
    np.savez(check, **{f"{s}|{k}": v for s, d in out.items() for k, v in d.items()})
    return {"phases": phases, "subjects": list(out)}


def w_inmemory(dataset: str, check: str) -> dict:
    from brainviz.data.algonauts import load_dataset

    phases = {}
    t = time.perf_counter()
    ds = load_dataset(dataset, validate=True)
    phases["load + validate"] = time.perf_counter() - t
    t = time.perf_counter()
    Ys = {name: sub.responses("train") for name, sub in ds.subjects.items()}  # all subjects at once
    phases["load all responses"] = time.perf_counter() - t
    out = {}
    for name, Y in Ys.items():
        t = time.perf_counter()
        mean, std = Y.mean(axis=0, dtype=np.float64), Y.std(axis=0, dtype=np.float64)
        phases["vertex stats"] = phases.get("vertex stats", 0) + time.perf_counter() - t
        t = time.perf_counter()
        X = _features(Y.shape[0])
        Xc = X - X.mean(axis=0, dtype=np.float64).astype(np.float32)
        xty = Xc.T @ (Y - mean.astype(np.float32))  # float32 BLAS on the whole arrays
        phases["ridge X^T Y"] = phases.get("ridge X^T Y", 0) + time.perf_counter() - t
        out[name] = {"mean": mean, "std": std, "xty": xty}
    np.savez(check, **{f"{s}|{k}": v for s, d in out.items() for k, v in d.items()})
    return {"phases": phases, "subjects": list(out)}


def ensure_dataset(quick: bool, n_subjects: int | None = None) -> tuple[Path, dict, float]:
    from bench.make_nsd_sized import make_dataset

    spec = (dict(n_subjects=2, n_train=300, n_test=10, n_lh=1500, n_rh=1600, surface="fsaverage5") if quick
            else dict(n_subjects=n_subjects or 2, n_train=9000, n_test=159, n_lh=None, n_rh=None,
                      surface="fsaverage"))
    path = OUT / ("nsd_tiny" if quick else f"nsd_sized_{spec['n_subjects']}subj")
    stamp = path / "bench_spec.json"
    secs = 0.0
    if not (stamp.exists() and json.loads(stamp.read_text()) == spec):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        t0 = time.perf_counter()
        make_dataset(path, **spec)
        secs = time.perf_counter() - t0
        stamp.write_text(json.dumps(spec))
    return path, spec, secs


def run(quick: bool = False, n_subjects: int | None = None) -> BenchResult:
    t_start = time.perf_counter()
    path, spec, gen_s = ensure_dataset(quick, n_subjects)
    from brainviz.data.algonauts import load_dataset

    ds = load_dataset(path, validate=False)
    dims = {s: (len(sub.train_images), sum(sub.n_vertices.values())) for s, sub in ds.subjects.items()}
    total_bytes = sum(n * v * 4 for n, v in dims.values())
    n0, v0 = next(iter(dims.values()))
    res = BenchResult("outofcore", f"Out-of-core: {len(dims)} subjects x {n0:,} images x {v0:,} vertices "
                                   f"float32 ({total_bytes / 2**30:.2f} GB of responses), streamed vs in memory")
    rows, phase_rows, checks = [], [], {}
    for label, fn in (("streamed (memory-mapped, 64 MB blocks)", "w_streamed"), ("in-memory (reference)", "w_inmemory")):
        check = OUT / f"ooc_{fn}.npz"
        m = run_isolated(f"bench.bench_outofcore:{fn}", {"dataset": str(path), "check": str(check)},
                         preload=PRELOAD)
        if "error" in m:
            rows.append({"path": label, "note": m["error"]})
            continue
        checks[fn] = check
        rows.append({"path": label, "seconds": m["seconds"], "peak RSS MB": m["peak_rss_mb"],
                     "peak anon MB": m["peak_anon_mb"], "base anon MB": m["base_anon_mb"],
                     "peak anon / responses size": m["peak_anon_mb"] * MB / total_bytes})
        for ph, s in m["value"]["phases"].items():
            phase_rows.append({"path": label.split(" ")[0], "phase": ph, "seconds": s})
    ref = next((r for r in rows if r["path"].startswith("in-memory") and "seconds" in r), None)
    for r in rows:
        if ref and "seconds" in r:
            r["time / in-memory"] = r["seconds"] / ref["seconds"]
            r["peak anon / in-memory"] = r["peak anon MB"] / ref["peak anon MB"]
    s_row = next((r for r in rows if r["path"].startswith("streamed") and "peak anon / in-memory" in r), None)
    if s_row:
        res.add_summary(f"peak anon memory, {len(dims)} x {n0:,} x {v0:,}", s_row["peak anon MB"],
                        "all responses in memory", s_row["peak anon / in-memory"], " MB")
        res.add_summary("time of the same passes", s_row["seconds"], "in memory", s_row["time / in-memory"], " s")
    res.tables.append(Table("Whole path, each in a fresh process", rows,
                            ["path", "seconds", "time / in-memory", "peak RSS MB", "peak anon MB",
                             "peak anon / in-memory", "peak anon / responses size", "base anon MB", "note"]))
    res.tables.append(Table("Phases", phase_rows))
    if len(checks) == 2:
        a, b = np.load(checks["w_streamed"]), np.load(checks["w_inmemory"])
        err = {k: float(np.abs(a[k] - b[k]).max() / max(1e-12, np.abs(b[k]).max())) for k in a.files}
        worst = max(err.values())
        res.notes.append(f"streamed == in-memory: max relative difference {worst:.1e} over per-vertex mean, std "
                         f"and X^T Y of every subject.")
    if gen_s:
        res.notes.append(f"dataset generated by bench/make_nsd_sized.py in {gen_s:.0f} s (chunked open_memmap writes).")
    res.notes.append("peak RSS counts the touched pages of the memory-mapped files (page cache the kernel can "
                     "drop); peak anon is the memory the process holds.")
    if not quick:
        res.notes.append(f"scaled: {len(dims)} of the 8 NSD subjects (disk/time here); memory of the streamed "
                         f"path does not grow with the number of subjects (they are visited one at a time), the "
                         f"in-memory reference grows by {n0 * v0 * 4 / 2**30:.1f} GB per subject.")
        s = next((r for r in rows if r["path"].startswith("streamed") and "seconds" in r), None)
        if s:
            res.goals.append(Goal("no step holds all subjects' responses (streamed peak anon < one subject's "
                                  "responses)", s["peak anon MB"] * MB < n0 * v0 * 4,
                                  f"(peak anon {s['peak anon MB']:,.0f} MB vs {n0 * v0 * 4 / MB:,.0f} MB "
                                  f"per subject, {total_bytes / MB:,.0f} MB in all)"))
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(cli_main(run))
