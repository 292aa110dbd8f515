"""Voxel clusters (report 004 sec. 5): the joint model's voxel embeddings, their 2-D map, each subject's
vertex reliability and the clusterings of every scope, as typed results (:class:`VoxelEmbeddings`,
:class:`VertexReliability`, :class:`ClusterScopeResult`); :mod:`brainviz.pipeline.store_results` writes them.

:func:`run` is a generator: it yields each result as soon as it is complete and returns the headline numbers
(``headline = yield from run(ctx, settings)``). Memory does not grow with every subject's images x vertices
(issue 29): each subject's responses and predictions are read one subject at a time, once to build the
profiles and once, after every clustering is fitted, for the top images and pooled means of all of them
(:mod:`.cluster_images`); the clusterings' labels are kept until then, and not once yielded.
Policy: :class:`~brainviz.pipeline.settings.AnalysisSettings`.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ... import clusters as cl
from ...jobs import run_jobs
from ...metrics import pearson_per_vertex, zscore
from ...names import EARLY_ROIS, HEMIS
from ..context import Context
from ..evaluate import predict
from ..settings import AnalysisSettings
from ..workdir import load_model, load_predictions, load_registry
from .cluster_images import Labelings, PooledMeans, column_blocks, labeling_means, predicted_keys, zscored_blocks

#: Planted demo-brain regions and the tag category their top images should show.
PLANTED_CATEGORY = {"faces": "faces", "bodies": "bodies", "food": "food", "words": "words",
                    "places-indoor": "indoor", "places-outdoor": "outdoor"}
#: the response profiles the clusters are measured against (:func:`_reference_responses`)
REFERENCE_SOURCES = ("noise-free", "ridge-noise-free", "measured", "ridge")
_DEFAULTS = AnalysisSettings()


@dataclass(frozen=True)
class VoxelEmbeddings:
    """The clustered model's voxel embeddings and their joint 2-D map.

    ``embeddings``: {subject: (V, E) float32}, vertices 0..V-1 (lh first); ``map_xy``: {subject: (V, 2)} UMAP
    coordinates (one map of every subject's vertices)."""

    model_id: str
    embeddings: dict[str, np.ndarray]
    map_xy: dict[str, np.ndarray]


@dataclass(frozen=True)
class VertexReliability:
    """``nc``: (V,) float32 noise ceiling (fraction 0..1) of ``subject``'s vertices from the TRAINING repeats (or
    the published files: ``source``), the reliability the cluster scopes threshold."""

    subject: str
    nc: np.ndarray
    source: str


@dataclass(frozen=True)
class ClusterScopeResult:
    """One clustering (a scope with its profile and smoothing, :func:`scope_id`) at every k written.

    * ``settings``: one row per subject: subject, base, region, percentile, nc_threshold, chosen_k, k_rule,
      is_default (how its vertices and k were chosen; table ``cluster_settings``).
    * ``variant``: family, percentile, profile, n_images, measured_share, smoothing, smoothing_radius_mm,
      with_neighbours, profile_default, is_default (what was clustered and how; table ``cluster_variants``).
    * ``labels``: {k: {subject: (V,) int32}}: the cluster 0..k-1 of each vertex, < 0 for vertices not clustered
      (:data:`brainviz.clusters.UNCLUSTERED`).
    * ``descriptions``: {k: DataFrame} cluster, n_vertices, description, source, ... (:func:`brainviz.clusters.name_clusters`).
    * ``top_images``: cluster, rank, image_key, score, k, subject, source ('measured' | 'predicted').
    * ``quality``: k, metric, value, simulation_check (stability curve, smoothing agreement, recovery scores).
    * ``headline``: the scope's headline numbers (chosen k, stability, per-k recovery ...).
    """

    model_id: str
    scope: str
    settings: pd.DataFrame
    variant: dict
    labels: dict[int, dict[str, np.ndarray]]
    descriptions: dict[int, pd.DataFrame]
    top_images: pd.DataFrame
    quality: pd.DataFrame
    headline: dict = field(default_factory=dict)


def _bar(ctx: Context, it, desc: str):
    from ...progress import bar

    return bar(it, desc=desc, enabled=ctx.config.progress)


def scope_id(family: str, percentile: float | None = None, profile: str = "embeddings",
             smoothed: bool = False, default_percentile: float = _DEFAULTS.default_percentile) -> str:
    """The store's name of a clustering: ``family`` (the clustered vertices: 'joint:non-early', 'joint', 'subj01',
    'joint:PPA'), '@p<percentile>' for a threshold other than the default, '+<profile>' when not the
    embeddings, '~smoothed' for labels smoothed on the cortex (table ``cluster_variants`` says it in columns).
    ``percentile`` None: the default (``default_percentile``, :attr:`AnalysisSettings.default_percentile`)."""
    percentile = default_percentile if percentile is None else percentile
    name = family if percentile == default_percentile else f"{family}@p{int(percentile)}"
    name += "" if profile == "embeddings" else f"+{profile}"
    return name + ("~smoothed" if smoothed else "")


def good_subjects(nc: dict[str, np.ndarray], subjects: list[str],
                  share: float = _DEFAULTS.good_subject_share) -> list[str]:
    """Subjects whose median noise ceiling is >= ``share`` x the best subject's (report 004 clusters "good"
    subjects); all of them when no noise ceiling is known."""
    med = {s: float(np.nanmedian(nc[s])) for s in subjects if nc.get(s) is not None}
    if not med:
        return list(subjects)
    best = max(med.values())
    return [s for s in subjects if s not in med or med[s] >= share * best]


def _planted_prf(ctx: Context, subject: str) -> np.ndarray | None:
    """(V, 2) planted pRF centre (x, y) per vertex (SIMULATION CHECK only; NaN outside early cortex)."""
    gt = ctx.dataset.ground_truth_dir
    if gt is None or not (gt / subject / "lh_prf.npy").is_file():
        return None
    return np.concatenate([np.load(gt / subject / f"{h}_prf.npy")[:, :2] for h in HEMIS]).astype(np.float64)


def _scope_plan(settings: AnalysisSettings, subjects: list[str], joint: list[str],
                reliability: bool = True) -> list[dict]:
    """The clusterings written: family, base, subjects, region, percentile, ks, profile, smoothing (the
    strengths written: 0 = plain k-means labels), default (the smoothing strength of the view the app opens
    with, or None: another scope), profile_default (the smoothing strength this profile's views open with: on
    for ``settings.smoothed_by_default``), scope (:func:`scope_id` of the plain labels), yardsticks (score the reference
    clusterings of :func:`_reference_responses` at the chosen k: the default scope and each subject alone, the
    scopes of the recovery targets; a few seconds each).

    The default ('joint:non-early') clusters the reliable vertices outside early visual
    cortex: V1-hV4 are organised by visual-field position, a continuum that k-means cuts
    into arbitrary pieces that take most of a small k (measured on the demo brain: even
    the noise-free simulated responses give a category-region ARI of only 0.64 at k = 8-12
    when V1-hV4 are included). Early visual cortex is clustered in 'joint' (whole visual
    cortex) and judged there by visual-field position.

    A subject clustered alone takes the k chosen for the default scope of the same profile ('k_from'):
    with the few hundred reliable vertices of one subject, bootstrap stability falls with k from k = 4
    on and picked k = 4-6 (demo brain: subj03 k = 4 on seeds 0 and 7), which merges category
    regions; the subjects share one functional layout (report 004 clusters them jointly), and
    the joint stability is estimated on about four times as many vertices.

    Every profile (:data:`brainviz.clusters.PROFILES`) clusters the default scope (with and without smoothing on
    the cortex) and each subject alone; the other reliability thresholds and the whole visual cortex are written
    for the embeddings and the default profile, the PPA sub-clusters and the smoothed views of each subject for
    the embeddings (the profile whose views open smoothed). The default profile's other thresholds take the k
    of its default scope ('k_from'; the embeddings keep their own stability choice per threshold, as before):
    with every profile the clusters stage costs about three times what the embeddings alone cost, each
    stability curve (140 k-means fits) about five of the plain stage's 30 s on the demo brain. So a scope
    that takes another's k in a profile other than the embeddings ('only_k_from') is written at that k alone
    (every k of ``cluster_ks`` stays written for each profile's default scope, the whole visual cortex and
    every scope of the embeddings; the page says so).

    Without any reliability estimate (``reliability`` False: no repetitions, no noise-ceiling files)
    every vertex of a scope is clustered and the other thresholds' scopes would be copies: not written.
    """
    S = settings
    ks = tuple(int(k) for k in S.cluster_ks)
    smooth = (0.0, S.smoothing_beta)
    dp = S.default_percentile
    plan = []
    for profile in dict.fromkeys((S.default_profile, *cl.PROFILES)):
        default = S.smoothing_beta if profile in S.smoothed_by_default else 0.0  # the variant this profile opens with
        base = dict(base="joint", subjects=joint, ks=ks, profile=profile, profile_default=default)
        main = scope_id(S.default_scope, dp, profile, default_percentile=dp)
        plan.append(dict(family=S.default_scope, region="non-early", percentile=dp, smoothing=smooth,
                         default=default if profile == S.default_profile else None, yardsticks=True, **base))
        extra = profile in ("embeddings", S.default_profile)
        for p in S.reliability_percentiles if reliability and extra else ():
            if p != dp:  # the embeddings choose k at each threshold (as before), a profile once
                plan.append(dict(family=S.default_scope, region="non-early", percentile=p, smoothing=(0.0,),
                                 default=None, **({} if profile == "embeddings" else
                                                  {"k_from": main, "only_k_from": True}), **base))
        if extra:
            plan.append(dict(family="joint", region=None, percentile=dp, smoothing=(0.0,),
                             default=None, **base))
        for s in subjects:
            plan.append(dict(family=s, base=s, subjects=[s], region="non-early", percentile=dp, ks=ks,
                             profile=profile, profile_default=default, smoothing=smooth if default else (0.0,),
                             default=None, k_from=main if joint else None, yardsticks=True,
                             only_k_from=profile != "embeddings" and bool(joint)))
        if profile == "embeddings":
            plan.append(dict(family="joint:PPA", region="PPA", percentile=dp, smoothing=(0.0,),
                             default=None, **{**base, "ks": (2,)}))
    for p in plan:
        p["scope"] = scope_id(p["family"], p["percentile"], p["profile"], default_percentile=dp)
    return plan


def _region_mask(ctx: Context, subject: str, region: str | None) -> np.ndarray | None:
    sub = ctx.dataset.subjects[subject]
    if region is None:
        return None
    if region == "non-early":
        return ~sub.roi_mask(list(EARLY_ROIS))
    return sub.roi_mask(region)


def run(ctx: Context, settings: AnalysisSettings) -> Iterator[VoxelEmbeddings | VertexReliability | ClusterScopeResult]:
    """Voxel clusters (report 004 sec. 5): yields :class:`VoxelEmbeddings`, each subject's
    :class:`VertexReliability` and one :class:`ClusterScopeResult` per clustering; returns the headline numbers
    (empty without the embedding model ``settings.embedding_model``).

    What is clustered (:data:`brainviz.clusters.PROFILES`, :func:`_profile_features`): the joint model's voxel
    embeddings, each vertex's measured responses to the images every subject of the scope saw, or both combined
    (the embeddings beside a response profile that is measured where the subject saw the image and the
    encoder's prediction where it did not, so it needs no test fMRI). Labels are written as k-means gives them
    and smoothed on the cortex (:func:`brainviz.clusters.smooth_labels`, strength ``settings.smoothing_beta``).
    Which vertices: those whose noise ceiling (from the TRAINING repeats) is at or above the
    ``percentile``-th percentile of their subject's (``settings.default_percentile``: the top quarter), optionally
    inside a region; the others are "below the reliability threshold" / "outside the scope".
    Which subjects for 'joint': :func:`good_subjects`. Which k: the largest whose bootstrap
    stability is >= ``settings.min_stability`` (:func:`brainviz.clusters.choose_k`); every k of
    ``settings.cluster_ks`` is written too. Scopes (:func:`_scope_plan`): 'joint:non-early' (the default:
    outside V1-hV4), 'joint:non-early@p<percentile>' (other thresholds), 'joint' (the whole
    visual cortex), each subject alone outside V1-hV4, 'joint:PPA' (k = 2).
    On the demo brain, recovery of the planted regions is scored for every scope and k
    (``cluster_quality`` rows with simulation_check = true; the only place ground truth is read),
    and at the chosen k of the default and per-subject scopes against yardsticks: the same vertices
    and k clustered on noise-free, measured and ridge-predicted test responses and on the predictions of
    ridge trained on the noise-free responses (metrics ``reference:<source>``, :func:`_reference_responses`).
    """
    model_id = settings.embedding_model
    registry = load_registry(ctx)
    if model_id not in registry:
        return {}
    enc = load_model(registry[model_id])
    subjects = ctx.subject_names
    main = ctx.main_subjects
    emb = {s: enc.voxel_embeddings(s) for s in subjects}
    with ctx.timed("umap"):
        xy = cl.joint_embedding_map(emb, seed=ctx.config.seed)
    yield VoxelEmbeddings(model_id, emb, xy)

    nc, nc_source = {}, {}
    for s in subjects:
        nc[s], nc_source[s] = ctx.noise_ceiling(s, "train")  # never the evaluation images
        if nc[s] is not None:
            yield VertexReliability(s, nc[s].astype(np.float32), nc_source[s])
    joint = good_subjects(nc, main, settings.good_subject_share)
    reliability = any(nc[s] is not None for s in subjects)

    tags = ctx.tags
    cats = [c for c in tags.columns if c != "tags"]
    # plain Python strings as index: the descriptions look images up by key thousands of times, 5x faster than
    # through an Arrow-backed string index (same result)
    scores = tags[cats].set_axis(tags.index.astype(object))
    main_keys = ctx.catalog.image_key[ctx.catalog.dataset == ctx.main_source].tolist()
    planted = {s: ctx.planted_regions(s) for s in subjects}
    prf = {s: _planted_prf(ctx, s) for s in subjects}
    refs = _reference_responses(ctx, main, planted)
    plans = _scope_plan(settings, subjects, joint, reliability)
    inputs = _ProfileInputs(ctx, settings, emb, main_keys, nc=nc, scores=scores, planted=planted, prf=prf, refs=refs)
    headline: dict = {"joint_subjects": joint, "embedding_cosine_to_init": getattr(enc, "embedding_cosine_", {}),
                      "default_profile": settings.default_profile, "smoothing_beta": settings.smoothing_beta,
                      "scopes": {}}
    # one subject at a time (issue 29): its predictions of at most settings.max_predicted_images images go to a
    # file in the work folder until its top images are ranked; memory holds what the clusterings need
    ctx.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clusters-predictions-", dir=ctx.work) as tmp:
        with ctx.timed("predict images"):
            inputs.prepare(enc, plans, Path(tmp))
        with ctx.timed("clusters"):
            clustered = []
            for plan in _bar(ctx, plans, "clusters"):
                k_from = headline["scopes"].get(plan.get("k_from"), {}).get("chosen_k")
                done, heads = _cluster_scope(ctx, plan, inputs, k_from=k_from)
                clustered += done
                headline["scopes"].update(heads)
            inputs.profile_measured, inputs.profile_predicted = {}, {}  # the profiles are built
        with ctx.timed("top images"):
            images = _cluster_images(inputs, clustered)
    with ctx.timed("cluster descriptions"):
        for i, c in enumerate(clustered):
            described = _describe(ctx, inputs, c, images, i)
            c["head"]["per_k"] = described["per_k"]
            yield ClusterScopeResult(model_id=model_id, scope=c["name"], settings=c["settings"], variant=c["variant"],
                                     labels=c["labels"], descriptions=described["descriptions"],
                                     top_images=described["top_images"], quality=described["quality"],
                                     headline=c["head"])
            clustered[i] = None  # its labels are not kept once written
    return headline


class _ProfileInputs:
    """What the clusterings are computed from, per subject: embeddings (V, E), the image keys of its measured
    responses (``seen``: training then test), where each vertex lies on the cortex; the noise ceilings ``nc``
    (V,) or None, the tag ``scores``, the ``planted`` regions and pRF centres ``prf`` (demo brain), the
    yardsticks' reference responses ``refs`` and the yardsticks already scored (``yard_cache``).

    :meth:`prepare` reads one subject at a time and keeps only what the response profiles need (issue 29):
    ``accuracy`` {main subject: (V,)}, ``profile_measured`` / ``profile_predicted`` {subject: ((n, n_cols) rows of the
    z-scored responses / predictions, re-z-scored as :func:`brainviz.clusters.response_profiles` did, at the
    profiles' images, (n,) keys)} over the vertices ``cols`` {subject: (V,) bool} some response-profile scope
    selects, and ``predicted`` {main subject: (file of its (n_pred, V) float32 predictions, (n_pred,) keys)}."""

    def __init__(self, ctx: Context, settings: AnalysisSettings, emb: dict, main_keys: list[str], *,
                 nc: dict | None = None, scores: pd.DataFrame | None = None, planted: dict | None = None,
                 prf: dict | None = None, refs: dict | None = None):
        self.ctx, self.settings, self.emb = ctx, settings, emb
        self.main_keys, self.nc, self.scores = main_keys, nc or {}, scores
        self.planted, self.prf, self.refs = planted or {}, prf or {}, refs or {}
        self.seen = {s: list(ctx.images[s].train_keys) + (list(ctx.images[s].test_keys) if ctx.has_test(s) else [])
                     for s in ctx.subject_names}
        self.tagged = set() if scores is None else set(scores.index[scores.notna().any(axis=1)])
        self.accuracy: dict = {}
        self.profile_measured: dict = {}
        self.profile_predicted: dict = {}
        self.cols: dict = {}
        self.predicted: dict = {}
        self.yard_cache: dict = {}
        self._where: dict = {}

    def measured_parts(self, s: str) -> list:
        """``s``'s measured responses as lazy arrays over the memory-mapped files (training rows, then test rows):
        the rows of :attr:`seen`."""
        ctx = self.ctx
        return [ctx.responses(s, "train", lazy=True)] + ([ctx.responses(s, "test", lazy=True)] if ctx.has_test(s) else [])

    def prepare(self, enc, plans: list[dict], tmp: Path) -> None:
        """Predict each main subject's images (:func:`~.cluster_images.predicted_keys`, bound
        ``settings.max_predicted_images``) in image chunks into a file under ``tmp`` (``ctx.workers()`` subjects
        side by side, a chunk each in memory); then for each subject, one at a time, read its responses and
        predictions in column blocks z-scored per vertex over all its images (:func:`~.cluster_images.zscored_blocks`)
        for the accuracy and the profile rows. Values equal the whole arrays z-scored at once."""
        ctx, S = self.ctx, self.settings
        meas_keys: dict = {s: set() for s in self.seen}
        pred_keys: dict = {s: set() for s in self.seen}
        cols: dict = {}
        for plan in plans:
            if plan["profile"] == "embeddings":
                continue
            subs, every = plan["subjects"], plan["profile"] == "measured"
            keys = _profile_keys([self.seen[s] for s in subs], every, S.min_profile_images, S.max_profile_images)
            codes, _ = _scope_codes(ctx, plan, self.nc, self.emb)
            for s in subs:
                seen = set(self.seen[s])
                meas_keys[s].update(k for k in keys if k in seen)
                if not every:
                    pred_keys[s].update(k for k in keys if k not in seen)
                cols[s] = cols.get(s, np.zeros(len(codes[s]), bool)) | (codes[s] == 0)
        tagged = [k for k in self.main_keys if k in self.tagged]
        for s in ctx.main_subjects:
            self.predicted[s] = (tmp / f"{s}.npy", predicted_keys(self.main_keys, pred_keys[s], tagged,
                                                                  ctx.images[s].train_keys, S.max_predicted_images,
                                                                  seed=ctx.config.seed))
        # subjects side by side (brainviz.jobs), each a chunk of images at a time
        run_jobs([(s, lambda s=s: _predict_to_file(enc, ctx, s, self.predicted[s][1], self.predicted[s][0]))
                  for s in ctx.main_subjects], ctx.workers(), describe=False)
        for s in ctx.subject_names:
            main = s in ctx.main_subjects
            n_vertices = len(self.emb[s])
            self.cols[s] = cols.get(s, np.zeros(n_vertices, bool))
            parts = self.measured_parts(s)
            pred_blocks = None
            blocks = column_blocks(max(sum(len(p) for p in parts), len(self.predicted[s][1]) if main else 0), n_vertices)
            meas = zscored_blocks(parts, n_vertices, edges=blocks)
            if main:
                pred_mm = np.load(self.predicted[s][0], mmap_mode="r")
                pred_blocks = zscored_blocks([pred_mm], n_vertices, edges=blocks)
            self._profile_rows(s, meas, pred_blocks, sorted(meas_keys[s]), sorted(pred_keys[s]) if main else None)
            if main:
                del pred_mm

    def _profile_rows(self, s: str, meas, preds, meas_keys: list[str], pred_keys: list[str] | None) -> None:
        """The accuracy and profile rows of ``s`` from its z-scored column blocks ``meas`` (and ``preds``)."""
        cols = self.cols[s]
        col_pos = np.cumsum(cols) - 1
        seen_row = {k: i for i, k in enumerate(self.seen[s])}
        m_rows = np.array([seen_row[k] for k in meas_keys], dtype=np.int64)
        pm = np.zeros((len(m_rows), int(cols.sum())), np.float32)
        if preds is not None:
            path, keys = self.predicted[s]
            pred_row = {k: i for i, k in enumerate(keys)}
            missing = [k for k in pred_keys if k not in pred_row]
            if missing:
                from ...errors import BrainVizDataError

                raise BrainVizDataError(f"predictions[{s}]", f"no prediction for profile images {missing[:5]}")
            p_rows = np.array([pred_row[k] for k in pred_keys], dtype=np.int64)
            pp = np.zeros((len(p_rows), int(cols.sum())), np.float32)
            fitted = [(seen_row[k], pred_row[k]) for k in self.ctx.images[s].train_keys if k in pred_row]
            fit_m = np.array([a for a, _ in fitted], dtype=np.int64)
            fit_p = np.array([b for _, b in fitted], dtype=np.int64)
            acc = np.zeros(len(cols), np.float32)
        for j0, j1, zm in meas:
            cb = cols[j0:j1]
            if cb.any():  # re-z-scored over all images, as response_profiles did on the selected columns
                pm[:, col_pos[j0:j1][cb]] = zscore(zm)[m_rows][:, cb]
            if preds is None:
                continue
            _, _, zp = next(preds)
            if len(fitted) >= 2:
                acc[j0:j1] = np.clip(np.nan_to_num(pearson_per_vertex(zm[fit_m], zp[fit_p])), 0, 1)
            if cb.any():
                pp[:, col_pos[j0:j1][cb]] = zscore(zp)[p_rows][:, cb]
        self.profile_measured[s] = (pm, meas_keys)
        if preds is not None:
            self.profile_predicted[s] = (pp, pred_keys)
            self.accuracy[s] = acc

    def where(self, s: str) -> tuple[np.ndarray, np.ndarray]:
        """((V,) hemisphere, (V,) fsaverage5 vertex or -1) of ``s``'s vertices."""
        if s not in self._where:
            vt = self.ctx.dataset.subjects[s].vertex_table()
            self._where[s] = (vt["hemi"].to_numpy().astype(str), vt["fsaverage5_index"].to_numpy())
        return self._where[s]


#: images predicted per call: the Universal Encoder's own step (the same values as one call; its features, ~157 KB
#: per image in float16 with the default backbone, are read and converted a chunk at a time)
PREDICT_CHUNK = 512


def _predict_to_file(enc, ctx: Context, s: str, keys: list[str], path: Path) -> None:
    """``s``'s (len(keys), V) float32 predictions written to the .npy file ``path``, ``PREDICT_CHUNK`` images at a
    time (memory: one chunk)."""
    out = None
    for i in range(0, len(keys), PREDICT_CHUNK):
        p = predict(enc, ctx, s, keys[i:i + PREDICT_CHUNK])
        if out is None:
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(keys), p.shape[1]))
        out[i:i + len(p)] = p
    if out is None:
        np.save(path, np.zeros((0, len(enc.voxel_embeddings(s))), np.float32))
    else:
        out.flush()
        del out


def _cluster_images(inputs: _ProfileInputs, clustered: list[dict]) -> dict:
    """Every clustering's per-subject top images ('measured', and 'predicted' for the main subjects) and pooled
    means (:class:`~.cluster_images.PooledMeans`), one subject at a time for all its labelings at once:
    {"tops": {(clustering index, k, subject, source): :func:`brainviz.clusters.top_images` frame},
    "pooled": {(clustering index, k): PooledMeans}}. Deletes each subject's predictions file once read."""
    n_top = inputs.settings.n_top_images
    pooled = {(i, k): PooledMeans({s: inputs.seen[s] for s in c["subs"]}, inputs.tagged, n_top)
              for i, c in enumerate(clustered) for k in c["labels"]}
    tops: dict = {}
    for s in inputs.ctx.subject_names:
        labs = {(i, k): c["labels"][k][s] for i, c in enumerate(clustered) if s in c["subs"] for k in c["labels"]}
        n_vertices = len(inputs.emb[s])
        if labs:
            lab = Labelings(labs)
            parts = inputs.measured_parts(s)
            means = labeling_means(zscored_blocks(parts, n_vertices), lab, sum(len(p) for p in parts))
            for key, (values, m) in means.items():
                tops[key + (s, "measured")] = cl.top_images_of_means(values, m, n_top, keys=inputs.seen[s])
                pooled[key].add(inputs.seen[s], values, m)
            del means
        if s in inputs.predicted:
            path, keys = inputs.predicted.pop(s)
            if labs:
                mm = np.load(path, mmap_mode="r")
                means = labeling_means(zscored_blocks([mm], n_vertices), lab, len(keys))
                for key, (values, m) in means.items():
                    tops[key + (s, "predicted")] = cl.top_images_of_means(values, m, n_top, keys=keys)
                del mm, means
            Path(path).unlink(missing_ok=True)
    return {"tops": tops, "pooled": pooled}


def _profile_keys(seen: list[list[str]], every: bool, min_images: int = _DEFAULTS.min_profile_images,
                  max_images: int = _DEFAULTS.max_profile_images) -> list[str]:
    """The images of a response profile, from each subject's seen images ``seen``: those every subject saw
    (``every``), else the best covered: the images every subject saw, then those all but one saw, and so on,
    whole coverage levels at a time, until at least ``min_images`` (the images seen by fewer subjects
    need more predictions, which blur the measured profile: on the demo brain the 278 images all four subjects
    saw clustered better than the 970 any of them saw). At most ``max_images``, then in the fixed
    pseudo-random order of :func:`brainviz.splits.held_out_order`. Sorted."""
    from collections import Counter

    from ...splits import held_out_order

    count = Counter(key for keys in seen for key in set(keys))
    keys: list[str] = []
    for level in range(len(seen), 0 if not every else len(seen) - 1, -1):
        if keys and (every or len(keys) >= min_images):
            break
        keys += [key for key, c in count.items() if c == level]
    if len(keys) > max_images:
        rank = {key: i for i, key in enumerate(held_out_order(keys))}
        keys = sorted(keys, key=lambda key: (-count[key], rank[key]))[:max_images]
    return sorted(keys)


def _profile_features(inputs: _ProfileInputs, profile: str, subs: list[str], codes: dict,
                      seed: int) -> tuple[np.ndarray | None, dict]:
    """((n_selected, d) what k-means clusters for ``profile``, info) over the selected vertices (``codes == 0``)
    of ``subs``, stacked in that order; (None, {"why": ...}) when the data cannot give this profile.

    'embeddings': the voxel embeddings. 'measured': each vertex's measured responses to the images every subject
    of ``subs`` saw (a subject alone: all its images), as a unit-norm block (:func:`brainviz.clusters.profile_block`).
    'combined': the embeddings beside a response-profile block over the best covered images (:func:`_profile_keys`),
    measured where the subject saw the image, else the encoder's prediction weighted by its accuracy on the
    fitted images (:func:`brainviz.clusters.response_profiles`), blocks of equal weight."""
    sel = {s: codes[s] == 0 for s in subs}
    emb = np.concatenate([inputs.emb[s][sel[s]] for s in subs])
    if profile == "embeddings":
        return emb, {}
    seen = [inputs.seen[s] for s in subs]
    every = profile == "measured"
    S = inputs.settings
    keys = _profile_keys(seen, every, S.min_profile_images, S.max_profile_images)
    if every and len(keys) < min(S.min_common_images, min(len(k) for k in seen)):
        return None, {"why": f"the {len(subs)} subjects saw only {len(keys)} images in common (the measured "
                             f"profile needs {S.min_common_images})"}
    # the profile images' rows, z-scored as before over all the subject's images (_ProfileInputs.prepare)
    at = {s: sel[s][inputs.cols[s]] for s in subs}
    measured = {s: (inputs.profile_measured[s][0][:, at[s]], inputs.profile_measured[s][1]) for s in subs}
    predicted = weights = None
    if not every:
        predicted = {s: (inputs.profile_predicted[s][0][:, at[s]], inputs.profile_predicted[s][1])
                     for s in subs if s in inputs.profile_predicted}
        weights = {s: inputs.accuracy[s][sel[s]] for s in predicted}
    prof = cl.response_profiles(measured, keys, predicted, weights, zscore=False)
    block = cl.profile_block(np.concatenate([prof[s] for s in subs]), S.profile_components, seed=seed)
    n_seen = sum(len(set(k) & set(keys)) * int(sel[s].sum()) for s, k in zip(subs, seen))
    info = {"n_images": len(keys), "measured_share": n_seen / max(1, len(keys) * sum(int(m.sum()) for m in sel.values()))}
    return (block if every else cl.combine_blocks(emb, block)), info


def _neighbours(inputs: _ProfileInputs, subs: list[str], codes: dict):
    """(n_selected, n_selected) sparse neighbours on the cortex of the selected vertices of ``subs`` (stacked
    in that order; never across subjects or hemispheres), :func:`brainviz.clusters.cortical_neighbours`."""
    import scipy.sparse as sp

    blocks = []
    for s in subs:
        hemi, fs5 = inputs.where(s)
        m = codes[s] == 0
        blocks.append(cl.cortical_neighbours(hemi[m], fs5[m]))
    return sp.block_diag(blocks, format="csr")


def _reference_responses(ctx: Context, subjects: list[str], planted: dict) -> dict[str, dict[str, np.ndarray]]:
    """{source: {subject: (n_common, V) responses to the test images every one of ``subjects`` saw}},
    the profiles of the cluster yardsticks (:func:`brainviz.clusters.reference_ari`; demo brain only,
    SIMULATION CHECK): 'noise-free' the simulation's noise-free responses (ground truth: what the same
    clustering reaches without noise or encoder), 'ridge-noise-free' the test predictions of a ridge encoder
    fitted to the noise-free TRAINING responses (what a linear read-out of the backbone's features can reach at
    best: the features' bound), 'measured' the measured test responses (what the data hold without an
    encoder), 'ridge' each subject's ridge encoder's test predictions (what a linear read-out of the same
    features holds). Empty for real data."""
    if not subjects or any(planted[s] is None or not ctx.has_test(s) for s in subjects):
        return {}
    shared = set.intersection(*(set(ctx.images[s].test_keys) for s in subjects))
    common = [key for key in ctx.images[subjects[0]].test_keys if key in shared]  # the first subject's order
    if len(common) < 2:
        return {}
    registry = load_registry(ctx)
    ridge_cfg = next((e.get("config", {}) for m, e in registry.items() if m.startswith("ridge-")), {})

    def noise_free_ridge(s: str) -> np.ndarray | None:
        from ...encoders.ridge import RidgeEncoder

        clean = ctx.dataset.clean_responses(s, "train")
        if clean is None or len(clean) != len(ctx.images[s].train_keys):
            return None
        kw = {key: ridge_cfg[key] for key in ("alphas", "cv", "spatial_grid") if key in ridge_cfg}
        model = RidgeEncoder(seed=ctx.config.seed, **kw).fit(ctx.feature_subset(ctx.images[s].train_keys), clean)
        return predict(model, ctx, s, ctx.images[s].test_keys)

    with ctx.timed("yardstick ridge"):
        clean_ridge = run_jobs([(s, lambda s=s: noise_free_ridge(s)) for s in subjects], ctx.workers(), describe=False)
    out: dict[str, dict[str, np.ndarray]] = {src: {} for src in REFERENCE_SOURCES}
    for s in subjects:
        pos = {key: i for i, key in enumerate(ctx.images[s].test_keys)}
        rows = np.array([pos[key] for key in common])
        for src, y in (("noise-free", ctx.dataset.clean_responses(s, "test")),
                       ("ridge-noise-free", clean_ridge[s]),
                       ("measured", ctx.responses(s, "test")),
                       ("ridge", load_predictions(ctx, f"ridge-{s}", s))):
            if y is not None and len(y) == len(pos):
                out[src][s] = np.asarray(y[rows], np.float32)
    return {src: d for src, d in out.items() if d}


def _scope_codes(ctx: Context, plan: dict, nc: dict, emb: dict) -> tuple[dict, dict]:
    """({subject: (V,) int8 code: 0 = clustered, < 0 = below the reliability threshold or outside the region},
    {subject: the noise-ceiling threshold or NaN}) of one clustering's ``plan``."""
    codes, thr = {}, {}
    for s in plan["subjects"]:
        region = _region_mask(ctx, s, plan["region"])
        if nc[s] is None:  # no reliability estimate: every vertex of the scope is clustered
            codes[s] = np.where(region if region is not None else np.ones(len(emb[s]), bool), 0, -2).astype(np.int8)
            thr[s] = float("nan")
        else:
            codes[s], _ = cl.reliable_vertices(nc[s], plan["percentile"])  # threshold over the whole subject
            thr[s] = float(np.percentile(nc[s][np.isfinite(nc[s])], plan["percentile"]))
            if region is not None:
                codes[s][~region] = -2
    return codes, thr


def _cluster_scope(ctx: Context, plan: dict, inputs: _ProfileInputs,
                   k_from: int | None = None) -> tuple[list[dict], dict]:
    """Select, profile, choose k, cluster (and smooth) one clustering: returns ([one dict per smoothing strength
    of the plan (:func:`scope_id` 'name', 'plan', 'subs', 'codes', 'chosen', 'labels' {k: {subject: (V,)}},
    'settings', 'variant', 'head', 'quality'): described by :func:`_describe` once every clustering's top images
    are ranked], {scope: headline numbers}) (a scope with too few vertices or images: its numbers, no clustering).

    k: ``k_from`` when given (another scope's chosen k, see :func:`_scope_plan`), 2 for a scope with
    ks (2,), else by bootstrap stability (:func:`brainviz.clusters.choose_k`) of the plain k-means; the
    smoothed labels keep that k."""
    from sklearn.metrics import adjusted_rand_score

    S, nc = inputs.settings, inputs.nc
    scope, subs = plan["scope"], plan["subjects"]
    codes, thr = _scope_codes(ctx, plan, nc, inputs.emb)
    n_sel = int(sum((codes[s] == 0).sum() for s in subs))
    out: dict = {"n_clustered": n_sel, "subjects": subs, "profile": plan["profile"]}
    if n_sel < 4 * max(plan["ks"]):
        ctx.skip(f"clusters of scope {scope}", f"only {n_sel} vertices qualify (k up to {max(plan['ks'])} "
                 f"needs {4 * max(plan['ks'])})", "more vertices in the scope's region")
        return [], {scope: out}
    selected, info = _profile_features(inputs, plan["profile"], subs, codes, ctx.config.seed)
    if selected is None:
        ctx.skip(f"clusters of scope {scope}", info["why"], "images seen by every subject of the scope")
        return [], {scope: out}
    quality = []
    ks = list(plan["ks"])
    if ks == [2]:
        chosen, rule = 2, "fixed"
    elif k_from is not None and k_from in ks:
        chosen, rule = int(k_from), f"k of {plan['k_from']}"
        if plan.get("only_k_from"):  # this k alone (_scope_plan): the clusters step's time
            ks = [chosen]
    else:
        rule = f"stability >= {S.min_stability}"
        rng = np.random.default_rng(ctx.config.seed)
        sample = selected if len(selected) <= S.stability_max_vertices else \
            selected[np.sort(rng.choice(len(selected), S.stability_max_vertices, replace=False))]
        curve = cl.stability_curve(sample, ks, seed=ctx.config.seed, n_boot=S.stability_rounds,
                                   fraction=S.stability_fraction, n_jobs=ctx.workers())
        chosen = cl.choose_k(curve, S.min_stability)
        out["stability"] = {int(r.k): round(float(r.stability), 3) for r in curve.itertuples()}
        for r in curve.itertuples():
            quality += [(int(r.k), "stability", float(r.stability), False),
                        (int(r.k), "stability_sd", float(r.stability_sd), False)]
    out["chosen_k"] = int(chosen)
    with cl.kmeans_threads():  # every k at once, side by side (brainviz.jobs)
        by_k = run_jobs([(f"k={k}", lambda k=k: cl.kmeans_clusters(selected, k, seed=ctx.config.seed)) for k in ks],
                        ctx.workers(), describe=False)
    neighbours = _neighbours(inputs, subs, codes) if any(b > 0 for b in plan["smoothing"]) else None
    heads, done = {}, []
    for beta in plan["smoothing"]:
        name = scope_id(plan["family"], plan["percentile"], plan["profile"], smoothed=beta > 0,
                        default_percentile=S.default_percentile)
        labels_by_k, extra = {}, []
        for k in ks:
            lab = by_k[f"k={k}"] if beta == 0 else cl.smooth_labels(selected, by_k[f"k={k}"], neighbours, beta, k=k)
            if beta > 0:  # how much smoothing changed (no ground truth)
                extra.append((k, "agreement_with_plain", float(adjusted_rand_score(by_k[f"k={k}"], lab)), False))
            labels_by_k[k] = _fill(codes, subs, lab)
        settings = pd.DataFrame({
            "subject": subs, "base": plan["base"], "region": plan["region"],
            "percentile": [float(plan["percentile"]) if nc[s] is not None else None for s in subs],
            "nc_threshold": [thr[s] if nc[s] is not None else None for s in subs], "chosen_k": int(chosen),
            "k_rule": rule, "is_default": plan["default"] is not None and plan["default"] == beta})
        degree = np.asarray(neighbours.sum(axis=1)).ravel() if beta > 0 else None
        variant = {
            "family": plan["family"],
            "percentile": float(plan["percentile"]) if any(nc[s] is not None for s in subs) else None,
            "profile": plan["profile"], "n_images": info.get("n_images"), "measured_share": info.get("measured_share"),
            "smoothing": float(beta), "smoothing_radius_mm": cl.NEIGHBOUR_RADIUS_MM if beta > 0 else None,
            "with_neighbours": float((degree > 0).mean()) if beta > 0 else None,
            "profile_default": plan["profile_default"] == beta,
            "is_default": plan["default"] is not None and plan["default"] == beta}
        head = dict(out, scope=name, smoothing=float(beta), **info)
        heads[name] = head  # per_k: added by _describe
        done.append(dict(name=name, plan=plan, subs=subs, codes=codes, chosen=chosen, labels=labels_by_k,
                         settings=settings, variant=variant, head=head, quality=quality + extra))
    return done, heads


def _fill(codes: dict, subs: list[str], labels: np.ndarray) -> dict:
    """subject -> (V,) labels from the stacked labels of the selected vertices of ``subs`` (in that order): the
    clustered vertices' labels, the code (< 0, :data:`brainviz.clusters.UNCLUSTERED`) of the others."""
    out, start = {}, 0
    for s in subs:
        full = np.asarray(codes[s]).astype(np.int32)
        n = int((full == 0).sum())
        full[full == 0] = labels[start:start + n]
        out[s], start = full, start + n
    return out


def _describe(ctx: Context, inputs: _ProfileInputs, clustering: dict, images: dict, index: int) -> dict:
    """One clustering's (:func:`_cluster_scope`, number ``index``) top images, descriptions and (demo brain)
    recovery scores at every k, from the top images and pooled means of :func:`_cluster_images`: {"per_k": {k:
    recovery numbers}, "descriptions": {k: DataFrame}, "top_images": DataFrame, "quality": DataFrame}."""
    plan, subs, by_k, chosen, codes = (clustering[k] for k in ("plan", "subs", "labels", "chosen", "codes"))
    quality = list(clustering["quality"])
    scores = inputs.scores
    planted, prf = inputs.planted, inputs.prf
    per_k, descriptions = {}, {}
    tops = []  # every subject's and k's top images, one table
    for k, labels in by_k.items():
        for s in subs:
            for source in ("measured", "predicted"):
                top_s = images["tops"].get((index, k, s, source))
                if top_s is not None:
                    tops.append(top_s.assign(k=int(k), subject=s, source=source))
        lab_all = np.concatenate([labels[s] for s in subs])
        counts = dict(zip(*np.unique(lab_all[lab_all >= 0], return_counts=True)))
        # what a cluster "responds to": the images with the highest MEASURED responses of its vertices,
        # pooled over the scope's subjects (report 004 sec. 5). The encoder's predictions for every image
        # are stored per subject too, but they rank images only as well as the encoder predicts (rare
        # categories such as words are predicted poorly from 450 training images).
        # (the pooled means of the tagged images and the images seen twice: what the names and the top images use)
        means = images["pooled"][(index, k)].means()
        top = images["pooled"][(index, k)].top(means)
        # named by what distinguishes a cluster: the tag with the largest unique effect on its mean measured
        # response over every tagged image (``means``); "mixed / weak" when the tags explain little of it
        desc = cl.name_clusters(means, top, scores, n_vertices=counts)
        desc["source"] = "measured"
        descriptions[int(k)] = desc
        rec = {}
        if all(planted[s] is not None for s in subs):  # SIMULATION CHECK (demo brain ground truth)
            pl = np.concatenate([planted[s] for s in subs])
            rec = cl.recovery_scores(lab_all, pl, list(PLANTED_CATEGORY))
            if prf[subs[0]] is not None:
                pos = np.concatenate([prf[s] for s in subs])
                ev = cl.position_score(lab_all, pos, pl == "early", seed=ctx.config.seed)
                rec.update({f"early_{m}": v for m, v in ev.items()})
            for region, d in _planted_precision(lab_all, pl, top, scores).items():
                rec[f"precision:{region}"] = d["precision"]
            if plan["family"].endswith(":PPA"):
                rec.update(_ppa_split(top, desc, scores))
            if k == chosen and inputs.refs and plan.get("yardsticks"):
                key = (tuple(subs), plan["region"], plan["percentile"], k)
                if key not in inputs.yard_cache:  # the same vertices and k in every profile and smoothing
                    inputs.yard_cache[key] = _yardsticks(ctx, inputs.refs, subs, codes, planted, k)
                rec.update(inputs.yard_cache[key])
            quality += [(k, m, float(v), True) for m, v in rec.items() if np.isscalar(v)]
        per_k[int(k)] = {m: (round(float(v), 3) if np.isscalar(v) else v) for m, v in rec.items()}
    top_images = pd.concat(tops, ignore_index=True)[["cluster", "rank", "image_key", "score", "k", "subject", "source"]] \
        if tops else pd.DataFrame(columns=["cluster", "rank", "image_key", "score", "k", "subject", "source"])
    quality = [q for q in quality if np.isfinite(q[2])]  # undefined scores (e.g. too few vertices) are left out
    quality_df = pd.DataFrame([dict(k=int(k), metric=m, value=v, simulation_check=sim) for k, m, v, sim in quality],
                              columns=["k", "metric", "value", "simulation_check"])
    return {"per_k": per_k, "descriptions": descriptions, "top_images": top_images, "quality": quality_df}


def _yardsticks(ctx: Context, refs: dict, subs: list[str], codes: dict, planted: dict, k: int) -> dict:
    """{'reference:<source>': ARI} of k-means with the same k on the reference profiles of the clustered
    vertices (:func:`_reference_responses`), for each source every subject of the scope has."""
    sel = {s: codes[s] == 0 for s in subs}
    jobs = [(f"reference:{src}", lambda d=d: cl.reference_ari([d[s][:, sel[s]] for s in subs],
                                                               [planted[s][sel[s]] for s in subs], k,
                                                               list(PLANTED_CATEGORY), seed=ctx.config.seed))
            for src, d in refs.items() if all(s in d for s in subs)]
    with cl.kmeans_threads():
        return run_jobs(jobs, ctx.workers(), describe=False)


def _ppa_split(top: pd.DataFrame, desc: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """PPA sub-clusters (SIMULATION CHECK): top-10 indoor / outdoor counts of each sub-cluster, and
    whether one is indoor (>= 8/10) and the other outdoor (>= 8/10)."""
    out = {}
    for c, grp in top.groupby("cluster"):
        keys = grp.sort_values("rank")["image_key"].tolist()
        for cat in ("indoor", "outdoor"):
            if cat in scores.columns:
                out[f"ppa{int(c)}_{cat}"] = float(cl.top_image_precision(keys, scores, cat))
    pairs = [(a, b) for a in (0, 1) for b in (0, 1) if a != b]
    out["ppa_indoor_outdoor_split"] = float(any(out.get(f"ppa{a}_indoor", 0) >= 0.8 and out.get(f"ppa{b}_outdoor", 0) >= 0.8
                                                for a, b in pairs))
    return out


def _planted_precision(labels: np.ndarray, planted: np.ndarray, top: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """For each planted category region: the cluster holding most of its clustered vertices, and the
    fraction of that cluster's top-10 images carrying the region's category tag (SIMULATION CHECK)."""
    out = {}
    for region, cat in PLANTED_CATEGORY.items():
        m = (planted == region) & (labels >= 0)
        if not m.any() or cat not in scores.columns:
            continue
        c = int(np.bincount(labels[m]).argmax())
        keys = top.loc[top.cluster == c, "image_key"].tolist()
        if keys:
            out[region] = {"cluster": c, "precision": round(float(cl.top_image_precision(keys, scores, cat)), 2)}
    return out


