"""Anatomy of the demo brain on fsaverage5: vertices, retinotopy, ROI patches.

Template (same for every subject, from real atlases):

* challenge-space vertices = :func:`brainviz.data.surfaces.visual_cortex_mask`
  (~2,750 per hemisphere);
* early visual areas V1v/V1d/V2v/V2d/V3v/V3d/hV4 from the PALS_B12
  visuotopic atlas (V1 and V2 split into banks by their nearest neighbouring
  dorsal/ventral area);
* a retinotopic map of those areas: polar angle from geodesic distances to
  the area borders (V1/V2 border = vertical meridian, V2/V3 = horizontal,
  V3v/hV4 = upper vertical) and eccentricity growing with geodesic distance
  from the occipital pole (log cortical magnification);
* the ``streams`` ROI class from Destrieux + PALS labels.

Per subject (jittered with the subject's generator): category-selective
patches (faces, bodies, places, words, food) at their usual anatomical sites,
given as MNI305 coordinates snapped to the nearest cortical vertex.

Array shapes: ``(n_hemi,)`` per challenge-space vertex of one hemisphere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..data.surfaces import (atlas_mask, geodesic_distance, load_mesh, visual_cortex_mask,
                             visuotopic_areas)
from ..names import HEMIS, PLANTED_REGIONS, ROI_CLASSES

#: Ground-truth region codes (``ground_truth/subjNN/regions.json``).
REGIONS: dict[int, str] = PLANTED_REGIONS
REGION_CODE = {v: k for k, v in REGIONS.items()}

#: Log cortical magnification: eccentricity E(d) = E2 * ((1 + E_max/E2) ** d - 1),
#: d the normalised distance from the occipital pole; in field units (image half-width = 1).
ECC_E2 = 0.18
ECC_MAX = 2.0
#: pRF size sigma = slope * eccentricity + intercept (field units) per area.
PRF_SIZE = {"V1": (0.10, 0.06), "V2": (0.15, 0.08), "V3": (0.25, 0.11), "hV4": (0.35, 0.16)}


@dataclass(frozen=True)
class Patch:
    """A category-selective patch (lh coordinates; rh mirrors x).

    ``mni``: target centre (x, y, z) mm on the pial surface; ``radius``: geodesic mm
    at which selectivity falls to half; ``strength``: peak selectivity per hemi.
    ``roi``: (ROI class, ROI name) of the Algonauts label it belongs to, or None.
    """

    name: str
    region: str
    mni: tuple[float, float, float]
    radius: float
    roi: tuple[str, str] | None
    strength: tuple[float, float] = (1.0, 1.0)   # lh, rh
    size: tuple[float, float] = (1.0, 1.0)       # radius multiplier lh, rh


#: The planted patches. FFA is bigger on the right, word patches are left-lateralised.
PATCHES: tuple[Patch, ...] = (
    Patch("OFA", "faces", (-40, -82, -10), 7.0, ("floc-faces", "OFA")),
    Patch("FFA-1", "faces", (-40, -64, -18), 8.0, ("floc-faces", "FFA-1"), size=(1.0, 1.15)),
    Patch("FFA-2", "faces", (-40, -46, -20), 7.0, ("floc-faces", "FFA-2"), size=(1.0, 1.15)),
    Patch("EBA", "bodies", (-48, -70, 4), 9.0, ("floc-bodies", "EBA")),
    Patch("FBA-1", "bodies", (-46, -56, -10), 6.0, ("floc-bodies", "FBA-1")),
    Patch("FBA-2", "bodies", (-44, -40, -16), 6.0, ("floc-bodies", "FBA-2")),
    Patch("OPA", "places-outdoor", (-32, -84, 22), 8.0, ("floc-places", "OPA")),
    Patch("PPA-posterior", "places-outdoor", (-28, -56, -8), 6.5, ("floc-places", "PPA")),
    Patch("PPA-anterior", "places-indoor", (-24, -42, -10), 6.5, ("floc-places", "PPA")),
    Patch("RSC", "places-indoor", (-14, -54, 10), 7.0, ("floc-places", "RSC")),
    Patch("food", "food", (-32, -52, -16), 7.0, None),
    Patch("OWFA", "words", (-44, -78, -14), 6.0, ("floc-words", "OWFA"), strength=(1.0, 0.6), size=(1.0, 0.7)),
    Patch("VWFA-1", "words", (-46, -62, -12), 7.0, ("floc-words", "VWFA-1"), strength=(1.0, 0.6), size=(1.0, 0.7)),
    Patch("VWFA-2", "words", (-48, -46, -10), 6.0, ("floc-words", "VWFA-2"), strength=(1.0, 0.6), size=(1.0, 0.7)),
)

# streams: (stream name, PALS areas, Destrieux labels); first match wins, in this order.
_STREAMS = (
    ("early", ("V1", "V2", "V3d", "V3v"), ("S_calcarine",)),
    ("midventral", ("hV4", "V8"), ("G_oc-temp_med-Lingual", "S_collat_transv_post")),
    ("midlateral", ("LO",), ("G_occipital_middle", "S_oc_middle_and_Lunatus", "G_and_S_occipital_inf", "Pole_occipital")),
    ("midparietal", ("V3A", "V7"), ("G_occipital_sup", "S_oc_sup_and_transversal", "G_cuneus")),
    ("lateral", ("MT",), ("S_occipital_ant", "G_temporal_inf", "S_temporal_inf", "G_temporal_middle")),
    ("ventral", (), ("G_oc-temp_lat-fusifor", "G_oc-temp_med-Parahip", "S_oc-temp_lat", "S_oc-temp_med_and_Lingual",
                     "S_collat_transv_ant", "G_cingul-Post-ventral")),
    ("parietal", (), ("G_parietal_sup", "S_intrapariet_and_P_trans", "G_pariet_inf-Angular", "G_precuneus",
                      "S_parieto_occipital")),
)


@dataclass
class HemiTemplate:
    """Subject-independent anatomy of one hemisphere.

    Attributes
    ----------
    hemi : "lh" or "rh"
    surface_mask : (10242,) bool  challenge-space vertices on fsaverage5
    vertices : (n_hemi,) int  their fsaverage5 indices
    pial : (n_hemi, 3) float  pial coordinates (mm, MNI305)
    early_area : (n_hemi,) int  prf-visualrois id (1..7 = V1v..hV4, 0 = none)
    polar_angle : (n_hemi,) float  degrees, -90 lower .. +90 upper vertical meridian (NaN off early areas)
    eccentricity : (n_hemi,) float  field units (image half-width = 1; NaN off early areas)
    streams : (n_hemi,) int  streams ROI id (1..7)
    """

    hemi: str
    surface_mask: np.ndarray
    vertices: np.ndarray
    pial: np.ndarray
    early_area: np.ndarray
    polar_angle: np.ndarray
    eccentricity: np.ndarray
    streams: np.ndarray

    @property
    def n(self) -> int:
        return len(self.vertices)

    @property
    def early(self) -> np.ndarray:
        return self.early_area > 0


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / (a + b), 0.5 where both are 0 or infinite."""
    a = np.where(np.isfinite(a), a, 1e3)
    b = np.where(np.isfinite(b), b, 1e3)
    s = a + b
    return np.where(s > 0, a / np.where(s > 0, s, 1), 0.5)


@lru_cache(maxsize=8)
def hemi_template(hemi: str, data_root: str | None = None) -> HemiTemplate:
    """Build (and cache) the template anatomy of ``hemi``."""
    mask = visual_cortex_mask(hemi, data_root)
    pial = load_mesh("pial", hemi).coordinates
    areas = visuotopic_areas(hemi, data_root)
    V1, V2, V3d, V3v, hV4 = (areas[k].copy() for k in ("V1", "V2", "V3d", "V3v", "hV4"))
    dist = lambda m: geodesic_distance(hemi, m)  # noqa: E731
    d3d, d3v = dist(V3d), dist(V3v)
    V2d = V2 & (d3d < d3v)
    V2v = V2 & ~V2d
    d2d, d2v = dist(V2d), dist(V2v)
    V1d = V1 & (d2d < d2v)
    V1v = V1 & ~V1d
    early_any = V1 | V2 | V3d | V3v | hV4

    n5 = len(mask)
    angle = np.full(n5, np.nan)
    # V1: +90 at the V2v border (upper vertical meridian), -90 at the V2d border
    angle[V1] = (90 - 180 * _ratio(d2v, d2d))[V1]
    d1 = dist(V1)
    angle[V2v] = (90 * _ratio(d3v, d1))[V2v]       # 90 at V1 border, 0 at V3v border
    angle[V2d] = (-90 * _ratio(d3d, d1))[V2d]
    d2 = dist(V2)
    out_v = dist(~(V3v | V2) & mask)
    out_d = dist(~(V3d | V2) & mask)
    angle[V3v] = (90 * _ratio(d2, out_v))[V3v]     # 0 at V2 border, 90 at far border
    angle[V3d] = (-90 * _ratio(d2, out_d))[V3d]
    d3vb = dist(V3v)
    out4 = dist(~(hV4 | V3v) & mask)
    angle[hV4] = (90 - 180 * _ratio(d3vb, out4))[hV4]

    # eccentricity: geodesic distance from the occipital pole (most posterior V1 vertices)
    y = pial[:, 1]
    v1_idx = np.flatnonzero(V1)
    pole = v1_idx[y[v1_idx] <= np.percentile(y[v1_idx], 4)]
    dpole = dist(pole)
    ecc = np.full(n5, np.nan)
    for m in (V1v, V1d, V2v, V2d, V3v, V3d, hV4):  # each bank covers the whole eccentricity range
        dd = dpole[m]
        lo, hi = np.percentile(dd, 2), np.percentile(dd, 97)
        dn = np.clip((dd - lo) / max(hi - lo, 1e-6), 0, 1.15)
        ecc[m] = ECC_E2 * ((1 + ECC_MAX / ECC_E2) ** dn - 1)

    area_id = np.zeros(n5, np.int64)
    names = {v: k for k, v in ROI_CLASSES["prf-visualrois"].items()}
    for nm, m in (("V1v", V1v), ("V1d", V1d), ("V2v", V2v), ("V2d", V2d), ("V3v", V3v), ("V3d", V3d), ("hV4", hV4)):
        area_id[m & (area_id == 0)] = names[nm]

    streams = np.zeros(n5, np.int64)
    sid = {v: k for k, v in ROI_CLASSES["streams"].items()}
    for name, pals, destrieux in _STREAMS:
        m = atlas_mask("aparc.a2009s", hemi, destrieux, data_root) if destrieux else np.zeros(n5, bool)
        for a in pals:
            m |= areas[a]
        if name == "early":
            m |= early_any & ~hV4
        streams[m & (streams == 0) & mask] = sid[name]
    streams[mask & (streams == 0)] = sid["ventral"]
    # hV4 belongs to midventral even where Destrieux says calcarine
    streams[hV4 & mask] = sid["midventral"]

    mask = mask | early_any
    verts = np.flatnonzero(mask)
    return HemiTemplate(hemi, mask, verts, pial[verts].astype(np.float64), area_id[verts], angle[verts],
                        ecc[verts], streams[verts])


def early_area_group(area_id: np.ndarray) -> np.ndarray:
    """(n,) str: "V1", "V2", "V3", "hV4" or "" for prf-visualrois ids."""
    lut = np.array(["", "V1", "V1", "V2", "V2", "V3", "V3", "hV4"])
    return lut[np.asarray(area_id)]


@dataclass
class HemiSubject:
    """Per-subject anatomy of one hemisphere (on top of its :class:`HemiTemplate`).

    Attributes
    ----------
    template : HemiTemplate
    patch_names : list[str]  planted patches, in :data:`PATCHES` order
    patch_weight : (n_patches, n_hemi) float  selectivity profile, strength * 2**(-(d/r)**2)
    patch_inside : (n_patches, n_hemi) bool  geodesic distance < radius (never early vertices)
    centres : dict  patch name -> fsaverage5 vertex of its centre
    region : (n_hemi,) int  ground-truth region code (:data:`REGIONS`)
    rois : dict  ROI class -> (n_hemi,) int ids (:data:`~brainviz.data.algonauts.ROI_CLASSES`)
    """

    template: HemiTemplate
    patch_names: list[str]
    patch_weight: np.ndarray
    patch_inside: np.ndarray
    centres: dict[str, int]
    region: np.ndarray
    rois: dict[str, np.ndarray] = field(default_factory=dict)


def subject_anatomy(hemi: str, rng: np.random.Generator, data_root: str | None = None,
                    jitter_mm: float = 3.0, size_jitter: float = 0.15) -> HemiSubject:
    """Place the :data:`PATCHES` for one subject, with jittered centres and sizes."""
    t = hemi_template(hemi, data_root)
    hi = HEMIS.index(hemi)
    sign = -1.0 if hemi == "lh" else 1.0
    candidates = ~t.early  # patches live outside V1-hV4
    cand_idx = np.flatnonzero(candidates)
    weights, inside, centres, names = [], [], {}, []
    for p in PATCHES:
        target = np.array([sign * abs(p.mni[0]), p.mni[1], p.mni[2]], float)
        target = target + rng.normal(0, jitter_mm, 3)
        radius = p.radius * p.size[hi] * float(np.exp(rng.normal(0, size_jitter)))
        local = cand_idx[np.argmin(np.linalg.norm(t.pial[cand_idx] - target, axis=1))]
        centre = int(t.vertices[local])
        d_full = geodesic_distance(hemi, [centre], limit=4 * radius)
        d = d_full[t.vertices]
        w = p.strength[hi] * np.exp2(-(d / radius) ** 2)
        w[~candidates] = 0.0
        weights.append(np.nan_to_num(w))
        inside.append((d < radius) & candidates)
        centres[p.name] = centre
        names.append(p.name)
    W = np.asarray(weights)
    inside = np.asarray(inside)

    region = np.full(t.n, REGION_CODE["mixed"], np.int64)
    region[t.early] = REGION_CODE["early"]
    rel = np.where(inside, W, 0.0)
    best = rel.argmax(0)
    has = inside.any(0)
    for k, p in enumerate(PATCHES):
        region[has & (best == k)] = REGION_CODE[p.region]

    rois = {"prf-visualrois": t.early_area.copy(), "streams": t.streams.copy()}
    for cls in ("floc-bodies", "floc-faces", "floc-places", "floc-words"):
        ids = np.zeros(t.n, np.int64)
        inv = {v: k for k, v in ROI_CLASSES[cls].items()}
        cls_k = [k for k, p in enumerate(PATCHES) if p.roi and p.roi[0] == cls]
        if cls_k:
            sub = np.where(inside[cls_k], W[cls_k], -1.0)
            b = sub.argmax(0)
            ok = sub.max(0) > 0
            for j, k in enumerate(cls_k):
                ids[ok & (b == j)] = inv[PATCHES[k].roi[1]]
        rois[cls] = ids
    return HemiSubject(t, names, W, inside, centres, region, rois)
