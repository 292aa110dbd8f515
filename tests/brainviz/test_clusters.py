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


# ---- reliable-vertex clustering, k by stability, recovery scores (issue 10) --------------------

def test_reliable_vertices_threshold_and_scope():
    nc = np.arange(100, dtype=float)
    nc[5] = np.nan
    codes, thr = C.reliable_vertices(nc, 75)
    assert thr == pytest.approx(np.percentile(nc[np.isfinite(nc)], 75))
    assert (codes[nc >= thr] == 0).all() and (codes[(nc < thr) | np.isnan(nc)] == -1).all()
    scope = np.zeros(100, bool)
    scope[50:] = True
    codes, thr = C.reliable_vertices(nc, 50, scope=scope)
    assert (codes[:50] == -2).all() and (codes[50:] == np.where(nc[50:] >= 74.5, 0, -1)).all()
    assert set(C.UNCLUSTERED) == {-1, -2}
    with pytest.raises(BrainVizDataError, match="percentile"):
        C.reliable_vertices(nc, 100)


def test_cluster_selected_keeps_codes_and_shares_labels():
    emb, _ = _planted(0)
    emb2, _ = _planted(1)
    codes = {"a": np.zeros(len(emb), np.int8), "b": np.zeros(len(emb2), np.int8)}
    codes["a"][:10] = -1
    codes["b"][-5:] = -2
    lab = C.cluster_selected({"a": emb, "b": emb2}, codes, 4, seed=0)
    assert (lab["a"][:10] == -1).all() and (lab["b"][-5:] == -2).all()
    assert lab["a"][10:].min() >= 0 and lab["a"].max() < 4
    # one label space: the same planted cluster gets the same label in both subjects
    assert lab["a"][60] == lab["b"][60] and lab["a"][130] == lab["b"][130]


def test_stability_picks_the_planted_number_of_clusters():
    """Without ground truth, bootstrap stability is high up to the planted k and drops after it."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((5, 8)) * 4
    x = np.vstack([c + rng.standard_normal((80, 8)) for c in centers])
    curve = C.stability_curve(x, [2, 3, 4, 5, 6, 8], seed=0, n_boot=6, normalize=None)
    assert list(curve.columns) == ["k", "stability", "stability_sd", "n_boot"]
    s = curve.set_index("k")["stability"]
    assert s[5] > 0.9 and s[8] < s[5]
    assert C.choose_k(curve, 0.9) == 5
    # deterministic, also with the fits side by side in two threads
    pd.testing.assert_frame_equal(curve, C.stability_curve(x, [2, 3, 4, 5, 6, 8], seed=0, n_boot=6, normalize=None))
    pd.testing.assert_frame_equal(curve, C.stability_curve(x, [2, 3, 4, 5, 6, 8], seed=0, n_boot=6, normalize=None,
                                                           n_jobs=2))
    # no structure at all: nothing is stable; choose_k falls back to the most stable k
    noise = rng.standard_normal((300, 8))
    flat = C.stability_curve(noise, [4, 8], seed=0, n_boot=4, normalize=None)
    assert flat.stability.max() < 0.9 and C.choose_k(flat, 0.9) in (4, 8)


def test_recovery_scores_on_a_hand_made_labelling():
    planted = np.array(["faces"] * 4 + ["food"] * 4 + ["early"] * 4 + ["mixed"] * 2, dtype=object)
    regions = ["faces", "food"]
    perfect = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 2, 2])
    r = C.recovery_scores(perfect, planted, regions)
    assert r["ari"] == pytest.approx(1) and r["coverage"] == 1 and r["n_region"] == 8
    assert r["homogeneity"] == pytest.approx(1) and r["completeness"] == pytest.approx(1)
    # faces split over two clusters: homogeneous but not complete; two food vertices not clustered
    split = np.array([0, 0, 3, 3, 1, 1, -1, -1, 2, 2, 2, 2, 2, 2])
    r = C.recovery_scores(split, planted, regions)
    assert r["coverage"] == 0.75 and r["n_scored"] == 6
    assert r["homogeneity"] == pytest.approx(1) and r["completeness"] < 1 and r["ari"] < 1
    # faces and food merged: complete but not homogeneous, ARI 0
    merged = np.array([0] * 8 + [1] * 6)
    r = C.recovery_scores(merged, planted, regions)
    assert r["ari"] == pytest.approx(0) and r["completeness"] == pytest.approx(1) and r["homogeneity"] == 0
    # the early / mixed vertices never count
    assert C.recovery_scores(np.r_[perfect[:8], [5] * 6], planted, regions)["ari"] == pytest.approx(1)


def test_position_score_early_visual():
    rng = np.random.default_rng(0)
    pos = rng.uniform(-1, 1, (400, 2))
    by_quadrant = (pos[:, 0] > 0).astype(int) * 2 + (pos[:, 1] > 0).astype(int)
    good = C.position_score(by_quadrant, pos, n_perm=50)
    bad = C.position_score(rng.integers(0, 4, 400), pos, n_perm=50)
    assert good["eta2"] > 0.6 and good["p_value"] < 0.05 and good["n_clusters"] == 4
    assert bad["eta2"] < 0.1 and bad["eta2"] == pytest.approx(bad["null_eta2"], abs=0.05)
    mask = np.zeros(400, bool)
    mask[:100] = True
    assert C.position_score(by_quadrant, pos, mask, n_perm=10)["n"] == 100


def test_pooled_top_images_averages_subjects_who_saw_each_image():
    # two subjects, partly different images; cluster 0 responds to image 'b' in both, 'a' only in subject 1
    y1 = np.array([[5.0, 5.0, 0.0], [4.0, 4.0, 0.0], [0.0, 0.0, 9.0]])  # images a, b, c; vertices 0-1 in cluster 0
    y2 = np.array([[8.0, 1.0], [0.0, 7.0]])  # images b, d; vertex 0 in cluster 0, vertex 1 in cluster 1
    top = C.pooled_top_images({"s1": (y1, ["a", "b", "c"]), "s2": (y2, ["b", "d"])},
                               {"s1": np.array([0, 0, -1]), "s2": np.array([0, 1])}, k_top=2, zscore=False)
    c0 = top[top.cluster == 0].sort_values("rank")
    assert c0.image_key.tolist() == ["b", "a"]  # b: mean over subjects (4, 8) = 6 beats a: 5 (subject 1 only)
    assert c0.score.tolist() == [6.0, 5.0]
    c1 = top[top.cluster == 1].sort_values("rank")
    assert c1.image_key.tolist()[0] == "d" and len(c1) == 2  # only subject 2 has cluster 1: its two images
    with pytest.raises(BrainVizDataError):
        C.pooled_top_images({"s1": (y1, ["a", "b", "c"])}, {"s1": np.array([-1, -1, -1])})


def test_reference_ari_scores_response_profiles():
    """The yardstick clusters z-scored response profiles of several subjects together: profiles that follow the
    regions recover them exactly, profiles of pure noise do not; subjects must share the images."""
    from brainviz.clusters import reference_ari

    rng = np.random.default_rng(0)
    regions = ["faces", "words", "food"]
    proto = rng.normal(size=(60, 3))  # one response profile per region over 60 images
    resp, planted = [], []
    for n in (45, 30):  # two subjects with different vertex counts, same images
        lab = np.repeat(np.arange(3), n // 3)
        resp.append(proto[:, lab] * rng.uniform(0.5, 2, len(lab)) + rng.normal(0, 0.2, (60, len(lab))))
        planted.append(np.array(regions, dtype=object)[lab])
    assert reference_ari(resp, planted, 3, regions) == pytest.approx(1.0)
    noise = [rng.normal(size=r.shape) for r in resp]
    assert abs(reference_ari(noise, planted, 3, regions)) < 0.2
    with pytest.raises(BrainVizDataError, match="same images"):
        reference_ari([resp[0], resp[1][:50]], planted, 3, regions)
    with pytest.raises(BrainVizDataError, match="labels"):
        reference_ari(resp, [planted[0], planted[1][:-1]], 3, regions)


def _named_clusters_case(seed: int = 0):
    """600 tagged images; faces always come with bodies (NSD photos of people), bodies also alone. Clusters:
    0 responds to faces, 1 to bodies (and a little to faces: its top images are all faces too), 2 weakly to
    food amid noise, 3 to food, 4 to food and animals (a sibling of 3),
    5 weakly to noise."""
    rng = np.random.default_rng(seed)
    n = 600
    keys = [f"nsd-{i:05d}" for i in range(n)]
    faces = rng.random(n) < 0.2
    bodies = faces | (rng.random(n) < 0.25)
    food = rng.random(n) < 0.15
    animals = rng.random(n) < 0.2
    tags = pd.DataFrame({"faces": faces, "bodies": bodies, "food": food, "animals": animals,
                         "outdoor": rng.random(n) < 0.5}, index=keys).astype(float)
    noise = lambda s: s * rng.normal(size=n)  # noqa: E731
    means = pd.DataFrame({0: 2.0 * faces + noise(0.7), 1: 2.0 * bodies + 0.8 * faces + noise(0.5),
                          2: noise(1.0) + 0.2 * food,
                          3: 2.0 * food + noise(0.7), 4: 1.6 * food + 1.0 * animals + noise(0.7),
                          5: noise(1.0)}, index=keys)
    top = pd.concat([pd.DataFrame({"cluster": c, "rank": np.arange(1, 11),
                                   "image_key": means[c].sort_values(ascending=False).index[:10]}) for c in means])
    return means, top, tags


def test_name_clusters_says_what_distinguishes_each_cluster():
    means, top, tags = _named_clusters_case()
    out = C.name_clusters(means, top, tags, n_vertices={0: 50, 1: 40, 2: 30, 3: 20, 4: 15, 5: 60})
    names = dict(zip(out["cluster"], out["description"]))
    assert names[0] == "faces" and names[1] == "bodies"  # told apart although their top images carry both tags
    assert names[3] == "food" and names[4] == "food + animals"  # the sibling named by what it adds
    assert names[5] == "mixed / weak 1" and names[2] == "mixed / weak 2"  # nothing stands out; numbered by size
    assert len(set(names.values())) == len(names)
    # the old description (top-image tag counts alone) gives the faces and the bodies clusters one name
    old = C.describe_top_images(top, tags)
    assert old.loc[0, "description"].split()[0] == old.loc[1, "description"].split()[0]
    enr = out.set_index("cluster").loc[1, "enrichment"]
    assert enr["bodies"]["effect"] > 0.5 > enr["faces"]["effect"] and enr["bodies"]["count"] == 10
    # base rates among the tagged images: untagged images (another image set) do not dilute them
    untagged = pd.DataFrame(np.nan, index=[f"vim1-{i:05d}" for i in range(600)], columns=tags.columns)
    again = C.name_clusters(means, top, pd.concat([tags, untagged]), n_vertices={0: 50, 1: 40, 2: 30, 3: 20, 4: 15, 5: 60})
    assert again.set_index("cluster").loc[1, "enrichment"]["bodies"]["base_rate"] == pytest.approx(tags["bodies"].mean())
    assert again["description"].tolist() == out["description"].tolist()
    assert enr["faces"]["effect_others"] == pytest.approx(out.set_index("cluster").loc[0, "enrichment"]["faces"]["effect"],
                                                          abs=1e-3)
    assert 0.3 < enr["_fit"]["r2"] <= 1 and enr["_fit"]["n_images"] == 600
    assert out.set_index("cluster").loc[5, "enrichment"]["_fit"]["r2"] < C.NAME_MIN_R2


def test_tag_effects_and_untagged_images():
    means, _, tags = _named_clusters_case(1)
    effects, r2, n = C.tag_effects(means, tags)
    assert effects.loc[0].idxmax() == "faces" and effects.loc[1].idxmax() == "bodies" and n == 600
    assert r2[0] > 0.5 > r2[5]
    # untagged images (NaN) are left out; too few tagged images: no effects, every cluster mixed / weak
    t = tags.copy()
    t.iloc[:590] = np.nan
    effects, r2, n = C.tag_effects(means, t)
    assert n == 0 and effects.isna().all().all()
    top = pd.DataFrame({"cluster": [0, 1], "rank": [1, 1], "image_key": [tags.index[595]] * 2})
    out = C.name_clusters(means[[0, 1]], top, t)
    assert out["description"].tolist() == ["mixed / weak 1", "mixed / weak 2"]


def test_pooled_cluster_means_average_over_the_subjects_who_saw_an_image():
    y1 = np.array([[1.0, 3.0], [2.0, 2.0]])  # 2 images x 2 vertices
    y2 = np.array([[5.0], [7.0]])
    means = C.pooled_cluster_means({"s1": (y1, ["a", "b"]), "s2": (y2, ["b", "c"])},
                                   {"s1": np.array([0, 0]), "s2": np.array([0])}, zscore=False)
    assert means.index.tolist() == ["a", "b", "c"]
    assert means[0].tolist() == pytest.approx([2.0, (2.0 + 5.0) / 2, 7.0])


def test_shared_work_of_the_descriptions_gives_the_same_results():
    """The clusters step computes base rates once per clustering and the pooled means once per k (issue 27:
    speed); each shortcut must give exactly what the long way gives."""
    tags = _tags()
    top = list(tags.index[:9]) + [tags.index[70]]
    bg = list(tags.index[:80])
    assert C.describe_cluster(top, tags, bg, base_rates=C.base_rates(tags, bg)) == C.describe_cluster(top, tags, bg)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((30, 12)).astype(np.float32)
    lab = np.array([0, 1, -1, 2, 0, -2, 1, 1, -1, 2, 0, -1])
    inside = lab >= 0
    onehot = (lab[inside][:, None] == np.arange(3)[None, :]).astype(np.float64)
    clusters, means = C.cluster_means(y, lab, zscore=False)  # only the clustered vertices are averaged
    np.testing.assert_allclose(means, (y[:, inside] @ onehot) / onehot.sum(axis=0), rtol=1e-6)
    responses = {"s1": (y, [f"i{j}" for j in range(30)])}
    pooled = C.pooled_cluster_means(responses, {"s1": lab}, zscore=False)
    pd.testing.assert_frame_equal(C.pooled_top_images(responses, {"s1": lab}, 5, zscore=False, means=pooled),
                                  C.pooled_top_images(responses, {"s1": lab}, 5, zscore=False))


def test_embedding_map_above_max_fit_places_the_rest_from_fitted_neighbours():
    """At NSD size (316k vertices) UMAP is fitted on a subset and the other vertices are placed from their nearest
    fitted neighbours: every vertex gets a finite position, groups stay apart, the result is deterministic."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 5
    group = np.repeat([0, 1, 2], 100)
    emb = centres[group] + rng.normal(size=(300, 8))
    xy = C.embedding_map(emb, seed=0, max_fit=90, normalize=None)
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    assert np.array_equal(xy, C.embedding_map(emb, seed=0, max_fit=90, normalize=None))
    means = np.stack([xy[group == g].mean(0) for g in range(3)])
    nearest = np.argmin(((xy[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == group).mean() > 0.95  # each vertex lies with its own group
    # the fitted subset is exactly UMAP's fit of those vertices
    fit = np.sort(np.random.default_rng(0).choice(300, size=90, replace=False))
    assert np.allclose(xy[fit], C.embedding_map(emb[fit], seed=0, max_fit=None, normalize=None))
