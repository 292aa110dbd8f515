"""fsaverage5 surfaces, atlases and the visual-cortex mask.

Everything here lives on **fsaverage5**: 10,242 vertices per hemisphere, in
FreeSurfer order. The meshes come bundled with nilearn (no download); the
atlases are FreeSurfer fsaverage annotations (163,842 vertices per hemisphere)
from ``<data_root>/fsaverage_labels``. FreeSurfer's icosahedral surfaces are
nested: fsaverage vertex ``i < 10,242`` *is* fsaverage5 vertex ``i`` (same
position, same order), so fsaverage data is shown on fsaverage5 by keeping its
first 10,242 values; the other 153,600 fsaverage vertices are dropped (they
lie between fsaverage5 vertices).

Shapes: per hemisphere, ``coordinates`` (10242, 3) float32 in mm (flat: the
third column is ~0), ``faces`` (n_faces, 3) int32 vertex indices (20,480
triangles; fewer on the flat map, which is cut open), per-vertex maps (10242,).
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from ..errors import BrainVizDataError
from ..names import HEMIS, N_FSAVERAGE, N_FSAVERAGE5
from ..paths import FSAVERAGE_LABELS, resolve_data_root

_NILEARN_PART = {"lh": "left", "rh": "right"}

MeshKind = Literal["pial", "white", "midthickness", "inflated", "sphere", "flat"]
MESH_KINDS: tuple[str, ...] = ("pial", "white", "midthickness", "inflated", "sphere", "flat")

#: Destrieux (aparc.a2009s) labels of visual cortex: occipital, ventral
#: temporal, lateral occipito-temporal and posterior parietal. Vertices of the
#: labels that extend far forward are kept only behind ``VISUAL_MAX_Y`` mm.
VISUAL_DESTRIEUX: tuple[str, ...] = (
    # occipital
    "Pole_occipital", "S_calcarine", "G_cuneus", "G_oc-temp_med-Lingual", "G_occipital_middle",
    "G_occipital_sup", "G_and_S_occipital_inf", "S_oc_middle_and_Lunatus", "S_oc_sup_and_transversal",
    "S_occipital_ant", "S_collat_transv_post", "S_parieto_occipital",
    # ventral temporal
    "G_oc-temp_lat-fusifor", "G_oc-temp_med-Parahip", "S_oc-temp_lat", "S_oc-temp_med_and_Lingual",
    "S_collat_transv_ant", "G_cingul-Post-ventral",
    # lateral occipito-temporal
    "G_temporal_inf", "S_temporal_inf", "G_temporal_middle",
    # posterior parietal
    "G_parietal_sup", "S_intrapariet_and_P_trans", "G_pariet_inf-Angular", "G_precuneus",
)
#: Anterior limit (pial y, mm, fsaverage / MNI305 space) of the visual mask.
VISUAL_MAX_Y = -30.0
#: Parietal labels reach further forward; they are kept only behind this y (mm).
PARIETAL_MAX_Y = -50.0
_PARIETAL = ("G_parietal_sup", "S_intrapariet_and_P_trans", "G_pariet_inf-Angular", "G_precuneus")


class Mesh(NamedTuple):
    """One hemisphere mesh: ``coordinates`` (n_vertices, 3) float32 mm, ``faces`` (n_faces, 3) int32."""

    coordinates: np.ndarray
    faces: np.ndarray


def _check_hemi(hemi: str) -> None:
    if hemi not in HEMIS:
        raise BrainVizDataError("hemi", f"expected 'lh' or 'rh', got {hemi!r}")


@lru_cache(maxsize=None)
def _nilearn_fsaverage5():
    from nilearn import datasets

    return datasets.load_fsaverage("fsaverage5")


@lru_cache(maxsize=None)
def load_mesh(kind: MeshKind = "inflated", hemi: str = "lh") -> Mesh:
    """The fsaverage5 mesh ``kind`` of one hemisphere (cached, read-only arrays).

    ``kind``: ``pial``, ``white``, ``midthickness`` (mean of pial and white,
    the usual surface for geodesic distances), ``inflated``, ``sphere`` or
    ``flat`` (nilearn's flat map, cut open along the calcarine and medial wall;
    in lh x grows toward the occipital pole, y dorsal; ~700-800 medial-wall
    vertices per hemisphere belong to no flat face and have meaningless
    flat coordinates: draw only the faces).
    """
    _check_hemi(hemi)
    if kind == "white_matter":  # nilearn's name
        kind = "white"
    if kind not in MESH_KINDS:
        raise BrainVizDataError("kind", f"unknown mesh kind {kind!r}; expected one of {MESH_KINDS}")
    fs = _nilearn_fsaverage5()
    part = _NILEARN_PART[hemi]
    if kind == "midthickness":
        pial, white = load_mesh("pial", hemi), load_mesh("white", hemi)
        coords = ((pial.coordinates + white.coordinates) / 2).astype(np.float32)
        faces = pial.faces
    else:
        mesh = fs["white_matter" if kind == "white" else kind].parts[part]
        coords = np.asarray(mesh.coordinates, dtype=np.float32)
        faces = np.asarray(mesh.faces, dtype=np.int32)
    coords.setflags(write=False)
    faces.setflags(write=False)
    return Mesh(coords, faces)


def load_meshes(kind: MeshKind = "inflated") -> dict[str, Mesh]:
    """hemi -> :class:`Mesh` for both hemispheres."""
    return {h: load_mesh(kind, h) for h in HEMIS}


@lru_cache(maxsize=None)
def load_shading(data_type: Literal["sulcal", "curvature"] = "sulcal", hemi: str = "lh") -> np.ndarray:
    """(10242,) float32 sulcal depth or curvature of fsaverage5, for shading brain plots.

    Sulcal depth: positive in sulci (dark), negative on gyri (light).
    """
    _check_hemi(hemi)
    if data_type not in ("sulcal", "curvature"):
        raise BrainVizDataError("data_type", f"expected 'sulcal' or 'curvature', got {data_type!r}")
    from nilearn import datasets

    img = datasets.load_fsaverage_data("fsaverage5", mesh_type="inflated", data_type=data_type)
    arr = np.asarray(img.data.parts[_NILEARN_PART[hemi]], dtype=np.float32).ravel()
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------- fsaverage -> fsaverage5

def fsaverage_to_fsaverage5(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Show fsaverage data on fsaverage5: keep the first 10,242 values along ``axis``.

    ``values`` has 163,842 entries along ``axis`` (one hemisphere of
    fsaverage, e.g. (163842,) or (n_images, 163842)); the result has 10,242.
    fsaverage vertex ``i < 10,242`` is fsaverage5 vertex ``i``; the remaining
    fsaverage vertices are dropped (no smoothing or averaging is done).
    Arrays already of length 10,242 are returned unchanged.
    """
    values = np.asarray(values)
    n = values.shape[axis] if values.ndim else 0
    if n == N_FSAVERAGE5:
        return values
    if n != N_FSAVERAGE:
        raise BrainVizDataError("values", f"expected {N_FSAVERAGE} (fsaverage) or {N_FSAVERAGE5} (fsaverage5) values along axis {axis}, got shape {values.shape}")
    return np.take(values, np.arange(N_FSAVERAGE5), axis=axis)


# --------------------------------------------------------------------------- atlases

def _labels_dir(data_root: str | Path | None) -> Path:
    d = resolve_data_root(data_root) / FSAVERAGE_LABELS
    if not d.is_dir():
        raise BrainVizDataError(d, "fsaverage label folder is missing")
    return d


@lru_cache(maxsize=32)
def _read_annot_cached(path: str) -> tuple[np.ndarray, tuple[str, ...]]:
    import nibabel.freesurfer as nfs

    p = Path(path)
    if not p.is_file():
        raise BrainVizDataError(p, "annotation file is missing")
    try:
        with warnings.catch_warnings():  # corrupt files overflow inside nibabel before failing
            warnings.simplefilter("ignore", RuntimeWarning)
            labels, _ctab, names = nfs.read_annot(str(p))
    except Exception as exc:
        raise BrainVizDataError(p, f"not a readable FreeSurfer annotation ({exc})") from None
    if labels.ndim != 1 or labels.shape[0] not in (N_FSAVERAGE, N_FSAVERAGE5):
        raise BrainVizDataError(p, f"expected {N_FSAVERAGE} or {N_FSAVERAGE5} vertices, got {labels.shape}")
    labels = np.asarray(fsaverage_to_fsaverage5(labels), dtype=np.int32)
    labels.setflags(write=False)
    return labels, tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_atlas(name: str, hemi: str, data_root: str | Path | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Read ``<hemi>.<name>.annot`` restricted to fsaverage5.

    ``name``: e.g. ``"aparc.a2009s"`` (Destrieux) or ``"PALS_B12_Visuotopic"``.
    Returns ``(labels, names)``: (10242,) int label index per vertex (-1 = no
    label) and {index: label name} for the labels of the color table.
    """
    _check_hemi(hemi)
    labels, names = _read_annot_cached(str(_labels_dir(data_root) / f"{hemi}.{name}.annot"))
    return labels, dict(enumerate(names))


def atlas_mask(name: str, hemi: str, label_names, data_root: str | Path | None = None) -> np.ndarray:
    """(10242,) bool: vertices whose ``name`` atlas label is one of ``label_names``."""
    labels, names = read_atlas(name, hemi, data_root)
    wanted = {label_names} if isinstance(label_names, str) else set(label_names)
    idx = [i for i, n in names.items() if n in wanted]
    return np.isin(labels, idx)


def read_label(name: str, hemi: str, data_root: str | Path | None = None) -> np.ndarray:
    """(10242,) bool mask from ``<hemi>.<name>.label`` (e.g. ``"V1_exvivo.thresh"``)."""
    import nibabel.freesurfer as nfs

    _check_hemi(hemi)
    p = _labels_dir(data_root) / f"{hemi}.{name}.label"
    if not p.is_file():
        raise BrainVizDataError(p, "label file is missing")
    try:
        idx = np.asarray(nfs.read_label(str(p)), dtype=np.int64)
    except Exception as exc:
        raise BrainVizDataError(p, f"not a readable FreeSurfer label ({exc})") from None
    if idx.size and (idx.min() < 0 or idx.max() >= N_FSAVERAGE):
        raise BrainVizDataError(p, f"vertex indices outside 0..{N_FSAVERAGE - 1}")
    mask = np.zeros(N_FSAVERAGE5, bool)
    mask[idx[idx < N_FSAVERAGE5]] = True
    return mask


# PALS_B12 visuotopic labels on fsaverage. The color table shares colours
# between dorsal and ventral parts, so nibabel reports V1 (both banks) as
# "V1v" in lh and "V1d" in rh and V2 (both banks) as "V2v"; "V3" is dorsal V3
# and "VP" ventral V3 (V3v); "V4v" is hV4.
_PALS = {
    "V1": ("Visuotopic.V1v", "Visuotopic.V1d", "Visuotopic.V1"),
    "V2": ("Visuotopic.V2v", "Visuotopic.V2d", "Visuotopic.V2"),
    "V3d": ("Visuotopic.V3",),
    "V3v": ("Visuotopic.VP",),
    "hV4": ("Visuotopic.V4v",),
    "V3A": ("Visuotopic.V3A",),
    "V7": ("Visuotopic.V7",),
    "LO": ("Visuotopic.LO",),
    "MT": ("Visuotopic.MTplus",),
    "V8": ("Visuotopic.V8",),
}


def visuotopic_areas(hemi: str, data_root: str | Path | None = None) -> dict[str, np.ndarray]:
    """Visual areas of the PALS_B12 visuotopic atlas on fsaverage5.

    Returns area name -> (10242,) bool mask for ``V1``, ``V2`` (both banks),
    ``V3d``, ``V3v``, ``hV4``, ``V3A``, ``V7``, ``LO``, ``MT``, ``V8``.
    """
    return {area: atlas_mask("PALS_B12_Visuotopic", hemi, names, data_root) for area, names in _PALS.items()}


def visual_cortex_mask(hemi: str, data_root: str | Path | None = None) -> np.ndarray:
    """(10242,) bool visual-cortex mask on fsaverage5 (a few thousand vertices).

    The union of the Destrieux labels in :data:`VISUAL_DESTRIEUX` behind pial
    y = :data:`VISUAL_MAX_Y` mm (posterior parietal labels: behind
    :data:`PARIETAL_MAX_Y`) and every PALS_B12 visuotopic area.
    """
    y = load_mesh("pial", hemi).coordinates[:, 1]
    mask = atlas_mask("aparc.a2009s", hemi, VISUAL_DESTRIEUX, data_root) & (y <= VISUAL_MAX_Y)
    mask &= ~(atlas_mask("aparc.a2009s", hemi, _PARIETAL, data_root) & (y > PARIETAL_MAX_Y))
    for m in visuotopic_areas(hemi, data_root).values():
        mask |= m
    return mask


# --------------------------------------------------------------------------- geodesics

@lru_cache(maxsize=None)
def mesh_graph(hemi: str, kind: MeshKind = "midthickness") -> sp.csr_matrix:
    """(10242, 10242) sparse symmetric graph of mesh edges weighted by length in mm."""
    mesh = load_mesh(kind, hemi)
    f = mesh.faces.astype(np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    w = np.linalg.norm(mesh.coordinates[i] - mesh.coordinates[j], axis=1).astype(np.float64)
    g = sp.coo_matrix((w, (i, j)), shape=(N_FSAVERAGE5, N_FSAVERAGE5)).tocsr()
    g = g.maximum(g.T).tocsr()
    return g


def geodesic_distance(hemi: str, sources, *, kind: MeshKind = "midthickness",
                      limit: float = np.inf, restrict: np.ndarray | None = None) -> np.ndarray:
    """(10242,) graph-geodesic distance (mm, along mesh edges) to the nearest of ``sources``.

    ``sources``: vertex indices or a (10242,) bool mask. ``restrict``: optional
    (10242,) bool mask; paths may only run through those vertices (others get inf).
    ``limit``: stop searching beyond this distance (inf beyond).
    """
    src = np.asarray(sources)
    if src.dtype == bool:
        src = np.flatnonzero(src)
    if src.size == 0:
        return np.full(N_FSAVERAGE5, np.inf)
    g = mesh_graph(hemi, kind)
    if restrict is not None:
        keep = np.asarray(restrict, bool).copy()
        keep[src] = True
        d = sp.diags(keep.astype(float))
        g = (d @ g @ d).tocsr()
        g.eliminate_zeros()
    return dijkstra(g, directed=False, indices=src, min_only=True, limit=limit)
