"""Explore the brain through voxel embeddings (report 004, section 5).

* :func:`kmeans_clusters` / :func:`joint_kmeans` / :func:`sub_clusters`: k-means
  on a subject's voxel embeddings, on several subjects' embeddings
  concatenated (functionally consistent clusters across brains), or inside an
  ROI (e.g. PPA -> indoor vs outdoor scene sub-regions).
* :func:`embedding_map`: a 2-D UMAP map of the embeddings.
* :func:`top_images`: per cluster, the images with the highest mean response
  over the cluster's vertices (measured or predicted responses).
* :func:`name_clusters`: a name per cluster that says what distinguishes it: the tag with the largest
  unique effect on the cluster's mean response over every tagged image (a multiple regression on the
  tag scores), "mixed / weak" when the tags explain little of it, and siblings told apart; with the
  tag enrichment of its top images (:func:`describe_cluster`: "faces 9/10") beside it.
* :func:`reliable_vertices`: which vertices to cluster (noise ceiling at or
  above a percentile, optionally inside a scope); :data:`UNCLUSTERED` codes say
  why a vertex was left out.
* :func:`stability_curve` / :func:`choose_k`: k chosen without ground truth, by
  the stability of k-means over random subsamples of the clustered vertices.
* :func:`cluster_recovery` (ARI against planted regions), :func:`recovery_scores`
  (ARI, coverage, homogeneity, completeness over category regions),
  :func:`position_score` (do early-visual clusters follow visual-field position?)
  and :func:`top_image_precision` validate the above on the demo brain
  (SIMULATION CHECKS: they read the planted ground truth, nothing else does).

Normalization: embeddings are L2-normalized per vertex by default
(``normalize="l2"``), so k-means and UMAP compare embedding *directions*
(cosine geometry). The norm of a voxel embedding mostly reflects how strongly
the vertex responds (its gain / SNR), not what it responds to, and vertices of
one functional region in different brains differ in gain. ``"standardize"``
(z-score each embedding dimension over vertices) and ``None`` are available.

Cluster labels are 0..k-1 ordered by cluster size (0 = largest; ties by first
vertex), so they are stable across runs and comparable across k. Everything is
deterministic given ``seed``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .checks import as_matrix
from .errors import BrainVizDataError
from .metrics import zscore as _zscore  # the library's one z-score (functions below take a zscore flag)

NORMALIZATIONS = ("l2", "standardize", None)


def _matrix(x: np.ndarray, name: str) -> np.ndarray:
    return as_matrix(x, name, dtype=np.float32, nonempty=True)


def normalize_embeddings(embeddings: np.ndarray, normalize: str | None = "l2") -> np.ndarray:
    """(V, E) -> (V, E) float32: 'l2' unit-norm rows, 'standardize' z-scored columns, None unchanged."""
    x = _matrix(embeddings, "embeddings")
    if normalize == "l2":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm > 0, norm, 1)
    if normalize == "standardize":
        sd = x.std(axis=0, keepdims=True)
        return (x - x.mean(axis=0, keepdims=True)) / np.where(sd > 0, sd, 1)
    if normalize is None:
        return x
    raise BrainVizDataError("normalize", f"got {normalize!r}, expected one of {NORMALIZATIONS}")


def _relabel_by_size(labels: np.ndarray, k: int) -> np.ndarray:
    """Rename clusters 0..k-1 by decreasing size, ties by first vertex."""
    sizes = np.bincount(labels, minlength=k)
    first = np.array([np.argmax(labels == c) if sizes[c] else len(labels) for c in range(k)])
    order = np.lexsort((first, -sizes))  # new label i = old cluster order[i]
    new = np.empty(k, np.int32)
    new[order] = np.arange(k, dtype=np.int32)
    return new[labels]


def kmeans_clusters(embeddings: np.ndarray, k: int, seed: int = 0, *, normalize: str | None = "l2",
                    n_init: int = 10) -> np.ndarray:
    """k-means (scikit-learn, ``n_init`` restarts) on (V, E) voxel embeddings -> (V,) int32 labels 0..k-1."""
    from sklearn.cluster import KMeans

    x = normalize_embeddings(embeddings, normalize)
    if not 1 <= k <= len(x):
        raise BrainVizDataError("k", f"need 1 <= k <= {len(x)} vertices, got {k}")
    km = KMeans(n_clusters=int(k), n_init=n_init, random_state=seed).fit(x)
    return _relabel_by_size(km.labels_.astype(np.int64), int(k))


def kmeans_sweep(embeddings: np.ndarray, ks: Sequence[int], seed: int = 0, *,
                 normalize: str | None = "l2") -> dict[int, np.ndarray]:
    """{k: (V,) labels} for several k (same seed for each)."""
    return {int(k): kmeans_clusters(embeddings, int(k), seed, normalize=normalize) for k in ks}


def _split(stacked: np.ndarray, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for s, n in sizes.items():
        out[s] = stacked[start:start + n]
        start += n
    return out


def joint_kmeans(embeddings: Mapping[str, np.ndarray], k: int, seed: int = 0, *,
                 normalize: str | None = "l2") -> dict[str, np.ndarray]:
    """k-means over several subjects' embeddings concatenated.

    ``embeddings``: subject -> (V_s, E). Returns subject -> (V_s,) labels in
    one shared label space (normalization is applied to the concatenation).
    """
    sizes = {s: len(e) for s, e in embeddings.items()}
    labels = kmeans_clusters(np.concatenate([_matrix(e, f"embeddings[{s}]") for s, e in embeddings.items()]),
                             k, seed, normalize=normalize)
    return _split(labels, sizes)


def sub_clusters(embeddings: np.ndarray, mask: np.ndarray, k: int = 2, seed: int = 0, *,
                 normalize: str | None = "l2") -> np.ndarray:
    """k-means inside a region: (V, E) embeddings, (V,) bool mask -> (V,) labels, -1 outside the mask."""
    m = np.asarray(mask, bool)
    x = _matrix(embeddings, "embeddings")
    if m.shape != (len(x),):
        raise BrainVizDataError("mask", f"expected shape ({len(x)},), got {m.shape}")
    out = np.full(len(x), -1, np.int32)
    out[m] = kmeans_clusters(x[m], k, seed, normalize=normalize)
    return out


#: Most vertices UMAP is fitted on; the others are placed from their fitted neighbours (:func:`embedding_map`).
#: Above the demo brain's 26,040 vertices (its maps are fitted on every vertex); NSD's 316k are not.
MAP_MAX_FIT = 30_000


def embedding_map(embeddings: np.ndarray, seed: int = 0, *, method: str = "umap", normalize: str | None = "l2",
                  n_neighbors: int = 15, min_dist: float = 0.1, max_fit: int | None = MAP_MAX_FIT) -> np.ndarray:
    """(V, E) embeddings -> (V, 2) float32 map with UMAP (``method="pca"`` only if asked).

    UMAP runs single-threaded with ``random_state=seed``, so the map is
    reproducible. umap-learn is imported here (its first import compiles with numba).
    The ``n_neighbors`` nearest neighbours are exact (scikit-learn, brute force) and handed
    to UMAP, instead of UMAP's approximate search (pynndescent): on the demo brain's
    26,040 x 256 embeddings 41 s -> 20 s, most of it pynndescent's numba compilation.

    Above ``max_fit`` vertices (None: never) UMAP is fitted on ``max_fit`` of them (a random subset, fixed by
    ``seed``) and every other vertex is placed at the distance-weighted mean position of its ``n_neighbors``
    nearest fitted vertices in embedding space (the starting point of UMAP's own ``transform``), so the cost
    grows linearly with V beyond ``max_fit`` instead of quadratically (exact neighbours of every vertex).
    """
    if method == "umap" and max_fit is not None and len(embeddings) > max_fit:
        return _subset_map(embeddings, seed, normalize=normalize, n_neighbors=n_neighbors, min_dist=min_dist,
                           max_fit=max_fit)
    x = normalize_embeddings(embeddings, normalize)
    if method == "pca":
        from sklearn.decomposition import PCA

        if min(x.shape) < 2:
            raise BrainVizDataError("embeddings", f"PCA map needs at least 2 vertices and 2 dimensions, got {x.shape}")
        return PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(x).astype(np.float32)
    if method != "umap":
        raise BrainVizDataError("method", f"got {method!r}, expected 'umap' or 'pca'")
    if len(x) < 4:
        raise BrainVizDataError("embeddings", f"UMAP needs at least 4 vertices, got {len(x)}")
    import umap  # lazy: numba compilation on first import

    import warnings

    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, len(x) - 1)
    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors(x)  # self first, as UMAP's
    reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=min_dist, random_state=seed, n_jobs=1,
                        precomputed_knn=(idx, dist, None))
    with warnings.catch_warnings():  # "transform will be unavailable": maps are only ever fitted
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def _subset_map(embeddings: np.ndarray, seed: int, *, normalize: str | None, n_neighbors: int, min_dist: float,
                max_fit: int) -> np.ndarray:
    """:func:`embedding_map` fitted on ``max_fit`` vertices, the others placed from their fitted neighbours."""
    from sklearn.neighbors import NearestNeighbors

    x = normalize_embeddings(embeddings, normalize)
    fit = np.sort(np.random.default_rng(seed).choice(len(x), size=max_fit, replace=False))
    rest = np.setdiff1d(np.arange(len(x)), fit)
    out = np.empty((len(x), 2), np.float32)
    out[fit] = embedding_map(x[fit], seed, normalize=None, n_neighbors=n_neighbors, min_dist=min_dist, max_fit=None)
    k = min(n_neighbors, max_fit)
    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x[fit]).kneighbors(x[rest])
    w = 1.0 / np.maximum(dist, 1e-6)
    out[rest] = (np.einsum("nk,nkd->nd", w, out[fit][idx]) / w.sum(1, keepdims=True)).astype(np.float32)
    return out


def joint_embedding_map(embeddings: Mapping[str, np.ndarray], seed: int = 0, **kwargs) -> dict[str, np.ndarray]:
    """One map over several subjects (subject -> (V_s, E)) -> subject -> (V_s, 2)."""
    sizes = {s: len(e) for s, e in embeddings.items()}
    xy = embedding_map(np.concatenate([_matrix(e, f"embeddings[{s}]") for s, e in embeddings.items()]), seed, **kwargs)
    return _split(xy, sizes)


def cluster_means(responses: np.ndarray, labels: np.ndarray, *, zscore: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean response of each cluster's vertices per image.

    responses (n_images, V), labels (V,) with -1 = unclustered. Returns
    (clusters (c,) sorted label values, means (n_images, c)). With
    ``zscore`` each vertex is z-scored over the images first, so that every
    vertex weighs the same whatever its response scale.
    """
    r = _matrix(responses, "responses")
    lab = np.asarray(labels)
    if lab.shape != (r.shape[1],):
        raise BrainVizDataError("labels", f"expected shape ({r.shape[1]},) to match responses {r.shape}, got {lab.shape}")
    if zscore:
        r = _zscore(np.asarray(r, np.float32))
    inside = lab >= 0  # only the clustered vertices enter the product (a few hundred of a subject's thousands)
    clusters = np.unique(lab[inside])
    onehot = (lab[inside][:, None] == clusters[None, :]).astype(np.float32)
    return clusters, (r[:, inside] @ onehot) / onehot.sum(axis=0)


def top_images(responses: np.ndarray, labels: np.ndarray, k_top: int = 10, *,
               keys: Sequence[str] | None = None, zscore: bool = True) -> pd.DataFrame:
    """Per cluster, the ``k_top`` images with the highest mean response over its vertices.

    responses (n_images, V): measured responses of a subject's images, or an
    encoder's predictions on all images; labels (V,), -1 = not clustered;
    keys: (n_images,) image keys. Returns a DataFrame with columns cluster,
    rank (1 = highest), image_index (row of ``responses``), image_key (None
    without ``keys``), score (the mean response), ordered by cluster, rank.
    Ties are broken by the lower image index.
    """
    clusters, means = cluster_means(responses, labels, zscore=zscore)
    return top_images_of_means(clusters, means, k_top, keys=keys)


def top_images_of_means(clusters: np.ndarray, means: np.ndarray, k_top: int = 10, *,
                        keys: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`top_images` from cluster means already computed: ``clusters`` (c,) label values, ``means``
    (n_images, c) (:func:`cluster_means`, or one subject's means streamed in column blocks,
    :mod:`brainviz.pipeline.analyses.cluster_images`). Same columns, ranking and tie rule."""
    if keys is not None and len(keys) != means.shape[0]:
        raise BrainVizDataError("keys", f"{len(keys)} keys but {means.shape[0]} images")
    n_top = min(int(k_top), means.shape[0])
    rows = []
    for j, c in enumerate(clusters):
        order = np.argsort(-means[:, j], kind="stable")[:n_top]
        for rank, i in enumerate(order, start=1):
            rows.append((int(c), rank, int(i), None if keys is None else str(keys[i]), float(means[i, j])))
    return pd.DataFrame(rows, columns=["cluster", "rank", "image_index", "image_key", "score"])


def pooled_cluster_means(responses: Mapping[str, tuple[np.ndarray, Sequence[str]]],
                         labels: Mapping[str, np.ndarray], *, zscore: bool = True) -> pd.DataFrame:
    """Mean response of each joint cluster to each image, pooled over subjects.

    responses: subject -> ((n_images_s, V_s) responses, (n_images_s,) image keys): subjects may have
    seen different images; labels: subject -> (V_s,) cluster labels (< 0 = not clustered, one label
    space). An image's value for a cluster is the mean over the subjects who saw it of the mean
    (z-scored) response of that subject's vertices in the cluster. Returns a DataFrame (n_images x
    clusters), index image_key (sorted), NaN where no subject who saw the image has the cluster.
    """
    frames = []
    for s, (y, keys) in responses.items():
        if s not in labels or not (np.asarray(labels[s]) >= 0).any():
            continue
        clusters, means = cluster_means(y, labels[s], zscore=zscore)
        if len(keys) != means.shape[0]:
            raise BrainVizDataError(f"responses[{s}]", f"{len(keys)} keys but {means.shape[0]} images")
        frames.append(pd.DataFrame(means, index=pd.Index([str(k) for k in keys], name="image_key"), columns=clusters))
    if not frames:
        raise BrainVizDataError("labels", "no subject has clustered vertices")
    return pd.concat(frames).groupby(level=0).mean().sort_index()


def pooled_top_images(responses: Mapping[str, tuple[np.ndarray, Sequence[str]]], labels: Mapping[str, np.ndarray],
                      k_top: int = 10, *, zscore: bool = True, means: pd.DataFrame | None = None) -> pd.DataFrame:
    """Top images of joint clusters from several subjects' MEASURED responses (report 004 sec. 5: the
    images whose fMRI responses are highest, averaged over the cluster's voxels).

    Arguments as :func:`pooled_cluster_means`, whose values are the scores (``means``: that frame when the
    caller has it already; ``responses`` and ``labels`` are then not read again). Returns the columns of
    :func:`top_images` (image_index = row in the sorted union of image keys).
    """
    pooled = pooled_cluster_means(responses, labels, zscore=zscore) if means is None else means
    n_top = min(int(k_top), len(pooled))
    rows = []
    for c in sorted(pooled.columns):
        col = pooled[c].to_numpy()
        order = [i for i in np.argsort(-np.nan_to_num(col, nan=-np.inf), kind="stable") if np.isfinite(col[i])][:n_top]
        for rank, i in enumerate(order, start=1):
            rows.append((int(c), rank, int(i), str(pooled.index[i]), float(col[i])))
    return pd.DataFrame(rows, columns=["cluster", "rank", "image_index", "image_key", "score"])


def _positives(tag_scores: pd.DataFrame, keys: Sequence[str], threshold: float, field: str) -> pd.DataFrame:
    missing = [k for k in keys if k not in tag_scores.index]
    if missing:
        raise BrainVizDataError(field, f"no tag scores for images {missing[:5]}")
    cats = [c for c in tag_scores.columns if pd.api.types.is_numeric_dtype(tag_scores[c])]
    return tag_scores.loc[list(keys), cats].fillna(0) > threshold


def base_rates(tag_scores: pd.DataFrame, background: Sequence[str] | None = None, *,
               threshold: float = 0.5) -> pd.Series:
    """category -> share of the ``background`` images (default: every image of ``tag_scores``) whose score is
    > ``threshold`` (the base rates of :func:`describe_cluster`)."""
    bg = list(tag_scores.index) if background is None else [str(k) for k in background]
    return _positives(tag_scores, bg, threshold, "background").mean(axis=0)


def describe_cluster(top_image_keys: Sequence[str], tag_scores: pd.DataFrame,
                     background: Sequence[str] | None = None, *, threshold: float = 0.5,
                     base_rates: pd.Series | None = None) -> tuple[str, dict]:
    """Describe a cluster by the tag category most enriched among its top images.

    An image "has" a category when its score is > ``threshold``. For each
    category: ``count`` of top images that have it out of ``n``, ``frac`` =
    count / n, ``base_rate`` = fraction of ``background`` images (default: all
    images in ``tag_scores``) that have it, ``ratio`` = frac / base_rate and
    ``p_value`` = one-sided binomial P(X >= count | n, base_rate). The chosen
    category is the one with frac > base_rate and the smallest p-value (ties:
    larger count, then name). Returns (description, enrichment) with
    description like ``"faces 9/10"`` (``"no enriched category"`` if none)
    and enrichment = {category: {count, n, frac, base_rate, ratio, p_value}}.
    ``base_rates``: :func:`base_rates` of ``background`` at ``threshold`` when the caller describes many
    clusters against the same background (the same result, computed once).
    """
    from scipy.stats import binom

    keys = [str(k) for k in top_image_keys]
    if not keys:
        raise BrainVizDataError("top_image_keys", "no images to describe")
    bg = list(tag_scores.index) if background is None else [str(k) for k in background]
    top = _positives(tag_scores, keys, threshold, "top_image_keys")
    base = base_rates if base_rates is not None else _positives(tag_scores, bg, threshold, "background").mean(axis=0)
    n = len(keys)
    enrichment, best = {}, None
    for cat in top.columns:
        count, rate = int(top[cat].sum()), float(base[cat])
        frac = count / n
        p = float(binom.sf(count - 1, n, rate)) if count else 1.0
        enrichment[cat] = {"count": count, "n": n, "frac": frac, "base_rate": rate,
                           "ratio": frac / max(rate, 1.0 / len(bg)), "p_value": p}
        if count and frac > rate:
            key = (p, -count, cat)
            if best is None or key < best[0]:
                best = (key, cat)
    if best is None:
        return "no enriched category", enrichment
    cat = best[1]
    return f"{cat} {enrichment[cat]['count']}/{n}", enrichment


def describe_top_images(top: pd.DataFrame, tag_scores: pd.DataFrame, *, background: Sequence[str] | None = None,
                        n_vertices: Mapping[int, int] | None = None, threshold: float = 0.5) -> pd.DataFrame:
    """:func:`describe_cluster` for every cluster of a :func:`top_images` frame (with image_key).

    Returns columns cluster, n_vertices (from ``n_vertices``, else NaN),
    description, enrichment (dict) -- ready for StoreWriter.add_cluster_descriptions.
    """
    rows = []
    for c, grp in top.sort_values(["cluster", "rank"]).groupby("cluster", sort=True):
        desc, enr = describe_cluster(grp["image_key"].tolist(), tag_scores, background, threshold=threshold)
        rows.append({"cluster": int(c), "n_vertices": None if n_vertices is None else int(n_vertices[int(c)]),
                     "description": desc, "enrichment": enr})
    return pd.DataFrame(rows, columns=["cluster", "n_vertices", "description", "enrichment"])


#: A cluster is named by a tag only when the tags explain at least this share of the variance of its mean
#: response over the tagged images (R² of :func:`tag_effects`; demo brain, seed 0: planted category regions
#: 0.58-0.76, clusters of weakly tuned vertices 0.11-0.25) ...
NAME_MIN_R2 = 0.3
#: ... and the tag's unique effect (standardized regression coefficient) is at least this.
NAME_MIN_EFFECT = 0.3
#: The name of a cluster whose response no tag explains (numbered when there are several).
MIXED = "mixed / weak"


def tag_effects(means: pd.DataFrame, tag_scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, int]:
    """What each tag adds to a cluster's response, the other tags held fixed.

    ``means``: (n_images x clusters) mean response per image (:func:`pooled_cluster_means`), index
    image keys; ``tag_scores``: category scores (index image keys, numeric columns in [0, 1], NaN =
    untagged). Over the images that have tags and a value for every cluster, each cluster's response
    is regressed on all tag scores at once (both standardized), so a tag that only co-occurs with
    another (bodies with faces in NSD photos) gets little of its effect. Returns (effects: clusters x
    categories standardized coefficients, NaN for a constant tag; r2: clusters -> share of the
    response's variance the tags explain; number of images used).
    """
    cats = [c for c in tag_scores.columns if pd.api.types.is_numeric_dtype(tag_scores[c])]
    tags = tag_scores.reindex(means.index)[cats]
    ok = tags.notna().any(axis=1).to_numpy() & means.notna().all(axis=1).to_numpy()
    empty = (pd.DataFrame(np.nan, index=means.columns, columns=cats), pd.Series(np.nan, index=means.columns), 0)
    if ok.sum() < len(cats) + 10:
        return empty
    x = tags[ok].fillna(0.0).to_numpy(np.float64)
    sd = x.std(axis=0)
    live = sd > 1e-12
    xz = (x[:, live] - x[:, live].mean(axis=0)) / sd[live]
    y = means[ok].to_numpy(np.float64)
    ysd = y.std(axis=0)
    yz = (y - y.mean(axis=0)) / np.where(ysd > 0, ysd, 1.0)
    design = np.c_[np.ones(len(xz)), xz]
    coef, *_ = np.linalg.lstsq(design, yz, rcond=None)
    resid = yz - design @ coef
    r2 = np.where(ysd > 0, 1.0 - (resid ** 2).sum(axis=0) / np.maximum((yz ** 2).sum(axis=0), 1e-12), 0.0)
    effects = np.full((y.shape[1], len(cats)), np.nan)
    effects[:, live] = coef[1:].T
    return (pd.DataFrame(effects, index=means.columns, columns=cats), pd.Series(r2, index=means.columns),
            int(ok.sum()))


def name_clusters(means: pd.DataFrame, top: pd.DataFrame, tag_scores: pd.DataFrame, *,
                  n_vertices: Mapping[int, int] | None = None, threshold: float = 0.5,
                  min_r2: float = NAME_MIN_R2, min_effect: float = NAME_MIN_EFFECT) -> pd.DataFrame:
    """A name for every cluster that says what distinguishes it from the others.

    A cluster is named by the tag with the largest unique effect on its mean response over every tagged
    image (:func:`tag_effects`), when the tags explain at least ``min_r2`` of that response and the
    effect is at least ``min_effect``; otherwise it is :data:`MIXED` ("mixed / weak"). Counting tags
    among the top images alone cannot do this: on the demo brain the top-10 images of the faces and the
    bodies regions all carry both tags (NSD photos of people), and weakly tuned clusters get "food 3/10".
    No two clusters share a name: of clusters with the same tag the one with the largest effect keeps the
    plain name; another adds the tag in which it exceeds that one most ("faces + animals") or "(weaker)";
    mixed ones are numbered by size ("mixed / weak 2").

    means: (n_images x clusters) as :func:`pooled_cluster_means`; top: a :func:`top_images` frame with
    image_key (every cluster of ``means``); tag_scores: category scores (NaN rows = untagged images, left
    out of the base rates). Returns columns cluster, n_vertices (from ``n_vertices``, else None),
    description (the name), enrichment: {category: the top-image enrichment of :func:`describe_cluster`
    (base rates among the tagged images) plus ``effect`` (this cluster's coefficient) and
    ``effect_others`` (the largest of the other clusters'), "_fit": {"r2", "n_images", "rule"}} -- ready
    for StoreWriter.add_cluster_descriptions.
    """
    effects, r2, n_img = tag_effects(means, tag_scores)
    clusters = [int(c) for c in means.columns]
    cats = [c for c in tag_scores.columns if pd.api.types.is_numeric_dtype(tag_scores[c])]
    tagged = list(tag_scores.index[tag_scores[cats].notna().any(axis=1)])  # base rates among tagged images only
    enrich, primary = {}, {}
    base = base_rates(tag_scores, tagged or None, threshold=threshold)  # once, not per cluster
    for c in clusters:
        keys = top.loc[top["cluster"] == c].sort_values("rank")["image_key"].tolist()
        enr = describe_cluster(keys, tag_scores, background=tagged or None, threshold=threshold,
                               base_rates=base)[1] if keys else {}
        e = effects.loc[c]
        others = effects.drop(index=c).max(axis=0) if len(clusters) > 1 else e * np.nan
        for cat in effects.columns:
            enr.setdefault(cat, {})
            enr[cat]["effect"] = None if not np.isfinite(e[cat]) else round(float(e[cat]), 3)
            enr[cat]["effect_others"] = None if not np.isfinite(others[cat]) else round(float(others[cat]), 3)
        enr["_fit"] = {"r2": None if not np.isfinite(r2[c]) else round(float(r2[c]), 3), "n_images": n_img,
                       "rule": f"named by the largest unique tag effect when R² >= {min_r2:g} and effect >= "
                               f"{min_effect:g}"}
        enrich[c] = enr
        if e.notna().any() and r2[c] >= min_r2 and e.max() >= min_effect:
            primary[c] = str(e.idxmax())
    names = {}
    for cat in dict.fromkeys(primary.values()):
        group = sorted((c for c in primary if primary[c] == cat), key=lambda c: -effects.loc[c, cat])
        names[group[0]] = cat
        for c in group[1:]:
            gain = (effects.loc[c] - effects.loc[group[0]]).drop(cat)
            extra = gain.idxmax() if gain.notna().any() else None
            names[c] = f"{cat} + {extra}" if extra is not None and gain[extra] >= 0.1 and effects.loc[c, extra] >= 0.1 \
                else f"{cat} (weaker)"
    mixed = [c for c in clusters if c not in primary]
    for i, c in enumerate(sorted(mixed, key=lambda c: (-(n_vertices or {}).get(c, 0), c)), start=1):
        names[c] = MIXED if len(mixed) == 1 else f"{MIXED} {i}"
    seen: dict[str, int] = {}
    for c in clusters:  # anything still alike (e.g. two "faces (weaker)") gets its rank by effect
        seen[names[c]] = seen.get(names[c], 0) + 1
    for name, count in seen.items():
        if count > 1:
            for i, c in enumerate([c for c in clusters if names[c] == name], start=1):
                names[c] = f"{name} {i}"
    rows = [{"cluster": c, "n_vertices": None if n_vertices is None else int(n_vertices.get(c, 0)),
             "description": names[c], "enrichment": enrich[c]} for c in clusters]
    return pd.DataFrame(rows, columns=["cluster", "n_vertices", "description", "enrichment"])


def cluster_recovery(labels: np.ndarray, planted: Sequence | np.ndarray) -> float:
    """Adjusted Rand index between cluster ``labels`` (V,) and ``planted`` regions (V,).

    Vertices without a planted region (None, NaN, "", -1) or without a cluster
    (label < 0) are ignored. Planted values may be names or integer codes.
    """
    from sklearn.metrics import adjusted_rand_score

    lab = np.asarray(labels)
    pl = pd.Series(list(planted) if not isinstance(planted, np.ndarray) else planted)
    if lab.shape != (len(pl),):
        raise BrainVizDataError("planted", f"expected {lab.shape[0] if lab.ndim == 1 else lab.shape} values, got {len(pl)}")
    known = ~pl.isna().to_numpy() & ~pl.astype(str).isin(["", "-1", "None"]).to_numpy() & (lab >= 0)
    if known.sum() < 2:
        raise BrainVizDataError("planted", "fewer than 2 vertices have both a planted region and a cluster")
    return float(adjusted_rand_score(pl[known].astype(str).to_numpy(), lab[known]))


def top_image_precision(top_keys: Mapping[int, Sequence[str]] | Sequence[str], tag_scores: pd.DataFrame,
                        category: str, *, threshold: float = 0.5) -> dict[int, float] | float:
    """Fraction of top images whose ``category`` score is > ``threshold``.

    ``top_keys``: one list of image keys (returns a float) or cluster -> list
    (returns cluster -> float; take the max to score "is there a faces cluster").
    """
    if category not in tag_scores.columns:
        raise BrainVizDataError("category", f"{category!r} is not a tag column ({list(tag_scores.columns)})")
    if isinstance(top_keys, Mapping):
        return {c: top_image_precision(keys, tag_scores, category, threshold=threshold) for c, keys in top_keys.items()}
    keys = [str(k) for k in top_keys]
    if not keys:
        raise BrainVizDataError("top_keys", "no images")
    return float(_positives(tag_scores[[category]], keys, threshold, "top_keys")[category].mean())


# --------------------------------------------------------------------------- which vertices, which k

#: Label codes of vertices that were not clustered, and why.
UNCLUSTERED = {-1: "below the reliability threshold", -2: "outside the clustering scope"}


def reliable_vertices(noise_ceiling: np.ndarray, percentile: float = 75.0,
                      scope: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Vertices to cluster: noise ceiling >= its ``percentile``-th percentile (over the scope).

    Parameters
    ----------
    noise_ceiling : (V,) noise ceiling (any unit; NaN = unknown, never selected).
        It must come from training data (repeats of training images) or the dataset,
        never from the test images that score the encoders.
    percentile : 0..100; 0 keeps every vertex with a finite noise ceiling.
    scope : optional (V,) bool; vertices outside it are never selected.

    Returns
    -------
    (codes (V,) int8: 0 = clustered, -1 below the threshold, -2 outside the scope;
    threshold: the noise-ceiling value at that percentile).
    """
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    if nc.ndim != 1:
        raise BrainVizDataError("noise_ceiling", f"expected a 1-D array, got shape {nc.shape}")
    if not 0 <= percentile < 100:
        raise BrainVizDataError("percentile", f"expected 0 <= percentile < 100, got {percentile}")
    inside = np.ones(len(nc), bool) if scope is None else np.asarray(scope, bool)
    if inside.shape != nc.shape:
        raise BrainVizDataError("scope", f"expected shape {nc.shape}, got {inside.shape}")
    ok = inside & np.isfinite(nc)
    if not ok.any():
        raise BrainVizDataError("noise_ceiling", "no vertex of the scope has a finite noise ceiling")
    thr = float(np.percentile(nc[ok], percentile))
    codes = np.full(len(nc), -2, np.int8)
    codes[inside] = -1
    codes[ok & (nc >= thr)] = 0
    return codes, thr


def kmeans_threads():
    """``with``: scikit-learn's k-means on one thread (process-wide OpenMP / BLAS limit).

    The clusterings here are small (a few thousand vertices x 256 dimensions), and
    OpenMP's two threads cost more than they give: 16 fits of the demo's stability
    curve took 1.81 s with 2 threads, 0.77 s with 1 and 0.57 s as two 1-thread jobs
    side by side (2-core machine; the labels are identical)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def stability_curve(embeddings: np.ndarray, ks: Sequence[int], seed: int = 0, *, n_boot: int = 10,
                    fraction: float = 0.8, normalize: str | None = "l2", n_init: int = 3,
                    n_jobs: int = 1) -> pd.DataFrame:
    """Stability of k-means for each k, without any ground truth (Lange et al. 2004 style).

    For each of ``n_boot`` rounds two random subsamples of ``fraction`` of the
    vertices (V, E) are clustered independently; each fit labels every vertex
    (nearest centroid) and the adjusted Rand index of the two labelings is the
    round's agreement. Returns a DataFrame with columns k, stability (mean ARI),
    stability_sd, n_boot. Deterministic given ``seed`` (whatever ``n_jobs``: the
    fits run side by side in ``n_jobs`` threads, :func:`brainviz.jobs.run_jobs`).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from .jobs import run_jobs

    x = normalize_embeddings(embeddings, normalize)
    n = len(x)
    m = max(2, int(round(fraction * n)))
    fits = []  # (name, k, subsample indices, random state), drawn in one fixed order
    for k in ks:
        k = int(k)
        if not 2 <= k < m:
            raise BrainVizDataError("k", f"need 2 <= k < {m} (subsample size), got {k}")
        rng = np.random.default_rng([seed, k])
        for b in range(n_boot):
            for j in range(2):
                idx = rng.choice(n, m, replace=False)
                fits.append((f"k={k} round {b} fit {j}", k, idx, int(rng.integers(2**31 - 1))))

    def fit(k: int, idx: np.ndarray, state: int) -> np.ndarray:
        return KMeans(n_clusters=k, n_init=n_init, random_state=state).fit(x[idx]).predict(x)

    with kmeans_threads():
        labels = run_jobs([(name, lambda k=k, idx=idx, st=st: fit(k, idx, st)) for name, k, idx, st in fits],
                          n_jobs, describe=False)
    rows = []
    for k in ks:
        aris = [adjusted_rand_score(labels[f"k={int(k)} round {b} fit 0"], labels[f"k={int(k)} round {b} fit 1"])
                for b in range(n_boot)]
        rows.append({"k": int(k), "stability": float(np.mean(aris)), "stability_sd": float(np.std(aris)),
                     "n_boot": int(n_boot)})
    return pd.DataFrame(rows)


def choose_k(curve: pd.DataFrame, min_stability: float = 0.75) -> int:
    """The largest k whose mean bootstrap stability is >= ``min_stability``
    (the most stable k if none is): as many clusters as the data supports reproducibly."""
    if curve.empty:
        raise BrainVizDataError("curve", "empty stability curve")
    ok = curve[curve["stability"] >= min_stability]
    if len(ok):
        return int(ok["k"].max())
    return int(curve.sort_values(["stability", "k"], ascending=[False, True]).iloc[0]["k"])


# --------------------------------------------------------------------------- simulation checks (demo brain)

def recovery_scores(labels: np.ndarray, planted: Sequence | np.ndarray,
                    regions: Sequence[str]) -> dict[str, float]:
    """How well clusters recover planted category regions (SIMULATION CHECK, demo brain only).

    labels (V,) cluster labels (< 0 = not clustered); planted (V,) region name per vertex;
    regions: the category regions scored (e.g. faces, bodies, food, words,
    places-indoor, places-outdoor). Among the vertices of those regions:
    ``coverage`` = share that was clustered; over the clustered ones ``ari``
    (adjusted Rand index of clusters vs regions), ``homogeneity`` (each cluster
    holds one region) and ``completeness`` (each region falls in one cluster);
    ``n_region`` and ``n_scored`` vertex counts. NaN scores when < 2 vertices are scored.
    """
    from sklearn.metrics import adjusted_rand_score, homogeneity_completeness_v_measure

    lab = np.asarray(labels)
    pl = np.asarray(planted, dtype=object)
    if lab.shape != pl.shape or lab.ndim != 1:
        raise BrainVizDataError("planted", f"expected shape {lab.shape}, got {pl.shape}")
    in_region = np.isin(pl.astype(str), [str(r) for r in regions])
    scored = in_region & (lab >= 0)
    out = {"n_region": int(in_region.sum()), "n_scored": int(scored.sum()),
           "coverage": float(scored.sum() / in_region.sum()) if in_region.any() else float("nan")}
    if scored.sum() < 2:
        out.update(ari=float("nan"), homogeneity=float("nan"), completeness=float("nan"))
        return out
    truth, pred = pl[scored].astype(str), lab[scored]
    h, c, _ = homogeneity_completeness_v_measure(truth, pred)
    out.update(ari=float(adjusted_rand_score(truth, pred)), homogeneity=float(h), completeness=float(c))
    return out


def reference_ari(responses: Sequence[np.ndarray], planted: Sequence[np.ndarray], k: int,
                  regions: Sequence[str], seed: int = 0) -> float:
    """A yardstick for the embeddings' category-region ARI (SIMULATION CHECK): the same vertices
    clustered with the same k on response profiles instead of embeddings.

    Parameters
    ----------
    responses : per subject, (n_images, V_s) responses of that subject's clustered vertices to the
        SAME images (same rows in every subject), e.g. measured, predicted or noise-free ones;
        z-scored per vertex here.
    planted : per subject, (V_s,) planted region names of those vertices.
    k : number of clusters (the scope's chosen k); ``regions``: the category regions scored.

    Returns
    -------
    ARI of k-means (:func:`kmeans_clusters`, no normalisation after the z-scoring) over ``regions``
    (:func:`recovery_scores`); NaN when there are too few vertices or images.
    """
    if len(responses) != len(planted) or not len(responses):
        raise BrainVizDataError("responses", "need one response matrix per planted array, at least one")
    n_img = {int(np.shape(r)[0]) for r in responses}
    if len(n_img) != 1:
        raise BrainVizDataError("responses", f"every subject needs the same images (rows), got {sorted(n_img)}")
    x = np.concatenate([_zscore(np.asarray(r, np.float32)).T for r in responses])
    pl = np.concatenate([np.asarray(p, dtype=object) for p in planted])
    if len(pl) != len(x):
        raise BrainVizDataError("planted", f"{len(pl)} labels for {len(x)} vertices")
    if len(x) <= k or n_img.pop() < 2:
        return float("nan")
    labels = kmeans_clusters(np.nan_to_num(x), k, seed, normalize=None)
    return recovery_scores(labels, pl, regions)["ari"]


def position_score(labels: np.ndarray, positions: np.ndarray, mask: np.ndarray | None = None,
                   n_perm: int = 200, seed: int = 0) -> dict[str, float]:
    """Do clusters follow visual-field position? (SIMULATION CHECK for early visual cortex.)

    labels (V,) (< 0 = not clustered), positions (V, d) e.g. planted pRF centres (x, y),
    mask (V,) the vertices judged (e.g. planted early visual cortex). Over the judged,
    clustered vertices with finite positions: ``eta2`` = share of the position variance
    explained by the clusters (1 - within-cluster / total sum of squares), ``null_eta2`` =
    its mean under label permutation (what unrelated clusters of the same sizes give),
    ``p_value`` (permutation), ``n_clusters`` touched and ``n`` vertices.
    """
    lab = np.asarray(labels)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 1:
        pos = pos[:, None]
    m = np.ones(len(lab), bool) if mask is None else np.asarray(mask, bool)
    if pos.shape[0] != len(lab) or m.shape != lab.shape:
        raise BrainVizDataError("positions", f"expected {len(lab)} rows, got {pos.shape} / mask {m.shape}")
    keep = m & (lab >= 0) & np.isfinite(pos).all(axis=1)
    if keep.sum() < 3:
        return {"eta2": float("nan"), "null_eta2": float("nan"), "p_value": float("nan"),
                "n_clusters": 0, "n": int(keep.sum())}
    y, g = pos[keep], lab[keep]

    def eta2(groups: np.ndarray) -> float:
        total = ((y - y.mean(0)) ** 2).sum()
        within = 0.0
        for c in np.unique(groups):
            yc = y[groups == c]
            within += ((yc - yc.mean(0)) ** 2).sum()
        return float(1.0 - within / total) if total > 0 else float("nan")

    obs = eta2(g)
    rng = np.random.default_rng(seed)
    null = np.array([eta2(rng.permutation(g)) for _ in range(n_perm)])
    return {"eta2": obs, "null_eta2": float(null.mean()), "p_value": float((1 + (null >= obs).sum()) / (n_perm + 1)),
            "n_clusters": int(len(np.unique(g))), "n": int(keep.sum())}


def cluster_selected(embeddings: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray], k: int, seed: int = 0,
                     *, normalize: str | None = "l2") -> dict[str, np.ndarray]:
    """k-means over the selected vertices (``codes == 0``) of one or several subjects jointly.

    embeddings: subject -> (V_s, E); codes: subject -> (V_s,) from :func:`reliable_vertices`.
    Returns subject -> (V_s,) int32 labels: 0..k-1 for clustered vertices (one shared
    label space), the code (< 0, see :data:`UNCLUSTERED`) for the others.
    """
    rows, sizes = [], {}
    for s, e in embeddings.items():
        c = np.asarray(codes[s])
        x = _matrix(e, f"embeddings[{s}]")
        if c.shape != (len(x),):
            raise BrainVizDataError(f"codes[{s}]", f"expected shape ({len(x)},), got {c.shape}")
        rows.append(x[c == 0])
        sizes[s] = int((c == 0).sum())
    stacked = np.concatenate(rows)
    if len(stacked) == 0:
        raise BrainVizDataError("codes", "no vertex was selected for clustering")
    labels = _split(kmeans_clusters(stacked, k, seed, normalize=normalize), sizes)
    out = {}
    for s in embeddings:
        c = np.asarray(codes[s]).astype(np.int32)
        full = c.copy()
        full[c == 0] = labels[s]
        out[s] = full
    return out


# --------------------------------------------------------------------------- what is clustered: profiles

#: What the clusters are computed on (the Voxel-clusters page's choice):
#: 'embeddings' the encoder's learned voxel embeddings (report 004), 'measured' each vertex's measured
#: responses to the images every subject of the scope saw, 'combined' the embeddings and a response profile
#: (measured where the subject saw the image, the encoder's prediction where it did not) side by side.
PROFILES = ("embeddings", "measured", "combined")


def response_profiles(measured: Mapping[str, tuple[np.ndarray, Sequence[str]]], keys: Sequence[str],
                      predicted: Mapping[str, tuple[np.ndarray, Sequence[str]]] | None = None,
                      weights: Mapping[str, np.ndarray] | None = None, *, zscore: bool = True) -> dict[str, np.ndarray]:
    """Each vertex's response profile over ONE list of images, per subject.

    Parameters
    ----------
    measured : subject -> ((n_s, V_s) measured responses, (n_s,) image keys) of the images the subject saw;
        z-scored per vertex over those images here.
    keys : (n,) the images of the profile, the same for every subject.
    predicted : optional subject -> ((n_p, V_s) encoder predictions, (n_p,) image keys); z-scored per vertex
        over those images. Used for the images of ``keys`` the subject did not see.
    weights : optional subject -> (V_s,) how well the encoder predicts each vertex (Pearson r between
        predicted and measured responses); a prediction enters as ``r x z(prediction)``, the least-squares
        estimate of the z-scored measured response from the prediction (1 when not given).
    zscore : False: ``measured`` and ``predicted`` are z-scored already (each vertex over all the subject's
        images, or all its predicted images), so they may hold only the rows of the profile's images (what
        the pipeline keeps of an NSD-sized subject); True: z-scored here over the rows given.

    Returns
    -------
    subject -> (V_s, n) float32 profiles: the z-scored measured response where the subject saw the image,
    else the weighted z-scored prediction. Raises when an image is neither seen nor predicted.
    """
    keys = [str(k) for k in keys]
    out = {}
    for s, (y, seen) in measured.items():
        y = _matrix(y, f"measured[{s}]")
        y = _zscore(y) if zscore else y
        if len(seen) != len(y):
            raise BrainVizDataError(f"measured[{s}]", f"{len(seen)} keys but {len(y)} response rows")
        row = {str(k): i for i, k in enumerate(seen)}
        prof = np.zeros((y.shape[1], len(keys)), np.float32)
        have = np.array([k in row for k in keys], bool)
        prof[:, have] = y[[row[k] for k in np.asarray(keys, dtype=object)[have]]].T
        if not have.all():
            if predicted is None or s not in predicted:
                raise BrainVizDataError(f"predicted[{s}]", f"{int((~have).sum())} images of the profile were not "
                                        "seen by this subject and no predictions were given")
            p, pkeys = predicted[s]
            p = _matrix(p, f"predicted[{s}]")
            p = _zscore(p) if zscore else p
            prow = {str(k): i for i, k in enumerate(pkeys)}
            missing = [k for k in np.asarray(keys, dtype=object)[~have] if k not in prow]
            if missing:
                raise BrainVizDataError(f"predicted[{s}]", f"no prediction for images {missing[:5]}")
            if p.shape[1] != y.shape[1]:
                raise BrainVizDataError(f"predicted[{s}]", f"{p.shape[1]} vertices, measured has {y.shape[1]}")
            w = np.ones(y.shape[1], np.float32) if weights is None else np.asarray(weights[s], np.float32)
            if w.shape != (y.shape[1],):
                raise BrainVizDataError(f"weights[{s}]", f"expected shape ({y.shape[1]},), got {w.shape}")
            prof[:, ~have] = (p[[prow[k] for k in np.asarray(keys, dtype=object)[~have]]] * w).T
        out[s] = prof
    return out


def profile_block(profiles: np.ndarray, n_components: int | None = 50, seed: int = 0) -> np.ndarray:
    """(V, n) response profiles -> (V, d) unit-norm rows: each row centred (correlation geometry), reduced to
    its first ``n_components`` principal components over the vertices (None or n <= n_components: not
    reduced), then L2-normalised, so a block of any width weighs the same as the unit-norm embeddings."""
    x = _matrix(profiles, "profiles").astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    if n_components is not None and min(x.shape) > n_components:
        from sklearn.decomposition import PCA

        # exact for up to 2,000 images: the eigenvectors of the (images x images) covariance give the same
        # components as the full SVD (to ~1e-13 relative) in a third to a tenth of the time (demo brain: the
        # 15 profiles of the clusters step took 27 s with the full SVD)
        solver = "covariance_eigh" if min(x.shape) <= 2000 else "randomized"
        x = PCA(n_components=int(n_components), svd_solver=solver, random_state=seed).fit_transform(x)
    return normalize_embeddings(x.astype(np.float32), "l2")


def combine_blocks(*blocks: np.ndarray) -> np.ndarray:
    """Blocks (V, d_i) of unit-norm rows side by side -> (V, sum d_i), each block weighing the same
    (the result's rows have norm sqrt(number of blocks); k-means' L2 normalisation keeps the balance)."""
    mats = [normalize_embeddings(b, "l2") for b in blocks]
    if len({len(m) for m in mats}) != 1:
        raise BrainVizDataError("blocks", f"every block needs the same vertices (rows), got {[len(m) for m in mats]}")
    return np.hstack(mats)


# --------------------------------------------------------------------------- spatial regularisation on the cortex

#: Vertices within this geodesic distance (mm, along the fsaverage5 midthickness mesh) are neighbours.
NEIGHBOUR_RADIUS_MM = 5.0


def cortical_neighbours(hemi: Sequence[str] | np.ndarray, fsaverage5_index: np.ndarray, *,
                        radius: float = NEIGHBOUR_RADIUS_MM,
                        graphs: Mapping[str, "object"] | None = None) -> "object":
    """Which of a subject's vertices are neighbours on the cortex.

    Parameters
    ----------
    hemi : (V,) 'lh' / 'rh' of each vertex.
    fsaverage5_index : (V,) the vertex on fsaverage5 (-1: an fsaverage vertex between fsaverage5's,
        which gets no neighbours: there is no fsaverage mesh offline).
    radius : neighbours lie within this graph-geodesic distance (mm); paths may run through any mesh
        vertex, clustered or not.
    graphs : hemi -> (N, N) sparse mesh graph with edge lengths in mm (default: the fsaverage5 midthickness
        mesh, :func:`brainviz.data.surfaces.mesh_graph`); a hand-made mesh in tests.

    Returns
    -------
    (V, V) scipy.sparse CSR, symmetric, 1 where two different vertices of the same hemisphere are within
    ``radius``, else 0.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    h = np.asarray(hemi).astype(str)
    idx = np.asarray(fsaverage5_index, np.int64)
    if idx.shape != h.shape or h.ndim != 1:
        raise BrainVizDataError("fsaverage5_index", f"expected shape {h.shape} like hemi, got {idx.shape}")
    if not radius > 0:
        raise BrainVizDataError("radius", f"expected a positive distance in mm, got {radius}")
    rows, cols = [], []
    for hh in np.unique(h):
        on = np.flatnonzero((h == hh) & (idx >= 0))
        if not len(on):
            continue
        if graphs is not None:
            g = graphs[hh]
        else:
            from .data.surfaces import mesh_graph

            g = mesh_graph(hh)
        if idx[on].max() >= g.shape[0]:
            raise BrainVizDataError("fsaverage5_index", f"index {idx[on].max()} outside the {hh} mesh ({g.shape[0]})")
        for start in range(0, len(on), 1024):  # (chunk, N) distances at a time
            part = on[start:start + 1024]
            d = dijkstra(g, directed=False, indices=idx[part], limit=radius)[:, idx[on]]
            i, j = np.nonzero(np.isfinite(d) & (d <= radius))
            keep = part[i] != on[j]
            rows.append(part[i][keep])
            cols.append(on[j][keep])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    w = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(h), len(h)))
    return w.maximum(w.T).tocsr()


def smooth_labels(features: np.ndarray, labels: np.ndarray, neighbours, beta: float, *, k: int | None = None,
                  normalize: str | None = "l2", max_iter: int = 30) -> np.ndarray:
    """Spatially regularised cluster labels: a Potts model on the cortex, by iterated conditional modes.

    Starting from ``labels`` (e.g. k-means), each round gives every vertex the cluster c minimising

        ||x_v - mu_c||^2 / D  -  beta x (share of v's neighbours labelled c)

    with the cluster centres mu_c re-estimated from the current labels and D the mean squared distance of
    the vertices to their own centre (so ``beta`` is unit-free: at beta = 1 a vertex whose neighbours all
    agree changes cluster when the other centre is at most one typical within-cluster distance farther).
    Vertices without neighbours keep the nearest centre (plain k-means); beta = 0 is one k-means step.
    Rounds stop when no label changes (at most ``max_iter``).

    Parameters
    ----------
    features : (V, E) what was clustered (normalised as in :func:`kmeans_clusters`).
    labels : (V,) int labels 0..k-1 of every vertex.
    neighbours : (V, V) sparse 0/1 (or weights) from :func:`cortical_neighbours`; block-diagonal over subjects
        when several subjects are clustered together (neighbours never cross subjects or hemispheres).
    beta : strength (>= 0). ``k``: number of clusters (default: labels.max() + 1).

    Returns
    -------
    (V,) int32 labels 0..k-1, ordered by cluster size like :func:`kmeans_clusters`.
    """
    x = normalize_embeddings(features, normalize).astype(np.float64)
    lab = np.asarray(labels).astype(np.int64)
    if lab.shape != (len(x),):
        raise BrainVizDataError("labels", f"expected shape ({len(x)},), got {lab.shape}")
    if (lab < 0).any():
        raise BrainVizDataError("labels", "every vertex needs a cluster (no negative labels)")
    if not beta >= 0:
        raise BrainVizDataError("beta", f"expected beta >= 0, got {beta}")
    if neighbours.shape != (len(x), len(x)):
        raise BrainVizDataError("neighbours", f"expected shape ({len(x)}, {len(x)}), got {neighbours.shape}")
    k = int(lab.max()) + 1 if k is None else int(k)
    w = neighbours.tocsr().astype(np.float64)
    degree = np.asarray(w.sum(axis=1)).ravel()
    inv_degree = np.where(degree > 0, 1.0 / np.where(degree > 0, degree, 1), 0.0)[:, None]
    sq = (x ** 2).sum(axis=1)[:, None]
    rows = np.arange(len(x))
    for _ in range(max_iter):
        onehot = np.zeros((len(x), k))
        onehot[rows, lab] = 1.0
        size = onehot.sum(axis=0)
        centres = (onehot.T @ x) / np.maximum(size, 1)[:, None]
        dist = np.maximum(sq - 2 * x @ centres.T + (centres ** 2).sum(axis=1)[None, :], 0.0)
        dist[:, size == 0] = np.inf
        scale = dist[rows, lab].mean()
        cost = dist / (scale if scale > 0 else 1.0) - beta * (w @ onehot) * inv_degree
        new = np.argmin(cost, axis=1)
        if (new == lab).all():
            break
        lab = new
    return _relabel_by_size(lab, k)
