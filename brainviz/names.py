"""Shared names and units: the constants several modules use, declared once.

Units
-----
Inside the code and in the store every ratio is a **fraction** in [0, 1]:
noise ceilings (explainable variance), noise-normalized accuracy (r^2 / NC),
retrieval top-1 / top-5, image-tag scores. Percent appears only

* when a number is shown (format with ``f"{x:.0%}"`` or Streamlit's
  ``format="percent"``), and
* in external files that are percent on disk (the Algonauts 2023 / NSD
  noise-ceiling maps in ``<data_root>/algonauts2023_noise_ceiling`` and the
  demo brain's ``ground_truth/*_target_nc.npy``, which follows them); these are
  converted once, where they are read or written (:data:`PERCENT`).

Percentiles (0..100, e.g. the clustering reliability threshold) are ranks, not
a unit, and stay as they are.
"""
from __future__ import annotations

#: Multiply a fraction by this to show it as percent, divide percent files by it when reading them.
PERCENT = 100.0

# --------------------------------------------------------------------------- surfaces
#: Hemispheres, in the order of every concatenated (lh, rh) vertex axis.
HEMIS: tuple[str, ...] = ("lh", "rh")
#: Vertices per hemisphere of the FreeSurfer fsaverage family.
FSAVERAGE_VERTICES: dict[str, int] = {"fsaverage3": 642, "fsaverage4": 2562, "fsaverage5": 10_242,
                                      "fsaverage6": 40_962, "fsaverage": 163_842}
N_FSAVERAGE = FSAVERAGE_VERTICES["fsaverage"]
N_FSAVERAGE5 = FSAVERAGE_VERTICES["fsaverage5"]
#: Surface of a per-hemisphere vertex count found in a dataset.
SURFACE_SIZES: dict[int, str] = {N_FSAVERAGE: "fsaverage", N_FSAVERAGE5: "fsaverage5"}

# --------------------------------------------------------------------------- ROIs
#: The six ROI classes of the Algonauts 2023 release and their id -> name maps.
ROI_CLASSES: dict[str, dict[int, str]] = {
    "prf-visualrois": {0: "Unknown", 1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-bodies": {0: "Unknown", 1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-faces": {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {0: "Unknown", 1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {0: "Unknown", 1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {0: "Unknown", 1: "early", 2: "midventral", 3: "midlateral", 4: "midparietal",
                5: "ventral", 6: "lateral", 7: "parietal"},
}

#: ROI class of the Algonauts release -> column of the store's ``vertices`` table.
ROI_COLUMNS: dict[str, str] = {
    "prf-visualrois": "roi_prf",
    "floc-faces": "roi_faces",
    "floc-bodies": "roi_bodies",
    "floc-places": "roi_places",
    "floc-words": "roi_words",
    "streams": "roi_streams",
}

#: Early visual cortex (prf-visualrois, V1-hV4).
EARLY_ROIS: tuple[str, ...] = ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4")

#: The three ROI sets of report 003 (decoding), both hemispheres concatenated.
ROI_SETS: dict[str, tuple[str, ...]] = {
    "set1": (*EARLY_ROIS, "FFA-1", "FFA-2", "PPA"),
    "set2": ("EBA", "FBA-1", "FBA-2", "mTL-bodies", "OFA", "FFA-1", "FFA-2", "mTL-faces",
             "aTL-faces", "OPA", "PPA", "RSC"),
    "set3": ("early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"),
}

#: Coarse ROI groups used for per-ROI summaries and bars.
ROI_GROUPS: dict[str, tuple[str, ...]] = {
    "early visual": EARLY_ROIS,
    "faces": ("OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"),
    "bodies": ("EBA", "FBA-1", "FBA-2", "mTL-bodies"),
    "places": ("OPA", "PPA", "RSC"),
    "words": ("OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"),
}

# --------------------------------------------------------------------------- images
#: Image-tag categories (scores in [0, 1]; columns of the store's ``image_tags``).
TAG_CATEGORIES: tuple[str, ...] = ("faces", "bodies", "animals", "food", "words", "vehicles",
                                   "places", "indoor", "outdoor", "people")

# --------------------------------------------------------------------------- demo brain
#: Planted region codes of the simulated demo brain (``ground_truth/subjNN/*_region.npy``).
PLANTED_REGIONS: dict[int, str] = {1: "early", 2: "faces", 3: "bodies", 4: "places-indoor", 5: "places-outdoor",
                                   6: "food", 7: "words", 8: "mixed"}

# --------------------------------------------------------------------------- models
#: Encoder kinds (``models.kind`` in the store).
MODEL_KINDS: tuple[str, ...] = ("ridge", "ue_single", "ue_multi", "ue_transfer")
#: The Universal-Encoder kinds, the joint model first.
UE_KINDS: tuple[str, ...] = ("ue_multi", "ue_transfer", "ue_single")
