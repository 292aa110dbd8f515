"""Decoding: identify a held-out image from its brain response, in both directions -- the ridge DECODER
(response -> image embedding) and the ENCODERS (image -> predicted response, compared with the measured
one) -- per ROI set, whole cortex and a validated vote over ROI sets, among the same candidates."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from webapp import charts as C
from webapp import shell
from webapp import viewmodel as V

store, path = shell.page_start(__file__)

st.caption(f"Candidates: the {V.evaluation_label(store)} of each subject.")
dec = store.decoding()
if dec.empty:
    if shell.show_skips(store, "decoding", "evaluation"):
        st.stop()
    shell.stop_nothing_stored("No decoding results in this store.")
dec = dec.copy()
if "approach" not in dec.columns:
    dec["approach"] = "decoder"
dec["approach"] = dec["approach"].fillna("decoder")
tags = store.image_tags()
APPROACH_LABEL = {"decoder": "decoder (ridge, response → embedding)",
                  "encoder:ue_multi": "encoder: Universal Encoder (multi-subject)",
                  "encoder:ridge": "encoder: ridge (per subject)"}


SHORT = {"decoder": "decoder", "encoder:ue_multi": "encoder: UE", "encoder:ridge": "encoder: ridge"}


def approach_label(a: str) -> str:
    return APPROACH_LABEL.get(a, a)


with st.sidebar:
    st.header("Decoding")
    subject = st.selectbox("Subject", sorted(dec["subject"].unique()))
    d = dec[dec["subject"] == subject]
    summary = V.identification_summary(d)  # approaches: the method that works first (the encoders on the demo brain)
    best_top1 = summary.groupby("approach")["top1"].max().to_dict()
    approaches = list(dict.fromkeys(summary["approach"]))
    sets = sorted(d["roi_set"].unique(), key=lambda s: (V.DECODING_SET_ORDER.get(s, 9), s))
    keys = sorted(d["image_key"].unique())
    captions = V.tag_captions(keys, tags)
    image_key = st.selectbox("Held-out image", keys, format_func=lambda k: captions.get(k, k))
    n_show = st.slider("Candidates shown", 3, 10, 5)

n_cand = len(keys)
top_a = approaches[0]
st.markdown(
    f"From a brain response to a held-out image, which of the {n_cand} held-out images was seen? "
    f"**{approach_label(top_a)}** finds it best here (top-1 **{C.percent(best_top1[top_a])}**, chance "
    f"{C.percent(1 / n_cand, 1)})."
    + (f" The **decoder** is far weaker (top-1 {C.percent(best_top1['decoder'])}): it has to map the whole response to "
       "the backbone's image embedding from a few hundred training images, while an encoder only has to predict "
       "the response of each candidate image and compare." if "decoder" in best_top1 and top_a != "decoder" else ""))
with st.expander("How the two directions work"):
    st.markdown(
        "- **Encoder** (Kay et al. 2008): a trained encoder PREDICTS the response to every candidate image; the "
        "candidates are ranked by the Pearson r of the measured response with each prediction.\n"
        "- **Decoder**: a ridge model maps the measured response to the backbone's image embedding; the candidates "
        "are ranked by the cosine similarity of their embedding to the decoded one.\n"
        "- **ROI sets** (report 003): set1 = early visual + FFA + PPA, set2 = category-selective ROIs, set3 = the "
        "streams; whole cortex = every vertex. **vote** combines the three sets with weights chosen on held-out "
        "queries only (each image is scored with weights picked on the other half of the images); **vote (equal "
        "weights)** is the plain average.")

# ------------------------------------------------------------------ summary table: encoders vs decoder
st.subheader(f"Identification accuracy · {subject}")
summ = summary.assign(**{"ROI set": summary["roi_set"], "top-1": summary["top1"], "mean rank": summary["mean_rank"],
                         "_o": [V.DECODING_SET_ORDER.get(s, 9) for s in summary["roi_set"]],
                         "_a": [approaches.index(a) for a in summary["approach"]]})
wide = summ.pivot_table(index=["_o", "ROI set"], columns="_a", values=["top-1", "mean rank"], sort=False)
wide = wide.sort_index(level=0).droplevel(0)
wide = wide[[(m, i) for i in range(len(approaches)) for m in ("top-1", "mean rank") if (m, i) in wide.columns]]
TINY = {"decoder": "decoder", "encoder:ue_multi": "UE", "encoder:ridge": "ridge enc."}  # narrow table columns
wide.columns = [f"{TINY.get(approaches[i], approaches[i])} {m.replace('mean rank', 'rank')}" for m, i in wide.columns]
fmt = {c: ("{:.0%}" if c.endswith("top-1") else "{:.1f}") for c in wide.columns}
st.dataframe(wide.style.format(fmt), column_config={"ROI set": st.column_config.TextColumn("ROI set", width="medium")})
# rows that are the same ranking (e.g. a set covering every vertex = whole cortex; a vote that chose one set)
same = {sets_: [TINY.get(a, a) for a in who] for sets_, who in V.identical_rankings(summary).items()}
rois_here = store.decoding_rois(subject)
full_sets = V.sets_covering_every_vertex(rois_here, store.n_vertices(subject)) if not rois_here.empty else set()
notes = [f"**{s}** covers every vertex of {subject}'s data: it is the same ROI set as whole cortex"
         for s in sorted(full_sets)]
for group, who in same.items():
    why = " (the validated vote put its weight on one set)" if any(g.startswith("vote") for g in group) else ""
    notes.append(" = ".join(f"**{g}**" for g in group) + f" for {', '.join(who)}: the same rank for every "
                 f"image{why}")
st.caption("UE = identification through the multi-subject Universal Encoder, ridge enc. = through the subject's ridge "
           "encoder, decoder = ridge decoder. "
           "Top-1: share of the held-out images whose true image is ranked first; rank: mean rank, 1 = always first, "
           f"chance {(n_cand + 1) / 2:.1f}. {n_cand} held-out images, every one a candidate for every query: chance "
           f"top-1 = {C.percent(1 / n_cand, 1)}." + (" Responses are SIMULATED (demo brain)." if store.simulated else ""))
if notes:
    st.caption("Identical rows: " + "; ".join(notes) + ".")

# ------------------------------------------------------------------ rank histograms, same bins for both directions
st.subheader("Rank of the true image: decoder vs encoder")
default = [s for s in ("set1", "vote") if s in sets] or sets[:1]
show_sets = st.multiselect("ROI sets", sets, default=default, key="hist_sets")
bins = dict(start=0.5, end=n_cand + 0.5, size=max(1, int(np.ceil(n_cand / 40))))
cols = st.columns(len(approaches))
for col, a in zip(cols, approaches):
    fig = go.Figure()
    for s in show_sets:
        fig.add_trace(go.Histogram(x=d[(d["approach"] == a) & (d["roi_set"] == s)]["rank"], name=s, opacity=0.65,
                                   xbins=bins, autobinx=False))
    fig.update_layout(barmode="overlay", height=280, margin=dict(l=50, r=10, t=30, b=50),
                      xaxis_title="rank of the true image (1 = best)", yaxis_title="images", plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(range=[0.5, n_cand + 0.5])
    with col:  # the title above the chart: in a narrow column the chart's tool bar covers an in-figure title
        st.markdown(f"**{approach_label(a)}**")
        st.plotly_chart(C.tidy(fig), key=f"rank_hist_{a}", theme=None, config=C.CONFIG)

# ------------------------------------------------------------------ vote weights and ROI availability
c1, c2 = st.columns([2, 3])
with c1:
    st.markdown("**Validated vote: weights over ROI sets**")
    wts = store.decoding_weights(subject)
    if wts.empty:
        st.write("Not stored (older store): the vote here is an equal-weight average.")
    else:
        wt = wts.pivot_table(index="roi_set", columns="approach", values="weight")
        wt.columns = [SHORT.get(c, c) for c in wt.columns]
        st.dataframe(wt.style.format("{:.2f}"))
        st.caption("Mean over the two cross-fitting folds; each fold's weights were chosen (by mean rank) on the "
                   "OTHER fold's images among a grid that includes every single set alone, so the vote can only "
                   "beat the best set if a mix helps on held-out images.")
with c2:
    st.markdown("**Which ROIs of each set exist in the loaded data**")
    rois = store.decoding_rois(subject)
    if rois.empty:
        st.write("Not stored in this store (rebuild to see it).")
    else:
        lines = []
        for s, g in rois.groupby("roi_set", sort=True):
            present = [f"{r.roi} ({int(r.n_vertices)})" for r in g.itertuples() if r.n_vertices > 0]
            absent = [r.roi for r in g.itertuples() if r.n_vertices == 0]
            lines.append(f"- **{s}**: {', '.join(present) or 'none'}"
                         + (f" — **absent**: {', '.join(absent)}" if absent else "")
                         + (" — every vertex: the same as whole cortex" if s in full_sets else ""))
        st.markdown("\n".join(lines))
        st.caption("In parentheses: vertices of that ROI in this subject's data. Absent ROIs contribute nothing "
                   "to their set's decoder or identifier.")

# ------------------------------------------------------------------ one image
st.subheader("Retrieved images")
approach = st.radio("Direction", approaches, format_func=approach_label, horizontal=True, key="img_approach",
                    help="Opens on the direction that identifies the images best for this subject.")
rows = d[(d["image_key"] == image_key) & (d["approach"] == approach)].copy()
rows["o"] = rows["roi_set"].map(lambda s: V.DECODING_SET_ORDER.get(s, 9))
rows = rows.sort_values("o")
all_keys = [image_key] + [k for lst in rows["top_keys"] for k in (list(lst) if lst is not None else [])]
pics = V.thumbnails(store, list(dict.fromkeys(all_keys)))
true_col, rest = st.columns([1, 5])
with true_col:
    st.markdown("**True image**")
    st.image(pics[image_key], caption=captions[image_key])
with rest:
    for _, r in rows.iterrows():
        top = list(r["top_keys"]) if r["top_keys"] is not None else []
        cos = f" · cosine {r['cosine']:.2f}" if r.get("cosine") is not None and r["cosine"] == r["cosine"] else ""
        st.markdown(f"**{r['roi_set']}** — true image ranked **{int(r['rank'])}** of {n_cand}{cos}")
        cols = st.columns(n_show)
        for i, (c, k) in enumerate(zip(cols, top[:n_show])):
            hit = "✓ TRUE · " if k == image_key else ""
            c.image(pics[k], caption=f"{hit}#{i + 1} {captions.get(k) or V.tag_caption(k, tags)}")
