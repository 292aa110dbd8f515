"""A dataset in EXACTLY the layout of the Algonauts 2023 release, with responses that carry signal.

The release (what users download) has, per subject: ``training_split/training_images`` named
``train-NNNN_nsd-XXXXX.png`` with the 0-based 73k NSD index, ``training_split/training_fmri``,
``test_split/test_images`` WITHOUT ``test_fmri``, ``roi_masks`` on fsaverage (163,842 vertices per
hemisphere; tens of thousands of challenge vertices, of which only those below 10,242 are fsaverage5
vertices), no ``manifest.json``, no single-trial repetitions, no ground truth.

:func:`released_layout` rewrites a small demo brain that way: its NSD subjects, images and
training responses are kept (so the held-out scores mean something), its test fMRI, repetitions,
manifest and ground truth are dropped, and each hemisphere gets extra challenge vertices above
10,242 (real fsaverage vertices of the visual atlases, not shown on fsaverage5), whose responses are
a "donor" vertex's of the same ROI plus noise, as real neighbouring vertices share signal.

Run as a script to write one for the app: ``python tests/released_layout.py OUT_DIR [--subjects 3]``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script from the project root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brainviz.data.algonauts import load_dataset, write_subject  # noqa: E402
from brainviz.names import HEMIS, N_FSAVERAGE, N_FSAVERAGE5  # noqa: E402
from brainviz.paths import FSAVERAGE_LABELS, resolve_data_root  # noqa: E402

#: Labels whose full-resolution fsaverage vertices become extra challenge vertices.
_VISUAL_PALS = ("Visuotopic.V1v", "Visuotopic.V1d", "Visuotopic.V2v", "Visuotopic.V2d", "Visuotopic.V3",
                "Visuotopic.VP", "Visuotopic.V4v", "Visuotopic.V3A", "Visuotopic.V7", "Visuotopic.LO",
                "Visuotopic.MTplus", "Visuotopic.V8")


def _visual_fsaverage_vertices(hemi: str, data_root: Path | None) -> np.ndarray:
    """fsaverage vertices >= 10,242 in a PALS_B12 visuotopic area (real atlas, 163,842-vertex labels)."""
    import nibabel.freesurfer as nfs

    labels, _, names = nfs.read_annot(str(resolve_data_root(data_root) / FSAVERAGE_LABELS
                                          / f"{hemi}.PALS_B12_Visuotopic.annot"))
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    ids = [i for i, n in enumerate(names) if n in _VISUAL_PALS]
    idx = np.flatnonzero(np.isin(labels, ids))
    return idx[idx >= N_FSAVERAGE5]


def released_layout(demo_dir: str | Path, out_dir: str | Path, *, extra_per_hemi: int = 1500, seed: int = 0,
                    data_root: str | Path | None = None) -> Path:
    """Write ``out_dir`` in the released Algonauts 2023 layout from the demo brain ``demo_dir`` (NSD subjects only).

    Parameters
    ----------
    extra_per_hemi : challenge vertices added per hemisphere above fsaverage5's 10,242 (fsaverage only).
    seed : which extra vertices and donors, and their noise.
    """
    demo = load_dataset(demo_dir, validate=False)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    pool = {h: _visual_fsaverage_vertices(h, data_root) for h in HEMIS}
    extra = {h: np.sort(rng.choice(pool[h], min(extra_per_hemi, len(pool[h])), replace=False)) for h in HEMIS}
    for name, sub in demo.subjects.items():
        if not sub.train_images or "nsd" not in sub.summary()["datasets"]:
            continue  # the release holds NSD subjects only
        masks, rois, fmri = {}, {}, {}
        for h in HEMIS:
            fs5 = sub.surface_indices(h)  # fsaverage5 vertices = the same fsaverage vertices
            mask = np.zeros(N_FSAVERAGE, np.int64)
            mask[fs5] = 1
            mask[extra[h]] = 1
            masks[h] = mask
            y = np.asarray(sub.hemi_responses("train", h), np.float32)
            donors = rng.integers(0, len(fs5), len(extra[h]))
            noise = rng.standard_normal((y.shape[0], len(extra[h]))).astype(np.float32)
            y_extra = 0.8 * y[:, donors] + 0.6 * noise
            y_extra = (y_extra - y_extra.mean(0)) / y_extra.std(0)
            fmri[h] = np.concatenate([y, y_extra.astype(np.float32)], axis=1)  # fs5 vertices < extra vertices
            for cls, rc in sub.roi_classes.items():
                rois.setdefault(cls, {})[h] = np.concatenate([rc.challenge[h], rc.challenge[h][donors]])
        write_subject(out / name,
                      train_images=[(p.name, p) for p in sub.train_images],
                      test_images=[(p.name, p) for p in sub.test_images],
                      surface_masks=masks, roi_challenge=rois, train_fmri=fmri, link_images=True)
    return out


def write_noise_ceilings(dataset_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """Per-vertex noise ceilings (percent) in the Algonauts 2023 file layout for every subject of
    ``dataset_dir``: ``out_dir/subjNN/{lh,rh}.npy`` of the subjects' vertex counts (a stand-in for the
    published files, whose counts are those of the real subjects)."""
    ds = load_dataset(dataset_dir, validate=False)
    rng = np.random.default_rng(seed)
    for name, sub in ds.subjects.items():
        d = Path(out_dir) / name
        d.mkdir(parents=True, exist_ok=True)
        for h, n in sub.n_vertices.items():
            np.save(d / f"{h}.npy", (100 * rng.beta(2, 3, n)).astype(np.float32))
    return Path(out_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (replaced)")
    p.add_argument("--subjects", type=int, default=3, help="NSD subjects")
    p.add_argument("--images", type=int, default=300, help="NSD shared1000 images in the pool")
    p.add_argument("--extra", type=int, default=1500, help="extra fsaverage challenge vertices per hemisphere")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from brainviz.demo_brain import build_demo_brain

    tmp = a.out.with_name(a.out.name + ".demo-source")
    build_demo_brain(tmp, n_subjects=a.subjects, include_vim1=False, max_images=a.images, seed=a.seed,
                     progress=True)
    released_layout(tmp, a.out, extra_per_hemi=a.extra, seed=a.seed)
    shutil.rmtree(tmp)
    print(f"released-layout dataset written to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
