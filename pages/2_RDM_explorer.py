"""RDM explorer: representational dissimilarity matrices of measured / predicted responses and backbone
layers, extreme image pairs, RSA against the brain, and the REAL 92-image human-IT data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from webapp import charts as C
from webapp import messages as M
from webapp import shell
from webapp import viewmodel as V

store, path = shell.page_start(__file__)
st.caption("A representational dissimilarity matrix (RDM) holds, for every pair of images, how different the "
           "response patterns they evoke are. Blocks along the diagonal = categories the region groups together.")

tags = store.image_tags()
k92_ids = V.k92_rdm_ids(store)
all_rdms = V.rdm_choices(store.list_rdms())
rdms = all_rdms[~all_rdms["rdm_id"].isin(k92_ids)]


def heatmap(rdm: np.ndarray, keys: list[str], order_how: str, categories=None, height=560):
    order, cats = V.rdm_order(rdm, keys, order_how, tags, categories)
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
        # a label per category block, leaving out small blocks whose labels would run into their neighbours;
        # the square plot area is at most height - 150 px, and about 250 px in a column of a 1,280 px window
        vals, text = C.spaced_ticks(starts, ends, [cats[a] for a in starts], len(k), min(height - 150, 250))
        fig.update_xaxes(tickmode="array", tickvals=vals, ticktext=text, tickangle=-45)
        fig.update_yaxes(tickmode="array", tickvals=vals, ticktext=text)
    else:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=130, r=10, t=30, b=120), plot_bgcolor="white")
    return C.tidy(fig)


# ------------------------------------------------------------------ brain / model RDMs
if rdms.empty:
    shell.show_skips(store, "evaluation", "RDM", otherwise=M.rebuild_hint("This store has no RDMs of the study's images."))
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
        source = st.selectbox("Source", sources, format_func=V.source_label,
                              help="measured: the subject's responses; predicted: an encoder's predictions; "
                                   "layer: a layer of the image backbone. `block<i>_s<stride>` is block i of the "
                                   "backbone (0 = the first), its output every <stride> pixels of the 224-pixel "
                                   "input (s4 early and fine, s32 late and coarse: a 7 × 7 grid)."
                              ) if sources else None
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
            st.plotly_chart(heatmap(R, keys, order_how), key="rdm_heatmap", theme=None, config=C.CONFIG)
            st.caption(f"{len(keys)} images{' (' + V.evaluation_label(store, subject) + ')' if source in ('measured', 'predicted') else ''}; "
                       f"RDM id `{rdm_id}`."
                       + (" Labels of small category blocks are left out where they would overlap (hover a cell "
                          "for its images)." if order_how == "category" else ""))
        with c2:
            st.subheader("RSA: this RDM vs others")
            rsa = store.rsa(rdm_id)
            if rsa.empty:
                st.write("No RSA results stored for this RDM.")
            else:
                rsa = rsa.copy()
                names = V.rdm_labels(all_rdms)
                other_ids = np.where(rsa["rdm_a"] == rdm_id, rsa["rdm_b"], rsa["rdm_a"])
                rsa["compared with"] = [names.get(i, i) for i in other_ids]
                rsa = rsa.sort_values("value").reset_index(drop=True)
                # bar labels without what this RDM already says (its subject, metric), wrapped: the column is narrow
                same = {str(subject), str(metric)}
                short = ["<br>".join(C.wrap(" · ".join(p for p in str(n).split(" · ") if p not in same), 24))
                         for n in rsa["compared with"]]
                fig = go.Figure()
                fig.add_trace(go.Bar(y=short, x=rsa["value"], orientation="h", name="RSA",
                                     text=[f"p={p:.3g}" if pd.notna(p) else "" for p in rsa["p_value"]],
                                     textposition="outside", marker_color="#3b6fb6"))
                own = rsa["compared with"].str.contains("predicted") & (rsa.get("nc_within") is not None)
                for i, r in rsa.iterrows():
                    within = r.get("nc_within")
                    if own.iloc[i] and pd.notna(within):
                        # subject-specific comparison (the subject's own predicted RDM): within-subject ceiling
                        fig.add_shape(type="line", y0=i - 0.45, y1=i + 0.45, x0=within, x1=within,
                                      line=dict(color="#c0392b", width=3))
                    elif pd.notna(r["nc_lower"]) and pd.notna(r["nc_upper"]):
                        # one model RDM vs every subject: between-subject (Nili) band
                        fig.add_shape(type="rect", y0=i - 0.45, y1=i + 0.45, x0=r["nc_lower"], x1=r["nc_upper"],
                                      fillcolor="rgba(128,128,128,0.35)", line=dict(width=0))
                fig.update_layout(height=130 + 34 * len(rsa), margin=dict(l=10, r=70, t=10, b=50),
                                  xaxis_title="RSA correlation", plot_bgcolor="white", showlegend=False)
                fig.update_yaxes(automargin=True)
                fig.update_traces(cliponaxis=False)  # p-values beside the longest bar stay in the figure's margin
                st.plotly_chart(C.tidy(fig), key="rsa_bar", theme=None, config=C.CONFIG)
                st.caption("Gray band: BETWEEN-subject noise ceiling (Nili; lower–upper), for a model RDM that is the "
                           "same for every subject (a network layer). Red tick: WITHIN-subject ceiling (split-half "
                           "RDM reliability from this subject's repeats, Spearman-Brown corrected, square root), for "
                           "the subject's OWN predicted RDM. p: permutation test over images.")
                cols = [c for c in ["compared with", "method", "value", "p_value", "nc_lower", "nc_upper", "nc_within",
                                    "reliability_within"] if c in rsa.columns]
                st.dataframe(C.drop_empty(rsa[cols], ["nc_lower", "nc_upper", "nc_within", "reliability_within"]),
                             hide_index=True)
                shell.show_skips(store, "ceiling", subject=subject)

        st.subheader("Extreme pairs")
        pairs = store.extreme_pairs(rdm_id)
        if pairs.empty:
            st.write("No extreme pairs stored for this RDM.")
        else:
            shown = pairs.sort_values("rank").groupby("kind").head(4)
            pics = V.thumbnails(store, list(shown["image_a"]) + list(shown["image_b"]))
            captions = V.tag_captions(list(shown["image_a"]) + list(shown["image_b"]), tags)
            kinds = V.pair_kinds(pairs["kind"].unique())
            cols = st.columns(len(kinds))
            for col, (kind_, title) in zip(cols, kinds):
                with col:
                    st.markdown(f"**{title}**")
                    for _, p in pairs[pairs["kind"] == kind_].sort_values("rank").head(4).iterrows():
                        a, b = st.columns(2)
                        a.image(pics[p["image_a"]], caption=captions[str(p["image_a"])])
                        b.image(pics[p["image_b"]], caption=captions[str(p["image_b"])])
                        st.markdown(f"dissimilarity **{p['value']:.3f}**")

# ------------------------------------------------------------------ the 92 images, REAL human IT
st.header("The 92-image set: REAL human IT data")
st.success("This section is **REAL data**: fMRI of human inferior temporal cortex (4 subjects × 2 sessions) for the "
           "92 object images of Kriegeskorte et al. (2008, Neuron), from the rsatoolbox demo data. "
           "Models are compared with it by RSA.")
k92 = store.k92_rsa()
if k92.empty and not k92_ids:
    shell.show_skips(store, "92-image", otherwise="No 92-image results in this store.")
else:
    methods = sorted(k92["method"].unique()) if not k92.empty else []
    meth = st.radio("RSA statistic", methods, horizontal=True, key="k92_method",
                    format_func=lambda m: {"kendall_tau_a": "Kendall τa", "spearman": "Spearman ρ"}.get(m, m),
                    index=methods.index("kendall_tau_a") if "kendall_tau_a" in methods else 0) if methods else None
    d = k92[k92["method"] == meth].copy() if meth else k92
    if "family" not in d.columns or d["family"].isna().all():  # older store: no depth sweep
        d["family"] = np.where(d["model"].str.startswith("reference"), "reference", "layer")
        d["depth"] = np.nan
    blocks = d[(d["family"] == "block") & d["depth"].notna()].sort_values("depth")
    refs = d[d["family"] == "reference"].sort_values("value", ascending=False)
    lo = float(d["nc_lower"].dropna().iloc[0]) if d["nc_lower"].notna().any() else None
    hi = float(d["nc_upper"].dropna().iloc[0]) if d["nc_upper"].notna().any() else None
    if not blocks.empty:
        st.subheader("Which block of the network is most IT-like?")
        names = [m.split(" ", 1)[-1] for m in blocks["model"]]
        fig = go.Figure()
        if lo is not None and hi is not None:
            fig.add_hrect(y0=lo, y1=hi, fillcolor="gray", opacity=0.22, line_width=0,
                          annotation_text="noise ceiling (between-subject, Nili)", annotation_position="top left")
        palette = ["#c0392b", "#8e44ad", "#16a085", "#d35400", "#2c3e50", "#7f8c8d", "#27ae60", "#b7950b",
                   "#1f618d", "#a04000"]
        # reference models as dotted lines named in the legend: labels written beside the lines overlap
        # where two references score alike (e.g. 'behaviour' and 'EVA')
        for i, r in enumerate(refs.itertuples()):
            fig.add_trace(go.Scatter(x=names, y=[r.value] * len(names), mode="lines",
                                     name=f"{r.model.replace('reference: ', '')} ({r.value:.2f})",
                                     legendgroup="references", legendgrouptitle_text="reference models",
                                     line=dict(color=palette[i % len(palette)], dash="dot", width=1.4),
                                     hovertemplate=f"{r.model}: {r.value:.3f}<extra></extra>"))
        sem = blocks["rsa_sem"] if "rsa_sem" in blocks else None
        fig.add_trace(go.Scatter(x=names, y=blocks["value"], mode="lines+markers", name="mean over 4 subjects (± SEM)",
                                 line=dict(color="#3b6fb6", width=3),
                                 error_y=dict(type="data", array=sem, visible=sem is not None),
                                 text=[f"p={p:.3g}" for p in blocks["p_value"]],
                                 hovertemplate="%{x}: %{y:.3f} (%{text})<extra></extra>"))
        if "rsa_mean" in blocks and blocks["rsa_mean"].notna().any():
            fig.add_trace(go.Scatter(x=names, y=blocks["rsa_mean"], mode="lines", name="vs subject-mean RDM",
                                     line=dict(color="#3b6fb6", dash="dash", width=1.5)))
        fig.update_layout(height=500, margin=dict(l=60, r=20, t=30, b=110), plot_bgcolor="white",
                          xaxis_title="network depth (every block, full spatial resolution; 1 − Pearson RDMs)",
                          yaxis_title=f"RSA with human IT ({meth})",
                          legend=dict(x=1.02, xanchor="left", y=1.0, yanchor="top", font=dict(size=11),
                                      groupclick="toggleitem"))
        fig.update_xaxes(tickangle=-45, categoryorder="array", categoryarray=names)
        st.plotly_chart(C.tidy(fig), key="k92_depth", theme=None, config=C.CONFIG)
        st.caption("Blue: RSA of each block's RDM with each subject's session-averaged human-IT RDM, mean ± SEM "
                   "over the 4 subjects (p: image-label permutation test). Gray band: the between-subject noise "
                   "ceiling of the SAME statistic (lower = each subject vs the others' pooled RDM; upper = vs all "
                   "subjects' pooled RDM). Dotted lines: reference models (not network blocks), named in the legend "
                   "with their score. Dashed: against the subject-mean RDM, which is less noisy than one subject, so "
                   "the band does not apply to it. Block names: `block<i>_s<stride>` is block i of the backbone "
                   "(0 = the first), its output every <stride> pixels of the 224-pixel input (s32: a 7 × 7 grid).")
    if blocks.empty and not d.empty:  # older store: a bar per model
        st.info("This store predates the all-block depth sweep; rebuild it to see RSA vs network depth.")
        dd = d.sort_values("value", ascending=False)
        fig = go.Figure(go.Bar(x=dd["model"], y=dd["value"], marker_color="#3b6fb6"))
        if lo is not None and hi is not None:
            fig.add_hrect(y0=lo, y1=hi, fillcolor="gray", opacity=0.25, line_width=0,
                          annotation_text="noise ceiling", annotation_position="top left")
        fig.update_layout(height=380, margin=dict(l=60, r=20, t=30, b=80), plot_bgcolor="white",
                          yaxis_title=f"RSA with human IT ({meth})")
        st.plotly_chart(C.tidy(fig), key="k92_bar", theme=None, config=C.CONFIG)
    fit = store.k92_fit()
    if not fit.empty:
        f = fit[fit["method"] == meth]
        keep = f[~f["model"].str.startswith("layer: ")].copy()
        if not keep.empty:
            st.markdown("**Fitted mix of blocks, scored on held-out images of held-out subjects**")
            keep["reaches lower ceiling"] = np.where(keep["value"] >= keep["nc_lower"], "yes", "no")
            st.dataframe(keep[["model", "value", "value_sem", "nc_lower", "nc_upper", "reaches lower ceiling",
                               "n_folds"]], hide_index=True,
                         column_config={"value": st.column_config.NumberColumn("held-out RSA", format="%.3f"),
                                        "value_sem": st.column_config.NumberColumn("SEM (folds)", format="%.3f"),
                                        "nc_lower": st.column_config.NumberColumn("ceiling lower", format="%.3f"),
                                        "nc_upper": st.column_config.NumberColumn("ceiling upper", format="%.3f")})
            w = keep["weights"].dropna()
            if len(w):
                top = {k: v for k, v in sorted(w.iloc[0].items(), key=lambda kv: -kv[1]) if v > 0}
                st.caption("Non-negative weights fitted to the subject-mean RDM on pairs of training images of "
                           "training subjects (3 image folds x 2 subject folds x 5 repeats); scored only on pairs of "
                           "held-out images of held-out subjects; the ceiling is computed on the same held-out "
                           "images. Weights on all data: " + ", ".join(f"{k} {v:.2f}" for k, v in top.items()))
    if k92_ids:
        st.subheader("Best block beside human IT (same category order)")
        cat_tags = store.image_tags()
        best_id = None
        if not blocks.empty and "rdm_id" in blocks and blocks["rdm_id"].notna().any():
            best_id = blocks.sort_values("value", ascending=False)["rdm_id"].iloc[0]
        human_id = next((i for i in k92_ids if "human" in i.lower()), k92_ids[0])
        c1, c2 = st.columns(2)
        with c1:
            left = st.selectbox("Left", k92_ids, index=k92_ids.index(human_id), key="k92_left")
        with c2:
            right = st.selectbox("Right", k92_ids, index=k92_ids.index(best_id) if best_id in k92_ids else 0,
                                 key="k92_right")
        for col, rid in zip((c1, c2), (left, right)):
            R, keys = store.rdm(rid)
            cats = [str(cat_tags.loc[k, "tags"]) if "tags" in cat_tags.columns and k in cat_tags.index else ""
                    for k in keys]
            with col:
                st.markdown(f"**{rid.replace('k92|', '')}**")
                st.plotly_chart(heatmap(R, keys, "category", categories=cats, height=470), key=f"k92_hm_{rid}_{col}",
                                theme=None, config=C.CONFIG)
        st.caption("Both RDMs are shown in the same order: images grouped by category (artificial inanimate, "
                   "human body part, human face, natural inanimate, non-human body part, non-human face; "
                   "original order within each).")
    if not d.empty:
        with st.expander("Full table (every block, the encoder's 7x7-pooled layers, reference models)"):
            cols = [c for c in ["model", "family", "value", "rsa_sem", "rsa_mean", "p_value", "nc_lower", "nc_upper"]
                    if c in d.columns]
            st.dataframe(d.sort_values(["family", "depth", "value"])[cols], hide_index=True)
