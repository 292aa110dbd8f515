"""What the clusters are computed on (response profiles, combined blocks) and their spatial
regularisation on the cortex (neighbours on a mesh, Potts smoothing), on hand-made data and meshes."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from brainviz import clusters as C
from brainviz.errors import BrainVizDataError


def _z(a):
    a = np.asarray(a, np.float32)
    return (a - a.mean(0)) / a.std(0)


def test_response_profiles_measured_where_seen_prediction_elsewhere():
    rng = np.random.default_rng(0)
    ya, yb = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))  # subject a saw i0-i2, b saw i1-i3
    pa, pb = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))  # predictions of every image
    keys = ["i0", "i1", "i2", "i3"]
    w = {"a": np.array([0.5, 0.25]), "b": np.array([1.0, 0.0])}
    out = C.response_profiles({"a": (ya, ["i0", "i1", "i2"]), "b": (yb, ["i3", "i1", "i2"])}, keys,
                              predicted={"a": (pa, keys), "b": (pb, keys)}, weights=w)
    assert out["a"].shape == (2, 4) and out["a"].dtype == np.float32
    np.testing.assert_allclose(out["a"][:, :3], _z(ya).T, atol=1e-6)  # measured, z-scored over its own images
    np.testing.assert_allclose(out["a"][:, 3], w["a"] * _z(pa)[3], atol=1e-6)  # r x z(prediction)
    np.testing.assert_allclose(out["b"][:, [3, 1, 2]], _z(yb).T, atol=1e-6)  # rows follow the subject's keys
    np.testing.assert_allclose(out["b"][:, 0], w["b"] * _z(pb)[0], atol=1e-6)
    # every image seen: no predictions needed; an unseen image without a prediction is an error
    both = C.response_profiles({"a": (ya, ["i0", "i1", "i2"])}, ["i2", "i0"])
    np.testing.assert_allclose(both["a"], _z(ya).T[:, [2, 0]], atol=1e-6)
    with pytest.raises(BrainVizDataError, match="not seen"):
        C.response_profiles({"a": (ya, ["i0", "i1", "i2"])}, keys)
    with pytest.raises(BrainVizDataError, match="no prediction"):
        C.response_profiles({"a": (ya, ["i0", "i1", "i2"])}, keys, predicted={"a": (pa[:3], keys[:3])})


def test_profile_block_and_combined_blocks_weigh_the_same():
    rng = np.random.default_rng(1)
    prof = rng.standard_normal((40, 120)) + 5.0  # an offset per row is removed (correlation geometry)
    b = C.profile_block(prof, n_components=10)
    assert b.shape == (40, 10)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    assert C.profile_block(prof[:, :8], n_components=10).shape == (40, 8)  # narrower than asked: not reduced
    # the principal components are those of the full SVD (computed from the image covariance, for speed)
    from sklearn.decomposition import PCA

    x = prof - prof.mean(axis=1, keepdims=True)
    full = C.normalize_embeddings(PCA(10, svd_solver="full").fit_transform(x).astype(np.float32), "l2")
    np.testing.assert_allclose(b, full, atol=1e-5)
    emb = 7.0 * rng.standard_normal((40, 16))
    x = C.combine_blocks(emb, b)
    assert x.shape == (40, 26)
    np.testing.assert_allclose(np.linalg.norm(x[:, :16], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(x[:, 16:], axis=1), 1, atol=1e-5)
    with pytest.raises(BrainVizDataError, match="same vertices"):
        C.combine_blocks(emb, b[:30])


def _strip_mesh(n: int, spacing: float = 2.0) -> sp.csr_matrix:
    """A hand-made mesh: a 2 x n strip of triangles, vertex (row r, column c) = r * n + c, edges in mm."""
    edges = []
    for c in range(n):
        edges.append((c, n + c, spacing))  # rung
        if c + 1 < n:
            edges += [(c, c + 1, spacing), (n + c, n + c + 1, spacing), (c, n + c + 1, spacing * np.sqrt(2))]
    i, j, w = map(np.array, zip(*edges))
    g = sp.coo_matrix((w, (i, j)), shape=(2 * n, 2 * n)).tocsr()
    return g.maximum(g.T).tocsr()


def test_cortical_neighbours_on_a_hand_made_mesh():
    g = _strip_mesh(10)  # 20 vertices, 2 mm apart
    # vertices of one subject: three on lh (mesh vertices 0, 1, 5), two on rh (0, 1), one between fsaverage5's
    hemi = np.array(["lh", "lh", "lh", "rh", "rh", "lh"])
    fs5 = np.array([0, 1, 5, 0, 1, -1])
    w = C.cortical_neighbours(hemi, fs5, radius=5.0, graphs={"lh": g, "rh": g})
    dense = w.toarray()
    assert (dense == dense.T).all() and (np.diag(dense) == 0).all()
    assert dense[0, 1] == 1 and dense[3, 4] == 1  # 2 mm apart, same hemisphere
    assert dense[0, 2] == 0  # 10 mm apart
    assert dense[0, 3] == 0 and dense[1, 4] == 0  # same mesh vertex, other hemisphere: never neighbours
    assert dense[5].sum() == 0  # not on the mesh: no neighbours
    # the radius counts along mesh edges (through vertices that are not in the list)
    far = C.cortical_neighbours(hemi, fs5, radius=10.0, graphs={"lh": g, "rh": g}).toarray()
    assert far[0, 2] == 1 and far[1, 2] == 1
    with pytest.raises(BrainVizDataError, match="outside"):
        C.cortical_neighbours(np.array(["lh"]), np.array([25]), graphs={"lh": g})
    with pytest.raises(BrainVizDataError, match="positive"):
        C.cortical_neighbours(hemi, fs5, radius=0, graphs={"lh": g, "rh": g})


def test_smooth_labels_removes_isolated_mislabels_on_a_mesh():
    n = 40
    g = _strip_mesh(n)  # two regions along the strip: columns < 20 and >= 20
    col = np.arange(2 * n) % n
    truth = (col >= n // 2).astype(int)
    rng = np.random.default_rng(3)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    x = centres[truth] + 0.25 * rng.standard_normal((2 * n, 3))
    flipped = np.array([3, 11, 27, 52, 66])  # vertices that look more like the other region
    x[flipped] = 0.4 * centres[truth[flipped]] + 0.6 * centres[1 - truth[flipped]]
    labels = C.kmeans_clusters(x, 2, seed=0, normalize=None)
    w = C.cortical_neighbours(np.array(["lh"] * 2 * n), np.arange(2 * n), radius=4.5, graphs={"lh": g})

    def wrong(lab):
        return np.flatnonzero(lab != (truth if lab[0] == truth[0] else 1 - truth))

    np.testing.assert_array_equal(wrong(labels), flipped)  # k-means follows the features
    smooth = C.smooth_labels(x, labels, w, beta=4.0, normalize=None)
    assert smooth.dtype == np.int32 and len(wrong(smooth)) == 0  # the neighbours win
    assert 0 < len(wrong(C.smooth_labels(x, labels, w, beta=2.0, normalize=None))) < len(flipped)  # weaker
    # beta = 0: nearest re-estimated centre, i.e. k-means' own fixed point is kept
    np.testing.assert_array_equal(C.smooth_labels(x, labels, w, beta=0.0, normalize=None), labels)
    # without neighbours nothing changes either, whatever beta
    np.testing.assert_array_equal(C.smooth_labels(x, labels, sp.csr_matrix((2 * n, 2 * n)), beta=5.0,
                                                  normalize=None), labels)
    with pytest.raises(BrainVizDataError, match="negative"):
        C.smooth_labels(x, np.where(labels == 0, -1, 1), w, beta=1.0)
    with pytest.raises(BrainVizDataError, match="beta"):
        C.smooth_labels(x, labels, w, beta=-1.0)


def test_profile_images_are_the_best_covered():
    """The images of a response profile (pipeline.analyses.clusters._profile_keys): the measured profile takes the
    images every subject saw; the combined one adds coverage levels (all but one subject, ...) until it holds enough
    (AnalysisSettings.min_profile_images), at most AnalysisSettings.max_profile_images."""
    from brainviz.pipeline.analyses import clusters as A

    every = [f"all{i}" for i in range(5)]
    seen = [every + ["ab0", "ab1", "a0"], every + ["ab0", "ab1", "bc0"], every + ["bc0", "c0"]]
    assert A._profile_keys(seen, every=True) == sorted(every)
    assert A._profile_keys(seen, every=False, min_images=5) == sorted(every)  # enough images all three saw
    assert A._profile_keys(seen, every=False, min_images=6) == sorted(every + ["ab0", "ab1", "bc0"])  # + seen by two
    assert A._profile_keys(seen, every=False, min_images=100) == sorted(every + ["ab0", "ab1", "bc0", "a0", "c0"])
    capped = A._profile_keys(seen, every=False, min_images=100, max_images=7)
    assert len(capped) == 7 and set(every) <= set(capped)  # the best covered first
