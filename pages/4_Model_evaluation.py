"""Model evaluation: accuracy maps on the brain (r, noise ceiling, noise-normalized accuracy), per-ROI
tables, retrieval, single vs multi subject, transfer curve."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from brainviz import plotting as B
from brainviz.rois import ROI_GROUP_COLUMNS
from webapp import charts as C
from webapp import shell
from webapp import viewmodel as V
from webapp.brainview import brain_view, store_hover_rois
from webapp.downloads import map_downloads

store, path = shell.page_start(__file__)

models = store.models()
if models.empty:
    shell.stop_nothing_stored("No trained models in this store.")
st.caption(f"Every score on this page is measured on {V.evaluation_label(store)}: images the models never saw.")
# one scale for r and its ceiling: the noise ceiling nc is a fraction of variance (r² scale); its square root is
# the highest r a perfect model could reach on these noisy test responses
METRICS = {"r": ("Pearson r (evaluation images)", "RdBu_r", True),
           "nc": ("noise ceiling as r (√nc: the best r a perfect model could reach)", "viridis", False),
           "nna": ("noise-normalized accuracy r² / nc (1 = at the ceiling)", "magma", False)}

with st.sidebar:
    st.header("Accuracy map")
    model_id = st.selectbox("Model", V.model_options(store))
    row = models[models["model_id"] == model_id].iloc[0]
    subjects = list(row["subjects"]) if row["subjects"] is not None else []
    subjects = [s for s in subjects if not store.vertex_metrics(model_id, s).empty] or subjects
    subject = st.selectbox("Subject", subjects)
    metric = st.radio("Map", list(METRICS), horizontal=True,
                      format_func=lambda m: {"r": "r", "nc": "ceiling (√nc)", "nna": "r² / nc"}[m],
                      help="r: correlation of predicted and measured responses to the evaluation images. Ceiling: √nc, the r a perfect "
                           "model would reach given the measurement noise (same scale as r). r² / nc: the share of "
                           "the explainable variance the model explains (noise-normalized accuracy).")
    surface = st.radio("Surface", B.SURFACES, horizontal=True, key="surface",
                       format_func=lambda s: {"flat": "flat-ish"}.get(s, s))
    view = st.selectbox("View", list(B.VIEWS), index=list(B.VIEWS).index(B.DEFAULT_VIEW), disabled=surface == "flat")
    thr = st.slider("Hide |value| below", 0.0, 0.5, 0.0, 0.01)
    outline_name = st.selectbox("ROI outlines", ["none"] + list(V.ROI_CLASS_COLUMNS), index=0)

# ------------------------------------------------------------------ map
vm = store.vertex_metrics(model_id, subject) if subject else pd.DataFrame()
title = desc = None
if vm.empty or metric not in vm or vm[metric].isna().all():
    shell.show_skips(store, *(("noise ceiling",) if metric != "r" else ("evaluation",)), subject=subject,
                     otherwise=f"No per-vertex {metric} stored for {model_id} / {subject}.")
else:
    vertices = store.vertices(subject)
    vals = V.vertex_values(vm, metric, len(vertices))  # nc as √nc, on the scale of r
    desc, cmap, sym = METRICS[metric]
    maps = V.to_fsaverage5(vals, vertices)
    outlines = V.label_map(vertices, V.ROI_CLASS_COLUMNS[outline_name]) if outline_name != "none" else None
    if sym and np.nanpercentile(vals, 1) >= -0.05:  # r essentially all positive: sequential scale from 0
        sym, cmap = False, "inferno"
    lo, hi = B.color_limits(maps, symmetric=sym)
    if not sym:
        lo = 0.0
    title = f"{model_id} · {subject} · {desc}" + (" · SIMULATED" if store.simulated else "")
    c1, c2 = st.columns([3, 1])
    with c1:
        brain_view(maps, key="acc_brain", surface=surface, cmap=cmap, vmin=lo, vmax=hi, threshold=thr or None,
                   title=title, colorbar_title={"nc": "√nc"}.get(metric, metric), outlines=outlines,
                   rois=store_hover_rois(store, subject), view=None if surface == "flat" else view, hover_name=metric)
    with c2:
        v = pd.Series(vals[np.isfinite(vals)])
        # the three numbers side by side on the scale of r: the ceiling is √nc, not nc (a variance fraction)
        has_nc = "nc" in vm and vm["nc"].notna().any()
        st.metric("median r", f"{vm['r'].median():.3f}", help="Pearson r of predicted and measured responses to the evaluation images, "
                  "median over vertices")
        if has_nc:
            st.metric("median ceiling on r (√nc)", f"{np.sqrt(max(vm['nc'].median(), 0)):.3f}",
                      help=f"The noise ceiling nc (median {vm['nc'].median():.2f}) is the fraction of the evaluation "
                           "responses' variance that is not noise; its square root is the highest r a perfect model "
                           "could reach. Compare r with this, not with nc.")
        if "nna" in vm and vm["nna"].notna().any():
            st.metric("median r² / nc", f"{vm['nna'].median():.2f}",
                      help="Noise-normalized accuracy: the share of the explainable variance the model explains "
                           "(1 = at the ceiling), per vertex, median over vertices")
        st.caption(f"{len(v):,} vertices")
        hist = go.Figure(go.Histogram(x=v, nbinsx=40, marker_color="#3b6fb6"))
        hist.update_layout(height=230, margin=dict(l=45, r=10, t=10, b=40), plot_bgcolor="white",
                           xaxis_title={"r": "r", "nc": "√nc", "nna": "r² / nc"}[metric], yaxis_title="vertices")
        st.plotly_chart(C.tidy(hist), key="acc_hist", theme=None, config=C.CONFIG)

    from brainviz import export as X

    map_downloads({metric: {
        "png": dict(values_by_hemi=maps, cmap=cmap, vmin=lo, vmax=hi, threshold=thr or None, title=title,
                    colorbar_title={"nc": "√nc"}.get(metric, metric), outlines=outlines),
        "gifti": X.SurfaceMap.from_vertices(vals, vertices, X.store_surface(store, subject), name=title,
                                            meta={"brainviz:model": model_id, "brainviz:subject": subject,
                                                  "brainviz:simulated": str(store.simulated).lower()})}},
        surface=surface, sig=("eval", model_id, subject, metric, thr, outline_name),
        stem=f"{metric}_{model_id}_{subject}", simulated=store.simulated)

# ------------------------------------------------------------------ ROI table
st.subheader("Per-ROI accuracy")
roi = store.roi_metrics()
if roi.empty:
    st.write("No per-ROI results stored.")
else:
    mine = roi[(roi["model_id"] == model_id) & (roi["subject"] == subject)].drop(columns=["model_id", "subject"])
    if not vm.empty and "nc" in vm and vm["nc"].notna().any():  # the ceiling per ROI, on the scale of r
        ceil = V.roi_ceilings(vm, store.vertices(subject))
        mine.insert(mine.columns.get_loc("median_r") + 1, "median_ceiling", mine["roi"].map(ceil))
    st.dataframe(C.drop_empty(mine, ["median_nna"]), hide_index=True,
                 column_config={"median_r": st.column_config.NumberColumn("median r", format="%.3f"),
                                "median_ceiling": st.column_config.NumberColumn("ceiling on r (√nc)", format="%.3f"),
                                "p25": st.column_config.NumberColumn("r 25th pct", format="%.3f"),
                                "p75": st.column_config.NumberColumn("r 75th pct", format="%.3f"),
                                "median_nna": st.column_config.NumberColumn("r² / nc", format="%.3f"),
                                "n": st.column_config.NumberColumn("vertices")})
    st.caption("Medians over the ROI's vertices. The ceiling on r is the median √nc: a perfect model would reach "
               "it; r² / nc is the share of the explainable variance the model explains.")
    st.markdown("**Model families, median r per ROI group** (mean over subjects and models of a family)")
    fam = roi.assign(family=roi["model_id"].map(V.model_family))
    groups = [g for g in ["all", *ROI_GROUP_COLUMNS] if g in set(fam["roi"])]
    if st.toggle("Individual ROIs", value=not groups, key="roi_individual"):
        groups = sorted(set(fam["roi"]) - {"all", *ROI_GROUP_COLUMNS})
    piv = fam[fam["roi"].isin(groups)].pivot_table(index="roi", columns="family", values="median_r", aggfunc="mean")
    piv = piv.reindex([g for g in groups if g in piv.index])
    fig = go.Figure()
    for m in piv.columns:
        fig.add_trace(go.Bar(x=piv.index, y=piv[m], name=m))
    fig.update_layout(barmode="group", height=340, margin=dict(l=60, r=20, t=30, b=80), yaxis_title="median r",
                      plot_bgcolor="white")
    st.plotly_chart(C.tidy(fig), key="roi_models", theme=None, config=C.CONFIG)

# ------------------------------------------------------------------ retrieval
st.subheader("Image identification (retrieval)")
ret = store.retrieval()
if ret.empty:
    st.write("No retrieval results stored.")
else:
    st.caption("For each evaluation image, the measured response is compared with the predicted responses of all "
               "evaluation images; rank 1 = the right image is the best match. Chance top-1 = 1 / candidates.")
    st.dataframe(C.percent_table(ret, ["top1", "top5"]), hide_index=True, column_config={
        "model_id": "model", "n_candidates": "candidates",
        "mean_rank": st.column_config.NumberColumn("mean rank", format="%.2f"),
        "top1": st.column_config.NumberColumn("top-1", format=C.PERCENT_FORMAT),
        "top5": st.column_config.NumberColumn("top-5", format=C.PERCENT_FORMAT)})

# ------------------------------------------------------------------ single vs multi
st.subheader("Single-subject vs multi-subject models")
if roi.empty:
    st.write("No per-ROI results stored.")
else:
    allr = roi[roi["roi"] == "all"].copy()
    if allr.empty:
        st.write("No whole-brain ('all') rows in the ROI table.")
    else:
        allr["family"] = allr["model_id"].map(V.model_family)
        allr = allr.groupby(["family", "subject"], as_index=False)[["median_r", "p25", "p75"]].mean()
        fig = go.Figure()
        for kd, d in allr.groupby("family"):
            fig.add_trace(go.Bar(x=d["subject"], y=d["median_r"], name=kd,
                                 error_y=dict(type="data", symmetric=False, array=(d["p75"] - d["median_r"]).abs(),
                                              arrayminus=(d["median_r"] - d["p25"]).abs())
                                 if d["p25"].notna().all() and d["p75"].notna().all() else None))
        fig.update_layout(barmode="group", height=320, margin=dict(l=60, r=20, t=30, b=80),
                          yaxis_title="median r (all vertices)", plot_bgcolor="white")
        st.plotly_chart(C.tidy(fig), key="single_multi", theme=None, config=C.CONFIG)
        st.caption("Error bars: 25th–75th percentile over vertices. ridge = per-subject ridge regression; "
                   "ue_single / ue_multi = Universal Encoder trained on one / all subjects; ue_pretrain = trained on "
                   "the other subjects only; ue_transfer = ue_pretrain + the new subject's embeddings.")

# ------------------------------------------------------------------ transfer curve
st.subheader("Transfer to a new subject")
tc = V.transfer_summary(store.transfer_curve())
if tc.empty:
    shell.show_skips(store, "transfer", otherwise="No transfer curve stored.")
else:
    st.caption("Accuracy on a held-out subject as a function of how many of its own images were used: the "
               "Universal Encoder only learns the new subject's voxel embeddings. Error bars: sd over the image "
               "subsamples of each size.")
    fig = go.Figure()
    for (s, m), d in tc.groupby(["subject", "method"]):
        fig.add_trace(go.Scatter(x=d["n_train"], y=d["median_r"], mode="lines+markers", name=f"{s} · {m}",
                                 error_y=dict(type="data", array=d["sd"].fillna(0))))
    fig.update_layout(height=340, margin=dict(l=60, r=20, t=30, b=80), xaxis_title="training images of the new subject",
                      yaxis_title="median r (evaluation images)", plot_bgcolor="white")
    ns = sorted(int(n) for n in tc["n_train"].unique())
    fig.update_xaxes(type="log", tickmode="array", tickvals=ns, ticktext=[str(n) for n in ns])  # the sizes run
    st.plotly_chart(C.tidy(fig), key="transfer", theme=None, config=C.CONFIG)

pm = store.pair_model()
if not pm.empty:
    st.subheader("Pair-dissimilarity model")
    st.caption("Can the dissimilarity of two images' brain responses be predicted from the two images' backbone "
               "embeddings alone? A model of symmetric pair features is trained on pairs of training images and "
               "scored on pairs of held-out images (images, not pairs, are split): value = Spearman correlation (or "
               "r²) of predicted and measured dissimilarities; baseline = the same score of the plain embedding "
               "distance (no fitting); '—': no baseline for r².")
    show = pd.DataFrame({"data / scored on": pm["split"], "score": pm["metric"].replace({"r2": "r²"}),
                         "model": [f"{v:.3f}" if pd.notna(v) else "—" for v in pm["value"]],
                         "baseline (embedding distance)": [f"{v:.3f}" if pd.notna(v) else "—" for v in pm["baseline"]]})
    st.dataframe(show, hide_index=True)
