"""Analyses written into the store: clusters, RDMs + RSA, the 92-image set, pair model, decoding.

Each ``write_*`` function computes one analysis from the pipeline context and
writes it with the store writer; each returns a small dict of headline numbers
(kept in the store's ``meta`` under ``headline`` and printed by the CLI).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from .. import clusters as cl
from .. import rdm as rdmlib
from ..data.algonauts import ROI_SETS
from ..decoding import decode_roi_sets
from ..pairs import run_pair_experiment
from ..store.writer import StoreWriter
from .context import Context
from .encoding import load_model, load_registry, predict

#: ROIs (groups) with an RDM per subject; 'all' = every challenge-space vertex.
RDM_ROIS = ("early visual", "faces", "places", "bodies", "words", "all")
#: Planted demo-brain regions and the tag category their top images should show.
PLANTED_CATEGORY = {"faces": "faces", "bodies": "bodies", "food": "food", "words": "words",
                    "places-indoor": "indoor", "places-outdoor": "outdoor"}
EMBEDDING_MODEL = "ue_multi"


def _bar(ctx: Context, it, desc: str):
    return tqdm(it, desc=desc, disable=not ctx.config.progress)


# --------------------------------------------------------------------------- clusters

def write_clusters(ctx: Context, w: StoreWriter) -> dict:
    """k-means of the joint model's voxel embeddings (per subject and joint), UMAP, top images, descriptions."""
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

    tags = ctx.tags
    cats = [c for c in tags.columns if c != "tags"]
    scores = tags[cats]
    main_keys = ctx.catalog.image_key[ctx.catalog.dataset == ctx.main_source].tolist()
    # predicted responses of every main-source image, per subject (top images "by the encoder")
    preds = {s: predict(enc, ctx, s, main_keys) for s in _bar(ctx, main, "predict all images")}
    measured = {s: (np.concatenate([ctx.responses(s, "train")] + ([ctx.responses(s, "test")] if ctx.has_test(s) else [])),
                    ctx.images[s].train_keys + (ctx.images[s].test_keys if ctx.has_test(s) else []))
                for s in subjects}
    w.add_predictions(EMBEDDING_MODEL + ":all-images", main[0], main_keys, preds[main[0]])
    headline: dict = {"ari": {}, "top_image_precision": {}}
    ks = [k for k in ctx.config.cluster_ks if k < min(len(e) for e in emb.values())]
    with ctx.timed("clusters"):
        for k in _bar(ctx, ks, "k-means"):
            # per subject
            for s in subjects:
                labels = cl.kmeans_clusters(emb[s], k, seed=ctx.config.seed)
                w.add_clusters(EMBEDDING_MODEL, s, k, s, labels)
                y, keys = measured[s]
                top_m = cl.top_images(y, labels, 10, keys=keys)
                w.add_cluster_top_images(EMBEDDING_MODEL, s, k, s, "measured", top_m)
                source, top = "measured", top_m
                if s in preds:
                    top_p = cl.top_images(preds[s], labels, 10, keys=main_keys)
                    w.add_cluster_top_images(EMBEDDING_MODEL, s, k, s, "predicted", top_p)
                    source, top = "predicted", top_p
                desc = cl.describe_top_images(top, scores, n_vertices=dict(zip(*np.unique(labels, return_counts=True))))
                desc["source"] = source
                w.add_cluster_descriptions(EMBEDDING_MODEL, s, k, desc)
                planted = ctx.planted_regions(s)
                if planted is not None:
                    keep = planted != "mixed"
                    headline["ari"].setdefault(s, {})[k] = round(cl.cluster_recovery(labels[keep], planted[keep]), 3)
            # joint across the main subjects (they saw the same candidate images)
            joint = cl.joint_kmeans({s: emb[s] for s in main}, k, seed=ctx.config.seed)
            for s in main:
                w.add_clusters(EMBEDDING_MODEL, "joint", k, s, joint[s])
                y, keys = measured[s]
                w.add_cluster_top_images(EMBEDDING_MODEL, "joint", k, s, "measured",
                                         cl.top_images(y, joint[s], 10, keys=keys))
                w.add_cluster_top_images(EMBEDDING_MODEL, "joint", k, s, "predicted",
                                         cl.top_images(preds[s], joint[s], 10, keys=main_keys))
            stacked = np.concatenate([preds[s] for s in main], axis=1)
            labels = np.concatenate([joint[s] for s in main])
            top = cl.top_images(stacked, labels, 10, keys=main_keys)
            desc = cl.describe_top_images(top, scores, n_vertices=dict(zip(*np.unique(labels, return_counts=True))))
            desc["source"] = "predicted"
            w.add_cluster_descriptions(EMBEDDING_MODEL, "joint", k, desc)
            planted = [ctx.planted_regions(s) for s in main]
            if all(p is not None for p in planted):
                pl = np.concatenate(planted)
                keep = pl != "mixed"
                headline["ari"].setdefault("joint", {})[k] = round(cl.cluster_recovery(labels[keep], pl[keep]), 3)
                headline["top_image_precision"][k] = _planted_precision(labels, pl, top, scores)
        # sub-clusters inside PPA (report 004: indoor vs outdoor scenes)
        ppa = {s: ctx.dataset.subjects[s].roi_mask("PPA") for s in main}
        if all(m.sum() >= 4 for m in ppa.values()):
            stacked_emb = np.concatenate([emb[s] for s in main])
            mask = np.concatenate([ppa[s] for s in main])
            sub = cl.sub_clusters(stacked_emb, mask, k=2, seed=ctx.config.seed)
            start = 0
            for s in main:
                n = len(emb[s])
                w.add_clusters(EMBEDDING_MODEL, "joint:PPA", 2, s, sub[start:start + n])
                start += n
            stacked = np.concatenate([preds[s] for s in main], axis=1)
            top = cl.top_images(stacked[:, mask], sub[mask], 10, keys=main_keys)
            desc = cl.describe_top_images(top, scores, n_vertices=dict(zip(*np.unique(sub[mask], return_counts=True))))
            desc["source"] = "predicted"
            w.add_cluster_descriptions(EMBEDDING_MODEL, "joint:PPA", 2, desc)
            headline["ppa_subclusters"] = desc.description.tolist()
    return headline


def _planted_precision(labels: np.ndarray, planted: np.ndarray, top: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """For each planted category region: the cluster holding most of its vertices, and the
    fraction of that cluster's top images carrying the region's category tag."""
    out = {}
    for region, cat in PLANTED_CATEGORY.items():
        m = planted == region
        if not m.any() or cat not in scores.columns:
            continue
        c = int(np.bincount(labels[m]).argmax())
        keys = top.loc[top.cluster == c, "image_key"].tolist()
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
    pred_dir = ctx.work / "predictions" / EMBEDDING_MODEL
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
        for s in _bar(ctx, main, "RDMs"):
            sub = ctx.dataset.subjects[s]
            y = ctx.responses(s, "test")
            pred = np.load(pred_dir / f"{s}.npy") if (pred_dir / f"{s}.npy").exists() and EMBEDDING_MODEL in registry else None
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
                        pred = np.load(pred_dir / f"{s}.npy") if (pred_dir / f"{s}.npy").exists() else None
                        if pred is None:
                            continue
                        rb = rdmlib.rdm(pred[:, ctx.dataset.subjects[s].roi_mask(None if roi == "all" else roi)])
                    test = rdmlib.rsa_permutation_test(measured[(s, roi, "correlation")], rb,
                                                       n_perm=ctx.config.n_perm, seed=ctx.config.seed)
                    rows.append(dict(rdm_a=a, rdm_b=b, method="spearman", value=float(test.statistic),
                                     p_value=float(test.p_value), nc_lower=float(lower), nc_upper=float(upper)))
        df = pd.DataFrame(rows)
        if len(df):
            w.write_table("rsa", df)
            pred_rows = df[df.rdm_b.str.endswith("|predicted")]
            headline["rsa_measured_vs_predicted"] = {
                roi: round(float(pred_rows[pred_rows.rdm_a.str.contains(f"|{roi}|", regex=False)].value.mean()), 3)
                for roi in RDM_ROIS if pred_rows.rdm_a.str.contains(f"|{roi}|", regex=False).any()}
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
    """RSA of backbone layers and reference models against the REAL human-IT RDMs (Kendall tau-a)."""
    from ..data.kriegeskorte92 import load_kriegeskorte92
    from ..features import extract_features, get_backbone

    with ctx.timed("k92"):
        k92 = load_kriegeskorte92(ctx.config.data_root)
        img_dir = Path(ctx.config.cache_dir) / "k92_images"
        img_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for key, arr in zip(k92.image_keys, k92.images):
            p = img_dir / f"{key}.png"
            if not p.exists():
                Image.fromarray(arr).save(p)
            paths.append(p)
        w.add_images(k92.image_keys, paths, dataset_id=None)
        w.add_image_tags(_k92_scores(k92), tags=dict(zip(k92.image_keys, k92.categories["category"].astype(str))))
        fs = extract_features(get_backbone(ctx.config.backbone, weights=ctx.config.weights), k92.pil_images(),
                              progress=ctx.config.progress)
        w.add_image_features(ctx.config.backbone, k92.image_keys, np.asarray(fs.pooled, np.float32))
        layers = rdmlib.feature_rdms(fs, metric="correlation")
        models = {f"{ctx.config.backbone} {n}": r for n, r in layers.items()}
        models.update({f"reference: {n}": r for n, r in k92.models.items()})
        table = rdmlib.k92_rsa_table(models, k92.human_it, method="kendall_tau_a",
                                     subjects=k92.human_it_subjects, n_perm=ctx.config.n_perm, seed=ctx.config.seed)
        w.write_table("k92_rsa", table.rename(columns={"rsa": "value"})[
            ["model", "method", "value", "p_value", "nc_lower", "nc_upper"]])
        keys = k92.image_keys
        w.add_rdm("k92|human-IT mean", keys, _human_mean(k92), metric="correlation", source="k92:human-IT", roi="IT")
        for name, r in models.items():
            w.add_rdm(f"k92|{name}", keys, r, metric="correlation", source=f"k92:{name}")
        pair = run_pair_experiment(np.asarray(fs.pooled, np.float64), _human_mean(k92), test_fraction=0.3,
                                   seed=ctx.config.seed)
    best = table.sort_values("rsa", ascending=False).iloc[0]
    return {"k92_noise_ceiling": [round(float(table.nc_lower.iloc[0]), 3), round(float(table.nc_upper.iloc[0]), 3)],
            "k92_best": {"model": best.model, "tau_a": round(float(best.rsa), 3)},
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

def write_decoding(ctx: Context, w: StoreWriter) -> dict:
    """fMRI -> pooled image embedding (ridge) per ROI set of report 003, retrieval among test images, vote."""
    fs = ctx.features
    headline = {}
    with ctx.timed("decoding"):
        for s in _bar(ctx, [s for s in ctx.main_subjects if ctx.has_test(s)], "decoding"):
            sub = ctx.dataset.subjects[s]
            sets = {name: sub.roi_mask(name) for name in ROI_SETS if sub.roi_mask(name).sum() > 0}
            if not sets:
                continue
            tr, te = ctx.images[s].train_keys, ctx.images[s].test_keys
            y_tr, y_te = ctx.responses(s, "train"), ctx.responses(s, "test")
            metrics, sims = decode_roi_sets({n: y_tr[:, m] for n, m in sets.items()},
                                            np.asarray(fs.pooled[fs.indices(tr)], np.float32),
                                            {n: y_te[:, m] for n, m in sets.items()},
                                            np.asarray(fs.pooled[fs.indices(te)], np.float32))
            rows = []
            for name, sim in sims.items():
                order = np.argsort(-sim, axis=1, kind="stable")
                ranks = 1 + np.argmax(order == np.arange(len(te))[:, None], axis=1)
                for q in range(len(te)):
                    rows.append(dict(subject=s, roi_set=name, image_key=te[q], rank=int(ranks[q]),
                                     top_keys=[te[i] for i in order[q, :5]], cosine=np.nan))
            w.write_table("decoding", pd.DataFrame(rows))
            headline[s] = {r["model"]: {"top1": round(float(r["top1"]), 3), "top5": round(float(r["top5"]), 3),
                                        "mean_rank": round(float(r["mean_rank"]), 1)}
                           for r in metrics.to_dict("records")}
    return headline
