"""SIMULATION CHECK — reads the demo brain's ground truth (planted regions); never used by the app.

Does the in-silico contrast "category vs everything else" (NSD images by tag, leaving out the
subject's training images) find the regions the demo brain planted for that category?
Score: AUC of the per-vertex Welch t map for planted-region vertices vs all other vertices.

Used by tests/brainviz/test_insilico.py (a small demo brain) and runnable on a built store::

    python tests/insilico_recovery.py --store data/brainviz.duckdb --demo data/demo_brain [--subject subj01]
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from brainviz.data.algonauts import load_dataset

#: Check name -> (tag categories of set A (any of), planted demo-brain regions they should light up).
#: The demo brain plants TWO places regions with opposite scene preferences (report 004's PPA sub-clusters):
#: an outdoor-preferring one (localised by NSD's 'places' tag, which is high mostly for outdoor scenes)
#: and an indoor-preferring one (localised by the 'indoor' tag: rooms score low on 'places').
PLANTED = {"faces": (("faces",), ("faces",)),
           "places-outdoor": (("places",), ("places-outdoor",)),
           "places-indoor": (("indoor",), ("places-indoor",)),
           "food": (("food",), ("food",))}
#: Extra rows reported by the script (not asserted): one contrast for both places regions together.
DETAIL = {"places, both regions (tag 'places' only)": (("places",), ("places-indoor", "places-outdoor")),
          "places, both regions (scenes: 'places' or 'indoor')": (("places", "indoor"),
                                                                 ("places-indoor", "places-outdoor"))}


def planted_regions(demo_dir: str | Path, subject: str) -> np.ndarray:
    """(V,) planted region name per vertex (lh then rh) from ``<demo>/ground_truth/<subject>/`` (GROUND TRUTH)."""
    return load_dataset(demo_dir, validate=False).planted_regions(subject)


def recovery_aucs(pred: np.ndarray, keys: Sequence[str], tags: pd.DataFrame, planted: np.ndarray,
                  categories: Mapping[str, tuple] = PLANTED, threshold: float = 0.5,
                  q: float = 0.05) -> pd.DataFrame:
    """Per category: images in A / B, AUC of the t map (planted vs other vertices), FDR-significant
    vertices, and the fraction of the planted vertices among the A > B significant ones.

    pred : (n_images, V) predictions of the images ``keys`` (already without training images).
    """
    from brainviz import insilico as I

    pos = {k: i for i, k in enumerate(keys)}
    rows = []
    for name, (cats, regions) in categories.items():
        a, b = I.tag_sets(tags, cats, threshold=threshold, keys=keys)
        res = I.contrast(pred[[pos[k] for k in a]], pred[[pos[k] for k in b]], q=q)
        truth = np.isin(planted, list(regions))
        sig_pos = res.significant & (res.t > 0)
        rows.append({"check": name, "set_a": " or ".join(cats), "n_a": len(a), "n_b": len(b), "planted_vertices": int(truth.sum()),
                     "auc": I.auc_of_map(res.t, truth), "n_sig_pos": int(sig_pos.sum()),
                     "planted_frac_of_sig": float(truth[sig_pos].mean()) if sig_pos.any() else float("nan")})
    return pd.DataFrame(rows)


def ridge_check(out_dir: str | Path, seed: int = 0, categories: Mapping[str, tuple] = PLANTED) -> pd.DataFrame:
    """The CI-sized check: one demo-brain subject (``seed``; the same subj01 as the full demo of that seed),
    a ridge encoder trained on its 450 training images, predictions for the other 550 NSD shared images."""
    from brainviz.catalog import subject_images
    from brainviz.data.algonauts import load_dataset
    from brainviz.data.images import load_nsd_shared1000
    from brainviz.demo_brain import build_demo_brain
    from brainviz.encoders.ridge import RidgeEncoder
    from brainviz.features.extract import extract_features

    demo = build_demo_brain(Path(out_dir) / f"demo_seed{seed}", n_subjects=1, include_vim1=False, seed=seed,
                            progress=False)
    sub = load_dataset(demo).subjects["subj01"]
    train = subject_images(sub).train_keys
    nsd = load_nsd_shared1000(None)
    fs = extract_features("efficientnet-lite0", nsd.paths, keys=nsd.keys, progress=False)
    encoder = RidgeEncoder().fit(fs.subset(train), sub.responses("train"))
    held_out = [k for k in nsd.keys if k not in set(train)]
    pred = encoder.predict(fs.subset(held_out))
    return recovery_aucs(pred, held_out, nsd.scores, planted_regions(demo, "subj01"), categories)


def store_check(store_path: str | Path, demo_dir: str | Path, subjects: Sequence[str] | None = None,
                model_id: str | None = None, detail: bool = True) -> pd.DataFrame:
    """:func:`recovery_aucs` for subjects of a built store, predicting with its live (UE) model."""
    import time

    from brainviz import insilico as I
    from brainviz.live import LivePredictor
    from brainviz.store.reader import Store

    store = Store(store_path)
    predictor = LivePredictor.from_store(store, model_id)
    tags = store.image_tags()
    imgs = store.images()
    tagged = imgs[imgs["dataset_id"].notna() & imgs["image_key"].isin(tags.index)]["image_key"].tolist()
    out = []
    for s in subjects or [x for x in predictor.subjects if x in set(store.subjects()["subject"])]:
        train = set(store.image_splits(s, "train")["image_key"])
        keys = [k for k in tagged if k not in train]
        if not keys:
            continue
        t0 = time.perf_counter()
        pred, how = I.predict_store_images(predictor, store, keys, s)
        df = recovery_aucs(pred, keys, tags, planted_regions(demo_dir, s), {**PLANTED, **(DETAIL if detail else {})})
        df.insert(0, "subject", s)
        df["model"] = predictor.model_id
        df["predicted_from"] = how
        df["predict_s"] = round(time.perf_counter() - t0, 1)
        out.append(df)
    return pd.concat(out, ignore_index=True)


if __name__ == "__main__":
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store")
    p.add_argument("--demo")
    p.add_argument("--ridge-seed", type=int, default=None, help="run the CI-sized ridge check with this seed instead")
    p.add_argument("--out", default="/tmp/brainviz_insilico_check", help="folder for --ridge-seed's demo brain")
    p.add_argument("--subject", action="append")
    p.add_argument("--model", default=None)
    a = p.parse_args()
    pd.set_option("display.width", 200)
    if a.ridge_seed is not None:
        print(ridge_check(a.out, a.ridge_seed, {**PLANTED, **DETAIL}).to_string(index=False,
                                                                            float_format=lambda v: f"{v:.3f}"))
        raise SystemExit(0)
    print(store_check(a.store, a.demo, a.subject, a.model).to_string(index=False,
                                                                                  float_format=lambda v: f"{v:.3f}"))
