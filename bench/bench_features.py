"""Benchmark: image feature extraction throughput (images/s), BrainViz pipeline vs the bare network.

Backbones: ``efficientnet-lite0`` (shipped ImageNet weights) and
``open_clip:ViT-B-32`` (random weights: the throughput does not depend on them).

* BrainViz: ``extract_features(backbone, paths, batch_size=32)``: JPEG decode,
  resize/crop/normalize, forward with the layer taps, patch pooling, float16
  layers + pooled embedding written into the output arrays.
* Reference: the bare ``backbone.model(x)`` forward on already-preprocessed
  batches of the same size (no decoding, no taps, no copies).

The ratio BrainViz / bare is the fraction of the network's own speed that the
extraction pipeline keeps (1.0 = no overhead). CPU here; GPU: not measured.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, BenchResult, Table, cli_main, run_isolated  # noqa: E402

BACKBONES = ("efficientnet-lite0", "open_clip:ViT-B-32")


def make_images(n: int, size: int = 425, seed: int = 0) -> list[str]:
    from PIL import Image

    d = OUT / "feature_images"
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = d / f"img{i:04d}.jpg"
        if not p.exists():
            rng = np.random.default_rng([seed, i])
            base = rng.integers(0, 255, (size // 25, size // 25, 3), dtype=np.uint8)
            Image.fromarray(base).resize((size, size), Image.BILINEAR).save(p, quality=90)
        paths.append(str(p))
    return paths


def w_features(backbone: str, paths: list[str], batch: int) -> dict:
    import torch

    from brainviz.features import extract_features, get_backbone

    t0 = time.perf_counter()
    bb = get_backbone(backbone)
    load_s = time.perf_counter() - t0
    extract_features(bb, paths[:batch], batch_size=batch, progress=False)  # warm-up
    t0 = time.perf_counter()
    fs = extract_features(bb, paths, batch_size=batch, progress=False)
    pipe_s = time.perf_counter() - t0
    x = bb.preprocess_batch(paths[:batch])
    with torch.inference_mode():
        bb.model(x.to(bb.device))  # warm-up
        t0 = time.perf_counter()
        n_done = 0
        while n_done < len(paths):
            bb.model(x.to(bb.device))
            n_done += batch
        bare_s = time.perf_counter() - t0
    return {"load_s": load_s, "pipeline_ips": len(paths) / pipe_s, "bare_ips": n_done / bare_s,
            "shape": list(fs.layers.shape), "device": str(bb.device), "threads": torch.get_num_threads()}


def run(quick: bool = False, n_images: int | None = None, backbones=None) -> BenchResult:
    t_start = time.perf_counter()
    n = n_images or (4 if quick else 96)
    batch = 2 if quick else 32
    backbones = backbones or (BACKBONES[:1] if quick else BACKBONES)
    paths = make_images(n)
    res = BenchResult("features", f"Feature extraction, {n} JPEG images (425 x 425), batch {batch}, CPU")
    rows = []
    for name in backbones:
        m = run_isolated("bench.bench_features:w_features", {"backbone": name, "paths": paths, "batch": batch},
                         preload=("torch", "brainviz.features"))
        if "error" in m:
            rows.append({"backbone": name, "note": m["error"]})
            continue
        v = m["value"]
        rows.append({"backbone": name, "BrainViz images/s": v["pipeline_ips"], "bare forward images/s": v["bare_ips"],
                     "BrainViz / bare": v["pipeline_ips"] / v["bare_ips"],
                     "layers (n, L, P, C)": "x".join(map(str, v["shape"])), "model load s": v["load_s"],
                     "peak anon MB": m["peak_anon_mb"], "device": v["device"]})
    for r in rows:
        if "BrainViz / bare" in r:
            res.add_summary(f"feature extraction {r['backbone']}", r["BrainViz images/s"], "bare network forward",
                            r["BrainViz / bare"], " img/s")
    res.tables.append(Table("Throughput (higher is better); ratio = pipeline / bare network forward", rows))
    res.notes.append("ViT-B-32 uses random weights (no download); GPU throughput: not measured (no GPU here).")
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(cli_main(run))
