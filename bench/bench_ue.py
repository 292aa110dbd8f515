"""Benchmark: Universal Encoder training throughput (image x voxel pairs per second), CPU.

* UE: :class:`~brainviz.encoders.universal.UniversalEncoder` with the default CPU
  configuration (E = 256, C = 32, batches of 32 images x 2,000 voxels, Adam) on
  synthetic features shaped like efficientnet-lite0's (L = 4 layers, P = 49
  patches, C_in = 320 channels); device / AMP / compile chosen by
  :func:`brainviz.gpu.select` (on this CPU: float32 eager, both off).
* Reference: a plain linear read-out trained the same way (same batches of 32
  images x 2,000 voxels, same loss, Adam): patch-averaged features (L * C_in)
  -> the sampled voxels' weights. The ratio UE / linear is the price of the
  voxel-image cross-attention per (image, voxel) pair.
* Side by side: two independent UE fits (seeds 0 and 1) one after the other with every
  thread vs two jobs at once with one thread each (:func:`brainviz.jobs.run_jobs`, what
  ``precompute`` does with the Universal Encoders of a run and the transfer curve).
* Distributed: the same UE training under ``torchrun --nproc_per_node=2``
  (gloo, 1 thread per process) vs 1 process with 2 threads, from
  :mod:`precompute.distributed` (both on this machine's 2 cores).

GPU throughput (bf16 autocast, selected automatically on CUDA; torch.compile opt-in with
BRAINVIZ_COMPILE=on, run the benchmark both ways to decide): not measured (no GPU here).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, ROOT, BenchResult, Table, cli_main, run_isolated  # noqa: E402

FULL = dict(n_images=256, n_voxels=8000, shape=(4, 49, 320), ue={"n_epochs": 2})
QUICK = dict(n_images=32, n_voxels=300, shape=(2, 9, 16),
             ue={"n_epochs": 2, "embed_dim": 16, "proj_dim": 8, "batch_images": 8, "batch_voxels": 100})


def _data(n_images: int, n_voxels: int, shape):
    from brainviz.data.synthetic import synthetic_data

    L, P, C = shape
    return synthetic_data(n_images, n_voxels, 1, n_layers=L, n_patches=P, n_channels=C, seed=0)


def _threads(threads: int | None) -> int:
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def w_ue(n_images: int, n_voxels: int, shape, ue: dict, threads: int | None = None) -> dict:
    from brainviz.encoders.universal import UniversalConfig, UniversalEncoder
    from brainviz.gpu import select

    threads = _threads(threads)
    data = _data(n_images, n_voxels, shape)
    cfg = UniversalConfig(seed=0, progress=False, **ue)
    t0 = time.perf_counter()
    enc = UniversalEncoder(cfg).fit(data)
    secs = time.perf_counter() - t0
    h = enc.history_[-1]
    return {"pairs_per_s": h["pairs_per_s"], "epoch_s": h["seconds"], "fit_s": secs,
            "accel": select(cfg.device).describe(), "threads": threads}


def w_jobs(n_images: int, n_voxels: int, shape, ue: dict, workers: int = 1, threads: int | None = None) -> dict:
    """Two independent UE fits (seeds 0, 1) with ``workers`` jobs at a time; wall seconds."""
    from brainviz.encoders.universal import UniversalConfig, UniversalEncoder
    from brainviz.jobs import run_jobs

    _threads(threads)
    data = _data(n_images, n_voxels, shape)
    jobs = [(f"seed {s}", lambda s=s: UniversalEncoder(UniversalConfig(seed=s, progress=False, **ue)).fit(data))
            for s in (0, 1)]
    t0 = time.perf_counter()
    fits = run_jobs(jobs, workers)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "workers": workers,
            "epoch_s": [round(f.history_[-1]["seconds"], 3) for f in fits.values()]}


def w_linear(n_images: int, n_voxels: int, shape, ue: dict, threads: int | None = None) -> dict:
    import torch

    threads = _threads(threads)
    from brainviz.encoders.universal import UniversalConfig
    from brainviz.encoders.universal_module import ue_loss

    cfg = UniversalConfig(seed=0, progress=False, **ue)
    X, Y = _data(n_images, n_voxels, shape)["subj01"]
    feats = torch.from_numpy(X.mean(axis=2).reshape(n_images, -1))  # (n, L*C) patch-averaged
    feats = (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-6)
    Yt = torch.from_numpy(Y)
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(feats.shape[1], n_voxels) * 0.01)
    b = torch.nn.Parameter(torch.zeros(n_voxels))
    opt = torch.optim.Adam([W, b], lr=cfg.lr)
    rng = np.random.default_rng(0)
    B, Bv = cfg.batch_images, cfg.batch_voxels
    pairs = 0
    t0 = time.perf_counter()
    for _ in range(cfg.n_epochs):
        perm = rng.permutation(n_images)
        for i in range(0, n_images, B):
            rows = torch.from_numpy(np.sort(perm[i:i + B]))
            vperm = rng.permutation(n_voxels)
            for j in range(0, n_voxels, Bv):
                vox = torch.from_numpy(np.sort(vperm[j:j + Bv]))
                pred = feats[rows] @ W[:, vox] + b[vox]
                loss = ue_loss(pred, Yt[rows][:, vox], cfg.loss_alpha)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                pairs += len(rows) * len(vox)
    secs = time.perf_counter() - t0
    return {"pairs_per_s": pairs / secs, "epoch_s": secs / cfg.n_epochs, "threads": threads}


def ddp_run(nproc: int, n_images: int, n_voxels: int, shape, ue: dict, threads: int) -> dict:
    """UE training via precompute.distributed (torchrun when nproc > 1); returns the rank-0 summary."""
    out = OUT / f"ue_ddp_{nproc}.pt"
    summ = OUT / f"ue_ddp_{nproc}.json"
    args = ["-m", "precompute.distributed", "--synthetic", f"{n_images}x{n_voxels}",
            "--synthetic-features", ",".join(map(str, shape)), "--out", str(out), "--summary", str(summ),
            "--ue", json.dumps(dict(ue, progress=False))]
    from brainviz.ddp import local_launch

    cmd, env = local_launch(nproc, args, threads=threads)
    env["PYTHONPATH"] = str(ROOT)
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        return {"error": (res.stderr or res.stdout)[-400:]}
    return json.loads(summ.read_text())


def run(quick: bool = False) -> BenchResult:
    t_start = time.perf_counter()
    spec = QUICK if quick else FULL
    L, P, C = spec["shape"]
    res = BenchResult("ue", f"Universal Encoder training throughput, {spec['n_images']} images x "
                            f"{spec['n_voxels']:,} voxels, features (L, P, C) = ({L}, {P}, {C}), CPU")
    rows = []
    pre = ("torch", "brainviz.encoders.universal", "brainviz.gpu", "brainviz.data.synthetic")
    ncpu = os.cpu_count() or 1
    for threads in ([None] if quick else sorted({ncpu, 1}, reverse=True)):
        pair = []
        for label, fn in (("UE (default CPU config)", "w_ue"), ("linear read-out (reference)", "w_linear")):
            m = run_isolated(f"bench.bench_ue:{fn}", dict(spec, threads=threads), preload=pre)
            if "error" in m:
                rows.append({"model": label, "note": m["error"]})
                continue
            v = m["value"]
            pair.append({"model": label, "torch threads": v["threads"], "pairs/s": v["pairs_per_s"],
                         "epoch s": v["epoch_s"], "peak anon MB": m["peak_anon_mb"],
                         "settings": ", ".join(f"{k}={x}" for k, x in v.get("accel", {}).items())})
        if len(pair) == 2:
            pair[0]["UE / linear"] = pair[0]["pairs/s"] / pair[1]["pairs/s"]
            pair[1]["UE / linear"] = 1.0
            res.add_summary(f"UE training throughput ({pair[0]['torch threads']} thread(s))", pair[0]["pairs/s"],
                            "linear read-out, same batches", pair[0]["UE / linear"], " pairs/s")
        rows += pair
    res.tables.append(Table("Training throughput (image x voxel pairs per second, last epoch; higher is better)",
                            rows, ["model", "torch threads", "pairs/s", "UE / linear", "epoch s", "peak anon MB",
                                   "settings", "note"]))
    j_rows = []
    for workers, label in ((1, "one after the other, every thread"), (2, "2 jobs side by side, 1 thread each")):
        if workers > ncpu:
            continue
        m = run_isolated("bench.bench_ue:w_jobs", dict(spec, workers=workers), preload=pre)
        if "error" in m:
            j_rows.append({"run": label, "note": m["error"]})
            continue
        j_rows.append({"run": label, "jobs at once": workers, "wall s": m["value"]["seconds"],
                       "last epoch s of each fit": ", ".join(map(str, m["value"]["epoch_s"]))})
    if len(j_rows) == 2 and all("wall s" in r for r in j_rows):
        for r in j_rows:
            r["wall / one after the other"] = r["wall s"] / j_rows[0]["wall s"]
        res.add_summary("two UE fits side by side (wall)", j_rows[1]["wall s"], "one after the other, every thread",
                        j_rows[1]["wall / one after the other"], " s")
    res.tables.append(Table("Two independent UE fits: one after the other vs side by side (brainviz.jobs)", j_rows,
                            ["run", "jobs at once", "wall s", "wall / one after the other",
                             "last epoch s of each fit", "note"]))
    if quick:  # torchrun start-up is ~10 s; tests/brainviz/encoders/test_distributed.py exercises it
        res.notes.append("quick mode: the torchrun comparison is not run.")
        res.seconds = time.perf_counter() - t_start
        return res
    d_rows = []
    one = ddp_run(1, spec["n_images"], spec["n_voxels"], spec["shape"], spec["ue"], threads=ncpu)
    two = ddp_run(2, spec["n_images"], spec["n_voxels"], spec["shape"], spec["ue"], threads=max(1, ncpu // 2))
    for label, s in (("1 process", one), ("torchrun 2 processes (gloo)", two)):
        if "error" in s:
            d_rows.append({"run": label, "note": s["error"]})
            continue
        h = s["history"][-1]
        d_rows.append({"run": label, "world size": s["world_size"], "threads / process": s.get("threads"),
                       "pairs/s": h["pairs_per_s"], "epoch s": h["seconds"]})
    if len(d_rows) == 2 and all("pairs/s" in r for r in d_rows):
        for r in d_rows:
            r["vs 1 process"] = r["pairs/s"] / d_rows[0]["pairs/s"]
        res.add_summary("UE throughput, torchrun 2 procs (gloo, CPU)", d_rows[1]["pairs/s"], "1 process",
                        d_rows[1]["vs 1 process"], " pairs/s")
    res.tables.append(Table(f"Distributed data parallel on this machine ({ncpu} cores shared by all processes)",
                            d_rows, ["run", "world size", "threads / process", "pairs/s", "vs 1 process", "epoch s",
                                     "note"]))
    res.notes.append("Same global batch in both runs (each rank takes rows rank::world of every batch; DDP averages "
                     "gradients): the runs train the same model (tests/brainviz/encoders/test_distributed.py). With 2 cores, DDP "
                     "only splits the same compute; its gain needs one GPU (or node) per process.")
    res.notes.append("GPU (bf16 autocast chosen by brainviz.gpu.select on CUDA; torch.compile opt-in, BRAINVIZ_COMPILE=on): "
                     "not measured here.")
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(cli_main(run))
