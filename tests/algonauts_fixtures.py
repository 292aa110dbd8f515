"""Write small datasets in the exact Algonauts 2023 layout for tests.

Shapes default to the real subject 1: 19,004 lh and 20,544 rh challenge-space
vertices on fsaverage (163,842 vertices per hemisphere). Images are tiny PNGs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from brainviz.data.algonauts import write_subject
from brainviz.names import HEMIS, N_FSAVERAGE, ROI_CLASSES


def make_subject(root: Path, name: str = "subj01", *, n_lh: int = 19_004, n_rh: int = 20_544,
                 n_surface: int = N_FSAVERAGE, n_train: int = 12, n_test: int = 5,
                 test_fmri: bool = False, repeats: bool = False, seed: int = 0) -> Path:
    """Create ``root/name`` in the Algonauts layout and return its path."""
    rng = np.random.default_rng(seed)
    img_dir = root / "_sources"
    img_dir.mkdir(parents=True, exist_ok=True)

    def image(i: int) -> Path:
        p = img_dir / f"src{i:05d}.png"
        if not p.exists():
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(p)
        return p

    nsd_ids = rng.choice(73_000, n_train + n_test, replace=False)  # 0-based 73k NSD index, as released
    train = [(f"train-{i + 1:04d}_nsd-{nsd_ids[i]:05d}.png", image(i)) for i in range(n_train)]
    test = [(f"test-{i + 1:04d}_nsd-{nsd_ids[n_train + i]:05d}.png", image(n_train + i)) for i in range(n_test)]
    counts = {"lh": n_lh, "rh": n_rh}
    masks = {}
    for h in HEMIS:
        m = np.zeros(n_surface, np.int64)
        m[np.sort(rng.choice(n_surface, counts[h], replace=False))] = 1
        masks[h] = m
    rois = {cls: {h: rng.integers(0, len(mp), counts[h]) for h in HEMIS} for cls, mp in ROI_CLASSES.items()}
    fmri = lambda n: {h: rng.standard_normal((n, counts[h])).astype(np.float32) for h in HEMIS}  # noqa: E731
    reps = lambda n: {h: rng.standard_normal((n, 3, counts[h])).astype(np.float32) for h in HEMIS}  # noqa: E731
    return write_subject(
        root / name, train_images=train, test_images=test, surface_masks=masks, roi_challenge=rois,
        train_fmri=fmri(n_train), test_fmri=fmri(n_test) if test_fmri else None,
        train_repeats=reps(n_train) if repeats else None,
    )
