"""A small synthetic BrainViz store (built with StoreWriter in seconds): for the app's tests, its benchmarks
and trying the pages without running precompute.

``build_app_store(root)`` writes ``root/images/*.png`` (synthetic pictures) and
``root/brainviz.duckdb`` with every table the app reads: 2 subjects on fsaverage5
(occipital vertices, ROI columns, planted regions), a ue_multi model (a tiny Universal
Encoder trained on real efficientnet-lite0 features of those pictures, its checkpoint
stored in the store) with voxel embeddings / 2-D map / clusters (subject and joint
scopes, k = 3 and 5) / top images / descriptions, a ridge model, vertex and ROI
metrics, retrieval, test predictions and predictions of every tagged image (training images left out), RDMs with
extreme pairs and RSA, a k92 "human-IT" RDM with k92_rsa, decoding, transfer curve,
pair model, pooled image features and a thumbnail of every image. Like a store
``precompute`` writes, it is self-contained: the app needs none of ``root/images``.

Marked SIMULATED (``meta.simulated = true``), like the demo brain.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

SUBJECTS = ("subj01", "subj02")
BACKBONE = "efficientnet-lite0"
N_NSD = 30
N_K92 = 12
CATS = ("faces", "bodies", "animals", "food", "words", "vehicles", "places", "indoor", "outdoor", "people")


def _image(i: int, rng: np.random.Generator) -> Image.Image:
    """A 96x96 picture: colored background + shapes (category-ish by index)."""
    bg = tuple(int(x) for x in rng.integers(0, 255, 3))
    im = Image.new("RGB", (96, 96), bg)
    d = ImageDraw.Draw(im)
    kind = i % 4
    for _ in range(3 + i % 5):
        c = tuple(int(x) for x in rng.integers(0, 255, 3))
        x0, y0 = (int(v) for v in rng.integers(0, 70, 2))
        s = int(rng.integers(10, 40))
        if kind == 0:
            d.ellipse([x0, y0, x0 + s, y0 + s], fill=c)
        elif kind == 1:
            d.rectangle([x0, y0, x0 + s, y0 + s // 2], fill=c)
        elif kind == 2:
            d.line([x0, y0, x0 + s, y0 + s], fill=c, width=4)
        else:
            d.text((x0, y0), "Aa", fill=c)
    return im


def _vertices(rng):
    """Occipital fsaverage5 vertices of both hemispheres with synthetic ROI labels."""
    from nilearn import datasets

    fs = datasets.load_fsaverage("fsaverage5")
    frames = []
    for h, part in (("lh", "left"), ("rh", "right")):
        c = np.asarray(fs["pial"].parts[part].coordinates)
        idx = np.flatnonzero(c[:, 1] < -72)
        cc = c[idx]
        df = pd.DataFrame({"hemi": h, "index": np.arange(len(idx)), "surface_index": idx, "fsaverage5_index": idx})
        y, z = cc[:, 1], cc[:, 2]
        prf = np.where(y < -95, np.where(z < 0, "V1v", "V1d"), np.where(y < -88, np.where(z < 0, "V2v", "V2d"), None))
        df["prf-visualrois"] = prf
        df["floc-faces"] = np.where((y >= -88) & (z < -8), "FFA-1", None)
        df["floc-places"] = np.where((y >= -88) & (z > 15), "OPA", None)
        df["floc-bodies"] = np.where((y >= -88) & (z >= -8) & (z <= 15) & (np.abs(cc[:, 0]) > 40), "EBA", None)
        df["floc-words"] = np.where((h == "lh") & (y >= -84) & (z < -12), "VWFA-1", None)
        df["streams"] = np.where(y < -88, "early", "ventral")
        planted = np.full(len(idx), "mixed", dtype=object)
        planted[prf != None] = "early"  # noqa: E711
        planted[df["floc-faces"].notna().to_numpy()] = "faces"
        planted[df["floc-places"].notna().to_numpy()] = "places-outdoor"
        planted[df["floc-bodies"].notna().to_numpy()] = "bodies"
        planted[(y >= -80) & (z < -15)] = "food"
        df["planted"] = planted
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def build_app_store(root: str | Path, *, checkpoint: bool = True, seed: int = 0) -> Path:
    """Write the synthetic store under ``root``; return the store path."""
    import torch

    from brainviz.encoders.universal import CHECKPOINT_FORMAT, UniversalEncoder
    from brainviz.features.extract import extract_features
    from brainviz.store.writer import StoreWriter
    from brainviz.thumbnails import thumbnail_of_file

    torch.manual_seed(seed)
    root = Path(root)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    nsd_keys = [f"nsd-{i + 1:05d}" for i in range(N_NSD)]
    k92_keys = [f"k92-{i + 1:05d}" for i in range(N_K92)]
    paths = {}
    for i, k in enumerate(nsd_keys + k92_keys):
        p = img_dir / f"{k}.png"
        _image(i, rng).save(p)
        paths[k] = p

    # tags: category-ish by index, plus noise
    tags = pd.DataFrame(rng.uniform(0, 0.3, (len(nsd_keys), len(CATS))), index=nsd_keys, columns=CATS)
    for i, k in enumerate(nsd_keys):
        tags.loc[k, CATS[i % 4 * 2]] = 1.0
    tag_text = {k: ", ".join(c for c in CATS if tags.loc[k, c] > 0.5) for k in nsd_keys}

    vt = _vertices(rng)
    V = len(vt)
    n_lh = int((vt["hemi"] == "lh").sum())

    # features + responses: responses depend on features through a random linear map
    fs = extract_features(BACKBONE, [paths[k] for k in nsd_keys], progress=False, keys=nsd_keys)
    pooled = fs.pooled
    W = rng.normal(size=(pooled.shape[1], V)) / np.sqrt(pooled.shape[1])
    clean = (pooled - pooled.mean(0)) @ W
    clean = (clean - clean.mean(0)) / (clean.std(0) + 1e-6)
    splits = {"subj01": (nsd_keys[:18], nsd_keys[20:]), "subj02": (nsd_keys[6:20], nsd_keys[20:])}
    resp = {}
    for s in SUBJECTS:
        noise = rng.normal(scale=0.7, size=clean.shape)
        resp[s] = (clean + noise).astype(np.float32)
    row = {k: i for i, k in enumerate(nsd_keys)}

    ue = UniversalEncoder(embed_dim=8, proj_dim=8, n_epochs=2, batch_voxels=2048, batch_images=16,
                          progress=False, seed=seed, device="cpu")
    data = {s: (fs.layers[[row[k] for k in splits[s][0]]], resp[s][[row[k] for k in splits[s][0]]]) for s in SUBJECTS}
    ue.fit(data)
    preds = {s: ue.predict(fs, s) for s in SUBJECTS}
    emb = {s: ue.voxel_embeddings(s) for s in SUBJECTS}

    def kmeans(X, k):  # small deterministic Lloyd's (sklearn's threads are slow on 2 cores)
        r = np.random.default_rng(0)
        C = X[r.choice(len(X), k, replace=False)]
        for _ in range(15):
            lab = ((X[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)
            C = np.stack([X[lab == c].mean(0) if (lab == c).any() else C[c] for c in range(k)])
        return lab

    def pca2(X):
        Xc = X - X.mean(0)
        _, _, vt_ = np.linalg.svd(Xc, full_matrices=False)
        return Xc @ vt_[:2].T

    store_path = root / "brainviz.duckdb"
    with StoreWriter(store_path) as w:
        w.add_dataset("synthetic", "Synthetic app-test brain", root, simulated=True, surface="fsaverage5",
                      manifest={"name": "synthetic", "simulated": True})
        w.add_images(nsd_keys, [paths[k] for k in nsd_keys], dataset_id="synthetic")
        w.add_images(k92_keys)  # like precompute: the 92 images have no files, only thumbnails
        w.add_thumbnails(nsd_keys + k92_keys, [thumbnail_of_file(paths[k]) for k in nsd_keys + k92_keys])
        w.add_image_tags(tags.astype(np.float32), tag_text)
        w.add_image_features(BACKBONE, nsd_keys, pooled)
        for s in SUBJECTS:
            tr, te = splits[s]
            w.add_subject(s, "synthetic", "nsd", n_train=len(tr), n_test=len(te), n_lh=n_lh, n_rh=V - n_lh)
            w.add_vertices(s, vt.drop(columns=["planted"]), planted_region=vt["planted"].tolist())
            w.add_image_splits(s, "train", tr)
            w.add_image_splits(s, "test", te)
        from brainviz.features.weights import weights_spec

        w.set_meta(backbone=BACKBONE, **weights_spec(BACKBONE).to_meta())  # the weights the encoder was trained on
        w.add_model("ue_multi", "ue_multi", list(SUBJECTS), backbone=BACKBONE, config={"embed_dim": 8},
                    provenance={"seed": seed})
        if checkpoint:
            w.add_checkpoint("ue_multi", ue.to_bytes(), CHECKPOINT_FORMAT)
        w.add_model("ridge-subj01", "ridge", ["subj01"], backbone=BACKBONE, config={"alphas": "logspace"})
        # voxel embeddings, map, clusters
        allemb = np.concatenate([emb[s] for s in SUBJECTS])
        xy_all = pca2(allemb)
        off = 0
        for s in SUBJECTS:
            w.add_voxel_embeddings("ue_multi", s, emb[s])
            w.add_embedding_map("ue_multi", s, xy_all[off:off + V])
            off += V
        for k in (3, 5):
            joint = kmeans(allemb, k)
            scopes = {"joint": {s: joint[i * V:(i + 1) * V] for i, s in enumerate(SUBJECTS)}}
            # other variants of the joint clustering (cluster_variants): smoothed labels, the combined profile
            for variant in ("joint~smoothed", "joint+combined"):
                scopes[variant] = {s: (lab + 1) % k for s, lab in scopes["joint"].items()}
            for s in SUBJECTS:
                scopes[s] = {s: kmeans(emb[s], k)}
            for scope, labs in scopes.items():
                descs = []
                for s, lab in labs.items():
                    w.add_clusters("ue_multi", scope, k, s, lab.astype(np.int32))
                    for source, mat, keys in (("measured", resp[s][[row[x] for x in splits[s][0]]], splits[s][0]),
                                              ("predicted", preds[s], nsd_keys)):
                        rows = []
                        for c in range(k):
                            m = lab == c
                            score = mat[:, m].mean(1) if m.any() else np.zeros(len(keys))
                            order = np.argsort(-score)[:6]
                            rows += [{"cluster": c, "rank": r + 1, "image_key": keys[j], "score": float(score[j])}
                                     for r, j in enumerate(order)]
                        w.add_cluster_top_images("ue_multi", scope, k, s, source, pd.DataFrame(rows))
                for c in range(k):
                    n_v = int(sum((lab == c).sum() for lab in labs.values()))
                    cat = CATS[c % len(CATS)]
                    descs.append({"cluster": c, "n_vertices": n_v, "description": f"{cat} {4 + c % 3}/6",
                                  "source": "predicted",
                                  "enrichment": {cat: {"count": 4, "n": 6, "frac": 0.67, "base_rate": 0.25,
                                                       "ratio": 2.7, "p_value": 0.01}}})
                w.add_cluster_descriptions("ue_multi", scope, k, pd.DataFrame(descs))
        # the policy the "analyses" used, as numbers (what the clusters page says about choosing k)
        from brainviz.pipeline.settings import AnalysisSettings
        from brainviz.pipeline.store_results import write_result

        write_result(w, AnalysisSettings(cluster_ks=(3, 5)))
        # how each scope chose its k: joint by stability, each subject alone takes the joint k
        w.write_table("cluster_settings", pd.DataFrame(
            [dict(model_id="ue_multi", scope="joint", subject=s, base="joint", region=None, percentile=75.0,
                  nc_threshold=0.3, chosen_k=3, k_rule="stability >= 0.75", is_default=True) for s in SUBJECTS]
            + [dict(model_id="ue_multi", scope=s, subject=s, base=s, region=None, percentile=75.0, nc_threshold=0.3,
                    chosen_k=3, k_rule="k of joint", is_default=False) for s in SUBJECTS]
            + [dict(model_id="ue_multi", scope=v, subject=s, base="joint", region=None, percentile=75.0,
                    nc_threshold=0.3, chosen_k=3, k_rule="stability >= 0.75", is_default=False)
               for v in ("joint~smoothed", "joint+combined") for s in SUBJECTS]))
        # what each scope clustered (the page's "What is clustered" and "Smooth on the cortex" choices)
        w.write_table("cluster_variants", pd.DataFrame(
            [dict(model_id="ue_multi", scope=sc, family=sc.split("~")[0].split("+")[0], percentile=75.0,
                  profile="combined" if "+combined" in sc else "embeddings",
                  n_images=40 if "+combined" in sc else None, measured_share=0.75 if "+combined" in sc else None,
                  smoothing=0.5 if "~" in sc else 0.0, smoothing_radius_mm=5.0 if "~" in sc else None,
                  with_neighbours=0.8 if "~" in sc else None, profile_default=sc in ("joint", "joint+combined"),
                  is_default=sc == "joint") for sc in ("joint", "joint~smoothed", "joint+combined", *SUBJECTS)]))
        w.write_table("cluster_quality", pd.DataFrame({"model_id": "ue_multi", "scope": "joint", "k": [3, 5],
                                                       "metric": "stability", "value": [0.9, 0.7],
                                                       "simulation_check": False}))
        # recovery scores (simulation checks) at both k; the yardsticks only at the chosen k, as precompute
        sim = [(k, m, v) for k in (3, 5) for m, v in (("ari", 0.61 - 0.1 * (k == 5)), ("coverage", 0.7),
                                                      ("homogeneity", 0.8), ("completeness", 0.75))]
        sim += [(3, "reference:noise-free", 0.93), (3, "reference:measured", 0.84), (3, "reference:ridge", 0.66)]
        w.write_table("cluster_quality", pd.DataFrame([dict(model_id="ue_multi", scope="joint", k=k, metric=m, value=v,
                                                            simulation_check=True) for k, m, v in sim]))
        w.write_table("cluster_quality", pd.DataFrame(
            [dict(model_id="ue_multi", scope=sc, k=3, metric=m, value=v, simulation_check=True)
             for sc, ari in (("joint~smoothed", 0.66), ("joint+combined", 0.72))
             for m, v in (("ari", ari), ("coverage", 0.7))]
            + [dict(model_id="ue_multi", scope=sc, k=k, metric="stability", value=v, simulation_check=False)
               for sc in ("joint~smoothed", "joint+combined") for k, v in ((3, 0.9), (5, 0.7))]))
        # metrics
        roi_rows = []
        for mid, subs in (("ue_multi", SUBJECTS), ("ridge-subj01", ("subj01",))):
            for s in subs:
                te = splits[s][1]
                Y = resp[s][[row[x] for x in te]]
                P = preds[s][[row[x] for x in te]] * (1.0 if mid == "ue_multi" else 0.8) + \
                    (0 if mid == "ue_multi" else rng.normal(scale=0.3, size=(len(te), V)))
                Yc, Pc = Y - Y.mean(0), P - P.mean(0)
                r = (Yc * Pc).sum(0) / (np.linalg.norm(Yc, axis=0) * np.linalg.norm(Pc, axis=0) + 1e-9)
                nc = np.clip(rng.beta(4, 3, V), 0.05, 1).astype(np.float32)
                nna = np.clip(r, 0, None) ** 2 / nc
                w.add_vertex_metrics(mid, s, r.astype(np.float32), nc, nna.astype(np.float32))
                groups = {"all": np.ones(V, bool), "early visual": vt["prf-visualrois"].notna().to_numpy(),
                          "faces": vt["floc-faces"].notna().to_numpy(), "places": vt["floc-places"].notna().to_numpy(),
                          "bodies": vt["floc-bodies"].notna().to_numpy(), "FFA-1": (vt["floc-faces"] == "FFA-1").to_numpy()}
                for g, m in groups.items():
                    if m.any():
                        roi_rows.append({"model_id": mid, "subject": s, "roi": g, "median_r": float(np.median(r[m])),
                                         "p25": float(np.percentile(r[m], 25)), "p75": float(np.percentile(r[m], 75)),
                                         "median_nna": float(np.median(nna[m])), "n": int(m.sum())})
                w.add_retrieval(mid, s, n_candidates=len(te), mean_rank=2.0 + (mid != "ue_multi"),
                                top1=0.5 if mid == "ue_multi" else 0.3, top5=0.9 if mid == "ue_multi" else 0.7)
        w.write_table("roi_metrics", pd.DataFrame(roi_rows))
        for s in SUBJECTS:
            te = splits[s][1]
            w.add_predictions("ue_multi", s, te, preds[s][[row[x] for x in te]])  # image set 'test'
            held_out = [k for k in nsd_keys if k not in set(splits[s][0])]  # every tagged image but training ones
            w.add_predictions("ue_multi", s, held_out, preds[s][[row[x] for x in held_out]], image_set="tagged")
        # RDMs over subj01's test images
        te = splits["subj01"][1]
        rsa_rows = []
        for roi, m in (("early visual", vt["prf-visualrois"].notna().to_numpy()),
                       ("faces", vt["floc-faces"].notna().to_numpy())):
            ids = {}
            for source, mat in (("measured", resp["subj01"]), ("predicted", preds["subj01"])):
                X = mat[[row[x] for x in te]][:, m]
                for metric in ("correlation", "euclidean"):
                    if metric == "correlation":
                        D = 1 - np.corrcoef(X)
                    else:
                        D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
                    np.fill_diagonal(D, 0)
                    rid = f"subj01|{roi}|{metric}|{source}"
                    w.add_rdm(rid, te, D, metric=metric, source=source, subject="subj01", roi=roi)
                    ids[(source, metric)] = rid
                    iu = np.triu_indices(len(te), 1)
                    o = np.argsort(D[iu])
                    pairs = [{"kind": "most_similar", "rank": r + 1, "image_a": te[iu[0][j]], "image_b": te[iu[1][j]],
                              "value": float(D[iu][j])} for r, j in enumerate(o[:3])]
                    pairs += [{"kind": "most_dissimilar", "rank": r + 1, "image_a": te[iu[0][j]],
                               "image_b": te[iu[1][j]], "value": float(D[iu][j])} for r, j in enumerate(o[::-1][:3])]
                    w.add_extreme_pairs(rid, pd.DataFrame(pairs))
            for metric in ("correlation", "euclidean"):
                rsa_rows.append({"rdm_a": ids[("predicted", metric)], "rdm_b": ids[("measured", metric)],
                                 "method": "spearman", "value": 0.42, "p_value": 0.003, "nc_lower": 0.5, "nc_upper": 0.7})
        Xl = fs.pooled[[row[x] for x in te]]
        D = 1 - np.corrcoef(Xl)
        np.fill_diagonal(D, 0)
        w.add_rdm("layer|pooled|correlation", te, D, metric="correlation", source="layer:pooled")
        rsa_rows.append({"rdm_a": "layer|pooled|correlation", "rdm_b": "subj01|faces|correlation|measured",
                         "method": "spearman", "value": 0.2, "p_value": 0.04, "nc_lower": 0.5, "nc_upper": 0.7})
        w.write_table("rsa", pd.DataFrame(rsa_rows))
        # k92 (REAL in the real store; synthetic here)
        Xk = rng.normal(size=(N_K92, 20))
        Dk = 1 - np.corrcoef(Xk)
        np.fill_diagonal(Dk, 0)
        w.add_rdm("k92|human-IT", k92_keys, Dk, metric="correlation", source="measured", subject=None, roi="human IT")
        w.add_rdm("k92|model:efficientnet-lite0", k92_keys, Dk * 0.5 + 0.2, metric="correlation",
                  source="layer:efficientnet-lite0")
        w.write_table("k92_rsa", pd.DataFrame([
            {"model": "efficientnet-lite0 pooled", "method": "kendall_tau_a", "value": 0.12, "p_value": 0.001,
             "nc_lower": 0.25, "nc_upper": 0.4},
            {"model": "animacy", "method": "kendall_tau_a", "value": 0.08, "p_value": 0.01,
             "nc_lower": 0.25, "nc_upper": 0.4}]))
        # decoding
        drows = []
        for s in SUBJECTS:
            for rs in ("set1", "set2", "set3", "vote"):
                for j, k in enumerate(splits[s][1]):
                    others = [x for x in splits[s][1] if x != k]
                    rank = 1 + (j % 3)
                    top = others[:rank - 1] + [k] + others[rank - 1:4]
                    drows.append({"subject": s, "roi_set": rs, "image_key": k, "rank": rank, "top_keys": top[:5],
                                  "cosine": 0.3 + 0.1 * (rank == 1)})
        w.write_table("decoding", pd.DataFrame(drows))
        w.write_table("transfer_curve", pd.DataFrame(
            [{"subject": "subj02", "n_train": n, "method": m, "median_r": (0.1 if m == "ridge" else 0.15) * np.log(n),
              "seed": sd} for n in (2, 5, 10, 14) for m in ("ue_transfer", "ridge") for sd in (0, 1)]))
        w.write_table("pair_model", pd.DataFrame([{"split": "test", "metric": "spearman", "value": 0.31,
                                                   "baseline": 0.05}]))
    (root / "store.json").write_text(json.dumps({"store": str(store_path), "subjects": list(SUBJECTS)}))
    return store_path


if __name__ == "__main__":  # python -m brainviz.sample_store OUTDIR
    import sys
    import time

    t = time.time()
    print(build_app_store(sys.argv[1] if len(sys.argv) > 1 else "/tmp/brainviz_app_store"), f"{time.time() - t:.1f}s")
