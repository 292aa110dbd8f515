"""Build the simulated demo brain (spec: ../shared/specs/demo-brain.md).

Output layout (docs/ARCHITECTURE.md, "Demo brain output")::

    DIR/manifest.json
    DIR/subj01 .. subjNN/          Algonauts 2023 layout + test_fmri + *_fmri_repeats
    DIR/ground_truth/subjNN/       {lh,rh}_region.npy, regions.json, {lh,rh}_prf.npy,
                                   {lh,rh}_target_nc.npy, {lh,rh}_{train,test}_clean.npy, patches.json

``*_target_nc.npy`` and the manifest's ``target_nc_median`` are percent, like the real NSD
noise-ceiling maps they are drawn from (the code works in fractions and converts on writing).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import atomic_dir, save_npy
from ..data.algonauts import write_subject
from ..names import HEMIS, PERCENT, ROI_CLASSES
from ..data.images import ImageSet, load_nsd_shared1000, load_vim1
from ..paths import resolve_data_root
from . import noise as noisemod
from .anatomy import PATCHES, REGIONS, hemi_template, subject_anatomy
from .tuning import LOWLEVEL_WEIGHT, StimulusFeatures, hemi_clean_responses, snr_score, stimulus_features, \
    subject_prfs

GENERATOR_VERSION = "1.0"
#: Field of view (degrees) of each dataset's images: NSD 8.4 deg, vim-1 20 deg.
FIELD_DEG = {"nsd": 8.4, "vim1": 20.0}
NSD_TEST_FRACTION = 0.2          # 200 of 1,000
NSD_TRAIN_FRACTION = 450 / 800   # of the non-test images, per subject
VIM1_TEST_FRACTION = 120 / 1750

REGION_INFO = {
    "early": ("V1v, V1d, V2v, V2d, V3v, V3d, hV4 (PALS_B12)",
              "CSS pRF: (Gaussian-weighted Gabor contrast energy) ** 0.5"),
    "faces": ("OFA, FFA-1, FFA-2", "HED faces (Towards > Away-from) + 0.25 animals"),
    "bodies": ("EBA, FBA-1, FBA-2", "HED bodies + people + animals"),
    "places-indoor": ("PPA (anterior half), RSC", "HED places + indoor"),
    "places-outdoor": ("PPA (posterior half), OPA", "HED places + outdoor"),
    "food": ("food patch between FFA and PPA (no Algonauts ROI)", "HED food (Ingestible-object)"),
    "words": ("OWFA, VWFA-1, VWFA-2 (left-lateralised)", "HED words (Word, Character)"),
    "mixed": ("all other visual-cortex vertices", "weak, spatially smooth mix of coarse pRFs, pixel statistics and categories"),
}


def _split_nsd(n_pool: int, n_subjects: int, rng: np.random.Generator):
    """Common test rows and per-subject training rows (indices into the pool)."""
    perm = rng.permutation(n_pool)
    n_test = max(1, int(round(NSD_TEST_FRACTION * n_pool)))
    test, rest = np.sort(perm[:n_test]), perm[n_test:]
    n_train = max(1, int(round(NSD_TRAIN_FRACTION * len(rest))))
    trains = [np.sort(np.random.default_rng(rng.integers(2**32)).choice(rest, n_train, replace=False))
              for _ in range(n_subjects)]
    return test, trains


def _image_names(images: ImageSet, rows: np.ndarray, split: str) -> list[tuple[str, Path]]:
    # rows are ordered by dataset id, as in the Algonauts release
    rows = rows[np.argsort(np.asarray(images.ids)[rows], kind="stable")]
    out = []
    for i, r in enumerate(rows):
        src = Path(images.paths[r])
        out.append((f"{split}-{i + 1:04d}_{images.datasets[r]}-{int(images.ids[r]):05d}{src.suffix.lower()}", src))
    return out, rows


def _simulate_subject(name: str, dataset: str, images: ImageSet, feats: StimulusFeatures,
                      train_rows: np.ndarray, test_rows: np.ndarray, real_nc: np.ndarray, snr_scale: float,
                      rng: np.random.Generator, out: Path, gt_root: Path, data_root: str) -> dict:
    train_items, train_rows = _image_names(images, train_rows, "train")
    test_items, test_rows = _image_names(images, test_rows, "test")
    rows = np.concatenate([train_rows, test_rows])
    sub_feats = feats.rows(rows)
    n_train = len(train_rows)

    anat, prfs, clean, scores = {}, {}, {}, {}
    for h in HEMIS:
        anat[h] = subject_anatomy(h, rng, data_root)
        prfs[h] = subject_prfs(anat[h], rng)
        clean[h] = hemi_clean_responses(anat[h], prfs[h], sub_feats, rng)
        scores[h] = snr_score(anat[h], prfs[h], rng)
    n = {h: anat[h].template.n for h in HEMIS}
    target = noisemod.assign_target_nc(np.concatenate([scores[h] for h in HEMIS]), real_nc, rng, snr_scale)
    reps_all, sig_all = noisemod.simulate_trials(np.concatenate([clean[h] for h in HEMIS], axis=1), target, rng)
    avg_all = reps_all.mean(axis=1)

    cut = {"lh": slice(0, n["lh"]), "rh": slice(n["lh"], n["lh"] + n["rh"])}
    tr, te = slice(0, n_train), slice(n_train, len(rows))
    write_subject(
        out / name,
        train_images=train_items, test_images=test_items,
        surface_masks={h: anat[h].template.surface_mask.astype(np.int64) for h in HEMIS},
        roi_challenge={cls: {h: anat[h].rois[cls] for h in HEMIS} for cls in ROI_CLASSES},
        train_fmri={h: avg_all[tr, cut[h]] for h in HEMIS},
        test_fmri={h: avg_all[te, cut[h]] for h in HEMIS},
        train_repeats={h: reps_all[tr][:, :, cut[h]] for h in HEMIS},
        test_repeats={h: reps_all[te][:, :, cut[h]] for h in HEMIS},
        link_images=True,
    )
    gt = gt_root / name
    field = FIELD_DEG[dataset]
    for h in HEMIS:
        save_npy(gt / f"{h}_region.npy", anat[h].region.astype(np.int64))
        save_npy(gt / f"{h}_prf.npy", (prfs[h] * field / 2).astype(np.float32))
        save_npy(gt / f"{h}_target_nc.npy", (PERCENT * target[cut[h]]).astype(np.float32))
        save_npy(gt / f"{h}_train_clean.npy", sig_all[tr, cut[h]])
        save_npy(gt / f"{h}_test_clean.npy", sig_all[te, cut[h]])
    (gt / "regions.json").write_text(json.dumps({str(k): v for k, v in REGIONS.items()}, indent=1))
    patches = {h: {p: {"centre_fsaverage5": anat[h].centres[p],
                       "n_vertices": int(anat[h].patch_inside[k].sum()),
                       "region": PATCHES[k].region}
                   for k, p in enumerate(anat[h].patch_names)} for h in HEMIS}
    (gt / "patches.json").write_text(json.dumps(patches, indent=1))
    return {"dataset": dataset, "n_train": int(n_train), "n_test": int(len(test_rows)),
            "snr": "7T-like" if snr_scale == 1.0 else "3T-like", "field_of_view_deg": field,
            "n_repeats": noisemod.N_REPEATS, "vertices": {h: int(n[h]) for h in HEMIS},
            "noise_ceiling_source": f"algonauts2023_noise_ceiling/{name}" + ("" if snr_scale == 1.0 else f" (ncsnr x {snr_scale})"),
            "target_nc_median": float(PERCENT * np.median(target)),
            "semantic_tuning": feats.categories is not None}


def build_demo_brain(out_dir: str | Path, data_root: str | Path | None = None, seed: int = 0,
                     n_subjects: int = 4, include_vim1: bool = True, max_images: int | None = None,
                     progress: bool = True) -> Path:
    """Generate the demo brain into ``out_dir`` (replaced atomically) and return its path.

    Parameters
    ----------
    out_dir : output folder (e.g. ``data/demo_brain``).
    data_root : shared data folder (see :func:`brainviz.paths.resolve_data_root`).
    seed : everything is a deterministic function of it.
    n_subjects : NSD-like subjects ``subj01..`` on the NSD shared1000 images (at most 8,
        the number of real NSD noise-ceiling maps).
    include_vim1 : add one more subject (the next number) on the vim-1 images at 3T-like SNR
        (its higher areas only get pixel-statistics tuning: vim-1 has no tags).
    max_images : use at most this many images per dataset (small builds for tests).
    """
    root = resolve_data_root(data_root)
    n_total = n_subjects + int(include_vim1)
    if not 1 <= n_total <= 8:
        raise ValueError("the demo brain has 1 to 8 subjects (one real noise-ceiling map each)")
    rng = np.random.default_rng(seed)
    for h in HEMIS:
        hemi_template(h, str(root))

    jobs = []
    if n_subjects:
        nsd = load_nsd_shared1000(root)
        pool = np.sort(rng.permutation(len(nsd))[:max_images]) if max_images else np.arange(len(nsd))
        nsd = nsd.subset(pool)
        test, trains = _split_nsd(len(nsd), n_subjects, rng)
        for s in range(n_subjects):
            jobs.append((f"subj{s + 1:02d}", "nsd", nsd, trains[s], test, 1.0))
    if include_vim1:
        vim = load_vim1(root)
        pool = np.sort(rng.permutation(len(vim))[:max_images]) if max_images else np.arange(len(vim))
        vim = vim.subset(pool)
        perm = rng.permutation(len(vim))
        n_test = max(1, int(round(VIM1_TEST_FRACTION * len(vim))))
        jobs.append((f"subj{n_total:02d}", "vim1", vim, np.sort(perm[n_test:]), np.sort(perm[:n_test]),
                     noisemod.SNR_3T))

    feats = {}
    for _, ds, images, *_ in jobs:
        if ds not in feats:
            feats[ds] = stimulus_features(images, progress=progress)

    out_dir = Path(out_dir)
    subjects = {}
    with atomic_dir(out_dir) as tmp:
        gt_root = tmp / "ground_truth"
        bar = tqdm(jobs, desc="demo brain subjects", disable=not progress)
        for k, (name, ds, images, train_rows, test_rows, snr) in enumerate(bar):
            bar.set_postfix_str(name)
            srng = np.random.default_rng([seed, k + 1])
            real_nc = noisemod.load_real_noise_ceiling(name, root)
            subjects[name] = _simulate_subject(name, ds, images, feats[ds], train_rows, test_rows, real_nc, snr,
                                               srng, tmp, gt_root, str(root))
        manifest = {
            "name": "BrainViz simulated demo brain",
            "simulated": True,
            "surface": "fsaverage5",
            "seed": int(seed),
            "subjects": subjects,
            "regions": [{"code": c, "name": r, "rois": REGION_INFO[r][0], "tuning": REGION_INFO[r][1]}
                        for c, r in REGIONS.items()],
            "generator_version": GENERATOR_VERSION,
            "max_images": max_images,
            "notes": ("Responses are simulated. Stimuli: real NSD shared1000 / vim-1 images; semantics: HED tags "
                      "(shared1000_HED.tsv); anatomy: fsaverage5 with Destrieux and PALS_B12 atlases; noise: real "
                      "NSD noise ceilings. No deep-network features are used. Pixel-statistics weight in category "
                      f"regions: {LOWLEVEL_WEIGHT}. Ground truth in ground_truth/ (never read by training)."),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out_dir
