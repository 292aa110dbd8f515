"""An NSD-sized benchmark dataset in EXACTLY the released Algonauts 2023 layout (issue 29).

What the release holds, per subject, at the real counts (``--scale 1``):

=========  ========  =====  =========  =========
subject    training  test   lh         rh
=========  ========  =====  =========  =========
subj01     9,841     159    19,004     20,544
subj02     9,841     159    19,004     20,544
subj03     9,082     293    19,004     20,544
subj04     8,779     395    19,004     20,544
subj05     9,841     159    19,004     20,544
subj06     9,082     293    18,978     20,220
subj07     9,841     159    19,004     20,544
subj08     8,779     395    18,981     20,530
=========  ========  =====  =========  =========

Image counts: the Algonauts 2023 release (Gifford et al. 2023, "The Algonauts Project 2023
Challenge", arXiv:2301.03198, data description; subject 1's also in the demo-brain spec).
Vertex counts: read from the REAL per-subject noise-ceiling files of the release in
``<data root>/algonauts2023_noise_ceiling/subjNN/{lh,rh}.npy`` (their lengths are the challenge
vertex counts; :data:`NSD_TRAIN_TEST` and the table above hold the same numbers). 75,086
training rows in all, 11.9 GB of float32 responses.

Written as released: ``training_split/training_images`` named ``train-NNNN_nsd-XXXXX.png``
(0-based NSD ids), ``training_split/training_fmri/{lh,rh}_training_fmri.npy`` float32,
``test_split/test_images`` WITHOUT test fMRI, ``roi_masks`` on fsaverage (163,842 vertices per
hemisphere), no repetitions, no ``manifest.json`` (a ``BENCHMARK_DATA.txt`` at the top says what
it is; the loader ignores it, and ``_sources/`` and ``_noise_ceiling/``: the noise ceilings of the
written vertices for ``precompute --noise-ceiling``; at ``--scale 1`` they equal the real files,
which ``precompute`` also finds by itself in the data root).

* Challenge vertices: real fsaverage atlases (``<data root>/fsaverage_labels``): every
  PALS_B12 visuotopic vertex, then the Destrieux occipital and ventral-temporal labels in the
  order of :data:`brainviz.data.surfaces.VISUAL_DESTRIEUX` until the subject's count (the last
  label partly, at random). ROI classes follow the atlas (prf-visualrois and streams from the
  PALS areas; floc-* ids on a random 10 % of ventral / lateral vertices): realistic in place and
  size, not the real functional localizers.
* Images: the 1,000 NSD shared1000 images of the data root (the catalog of
  :func:`brainviz.data.images.load_nsd_shared1000`) keep their real NSD ids and are in every
  subject's training set (NSD's shared images, seen by all 8 subjects; below ``--scale`` ~0.2 as many
  of them as half the smallest training set); every other id is drawn
  without replacement from the other 72,000 NSD ids (no id twice within a subject, test ids
  disjoint from training ids); every image file is a hard link to one of the 1,000 PNGs (copied
  once into ``_sources/``, which the loader ignores). So there
  are ~70,000 distinct image keys (as NSD's ~73,000) but only 1,000 distinct contents: the
  feature cache computes each content once (:mod:`brainviz.features.cache`), so the CPU run
  stays hours-free.
* Responses: ``sqrt(nc) * s + sqrt(1 - nc) * e`` per vertex, ``nc`` the subject's REAL noise
  ceiling (fraction), ``s`` = a 16-factor latent of the image CONTENT times per-vertex weights
  (the same content gives the same signal in every subject), ``e`` N(0, 1) noise. Written row
  chunk by row chunk through ``np.lib.format.open_memmap`` (never held in memory; each chunk
  from ``default_rng([seed, subject, hemi, chunk])``, so deterministic). Scores on it measure
  nothing about brains (training and evaluation images share contents): it is for time and
  memory only.

``--scale`` multiplies every image and vertex count (``--image-scale`` / ``--vertex-scale``
set one of them), at least 24 training images, 4 test images and 40 vertices per hemisphere.

Usage::

    python bench/make_nsd_release.py --out bench/out/nsd_release --scale 1       # all of it (12 GB)
    python bench/make_nsd_release.py --out /tmp/nsd_small --scale 0.01           # CI size (8 x 98 x 395)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brainviz.data.algonauts import write_subject  # noqa: E402
from brainviz.data.surfaces import VISUAL_DESTRIEUX  # noqa: E402
from brainviz.errors import BrainVizDataError  # noqa: E402
from brainviz.names import HEMIS, N_FSAVERAGE, ROI_CLASSES  # noqa: E402
from brainviz.paths import FSAVERAGE_LABELS, NOISE_CEILINGS, resolve_data_root  # noqa: E402

__all__ = ["NSD_TRAIN_TEST", "NSD_VERTICES", "make_release", "release_counts", "challenge_masks"]

#: (training images, test images) of the 8 subjects of the Algonauts 2023 release
NSD_TRAIN_TEST = ((9841, 159), (9841, 159), (9082, 293), (8779, 395),
                  (9841, 159), (9082, 293), (9841, 159), (8779, 395))
#: challenge vertices (lh, rh) of the 8 subjects (the lengths of the released noise-ceiling files)
NSD_VERTICES = ((19004, 20544), (19004, 20544), (19004, 20544), (19004, 20544),
                (19004, 20544), (18978, 20220), (19004, 20544), (18981, 20530))
N_NSD_IDS = 73_000
N_FACTORS = 16
#: per-vertex noise ceilings of the written vertices (``precompute --noise-ceiling``; the loader ignores it)
NC_FOLDER = "_noise_ceiling"
MIN_TRAIN, MIN_TEST, MIN_VERTICES = 24, 4, 40
#: lateral temporal and parietal Destrieux labels: not challenge vertices here (they reach far forward)
_FORWARD = ("G_temporal_inf", "S_temporal_inf", "G_temporal_middle", "G_parietal_sup",
            "S_intrapariet_and_P_trans", "G_pariet_inf-Angular", "G_precuneus")


def _scaled(n: int, scale: float, least: int) -> int:
    return max(least, int(round(n * scale)))


def release_counts(n_subjects: int = 8, image_scale: float = 1.0, vertex_scale: float = 1.0,
                   data_root: str | Path | None = None) -> dict[str, dict[str, int]]:
    """{subjNN: {"train", "test", "lh", "rh"}} at the given scales (vertex counts checked against
    the real noise-ceiling files when they are in the data root)."""
    if not 1 <= n_subjects <= 8:
        raise BrainVizDataError("--subjects", f"NSD has 8 subjects, got {n_subjects}")
    if not (0 < image_scale <= 1 and 0 < vertex_scale <= 1):
        raise BrainVizDataError("--scale", f"scales must be in (0, 1], got {image_scale}, {vertex_scale}")
    try:
        nc_dir = resolve_data_root(data_root) / NOISE_CEILINGS
    except BrainVizDataError:
        nc_dir = None
    out = {}
    for s in range(n_subjects):
        name = f"subj{s + 1:02d}"
        if nc_dir is not None and (nc_dir / name / "lh.npy").is_file():
            real = tuple(int(np.load(nc_dir / name / f"{h}.npy", mmap_mode="r").shape[0]) for h in HEMIS)
            if real != NSD_VERTICES[s]:
                raise BrainVizDataError(nc_dir / name, f"vertex counts {real} differ from NSD's {NSD_VERTICES[s]}")
        n_train, n_test = NSD_TRAIN_TEST[s]
        out[name] = {"train": _scaled(n_train, image_scale, MIN_TRAIN), "test": _scaled(n_test, image_scale, MIN_TEST),
                     **{h: _scaled(NSD_VERTICES[s][i], vertex_scale, MIN_VERTICES) for i, h in enumerate(HEMIS)}}
    return out


def _annot(hemi: str, atlas: str, data_root) -> tuple[np.ndarray, list[str]]:
    """Full-resolution fsaverage labels (163,842,) and label names of ``<hemi>.<atlas>.annot``."""
    import nibabel.freesurfer as nfs

    path = resolve_data_root(data_root) / FSAVERAGE_LABELS / f"{hemi}.{atlas}.annot"
    if not path.is_file():
        raise BrainVizDataError(path, "fsaverage annotation is missing (see the data root's README)")
    labels, _, names = nfs.read_annot(str(path))
    if labels.shape[0] != N_FSAVERAGE:
        raise BrainVizDataError(path, f"expected {N_FSAVERAGE} fsaverage vertices, got {labels.shape[0]}")
    return np.asarray(labels), [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def challenge_masks(counts: dict[str, int], full: dict[str, int], rng: np.random.Generator, data_root=None
                    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """(surface masks hemi -> (163842,) 0/1, ROI ids class -> hemi -> (n_hemi,)): ``full[h]`` vertices
    picked from the atlases (module docstring), then a random ``counts[h]`` of them (scaled versions)."""
    masks, rois = {}, {cls: {} for cls in ROI_CLASSES}
    for h in HEMIS:
        pals, pals_names = _annot(h, "PALS_B12_Visuotopic", data_root)
        destr, destr_names = _annot(h, "aparc.a2009s", data_root)
        pals_name = np.array(pals_names + [""])[pals]  # label -1 (none) -> ""
        chosen = list(np.flatnonzero(np.char.startswith(pals_name, "Visuotopic.")))
        taken = np.zeros(N_FSAVERAGE, bool)
        taken[chosen] = True
        for label in VISUAL_DESTRIEUX:
            if len(chosen) >= full[h] or label in _FORWARD or label not in destr_names:
                continue
            idx = np.flatnonzero((destr == destr_names.index(label)) & ~taken)
            need = full[h] - len(chosen)
            if len(idx) > need:
                idx = np.sort(rng.choice(idx, need, replace=False))
            chosen += list(idx)
            taken[idx] = True
        if len(chosen) < full[h]:  # not reached at NSD's counts; fill from the rest of the hemisphere
            chosen += list(rng.choice(np.flatnonzero(~taken), full[h] - len(chosen), replace=False))
        chosen = np.asarray(chosen)
        chosen = np.sort(chosen[rng.permutation(len(chosen))[:counts[h]]])
        m = np.zeros(N_FSAVERAGE, np.int64)
        m[chosen] = 1
        masks[h] = m
        names = pals_name[chosen]
        prf = {"Visuotopic.V1v": 1, "Visuotopic.V1d": 2, "Visuotopic.V2v": 3, "Visuotopic.V2d": 4,
               "Visuotopic.VP": 5, "Visuotopic.V3": 6, "Visuotopic.V4v": 7}
        rois["prf-visualrois"][h] = np.array([prf.get(n, 0) for n in names], np.int64)
        stream = {**{k: 1 for k in prf if k != "Visuotopic.V4v"}, "Visuotopic.V4v": 2, "Visuotopic.V8": 5,
                  "Visuotopic.LO": 6, "Visuotopic.MTplus": 6, "Visuotopic.V3A": 4, "Visuotopic.V7": 7}
        rois["streams"][h] = np.array([stream.get(n, 5) for n in names], np.int64)
        higher = rois["streams"][h] >= 5
        for cls in ("floc-bodies", "floc-faces", "floc-places", "floc-words"):
            ids = np.zeros(len(chosen), np.int64)
            pick = higher & (rng.random(len(chosen)) < 0.1)
            ids[pick] = rng.integers(1, len(ROI_CLASSES[cls]), int(pick.sum()))
            rois[cls][h] = ids
    return masks, rois


def _subject_ids(counts: dict[str, dict[str, int]], shared_ids: np.ndarray, rng: np.random.Generator
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{subject: (training NSD ids, test NSD ids)}: the shared ids in every training set (as many as
    the scaled count allows), the rest disjoint across subjects from the other NSD ids."""
    others = rng.permutation(np.setdiff1d(np.arange(N_NSD_IDS), shared_ids))
    n_shared = min(len(shared_ids), min(c["train"] for c in counts.values()) // 2)
    shared = np.sort(rng.choice(shared_ids, n_shared, replace=False))
    out, pos = {}, 0
    for name, c in counts.items():
        n_own = c["train"] - n_shared + c["test"]
        if pos + n_own > len(others):
            raise BrainVizDataError("--scale", "more images than NSD has ids")
        own = others[pos:pos + n_own]
        pos += n_own
        train = rng.permutation(np.concatenate([shared, own[:c["train"] - n_shared]]))
        out[name] = (train, own[c["train"] - n_shared:])
    return out


def _write_responses(path: Path, content: np.ndarray, latent: np.ndarray, weights: np.ndarray, nc: np.ndarray,
                     seed: list[int], chunk_bytes: int) -> None:
    """(n_rows, V) float32 responses written chunk by chunk through a memmap (temp file, renamed)."""
    n_rows, n_cols = len(content), weights.shape[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, n_cols))
    a, b = np.sqrt(nc).astype(np.float32), np.sqrt(1 - nc).astype(np.float32)
    step = max(1, chunk_bytes // (4 * max(1, n_cols)))
    for k, i0 in enumerate(range(0, n_rows, step)):
        rows = slice(i0, min(n_rows, i0 + step))
        signal = latent[content[rows]] @ weights
        noise = np.random.default_rng([*seed, k]).standard_normal(signal.shape, dtype=np.float32)
        mm[rows] = a * signal + b * noise
    mm.flush()
    del mm
    tmp.replace(path)


def make_release(out: str | Path, *, scale: float = 1.0, image_scale: float | None = None,
                 vertex_scale: float | None = None, n_subjects: int = 8, seed: int = 0,
                 data_root: str | Path | None = None, chunk_mb: int = 64, progress: bool = False) -> Path:
    """Write the dataset under ``out`` (``subj01`` ... ``subjNN``); returns ``out``."""
    from brainviz.data.images import load_nsd_shared1000

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BrainVizDataError(out, "output folder is not empty")
    counts = release_counts(n_subjects, image_scale or scale, vertex_scale or scale, data_root)
    full_counts = release_counts(n_subjects, 1.0, 1.0, data_root)
    catalog = load_nsd_shared1000(data_root)
    rng = np.random.default_rng([seed, 29])
    ids = _subject_ids(counts, np.asarray(catalog.ids), rng)
    latent = rng.standard_normal((len(catalog.paths), N_FACTORS), dtype=np.float32)
    shared_pos = {int(i): k for k, i in enumerate(catalog.ids)}
    nc_root = None
    try:
        nc_root = resolve_data_root(data_root) / NOISE_CEILINGS
    except BrainVizDataError:
        pass
    out.mkdir(parents=True, exist_ok=True)
    sources = out / "_sources"  # the 1,000 PNGs once; every image file is a hard link to one of them
    sources.mkdir()
    pngs = []
    for p in catalog.paths:
        pngs.append(sources / Path(p).name)
        shutil.copyfile(p, pngs[-1])
    for s, (name, c) in enumerate(counts.items()):
        t0 = time.perf_counter()
        srng = np.random.default_rng([seed, 29, s])
        masks, rois = challenge_masks(c, full_counts[name], srng, data_root)

        def content(nsd_ids: np.ndarray) -> np.ndarray:  # which of the 1,000 PNGs each id shows
            return np.array([shared_pos.get(int(i), int(i) % len(catalog.paths)) for i in nsd_ids])

        train_ids, test_ids = ids[name]
        train = [(f"train-{k + 1:04d}_nsd-{i:05d}.png", pngs[j])
                 for k, (i, j) in enumerate(zip(train_ids, content(train_ids)))]
        test = [(f"test-{k + 1:04d}_nsd-{i:05d}.png", pngs[j])
                for k, (i, j) in enumerate(zip(test_ids, content(test_ids)))]
        d = write_subject(out / name, train_images=train, test_images=test, surface_masks=masks,
                          roi_challenge=rois, train_fmri=None, link_images=True)
        for hi, h in enumerate(HEMIS):
            nc_file = None if nc_root is None else nc_root / name / f"{h}.npy"
            if nc_file is not None and nc_file.is_file():
                nc = np.clip(np.load(nc_file).astype(np.float64) / 100, 0, 1)
                nc = nc[np.sort(srng.choice(len(nc), c[h], replace=False))] if c[h] < len(nc) else nc
            else:
                nc = srng.beta(2, 3, c[h])
            nc_out = out / NC_FOLDER / name / f"{h}.npy"  # the ceilings of these vertices, in percent
            nc_out.parent.mkdir(parents=True, exist_ok=True)
            np.save(nc_out, (100 * nc).astype(np.float32))
            weights = (srng.standard_normal((N_FACTORS, c[h])) / np.sqrt(N_FACTORS)).astype(np.float32)
            _write_responses(d / "training_split" / "training_fmri" / f"{h}_training_fmri.npy",
                             content(train_ids), latent, weights, nc, [seed, s, hi], chunk_mb * 2**20)
        if progress:
            gb = c["train"] * (c["lh"] + c["rh"]) * 4 / 2**30
            print(f"{name}: {c['train']} training x {c['lh'] + c['rh']} vertices float32 ({gb:.2f} GB), "
                  f"{c['test']} test images, in {time.perf_counter() - t0:.1f} s", flush=True)
    n_keys = len({int(i) for tr, te in ids.values() for i in np.concatenate([tr, te])})
    (out / "BENCHMARK_DATA.txt").write_text(
        "BrainViz NSD-sized BENCHMARK dataset (bench/make_nsd_release.py): SIMULATED responses in the released\n"
        "Algonauts 2023 layout, for time and memory measurements only.\n"
        + json.dumps({"scale": scale, "image_scale": image_scale or scale, "vertex_scale": vertex_scale or scale,
                      "seed": seed, "distinct_image_keys": n_keys, "distinct_contents": len(catalog.paths),
                      "subjects": counts}, indent=1) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (must be empty or absent)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every image and vertex count (1 = NSD)")
    ap.add_argument("--image-scale", type=float, default=None, help="images only (default: --scale)")
    ap.add_argument("--vertex-scale", type=float, default=None, help="vertices only (default: --scale)")
    ap.add_argument("--subjects", type=int, default=8, help="the first N of NSD's 8 subjects")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", type=Path, default=None, help="the shared data folder (default: ../shared/data)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        make_release(args.out, scale=args.scale, image_scale=args.image_scale, vertex_scale=args.vertex_scale,
                     n_subjects=args.subjects, seed=args.seed, data_root=args.data_root, progress=True)
    except BrainVizDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"written {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
