"""The clusters' top images and pooled means computed one subject at a time in column blocks
(brainviz.pipeline.analyses.cluster_images) equal the in-memory ones (brainviz.clusters), and the predicted
images respect their bound (issue 29)."""
import numpy as np
import pandas as pd
import pytest

from brainviz import clusters as cl
from brainviz.data.streaming import RowConcat, RowSubset, read_cols
from brainviz.metrics import zscore
from brainviz.pipeline.analyses import cluster_images as ci


def _subjects(seed=0):
    """Three subjects with overlapping images (some seen by two or three, some once), tied images (identical rows:
    the same image content under two keys) and labelings with a missing cluster and unclustered vertices."""
    rng = np.random.default_rng(seed)
    shared = [f"img{i:03d}" for i in range(12)]
    data = {}
    for j, (n_own, n_vert) in enumerate([(30, 41), (25, 37), (20, 52)]):
        own = [f"s{j}_{i:03d}" for i in range(n_own)]
        keys = own[:10] + shared[j * 2:j * 2 + 8] + own[10:]
        y = rng.standard_normal((len(keys), n_vert)).astype(np.float32) * rng.uniform(0.5, 3, n_vert).astype(np.float32)
        y[3] = y.max(axis=0) + 1  # the top image of every cluster, tied with two others (lower index / key wins)
        y[5] = y[3]
        y[-1] = y[3]
        labs = {}
        for k in (3, 5):
            lab = rng.integers(-1, k, n_vert).astype(np.int32)
            if j == 1:
                lab[lab == k - 1] = 0  # this subject lacks one cluster
            labs[k] = lab
        data[f"subj{j}"] = (y, keys, labs)
    return data


@pytest.mark.parametrize("max_bytes", [10**9, 600])  # one block, and blocks of a few columns
def test_streamed_top_images_and_pooled_means_equal_in_memory(max_bytes):
    data = _subjects()
    tagged = [f"img{i:03d}" for i in range(0, 12, 2)] + ["s0_003", "s2_007"]
    pooled = {k: ci.PooledMeans({s: keys for s, (_, keys, _) in data.items()}, tagged, k_top=4) for k in (3, 5)}
    for s, (y, keys, labs) in data.items():
        half = y.shape[1] // 2
        lazy = [RowConcat([y[:12, :half], y[:12, half:]]), RowSubset(y, np.arange(12, len(y)))]  # as ctx.responses
        lab = ci.Labelings(labs)
        means = ci.labeling_means(ci.zscored_blocks(lazy, y.shape[1], max_bytes=max_bytes), lab, len(y))
        for k, (values, m) in means.items():
            want = cl.top_images(y, labs[k], 4, keys=keys, zscore=True)
            got = cl.top_images_of_means(values, m, 4, keys=keys)
            pd.testing.assert_frame_equal(got.drop(columns="score"), want.drop(columns="score"))
            assert (want["rank"] == 1).any() and set(want.image_index[want["rank"] <= 3]) == {3, 5, len(y) - 1}
            np.testing.assert_allclose(got.score, want.score, rtol=1e-5, atol=1e-6)
            pooled[k].add(keys, values, m)
    for k in (3, 5):
        resp = {s: (y, keys) for s, (y, keys, _) in data.items()}
        labels = {s: labs[k] for s, (_, _, labs) in data.items()}
        want = cl.pooled_cluster_means(resp, labels, zscore=True)
        got = pooled[k].means()
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got, want.loc[got.index].astype(np.float32), check_exact=False, rtol=1e-5,
                                      atol=1e-6, check_dtype=False, check_column_type=False)
        twice = {key for key in want.index if sum(key in keys for _, keys, _ in data.values()) > 1}
        assert set(got.index) == twice | set(tagged)  # kept whole: images seen twice and the tagged ones
        assert twice and set(want.index) - set(got.index)
        want_top = cl.pooled_top_images(resp, labels, 4, zscore=True)
        assert {"s0_003", "s0_005", "s0_029"} & set(want_top.image_key)  # the tied images are ranked
        got_top = pooled[k].top()
        pd.testing.assert_frame_equal(got_top[["cluster", "rank", "image_key"]], want_top[["cluster", "rank", "image_key"]])
        np.testing.assert_allclose(got_top.score, want_top.score, rtol=1e-5, atol=1e-6)
        # the names read the tagged images' rows alone: the same names as from every image
        tags = pd.DataFrame({"faces": np.linspace(0, 1, len(want)), "food": np.cos(np.arange(len(want))) ** 2},
                            index=want.index)
        tags.loc[~tags.index.isin(tagged)] = np.nan
        tags.loc[tagged[:3], "faces"] = 1.0
        n1 = cl.name_clusters(want, want_top, tags)
        n2 = cl.name_clusters(got, got_top, tags)
        assert n1.description.tolist() == n2.description.tolist()


def test_column_blocks_z_score_like_the_whole_array():
    """Each block's z-scores are the whole array's (bit for bit: a column's statistics do not depend on its
    neighbours), the blocks cover every column and hold at least two."""
    rng = np.random.default_rng(1)
    y = (rng.standard_normal((57, 23)) * 4 + 2).astype(np.float32)
    y[:, 4] = 3.0  # a constant vertex: 0 throughout
    whole = zscore(y)
    edges = ci.column_blocks(57, 23, max_bytes=57 * 4 * 3)
    assert edges[0][0] == 0 and edges[-1][1] == 23 and all(b - a >= 2 for a, b in edges)
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(edges[:-1], edges[1:]))
    got = np.concatenate([z for _, _, z in ci.zscored_blocks([y[:30], y[30:]], 23, edges=edges)], axis=1)
    np.testing.assert_array_equal(got, whole)
    np.testing.assert_array_equal(read_cols(RowSubset(RowConcat([y[:, :10], y[:, 10:]]), [5, 2, 40]), 8, 14),
                                  y[[5, 2, 40], 8:14])


def test_predicted_images_respect_the_bound_profile_and_tagged_first():
    main = [f"k{i:04d}" for i in range(500)]
    required = ["k0499", "k0003", "k0250"]
    tagged = main[100:140]
    fitted = main[200:400]
    got = ci.predicted_keys(main, required, tagged, fitted, max_images=80, seed=0)
    assert len(got) == 80 and len(set(got)) == 80
    assert got == [k for k in main if k in set(got)]  # in the order of main
    assert set(required) <= set(got) and set(tagged) <= set(got)
    assert len(set(got) & set(fitted) - set(required)) >= 80 // 4  # a quarter of the bound for the accuracy (at least)
    assert len(set(got) - set(required) - set(tagged)) == 80 - 3 - 40  # then the rest
    assert got == ci.predicted_keys(main, required, tagged, fitted, max_images=80, seed=0)  # seeded
    assert ci.predicted_keys(main, required, tagged, fitted, max_images=500) == main  # all when they fit
    few = ci.predicted_keys(main, required, tagged, fitted, max_images=20)
    assert set(required) <= set(few) and len(few) == 20 and set(few) - set(required) <= set(tagged)
    assert set(ci.predicted_keys(main, main[:30], tagged, fitted, max_images=10)) == set(main[:30])  # required win
