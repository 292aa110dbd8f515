"""Decoding: from a held-out brain response back to the image — retrieved candidates next to the true
image, per ROI set and voted across ROI sets."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app_shell import page_store
from brainviz import app_support as S

st.set_page_config(page_title="Decoding · BrainViz", page_icon="🧠", layout="wide")
store, path = page_store()

st.title("Decoding")
kind, text = S.banner(store)
getattr(st, kind)(text)
st.caption("A ridge decoder maps a held-out brain response to the backbone's image embedding; the candidate "
           "images are ranked by cosine similarity to the decoded embedding. ROI sets: set1 = early visual + "
           "FFA + PPA, set2 = category-selective ROIs, set3 = the streams; 'vote' combines the three.")

dec = store.decoding()
if dec.empty:
    st.info(f"No decoding results in this store. Rebuild with `{S.BUILD_COMMANDS[0]}`.")
    st.stop()
tags = store.image_tags()
SET_ORDER = {"set1": 0, "set2": 1, "set3": 2, "vote": 3}

with st.sidebar:
    st.header("Decoding")
    subject = st.selectbox("Subject", sorted(dec["subject"].unique()))
    d = dec[dec["subject"] == subject]
    sets = sorted(d["roi_set"].unique(), key=lambda s: (SET_ORDER.get(s, 9), s))
    keys = sorted(d["image_key"].unique())
    image_key = st.selectbox("Held-out image", keys, format_func=lambda k: S.tag_caption(k, tags))
    n_show = st.slider("Candidates shown", 3, 10, 5)

# ------------------------------------------------------------------ summary
summ = S.decoding_summary(d)
c1, c2 = st.columns([2, 3])
with c1:
    st.subheader(f"Accuracy · {subject}")
    st.dataframe(summ.drop(columns=["subject"]), hide_index=True, column_config={
        "top1": st.column_config.NumberColumn("top-1", format="percent"),
        "top5": st.column_config.NumberColumn("top-5", format="percent"),
        "mean_rank": st.column_config.NumberColumn("mean rank", format="%.1f")})
    st.caption(f"{len(keys)} held-out images; chance top-1 ≈ 1 / number of candidates."
               + (" Responses are SIMULATED." if store.simulated else ""))
with c2:
    fig = go.Figure()
    for s in sets:
        fig.add_trace(go.Histogram(x=d[d["roi_set"] == s]["rank"], name=s, opacity=0.7, nbinsx=30))
    fig.update_layout(barmode="overlay", height=280, margin=dict(l=60, r=20, t=30, b=80),
                      xaxis_title="rank of the true image (1 = best)", yaxis_title="images", plot_bgcolor="white")
    st.plotly_chart(fig, key="rank_hist", theme=None)

# ------------------------------------------------------------------ one image
st.subheader("Retrieved images")
rows = d[d["image_key"] == image_key].copy()
rows["o"] = rows["roi_set"].map(lambda s: SET_ORDER.get(s, 9))
rows = rows.sort_values("o")
all_keys = [image_key] + [k for lst in rows["top_keys"] for k in (list(lst) if lst is not None else [])]
paths = S.image_paths(store, list(dict.fromkeys(all_keys)))
true_col, rest = st.columns([1, 5])
with true_col:
    st.markdown("**True image**")
    st.image(S.thumbnail(paths.get(image_key, "")), caption=S.tag_caption(image_key, tags))
with rest:
    for _, r in rows.iterrows():
        top = list(r["top_keys"]) if r["top_keys"] is not None else []
        cos = f" · cosine {r['cosine']:.2f}" if r.get("cosine") is not None and r["cosine"] == r["cosine"] else ""
        st.markdown(f"**{r['roi_set']}** — true image ranked **{int(r['rank'])}**{cos}")
        cols = st.columns(n_show)
        for i, (c, k) in enumerate(zip(cols, top[:n_show])):
            hit = "✓ TRUE · " if k == image_key else ""
            c.image(S.thumbnail(paths.get(k, "")), caption=f"{hit}#{i + 1} {S.tag_caption(k, tags)}")
