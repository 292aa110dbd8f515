"""Voxel clusters: k-means clusters of learned voxel embeddings on the 3-D brain, their top images,
the linked 2-D embedding map, and (demo brain) planted vs recovered regions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from brainviz import plotting as B
from brainviz import export as X
from brainviz.rois import cluster_roi_counts, cluster_roi_majority, roi_groups
from webapp import charts as C
from webapp import shell
from webapp import viewmodel as V
from webapp.brainview import brain_view, selected_category, store_hover_rois
from webapp.downloads import map_downloads

store, path = shell.page_start(__file__)

models = V.model_options(store, need_clusters=True)
if not models:
    if shell.show_skips(store, "clusters", "ue_multi"):
        st.stop()
    shell.stop_nothing_stored("This store has no voxel clusters (they come from a Universal-Encoder model).")

# ------------------------------------------------------------------ controls
with st.sidebar:
    st.header("Clusters")
    model_id = st.selectbox("Model", models, help="Universal-Encoder model whose voxel embeddings were clustered")
    settings = store.cluster_settings(model_id)
    variants = store.cluster_variants(model_id)
    marked = variants[variants["is_default"].astype(bool)]
    default = marked.iloc[0] if len(marked) else (variants.iloc[0] if len(variants) else None)
    profiles = [p for p in V.PROFILE_LABELS if p in set(variants["profile"])]
    if default is None or not profiles:
        st.error("This store's clusters have no variant table; rebuild it with `python -m precompute all`.")
        st.stop()
    profile = st.radio("What is clustered", profiles, index=profiles.index(default["profile"]),
                       format_func=V.profile_label,
                       help="**Encoder embeddings**: the voxel embeddings the Universal Encoder learned (report 004): "
                            "vertices the encoder treats alike. **Measured responses**: each vertex's measured "
                            "responses to the images every subject of the scope saw: what the data hold, without an "
                            "encoder. **Combined**: the embeddings side by side with a response profile over the "
                            "images any subject saw, measured where the subject saw the image and the encoder's "
                            "prediction (weighted by how well it predicts that vertex) where it did not, so it needs "
                            "no test fMRI; both halves weigh the same.")
    if profile == default["profile"]:
        st.caption(f"Default: {V.profile_label(profile)}. " + V.PROFILE_DEFAULT_WHY.get(profile, ""))
    pv = variants[variants["profile"] == profile]
    families = list(dict.fromkeys(pv.sort_values("scope")["family"]))
    default_family = default["family"] if default["family"] in families else families[0]
    family = st.selectbox("Clustered over", families, index=families.index(default_family),
                          format_func=lambda f: V.scope_label(f, short=True),
                          help="'joint': k-means over the embeddings of every subject whose data are reliable "
                               "(median noise ceiling at least half the best subject's), so a cluster means the "
                               "same thing in every brain. The default leaves out early visual cortex (V1-hV4): "
                               "its tuning varies smoothly with visual-field position, and k-means would spend "
                               "most clusters cutting that continuum; choose 'whole visual cortex' to see it.")
    fam = pv[pv["family"] == family]
    reliable = bool(fam["percentile"].notna().any())  # False: no reliability estimate at all
    percentile = None
    if not reliable:
        st.select_slider("Reliability threshold (noise-ceiling percentile)", ["every vertex"], disabled=True,
                         help="This dataset has no reliability estimate (no single-trial repetitions and no "
                              "per-vertex noise-ceiling files), so every vertex of the scope is clustered. Build the "
                              "store with `--noise-ceiling DIR` (the Algonauts 2023 noise-ceiling files) to cluster "
                              "only the reliable vertices.")
        st.caption("No reliability estimate: every vertex is clustered (see the help of the threshold).")
    else:
        pcts = sorted({float(p) for p in fam["percentile"].dropna()})
        percentile = float(default["percentile"]) if pd.notna(default["percentile"]) and \
            float(default["percentile"]) in pcts else pcts[0]
        if len(pcts) > 1:
            percentile = st.select_slider("Reliability threshold (noise-ceiling percentile)", pcts,
                                          value=percentile, format_func=lambda p: f"top {100 - p:g} %",
                                          help="Only vertices whose noise ceiling (from the repeats of the FITTED "
                                               "images, else the dataset's published noise ceilings) is at or above "
                                               "this percentile of their subject's are clustered; the rest are "
                                               "drawn gray. Weakly driven vertices otherwise take over the clusters.")
    here_v = fam if percentile is None else fam[np.isclose(fam["percentile"].astype(float), percentile)]
    smooth_v = here_v[here_v["smoothing"] > 0]
    smoothed = False
    if len(smooth_v):
        sv = smooth_v.iloc[0]
        opens = here_v[here_v["profile_default"].astype(bool)]  # smoothed by default where it helped (README)
        smoothed = st.toggle(f"Smooth on the cortex (strength β = {sv['smoothing']:g})", key="smooth",
                             value=bool(len(opens) and opens["smoothing"].iloc[0] > 0),
                             help="Potts smoothing of the k-means labels: each vertex takes the cluster that "
                                  "balances closeness to the cluster's centre against the labels of its neighbours "
                                  f"(vertices of the same subject and hemisphere within {sv['smoothing_radius_mm']:g} "
                                  "mm along the cortex), the centres re-estimated until nothing changes. β is the "
                                  "weight of agreeing neighbours in units of a typical within-cluster distance; "
                                  "0 = k-means as it is. "
                                  f"{sv['with_neighbours']:.0%} of the clustered vertices have a neighbour; the "
                                  "others keep their k-means label.")
    scope = V.cluster_scope(variants, profile, family, percentile, smoothed) or str(here_v["scope"].iloc[0])
    ks = store.available_k(model_id, scope)
    here = settings[settings["scope"] == scope] if not settings.empty else settings
    chosen_k = int(here["chosen_k"].iloc[0]) if len(here) else None
    k_rule = str(here["k_rule"].iloc[0]) if len(here) else ""
    k_default = chosen_k if chosen_k in ks else (8 if 8 in ks else ks[len(ks) // 2])
    k = st.select_slider("k (number of clusters)", ks, value=k_default,
                         help="Default: the k chosen without ground truth (bootstrap stability), see "
                              "'How k was chosen' below.") if len(ks) > 1 else ks[0]
    if len(ks) == 1 and k_rule.startswith("k of "):
        st.caption(f"k = {k}, the k of '{V.scope_label(k_rule[5:])}': only this k is precomputed for this view "
                   "(every k for the embeddings and for each profile's joint views).")
    clus_all = store.clusters(model_id, scope, k)
    scope_subjects = sorted(clus_all["subject"].unique())
    if not scope_subjects:
        st.info(f"No clustered vertices stored for {model_id} / {scope} / k={k}.")
        st.stop()
    subject = st.selectbox("Brain shown", scope_subjects)
    st.header("Display")
    surface = st.radio("Surface", B.SURFACES, horizontal=True, key="surface",
                       format_func=lambda s: {"flat": "flat-ish"}.get(s, s))
    hemi_choice = st.radio("Hemispheres", ["both", "lh", "rh"], horizontal=True, key="hemis")
    hemis = B.HEMIS if hemi_choice == "both" else (hemi_choice,)
    view = st.selectbox("View", list(B.VIEWS), index=list(B.VIEWS).index(B.DEFAULT_VIEW),
                        disabled=surface == "flat")
    outline_name = st.selectbox("ROI outlines", ["none"] + list(V.ROI_CLASS_COLUMNS), index=2)
    highlight = st.toggle("Highlight the selected cluster", value=False,
                          help="Show the other clusters in pale colors")

vertices = store.vertices(subject)
labels = store.cluster_labels(model_id, scope, k, subject)
descs = store.cluster_descriptions(model_id, scope, k)
desc_of = dict(zip(descs["cluster"], descs["description"])) if not descs.empty else {}
nvert_of = dict(zip(descs["cluster"], descs["n_vertices"])) if not descs.empty else {}
clusters_present = sorted(int(c) for c in np.unique(labels[labels >= 0]))
if not clusters_present:
    st.info(f"{subject} has no clustered vertices in {scope} (k={k}).")
    st.stop()
# where each cluster lies (atlas ROIs, not ground truth), beside its name in the cluster selector; the legends
# show the short names (long ones squeezed the brain)
groups = roi_groups(vertices)  # {ROI group: (V,) bool}: the ROI filter's choices and the cluster's make-up
where = cluster_roi_majority(labels, roi_groups(vertices, include_planted_food=False))
short_names = {c: f"{c}: {desc_of.get(c, '')}".rstrip(": ") for c in range(k)}
names = {c: short_names[c] + (f" · {where[c][1]:.0%} in {where[c][0]} ROIs" if c in where else "") for c in range(k)}
colors = B.category_colors(list(range(k)))
# vertices that were not clustered, and why (drawn gray)
nc_v = store.vertex_reliability(subject) if len(here) else np.full(len(labels), np.nan)
thr_row = here[here["subject"] == subject] if len(here) else here
nc_thr = float(thr_row["nc_threshold"].iloc[0]) if len(thr_row) else float("nan")
BELOW, OUTSIDE = k, k + 1
region = here["region"].iloc[0] if len(here) and pd.notna(here["region"].iloc[0]) else None
why = V.unclustered_reasons(labels, vertices, region, nc_v, nc_thr)
reason = np.select([why == V.UNRELIABLE, why == V.OUTSIDE_SCOPE], [BELOW, OUTSIDE], -1)
outside_early = region == "non-early"  # the scope leaves out V1-hV4
gray_names = {BELOW: "not clustered: unreliable",
              OUTSIDE: "not clustered: outside scope" + (" (V1-hV4)" if outside_early else "")}
gray_colors = {BELOW: "#9a9a9a", OUTSIDE: "#cfcfcf"}

with st.sidebar:
    roi_filter = st.multiselect("Show only vertices in ROIs", list(groups) + V.roi_names(vertices),
                                help="Gray out every vertex outside these ROIs (empty = show all)")

# cluster picked from the 2-D map (applied before the selectbox is drawn)
umap_state = st.session_state.get("umap_select")
if umap_state is not None:
    pts = (umap_state.get("selection") or {}).get("points") or []
    sig = tuple((p.get("curve_number"), p.get("point_index")) for p in pts[:3])
    if pts and sig != st.session_state.get("_umap_applied"):
        cd = pts[0].get("customdata")
        picked = int(cd[0] if isinstance(cd, (list, tuple)) else cd) if cd is not None else None
        if picked is not None and picked in clusters_present:
            st.session_state["cluster_pick"] = picked
        st.session_state["_umap_applied"] = sig

if st.session_state.get("cluster_pick") not in clusters_present:
    st.session_state["cluster_pick"] = clusters_present[0] if clusters_present else 0

# ------------------------------------------------------------------ brain + selection
vals = labels.astype(float)
vals[labels < 0] = reason[labels < 0]
if roi_filter:
    vals[~V.roi_mask(vertices, roi_filter)] = np.nan
maps = V.to_fsaverage5(vals, vertices, categorical=True)
outlines = label_positions = None
if outline_name != "none":
    outlines = V.label_map(vertices, V.ROI_CLASS_COLUMNS[outline_name])
    label_positions = B.roi_label_positions(outlines, surface)

shown_colors = colors
if highlight:
    sel = st.session_state.get("cluster_pick")
    shown_colors = {c: col if c == sel else B.fade_color(col) for c, col in colors.items()}
shown_colors = {**shown_colors, **gray_colors}
names_all = {**short_names, **gray_names}


def pick_from_brain(selection: dict, present=tuple(clusters_present)) -> None:
    """A click on a vertex or a legend entry of the brain selects its cluster (before the rerun)."""
    code = selected_category(selection, present)
    if code is not None:
        st.session_state["cluster_pick"] = code


roi_hover = store_hover_rois(store, subject)
left, right = st.columns([3, 2])
with left:
    title = f"{model_id} · {scope} · k={k} · {subject}" + (" · SIMULATED" if store.simulated else "")
    brain_view(maps, key="brain", surface=surface, hemis=hemis, categorical=True, title=title,
               category_names=names_all, category_colors=shown_colors, outlines=outlines, rois=roi_hover,
               labels=label_positions, view=None if surface == "flat" else view, colorbar_title="cluster",
               hover_name="cluster", selected=st.session_state.get("cluster_pick"), on_select=pick_from_brain)
    n_below, n_out = int((reason == BELOW).sum()), int((reason == OUTSIDE).sum())
    below = (f"Dark gray ('unreliable'): {n_below} vertices not clustered because their noise ceiling is below the reliability "
             f"threshold ({nc_thr:.1%} for {subject}); " if np.isfinite(nc_thr) else
             "No reliability estimate (no repetitions, no noise-ceiling files): every vertex of the scope is "
             "clustered; ")
    st.caption(below + f"light gray: {n_out} vertices outside the clustering scope"
               + (" (early visual cortex V1-hV4: see 'whole visual cortex')" if outside_early else "") + ". "
               "Shaded gray: no data (outside the challenge space or filtered out"
               + ("; only the fsaverage vertices that are also fsaverage5 vertices are drawn" if
                  (vertices["fsaverage5_index"] < 0).any() else "") + "). "
               "Drag to rotate, scroll to zoom. Black lines: ROI borders; white line: the selected cluster. "
               "Click a vertex or a legend entry to select its cluster.")
with right:
    cl = st.selectbox("Cluster", clusters_present, key="cluster_pick", format_func=lambda c: names.get(c, str(c)))
    n_here = int((labels == cl).sum())
    st.markdown(f"**Cluster {cl}** — {desc_of.get(cl, 'no description')}  \n"
                f"{n_here} vertices in {subject}" + (f", {int(nvert_of[cl])} in the whole scope" if cl in nvert_of
                                                      and pd.notna(nvert_of[cl]) else ""))
    if not descs.empty:
        enr = descs.loc[descs["cluster"] == cl, "enrichment"]
        if len(enr) and isinstance(enr.iloc[0], dict) and enr.iloc[0]:
            table, fit = V.cluster_evidence(enr.iloc[0])
            table["top 10"] = [f"{t} ({b:.0f}%)" if t and pd.notna(b) else t
                               for t, b in zip(table["top 10"], table["base rate"])]
            st.dataframe(table.drop(columns=["base rate", "p"]).head(6), hide_index=True, key="cluster_evidence",
                         column_config={
                "effect": st.column_config.NumberColumn("effect", format="%.2f",
                                                        help="unique effect of the tag on this cluster's response"),
                "elsewhere": st.column_config.NumberColumn("others", format="%.2f",
                                                           help="the largest effect of the tag on another cluster"),
                "top 10": st.column_config.TextColumn("top 10 (all)", help="how many of the 10 images driving the "
                                                      "cluster most carry the tag (in parentheses: the share of all "
                                                      "images that do)")})
            if fit:
                st.caption(f"How the name was chosen: the cluster's mean measured response to each of "
                           f"{fit['n_images']:,} tagged images is regressed on the ten tag scores at once; 'effect' is "
                           f"a tag's standardized coefficient (what it adds with the other tags held fixed). The tags "
                           f"explain R² = {fit['r2']:.2f} of this cluster's response. A cluster is named by its "
                           f"largest effect when R² ≥ 0.3 and the effect ≥ 0.3, else 'mixed / weak'; 'others': the largest "
                           "effect of the tag on another cluster.")
    # ROI make-up of the cluster
    comp = cluster_roi_counts(labels, groups).get(cl, {})
    if comp:
        st.caption("Vertices of this cluster inside ROI groups: " +
                   ", ".join(f"{g} {v}" for g, v in sorted(comp.items(), key=lambda x: -x[1])))

# ------------------------------------------------------------------ top images
st.subheader(f"Top images of cluster {cl}")
tags = store.image_tags()
top = store.cluster_top_images(model_id, scope, k, subject=subject, cluster=cl)
if top.empty:
    st.write("No top images stored for this cluster.")
else:
    cols = st.columns(2)
    for col, source, blurb in ((cols[0], "measured", "measured responses of images this subject saw"),
                               (cols[1], "predicted", "the encoder's predictions for all images")):
        sub = top[top["source"] == source].sort_values("rank").head(8)
        with col:
            st.markdown(f"**{source.capitalize()}** — {blurb}" + (" (SIMULATED)" if store.simulated and
                                                                   source == "measured" else ""))
            if sub.empty:
                st.caption("none stored")
                continue
            grid = st.columns(4)
            pics = V.thumbnails(store, list(sub["image_key"]))
            captions = V.tag_captions(list(sub["image_key"]), tags)
            for i, (_, r) in enumerate(sub.iterrows()):
                grid[i % 4].image(pics[r["image_key"]],
                                  caption=f"#{int(r['rank'])} {captions[str(r['image_key'])]} ({r['score']:.2f})")

# ------------------------------------------------------------------ how k was chosen
quality = store.cluster_quality(model_id, scope)
curve = quality[quality["metric"] == "stability"] if not quality.empty else quality
if len(curve):
    st.subheader("How k was chosen")
    sd = quality[quality["metric"] == "stability_sd"].set_index("k")["value"]
    kfig = go.Figure(go.Scatter(x=curve["k"], y=curve["value"], mode="lines+markers", name="stability",
                                error_y=dict(type="data", array=[float(sd.get(kk, 0)) for kk in curve["k"]]),
                                hovertemplate="k = %{x}<br>stability %{y:.2f}<extra></extra>"))
    if chosen_k is not None:
        kfig.add_vline(x=chosen_k, line_dash="dot", annotation_text=f"chosen k = {chosen_k}")
    # the threshold and its caption: the numbers the run's analyses used (table analysis_settings)
    min_stab, how = V.stability_rule(store.analysis_settings(), curve["value"], V.profile_label(profile), smoothed)
    if min_stab is not None and k_rule.startswith("stability"):  # k chosen by this scope's own stability curve
        kfig.add_hline(y=min_stab, line_dash="dash", line_color="gray",
                       annotation_text=f"threshold {min_stab:g}", annotation_position="bottom right")
    # margins leave room for the tick labels (with zero margins they are cut off)
    kfig.update_layout(height=280, margin=dict(l=60, r=10, t=30, b=45), xaxis_title="k",
                       yaxis_title="stability (mean ARI)", yaxis_range=[0, 1.02], plot_bgcolor="white",
                       xaxis=dict(tickmode="array", tickvals=[int(x) for x in curve["k"]]))
    st.plotly_chart(C.tidy(kfig), key="k_curve", theme=None, config=C.CONFIG)
    st.caption(how)
elif k_rule.startswith("k of ") and "@p" in scope:
    st.subheader("How k was chosen")
    st.caption(f"Another reliability threshold of '{V.scope_label(k_rule[5:])}': k = {chosen_k}, the k its bootstrap "
               "stability chose at the default threshold, so the thresholds compare the same number of clusters "
               "(and the extra stability curves stay out of the precompute time). No ground truth is used.")
elif k_rule.startswith("k of "):
    st.subheader("How k was chosen")
    st.caption(f"One subject alone: k = {chosen_k}, the k chosen by bootstrap stability for "
               f"'{V.scope_label(k_rule[5:])}'. One subject's few hundred reliable "
               "vertices are too few for a stable choice (on the demo brain a subject's own stability curve picked "
               "4-6 clusters, merging category regions); the subjects share one functional layout. No ground truth "
               "is used.")

# ------------------------------------------------------------------ 2-D map
st.subheader("Embedding map")
emb = store.embedding_map(model_id, subject)
if emb.empty:
    st.write("No 2-D map stored for this model.")
else:
    show_all = st.toggle("All subjects of the scope", value=False, key="map_all_subjects")
    if show_all:
        emb = store.embedding_map(model_id)
    emb = emb[emb["subject"].isin(scope_subjects if show_all else [subject])]
    lab_frames = []
    for s in emb["subject"].unique():
        lab_frames.append(pd.DataFrame({"subject": s, "vertex": np.arange(store.n_vertices(s)),
                                        "cluster": store.cluster_labels(model_id, scope, k, s)}))
    emb = emb.merge(pd.concat(lab_frames), on=["subject", "vertex"], how="left")
    emb = emb[emb["cluster"] >= 0]
    n_clustered = len(emb)
    emb = V.bounded_points(emb)  # a bounded chart: a sample of each cluster above V.MAX_MAP_POINTS dots
    mfig = go.Figure()
    trace = C.scatter_type(len(emb))  # SVG for a few thousand dots: no new WebGL contexts on every rerun
    for c in sorted(emb["cluster"].unique()):
        d = emb[emb["cluster"] == c]
        mfig.add_trace(trace(
            x=d["x"], y=d["y"], mode="markers", name=short_names.get(int(c), str(c)),
            customdata=np.c_[d["cluster"].to_numpy(), d["vertex"].to_numpy()],
            text=d["subject"], hovertemplate="%{text} vertex %{customdata[1]}<br>cluster %{customdata[0]}<extra></extra>",
            marker=dict(size=4 if int(c) == cl else 3, color=colors[int(c)], opacity=1.0 if int(c) == cl else 0.35)))
    mfig.update_layout(height=480, margin=dict(l=0, r=0, t=30, b=0), xaxis=dict(visible=False),
                       yaxis=dict(visible=False, scaleanchor="x"),
                       legend=dict(itemsizing="constant", orientation="h", y=-0.02, yanchor="top"),
                       plot_bgcolor="white")
    st.plotly_chart(C.tidy(mfig), key="umap_select", on_select="rerun", selection_mode="points", theme=None,
                    config=C.CONFIG)
    st.caption("Each dot is a vertex, placed by the similarity of its learned embedding (UMAP), colored by the "
               f"clusters shown ({V.profile_label(profile)}). "
               "Click a dot to select its cluster."
               + (f" Shown: {len(emb):,} of the {n_clustered:,} clustered vertices, a random sample of each cluster in "
                  "proportion to its size (the chart stays light in the browser)." if len(emb) < n_clustered else ""))

# ------------------------------------------------------------------ planted vs recovered
planted = V.planted_codes(vertices)
if planted is not None:
    st.subheader("Planted vs recovered (demo brain ground truth)")
    st.caption("The SIMULATED demo brain has regions planted on purpose. Training never saw them; here they are "
               "compared with the clusters the pipeline found.")
    pvals, pnames = planted
    if roi_filter:
        pvals = pvals.copy()
        pvals[~V.roi_mask(vertices, roi_filter)] = np.nan
    c1, c2 = st.columns(2)
    with c1:
        brain_view(V.to_fsaverage5(pvals, vertices, categorical=True), key="planted", surface=surface, hemis=hemis,
                   categorical=True, title="planted regions", category_names=pnames,
                   category_colors=V.planted_colors(pnames), rois=roi_hover,
                   view=None if surface == "flat" else view, colorbar_title="planted", height=420,
                   hover_name="region")
    with c2:
        brain_view(maps, key="recovered", surface=surface, hemis=hemis, categorical=True, title="recovered clusters",
                   category_names=names_all, category_colors={**colors, **gray_colors}, rois=roi_hover,
                   view=None if surface == "flat" else view, colorbar_title="cluster", height=420,
                   hover_name="cluster", selected=cl, on_select=pick_from_brain)
    sim = quality[quality["simulation_check"]] if not quality.empty else quality
    if len(sim):
        wide = sim.pivot_table(index="k", columns="metric", values="value")
        row = wide.loc[k] if k in wide.index else None
        if row is not None:
            m1, m2 = st.columns(2)  # two by two: four in a row cut their labels at 1,280 px
            m3, m4 = st.columns(2)
            m1.metric("Category-region ARI", f"{row.get('ari', float('nan')):.2f}",
                      help="Adjusted Rand index of clusters vs the six planted category regions (faces, bodies, "
                           "food, words, indoor and outdoor places) among their vertices that were clustered "
                           "(all subjects of the scope); 1 = exact, 0 = chance")
            m2.metric("Coverage", f"{100 * row.get('coverage', float('nan')):.0f} %",
                      help="Share of the category regions' vertices that passed the reliability threshold")
            m3.metric("Homogeneity / completeness", f"{row.get('homogeneity', float('nan')):.2f} / "
                                                    f"{row.get('completeness', float('nan')):.2f}",
                      help="Homogeneity: each cluster holds one region; completeness: each region is one cluster")
            eta2 = row.get("early_eta2", float("nan"))
            if np.isfinite(eta2):
                m4.metric("Early visual: position explained", f"{eta2:.2f}",
                          help="Early visual cortex is tuned to visual-field position, not categories: share of the "
                               "variance of its planted pRF centres explained by the clusters (unrelated clusters of "
                               f"the same sizes: {row.get('early_null_eta2', float('nan')):.2f})")
            else:
                m4.metric("Early visual: position explained", "—",
                          help="No early visual vertex (V1-hV4) was clustered in this scope; the scope 'joint' "
                               "(whole visual cortex) judges early visual cortex by visual-field position")
            yardsticks = {"noise-free": "noise-free simulated (what is reachable)",
                          "ridge-noise-free": "ridge trained on noise-free responses (what the features allow)",
                          "measured": "measured (what the data hold)",
                          "ridge": "ridge-predicted (what a linear read-out of the same features holds)"}
            refs = {label: row.get(f"reference:{src}") for src, label in yardsticks.items()}
            refs = {label: v for label, v in refs.items() if v is not None and np.isfinite(v)}
            if refs:  # scored by precompute at the chosen k only
                st.caption(f"Yardsticks at k = {k} (the same vertices clustered with the same k, by plain k-means, "
                           "on responses to the test images all subjects saw): "
                           + " · ".join(f"{label} **{v:.2f}**" for label, v in refs.items()))
        compare = V.profile_comparison(store, model_id, variants, family)
        if len(compare) > 1:
            st.caption(f"What is clustered, compared on '{V.scope_label(family)}' (each at its own chosen k; "
                       "SIMULATION CHECK):")
            st.dataframe(compare, hide_index=True, key="profile_comparison",
                         column_config={"category-region ARI": st.column_config.NumberColumn(format="%.2f"),
                                        "coverage": st.column_config.NumberColumn(format="percent")})
        cols_keep = [c for c in ("ari", "coverage", "homogeneity", "completeness", "early_eta2", "early_null_eta2")
                     + tuple(c for c in wide.columns if c.startswith("precision:") or c.startswith("ppa")) if c in wide]
        st.caption("Every k of this scope (SIMULATION CHECK against the planted ground truth). ARI, coverage, "
                   "homogeneity (homog.), completeness (compl.) as above; early η² = early visual position explained "
                   "(null: unrelated clusters); a region's column = share of the top-10 images of the cluster "
                   "holding that planted region that carry its category tag:")
        short = {"ari": "ARI", "coverage": "coverage", "homogeneity": "homog.", "completeness": "compl.",
                 "early_eta2": "early η²", "early_null_eta2": "null η²"}
        shown_scores = wide[cols_keep].round(2).rename(columns=lambda c: short.get(c, c.replace("precision:", "")))
        st.dataframe(shown_scores, key="recovery_scores")
    tab, ari = V.recovery_table(labels, vertices)
    if not len(sim) and ari is not None:  # an older store without the per-k recovery scores
        st.metric("Adjusted Rand index (planted vs clusters)", f"{ari:.2f}",
                  help="1 = clusters match planted regions exactly; 0 = chance")
    if len(tab):
        st.caption(f"{subject}'s clustered vertices: planted region (rows) by cluster (columns), vertex counts:")
        st.dataframe(tab, key="recovery_table")

# ------------------------------------------------------------------ download
st.subheader("Download")
png_maps = {"clusters": dict(values_by_hemi=maps, categorical=True, title=title, category_names=names,
                             category_colors=colors, outlines=outlines, colorbar_title="cluster")}
if planted is not None:
    png_maps["planted regions"] = dict(values_by_hemi=V.to_fsaverage5(pvals, vertices, categorical=True),
                                       categorical=True, title=f"planted regions · {subject} · SIMULATED demo brain",
                                       category_names=pnames, category_colors=V.planted_colors(pnames),
                                       outlines=outlines, colorbar_title="planted")

surf_data = X.store_surface(store, subject)
gii_meta = {"brainviz:model": model_id, "brainviz:scope": scope, "brainviz:k": str(k), "brainviz:subject": subject,
            "brainviz:simulated": str(store.simulated).lower()}
gifti = {"clusters": X.SurfaceMap.from_vertices(
    vals, vertices, surf_data, name=title, meta=gii_meta, colors={**colors, **gray_colors},
    labels={c: (f"cluster {n}" if c < k else n) for c, n in names_all.items()})}
if planted is not None:
    gifti["planted regions"] = X.SurfaceMap.from_vertices(
        pvals, vertices, surf_data, name=f"planted regions · {subject} · SIMULATED demo-brain ground truth",
        labels=pnames, colors=V.planted_colors(pnames), meta=gii_meta)
map_downloads({m: {"png": kw, "gifti": gifti.get(m)} for m, kw in png_maps.items()}, surface=surface, hemis=hemis,
              sig=("clusters", model_id, scope, k, subject, outline_name, tuple(roi_filter)),
              stem=f"{model_id}_{scope}_k{k}_{subject}".replace(":", "-"), simulated=store.simulated)
