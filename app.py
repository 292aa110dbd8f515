"""BrainViz home page: what is loaded, headline results, a guided tour.

Run: ``streamlit run app.py`` (store: ``$BRAINVIZ_STORE`` or ``data/brainviz.duckdb``).
A thin view: everything is read through brainviz.store.reader.Store.
"""
from __future__ import annotations

import streamlit as st

from brainviz.errors import BrainVizDataError
from brainviz.features.weights import WeightsSpec
from webapp import charts as C
from webapp import messages as M
from webapp import shell
from webapp import viewmodel as V

shell.page_config(__file__)


def home() -> None:
    """The home page."""
    st.title("BrainViz")
    st.caption("How does the human visual cortex respond to natural images? Explore voxel clusters on a 3-D brain, "
               "representational geometry, encoding-model accuracy and live predictions for your own images.")

    store, path = shell.page_store(missing_note="The app reads one precomputed file and never trains anything "
                                               "itself. After the build, reload this page.", build_command=True)
    try:
        ov = V.overview(store)
    except BrainVizDataError as exc:
        shell.stop_on_store_error(exc, path, build_command=True)

    shell.show_banner(store)
    spec = WeightsSpec.from_meta(store.meta())  # the backbone weights of the run (None: not recorded)
    with st.sidebar:
        st.markdown(f"**Data:** {M.data_label(store)}")
        st.caption(f"Store: `{path}`  \nBuilt {ov['summary'].get('created_at') or '?'} · "
                   f"schema v{ov['summary']['schema_version']}")

    # ------------------------------------------------------------------ what is loaded
    st.header("What is loaded")
    subj = ov["subjects"]
    models = ov["models"]
    c = st.columns(2) + st.columns(2)  # two by two: a dataset id ("algonauts2023") and "SIMULATED" need the room
    ds_names = ", ".join(ov["datasets"]["name"].astype(str)) if not ov["datasets"].empty else "—"
    c[0].metric("Dataset", ov["datasets"]["dataset_id"].iloc[0] if not ov["datasets"].empty else "—",
                help=ds_names)
    c[1].metric("Data", M.data_label(store))
    c[2].metric("Subjects", len(subj))
    c[3].metric("Models", len(models))
    st.markdown("**Image backbone:** " + (", ".join(f"`{b}`" for b in ov["backbones"]) or "—")
                + (f" · weights: {spec.description}" if spec is not None else ""))
    if spec is not None and spec.random:
        st.warning(M.random_weights_warning(spec.backbone, spec.description), icon=":material/warning:")

    # one above the other: side by side at 1,280 px each table scrolled sideways and hid a column
    left, right = st.container(), st.container()
    with left:
        st.subheader("Subjects")
        if subj.empty:
            st.write("No subjects in this store.")
        else:
            show = subj.copy()
            show["vertices"] = show["n_lh"] + show["n_rh"]
            show["evaluated on"] = show["evaluation"].map({"held-out": "held-out training images",
                                                           "test": "test fMRI"}).fillna("")
            st.dataframe(show[["subject", "source", "n_train", "n_test", "evaluated on", "vertices"]], hide_index=True,
                         height=C.table_height(len(show)),
                         column_config={"n_train": "fitted images", "n_test": "evaluation images",
                                        "vertices": "vertices (lh + rh)"})
    with right:
        st.subheader("Models")
        if models.empty:
            st.write("No trained models in this store.")
        else:
            m = models[["model_id", "kind", "subjects", "backbone"]].copy()
            m["subjects"] = m["subjects"].map(C.subject_list)
            st.dataframe(m, hide_index=True, height=C.table_height(len(m)),
                         column_config={"model_id": "model", "subjects": st.column_config.TextColumn(
                             "trained on", width="medium")})

    st.subheader("Headline results")
    hl = ov["headline"]
    if hl.empty:
        st.write("No evaluation results in this store.")
    else:
        st.caption(f"Accuracy on the {V.evaluation_label(store)}, averaged over subjects: median Pearson r over all "
                   "vertices, median noise-normalized accuracy (r² / noise ceiling: 1 = as good as the noise allows), "
                   "and image identification from predicted responses (top-1 / top-5 among the evaluation images)."
                   + (" Values come from SIMULATED responses." if store.simulated else ""))
        st.dataframe(C.drop_empty(C.percent_table(hl, ["top1", "top5"]), ["median_nna"]), hide_index=True, height=C.table_height(len(hl)),
                     column_config={"model_id": "model",
                                    "median_r": st.column_config.NumberColumn("median r", format="%.3f"),
                                    "median_nna": st.column_config.NumberColumn("median r² / nc", format="%.3f"),
                                    "top1": st.column_config.NumberColumn("top-1", format=C.PERCENT_FORMAT),
                                    "top5": st.column_config.NumberColumn("top-5", format=C.PERCENT_FORMAT)})

    notes = V.skip_notes(store)
    if notes:
        with st.expander(f"Not computed on this dataset ({len(notes)}): why, and what would enable it"):
            st.markdown("\n".join(f"- {n}" for n in notes))

    # ------------------------------------------------------------------ guided tour
    st.header("Guided tour (for a class demo, ~15 minutes)")
    tour = [
        ("pages/1_Voxel_clusters.py", "1 · Voxel clusters",
         "The page opens on the default view: the reliable vertices of all good subjects together, outside early "
         "visual cortex, with the k the data support ('How k was chosen'). Each color is a group of vertices that "
         "the encoder learned to treat alike and that respond alike ('What is clustered' switches between the "
         "embeddings, the measured responses and both); gray vertices were not clustered (the legend says why). "
         "Pick a cluster: "
         "its top images tell you what it likes (faces? scenes? food?). On the demo brain, compare with the planted "
         "regions: did the method find what was hidden?"),
        ("pages/3_Live_prediction.py", "2 · Live prediction",
         "Ask a student for a photo (or use the camera). Where does the model predict activity? Try a face, then a "
         "house, and look at the difference map."),
        ("pages/2_RDM_explorer.py", "3 · Representational geometry",
         "An RDM shows which images the brain treats as similar. Order by category to see blocks; look at the most "
         "similar and most different pairs. The 92-image section uses REAL human IT data."),
        ("pages/4_Model_evaluation.py", "4 · How good is the model?",
         "Accuracy maps: where can the model predict the brain, and how close is it to the noise ceiling? "
         "Does training on many subjects help a new one (transfer curve)?"),
        ("pages/5_Decoding.py", "5 · Decoding",
         "Reverse the direction: from a brain response, which image was seen? Compare ROI sets and their vote."),
        ("pages/6_In_silico_experiment.py", "6 · In-silico experiment",
         "A localizer without a scanner: faces vs everything else, run through the model. Where does the predicted "
         "brain prefer faces? Compare with the faces ROI outlines, then try scenes or food. Watch the effect size, "
         "not only the significance: predictions carry no trial noise."),
    ]
    for page, label, text in tour:
        cols = st.columns([1, 3])
        with cols[0]:
            st.page_link(page, label=label)
        cols[1].markdown(text)
    with st.expander("Notes for teachers"):
        st.markdown(
            "- A **vertex** is a point of the cortical surface (fsaverage5 mesh); the Algonauts data gives one fMRI "
            "response per vertex of the visual cortex. Gray surface = no data there.\n"
            "- **Encoders** predict each vertex's response from an image network's features; **r** is the correlation "
            "of predicted and measured responses on held-out images; the **noise ceiling** is the best r any model "
            "could get given the measurement noise.\n"
            "- The **demo brain** is simulated: its category regions were planted on purpose, so the app can show "
            "whether the analysis recovers them. Say so when you present it.")


home()
