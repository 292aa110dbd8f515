"""ROI groups of a store's vertices table: the coarse category regions (early visual, faces, bodies,
places, words, food) over which live predictions and in-silico contrasts are summarised.

Used by the ``predict`` command and by the app; the vertices table is
:meth:`brainviz.store.reader.Store.vertices` (one ROI-name column per ROI class,
:data:`brainviz.names.ROI_COLUMNS`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .names import ROI_COLUMNS

#: ROI groups: name -> vertices column (a vertex is in the group when the column names an ROI).
ROI_GROUP_COLUMNS: dict[str, str] = {
    "early visual": ROI_COLUMNS["prf-visualrois"],
    "faces": ROI_COLUMNS["floc-faces"],
    "bodies": ROI_COLUMNS["floc-bodies"],
    "places": ROI_COLUMNS["floc-places"],
    "words": ROI_COLUMNS["floc-words"],
}

#: Every name :func:`roi_groups` may return.
ROI_GROUP_NAMES: tuple[str, ...] = (*ROI_GROUP_COLUMNS, "food", "food (planted)")


def roi_groups(vertices: pd.DataFrame, include_planted_food: bool = True) -> dict[str, np.ndarray]:
    """{group: (V,) bool}: early visual, faces, bodies, places, words (from the ROI columns);
    'food' from a food ROI when one exists, else (demo brain only) from the planted food region."""
    out = {}
    for name, col in ROI_GROUP_COLUMNS.items():
        if col in vertices:
            m = vertices[col].notna().to_numpy()
            if m.any():
                out[name] = m
    for col in ROI_COLUMNS.values():
        if col in vertices:
            m = vertices[col].astype(str).str.contains("food", case=False, na=False).to_numpy()
            if m.any():
                out["food"] = m
                break
    if "food" not in out and include_planted_food and "planted_region" in vertices:
        m = (vertices["planted_region"] == "food").to_numpy()
        if m.any():
            out["food (planted)"] = m
    return out


def cluster_roi_counts(labels: np.ndarray, groups: dict[str, np.ndarray]) -> dict[int, dict[str, int]]:
    """{cluster: {ROI group: vertices of the cluster in it}} (groups holding none left out).

    labels (V,) cluster per vertex (< 0 = not clustered); groups {name: (V,) bool} from
    :func:`roi_groups` (may overlap), in their order.
    """
    lab = np.asarray(labels)
    out: dict[int, dict[str, int]] = {}
    for c in np.unique(lab[lab >= 0]):
        in_c = lab == c
        counts = {g: int((m & in_c).sum()) for g, m in groups.items()}
        out[int(c)] = {g: n for g, n in counts.items() if n}
    return out


def cluster_roi_majority(labels: np.ndarray, groups: dict[str, np.ndarray],
                         min_share: float = 0.5) -> dict[int, tuple[str, float]]:
    """Where each cluster lies: {cluster: (ROI group, share)} for the group holding the most of the
    cluster's vertices, when that share is at least ``min_share`` (clusters below it are left out).
    Counts from :func:`cluster_roi_counts`; ties go to the group listed first.
    """
    lab = np.asarray(labels)
    out: dict[int, tuple[str, float]] = {}
    for c, counts in cluster_roi_counts(lab, groups).items():
        if counts:
            g = max(counts, key=counts.get)
            share = counts[g] / int((lab == c).sum())
            if share >= min_share:
                out[c] = (g, share)
    return out
