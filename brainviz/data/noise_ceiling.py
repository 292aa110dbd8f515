"""Per-vertex noise ceilings published with a dataset (the Algonauts 2023 files).

Layout (as uark-cviu/Algonauts2023 ``data/noise_ceiling/`` and the data root's
``algonauts2023_noise_ceiling/``)::

    <folder>/subjNN/lh.npy   (n_lh,) float, percent of explainable variance (0-100)
    <folder>/subjNN/rh.npy   (n_rh,)

in the subject's challenge-space vertex order. A subject's files are used only when their
lengths equal its vertex counts (a file of another subject or space would silently pair
ceilings with the wrong vertices). Values are converted to fractions on read (the unit of every
noise ceiling in BrainViz, :data:`brainviz.names.PERCENT`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import BrainVizDataError
from ..names import HEMIS, PERCENT

__all__ = ["read_noise_ceiling", "find_noise_ceiling"]


def read_noise_ceiling(folder: str | Path, subject: str, n_vertices: Mapping[str, int] | None = None) -> np.ndarray:
    """(n_lh + n_rh,) noise ceilings of ``subject`` as fractions (lh then rh; NaN kept where the file has NaN).

    Parameters
    ----------
    folder : the folder holding ``subjNN/{lh,rh}.npy``.
    subject : ``subjNN``.
    n_vertices : {hemi: count} the subject's challenge-space vertex counts; when given, each file must
        have exactly that length.

    Raises
    ------
    BrainVizDataError
        A missing or unreadable file, a wrong shape or length, or values outside [0, 100].
    """
    parts = []
    for h in HEMIS:
        p = Path(folder) / subject / f"{h}.npy"
        if not p.is_file():
            raise BrainVizDataError(p, "noise-ceiling file is missing")
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as exc:  # numpy raises several types for corrupt files
            raise BrainVizDataError(p, f"not a readable .npy array ({exc})") from None
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.number):
            raise BrainVizDataError(p, f"expected a 1-D numeric array, got {a.dtype} {a.shape}")
        if n_vertices is not None and a.shape[0] != int(n_vertices[h]):
            raise BrainVizDataError(p, f"has {a.shape[0]} values but {subject} has {int(n_vertices[h])} {h} vertices")
        a = a.astype(np.float64)
        finite = a[np.isfinite(a)]
        if finite.size and (finite.min() < 0 or finite.max() > PERCENT):
            raise BrainVizDataError(p, f"noise ceilings must be percentages in [0, {PERCENT:g}] "
                                       f"(found {finite.min():.3g} .. {finite.max():.3g})")
        parts.append(a / PERCENT)
    return np.concatenate(parts)


def find_noise_ceiling(folder: str | Path | None, subject: str, n_vertices: Mapping[str, int]
                       ) -> tuple[np.ndarray | None, str]:
    """``(nc, note)``: the subject's noise ceilings from ``folder`` when it has files of the subject's vertex
    counts, else ``(None, why not)``. Never raises for a folder that simply does not describe this subject
    (another subject set, other counts); corrupt files of the right subject still raise."""
    if folder is None:
        return None, "no noise-ceiling folder"
    d = Path(folder) / subject
    if not all((d / f"{h}.npy").is_file() for h in HEMIS):
        return None, f"no {subject}/lh.npy, rh.npy in {folder}"
    lengths = {}
    for h in HEMIS:
        try:
            lengths[h] = int(np.load(d / f"{h}.npy", mmap_mode="r", allow_pickle=False).shape[0])
        except Exception:  # unreadable: read_noise_ceiling names the problem when the lengths are asked for
            return read_noise_ceiling(folder, subject, n_vertices), ""
    if any(lengths[h] != int(n_vertices[h]) for h in HEMIS):
        return None, (f"{d} has {lengths['lh']} + {lengths['rh']} values, {subject} has "
                      f"{int(n_vertices['lh'])} + {int(n_vertices['rh'])} vertices (another subject or space)")
    return read_noise_ceiling(folder, subject, n_vertices), ""
