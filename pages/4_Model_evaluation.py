"""Model evaluation: accuracy maps on the brain (r, noise ceiling, noise-normalized accuracy), per-ROI
tables, retrieval, single vs multi subject, transfer curve."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from brainviz import plotting as B
from brainviz.rois import ROI_GROUP_COLUMNS
from webapp import shell
from webapp import viewmodel as V
from webapp.brainview import brain_view, store_hover_rois
from webapp.downloads import map_downloads

store, path = shell.page_start(__file__)

models = store.models()
if models.empty:
    shell.stop_nothing_stored("No trained models in this store.")
METRICS = {"r": ("Pearson r (test set)", "RdBu_r", True),
           "nc": ("noise ceiling (fraction of explainable variance)", "viridis", False),
           "nna": ("noise-normalized accuracy r² / nc", "magma", False)}

with st.sidebar:
    st.header("Accuracy map")
    model_id = st.selectbox("Model", V.model_options(store))
    row = models[models["model_id"] == model_id].iloc[0]
    subjects = list(row["subjects"]) if row["subjects"] is not None else []
    subjects = [s for s in subjects if not store.vertex_metrics(model_id, s).empty] or subjects
    subject = st.selectbox("Subject", subjects)
    metric = st.radio("Map", list(METRICS), horizontal=True, format_func=lambda m: {"r": "r", "nc": "noise ceiling",
                                                                                  "nna": "normalized"}[m])
    surface = st.radio("Surface", B.SURFACES, horizontal=True, key="surface",
                       format_func=lambda s: {"flat": "flat-ish"}.get(s, s))
    view = st.selectbox("View", list(B.VIEWS), index=list(B.VIEWS).index(B.DEFAULT_VIEW), disabled=surface == "flat")
    thr = st.slider("Hide |value| below", 0.0, 0.5, 0.0, 0.01)
    outline_name = st.selectbox("ROI outlines", ["none"] + list(V.ROI_CLASS_COLUMNS), index=0)

# ------------------------------------------------------------------ map
vm = store.vertex_metrics(model_id, subject) if subject else pd.DataFrame()
title = desc = None
if vm.empty or metric not in vm or vm[metric].isna().all():
    st.info(f"No per-vertex {metric} stored for {model_id} / {subject}.")
else:
    vertices = store.vertices(subject)
    vals = np.full(len(vertices), np.nan)
    vals[vm["vertex"].to_numpy()] = vm[metric].to_numpy(dtype=float)
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
                   title=title, colorbar_title=metric, outlines=outlines, rois=store_hover_rois(store, subject),
                   view=None if surface == "flat" else view, hover_name=metric)
    with c2:
        v = vm[metric].dropna()
        st.metric(f"median {metric}", f"{v.median():.3f}")
        st.metric("vertices", f"{len(v)}")
        if metric == "r" and "nc" in vm and vm["nc"].notna().any():
            st.metric("median noise ceiling", f"{vm['nc'].median():.2f}")
        hist = go.Figure(go.Histogram(x=v, nbinsx=40, marker_color="#3b6fb6"))
        hist.update_layout(height=220, margin=dict(l=40, r=10, t=10, b=40), xaxis_title=metric, plot_bgcolor="white")
        st.plotly_chart(hist, key="acc_hist", theme=None)

    from brainviz import export as X

    map_downloads({metric: {
        "png": dict(values_by_hemi=maps, cmap=cmap, vmin=lo, vmax=hi, threshold=thr or None, title=title,
                    colorbar_title=metric, outlines=outlines),
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
    mine = roi[(roi["model_id"] == model_id) & (roi["subject"] == subject)]
    st.dataframe(mine.drop(columns=["model_id", "subject"]), hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("median_r", "p25", "p75", "median_nna")})
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
    st.plotly_chart(fig, key="roi_models", theme=None)

# ------------------------------------------------------------------ retrieval
st.subheader("Image identification (retrieval)")
ret = store.retrieval()
if ret.empty:
    st.write("No retrieval results stored.")
else:
    st.caption("For each test image, the measured response is compared with the predicted responses of all test "
               "images; rank 1 = the right image is the best match. Chance top-1 = 1 / candidates.")
    st.dataframe(ret, hide_index=True, column_config={
        "mean_rank": st.column_config.NumberColumn(format="%.2f"),
        "top1": st.column_config.NumberColumn("top-1", format="percent"),
        "top5": st.column_config.NumberColumn("top-5", format="percent")})

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
        st.plotly_chart(fig, key="single_multi", theme=None)
        st.caption("Error bars: 25th–75th percentile over vertices. ridge = per-subject ridge regression; "
                   "ue_single / ue_multi = Universal Encoder trained on one / all subjects; ue_pretrain = trained on "
                   "the other subjects only; ue_transfer = ue_pretrain + the new subject's embeddings.")

# ------------------------------------------------------------------ transfer curve
st.subheader("Transfer to a new subject")
tc = V.transfer_summary(store.transfer_curve())
if tc.empty:
    st.write("No transfer curve stored.")
else:
    st.caption("Accuracy on a held-out subject as a function of how many of its own images were used: the "
               "Universal Encoder only learns the new subject's voxel embeddings. Error bars: sd over the image "
               "subsamples of each size.")
    fig = go.Figure()
    for (s, m), d in tc.groupby(["subject", "method"]):
        fig.add_trace(go.Scatter(x=d["n_train"], y=d["median_r"], mode="lines+markers", name=f"{s} · {m}",
                                 error_y=dict(type="data", array=d["sd"].fillna(0))))
    fig.update_layout(height=340, margin=dict(l=60, r=20, t=30, b=80), xaxis_title="training images of the new subject",
                      yaxis_title="median test r", plot_bgcolor="white")
    ns = sorted(int(n) for n in tc["n_train"].unique())
    fig.update_xaxes(type="log", tickmode="array", tickvals=ns, ticktext=[str(n) for n in ns])  # the sizes run
    st.plotly_chart(fig, key="transfer", theme=None)

pm = store.pair_model()
if not pm.empty:
    st.subheader("Pair-dissimilarity model")
    st.dataframe(pm, hide_index=True)
