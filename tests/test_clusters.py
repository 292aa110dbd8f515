"""Voxel-embedding clusters, top images, descriptions (report 004, section 5)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainviz import clusters as C
from brainviz.errors import BrainVizDataError


def _planted(seed: int, n_per: int = 60, k: int = 4, e: int = 16, noise: float = 0.25):
    """Embeddings with k planted clusters (random directions, random gains) + 20 unlabeled vertices."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).standard_normal((k, e))  # shared across "subjects"
    planted = np.repeat(np.arange(k), n_per)
    emb = centers[planted] + noise * rng.standard_normal((len(planted), e))
    emb *= rng.uniform(0.2, 5.0, (len(planted), 1))  # per-vertex gain: L2 normalization removes it
    extra = rng.standard_normal((20, e))
    names = np.array(["faces", "food", "words", "places"])[planted].astype(object)
    return np.vstack([emb, extra]).astype(np.float32), np.concatenate([names, [None] * 20])


def test_cluster_recovery_planted():
    emb, planted = _planted(0)
    labels = C.kmeans_clusters(emb, 4, seed=0)
    assert labels.shape == (len(emb),) and labels.dtype == np.int32
    assert C.cluster_recovery(labels, planted) > 0.9
    # deterministic given the seed; labels ordered by size
    np.testing.assert_array_equal(labels, C.kmeans_clusters(emb, 4, seed=0))
    sizes = np.bincount(labels)
    assert (np.diff(sizes) <= 0).all()


def test_joint_clusters_shared_across_subjects():
    a, pa = _planted(1)
    b, pb = _planted(2, n_per=40)
    joint = C.joint_kmeans({"subj01": a, "subj02": b}, 4, seed=0)
    assert joint["subj01"].shape == (len(a),) and joint["subj02"].shape == (len(b),)
    both = np.concatenate([joint["subj01"], joint["subj02"]])
    assert C.cluster_recovery(both, np.concatenate([pa, pb])) > 0.9
    sweep = C.kmeans_sweep(a, [2, 3], seed=0)
    assert sorted(sweep) == [2, 3] and sweep[3].max() == 2


def test_sub_clusters_inside_mask():
    emb, planted = _planted(3, k=4)
    mask = np.isin(planted, ["places", "words"])
    sub = C.sub_clusters(emb, mask, k=2, seed=0)
    assert (sub[~mask] == -1).all() and set(sub[mask]) == {0, 1}
    assert C.cluster_recovery(sub, np.where(mask, planted, None)) > 0.9


def test_cluster_recovery_ignores_unlabeled():
    labels = np.array([0, 0, 1, 1, -1, 2])
    planted = np.array([5, 5, 7, 7, 7, -1])
    assert C.cluster_recovery(labels, planted) == pytest.approx(1.0)
    with pytest.raises(BrainVizDataError):
        C.cluster_recovery(labels, planted[:3])


def test_top_images_known_matrix():
    # 5 images x 4 vertices; clusters {0: vertices 0,1}, {1: vertex 2}; vertex 3 unclustered
    r = np.array([[1, 3, 0, 9],
                  [5, 5, 1, 9],
                  [0, 0, 7, 9],
                  [2, 2, 2, 9],
                  [4, 6, 7, 9]], np.float32)
    labels = np.array([0, 0, 1, -1])
    keys = [f"nsd-{i:05d}" for i in range(5)]
    top = C.top_images(r, labels, k_top=3, keys=keys, zscore=False)
    assert list(top.columns) == ["cluster", "rank", "image_index", "image_key", "score"]
    c0 = top[top.cluster == 0]
    assert c0["image_index"].tolist() == [1, 4, 0] and c0["score"].tolist() == [5.0, 5.0, 2.0]  # 0 ties 3
    c1 = top[top.cluster == 1]
    assert c1["image_index"].tolist() == [2, 4, 3]  # tie 7 vs 7 -> lower index first
    assert c1["image_key"].tolist() == [keys[2], keys[4], keys[3]] and c1["rank"].tolist() == [1, 2, 3]
    # z-scoring makes every vertex weigh the same
    zr = C.top_images(r * np.array([1, 100, 1, 1], np.float32), labels, k_top=1, zscore=True)
    zr_plain = C.top_images(r, labels, k_top=1, zscore=True)
    assert zr["image_index"].tolist() == zr_plain["image_index"].tolist()
    with pytest.raises(BrainVizDataError):
        C.top_images(r, labels[:3])


def _tags(n: int = 100, n_faces: int = 20, n_people: int = 30) -> pd.DataFrame:
    keys = [f"nsd-{i:05d}" for i in range(n)]
    df = pd.DataFrame(0.0, index=keys, columns=["faces", "food", "people", "outdoor"])
    df.iloc[:n_faces, 0] = 0.9
    df.iloc[:n_people, 2] = 0.8  # people overlap faces, higher base rate
    df.iloc[50:60, 1] = 0.7
    return df


def test_describe_cluster_faces():
    tags = _tags()
    top = list(tags.index[:9]) + [tags.index[70]]  # 9 faces (also people) + 1 other
    desc, enr = C.describe_cluster(top, tags)
    assert desc == "faces 9/10"
    assert enr["faces"]["count"] == 9 and enr["faces"]["base_rate"] == pytest.approx(0.2)
    assert enr["faces"]["ratio"] == pytest.approx(4.5) and enr["faces"]["p_value"] < enr["people"]["p_value"]
    desc, _ = C.describe_cluster(list(tags.index[80:90]), tags)
    assert desc == "no enriched category"
    with pytest.raises(BrainVizDataError):
        C.describe_cluster(["nsd-99999"], tags)
    top_df = pd.DataFrame({"cluster": [0] * 10 + [1] * 10, "rank": list(range(1, 11)) * 2,
                           "image_key": top + list(tags.index[50:60])})
    out = C.describe_top_images(top_df, tags, n_vertices={0: 12, 1: 3})
    assert out["description"].tolist() == ["faces 9/10", "food 10/10"] and out["n_vertices"].tolist() == [12, 3]


def test_top_image_precision():
    tags = _tags()
    top = {0: list(tags.index[:9]) + [tags.index[70]], 1: list(tags.index[50:60])}
    assert C.top_image_precision(top, tags, "faces") == {0: pytest.approx(0.9), 1: 0.0}
    assert C.top_image_precision(top[1], tags, "food") == 1.0
    with pytest.raises(BrainVizDataError):
        C.top_image_precision(top, tags, "aliens")


def test_embedding_map_pca_and_bad_input():
    emb, _ = _planted(4)
    xy = C.embedding_map(emb, seed=0, method="pca")
    assert xy.shape == (len(emb), 2) and xy.dtype == np.float32
    with pytest.raises(BrainVizDataError):
        C.embedding_map(emb, method="tsne")
    with pytest.raises(BrainVizDataError):
        C.kmeans_clusters(np.full((5, 3), np.nan), 2)
    with pytest.raises(BrainVizDataError):
        C.kmeans_clusters(emb, 0)


def test_embedding_map_umap_deterministic():
    emb, planted = _planted(5, n_per=30)
    xy = C.embedding_map(emb, seed=7)
    assert xy.shape == (len(emb), 2) and np.isfinite(xy).all()
    np.testing.assert_array_equal(xy, C.embedding_map(emb, seed=7))
    # the map keeps the planted clusters apart: k-means on the 2-D map recovers them
    assert C.cluster_recovery(C.kmeans_clusters(xy, 4, seed=0, normalize=None), planted) > 0.9
    joint = C.joint_embedding_map({"a": emb[:50], "b": emb[50:]}, seed=7)
    assert joint["a"].shape == (50, 2) and joint["b"].shape == (len(emb) - 50, 2)
