"""What the pages draw, computed from the store without Streamlit: home-page facts, model choices,
brain maps and ROI masks on fsaverage5, the demo brain's planted regions, image thumbnails and
captions, RDM orders and labels, evaluation summaries.

The pages (``app.py``, ``pages/*.py``) stay thin views: they read the store through
:class:`brainviz.store.reader.Store`, call these helpers, and draw.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from brainviz import plotting as B
from brainviz.errors import BrainVizDataError
from brainviz.names import HEMIS
from brainviz.rois import ROI_GROUP_NAMES, roi_groups

#: vertices-table ROI columns -> user-facing class name (outline choices).
ROI_CLASS_COLUMNS: dict[str, str] = {
    "early visual (prf-visualrois)": "roi_prf",
    "faces (floc-faces)": "roi_faces",
    "places (floc-places)": "roi_places",
    "bodies (floc-bodies)": "roi_bodies",
    "words (floc-words)": "roi_words",
    "streams": "roi_streams",
}


# --------------------------------------------------------------------------- evaluation images and skips
def evaluation_label(store, subject: str | None = None) -> str:
    """What the store's "test" images are, for captions: ``'test images (test fMRI)'``, ``'images held out of
    the training images (the dataset has no test fMRI)'``, or both when subjects differ (``subject``: one)."""
    ev = store.evaluation()
    kinds = {ev.get(subject)} if subject is not None else set(ev.values())
    if kinds == {"held-out"}:
        return "images held out of the training images (the dataset has no test fMRI; brainviz.splits)"
    if kinds == {"test"}:
        return "test images (test fMRI)"
    return "evaluation images (test fMRI where the dataset has it, else held out of the training images)"


def skip_notes(store, *words: str, subject: str | None = None) -> list[str]:
    """Markdown lines for the analyses precompute skipped whose name contains any of ``words`` (case-insensitive):
    what, for whom, why, and what would enable it (table ``skipped_analyses``); [] when none matches."""
    df = store.skipped_analyses()
    if df.empty:
        return []
    hit = df["analysis"].str.lower().apply(lambda a: any(w.lower() in a for w in words)) if words else \
        pd.Series(True, index=df.index)
    df = df[hit]
    if subject is not None:
        df = df[df["subject"].isna() | (df["subject"] == subject)]
    out = []
    for (analysis, reason, enable), grp in df.groupby(["analysis", "reason", "enable"], sort=False):
        subs = sorted(s for s in grp["subject"].dropna().unique())
        who = f" ({', '.join(subs)})" if subs else ""
        out.append(f"**Not computed: {analysis}**{who}. Why: {reason}. What would enable it: {enable}.")
    return out


# --------------------------------------------------------------------------- overview
def overview(store) -> dict:
    """Facts for the home page: datasets, subjects, backbones, models, headline metrics."""
    summ = store.summary()
    ds = store.datasets()
    subj = store.subjects()
    models = store.models()
    backbones = sorted({b for b in models.get("backbone", pd.Series(dtype=object)).dropna()} | set(store.backbones()))
    roi = store.roi_metrics()
    headline = pd.DataFrame()
    if not roi.empty:
        allr = roi[roi["roi"] == "all"]
        if allr.empty:
            allr = roi
        headline = (allr.groupby("model_id")
                    .agg(median_r=("median_r", "mean"), median_nna=("median_nna", "mean"), subjects=("subject", "nunique"))
                    .reset_index())
        kinds = models.set_index("model_id")["kind"] if not models.empty else pd.Series(dtype=object)
        headline.insert(1, "kind", headline["model_id"].map(kinds))
    ret = store.retrieval()
    if not ret.empty and not headline.empty:
        rr = ret.groupby("model_id").agg(top1=("top1", "mean"), top5=("top5", "mean")).reset_index()
        headline = headline.merge(rr, on="model_id", how="left")
    return {"summary": summ, "datasets": ds, "subjects": subj, "models": models, "backbones": backbones,
            "headline": headline, "simulated": store.simulated}


def model_family(model_id: str) -> str:
    """'ue_single-subj01' -> 'ue_single' (the model id before the subject suffix)."""
    return str(model_id).split("-", 1)[0]


def model_options(store, kinds: Sequence[str] | None = None, need_clusters: bool = False) -> list[str]:
    """Model ids (optionally of some kinds / with clusters), UE multi first."""
    m = store.models()
    if m.empty:
        return []
    if kinds:
        m = m[m["kind"].isin(kinds)]
    ids = list(m["model_id"])
    if need_clusters:
        ids = [i for i in ids if store.cluster_scopes(i)]
    order = {"ue_multi": 0, "ue_single": 1, "ue_transfer": 2, "ridge": 3}
    kind = dict(zip(m["model_id"], m["kind"]))
    return sorted(ids, key=lambda i: (order.get(kind.get(i), 9), i))


# --------------------------------------------------------------------------- vertices and maps
def to_fsaverage5(values, vertices: pd.DataFrame, categorical: bool = False) -> dict[str, np.ndarray]:
    """(V,) subject values -> {hemi: (10242,)} (NaN where no vertex)."""
    return B.vertex_values_to_fsaverage5(values, vertices, categorical=categorical)


def label_map(vertices: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """ROI names of a vertices column on fsaverage5: {hemi: (10242,) object, None = no ROI}."""
    out = {}
    idx = vertices["fsaverage5_index"].to_numpy()
    for h in HEMIS:
        arr = np.full(B.N_FSAVERAGE5, None, dtype=object)
        m = (vertices["hemi"].to_numpy() == h) & (idx >= 0)
        vals = vertices.loc[m, column].to_numpy(dtype=object) if column in vertices else np.full(m.sum(), None)
        arr[idx[m]] = [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in vals]
        out[h] = arr
    return out


def roi_names(vertices: pd.DataFrame) -> list[str]:
    """Every ROI name present in the vertices table (all classes), sorted."""
    names = set()
    for col in ROI_CLASS_COLUMNS.values():
        if col in vertices:
            names |= set(vertices[col].dropna().astype(str))
    return sorted(names)


def roi_mask(vertices: pd.DataFrame, rois: Sequence[str]) -> np.ndarray:
    """(V,) bool: vertex in any of ``rois`` (ROI names of any class, or group names)."""
    m = np.zeros(len(vertices), bool)
    groups = roi_groups(vertices) if any(r in ROI_GROUP_NAMES for r in rois) else {}
    names = [r for r in rois if r not in groups]
    for r in rois:
        if r in groups:
            m |= groups[r]
    if names:  # one membership test per ROI column (a page asks for V1v ... hV4 on every rerun)
        for col in ROI_CLASS_COLUMNS.values():
            if col in vertices:
                m |= vertices[col].isin(names).to_numpy()
    return m


#: Fixed colors of the demo brain's planted regions (same meaning -> same color on every map).
PLANTED_COLORS = {
    "early": "#4c78a8", "faces": "#e45756", "bodies": "#f58518", "places-indoor": "#54a24b",
    "places-outdoor": "#9ad18b", "food": "#9d755d", "words": "#b279a2", "mixed": "#c9c9c9",
}


def planted_colors(names: Mapping[int, str]) -> dict[int, str]:
    """{code: color} for :func:`planted_codes` names (unknown names get no fixed color)."""
    return {c: PLANTED_COLORS[n] for c, n in names.items() if n in PLANTED_COLORS}


def planted_codes(vertices: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]] | None:
    """(V,) float codes of the demo brain's planted regions (NaN = none) and {code: name}; None for real data."""
    if "planted_region" not in vertices or vertices["planted_region"].isna().all():
        return None
    names = sorted(vertices["planted_region"].dropna().unique())
    code = {n: i for i, n in enumerate(names)}
    vals = np.array([code.get(v, np.nan) if isinstance(v, str) else np.nan for v in vertices["planted_region"]], float)
    return vals, {i: n for n, i in code.items()}


def recovery_table(clusters: np.ndarray, vertices: pd.DataFrame) -> tuple[pd.DataFrame, float | None]:
    """Crosstab planted region x cluster (vertex counts) and the adjusted Rand index."""
    if "planted_region" not in vertices:
        return pd.DataFrame(), None
    lab = np.asarray(clusters)
    pl = vertices["planted_region"]
    ok = (lab >= 0) & pl.notna().to_numpy()
    if ok.sum() < 2:
        return pd.DataFrame(), None
    # plain arrays: crosstab aligns Series on their index, and the planted labels keep the vertex index
    tab = pd.crosstab(pd.Series(pl[ok].to_numpy(), name="planted region"), pd.Series(lab[ok], name="cluster"))
    from brainviz.clusters import cluster_recovery

    return tab, cluster_recovery(lab, pl.to_numpy())  # the one ARI (>= 2 vertices with both: checked above)


#: Why a vertex of a clustering view was not clustered (:func:`unclustered_reasons`).
CLUSTERED, OUTSIDE_SCOPE, UNRELIABLE = 0, 1, 2


def unclustered_reasons(labels: np.ndarray, vertices: pd.DataFrame, region: str | None,
                        reliability: np.ndarray, threshold: float) -> np.ndarray:
    """(V,) int: why each vertex of one subject is (not) clustered in a scope: :data:`CLUSTERED` (label >= 0),
    :data:`OUTSIDE_SCOPE` (outside the scope's region: 'non-early' leaves out V1-hV4, 'PPA' keeps only PPA; or not
    clustered for another reason), :data:`UNRELIABLE` (inside the region, noise ceiling below ``threshold``).

    The scope's region is tested first, as precompute selects (region, then reliability): a V1 vertex of low
    reliability in 'joint:non-early' is outside the scope, not unreliable. ``threshold`` NaN = no reliability
    selection (no estimate): nothing is unreliable. ``labels`` (V,): -1 where not clustered; ``reliability`` (V,)."""
    from brainviz.names import EARLY_ROIS

    labels = np.asarray(labels)
    out = np.where(labels >= 0, CLUSTERED, OUTSIDE_SCOPE)
    if region is None:
        in_region = np.ones(len(labels), bool)
    elif region == "non-early":
        in_region = ~roi_mask(vertices, list(EARLY_ROIS))
    else:
        in_region = roi_mask(vertices, [region])
    if np.isfinite(threshold):
        rel = np.asarray(reliability, float)
        out[(labels < 0) & in_region & (np.nan_to_num(rel, nan=-np.inf) < threshold)] = UNRELIABLE
    return out


# --------------------------------------------------------------------------- images
@lru_cache(maxsize=8)
def placeholder(size: int = 256, text: str = "image missing"):
    """A gray PIL picture saying ``text``: shown where the store holds no thumbnail."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), (200, 200, 200))
    ImageDraw.Draw(im).text((8, size // 2 - 6), text, fill=(90, 90, 90))
    return im


def thumbnails(store, keys: Sequence[str]) -> dict:
    """{key: picture for ``st.image``} of every key: the bytes of the store's thumbnail (a JPEG), or the
    gray :func:`placeholder` where it holds none. Reads only these keys' thumbnails."""
    stored = store.thumbnails(keys)
    return {k: stored[k] if k in stored else placeholder() for k in keys}


def thumbnail(store, key: str):
    """The picture of one image (see :func:`thumbnails`)."""
    return thumbnails(store, [key])[key]


def tag_captions(keys: Sequence[str], tags: pd.DataFrame | None, max_tags: int = 3,
                 threshold: float = 0.5) -> dict[str, str]:
    """{key: 'nsd-00013 · faces, people'}: each image's categories scoring > ``threshold``, highest first (ties in
    column order), at most ``max_tags``; the bare key when none (or untagged). One pass over the score matrix
    (a selectbox of 2,700 examples formats every option on every rerun)."""
    keys = [str(k) for k in keys]
    out = dict(zip(keys, keys))
    if tags is None or not len(keys):
        return out
    cols = [c for c in tags.columns if c != "tags"]
    known = [k for k in dict.fromkeys(keys) if k in tags.index]
    if not cols or not known:
        return out
    scores = tags.loc[known, cols].astype(float).to_numpy()
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")[:, :max_tags]
    for key, row, idx in zip(known, scores, order):
        cats = [cols[j] for j in idx if row[j] > threshold]
        if cats:
            out[key] = f"{key} · {', '.join(cats)}"
    return out


def tag_caption(key: str, tags: pd.DataFrame | None, max_tags: int = 3, threshold: float = 0.5) -> str:
    """'nsd-00013 · faces, people' from the image's category scores (:func:`tag_captions` of one key)."""
    return tag_captions([key], tags, max_tags, threshold)[str(key)]


def main_category(keys: Sequence[str], tags: pd.DataFrame) -> list[str]:
    """The highest-scoring category of each image ('other' when none > 0.3 or untagged)."""
    out = []
    cols = [c for c in (tags.columns if tags is not None else []) if c != "tags"]
    for k in keys:
        if tags is None or k not in tags.index or not cols:
            out.append("other")
            continue
        row = tags.loc[k, cols].astype(float)
        out.append(str(row.idxmax()) if row.max() > 0.3 else "other")
    return out


def example_image(keys: Sequence[str], tags: pd.DataFrame, category: str,
                  avoid: Sequence[str] = ()) -> str | None:
    """The key among ``keys`` that shows ``category`` most clearly: highest score of ``category``, then lowest
    summed score of the ``avoid`` categories, then the first key; None when no key has ``category`` > 0.5."""
    if tags is None or category not in tags.columns:
        return None
    known = [k for k in keys if k in tags.index]
    if not known:
        return None
    t = tags.loc[known]
    score = t[category].astype(float).fillna(0)
    other = t[[c for c in avoid if c in t.columns]].astype(float).fillna(0).sum(axis=1) if avoid else 0 * score
    ok = score > 0.5
    if not ok.any():
        return None
    rank = pd.DataFrame({"s": -score[ok].round(3), "o": other[ok], "i": np.arange(ok.sum())}, index=score[ok].index)
    return str(rank.sort_values(["s", "o", "i"]).index[0])


# --------------------------------------------------------------------------- RDMs
def rdm_order(rdm: np.ndarray, keys: Sequence[str], how: str, tags: pd.DataFrame | None = None,
              categories: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Row order of an RDM and the category of each row in that order.

    how: 'category' (grouped by main category, stable), 'clustering' (scipy average-linkage
    hierarchical clustering, dendrogram leaves order) or 'stored'.
    """
    n = len(keys)
    cats = list(categories) if categories is not None else main_category(keys, tags)
    if how == "category":
        order = np.array(sorted(range(n), key=lambda i: (cats[i], i)))
    elif how == "clustering" and n > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform

        d = np.asarray(rdm, np.float64)
        d = (d + d.T) / 2
        np.fill_diagonal(d, 0)
        d = np.clip(d, 0, None)
        order = leaves_list(linkage(squareform(d, checks=False), method="average", optimal_ordering=n <= 300))
    else:
        order = np.arange(n)
    return order, [cats[i] for i in order]


def source_label(source: str) -> str:
    """'layer:block2_s4' -> 'layer: block2_s4' (idempotent)."""
    kind, sep, rest = str(source).partition(":")
    return f"{kind}: {rest.strip()}" if sep else kind


def rdm_choices(rdms: pd.DataFrame) -> pd.DataFrame:
    """The stored RDM list with a readable 'source_label' ('measured', 'predicted', 'layer: x')."""
    df = rdms.copy()
    df["source_label"] = df["source"].map(source_label)
    return df


def rdm_labels(rdms: pd.DataFrame) -> dict[str, str]:
    """{rdm_id: 'measured · faces · subj01'} readable names for legends and tables."""
    out = {}
    for _, r in rdms.iterrows():
        parts = [source_label(r["source"])]
        parts += [str(r[c]) for c in ("roi", "subject") if c in r and r[c] is not None and r[c] == r[c]]
        parts.append(str(r["metric"]))
        out[str(r["rdm_id"])] = " · ".join(parts)
    return out


#: extreme_pairs.kind -> heading (the schema's names and brainviz.rsa.extreme_pairs' names).
PAIR_KINDS = {
    "most_similar": "Most similar pairs", "lowest": "Most similar pairs",
    "most_dissimilar": "Most dissimilar pairs", "largest": "Most dissimilar pairs",
    "closest_to_1": "Pairs closest to 1 (uncorrelated patterns)",
}


def pair_kinds(kinds) -> list[tuple[str, str]]:
    """[(kind, heading)] of the stored extreme-pair kinds, similar first, then dissimilar, then others."""
    order = list(PAIR_KINDS)
    ks = sorted(set(kinds), key=lambda k: (order.index(k) if k in order else len(order), k))
    return [(k, PAIR_KINDS.get(k, k.replace("_", " ").capitalize())) for k in ks]


def k92_rdm_ids(store) -> list[str]:
    """Ids of stored RDMs over the 92-image (k92) set, human/IT ones first."""
    df = store.list_rdms()
    out = []
    for _, r in df.iterrows():
        rid = str(r["rdm_id"])
        if "k92" in rid.lower() or (r.get("roi") and "IT" in str(r.get("roi"))) or int(r["n"]) == 92:
            try:
                _, keys = store.rdm(rid)
            except BrainVizDataError:
                continue
            if keys and all(str(k).startswith("k92-") for k in keys):
                out.append(rid)
    return sorted(out, key=lambda i: (0 if ("human" in i.lower() or "it" in i.lower().split("|")) else 1, i))


# --------------------------------------------------------------------------- evaluation
def transfer_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD of median r over seeds per subject x method x n_train."""
    if df.empty:
        return df
    return (df.groupby(["subject", "method", "n_train"])["median_r"].agg(["mean", "std", "count"])
            .reset_index().rename(columns={"mean": "median_r", "std": "sd", "count": "n_seeds"}))


def cluster_evidence(enrichment: Mapping) -> tuple[pd.DataFrame, dict | None]:
    """A cluster description's evidence as a table (category, effect, elsewhere, top 10, base rate (%), p; by
    effect, else by enrichment ratio for stores without effects) and the regression's fit ({r2, n_images,
    rule}, None for older stores)."""
    rows = []
    for cat, v in enrichment.items():
        if str(cat).startswith("_") or not isinstance(v, Mapping):
            continue
        count, n = v.get("count"), v.get("n")
        rows.append({"category": cat, "effect": v.get("effect"), "elsewhere": v.get("effect_others"),
                     "top 10": f"{int(count)}/{int(n)}" if count is not None and n else "",
                     "base rate": 100 * v["base_rate"] if v.get("base_rate") is not None else None,
                     "p": v.get("p_value"), "_ratio": v.get("ratio")})
    table = pd.DataFrame(rows, columns=["category", "effect", "elsewhere", "top 10", "base rate", "p", "_ratio"])
    by = "effect" if table["effect"].notna().any() else "_ratio"
    table = table.sort_values(by, ascending=False, na_position="last").drop(columns="_ratio")
    if not table["effect"].notna().any():
        table = table.drop(columns=["effect", "elsewhere"])
    fit = enrichment.get("_fit") if isinstance(enrichment.get("_fit"), Mapping) else None
    return table.reset_index(drop=True), (dict(fit) if fit and fit.get("r2") is not None else None)


def scope_label(scope: str, short: bool = False) -> str:
    """User-facing name of a cluster scope ('joint:non-early' -> 'joint (reliable subjects) · outside early
    visual cortex (V1-hV4)', 'joint' -> '... · whole visual cortex', 'subj01:PPA' -> 'subj01 · inside PPA').
    ``short``: for a selector ('joint · outside V1-hV4', 'joint · whole visual cortex')."""
    who, _, region = re.split(r"[@+~]", scope)[0].partition(":")  # without threshold and variant suffixes
    if short:
        return f"{who} · " + ("whole visual cortex" if not region and who == "joint"
                              else f"inside {region}" if region and region != "non-early" else "outside V1-hV4")
    who = "joint (reliable subjects together)" if who == "joint" else who
    if region == "non-early":
        return f"{who} · outside early visual cortex (V1-hV4)"
    if region:
        return f"{who} · inside {region}"
    return f"{who} · whole visual cortex" if who.startswith("joint") else f"{who} · outside early visual cortex (V1-hV4)"



def vertex_values(vm: pd.DataFrame, metric: str, n_vertices: int) -> np.ndarray:
    """(n_vertices,) one stored per-vertex metric (rows vertex, r / nc / nna) in vertex order, NaN where none is
    stored; the noise ceiling nc as √nc, on the scale of r."""
    vals = _by_vertex(vm, metric, n_vertices)
    return np.sqrt(np.clip(vals, 0, None)) if metric == "nc" else vals


def _by_vertex(vm: pd.DataFrame, metric: str, n_vertices: int) -> np.ndarray:
    vals = np.full(n_vertices, np.nan)
    vals[vm["vertex"].to_numpy()] = vm[metric].to_numpy(dtype=float)
    return vals


def roi_ceilings(vm: pd.DataFrame, vertices: pd.DataFrame) -> dict[str, float]:
    """{ROI group, ROI or 'all': median √nc over its vertices} (the ceiling on r a perfect model reaches; NaN where
    no vertex of the ROI has a noise ceiling), from the stored per-vertex nc (rows vertex, nc)."""
    nc = _by_vertex(vm, "nc", len(vertices))
    masks = {**roi_groups(vertices), **{r: roi_mask(vertices, [r]) for r in roi_names(vertices)}, "all": slice(None)}
    return {r: float(np.sqrt(max(np.nanmedian(nc[m]), 0))) if np.isfinite(nc[m]).any() else np.nan
            for r, m in masks.items()}


#: Most dots the embedding map sends to the browser (all subjects of a scope at NSD size hold ~80,000 clustered
#: vertices: ~5 MB of chart JSON per rerun); above it a sample is shown.
MAX_MAP_POINTS = 10_000


def bounded_points(points: pd.DataFrame, max_points: int | None = None, by: str = "cluster",
                   seed: int = 0) -> pd.DataFrame:
    """At most ``max_points`` (default :data:`MAX_MAP_POINTS`) rows of ``points`` (one row per dot), sampled within each ``by`` group in proportion
    to its size (every group keeps at least one dot; deterministic given ``seed``); all rows when they fit. Rows
    keep their order."""
    max_points = MAX_MAP_POINTS if max_points is None else max_points
    if len(points) <= max_points:
        return points
    rng = np.random.default_rng(seed)
    keep = []
    for idx in points.groupby(by).indices.values():
        quota = max(1, int(len(idx) * max_points // len(points)))
        keep.append(np.sort(rng.choice(idx, size=min(len(idx), quota), replace=False)))
    return points.iloc[np.sort(np.concatenate(keep))]


# --------------------------------------------------------------------------- decoding
#: Display order of the decoding ROI sets.
DECODING_SET_ORDER = {"set1": 0, "set2": 1, "set3": 2, "whole cortex": 3, "vote": 4, "vote (equal weights)": 5}


def _set_order(roi_set: str) -> tuple:
    return DECODING_SET_ORDER.get(roi_set, 9), roi_set


def identification_summary(ranks: pd.DataFrame) -> pd.DataFrame:
    """Identification accuracy of one subject's stored decoding ranks (rows approach, roi_set, image_key, rank;
    rank 1 = the true image first among the candidates). One row per (approach, roi_set), approaches by their
    best top-1 over ROI sets (the method that works first), sets in display order: approach, roi_set, top1,
    top5 (shares of queries ranked first / in the first five), mean_rank, n, ranks (the ranks by image_key)."""
    rows = []
    for (a, s), g in ranks.groupby(["approach", "roi_set"]):
        r = g.sort_values("image_key")["rank"].to_numpy()
        rows.append({"approach": a, "roi_set": s, "top1": float((r <= 1).mean()), "top5": float((r <= 5).mean()),
                     "mean_rank": float(r.mean()), "n": len(r), "ranks": r})
    out = pd.DataFrame(rows, columns=["approach", "roi_set", "top1", "top5", "mean_rank", "n", "ranks"])
    if out.empty:
        return out
    best = out.groupby("approach")["top1"].max()
    out["_a"] = [(-best[a], a) for a in out["approach"]]
    out["_s"] = [_set_order(s) for s in out["roi_set"]]
    return out.sort_values(["_a", "_s"]).drop(columns=["_a", "_s"]).reset_index(drop=True)


def identical_rankings(summary: pd.DataFrame) -> dict[tuple[str, ...], list[str]]:
    """{ROI sets that rank every image alike: approaches where they do} from :func:`identification_summary` (e.g. a
    set covering every vertex = whole cortex; a validated vote that put its weight on one set)."""
    same: dict[tuple[str, ...], list[str]] = {}
    for a, g in summary.groupby("approach", sort=False):
        classes: list[list[str]] = []
        ranks = dict(zip(g["roi_set"], g["ranks"]))
        for s in sorted(ranks, key=_set_order):
            home = next((c for c in classes if np.array_equal(ranks[c[0]], ranks[s])), None)
            if home is not None:
                home.append(s)
            else:
                classes.append([s])
        for c in classes:
            if len(c) > 1:
                same.setdefault(tuple(c), []).append(a)
    return same


def sets_covering_every_vertex(rois: pd.DataFrame, n_vertices: int) -> set[str]:
    """ROI sets (rows roi_set, n_vertices per ROI of the set) that hold all ``n_vertices`` of the subject's data:
    the same set as whole cortex (set2, the category ROIs, overlaps itself and is never counted)."""
    if rois.empty:
        return set()
    return {s for s, g in rois.groupby("roi_set") if s != "set2" and int(g["n_vertices"].sum()) >= n_vertices}


# --------------------------------------------------------------------------- what the clusters are computed on
#: User-facing names of brainviz.clusters.PROFILES.
PROFILE_LABELS = {"combined": "embeddings + responses (combined)", "embeddings": "encoder embeddings",
                  "measured": "measured responses"}


#: Why a profile is the default view (shown on the page when it is the store's default).
PROFILE_DEFAULT_WHY = {
    "combined": "On the simulated demo brain it recovers the planted category regions best of the three on both "
                "simulated brains tried (seeds 0 and 7: ARI 0.90 and 0.90 at the chosen k, against 0.79 / 0.77 for "
                "the embeddings and 0.79 / 0.88 for the measured responses): the embeddings carry what the image "
                "features predict, the measured responses what the features miss (README, 'Results on the demo "
                "brain'). It opens unsmoothed: smoothing moved its ARI by -0.02 to +0.01 there."}


def profile_label(profile: str) -> str:
    """'combined' -> 'embeddings + responses (combined)' (unknown names as they are)."""
    return PROFILE_LABELS.get(profile, profile)


def cluster_scope(variants: pd.DataFrame, profile: str, family: str, percentile: float | None,
                  smoothed: bool) -> str | None:
    """The stored scope of one choice on the clusters page (store table ``cluster_variants``): what is clustered,
    which vertices, which reliability threshold (None: the family's only one), smoothed or not; None when that
    combination was not computed."""
    v = variants[(variants["profile"] == profile) & (variants["family"] == family)]
    if percentile is not None and v["percentile"].notna().any():
        v = v[np.isclose(v["percentile"].astype(float), float(percentile))]
    v = v[(v["smoothing"] > 0) == bool(smoothed)]
    return str(v["scope"].iloc[0]) if len(v) else None


def profile_comparison(store, model_id: str, variants: pd.DataFrame, family: str) -> pd.DataFrame:
    """SIMULATION CHECK table for the page: per profile and smoothing of ``family`` at its default threshold, the
    chosen k, category-region ARI and coverage at that k (empty without recovery scores, e.g. real data)."""
    rows = []
    fam = variants[variants["family"] == family]
    default_pct = variants.loc[variants["is_default"].astype(bool), "percentile"]
    if fam["percentile"].notna().any() and len(default_pct) and pd.notna(default_pct.iloc[0]):
        fam = fam[np.isclose(fam["percentile"].astype(float), float(default_pct.iloc[0]))]
    for r in fam.itertuples():
        settings = store.cluster_settings(model_id, r.scope)
        q = store.cluster_quality(model_id, r.scope)
        if settings.empty or q.empty:
            continue
        k = int(settings["chosen_k"].iloc[0])
        at = q[(q["k"] == k) & q["simulation_check"].astype(bool)].set_index("metric")["value"]
        if "ari" not in at:
            continue
        rows.append({"what is clustered": profile_label(r.profile),
                     "smoothed": f"β = {r.smoothing:g}" if r.smoothing > 0 else "no", "k": k,
                     "category-region ARI": float(at["ari"]), "coverage": float(at.get("coverage", np.nan)),
                     "default": bool(r.is_default)})
    return pd.DataFrame(rows)


def stability_rule(policy: dict, stability: "pd.Series | np.ndarray", profile_label: str,
                   smoothed: bool = False) -> tuple[float | None, str]:
    """(the stability threshold, the caption saying how k was chosen) from the run's policy numbers
    (``Store.analysis_settings()``: min_stability, stability_fraction, stability_rounds) and a scope's stability
    curve (values per k). Threshold None (and a caption without numbers) when the store lacks them."""
    min_stab = policy.get("min_stability")
    frac, rounds = policy.get("stability_fraction"), policy.get("stability_rounds")
    values = np.asarray(stability, dtype=float)
    reached = min_stab is None or bool((values >= min_stab).any())
    text = ("Stability: k-means is run on two random " + (f"{frac * 100:g} % " if frac is not None else "")
            + "subsamples of the clustered vertices, each fit labels every vertex, and the agreement of the two "
            "labelings (adjusted Rand index) is averaged over " + (f"{int(rounds)} rounds" if rounds is not None
                                                                  else "several rounds")
            + ". The chosen k is the largest k whose stability is at least "
            + (f"{min_stab:g}" if min_stab is not None else "the run's threshold")
            + f": as many clusters as the {profile_label} support reproducibly"
            + ("" if reached else f"; here no k reaches {min_stab:g}, so the most stable k is shown: treat these "
                                  "clusters as tentative")
            + (". The smoothed labels keep this k (stability is measured on plain k-means)" if smoothed else "")
            + ". No ground truth is used.")
    return (None if min_stab is None else float(min_stab)), text
