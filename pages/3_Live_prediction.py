"""Live prediction: an image (upload, example or camera) -> predicted activation on the 3-D brain,
per-ROI bars, the closest known images, and a side-by-side comparison with a difference map."""
from __future__ import annotations

import hashlib
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from brainviz import plotting as B
from brainviz import live as L
from brainviz.errors import BrainVizDataError
from brainviz.rois import roi_groups
from webapp import charts as C
from webapp import shell, uploads
from webapp import viewmodel as V
from webapp.brainview import brain_view, store_hover_rois
from webapp.downloads import map_downloads

store, path = shell.page_start(__file__)
st.caption("Show the model an image; it predicts how each vertex of the visual cortex would respond"
           + (" (the model was trained on SIMULATED responses)." if store.simulated else "."))


@st.cache_resource(show_spinner="Reading stored predictions…", max_entries=8)
def prediction_bank(store_file: str, stamp: tuple, model_id: str, subject: str):
    """(keys, (n_images, V) stored predictions of ``subject``, (V,) their mean: the average image's map)."""
    st_ = shell.open_store(store_file, stamp)
    keys = st_.prediction_keys(model_id, subject)
    bank = st_.predictions(model_id, subject, keys) if keys else np.zeros((0, 0), np.float32)
    return keys, bank, (bank.mean(0) if len(keys) else None)


@st.cache_resource(max_entries=4)
def example_choice(store_file: str, stamp: tuple):
    """(example image keys, {key: caption}, the two teaching examples) of a store version: computed once, not on
    every rerun (an upload reruns the page twice before its map is drawn)."""
    st_ = shell.open_store(store_file, stamp)
    images = st_.images()
    keys = images[images["dataset"] != "k92"]["image_key"].tolist() or images["image_key"].tolist()
    tags = st_.image_tags()
    # examples that teach: a face first, a scene to compare it with (by their tags; else the first two images)
    teaching = [V.example_image(keys, tags, "faces", avoid=("places", "food", "vehicles")),
                V.example_image(keys, tags, "places", avoid=("faces", "people", "bodies"))]
    teaching = [k if k is not None else keys[min(i, len(keys) - 1)] if keys else None for i, k in enumerate(teaching)]
    return keys, V.tag_captions(keys, tags), teaching


model_id, stamp, predictor, subjects = shell.page_predictor(store, path, "Live prediction")
examples, example_captions, teaching_examples = example_choice(str(path), stamp)

with st.sidebar:
    st.header("Prediction")
    subject = st.selectbox("Subject", subjects)
    surface = st.radio("Surface", B.SURFACES, horizontal=True, key="surface",
                       format_func=lambda s: {"flat": "flat-ish"}.get(s, s))
    view = st.selectbox("View", list(B.VIEWS), index=list(B.VIEWS).index(B.DEFAULT_VIEW), disabled=surface == "flat")
    relative = st.toggle("Relative to the average image", value=True, key="relative",
                         help="Subtract the mean predicted response over the stored test images, so the map shows "
                              "where this image drives the cortex more (red) or less (blue) than a typical image.")
    outline_name = st.selectbox("ROI outlines", ["none"] + list(V.ROI_CLASS_COLUMNS), index=2, key="live_outlines",
                                help="Borders of the atlas ROIs of one kind (black lines), as on the other pages")
    st.caption(f"Model `{model_id}` · backbone `{predictor.backbone.name}` · device **{predictor.device}**")


def image_input(slot: str, label: str):
    """Returns (bytes, name) from the chosen source, or (None, None)."""
    src = st.radio(f"{label}: source", ["Example", "Upload", "Camera"], horizontal=True, key=f"src_{slot}")
    if src == "Upload":
        # A file dropped on the uploader is taken into the session and the uploader replaced by an empty one
        # (a new key), ready for the next file: replacing the file of a full uploader reruns the page twice
        # (once without a file, then with the new one) before the new map can be drawn; an empty one once.
        n = st.session_state.get(f"_up_n_{slot}", 0)
        up = st.session_state.get(f"up_{slot}_{n}")
        if up is not None:
            st.session_state[f"_last_upload_{slot}"] = (up.getvalue(), up.name)
            uploads.forget(up)
            n += 1
            st.session_state[f"_up_n_{slot}"] = n
        st.file_uploader(f"{label}: image file", type=L.UPLOAD_TYPES, key=f"up_{slot}_{n}",
                         help="PNG, JPEG, GIF, WebP, BMP or TIFF, up to 25 MB. The map shows the last file "
                              "dropped here; drop another to replace it.")
        last = st.session_state.get(f"_last_upload_{slot}")
        if last is not None:
            st.caption(f"Showing {last[1]}. Drop another file to replace it.")
            return last
        return None, None
    if src == "Camera":
        cam = st.camera_input(f"{label}: take a photo", key=f"cam_{slot}")
        return (cam.getvalue(), "camera.jpg") if cam is not None else (None, None)
    if not examples:
        st.write("No example images in the store.")
        return None, None
    key = st.selectbox(f"{label}: example image", examples, key=f"ex_{slot}",
                       index=examples.index(teaching_examples[0 if slot == "a" else 1]),
                       format_func=lambda k: example_captions.get(k, k),
                       help="Predicted from the store's thumbnail of the image (JPEG, at most 256 px): close to, "
                            "not exactly, the prediction of the original file")
    data = store.thumbnails([key]).get(key)  # the store's picture of it: the image files are not needed
    if data is None:
        st.error(f"The store holds no picture of example image {key}.")
        return None, None
    return data, key


def run_prediction(data: bytes, name: str, subject: str):
    """Validate + predict ``subject`` (memoized per session by content hash). Returns (image, LiveResult, decode_ms)."""
    h = (hashlib.sha1(data).hexdigest(), subject)
    memo = st.session_state.setdefault("_live_memo", {})
    if h in memo:
        return memo[h]
    t0 = time.perf_counter()
    img = L.validate_image(data, name=name)
    t1 = time.perf_counter()
    res = predictor.predict(img, [subject])
    out = (img, res, (t1 - t0) * 1e3)
    if len(memo) > 8:
        memo.clear()
    memo[h] = out
    return out


vertices = store.vertices(subject)
col_in, col_brain = st.columns([1, 2])
with col_in:
    data_a, name_a = image_input("a", "Image")
result_a = None
if data_a is not None:
    try:
        img_a, res_a, dec_ms = run_prediction(data_a, name_a, subject)
        result_a = res_a
    except L.ImageValidationError as exc:
        col_in.error(f"This image cannot be used: {exc.problem}")
    except BrainVizDataError as exc:
        col_in.error(str(exc))

if result_a is not None:
    pred = result_a.predictions[subject]
    if len(pred) != len(vertices):
        st.error(f"The model predicts {len(pred)} vertices for {subject}, the store has {len(vertices)}; "
                 "the store and the checkpoint do not belong together — rebuild the store.")
        st.stop()
    keys, bank, bank_mean = prediction_bank(str(path), stamp, model_id, subject)
    baseline = bank_mean if relative and len(keys) and bank.shape[1] == len(pred) else 0.0
    pred = pred - baseline
    what = "vs. average image" if np.ndim(baseline) else "predicted (z)"
    lim = float(np.nanpercentile(np.abs(pred), 99)) or 1.0
    t_map = time.perf_counter()
    maps_a = V.to_fsaverage5(pred, vertices)
    roi_hover = store_hover_rois(store, subject)
    outlines = V.label_map(vertices, V.ROI_CLASS_COLUMNS[outline_name]) if outline_name != "none" else None
    # token of what is drawn (the browser reports it once on screen): the image and every setting of the map
    token = "|".join([hashlib.sha1(data_a).hexdigest()[:16], subject, surface, view, str(relative), outline_name])
    map_kw = dict(surface=surface, cmap="RdBu_r", vmin=-lim, vmax=lim, rois=roi_hover, outlines=outlines,
                  title=f"predicted response · {subject}" + (" · model trained on SIMULATED data"
                                                            if store.simulated else ""),
                  view=None if surface == "flat" else view, colorbar_title=what, hover_name="predicted")
    with col_brain:  # sent first; the meshes stay in the browser: only the values, colour limits and title travel
        brain_view(maps_a, key="live_brain", token=token, **map_kw)
    map_ms = (time.perf_counter() - t_map) * 1e3
    with col_in:
        st.image(img_a, caption=f"{name_a} · {img_a.info['brainviz_source']['format']} "
                                f"{img_a.info['brainviz_source']['size'][0]}×{img_a.info['brainviz_source']['size'][1]}")
        for note in img_a.info.get("brainviz_notes", []):
            st.caption(f"ℹ️ {note}")
        t = result_a.timings_ms
        total = dec_ms + t["total"] + map_ms
        st.markdown(f"**Latency** {total:.0f} ms on **{result_a.device}**  \n"
                    f"decode {dec_ms:.0f} · backbone {t['features']:.0f} · encoder {t['encoder']:.0f} · "
                    f"brain map {map_ms:.0f} ms")

    # ---- per-ROI bars
    st.subheader("Predicted response per ROI group")
    groups = roi_groups(vertices)
    if not groups:
        st.write("This store has no ROI labels.")
    else:
        m = L.roi_means(pred, groups)
        bar = go.Figure(go.Bar(x=list(m), y=list(m.values()),
                               marker_color=["#c0392b" if v > 0 else "#2e6fb7" for v in m.values()],
                               text=[f"{v:+.2f}" for v in m.values()], textposition="outside"))
        bar.update_layout(height=300, margin=dict(l=60, r=20, t=30, b=80), yaxis_title=f"mean {what}",
                          plot_bgcolor="white")
        bar.update_traces(cliponaxis=False)  # the labels of the tallest bars stay visible above the plot area
        st.plotly_chart(C.tidy(bar, top=50), key="roi_bars", theme=None, config=C.CONFIG)
        if "food (planted)" in m:
            st.caption("'food (planted)' uses the demo brain's planted food region (SIMULATED ground truth); "
                       "real Algonauts data has no food ROI.")

    # ---- closest known images
    st.subheader("Closest known images (by predicted pattern)")
    if len(keys) == 0:
        st.write("No stored predictions to compare with.")
    else:
        near = L.nearest_images(pred, bank - baseline, keys, k=6)
        pics = V.thumbnails(store, [k for k, _ in near])
        captions = {k: example_captions.get(k) for k, _ in near}
        missing = [k for k, c in captions.items() if c is None]
        captions.update(V.tag_captions(missing, store.image_tags()) if missing else {})
        cols = st.columns(6)
        for c, (k, r) in zip(cols, near):
            c.image(pics[k], caption=f"{captions[k]} · r={r:.2f}")

    png_maps = {"image A": dict(values_by_hemi=maps_a, cmap="RdBu_r", vmin=-lim, vmax=lim,
                                title=f"predicted response to {name_a} · {subject}", colorbar_title=what)}

    # ---- compare two images
    st.subheader("Compare two images")
    if st.toggle("Compare with a second image", key="compare"):
        cb_in, cb_out = st.columns([1, 3])
        with cb_in:
            data_b, name_b = image_input("b", "Second image")
        if data_b is not None:
            try:
                img_b, res_b, _ = run_prediction(data_b, name_b, subject)
            except L.ImageValidationError as exc:
                cb_in.error(f"This image cannot be used: {exc.problem}")
                res_b = None
            if res_b is not None:
                pb = res_b.predictions[subject] - baseline
                cb_in.image(img_b, caption=name_b)
                maps_b = V.to_fsaverage5(pb, vertices)
                diff = V.to_fsaverage5(pred - pb, vertices)
                dl = float(np.nanpercentile(np.abs(pred - pb), 99)) or 1.0
                with cb_out:
                    c1, c2 = st.columns(2)
                    kw = dict(surface=surface, view=None if surface == "flat" else view, height=380, cmap="RdBu_r",
                              rois=roi_hover, hover_name="predicted")
                    with c1:
                        brain_view(maps_a, key="cmp_a", title=f"A: {name_a}", vmin=-lim, vmax=lim,
                                   colorbar_title=what, **kw)
                    with c2:
                        brain_view(maps_b, key="cmp_b", title=f"B: {name_b}", vmin=-lim, vmax=lim,
                                   colorbar_title=what, **kw)
                    brain_view(diff, key="cmp_diff", title="difference A − B", vmin=-dl, vmax=dl,
                               colorbar_title="A − B", **{**kw, "cmap": "PuOr_r", "hover_name": "A − B"})
                png_maps["image B"] = dict(values_by_hemi=maps_b, cmap="RdBu_r", vmin=-lim, vmax=lim,
                                           title=f"predicted response to {name_b} · {subject}",
                                           colorbar_title=what)
                png_maps["difference A − B"] = dict(values_by_hemi=diff, cmap="PuOr_r", vmin=-dl, vmax=dl,
                                                    title=f"{name_a} − {name_b} · {subject}", colorbar_title="A − B")

    # ---- download
    st.subheader("Download")
    from brainviz import export as X

    gii_vals = {"image A": pred}
    if "image B" in png_maps:  # the comparison ran: pb is the second image's map
        gii_vals.update({"image B": pb, "difference A − B": pred - pb})
    surf_data = X.store_surface(store, subject)
    gii_meta = {"brainviz:model": model_id, "brainviz:subject": subject, "brainviz:map": what,
                "brainviz:simulated": str(store.simulated).lower()}
    map_downloads({m: {"png": kw, "gifti": X.SurfaceMap.from_vertices(gii_vals[m], vertices, surf_data, name=kw["title"],
                                                                      meta=gii_meta) if m in gii_vals else None}
                   for m, kw in png_maps.items()},
                  surface=surface, sig=("live", hashlib.sha1(data_a).hexdigest(), subject, relative),
                  stem=f"live_{subject}", simulated=store.simulated)
elif data_a is None:
    col_in.info("Pick an example, upload an image or take a photo to see the predicted activation.")
    with col_brain:  # the cortex stays, empty: a view replaced by a message would be rebuilt, meshes and all
        brain_view(V.to_fsaverage5(np.full(len(vertices), np.nan), vertices), key="live_brain", categorical=True,
                   surface=surface, view=None if surface == "flat" else view, rois=store_hover_rois(store, subject),
                   outlines=V.label_map(vertices, V.ROI_CLASS_COLUMNS[outline_name]) if outline_name != "none"
                   else None, title="predicted response · no image yet", hover_name="predicted")
