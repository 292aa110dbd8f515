"""Benchmark: image feature extraction throughput (images/s), BrainViz pipeline vs the bare network.

Backbones: ``efficientnet-lite0`` (shipped ImageNet weights) and
``open_clip:ViT-B-32`` (random weights: the throughput does not depend on them).

* BrainViz: ``extract_features(backbone, paths, batch_size=32)``: JPEG decode,
  resize/crop/normalize (in a background thread, one batch ahead, into reused
  buffers), forward with the layer taps, patch pooling, float16 layers + pooled
  embedding written into the output arrays.
* Reference: the bare ``backbone.model(x)`` forward on already-preprocessed
  batches of the same size (no decoding, no taps, no copies).
* Also timed (efficientnet): the same extraction through the on-disk cache,
  cold (``cached_features`` into an empty folder: memmaps, sha256, fsync), and
  the previous loop (a ``DataLoader`` preprocessing each batch in line, then
  the forward).

The machine is shared, so the runs are interleaved in one process: ``rounds``
rounds, each timing every variant once over all images, the order reversed
every other round; throughput = images / summed time. The ratio BrainViz /
bare is the fraction of the network's own speed that the pipeline keeps (1.0 =
no overhead). A per-stage breakdown (decode, resize, normalize, forward, copies)
for one batch says where the rest goes. CPU here; GPU: not measured.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, BenchResult, Goal, Table, cli_main, run_isolated  # noqa: E402

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


def _previous_loop(bb, paths: list[str], batch: int) -> None:
    """The extraction loop before the prefetching: DataLoader (in line, no workers), then the forward."""
    from torch.utils.data import DataLoader

    from brainviz.features.extract import _ImageDataset

    layers = np.zeros((len(paths), bb.n_layers, bb.n_patches, bb.n_channels), np.float16)
    row = 0
    for x in DataLoader(_ImageDataset(paths, bb), batch_size=batch, shuffle=False, num_workers=0):
        lay, _ = bb.forward(x)
        layers[row:row + x.shape[0]] = lay.cpu().numpy().astype(np.float16)
        row += x.shape[0]


def _breakdown(bb, paths: list[str]) -> dict[str, float]:
    """Seconds per image of each stage for one batch (min of 2), same process."""
    import torch

    from brainviz.features.preprocess import center_square_resize, load_image, to_rgb

    pre = bb.preprocessor
    imgs = [load_image(p) for p in paths]
    rgbs = [center_square_resize(to_rgb(im), pre.size) for im in imgs]
    buf = np.empty((len(paths), 3, pre.size, pre.size), np.float32)
    x = bb.preprocess_batch(paths)

    def fill():
        for i, im in enumerate(rgbs):
            pre.fill(im, buf[i])

    def bare():
        with torch.inference_mode():
            bb.model(x)

    out = {}
    stages = {"decode (load_image)": lambda: [load_image(p) for p in paths],
              "RGB + crop + resize (PIL bicubic)": lambda: [center_square_resize(to_rgb(im), pre.size) for im in imgs],
              "normalize + channel-major (into the batch)": fill,
              "forward with taps (Backbone.forward)": lambda: bb.forward(x),
              "bare forward (model(x))": bare,
              "float16 copy-out": None}
    lay, _ = bb.forward(x)
    stages["float16 copy-out"] = lambda: lay.cpu().numpy().astype(np.float16)
    for name, f in stages.items():
        ts = []
        for _ in range(2):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        out[name] = min(ts) / len(paths)
    return out


def w_features(backbone: str, paths: list[str], batch: int, rounds: int = 2, extras: bool = False) -> dict:
    import shutil
    import tempfile

    import torch

    from brainviz.features import cached_features, extract_features, get_backbone

    t0 = time.perf_counter()
    bb = get_backbone(backbone)
    load_s = time.perf_counter() - t0
    x = bb.preprocess_batch(paths[:batch])
    n_bare = -(-len(paths) // batch) * batch  # whole batches covering the images

    def pipeline():
        return extract_features(bb, paths, batch_size=batch, progress=False)

    def bare():
        with torch.inference_mode():
            for _ in range(n_bare // batch):
                bb.model(x.to(bb.device))

    def cached():
        d = tempfile.mkdtemp(prefix="bench-features-cache-")
        try:
            cached_features(backbone, [f"k{i}" for i in range(len(paths))], paths, d, batch_size=batch,
                            device=bb.device, progress=False)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    variants = {"pipeline": pipeline, "bare": bare}
    if extras:
        variants.update({"previous": lambda: _previous_loop(bb, paths, batch), "cached": cached})
    extract_features(bb, paths[:batch], batch_size=batch, progress=False)  # warm-up
    bare()
    totals = {k: 0.0 for k in variants}
    per_round = []
    for r in range(rounds):
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        this = {}
        for k in names:
            t1 = time.perf_counter()
            out = variants[k]()
            this[k] = time.perf_counter() - t1
            totals[k] += this[k]
            if k == "pipeline":
                shape = list(out.layers.shape)
        per_round.append(this)
    n_imgs = {"bare": n_bare}
    ips = {k: rounds * n_imgs.get(k, len(paths)) / t for k, t in totals.items()}
    res = {"load_s": load_s, "ips": ips, "shape": shape, "device": str(bb.device),
           "threads": torch.get_num_threads(),
           "round_ratios": [(len(paths) / d["pipeline"]) / (n_bare / d["bare"]) for d in per_round]}
    if extras:
        res["breakdown"] = _breakdown(bb, paths[:batch])
    return res


def run(quick: bool = False, n_images: int | None = None, backbones=None, rounds: int | None = None) -> BenchResult:
    t_start = time.perf_counter()
    n = n_images or (4 if quick else 96)
    batch = 2 if quick else 32
    rounds = rounds or (1 if quick else 2)
    backbones = backbones or (BACKBONES[:1] if quick else BACKBONES)
    paths = make_images(n)
    res = BenchResult("features", f"Feature extraction, {n} JPEG images (425 x 425), batch {batch}, CPU, "
                                  f"{rounds} interleaved round(s)")
    rows, extra_rows, breakdown = [], [], None
    for name in backbones:
        extras = name == BACKBONES[0]
        m = run_isolated("bench.bench_features:w_features",
                         {"backbone": name, "paths": paths, "batch": batch, "rounds": rounds, "extras": extras},
                         preload=("torch", "brainviz.features"))
        if "error" in m:
            rows.append({"backbone": name, "note": m["error"]})
            continue
        v = m["value"]
        ips = v["ips"]
        rows.append({"backbone": name, "BrainViz images/s": ips["pipeline"], "bare forward images/s": ips["bare"],
                     "BrainViz / bare": ips["pipeline"] / ips["bare"],
                     "per round": " / ".join(f"{r:.2f}" for r in v["round_ratios"]),
                     "layers (n, L, P, C)": "x".join(map(str, v["shape"])), "model load s": v["load_s"],
                     "peak anon MB": m["peak_anon_mb"], "device": v["device"]})
        for k, label in (("previous", "previous loop (DataLoader in line, then forward)"),
                         ("cached", "BrainViz through the cache, cold (cached_features: memmaps, sha256, fsync)")):
            if k in ips:
                extra_rows.append({"backbone": name, "variant": label, "images/s": ips[k],
                                   "/ bare": ips[k] / ips["bare"], "BrainViz / this": ips["pipeline"] / ips[k]})
        if "breakdown" in v:
            breakdown = (name, v["breakdown"])
    for r in rows:
        if "BrainViz / bare" in r:
            res.add_summary(f"feature extraction {r['backbone']}", r["BrainViz images/s"], "bare network forward",
                            r["BrainViz / bare"], " img/s")
            if quick:  # tiny batches time process noise
                continue
            res.goals.append(Goal(f"feature extraction {r['backbone']} >= 0.85x the bare forward",
                                  r["BrainViz / bare"] >= 0.85, f"({r['BrainViz / bare']:.2f}x; per round "
                                                                f"{r['per round']})"))
    res.tables.append(Table("Throughput (higher is better); ratio = pipeline / bare network forward, summed over "
                            "the rounds (per round: each round's ratio)", rows))
    if extra_rows:
        res.tables.append(Table("Other extraction paths, same process and rounds", extra_rows))
    if breakdown:
        name, b = breakdown
        fwd = b["forward with taps (Backbone.forward)"]
        res.tables.append(Table(f"Where the time goes, {name}, one batch of {batch} (ms per image, min of 2; "
                                "share = of the forward with taps)",
                                [{"stage": k, "ms / image": 1000 * t, "share": t / fwd} for k, t in b.items()]))
    res.notes.append("ViT-B-32 uses random weights (no download); GPU throughput: not measured (no GPU here).")
    try:
        res.notes.append("load average (1, 5, 15 min) after the runs: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    except OSError:  # pragma: no cover
        pass
    res.seconds = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    raise SystemExit(cli_main(run))
