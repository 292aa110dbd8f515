"""Noise-free ("clean") responses of the demo brain's vertices to images.

No deep network is involved: early visual vertices follow the pixel-level CSS
pRF model (:mod:`.prf`), category patches follow the images' HED category
scores (plus a weak pixel-statistics component), and all other visual
vertices get weak, spatially smooth mixed tuning.

Shapes: ``(n_images, n_hemi)`` per hemisphere; every vertex's clean response
is standardised over the subject's images (mean 0, SD 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..data.images import CATEGORIES, ImageSet
from ..data.surfaces import geodesic_distance
from . import prf as prfmod
from .anatomy import PATCHES, PRF_SIZE, REGION_CODE, HemiSubject, early_area_group
from .. import metrics


def zscore(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """The library's z-score (:func:`brainviz.metrics.zscore`) in float64, the simulation's precision."""
    return metrics.zscore(x, axis, dtype=np.float64)


#: Region tuning: weights over HED category scores and over standardised
#: pixel statistics (:data:`.prf.LOWLEVEL_NAMES`).
REGION_TUNING: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "faces": ({"faces": 1.0, "animals": 0.25}, {"centre_sf4": 0.6, "centre_sf8": 0.4}),
    "bodies": ({"bodies": 0.7, "people": 0.3, "animals": 0.4}, {"ori_0": 0.5, "centre_sf8": 0.3}),
    "places-outdoor": ({"places": 0.6, "outdoor": 0.6, "faces": -0.2},
                       {"periphery_sf16": 0.5, "ori_90": 0.3, "luminance": 0.3}),
    "places-indoor": ({"places": 0.6, "indoor": 0.6, "faces": -0.2},
                      {"periphery_sf16": 0.5, "ori_0": 0.3, "ori_90": 0.3, "ori_45": -0.2, "ori_135": -0.2}),
    "food": ({"food": 1.0}, {"centre_sf8": 0.4, "centre_sf16": 0.4}),
    "words": ({"words": 1.0}, {"centre_sf16": 0.7, "rms_contrast": 0.2}),
}
#: Weight of the pixel-statistics component relative to the semantic one.
LOWLEVEL_WEIGHT = 0.3
#: Number of smooth random tuning centres per hemisphere (mixed tuning) and their spread (mm).
MIXED_CENTRES = 24
MIXED_SPREAD_MM = 12.0


@dataclass
class StimulusFeatures:
    """Pixel and tag features of an image set (no deep features).

    Attributes
    ----------
    keys : list[str]  (n_images,)
    energy : (n_images, size, size) float32 Gabor contrast energy
    lowlevel : (n_images, 10) float32 pixel statistics (:data:`.prf.LOWLEVEL_NAMES`)
    categories : (n_images, 10) float64 HED scores (:data:`CATEGORIES`) or None when unknown
    """

    keys: list[str]
    energy: np.ndarray
    lowlevel: np.ndarray
    categories: np.ndarray | None

    def rows(self, idx) -> "StimulusFeatures":
        idx = np.asarray(idx)
        return StimulusFeatures([self.keys[i] for i in idx], self.energy[idx], self.lowlevel[idx],
                                None if self.categories is None else self.categories[idx])


def stimulus_features(images: ImageSet, size: int = prfmod.DEFAULT_SIZE, batch: int = 100,
                      progress: bool = True) -> StimulusFeatures:
    """Contrast energy, pixel statistics and category scores of every image of ``images``."""
    bank = prfmod.gabor_bank(size)
    energy, low = [], []
    it = range(0, len(images), batch)
    for start in tqdm(it, desc=f"pixel features {images.name}", disable=not progress, leave=False):
        gray = np.stack([images.load_gray(i, size) for i in range(start, min(start + batch, len(images)))])
        chan = prfmod.channel_energy(gray, bank)
        energy.append(chan.sum(axis=1))
        low.append(prfmod.lowlevel_features(gray, chan))
    cats = images.category_matrix()
    cats = None if np.isnan(cats).all() else np.nan_to_num(cats)
    return StimulusFeatures(list(images.keys), np.concatenate(energy), np.concatenate(low), cats)


def _weights(names, spec: dict[str, float]) -> np.ndarray:
    return np.array([spec.get(n, 0.0) for n in names])


def region_response(region: str, feats: StimulusFeatures) -> np.ndarray:
    """(n_images,) standardised response of a planted region's ideal vertex.

    Semantic part = HED scores . weights; plus :data:`LOWLEVEL_WEIGHT` x the
    pixel-statistics part. Without category scores (vim-1) only the pixel part.
    """
    cat_w, ll_w = REGION_TUNING[region]
    low = zscore(zscore(feats.lowlevel) @ _weights(prfmod.LOWLEVEL_NAMES, ll_w))
    if feats.categories is None:
        return low
    sem = zscore(feats.categories @ _weights(CATEGORIES, cat_w))
    return zscore(sem + LOWLEVEL_WEIGHT * low)


def subject_prfs(hs: HemiSubject, rng: np.random.Generator) -> np.ndarray:
    """(n_hemi, 3) pRF x, y, sigma in field units for early vertices (NaN elsewhere), jittered per subject.

    Left hemisphere -> right visual field (x > 0); polar angle +90 = upper field.
    """
    t = hs.template
    n = t.n
    out = np.full((n, 3), np.nan)
    e = t.early
    ang = np.deg2rad(t.polar_angle[e] + rng.normal(0, 5, e.sum()))
    ecc = t.eccentricity[e] * np.exp(rng.normal(0, 0.08, e.sum())) + 0.02
    side = 1.0 if t.hemi == "lh" else -1.0
    groups = early_area_group(t.early_area[e])
    slope = np.array([PRF_SIZE[g][0] for g in groups])
    icpt = np.array([PRF_SIZE[g][1] for g in groups])
    sigma = (slope * ecc + icpt) * np.exp(rng.normal(0, 0.1, e.sum()))
    out[e, 0] = side * ecc * np.cos(ang)
    out[e, 1] = ecc * np.sin(ang)
    out[e, 2] = sigma
    return out


def _mixed_basis(hs: HemiSubject, feats: StimulusFeatures, rng: np.random.Generator,
                 semantic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random tuning: (n_images, K) centre responses and (K, n_hemi) blending weights."""
    t = hs.template
    k = min(MIXED_CENTRES, t.n)
    centres = rng.choice(t.n, k, replace=False)
    side = 1.0 if t.hemi == "lh" else -1.0
    resp = []
    for _ in range(k):
        ecc, ang = rng.uniform(0.1, 0.8), rng.uniform(-np.pi / 2, np.pi / 2)
        p = np.array([[side * ecc * np.cos(ang), ecc * np.sin(ang), rng.uniform(0.4, 0.9)]])
        coarse = zscore(prfmod.prf_response(feats.energy, p)[:, 0])
        low = zscore(zscore(feats.lowlevel) @ rng.normal(0, 1, len(prfmod.LOWLEVEL_NAMES)))
        r = 0.8 * coarse + 0.6 * low
        if semantic and feats.categories is not None:
            r = r + 0.7 * zscore(feats.categories @ rng.normal(0, 1, len(CATEGORIES)))
        resp.append(zscore(r))
    resp = np.stack(resp, axis=1)
    blend = np.zeros((k, t.n))
    for j, c in enumerate(centres):
        d = geodesic_distance(t.hemi, [int(t.vertices[c])], limit=4 * MIXED_SPREAD_MM)[t.vertices]
        blend[j] = np.exp(-0.5 * (np.nan_to_num(d, posinf=1e6) / MIXED_SPREAD_MM) ** 2)
    blend = blend + 1e-3  # every vertex gets some tuning
    blend /= blend.sum(0, keepdims=True)
    return resp, blend


def hemi_clean_responses(hs: HemiSubject, prf: np.ndarray, feats: StimulusFeatures,
                         rng: np.random.Generator) -> np.ndarray:
    """(n_images, n_hemi) standardised clean responses of one hemisphere.

    * early vertices: CSS pRF response + 0.1 x mixed;
    * patch vertices: sum_p w_p(v) r_p + (1 - min(1, sum_p w_p)) x mixed, with
      ``r_p`` the region response (:func:`region_response`) plus a small
      patch-specific perturbation;
    * all others: mixed tuning plus a small vertex-specific component.
    """
    t = hs.template
    semantic = feats.categories is not None
    resp, blend = _mixed_basis(hs, feats, rng, semantic)
    # smooth tuning + a small vertex-specific random mixture of the same basis
    mixed = zscore(zscore(resp @ blend) + 0.3 * zscore(resp @ rng.normal(0, 1, blend.shape)))
    out = mixed.copy()
    # category patches
    cache = {}
    total_w = np.clip(hs.patch_weight.sum(0), 0, 1)
    patch_part = np.zeros_like(out)
    for k, p in enumerate(PATCHES):
        if p.region not in cache:
            cache[p.region] = region_response(p.region, feats)
        r_p = zscore(cache[p.region] + 0.15 * zscore(feats.lowlevel) @ rng.normal(0, 0.3, len(prfmod.LOWLEVEL_NAMES)))
        patch_part += r_p[:, None] * hs.patch_weight[k][None]
    out = patch_part + (1 - total_w)[None] * out
    # early visual pRFs
    e = t.early
    if e.any():
        pr = zscore(prfmod.prf_response(feats.energy, prf[e]))
        out[:, e] = pr + 0.1 * zscore(mixed[:, e])
    return zscore(out).astype(np.float32)


def snr_score(hs: HemiSubject, prf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n_hemi,) relative signal quality used to rank vertices when assigning real noise ceilings.

    Early visual vertices whose pRF lies on the image rank highest, then
    category patch centres, then mixed vertices (posterior ones first).
    """
    t = hs.template
    score = np.zeros(t.n)
    e = t.early
    if e.any():
        frac = prfmod.fraction_in_view(prf[e])
        bonus = np.where(early_area_group(t.early_area[e]) == "V1", 0.2,
                         np.where(early_area_group(t.early_area[e]) == "V2", 0.1, 0.0))
        score[e] = 0.2 + 1.5 * frac + bonus
    m = ~e
    post = np.clip((-t.pial[:, 1] - 30) / 70, 0, 1)
    score[m] = 0.4 * post[m] + 0.7 * np.clip(hs.patch_weight.sum(0), 0, 1)[m]
    patch_core = hs.region[m] != REGION_CODE["mixed"]
    score[np.flatnonzero(m)[patch_core]] += 0.4
    return score + rng.normal(0, 0.35, t.n)
