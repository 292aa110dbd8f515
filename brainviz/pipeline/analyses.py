"""Analyses written into the store: clusters, RDMs + RSA, the 92-image set, pair model, decoding.

Each ``write_*`` function computes one analysis from the pipeline context and
writes it with the store writer; each returns a small dict of headline numbers
(kept in the store's ``meta`` under ``headline`` and printed by the CLI).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import clusters as cl
from .. import rsa as rdmlib
from ..errors import BrainVizDataError
from ..names import EARLY_ROIS, HEMIS, ROI_SETS
from ..paths import KRIEGESKORTE92, resolve_data_root
from ..decoding import WHOLE_CORTEX, decode_roi_sets, identify_roi_sets
from ..jobs import run_jobs
from ..metrics import pearson_per_vertex, retrieval_ranks, zscore
from ..rsa import CEILING_KINDS, crossvalidated_rdm, fit_layer_mix, layer_sweep, repeat_rdms, within_subject_ceiling
from ..pairs import run_pair_experiment
from ..store.writer import StoreWriter
from ..thumbnails import thumbnail
from .context import Context
from .evaluate import predict
from .workdir import load_model, load_predictions, load_registry

#: ROIs (groups) with an RDM per subject; 'all' = every challenge-space vertex.
RDM_ROIS = ("early visual", "faces", "places", "bodies", "words", "all")
#: Planted demo-brain regions and the tag category their top images should show.
PLANTED_CATEGORY = {"faces": "faces", "bodies": "bodies", "food": "food", "words": "words",
                    "places-indoor": "indoor", "places-outdoor": "outdoor"}
EMBEDDING_MODEL = "ue_multi"


def _bar(ctx: Context, it, desc: str):
    from ..progress import bar

    return bar(it, desc=desc, enabled=ctx.config.progress)


# --------------------------------------------------------------------------- clusters

#: Reliability thresholds precomputed for the page (percentiles of each subject's noise ceilings).
RELIABILITY_PERCENTILES = (50.0, 75.0, 90.0)
#: The default: cluster the vertices whose noise ceiling is in the subject's top quarter.
DEFAULT_PERCENTILE = 75.0
#: k is the largest k whose bootstrap stability is at least this (brainviz.clusters.choose_k).
MIN_STABILITY = 0.75
#: A subject joins the joint clustering when its median noise ceiling is at least this share of the best subject's.
GOOD_SUBJECT_SHARE = 0.5
#: The clustering shown first: reliable vertices of the good subjects together, outside V1-hV4.
DEFAULT_SCOPE = "joint:non-early"
STABILITY_MAX_VERTICES = 2500
#: What the view the app opens with clusters (brainviz.clusters.PROFILES; chosen on the demo brain, README).
DEFAULT_PROFILE = "combined"
#: Strength of the smoothing on the cortex (brainviz.clusters.smooth_labels) of the smoothed labels written beside
#: the plain ones of every profile (tried on the demo brain: 0.5, 1 and 2; 0.5 helped the embeddings most).
SMOOTHING_BETA = 0.5
#: Profiles whose view opens smoothed: where smoothing raised the joint category-region ARI at the chosen k and at
#: k = 8, 10 and 12 on both demo seeds (the embeddings: +0.01 to +0.06; the measured and combined profiles moved
#: by -0.02 to +0.02, README 'Results on the demo brain').
SMOOTHED_BY_DEFAULT = ("embeddings",)
#: A response profile holds the images seen by the most subjects of the scope, coverage level by coverage level
#: (every subject, all but one, ...) until it holds at least this many images ...
MIN_PROFILE_IMAGES = 200
#: ... and at most this many (in the fixed pseudo-random order of brainviz.splits.held_out_order).
MAX_PROFILE_IMAGES = 2000
#: The measured profile of several subjects needs at least this many images every one of them saw.
MIN_COMMON_IMAGES = 20
#: Principal components kept of a response profile (brainviz.clusters.profile_block).
PROFILE_COMPONENTS = 50
#: the response profiles the clusters are measured against (:func:`_reference_responses`)
REFERENCE_SOURCES = ("noise-free", "ridge-noise-free", "measured", "ridge")


def scope_id(family: str, percentile: float = DEFAULT_PERCENTILE, profile: str = "embeddings",
             smoothed: bool = False) -> str:
    """The store's name of a clustering: ``family`` (the clustered vertices: 'joint:non-early', 'joint', 'subj01',
    'joint:PPA'), '@p<percentile>' for a threshold other than the default, '+<profile>' when not the
    embeddings, '~smoothed' for labels smoothed on the cortex (table ``cluster_variants`` says it in columns)."""
    name = family if percentile == DEFAULT_PERCENTILE else f"{family}@p{int(percentile)}"
    name += "" if profile == "embeddings" else f"+{profile}"
    return name + ("~smoothed" if smoothed else "")


def good_subjects(nc: dict[str, np.ndarray], subjects: list[str], share: float = GOOD_SUBJECT_SHARE) -> list[str]:
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


def _scope_plan(ctx: Context, subjects: list[str], joint: list[str], reliability: bool = True) -> list[dict]:
    """The clusterings written: family, base, subjects, region, percentile, ks, profile, smoothing (the
    strengths written: 0 = plain k-means labels), default (the smoothing strength of the view the app opens
    with, or None: another scope), profile_default (the smoothing strength this profile's views open with: on
    for :data:`SMOOTHED_BY_DEFAULT`), scope (:func:`scope_id` of the plain labels), yardsticks (score the reference
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
    ks = tuple(int(k) for k in ctx.config.cluster_ks)
    smooth = (0.0, SMOOTHING_BETA)
    plan = []
    for profile in dict.fromkeys((DEFAULT_PROFILE, *cl.PROFILES)):
        default = SMOOTHING_BETA if profile in SMOOTHED_BY_DEFAULT else 0.0  # the variant this profile opens with
        base = dict(base="joint", subjects=joint, ks=ks, profile=profile, profile_default=default)
        main = scope_id(DEFAULT_SCOPE, DEFAULT_PERCENTILE, profile)
        plan.append(dict(family=DEFAULT_SCOPE, region="non-early", percentile=DEFAULT_PERCENTILE, smoothing=smooth,
                         default=default if profile == DEFAULT_PROFILE else None, yardsticks=True, **base))
        extra = profile in ("embeddings", DEFAULT_PROFILE)
        for p in RELIABILITY_PERCENTILES if reliability and extra else ():
            if p != DEFAULT_PERCENTILE:  # the embeddings choose k at each threshold (as before), a profile once
                plan.append(dict(family=DEFAULT_SCOPE, region="non-early", percentile=p, smoothing=(0.0,),
                                 default=None, **({} if profile == "embeddings" else
                                                  {"k_from": main, "only_k_from": True}), **base))
        if extra:
            plan.append(dict(family="joint", region=None, percentile=DEFAULT_PERCENTILE, smoothing=(0.0,),
                             default=None, **base))
        for s in subjects:
            plan.append(dict(family=s, base=s, subjects=[s], region="non-early", percentile=DEFAULT_PERCENTILE, ks=ks,
                             profile=profile, profile_default=default, smoothing=smooth if default else (0.0,),
                             default=None, k_from=main if joint else None, yardsticks=True,
                             only_k_from=profile != "embeddings" and bool(joint)))
        if profile == "embeddings":
            plan.append(dict(family="joint:PPA", region="PPA", percentile=DEFAULT_PERCENTILE, smoothing=(0.0,),
                             default=None, **{**base, "ks": (2,)}))
    for p in plan:
        p["scope"] = scope_id(p["family"], p["percentile"], p["profile"])
    return plan


def _region_mask(ctx: Context, subject: str, region: str | None) -> np.ndarray | None:
    sub = ctx.dataset.subjects[subject]
    if region is None:
        return None
    if region == "non-early":
        return ~sub.roi_mask(list(EARLY_ROIS))
    return sub.roi_mask(region)


def write_clusters(ctx: Context, w: StoreWriter) -> dict:
    """Voxel clusters (report 004 sec. 5), written to the store.

    What is clustered (:data:`brainviz.clusters.PROFILES`, :func:`_profile_features`): the joint model's voxel
    embeddings, each vertex's measured responses to the images every subject of the scope saw, or both combined
    (the embeddings beside a response profile that is measured where the subject saw the image and the
    encoder's prediction where it did not, so it needs no test fMRI). Labels are written as k-means gives them
    and smoothed on the cortex (:func:`brainviz.clusters.smooth_labels`, strength :data:`SMOOTHING_BETA`).
    Which vertices: those whose noise ceiling (from the TRAINING repeats) is at or above the
    ``percentile``-th percentile of their subject's (default 75: the top quarter), optionally
    inside a region; the others are "below the reliability threshold" / "outside the scope".
    Which subjects for 'joint': :func:`good_subjects`. Which k: the largest whose bootstrap
    stability is >= MIN_STABILITY (:func:`brainviz.clusters.choose_k`); every k of
    ``cluster_ks`` is written too. Scopes (:func:`_scope_plan`): 'joint:non-early' (the default:
    outside V1-hV4), 'joint:non-early@p<percentile>' (other thresholds), 'joint' (the whole
    visual cortex), each subject alone outside V1-hV4, 'joint:PPA' (k = 2).
    On the demo brain, recovery of the planted regions is scored for every scope and k
    (``cluster_quality`` rows with simulation_check = true; the only place ground truth is read),
    and at the chosen k of the default and per-subject scopes against yardsticks: the same vertices
    and k clustered on noise-free, measured and ridge-predicted test responses and on the predictions of
    ridge trained on the noise-free responses (metrics ``reference:<source>``, :func:`_reference_responses`).
    """
    registry = load_registry(ctx)
    if EMBEDDING_MODEL not in registry:
        return {}
    enc = load_model(registry[EMBEDDING_MODEL])
    subjects = ctx.subject_names
    main = ctx.main_subjects
    emb = {s: enc.voxel_embeddings(s) for s in subjects}
    for s in subjects:
        w.add_voxel_embeddings(EMBEDDING_MODEL, s, emb[s])
    with ctx.timed("umap"):
        xy = cl.joint_embedding_map(emb, seed=ctx.config.seed)
    for s in subjects:
        w.add_embedding_map(EMBEDDING_MODEL, s, xy[s])

    nc, nc_source = {}, {}
    for s in subjects:
        nc[s], nc_source[s] = ctx.noise_ceiling(s, "train")  # never the evaluation images
        if nc[s] is not None:
            w.write_table("vertex_reliability", pd.DataFrame({
                "subject": s, "vertex": np.arange(len(nc[s]), dtype=np.int32), "nc": nc[s].astype(np.float32),
                "source": nc_source[s]}))
    joint = good_subjects(nc, main)
    reliability = any(nc[s] is not None for s in subjects)

    tags = ctx.tags
    cats = [c for c in tags.columns if c != "tags"]
    # plain Python strings as index: the descriptions look images up by key thousands of times, 5x faster than
    # through an Arrow-backed string index (same result)
    scores = tags[cats].set_axis(tags.index.astype(object))
    main_keys = ctx.catalog.image_key[ctx.catalog.dataset == ctx.main_source].tolist()
    # predicted responses of every main-source image, per subject (top images "by the encoder")
    with ctx.timed("predict all images"):
        preds = run_jobs([(s, lambda s=s: predict(enc, ctx, s, main_keys)) for s in main], ctx.workers(),
                         describe=False)
    measured = {s: (np.concatenate([ctx.responses(s, "train")] + ([ctx.responses(s, "test")] if ctx.has_test(s) else [])),
                    ctx.images[s].train_keys + (ctx.images[s].test_keys if ctx.has_test(s) else []))
                for s in subjects}
    # top images rank cluster means of per-vertex z-scored responses: z-score once, not per scope and k
    preds = {s: zscore(np.asarray(p, np.float32)) for s, p in preds.items()}
    measured = {s: (zscore(np.asarray(y, np.float32)), keys) for s, (y, keys) in measured.items()}
    planted = {s: ctx.planted_regions(s) for s in subjects}
    prf = {s: _planted_prf(ctx, s) for s in subjects}
    refs = _reference_responses(ctx, main, planted)
    inputs = _ProfileInputs(ctx, emb, measured, preds, main_keys)
    headline: dict = {"joint_subjects": joint, "embedding_cosine_to_init": getattr(enc, "embedding_cosine_", {}),
                      "default_profile": DEFAULT_PROFILE, "smoothing_beta": SMOOTHING_BETA, "scopes": {}}
    yard_cache: dict = {}
    with ctx.timed("clusters"):
        for plan in _bar(ctx, _scope_plan(ctx, subjects, joint, reliability), "clusters"):
            k_from = headline["scopes"].get(plan.get("k_from"), {}).get("chosen_k")
            headline["scopes"].update(_write_scope(ctx, w, plan, inputs, nc, preds, measured, main_keys, scores,
                                                   planted, prf, k_from=k_from, refs=refs, yard_cache=yard_cache))
    return headline


class _ProfileInputs:
    """What the profiles of :func:`_profile_features` are built from, per subject: embeddings (V, E), z-scored
    measured responses with their image keys, z-scored predictions of every main-source image, the encoder's
    accuracy per vertex, and where each vertex lies on the cortex."""

    def __init__(self, ctx: Context, emb: dict, measured: dict, preds: dict, main_keys: list[str]):
        self.ctx, self.emb, self.measured, self.preds, self.main_keys = ctx, emb, measured, preds, main_keys
        self._r: dict = {}
        self._where: dict = {}

    def accuracy(self, s: str) -> np.ndarray:
        """(V,) Pearson r between the encoder's predictions and the measured responses of the FITTED images
        (what a prediction is worth where the subject has no measurement; :func:`brainviz.clusters.response_profiles`)."""
        if s not in self._r:
            y, keys = self.measured[s]
            fitted = set(self.ctx.images[s].train_keys)
            rows = [i for i, key in enumerate(keys) if key in fitted]
            pos = {key: i for i, key in enumerate(self.main_keys)}
            p = self.preds[s][[pos[keys[i]] for i in rows]]
            self._r[s] = np.clip(np.nan_to_num(pearson_per_vertex(y[rows], p)), 0, 1).astype(np.float32)
        return self._r[s]

    def where(self, s: str) -> tuple[np.ndarray, np.ndarray]:
        """((V,) hemisphere, (V,) fsaverage5 vertex or -1) of ``s``'s vertices."""
        if s not in self._where:
            vt = self.ctx.dataset.subjects[s].vertex_table()
            self._where[s] = (vt["hemi"].to_numpy().astype(str), vt["fsaverage5_index"].to_numpy())
        return self._where[s]


def _profile_keys(seen: list[list[str]], every: bool) -> list[str]:
    """The images of a response profile, from each subject's seen images ``seen``: those every subject saw
    (``every``), else the best covered: the images every subject saw, then those all but one saw, and so on,
    whole coverage levels at a time, until at least :data:`MIN_PROFILE_IMAGES` (the images seen by fewer subjects
    need more predictions, which blur the measured profile: on the demo brain the 278 images all four subjects
    saw clustered better than the 970 any of them saw). At most :data:`MAX_PROFILE_IMAGES`, then in the fixed
    pseudo-random order of :func:`brainviz.splits.held_out_order`. Sorted."""
    from collections import Counter

    from ..splits import held_out_order

    count = Counter(key for keys in seen for key in set(keys))
    keys: list[str] = []
    for level in range(len(seen), 0 if not every else len(seen) - 1, -1):
        if keys and (every or len(keys) >= MIN_PROFILE_IMAGES):
            break
        keys += [key for key, c in count.items() if c == level]
    if len(keys) > MAX_PROFILE_IMAGES:
        rank = {key: i for i, key in enumerate(held_out_order(keys))}
        keys = sorted(keys, key=lambda key: (-count[key], rank[key]))[:MAX_PROFILE_IMAGES]
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
    seen = [inputs.measured[s][1] for s in subs]
    every = profile == "measured"
    keys = _profile_keys(seen, every)
    if every and len(keys) < min(MIN_COMMON_IMAGES, min(len(k) for k in seen)):
        return None, {"why": f"the {len(subs)} subjects saw only {len(keys)} images in common (the measured "
                             f"profile needs {MIN_COMMON_IMAGES})"}
    measured = {s: (inputs.measured[s][0][:, sel[s]], inputs.measured[s][1]) for s in subs}
    predicted = weights = None
    if not every:
        predicted = {s: (inputs.preds[s][:, sel[s]], inputs.main_keys) for s in subs if s in inputs.preds}
        weights = {s: inputs.accuracy(s)[sel[s]] for s in predicted}
    prof = cl.response_profiles(measured, keys, predicted, weights)
    block = cl.profile_block(np.concatenate([prof[s] for s in subs]), PROFILE_COMPONENTS, seed=seed)
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
        from ..encoders.ridge import RidgeEncoder

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


def _write_scope(ctx: Context, w: StoreWriter, plan: dict, inputs: _ProfileInputs, nc: dict, preds: dict,
                 measured: dict, main_keys: list[str], scores: pd.DataFrame, planted: dict, prf: dict,
                 k_from: int | None = None, refs: dict | None = None, yard_cache: dict | None = None) -> dict:
    """Select, profile, choose k, cluster (and smooth), describe and score one clustering; returns
    {scope: headline numbers} for each smoothing strength of the plan (:func:`scope_id`).

    k: ``k_from`` when given (another scope's chosen k, see :func:`_scope_plan`), 2 for a scope with
    ks (2,), else by bootstrap stability (:func:`brainviz.clusters.choose_k`) of the plain k-means; the
    smoothed labels keep that k."""
    from sklearn.metrics import adjusted_rand_score

    scope, subs = plan["scope"], plan["subjects"]
    codes, thr = {}, {}
    for s in subs:
        region = _region_mask(ctx, s, plan["region"])
        if nc[s] is None:  # no reliability estimate: every vertex of the scope is clustered
            codes[s] = np.where(region if region is not None else np.ones(len(inputs.emb[s]), bool), 0, -2).astype(np.int8)
            thr[s] = float("nan")
        else:
            codes[s], _ = cl.reliable_vertices(nc[s], plan["percentile"])  # threshold over the whole subject
            thr[s] = float(np.percentile(nc[s][np.isfinite(nc[s])], plan["percentile"]))
            if region is not None:
                codes[s][~region] = -2
    n_sel = int(sum((codes[s] == 0).sum() for s in subs))
    out: dict = {"n_clustered": n_sel, "subjects": subs, "profile": plan["profile"]}
    if n_sel < 4 * max(plan["ks"]):
        ctx.skip(f"clusters of scope {scope}", f"only {n_sel} vertices qualify (k up to {max(plan['ks'])} "
                 f"needs {4 * max(plan['ks'])})", "more vertices in the scope's region")
        return {scope: out}
    selected, info = _profile_features(inputs, plan["profile"], subs, codes, ctx.config.seed)
    if selected is None:
        ctx.skip(f"clusters of scope {scope}", info["why"], "images seen by every subject of the scope")
        return {scope: out}
    quality = []
    ks = list(plan["ks"])
    if ks == [2]:
        chosen, rule = 2, "fixed"
    elif k_from is not None and k_from in ks:
        chosen, rule = int(k_from), f"k of {plan['k_from']}"
        if plan.get("only_k_from"):  # this k alone (_scope_plan): the clusters step's time
            ks = [chosen]
    else:
        rule = f"stability >= {MIN_STABILITY}"
        rng = np.random.default_rng(ctx.config.seed)
        sample = selected if len(selected) <= STABILITY_MAX_VERTICES else \
            selected[np.sort(rng.choice(len(selected), STABILITY_MAX_VERTICES, replace=False))]
        curve = cl.stability_curve(sample, ks, seed=ctx.config.seed, n_jobs=ctx.workers())
        chosen = cl.choose_k(curve, MIN_STABILITY)
        out["stability"] = {int(r.k): round(float(r.stability), 3) for r in curve.itertuples()}
        for r in curve.itertuples():
            quality += [(int(r.k), "stability", float(r.stability), False),
                        (int(r.k), "stability_sd", float(r.stability_sd), False)]
    out["chosen_k"] = int(chosen)
    with cl.kmeans_threads():  # every k at once, side by side (brainviz.jobs)
        by_k = run_jobs([(f"k={k}", lambda k=k: cl.kmeans_clusters(selected, k, seed=ctx.config.seed)) for k in ks],
                        ctx.workers(), describe=False)
    neighbours = _neighbours(inputs, subs, codes) if any(b > 0 for b in plan["smoothing"]) else None
    results = {}
    for beta in plan["smoothing"]:
        name = scope_id(plan["family"], plan["percentile"], plan["profile"], smoothed=beta > 0)
        labels_by_k, extra = {}, []
        for k in ks:
            lab = by_k[f"k={k}"] if beta == 0 else cl.smooth_labels(selected, by_k[f"k={k}"], neighbours, beta, k=k)
            if beta > 0:  # how much smoothing changed (no ground truth)
                extra.append((k, "agreement_with_plain", float(adjusted_rand_score(by_k[f"k={k}"], lab)), False))
            labels_by_k[k] = _fill(codes, subs, lab)
        w.write_table("cluster_settings", pd.DataFrame({
            "model_id": EMBEDDING_MODEL, "scope": name, "subject": subs, "base": plan["base"],
            "region": plan["region"],
            "percentile": [float(plan["percentile"]) if nc[s] is not None else None for s in subs],
            "nc_threshold": [thr[s] if nc[s] is not None else None for s in subs], "chosen_k": int(chosen),
            "k_rule": rule, "is_default": plan["default"] is not None and plan["default"] == beta}))
        degree = np.asarray(neighbours.sum(axis=1)).ravel() if beta > 0 else None
        w.write_table("cluster_variants", pd.DataFrame([{
            "model_id": EMBEDDING_MODEL, "scope": name, "family": plan["family"],
            "percentile": float(plan["percentile"]) if any(nc[s] is not None for s in subs) else None,
            "profile": plan["profile"], "n_images": info.get("n_images"), "measured_share": info.get("measured_share"),
            "smoothing": float(beta), "smoothing_radius_mm": cl.NEIGHBOUR_RADIUS_MM if beta > 0 else None,
            "with_neighbours": float((degree > 0).mean()) if beta > 0 else None,
            "profile_default": plan["profile_default"] == beta,
            "is_default": plan["default"] is not None and plan["default"] == beta}]))
        res = dict(out, scope=name, smoothing=float(beta), **info)
        res["per_k"] = _write_labels(ctx, w, name, plan, subs, labels_by_k, chosen, codes, measured, preds,
                                     main_keys, scores, planted, prf, refs, yard_cache, quality + extra)
        results[name] = res
    return results


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


def _write_labels(ctx: Context, w: StoreWriter, scope: str, plan: dict, subs: list[str], by_k: dict, chosen: int,
                  codes: dict, measured: dict, preds: dict, main_keys: list[str], scores: pd.DataFrame,
                  planted: dict, prf: dict, refs: dict | None, yard_cache: dict | None, quality: list) -> dict:
    """Write one scope's labels at every k with their top images, descriptions and (demo brain) recovery
    scores; returns {k: recovery numbers}."""
    per_k = {}
    tops = []  # every subject's and k's top images, written at once (one insert, not 2 per subject and k)
    for k, labels in by_k.items():
        for s in subs:
            w.add_clusters(EMBEDDING_MODEL, scope, k, s, labels[s])
            y, keys = measured[s]
            tops.append(cl.top_images(y, labels[s], 10, keys=keys, zscore=False).assign(k=int(k), subject=s,
                                                                                       source="measured"))
            if s in preds:
                tops.append(cl.top_images(preds[s], labels[s], 10, keys=main_keys, zscore=False).assign(
                    k=int(k), subject=s, source="predicted"))
        lab_all = np.concatenate([labels[s] for s in subs])
        counts = dict(zip(*np.unique(lab_all[lab_all >= 0], return_counts=True)))
        # what a cluster "responds to": the images with the highest MEASURED responses of its vertices,
        # pooled over the scope's subjects (report 004 sec. 5). The encoder's predictions for every image
        # are stored per subject too, but they rank images only as well as the encoder predicts (rare
        # categories such as words are predicted poorly from 450 training images).
        means = cl.pooled_cluster_means({s: measured[s] for s in subs}, labels, zscore=False)
        top = cl.pooled_top_images({s: measured[s] for s in subs}, labels, 10, zscore=False, means=means)
        source = "measured"
        # named by what distinguishes a cluster: the tag with the largest unique effect on its mean measured
        # response over every tagged image (``means``); "mixed / weak" when the tags explain little of it
        desc = cl.name_clusters(means, top, scores, n_vertices=counts)
        desc["source"] = source
        w.add_cluster_descriptions(EMBEDDING_MODEL, scope, k, desc)
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
            if k == chosen and refs and plan.get("yardsticks"):
                key = (tuple(subs), plan["region"], plan["percentile"], k)
                cache = {} if yard_cache is None else yard_cache
                if key not in cache:  # the same vertices and k in every profile and smoothing
                    cache[key] = _yardsticks(ctx, refs, subs, codes, planted, k)
                rec.update(cache[key])
            quality += [(k, m, float(v), True) for m, v in rec.items() if np.isscalar(v)]
        per_k[int(k)] = {m: (round(float(v), 3) if np.isscalar(v) else v) for m, v in rec.items()}
    if tops:
        w.write_table("cluster_top_images", pd.concat(tops, ignore_index=True)[
            ["cluster", "rank", "image_key", "score", "k", "subject", "source"]].assign(model_id=EMBEDDING_MODEL,
                                                                                        scope=scope))
    quality = [q for q in quality if np.isfinite(q[2])]  # undefined scores (e.g. too few vertices) are left out
    if quality:
        w.write_table("cluster_quality", pd.DataFrame(
            [dict(model_id=EMBEDDING_MODEL, scope=scope, k=int(k), metric=m, value=v, simulation_check=sim)
             for k, m, v, sim in quality]))
    return per_k


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


# --------------------------------------------------------------------------- RDMs and RSA

def write_rdms(ctx: Context, w: StoreWriter) -> dict:
    """RDMs on the main subjects' shared test images: measured, predicted and backbone layers, with
    extreme pairs, RSA (Spearman, image-permutation p) and the noise ceiling across subjects."""
    main = [s for s in ctx.main_subjects if ctx.has_test(s)]
    if not main:
        return {}
    keys = ctx.images[main[0]].test_keys
    main = [s for s in main if ctx.images[s].test_keys == keys]
    registry = load_registry(ctx)
    headline: dict = {}
    with ctx.timed("rdms"):
        fs = ctx.feature_subset(keys)
        layer_rdms = {}
        for metric in ("correlation", "euclidean"):
            for name, r in rdmlib.feature_rdms(fs, metric=metric).items():
                rid = f"layer:{name}|{metric}"
                w.add_rdm(rid, keys, r, metric=metric, source=f"layer:{name}")
                _write_extremes(w, rid, keys, r, metric)
                layer_rdms[(name, metric)] = r
        measured: dict = {}
        within: dict = {}  # (subject, roi) -> WithinSubjectCeiling of the measured 1 - Pearson RDM
        for s in _bar(ctx, main, "RDMs"):
            sub = ctx.dataset.subjects[s]
            y = ctx.responses(s, "test")
            pred = load_predictions(ctx, EMBEDDING_MODEL, s) if EMBEDDING_MODEL in registry else None
            trials = ctx.repeats(s, "test")  # None without repetitions: no within-subject ceiling, no CV RDM
            for roi in RDM_ROIS:
                mask = sub.roi_mask(None if roi == "all" else roi)
                if mask.sum() < 2:
                    continue
                for metric in ("correlation", "euclidean"):
                    for source, data in (("measured", y), ("predicted", pred)):
                        if data is None:
                            continue
                        r = rdmlib.rdm(data[:, mask], metric=metric)
                        rid = f"{s}|{roi}|{metric}|{source}"
                        w.add_rdm(rid, keys, r, metric=metric, source=source, subject=s, roi=roi)
                        _write_extremes(w, rid, keys, r, metric)
                        if source == "measured":
                            measured[(s, roi, metric)] = r
                if trials is not None:
                    reps = np.asarray(trials[:, :, mask], np.float64)
                    within[(s, roi)] = within_subject_ceiling(repeat_rdms(reps, "correlation"), method="spearman")
                    cv = crossvalidated_rdm(reps, "correlation")
                    if np.isfinite(cv).all():  # NaN where an image has no reliable signal in this ROI
                        rid = f"{s}|{roi}|correlation|measured (cross-validated)"
                        w.add_rdm(rid, keys, cv, metric="correlation", source="measured (cross-validated)",
                                  subject=s, roi=roi)
                        _write_extremes(w, rid, keys, cv, "correlation")
    with ctx.timed("rsa"):
        rows = []
        for roi in RDM_ROIS:
            subs = [s for s in main if (s, roi, "correlation") in measured]
            if not subs:
                continue
            stack = np.stack([measured[(s, roi, "correlation")] for s in subs])
            lower, upper = rdmlib.rdm_noise_ceiling(stack, method="spearman") if len(subs) > 1 else (np.nan, np.nan)
            for s in _bar(ctx, subs, f"RSA {roi}"):
                a = f"{s}|{roi}|correlation|measured"
                others = [(f"{s}|{roi}|correlation|predicted", None)] + \
                         [(f"layer:{n}|correlation", r) for (n, m), r in layer_rdms.items() if m == "correlation"]
                for b, rb in others:
                    if rb is None:
                        pred = load_predictions(ctx, EMBEDDING_MODEL, s)
                        if pred is None:
                            continue
                        rb = rdmlib.rdm(pred[:, ctx.dataset.subjects[s].roi_mask(None if roi == "all" else roi)])
                    test = rdmlib.rsa_permutation_test(measured[(s, roi, "correlation")], rb,
                                                       n_perm=ctx.config.n_perm, seed=ctx.config.seed)
                    wc = within.get((s, roi))
                    rows.append(dict(rdm_a=a, rdm_b=b, method="spearman", value=float(test.statistic),
                                     p_value=float(test.p_value), nc_lower=float(lower), nc_upper=float(upper),
                                     nc_kind=CEILING_KINDS[0],
                                     nc_within=float(wc.ceiling) if wc is not None else np.nan,
                                     reliability_within=float(wc.reliability) if wc is not None else np.nan))
        df = pd.DataFrame(rows)
        if len(df):
            w.write_table("rsa", df)
            pred_rows = df[df.rdm_b.str.endswith("|predicted")]
            headline["rsa_measured_vs_predicted"] = {
                roi: round(float(pred_rows[pred_rows.rdm_a.str.contains(f"|{roi}|", regex=False)].value.mean()), 3)
                for roi in RDM_ROIS if pred_rows.rdm_a.str.contains(f"|{roi}|", regex=False).any()}
            headline["within_subject_ceiling"] = {f"{k[0]}|{k[1]}": round(v.ceiling, 3) for k, v in within.items()}
    return headline


def _write_extremes(w: StoreWriter, rid: str, keys: list[str], square: np.ndarray, metric: str, k: int = 10) -> None:
    """Top-k lowest / closest-to-1 (1 - Pearson only) / largest pairs of an RDM, as image keys."""
    kinds = ("lowest", "closest_to_1", "largest") if metric == "correlation" else ("lowest", "largest")
    frames = []
    for kind in kinds:
        df = rdmlib.extreme_pairs_from_rdm(square, k=k, kind=kind)
        frames.append(pd.DataFrame({"kind": kind, "rank": np.arange(1, len(df) + 1, dtype=np.int32),
                                    "image_a": [keys[i] for i in df["i"]], "image_b": [keys[j] for j in df["j"]],
                                    "value": df["value"].to_numpy(np.float32)}))
    w.add_extreme_pairs(rid, pd.concat(frames, ignore_index=True))


# --------------------------------------------------------------------------- the real 92-image set

def write_k92(ctx: Context, w: StoreWriter) -> dict:
    """The REAL 92-image human-IT analysis: RSA of EVERY backbone block (full resolution, 1 - Pearson),
    the 7x7-pooled encoder layers and the reference models, with Kendall tau-a and Spearman (per-subject
    mean, SEM, vs the subject-mean RDM, permutation p, Nili ceiling of the same statistic), and the
    cross-validated weighted mix of blocks scored on held-out images x subjects."""
    from ..data.kriegeskorte92 import load_kriegeskorte92
    from ..features import extract_features, get_backbone
    from ..features.blocks import extract_blocks
    from ..rsa import block_rdms

    try:
        present = (resolve_data_root(ctx.config.data_root) / KRIEGESKORTE92).is_dir()
    except BrainVizDataError:
        present = False
    if not present:  # listed by pipeline.plan.skipped_analyses
        return {}
    with ctx.timed("k92"):
        k92 = load_kriegeskorte92(ctx.config.data_root)
        w.add_images(k92.image_keys, dataset_id=None)  # no files: the pictures are the store's thumbnails
        w.add_thumbnails(k92.image_keys, [thumbnail(arr, name=key) for key, arr in zip(k92.image_keys, k92.images)])
        w.add_image_tags(_k92_scores(k92), tags=dict(zip(k92.image_keys, k92.categories["category"].astype(str))))
        backbone = get_backbone(ctx.config.backbone, weights=ctx.config.weights, seed=ctx.config.seed)
        ims = k92.pil_images()
        fs = extract_features(backbone, ims, progress=ctx.config.progress)
        w.add_image_features(ctx.config.backbone, k92.image_keys, np.asarray(fs.pooled, np.float32))
        acts = extract_blocks(backbone, ims, progress=ctx.config.progress, keys=k92.image_keys)
        blocks = block_rdms(acts, metric="correlation")
        del acts
        bb = ctx.config.backbone
        models = {f"{bb} {n}": r for n, r in blocks.items()}
        family = {f"{bb} {n}": "block" for n in blocks}
        depth = {f"{bb} {n}": float(i / max(1, len(blocks) - 1)) for i, n in enumerate(blocks)}
        grid = "x".join(str(int(g)) for g in fs.grid)  # the encoder layers' patch grid (7x7; DINOv2: 8x8)
        stages = {f"{bb} {n} ({grid} pooled)": r for n, r in rdmlib.feature_rdms(fs, metric="correlation",
                                                                                include_pooled=False).items()}
        models.update(stages)
        family.update({n: f"stage ({grid} pooled)" for n in stages})
        refs = {f"reference: {n}": r for n, r in k92.models.items()}
        models.update(refs)
        family.update({n: "reference" for n in refs})
        table = layer_sweep(models, k92.human_it, subjects=k92.human_it_subjects,
                            methods=("kendall_tau_a", "spearman"), depth=depth,
                            n_perm=ctx.config.n_perm, seed=ctx.config.seed, n_jobs=ctx.workers())
        table["family"] = [family[m] for m in table.model]
        table["rdm_id"] = [f"k92|{m}" for m in table.model]
        out = table.rename(columns={"rsa": "value", "per_unit": "per_subject"})
        w.write_table("k92_rsa", out[["model", "method", "value", "p_value", "nc_lower", "nc_upper", "rsa_sem",
                                      "rsa_mean", "per_subject", "family", "depth", "rdm_id"]])
        keys = k92.image_keys
        w.add_rdm("k92|human-IT mean", keys, _human_mean(k92), metric="correlation", source="k92:human-IT", roi="IT")
        for name, r in models.items():
            w.add_rdm(f"k92|{name}", keys, r, metric="correlation", source=f"k92:{name}")
        # cross-validated mix of blocks (and blocks + the two categorical reference models)
        subj_rdms, _ = k92.human_it_subject_mean()
        block_only = {n: r for n, r in blocks.items()}
        fit_rows = []
        for method in ("kendall_tau_a", "spearman"):
            res = fit_layer_mix(block_only, subj_rdms, method=method, n_repeats=5, seed=ctx.config.seed)
            sm = res.summary.copy()
            sm["weights"] = [res.weights.round(4).to_dict() if m.startswith("mix") else None for m in sm.model]
            fit_rows.append(sm)
            cats = {**block_only, **{n: k92.models[n] for n in ("animacy", "FaceBodyManmadeNatobj") if n in k92.models}}
            res2 = fit_layer_mix(cats, subj_rdms, method=method, n_repeats=5, seed=ctx.config.seed)
            mix2 = res2.summary[res2.summary.model == "mix of all layers (fitted)"].copy()
            mix2["model"] = "mix of all layers + animacy + face/body/object models (fitted)"
            mix2["weights"] = [res2.weights.round(4).to_dict()]
            fit_rows.append(mix2)
        fit = pd.concat(fit_rows, ignore_index=True)
        w.write_table("k92_fit", fit[["model", "method", "value", "value_sem", "nc_lower", "nc_upper", "n_folds",
                                      "weights"]])
        pair = run_pair_experiment(np.asarray(fs.pooled, np.float64), _human_mean(k92), test_fraction=0.3,
                                   seed=ctx.config.seed)
    tau = table[(table.method == "kendall_tau_a") & (table.family == "block")].sort_values("rsa", ascending=False)
    best = tau.iloc[0]
    mix = fit[(fit.method == "kendall_tau_a") & (fit.model == "mix of all layers (fitted)")].iloc[0]
    return {"k92_noise_ceiling": [round(float(best.nc_lower), 3), round(float(best.nc_upper), 3)],
            "k92_best": {"model": best.model, "tau_a": round(float(best.rsa), 3)},
            "k92_mix_heldout_tau_a": {"value": round(float(mix.value), 3), "nc_lower": round(float(mix.nc_lower), 3)},
            "pair_model_k92": {k: round(float(v), 3) for k, v in pair.items() if isinstance(v, float)},
            "_pair_rows": _pair_rows("k92 human IT (real)", pair)}


def _k92_scores(k92) -> pd.DataFrame:
    """Category scores of the 92 images from their category flags (faces, bodies, animals, people)."""
    c = k92.categories
    flag = lambda col: c[col].astype(float).to_numpy() if col in c else np.full(len(c), np.nan)  # noqa: E731
    return pd.DataFrame({"faces": flag("face"), "bodies": flag("body"),
                         "animals": (flag("animate") * (1 - flag("human"))) if "human" in c else flag("animate"),
                         "people": flag("human")}, index=k92.image_keys)


def _human_mean(k92) -> np.ndarray:
    """(92, 92) mean over the 4 subjects of their session-averaged human-IT RDMs."""
    return k92.human_it_subject_mean()[0].mean(axis=0)


def _pair_rows(dataset: str, res: dict) -> list[dict]:
    return [dict(split=f"{dataset} / held-out images", metric="spearman", value=res["spearman"],
                 baseline=res["baseline_spearman"]),
            dict(split=f"{dataset} / held-out images", metric="r2", value=res["r2"], baseline=np.nan)]


def write_pair_model(ctx: Context, w: StoreWriter, extra_rows: list[dict]) -> dict:
    """Pair-dissimilarity model on the demo/real subjects' mean measured RDM ('all' vertices)."""
    main = [s for s in ctx.main_subjects if ctx.has_test(s)]
    rows = list(extra_rows)
    out = {}
    if main:
        keys = ctx.images[main[0]].test_keys
        subs = [s for s in main if ctx.images[s].test_keys == keys]
        brain = np.mean([rdmlib.rdm(ctx.responses(s, "test")) for s in subs], axis=0)
        emb = np.asarray(ctx.feature_subset(keys).pooled, np.float64)
        res = run_pair_experiment(emb, brain, test_fraction=0.3, seed=ctx.config.seed)
        label = "subject-mean RDM" + (" (SIMULATED demo brain)" if ctx.dataset.simulated else "")
        rows += _pair_rows(label, res)
        out = {k: round(float(v), 3) for k, v in res.items() if isinstance(v, float)}
    if rows:
        w.write_table("pair_model", pd.DataFrame(rows))
    return out


# --------------------------------------------------------------------------- decoding

ENCODER_KINDS = ("ue_multi", "ridge")


def _rank_rows(subject: str, approach: str, name: str, sim: np.ndarray, keys: list[str]) -> list[dict]:
    """One row per query image: its rank (:func:`brainviz.metrics.retrieval_ranks`, the one ties rule) and
    the five best candidates (``sim``: (n, n) scores, query i's true candidate is i)."""
    order = np.argsort(-sim, axis=1, kind="stable")
    ranks = retrieval_ranks(sim)
    return [dict(subject=subject, roi_set=name, image_key=keys[q], rank=float(ranks[q]),
                 top_keys=[keys[i] for i in order[q, :5]], cosine=np.nan, approach=approach)
            for q in range(len(keys))]


def write_decoding(ctx: Context, w: StoreWriter) -> dict:
    """Both directions of image identification among the held-out test images, per ROI set of report
    003 and whole cortex: the ridge DECODER (responses -> pooled image embedding, cosine) and the
    ENCODERS (measured vs predicted responses, Pearson; Kay et al. 2008), each with a vote over the
    ROI sets whose weights are chosen on held-out queries; plus which ROIs of each set exist."""
    fs = ctx.features
    registry = load_registry(ctx)
    headline = {}
    def identify(s: str) -> dict | None:
        """{approach: (metrics, similarities)} of subject ``s`` (None without ROI sets)."""
        sub = ctx.dataset.subjects[s]
        sets = {name: sub.roi_mask(name) for name in ROI_SETS if sub.roi_mask(name).sum() > 0}
        if not sets:
            return None
        voters = list(sets)
        sets[WHOLE_CORTEX] = np.ones(sub.roi_mask(None).shape, bool)
        tr, te = ctx.images[s].train_keys, ctx.images[s].test_keys
        y_tr, y_te = ctx.responses(s, "train"), ctx.responses(s, "test")
        results = {}
        results["decoder"] = decode_roi_sets({n: y_tr[:, m] for n, m in sets.items()},
                                             np.asarray(fs.pooled[fs.indices(tr)], np.float32),
                                             {n: y_te[:, m] for n, m in sets.items()},
                                             np.asarray(fs.pooled[fs.indices(te)], np.float32),
                                             vote_over=voters, seed=ctx.config.seed)
        for model_id, entry in registry.items():
            pred = load_predictions(ctx, model_id, s) if entry["kind"] in ENCODER_KINDS and s in entry["subjects"] else None
            if pred is None:
                continue
            results[f"encoder:{entry['kind']}"] = identify_roi_sets(
                {n: y_te[:, m] for n, m in sets.items()}, {n: pred[:, m] for n, m in sets.items()},
                vote_over=voters, seed=ctx.config.seed)
        return results

    subjects = [s for s in ctx.main_subjects if ctx.has_test(s)]
    with ctx.timed("decoding"):  # subjects side by side (brainviz.jobs), written one after the other
        found = run_jobs([(s, lambda s=s: identify(s)) for s in subjects], ctx.workers(), describe=False)
        for s in subjects:
            sub = ctx.dataset.subjects[s]
            w.write_table("decoding_rois", pd.DataFrame(
                [dict(subject=s, roi_set=name, roi=roi, n_vertices=int(sub.roi_mask(roi).sum()))
                 for name, rois in ROI_SETS.items() for roi in dict.fromkeys(rois)]))
            results = found[s]
            if results is None:
                continue
            te = ctx.images[s].test_keys
            rows, weights = [], []
            for approach, (metrics, sims) in results.items():
                for name, sim in sims.items():
                    rows += _rank_rows(s, approach, name, sim, te)
                vw = metrics.set_index("model").loc["vote", "weights"] if "vote" in set(metrics.model) else {}
                weights += [dict(subject=s, approach=approach, roi_set=k, weight=float(v)) for k, v in vw.items()]
                headline.setdefault(s, {})[approach] = {
                    r["model"]: {"top1": round(float(r["top1"]), 3), "top5": round(float(r["top5"]), 3),
                                 "mean_rank": round(float(r["mean_rank"]), 1)} for r in metrics.to_dict("records")}
            w.write_table("decoding", pd.DataFrame(rows))
            if weights:
                w.write_table("decoding_weights", pd.DataFrame(weights))
    return headline
