"""RDM explorer: representational dissimilarity matrices of measured / predicted responses and backbone
layers, extreme image pairs, RSA against the brain, and the REAL 92-image human-IT data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_shell import page_store
from brainviz import app_support as S

st.set_page_config(page_title="RDM explorer · BrainViz", page_icon="🧠", layout="wide")
store, path = page_store()

st.title("RDM explorer")
kind, text = S.banner(store)
getattr(st, kind)(text)
st.caption("A representational dissimilarity matrix (RDM) holds, for every pair of images, how different the "
           "response patterns they evoke are. Blocks along the diagonal = categories the region groups together.")

tags = store.image_tags()
k92_ids = S.k92_rdm_ids(store)
all_rdms = S.rdm_choices(store.list_rdms())
rdms = all_rdms[~all_rdms["rdm_id"].isin(k92_ids)]


def heatmap(rdm: np.ndarray, keys: list[str], order_how: str, categories=None, height=560):
    order, cats = S.rdm_order(rdm, keys, order_how, tags, categories)
    R = rdm[np.ix_(order, order)]
    k = [keys[i] for i in order]
    if len(k) <= 250:  # per-cell hover names; bigger RDMs hover by position only (payload size)
        hover = np.array([[f"{a} ({ca})<br>{b} ({cb})" for b, cb in zip(k, cats)] for a, ca in zip(k, cats)])
        extra = dict(text=hover, hovertemplate="%{text}<br>dissimilarity %{z:.3f}<extra></extra>")
    else:
        extra = dict(hovertemplate="images #%{y} and #%{x}<br>dissimilarity %{z:.3f}<extra></extra>")
    fig = go.Figure(go.Heatmap(z=R.astype(np.float32), x=list(range(len(k))), y=list(range(len(k))),
                               colorscale="Viridis", colorbar=dict(title=dict(text="dissimilarity")), **extra))
    if order_how == "category":  # category boundaries and labels
        edges = [i for i in range(1, len(cats)) if cats[i] != cats[i - 1]]
        for e in edges:
            fig.add_shape(type="line", x0=e - 0.5, x1=e - 0.5, y0=-0.5, y1=len(k) - 0.5, line=dict(color="white", width=1))
            fig.add_shape(type="line", y0=e - 0.5, y1=e - 0.5, x0=-0.5, x1=len(k) - 0.5, line=dict(color="white", width=1))
        starts = [0] + edges
        ends = edges + [len(cats)]
        fig.update_xaxes(tickmode="array", tickvals=[(a + b - 1) / 2 for a, b in zip(starts, ends)],
                         ticktext=[cats[a] for a in starts], tickangle=-45)
        fig.update_yaxes(tickmode="array", tickvals=[(a + b - 1) / 2 for a, b in zip(starts, ends)],
                         ticktext=[cats[a] for a in starts])
    else:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=90, r=10, t=30, b=90), plot_bgcolor="white")
    return fig


# ------------------------------------------------------------------ brain / model RDMs
if rdms.empty:
    st.info(f"This store has no RDMs of the study's images. Rebuild with `{S.BUILD_COMMANDS[0]}`.")
else:
    brain = rdms[rdms["subject"].notna()]
    other = rdms[rdms["subject"].isna()]
    with st.sidebar:
        st.header("RDM")
        subjects = sorted(brain["subject"].unique()) or ["(none)"]
        subject = st.selectbox("Subject", subjects)
        sb = brain[brain["subject"] == subject]
        rois = sorted(sb["roi"].dropna().unique())
        roi = st.selectbox("ROI (set)", rois) if rois else None
        metrics = sorted(rdms["metric"].unique())
        metric = st.selectbox("Metric", metrics, format_func=lambda m: {"correlation": "1 − Pearson r"}.get(m, m))
        cands = pd.concat([sb[(sb["roi"] == roi) & (sb["metric"] == metric)], other[other["metric"] == metric]])
        sources = list(dict.fromkeys(cands["source"]))
        source = st.selectbox("Source", sources, format_func=S.source_label) if sources else None
        order_how = st.radio("Order images by", ["category", "clustering", "stored"], horizontal=True,
                             help="category: grouped by the images' main tag; clustering: hierarchical clustering "
                                  "(average linkage) leaves order")
    row = cands[cands["source"] == source]
    if row.empty:
        st.info("No RDM for this combination.")
    else:
        rdm_id = row["rdm_id"].iloc[0]
        R, keys = store.rdm(rdm_id)
        label = f"{subject} · {roi}" if row["subject"].notna().iloc[0] else "model / layer"
        sim = " · SIMULATED" if store.simulated and source in ("measured", "predicted") else ""
        c1, c2 = st.columns([3, 2])
        with c1:
            st.markdown(f"**{label} · {source} · {metric}{sim}**")
            st.plotly_chart(heatmap(R, keys, order_how), key="rdm_heatmap", theme=None)
            st.caption(f"{len(keys)} images; RDM id `{rdm_id}`.")
        with c2:
            st.subheader("RSA: this RDM vs others")
            rsa = store.rsa(rdm_id)
            if rsa.empty:
                st.write("No RSA results stored for this RDM.")
            else:
                rsa = rsa.copy()
                names = S.rdm_labels(all_rdms)
                other_ids = np.where(rsa["rdm_a"] == rdm_id, rsa["rdm_b"], rsa["rdm_a"])
                rsa["compared with"] = [names.get(i, i) for i in other_ids]
                rsa = rsa.sort_values("value").reset_index(drop=True)
                fig = go.Figure()
                fig.add_trace(go.Bar(y=rsa["compared with"], x=rsa["value"], orientation="h", name="RSA",
                                     text=[f"p={p:.3g}" if pd.notna(p) else "" for p in rsa["p_value"]],
                                     textposition="outside", marker_color="#3b6fb6"))
                for i, r in rsa.iterrows():  # noise ceiling of the brain RDM, per comparison
                    if pd.notna(r["nc_lower"]) and pd.notna(r["nc_upper"]):
                        fig.add_shape(type="rect", y0=i - 0.45, y1=i + 0.45, x0=r["nc_lower"], x1=r["nc_upper"],
                                      fillcolor="rgba(128,128,128,0.35)", line=dict(width=0))
                fig.update_layout(height=120 + 34 * len(rsa), margin=dict(l=10, r=30, t=10, b=50),
                                  xaxis_title="RSA correlation", plot_bgcolor="white", showlegend=False)
                fig.update_yaxes(automargin=True)
                st.plotly_chart(fig, key="rsa_bar", theme=None)
                st.caption("Gray band: noise ceiling (lower–upper) of the brain RDM; p: permutation test over images.")
                st.dataframe(rsa[["compared with", "method", "value", "p_value", "nc_lower", "nc_upper"]],
                             hide_index=True)

        st.subheader("Extreme pairs")
        pairs = store.extreme_pairs(rdm_id)
        if pairs.empty:
            st.write("No extreme pairs stored for this RDM.")
        else:
            paths = S.image_paths(store, list(pairs["image_a"]) + list(pairs["image_b"]))
            kinds = S.pair_kinds(pairs["kind"].unique())
            cols = st.columns(len(kinds))
            for col, (kind_, title) in zip(cols, kinds):
                with col:
                    st.markdown(f"**{title}**")
                    for _, p in pairs[pairs["kind"] == kind_].sort_values("rank").head(4).iterrows():
                        a, b = st.columns(2)
                        a.image(S.thumbnail(paths.get(p["image_a"], "")), caption=S.tag_caption(p["image_a"], tags))
                        b.image(S.thumbnail(paths.get(p["image_b"], "")), caption=S.tag_caption(p["image_b"], tags))
                        st.markdown(f"dissimilarity **{p['value']:.3f}**")

# ------------------------------------------------------------------ the 92 images, REAL human IT
st.header("The 92-image set: REAL human IT data")
st.success("This section is **REAL data**: fMRI of human inferior temporal cortex (4 subjects × 2 sessions) for the "
           "92 object images of Kriegeskorte et al. (2008, Neuron), from the rsatoolbox demo data. "
           "Models are compared with it by RSA.")
k92 = store.k92_rsa()
if k92.empty and not k92_ids:
    st.info("No 92-image results in this store.")
else:
    c1, c2 = st.columns([2, 3])
    with c1:
        if k92_ids:
            kid = st.selectbox("RDM", k92_ids)
            R, keys = store.rdm(kid)
            k92_order = st.radio("Order", ["stored", "clustering"], horizontal=True, key="k92_order",
                                 help="stored = the original order (animate, then inanimate objects)")
            st.plotly_chart(heatmap(R, keys, k92_order, categories=["" for _ in keys], height=460),
                            key="k92_heatmap", theme=None)
    with c2:
        if not k92.empty:
            methods = sorted(k92["method"].unique())
            meth = st.selectbox("RSA method", methods, key="k92_method")
            d = k92[k92["method"] == meth].sort_values("value", ascending=False)
            fig = go.Figure(go.Bar(x=d["model"], y=d["value"], marker_color="#3b6fb6",
                                   text=[f"p={p:.3g}" if pd.notna(p) else "" for p in d["p_value"]],
                                   textposition="outside"))
            if d["nc_lower"].notna().any():
                lo, hi = float(d["nc_lower"].dropna().iloc[0]), float(d["nc_upper"].dropna().iloc[0])
                fig.add_hrect(y0=lo, y1=hi, fillcolor="gray", opacity=0.25, line_width=0,
                              annotation_text="noise ceiling", annotation_position="top left")
            fig.update_layout(height=420, margin=dict(l=60, r=20, t=30, b=80), plot_bgcolor="white",
                              yaxis_title=f"RSA with human IT ({meth})")
            st.plotly_chart(fig, key="k92_bar", theme=None)
            st.dataframe(d, hide_index=True)
