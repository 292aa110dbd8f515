"""Generate a synthetic NSD-sized dataset in the real Algonauts 2023 layout (random values).

The real release: 8 subjects x ~9,000 training images x ~40,000 challenge-space
vertices (subject 1: 19,004 lh + 20,544 rh) float32, ~12 GB of responses, on
fsaverage (163,842 vertices per hemisphere), plus 159-395 test images without
responses. This script writes the same layout and shapes with N(0, 1) values
so the out-of-core paths can be exercised without the download:

* responses: written with ``np.lib.format.open_memmap`` in row chunks (never
  held in memory; each chunk's values come from ``default_rng([seed, subject,
  hemi, chunk])``, so the output is deterministic);
* images: every name hard-links one tiny PNG (falls back to copies);
* ROI masks and mappings: random ROI ids, written by
  :func:`brainviz.data.algonauts.write_subject`.

Usage::

    python bench/make_nsd_sized.py --out bench/out/nsd_sized                    # 2 x 9,000 x 39,548 (~2.8 GB)
    python bench/make_nsd_sized.py --out /big/disk/nsd --subjects 8             # the full ~12 GB
    python bench/make_nsd_sized.py --out /tmp/tiny --train 50 --lh 300 --rh 320 # tests
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brainviz.data.algonauts import write_subject  # noqa: E402
from brainviz.names import HEMIS, N_FSAVERAGE, N_FSAVERAGE5, ROI_CLASSES  # noqa: E402

#: challenge-space vertices (lh, rh) of the 8 NSD subjects in Algonauts 2023
NSD_VERTICES = [(19004, 20544), (19004, 20544), (19004, 20544), (19004, 20544),
                (19004, 20544), (18978, 20220), (19004, 20544), (18981, 20530)]


def _tiny_png(path: Path) -> Path:
    from PIL import Image

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 127, np.uint8)).save(path)
    return path


def write_responses(path: Path, n_rows: int, n_cols: int, seed: list[int], chunk_bytes: int = 64 * 2**20) -> None:
    """(n_rows, n_cols) float32 N(0, 1) .npy written chunk by chunk through a memmap."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, n_cols))
    step = max(1, chunk_bytes // (4 * max(1, n_cols)))
    for k, i0 in enumerate(range(0, n_rows, step)):
        rows = min(step, n_rows - i0)
        mm[i0:i0 + rows] = np.random.default_rng([*seed, k]).standard_normal((rows, n_cols), dtype=np.float32)
    mm.flush()
    del mm
    tmp.replace(path)


def make_dataset(out: str | Path, n_subjects: int = 2, n_train: int = 9000, n_test: int = 159,
                 n_lh: int | None = None, n_rh: int | None = None, surface: str = "fsaverage",
                 seed: int = 0, chunk_mb: int = 64, progress: bool = False) -> Path:
    """Write ``n_subjects`` subjects (``subj01``...) under ``out``; returns ``out``.

    ``n_lh`` / ``n_rh`` default to the real subjects' vertex counts.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_surface = N_FSAVERAGE if surface == "fsaverage" else N_FSAVERAGE5
    png = _tiny_png(out / "_sources" / "gray.png")
    manifest = {"name": "NSD-sized synthetic (random values, benchmark only)", "simulated": True,
                "surface": surface, "seed": seed, "subjects": {}}
    for s in range(n_subjects):
        name = f"subj{s + 1:02d}"
        lh, rh = NSD_VERTICES[s % len(NSD_VERTICES)]
        counts = {"lh": n_lh or lh, "rh": n_rh or rh}
        if max(counts.values()) > n_surface:
            raise ValueError(f"{counts} vertices do not fit on {surface} ({n_surface} per hemisphere)")
        rng = np.random.default_rng([seed, s, 999])
        ids = rng.choice(73_000, n_train + n_test, replace=False) + 1
        train = [(f"train-{i + 1:04d}_nsd-{ids[i]:05d}.png", png) for i in range(n_train)]
        test = [(f"test-{i + 1:04d}_nsd-{ids[n_train + i]:05d}.png", png) for i in range(n_test)]
        masks, rois = {}, {}
        for h in HEMIS:
            m = np.zeros(n_surface, np.int64)
            m[np.sort(rng.choice(n_surface, counts[h], replace=False))] = 1
            masks[h] = m
        for cls, mp in ROI_CLASSES.items():
            rois[cls] = {h: rng.integers(0, len(mp), counts[h]) for h in HEMIS}
        t0 = time.perf_counter()
        d = write_subject(out / name, train_images=train, test_images=test, surface_masks=masks,
                          roi_challenge=rois, train_fmri=None, link_images=True)
        for hi, h in enumerate(HEMIS):
            write_responses(d / "training_split" / "training_fmri" / f"{h}_training_fmri.npy",
                            n_train, counts[h], [seed, s, hi], chunk_mb * 2**20)
        manifest["subjects"][name] = {"dataset": "nsd", "n_train": n_train, "n_test": n_test,
                                      "vertices": counts}
        if progress:
            gb = n_train * sum(counts.values()) * 4 / 2**30
            print(f"{name}: {n_train} x {sum(counts.values())} float32 ({gb:.2f} GB) in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "nsd_sized")
    ap.add_argument("--subjects", type=int, default=2, help="number of subjects (real NSD: 8)")
    ap.add_argument("--train", type=int, default=9000, help="training images per subject (real: 9,000-9,841)")
    ap.add_argument("--test", type=int, default=159, help="test images per subject (no responses, as released)")
    ap.add_argument("--lh", type=int, default=None, help="lh vertices (default: the real subject's)")
    ap.add_argument("--rh", type=int, default=None, help="rh vertices (default: the real subject's)")
    ap.add_argument("--surface", choices=("fsaverage", "fsaverage5"), default="fsaverage")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-mb", type=int, default=64, help="rows written per chunk (MB)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    make_dataset(args.out, args.subjects, args.train, args.test, args.lh, args.rh, args.surface, args.seed,
                 args.chunk_mb, progress=True)
    print(f"written {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
