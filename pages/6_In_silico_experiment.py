"""In-silico experiment: two image sets (uploads or NSD images by tag) -> predicted responses -> per-vertex
Welch t / effect size of A vs B with FDR, per-ROI table, top images per set, predicted RDMs. A thin view over
brainviz.insilico."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from brainviz import plotting as B
from brainviz import export as X
from brainviz import insilico as I
from brainviz import live as L
from brainviz.errors import BrainVizDataError
from brainviz.rois import roi_groups
from webapp import charts as C
from webapp import shell
from webapp import viewmodel as V
from webapp.downloads import map_downloads

store, path = shell.page_start(__file__)
st.caption("A localizer without a scanner: the encoder predicts every vertex's response to each image of two sets, "
           "and the map shows where set A drives the cortex more (red) or less (blue) than set B — Welch t per "
           "vertex, kept where it passes the Benjamini-Hochberg false discovery rate AND the effect size is large "
           "enough (predictions carry no trial noise: with many images, tiny differences pass FDR alone)."
           + (" The model was trained on SIMULATED responses: these are predictions of a simulated brain."
              if store.simulated else ""))

RDM_MAX = 200  # images in an RDM heatmap


@st.cache_resource(max_entries=2)
def nsd_prediction_cache(store_file: str, stamp: tuple, model_id: str) -> dict:
    """{subject: ((n,) keys, (n, V) predictions of every tagged store image)}, filled on first use."""
    return {}


model_id, stamp, predictor, subjects = shell.page_predictor(store, path, "In-silico experiments")
tags = store.image_tags()
images = store.images()
cats = [c for c in tags.columns if c != "tags"]
tagged = images[images["dataset_id"].notna() & images["image_key"].isin(tags.index)]
tagged_keys = tagged["image_key"].tolist()

with st.sidebar:
    st.header("Experiment")
    subject = st.selectbox("Subject (whose predicted brain)", subjects, key="is_subject")
    q = st.select_slider("FDR level q", [0.001, 0.005, 0.01, 0.05, 0.1, 0.2], value=0.05, key="is_q",
                         help="Benjamini-Hochberg over all vertices: among vertices called significant, at most a "
                              "fraction q are expected to be false discoveries.")
    min_d = st.select_slider("Smallest effect size |d|", [0.0, 0.2, 0.5, 0.8, 1.2], value=0.5, key="is_min_d",
                             format_func=lambda v: {0.0: "0 (FDR alone)", 0.2: "0.2 small", 0.5: "0.5 medium",
                                                    0.8: "0.8 large", 1.2: "1.2 very large"}[v],
                             help="d = (mean A − mean B) / the within-set spread. A vertex counts when it passes FDR "
                                  "AND |d| is at least this. The predicted responses carry no trial-to-trial noise, so "
                                  "with many images even differences far too small to matter pass FDR.")
    thr = st.slider("Tag score threshold", 0.1, 0.9, 0.5, 0.05, key="is_thr",
                    help="An NSD image belongs to a category when its tag score (from the human-made HED "
                         "annotations, 0-1) is at least this.")
    st.header("Display")
    shown = st.radio("Map", ["t (FDR-thresholded)", "t (all vertices)", "effect size d"], key="is_map",
                     format_func=lambda m: {"t (FDR-thresholded)": "t where FDR and |d| pass"}.get(m, m))
    surface = st.radio("Surface", B.SURFACES, horizontal=True, key="surface",
                       format_func=lambda s: {"flat": "flat-ish"}.get(s, s))
    view = st.selectbox("View", list(B.VIEWS), index=list(B.VIEWS).index(B.DEFAULT_VIEW), disabled=surface == "flat")
    outline_name = st.selectbox("ROI outlines", ["none"] + list(V.ROI_CLASS_COLUMNS), index=2, key="is_outlines")
    st.caption(f"Model `{model_id}` · device **{predictor.device}**")

train_keys = set(store.image_splits(subject, "train")["image_key"]) if tagged_keys else set()
candidates = [k for k in tagged_keys if k not in train_keys]


# ------------------------------------------------------------------ inputs
def set_input(slot: str, col):
    """The user's choice for one set: ('nsd', category or None) or ('upload', [(name, bytes)])."""
    with col:
        st.subheader(f"Set {slot}")
        opts = ["NSD images by tag", "Upload images"] if tagged_keys else ["Upload images"]
        src = st.radio(f"Set {slot}: images from", opts, horizontal=True, key=f"is_src_{slot}")
        if src == "Upload images":
            ups = st.file_uploader(f"Set {slot}: image files or a zip", type=L.UPLOAD_TYPES + ["zip"],
                                   accept_multiple_files=True, key=f"is_up_{slot}",
                                   help=f"Up to {I.MAX_UPLOAD_IMAGES} images and {I.MAX_SET_BYTES // L.MB} MB per set: "
                                        "PNG, JPEG, GIF, WebP, BMP or TIFF files (25 MB each at most), or zips of "
                                        "them. Larger sets: `python -m precompute predict`.")
            return "upload", [(u.name, u.getvalue()) for u in (ups or [])]
        if slot == "A":
            cat = st.multiselect("Set A: categories (an image counts when any of them applies)", cats,
                                 default=["faces"] if "faces" in cats else cats[:1], key="is_cat_A",
                                 help="Scenes: NSD's 'places' tag is high mostly for outdoor scenes; add 'indoor' "
                                      "for rooms.")
        else:
            cat = st.multiselect("Set B: categories (empty = everything else)", cats, default=[], key="is_cat_B",
                                 help="Empty: every NSD image that is not in set A (or, when set A is uploaded, "
                                      "every NSD image). Otherwise: images of these categories that are not in A.")
        return "nsd", list(cat) or None


col_a, col_b = st.columns(2)
choice = {"A": set_input("A", col_a), "B": set_input("B", col_b)}


def nsd_keys(slot: str) -> list[str]:
    """Set ``slot``'s NSD images (categories of set A / B; B = everything else by default)."""
    kind_, cat = choice[slot]
    other_kind, other_cat = choice["B" if slot == "A" else "A"]
    if slot == "A":
        return I.tag_sets(tags, cat, threshold=thr, keys=candidates)[0] if cat else []
    a_cat = other_cat if other_kind == "nsd" and other_cat else None
    if cat is None:
        return I.tag_sets(tags, a_cat, threshold=thr, keys=candidates)[1] if a_cat else list(candidates)
    if a_cat is None:
        return I.tag_sets(tags, cat, threshold=thr, keys=candidates)[0]
    return I.tag_sets(tags, a_cat, versus=cat, threshold=thr, keys=candidates)[1]


def nsd_predictions(keys: list[str]) -> np.ndarray:
    """(n, V) predictions of ``subject`` for store images (all tagged images predicted once per server)."""
    cache = nsd_prediction_cache(str(path), stamp, model_id)
    if subject not in cache:
        bar = st.progress(0.0, text=f"Predicting {len(tagged_keys)} NSD images for {subject} (once per server)…")
        preds, how = I.predict_store_images(
            predictor, store, tagged_keys, subject,
            progress=lambda d, t: bar.progress(min(1.0, d / max(t, 1)), text=f"Predicting NSD images: {d}/{t}"))
        bar.empty()
        cache[subject] = (tagged_keys, preds, how)
    keys_all, preds, _ = cache[subject]
    pos = {k: i for i, k in enumerate(keys_all)}
    return preds[[pos[k] for k in keys]]


def upload_predictions(slot: str, files: list[tuple[str, bytes]]):
    """PredictedSet of the uploaded files and the entries by name, remembered for this session's set
    ``slot`` only (one set each: listed and predicted once, freed when replaced or the session ends)."""
    h = hashlib.sha1()
    for name, data in files:
        h.update(name.encode() + b"\0" + hashlib.sha1(data).digest())
    sig = (h.hexdigest(), subject, model_id)
    memo = st.session_state.setdefault("_is_upload_memo", {})
    if memo.get(slot, (None,))[0] != sig:
        memo.pop(slot, None)  # the previous set of this slot is let go before the new one is read
        entries, problems = I.image_entries_from_uploads(files, max_images=I.MAX_UPLOAD_IMAGES)
        bar = st.progress(0.0, text=f"Set {slot}: predicting {len(entries)} images…")
        res = I.predict_entries(predictor, entries, [subject], progress=lambda d, t: bar.progress(
            min(1.0, d / max(t, 1)), text=f"Set {slot}: {d}/{t} images"), bad=problems,
            max_pixels=I.MAX_SET_DECODED_PIXELS)
        bar.empty()
        memo[slot] = (sig, res, {e.name: e for e in entries})
    return memo[slot][1], memo[slot][2]


sets: dict[str, dict] = {}
problems_shown = False
for slot, col in (("A", col_a), ("B", col_b)):
    kind_, val = choice[slot]
    with col:
        if kind_ == "nsd":
            keys = nsd_keys(slot)
            if len(keys) > I.MAX_STORE_IMAGES:
                st.warning(f"Set {slot} has {len(keys)} images; the first {I.MAX_STORE_IMAGES} (by image id) are used.")
                keys = keys[:I.MAX_STORE_IMAGES]
            label = " or ".join(val) if val else ("everything else" if slot == "B" else "nothing chosen")
            if slot == "B" and not val and choice["A"][0] == "nsd" and choice["A"][1]:
                what = f"not tagged *{' or '.join(choice['A'][1])}* (every score < {thr:g})"
                label = f"not {' or '.join(choice['A'][1])}"
            elif slot == "B" and not val:
                what = "(every tagged image)"
            else:
                what = f"tagged *{' or '.join(val or [])}* (score ≥ {thr:g})"
            st.caption(f"**{len(keys)}** NSD images {what}, leaving out the {len(train_keys)} images {subject} "
                       f"was trained on.")
            sets[slot] = {"kind": "nsd", "label": label, "names": keys}
        else:
            if not val:
                st.info(f"Upload images (or one zip) for set {slot}: at most {I.MAX_UPLOAD_IMAGES} images and "
                        f"{I.MAX_SET_BYTES // L.MB} MB.")
                continue
            try:
                res, by_name = upload_predictions(slot, val)
            except BrainVizDataError as exc:
                st.error(f"Set {slot} could not be predicted: {exc}")
                continue
            st.caption(f"**{res.n}** uploaded images predicted in {res.seconds:.1f} s on {res.device}"
                       + (f"; **{len(res.bad)} skipped**" if res.bad else ""))
            if res.bad:
                with st.expander(f"Set {slot}: {len(res.bad)} files skipped — why", expanded=res.n == 0):
                    st.dataframe(pd.DataFrame(res.bad, columns=["file", "reason"]), hide_index=True)
            sets[slot] = {"kind": "upload", "label": f"{res.n} uploaded images", "names": res.names,
                          "pred": res.responses[subject], "entries": by_name}

if len(sets) < 2:
    st.stop()
vertices = store.vertices(subject)
try:
    for slot in ("A", "B"):
        if sets[slot]["kind"] == "nsd":
            sets[slot]["pred"] = nsd_predictions(sets[slot]["names"])
except BrainVizDataError as exc:
    st.error(f"The NSD images could not be predicted: {exc}")
    st.stop()
for slot in ("A", "B"):
    if sets[slot]["pred"].shape[1:] != (len(vertices),) and len(sets[slot]["names"]):
        st.error(f"The model predicts {sets[slot]['pred'].shape[1]} vertices for {subject}, the store has "
                 f"{len(vertices)}; the store and the checkpoint do not belong together — rebuild the store.")
        st.stop()
small = [s for s in ("A", "B") if len(sets[s]["names"]) < I.MIN_IMAGES]
if small:
    st.info(f"Set {' and '.join(small)} has fewer than {I.MIN_IMAGES} images: a t-test needs at least "
            f"{I.MIN_IMAGES} per set. Pick another category, lower the tag threshold, or upload more images.")
    st.stop()

res = I.contrast(sets["A"]["pred"], sets["B"]["pred"], q=q, min_d=min_d)
name_a, name_b = sets["A"]["label"], sets["B"]["label"]
title_what = f"{name_a} vs {name_b}"

# ------------------------------------------------------------------ map
st.header(f"Contrast: {title_what}")
n_pos = int((res.passes & (res.t > 0)).sum())
n_neg = int((res.passes & (res.t < 0)).sum())
n_fdr = int(res.significant.sum())
n_all = int(np.isfinite(res.t).sum())
tcrit = res.t_threshold()
m = st.columns(5)
m[0].metric("Set A images", res.n_a)
m[1].metric("Set B images", res.n_b)
m[2].metric("A > B vertices", n_pos, help=f"FDR q = {q:g} and d ≥ {min_d:g}")
m[3].metric("A < B vertices", n_neg, help=f"FDR q = {q:g} and d ≤ −{min_d:g}")
m[4].metric("|t| at FDR", f"{tcrit:.2f}" if tcrit is not None else "—",
            help=f"The smallest |t| that passes FDR at q = {q:g}" + ("" if tcrit is not None else ": none does"))
st.caption(f"FDR alone (q = {q:g}) marks {n_fdr:,} of {n_all:,} vertices ({C.percent(n_fdr / max(n_all, 1))}); "
           f"with |d| ≥ {min_d:g} as well, {n_pos + n_neg:,} ({C.percent((n_pos + n_neg) / max(n_all, 1))}). "
           "The test treats the images as samples of their sets: it asks whether the MODEL's predicted responses "
           "differ between the sets more than between images of one set. Predictions carry no trial-to-trial "
           "noise, so with many images even tiny differences are 'significant'; the effect size d (the difference "
           "in units of the within-set spread; 0.2 small, 0.5 medium, 0.8 large) says whether it is large.")

if shown == "effect size d":
    values, cbar, hover = res.d, "d", "effect size d"
elif shown == "t (all vertices)":
    values, cbar, hover = res.t, "t", "Welch t"
else:
    values, cbar, hover = res.t_thresholded, "t", "Welch t (FDR)"
lim_src = res.d if shown == "effect size d" else res.t
lim = float(np.nanpercentile(np.abs(lim_src), 99)) or 1.0
maps = V.to_fsaverage5(values, vertices)
outlines = labels_pos = None
if outline_name != "none":
    outlines = V.label_map(vertices, V.ROI_CLASS_COLUMNS[outline_name])
    labels_pos = B.roi_label_positions(outlines, surface)
map_title = (f"{title_what} · {subject} · "
             + (f"t (FDR q = {q:g}, |d| ≥ {min_d:g})" if shown.startswith("t (FDR") else shown)
             + (" · SIMULATED" if store.simulated else ""))
fig = B.brain_figure(maps, surface=surface, cmap="RdBu_r", vmin=-lim, vmax=lim, title=map_title,
                     colorbar_title=cbar, outlines=outlines, labels=labels_pos,
                     view=None if surface == "flat" else view, hover_name=hover)
st.plotly_chart(fig, key="is_brain", theme=None, config={"displaylogo": False})
if n_pos + n_neg == 0 and shown.startswith("t (FDR"):
    st.info(f"No vertex passes FDR at q = {q:g} with |d| ≥ {min_d:g}: the model predicts no reliable difference of "
            "that size between the sets. Try a smaller effect size, a larger q, more images, or the unthresholded "
            "t map.")
st.caption("Red: set A predicted higher than set B; blue: lower. Gray: no data"
           + (f" or below the thresholds (FDR q = {q:g}, |d| ≥ {min_d:g})." if shown.startswith("t (FDR") else ".")
           + " Effect size d = (mean A − mean B) / √((var A + var B) / 2). The statistics say how reliably the "
             "MODEL separates the sets, not a brain measurement.")

# ------------------------------------------------------------------ per-ROI table
st.subheader("Per ROI")
groups = roi_groups(vertices)
rois = dict(groups)
for r in V.roi_names(vertices):
    rois.setdefault(r, V.roi_mask(vertices, [r]))
table = I.roi_table(res, rois)
st.dataframe(table, hide_index=True, key="is_roi_table", column_config={
    "mean_t": st.column_config.NumberColumn("mean t", format="%.2f"),
    "peak_t": st.column_config.NumberColumn("peak t", format="%.2f"),
    "mean_d": st.column_config.NumberColumn("mean d", format="%.2f"),
    "mean_diff": st.column_config.NumberColumn("mean A − B", format="%.3f"),
    "n_vertices": st.column_config.NumberColumn("vertices"),
    "pct_sig_A>B": st.column_config.NumberColumn("A>B FDR", format="%.0f%%"),
    "pct_sig_A<B": st.column_config.NumberColumn("A<B FDR", format="%.0f%%"),
    "pct_pass_A>B": st.column_config.NumberColumn("A>B both", format="%.0f%%"),
    "pct_pass_A<B": st.column_config.NumberColumn("A<B both", format="%.0f%%")})
st.caption(f"Share of each ROI's vertices where A > B or A < B: 'FDR' passes FDR at q = {q:g}; 'both' also has "
           f"|d| ≥ {min_d:g}. Mean t, peak t (largest |t|), mean d and mean A − B over the ROI's vertices.")
if any("planted" in g for g in groups):
    st.caption("'food (planted)' uses the demo brain's planted food region (SIMULATED ground truth); real Algonauts "
               "data has no food ROI.")


# ------------------------------------------------------------------ top images
def thumb(slot: str, name: str):
    s = sets[slot]
    if s["kind"] == "nsd":
        return V.thumbnail(V.image_paths(store, [name]).get(name, ""))
    try:
        img = L.validate_image(s["entries"][name].read(), name=name, max_side=256)
        img.thumbnail((256, 256))
        return img
    except (BrainVizDataError, KeyError):
        return V.thumbnail("")


def caption(slot: str, name: str) -> str:
    return V.tag_caption(name, tags) if sets[slot]["kind"] == "nsd" else name


st.subheader("Top images of each set in an ROI")
roi_pick = st.selectbox("ROI", list(rois), index=list(rois).index("faces") if "faces" in rois else 0, key="is_roi")
cols = st.columns(2)
for c, slot in zip(cols, ("A", "B")):
    with c:
        st.markdown(f"**Set {slot}: {sets[slot]['label']}** — highest mean predicted response in *{roi_pick}*")
        top = I.top_images(sets[slot]["pred"], sets[slot]["names"], rois[roi_pick], k=6)
        grid = st.columns(3)
        for i, r in enumerate(top.itertuples()):
            grid[i % 3].image(thumb(slot, r.name), caption=f"#{r.rank} {caption(slot, r.name)} ({r.score:+.2f})")

# ------------------------------------------------------------------ RDM
st.subheader("Predicted RDM of one set")
rdm_slots = [s for s in ("A", "B") if sets[s]["kind"] == "upload"] or ["A", "B"]
rc = st.columns([1, 1, 2])
rdm_slot = rc[0].radio("Set", rdm_slots, horizontal=True, key="is_rdm_set",
                       format_func=lambda s: f"{s}: {sets[s]['label']}")
group = rc[1].selectbox("ROI group", list(groups) or ["all vertices"], key="is_rdm_group")
rs = sets[rdm_slot]
n_rdm = min(len(rs["names"]), RDM_MAX)
if len(rs["names"]) > RDM_MAX:
    rc[2].caption(f"The set has {len(rs['names'])} images; the RDM uses the first {RDM_MAX}.")
mask = groups.get(group, np.ones(len(vertices), bool))
try:
    g_rdm = I.group_rdms(rs["pred"][:n_rdm], rs["names"][:n_rdm], {group: mask}, k=3)[group]
except BrainVizDataError as exc:
    st.info(f"No RDM: {exc.problem}")
else:
    hm = go.Figure(go.Heatmap(z=g_rdm.rdm, x=g_rdm.names, y=g_rdm.names, colorscale="Viridis",
                              colorbar=dict(title="1 − r")))
    hm.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10), xaxis=dict(showticklabels=n_rdm <= 40),
                     yaxis=dict(showticklabels=n_rdm <= 40, autorange="reversed", automargin=True),
                     title=dict(text=f"predicted RDM · set {rdm_slot} · {group} · {subject}", font=dict(size=14)))
    hm.update_xaxes(automargin=True)
    pc = st.columns([3, 2])
    pc[0].plotly_chart(C.tidy(hm), key="is_rdm", theme=None, config=C.CONFIG)
    with pc[1]:
        for head, df in (("Most similar pairs", g_rdm.most_similar), ("Most dissimilar pairs", g_rdm.most_dissimilar)):
            st.markdown(f"**{head}** (1 − Pearson r of the predicted patterns)")
            for r in df.itertuples():
                a, b_, c3 = st.columns([2, 2, 1])
                a.image(thumb(rdm_slot, r.name_a), caption=caption(rdm_slot, r.name_a))
                b_.image(thumb(rdm_slot, r.name_b), caption=caption(rdm_slot, r.name_b))
                c3.markdown(f"{r.value:.3f}")

# ------------------------------------------------------------------ download
st.subheader("Download")
surf_data = X.store_surface(store, subject)
meta = {"brainviz:model": model_id, "brainviz:subject": subject, "brainviz:contrast": title_what,
        "brainviz:q": f"{q:g}", "brainviz:min_d": f"{min_d:g}", "brainviz:simulated": str(store.simulated).lower()}
png_kw = dict(cmap="RdBu_r", outlines=outlines)
stem = X.safe_stem(f"insilico_{name_a}_vs_{name_b}_{subject}")
map_downloads({
    "t (FDR-thresholded)": {"png": dict(values_by_hemi=V.to_fsaverage5(res.t_thresholded, vertices), vmin=-lim, vmax=lim,
                                        title=f"{title_what} · t, FDR q = {q:g}, |d| ≥ {min_d:g} · {subject}",
                                        colorbar_title="t", **png_kw),
                            "gifti": X.SurfaceMap.from_vertices(res.t_thresholded, vertices, surf_data,
                                                                name=f"Welch t {title_what} (FDR q={q:g}, |d|>={min_d:g})",
                                                                meta=meta)},
    "t (all vertices)": {"png": dict(values_by_hemi=V.to_fsaverage5(res.t, vertices), vmin=-lim, vmax=lim,
                                     title=f"{title_what} · Welch t · {subject}", colorbar_title="t", **png_kw),
                         "gifti": X.SurfaceMap.from_vertices(res.t, vertices, surf_data,
                                                             name=f"Welch t {title_what}", meta=meta)},
    "effect size d": {"png": dict(values_by_hemi=V.to_fsaverage5(res.d, vertices), title=f"{title_what} · d · {subject}",
                                  colorbar_title="d", **png_kw),
                      "gifti": X.SurfaceMap.from_vertices(res.d, vertices, surf_data, name=f"effect size d {title_what}",
                                                          meta=meta)},
}, surface=surface, sig=("insilico", title_what, subject, q, min_d, outline_name), stem=stem, simulated=store.simulated)
