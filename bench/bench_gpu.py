"""The GPU check (``python -m bench --gpu``): what one GPU does with BrainViz, in under 8 minutes.

Four measurements on the current CUDA device (``--device`` to name another; ``cpu`` runs the same code at tiny
sizes, for the CI smoke test):

1. **Features**: images per second through the backbone (a preprocessed batch of 224 x 224 images, the
   backbone's own autocast), for EfficientNet-Lite0 (the offline weights) and CLIP ViT-B/32 (open_clip's
   architecture; random weights give the same speed), at batch 64.
2. **Universal Encoder training**: optimiser steps per second and (image, voxel) pairs per second of
   :class:`~brainviz.encoders.universal.UniversalEncoder` with the report's GPU settings
   (``UniversalConfig.report``: 32 images x 5,000 voxels a step, bf16 autocast where the GPU has it) on
   synthetic NSD-shaped data (2 subjects x 39,548 vertices, Lite0-shaped features), and the GPU's utilisation
   sampled every 0.2 s from ``nvidia-smi`` while it trains (blank when nvidia-smi is missing).
3. **Live prediction**: upload -> predicted map p50 / p95 over 30 images, on the sample store
   (:mod:`brainviz.sample_store`), model and backbone on the GPU.
4. **Peak GPU memory** of each part (``torch.cuda.max_memory_allocated``).

Each part is timed after a warm-up step; the whole check prints one table and returns a BenchResult for
``bench/RESULTS.md``. Extrapolating to a full NSD run: steps needed = epochs x updates per epoch (see the
README's "NSD at full size"), divided by the measured steps/s.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BenchResult, Goal, Table  # noqa: E402

#: NSD-like sizes of the full check and tiny ones for a CPU smoke run.
FULL = dict(feature_batch=64, feature_batches=20, backbones=("efficientnet-lite0", "open_clip:ViT-B-32"),
            ue_images=2000, ue_vertices=39_548, ue_subjects=2, ue_epochs=2, live_images=30)
TINY = dict(feature_batch=2, feature_batches=2, backbones=("efficientnet-lite0",),
            ue_images=16, ue_vertices=300, ue_subjects=2, ue_epochs=1, live_images=3)
#: Budget of the whole check (the issue's bound).
BUDGET_S = 8 * 60


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


class _Utilisation:
    """GPU utilisation (%) sampled from ``nvidia-smi`` every ``every`` s while in the ``with`` block."""

    def __init__(self, index: int, every: float = 0.2, active: bool = True):
        self.index, self.every, self.samples, self.active = index, every, [], active
        self._stop = threading.Event()
        self._smi = shutil.which("nvidia-smi") if active else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run([self._smi, f"--id={self.index}", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                self.samples.append(float(out.stdout.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> "_Utilisation":
        if self._smi:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._smi:
            self._thread.join(timeout=10)

    def summary(self) -> str:
        if not self.samples:
            return "" if self._smi or not self.active else "nvidia-smi missing"
        return f"median {np.median(self.samples):.0f} %, max {max(self.samples):.0f} % ({len(self.samples)} samples)"


def features(device, sizes: dict) -> list[dict]:
    """Images per second of each backbone on a preprocessed batch (after one warm-up batch)."""
    import torch

    from brainviz.features import get_backbone

    rows = []
    for name in sizes["backbones"]:
        _reset_peak(device)
        try:
            bb = get_backbone(name, device=str(device))
        except Exception as exc:  # e.g. open_clip missing: the row says why
            rows.append({"part": f"features: {name}", "figure": "not measured", "detail": str(exc)[:120]})
            continue
        batch = torch.rand(sizes["feature_batch"], 3, bb.image_size, bb.image_size)
        bb.forward(batch)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(sizes["feature_batches"]):
            bb.forward(batch)
        _sync(device)
        secs = time.perf_counter() - t0
        n = sizes["feature_batch"] * sizes["feature_batches"]
        rows.append({"part": f"features: {name}", "figure": f"{n / secs:,.0f} images/s",
                     "detail": f"batch {sizes['feature_batch']}, {bb.n_layers} layers",
                     "peak MB": _peak_mb(device)})
        del bb
    return rows


def training(device, sizes: dict) -> list[dict]:
    """Steps/s and pairs/s of the Universal Encoder with the report's settings on NSD-shaped synthetic data."""
    from brainviz.data.synthetic import synthetic_data
    from brainviz.encoders.universal import UniversalConfig, UniversalEncoder

    _reset_peak(device)
    data = synthetic_data(sizes["ue_images"], sizes["ue_vertices"], sizes["ue_subjects"], n_layers=4, n_patches=49,
                          n_channels=320, seed=0)
    over = dict(n_epochs=sizes["ue_epochs"], device=str(device), seed=0, progress=False)
    if device.type != "cuda":  # the CPU smoke run: small batches
        over.update(batch_images=4, batch_voxels=100, embed_dim=16, proj_dim=8)
    cfg = UniversalConfig.report(**over)
    with _Utilisation(device.index or 0, active=device.type == "cuda") as util:
        enc = UniversalEncoder(cfg).fit(data)
    last = enc.history_[-1]  # the first epoch carries the warm-up (and any compile)
    per_step = cfg.batch_images * cfg.batch_voxels
    return [{"part": "UE training (report settings)",
             "figure": f"{last['pairs_per_s'] / per_step:,.1f} steps/s",
             "detail": f"{last['pairs_per_s']:,.0f} (image, voxel) pairs/s; {cfg.batch_images} images x "
                       f"{cfg.batch_voxels} voxels a step; {sizes['ue_subjects']} subjects x "
                       f"{sizes['ue_vertices']:,} vertices x {sizes['ue_images']:,} images; epoch "
                       f"{last['seconds']:.1f} s; utilisation {util.summary() or 'not sampled (CPU)'}",
             "peak MB": _peak_mb(device)}]


def live(device, sizes: dict) -> list[dict]:
    """Upload -> predicted map, p50 / p95 over ``live_images`` images, on the sample store."""
    from PIL import Image

    from brainviz.live import LivePredictor
    from brainviz.sample_store import build_app_store
    from brainviz.store.reader import Store

    _reset_peak(device)
    tmp = Path(tempfile.mkdtemp(prefix="brainviz-gpu-check-"))
    try:
        with Store(build_app_store(tmp)) as store:
            pred = LivePredictor.from_store(store, device=str(device))
            rng = np.random.default_rng(0)
            imgs = [Image.fromarray(rng.integers(0, 255, (425, 425, 3), dtype=np.uint8))
                    for _ in range(sizes["live_images"] + 1)]
            pred.predict(imgs[0])  # warm-up
            ms = []
            for img in imgs[1:]:
                t0 = time.perf_counter()
                pred.predict(img)
                _sync(device)
                ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [{"part": "live prediction", "figure": f"p50 {np.median(ms):.1f} ms",
             "detail": f"p95 {np.percentile(ms, 95):.1f} ms over {len(ms)} images (decode + backbone + encoder)",
             "peak MB": _peak_mb(device)}]


def run(quick: bool = False, device: str | None = None) -> BenchResult:
    """The GPU check on ``device`` (default: the current CUDA device; ``quick``: tiny sizes)."""
    import torch

    from brainviz.gpu import resolve_device, select

    dev = resolve_device(device)
    sizes = TINY if quick or dev.type != "cuda" else FULL
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{dev} (no GPU: code paths only)"
    res = BenchResult("gpu", f"GPU check on {name}")
    t0 = time.perf_counter()
    rows = []
    for part in (features, training, live):
        rows += part(dev, sizes)
        print(f"[gpu check] {part.__name__} done after {time.perf_counter() - t0:.0f} s", flush=True)
    res.seconds = time.perf_counter() - t0
    for r in rows:
        r["peak MB"] = "" if r.get("peak MB") is None else f"{r['peak MB']:,.0f}"
    res.tables.append(Table(f"{name}; {select(str(dev)).describe()}; torch {torch.__version__}", rows,
                            ["part", "figure", "detail", "peak MB"]))
    res.goals.append(Goal(f"the GPU check runs in under {BUDGET_S // 60} minutes", res.seconds <= BUDGET_S,
                          f"({res.seconds:.0f} s)"))
    if dev.type != "cuda":
        res.notes.append("No CUDA device: tiny sizes on the CPU, only to check the code paths; the figures say "
                         "nothing about a GPU.")
    return res


if __name__ == "__main__":
    import argparse

    from bench._common import print_result

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cuda, cuda:1, ... (default: the current CUDA device)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes")
    a = ap.parse_args()
    print_result(run(quick=a.quick, device=a.device))
