"""Benchmark: live prediction and the brain maps of the app, from a user action to the map on screen.

Every measurement has its reference in the same run: the Plotly figures of before (``?brain=plotly``
in the page URL: the cached :func:`brainviz.plotting.map_figure` for continuous maps, as the Live page
drew them, :func:`brainviz.plotting.brain_figure` for categorical maps, as the Voxel clusters page).

1. **Server**, per image (>= 50 distinct JPEG uploads, 425 x 425, each timed on both paths,
   interleaved so background load hits both alike): upload bytes -> ``validate_image`` (decode)
   -> backbone -> encoder (the displayed subject, as the page) -> fsaverage5 map + what is sent
   (map: the brain view's :func:`brainviz.plotting.view_payload`; reference: the Plotly figure) ->
   serialize (brain view: the component's ``json.dumps`` of its arguments, the blob travels as bytes;
   reference: what ``st.plotly_chart`` does, ``to_dict`` + ``to_json``). p50 / p95 of every stage and of
   the total, and the bytes of one map as sent. Also the bare backbone forward.
2. **Browser, Live prediction** (``--browser N``; chromium + chromedriver + selenium): a real
   ``streamlit run app.py`` on 127.0.0.1 (``--port``), headless Chromium (SwiftShader WebGL, no GPU),
   N uploads per path: time from the file input's ``change`` event to the brain view's drawn marker
   for that image (``#brainview-drawn-live_brain``, written once the map is on screen), and the bytes
   the page received over its websocket for the whole rerun (counted in the page). Blocks of uploads alternate between
   the paths; the first upload of a block (page and view mount) is not counted.
3. **Browser, Voxel clusters** (same server and browser, ``--clusters N``, default = ``--browser``):
   with "Highlight the selected cluster" on, N changes of k (the k slider, arrow keys: k walks up to
   the largest value, then down, ...) and N changes of the selected cluster (the Cluster box,
   alternating between two clusters) per path: time from the key press / option click to the new map
   drawn on the main brain view (``#brainview-drawn-brain``), and websocket bytes per rerun. A map the
   page showed in the last two reruns is not sent again (Streamlit's message cache, both paths alike).
   Also the floor: the smallest page with a brain view (a number input and a map that changes with
   it; its own server on ``--port + 1``), click -> new map drawn: Streamlit's rerun plus the view.
4. Bytes sent per update by each brain page (Streamlit AppTest, as the protobuf holds them): every brain
   view vs the Plotly figure of the same map; on Voxel clusters for every k and subject of the default
   scope (``--skip-payloads`` to leave out).
5. Page first render with a warm cache (Streamlit AppTest), per page, vs a trivial page
   (``--skip-pages`` to leave out).

Usage::

    python bench/bench_live.py [--store data/brainviz.duckdb] [--n 60] [--browser 12] [--port 8611]

Without ``--store`` (and without ``$BRAINVIZ_STORE`` / the default store) a small synthetic
store is built first (brainviz/sample_store.py, ~15 s).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("decode", "backbone", "encoder", "map", "serialize", "total")

def pct(xs, q):
    return float(np.percentile(np.asarray(xs, float), q))


def upload_images(paths: list[str], n: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct JPEG uploads (425 x 425, quality 90, like a web/phone picture).

    Made from the store's images (random crops and flips when there are fewer than ``n``),
    else from noise.
    """
    from PIL import Image, ImageOps

    rng = np.random.default_rng(seed)
    srcs = []
    for p in paths:
        try:
            srcs.append(Image.open(p).convert("RGB"))
        except OSError:
            continue
    out = []
    for i in range(n):
        if srcs:
            img = srcs[i % len(srcs)]
            if i >= len(srcs):  # a different crop of the same picture
                w, h = img.size
                f = rng.uniform(0.6, 0.9)
                cw, ch = max(16, int(w * f)), max(16, int(h * f))
                x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                img = img.crop((x0, y0, x0 + cw, y0 + ch))
                if rng.random() < 0.5:
                    img = ImageOps.mirror(img)
            img = img.resize((425, 425))
        else:
            img = Image.fromarray((rng.random((425, 425, 3)) * 255).astype(np.uint8))
        b = io.BytesIO()
        img.save(b, format="JPEG", quality=90)
        out.append(b.getvalue())
    return out


def bench_server(store_path: Path, n: int) -> dict:
    """Per-stage server timings of the brain view and the Plotly reference over ``n`` distinct uploads."""
    import json

    import plotly.io
    import plotly.tools
    import torch

    from brainviz import live as L
    from brainviz import plotting as B
    from brainviz.data.surfaces import load_meshes
    from brainviz.features.extract import features_for_pil
    from brainviz.store.reader import Store
    from webapp import viewmodel as V
    from webapp.brainview import store_hover_rois

    store = Store(store_path)
    t = time.perf_counter()
    pred = L.get_live_predictor(store)
    load_s = time.perf_counter() - t
    s = pred.subjects[0]
    verts = store.vertices(s)
    keys = store.prediction_keys(pred.model_id, s)
    bank = store.predictions(pred.model_id, s, keys) if keys else None
    baseline = bank.mean(0) if bank is not None and bank.shape[1] == len(verts) else 0.0
    images = store.images()
    paths = images[images["dataset"] != "k92"]["path"].astype(str).tolist() or images["path"].astype(str).tolist()
    uploads = upload_images(paths, n)
    # as in the app: meshes, shading, mesh assets and the Plotly scaffold are warmed when the model loads
    load_meshes("inflated"), B.background_shading()
    zeros = {h: np.zeros(B.N_FSAVERAGE5) for h in B.HEMIS}
    B.view_payload(zeros, vmin=-1, vmax=1, hover_name="predicted")
    B.map_figure(zeros, vmin=-1, vmax=1, hover_name="predicted")

    def once(data: bytes, view: bool) -> dict:
        """The Live page's path for one upload (relative map, default surface and view)."""
        t0 = time.perf_counter()
        img = L.validate_image(data)
        t1 = time.perf_counter()
        res = pred.predict(img, [s])
        t2 = time.perf_counter()
        p = res.predictions[s] - baseline
        lim = float(np.nanpercentile(np.abs(p), 99)) or 1.0
        maps = V.to_fsaverage5(p, verts)
        kw = dict(surface="inflated", cmap="RdBu_r", vmin=-lim, vmax=lim, title=f"predicted response · {s}",
                  view=B.DEFAULT_VIEW, colorbar_title="vs. average image", hover_name="predicted")
        if view:
            payload = B.view_payload(maps, rois=store_hover_rois(store, s), token="x", **kw)
        else:
            fig = B.map_figure(maps, meta="x", **kw)
        t3 = time.perf_counter()
        if view:  # what the component does with its arguments (the blob goes out as bytes, untouched)
            sent = len(json.dumps({"spec": payload.spec, "key": "live_brain", "default": None})) + len(payload.blob)
        else:  # what st.plotly_chart does before the figure goes out
            sent = len(plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True),
                                         validate=False))
        t4 = time.perf_counter()
        ms = lambda a, b: (b - a) * 1e3  # noqa: E731
        return {"decode": ms(t0, t1), "backbone": res.timings_ms["features"], "encoder": res.timings_ms["encoder"],
                "map": ms(t2, t3), "serialize": ms(t3, t4), "total": ms(t0, t4), "bytes": sent}

    ref_img = L.validate_image(uploads[0])

    def bare() -> float:
        t0 = time.perf_counter()
        features_for_pil(pred.backbone, ref_img, num_threads=pred.cpu_threads)
        if pred.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    for d in uploads[:3]:  # warm-up
        once(d, True), once(d, False), bare()
    out = {"view": {k: [] for k in STAGES}, "plotly": {k: [] for k in STAGES}, "bare": [],
           "bytes": {"view": [], "plotly": []}}
    for i, d in enumerate(uploads):
        order = (True, False) if i % 2 == 0 else (False, True)
        for view in order:
            r = once(d, view)
            name = "view" if view else "plotly"
            for k in STAGES:
                out[name][k].append(r[k])
            out["bytes"][name].append(r["bytes"])
        out["bare"].append(bare())
    store.close()
    out.update(device=str(pred.device), load_s=load_s, n=len(uploads), subject=s, n_vertices=len(verts))
    return out


# --------------------------------------------------------------------------- browser
#: Query of the reference path: every brain view drawn with the Plotly figure of before.
REFERENCE_QUERY = "?brain=plotly"
#: Time origins of user actions, recorded in the page (capture phase, before the app sees them), in the
#: time base of the drawn markers (performance.timeOrigin + now(), ms since the epoch).
_ORIGINS = (
    "window.__bvT0 = null;"
    "const now = () => performance.timeOrigin + performance.now();"
    "document.addEventListener('change', e => { if (e.target && e.target.type === 'file') window.__bvT0 = now(); }, true);"
    "document.addEventListener('keydown', e => { if (e.target && e.target.type === 'range') window.__bvT0 = now(); }, true);"
    "document.addEventListener('click', e => { if (e.target && e.target.closest && e.target.closest('[role=option]'))"
    " window.__bvT0 = now(); }, true);")


def _page(drv, url: str, page: str, reference: bool, timeout: float = 120) -> None:
    """Open ``page`` (the reference path with ``?brain=plotly``) and install the time-origin listeners."""
    from selenium.webdriver.common.by import By

    drv.get(f"{url}/{page}" + (REFERENCE_QUERY if reference else ""))
    deadline = time.time() + timeout
    while time.time() < deadline:
        if drv.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] [data-testid="stRadio"]'):
            break
        errs = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlertContentError"]')
        if errs:
            raise RuntimeError(f"{page} shows an error: {errs[0].text[:300]}")
        time.sleep(0.3)
    else:
        raise RuntimeError(f"{page} did not render")
    drv.execute_script(_ORIGINS)


def _idle(drv, timeout: float = 120) -> None:
    """Until the app has finished its rerun (no running indicator twice in a row)."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    quiet = 0
    while time.time() < deadline and quiet < 2:
        quiet = 0 if drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]') else quiet + 1
        time.sleep(0.15)


#: Counts the bytes the page receives over its websockets (installed before the app's scripts run).
_WS_COUNTER = (
    "(() => { const W = window.WebSocket; window.__bvWsBytes = 0;"
    "class Counted extends W { constructor(...a) { super(...a); this.addEventListener('message', (e) => {"
    "const d = e.data; window.__bvWsBytes += d.byteLength !== undefined ? d.byteLength"
    " : (d.size !== undefined ? d.size : String(d).length); }); } }"
    "window.WebSocket = Counted; })();")


def _ws_bytes(drv) -> int:
    """Bytes received over the app's websocket since the last call (counted in the page)."""
    n = drv.execute_script("const n = window.__bvWsBytes || 0; window.__bvWsBytes = 0; return n;")
    return int(n or 0)


#: ms from the arrival of a map's arguments in the brain view to the map drawn (browser side), per action.
BROWSER_SIDE: list = []


def _timed(drv, key: str, action, *, prefix: str = "", timeout: float = 120) -> tuple[float, int]:
    """Do ``action`` (a user action the origin listeners see); return (ms to the new map of brain view ``key``
    drawn, websocket bytes of the whole rerun). The brain view's own arrival -> drawn time goes to
    :data:`BROWSER_SIDE`."""
    from webapp.browser import drawn, wait_drawn

    _idle(drv)
    _ws_bytes(drv)
    old = drawn(drv, key)
    drv.execute_script("window.__bvT0 = null;")
    action()
    _, t_drawn = wait_drawn(drv, key, not_token=old[0] if old else None, prefix=prefix, timeout=timeout, poll=0.01)
    t0 = drv.execute_script("return window.__bvT0;")
    if t0 is None:
        raise RuntimeError("the action's time origin was not recorded")
    received = drv.execute_script("const m = document.getElementById(arguments[0]);"
                                  "return m && m.dataset.received ? parseFloat(m.dataset.received) : null;",
                                  f"brainview-drawn-{key}")
    if received:
        BROWSER_SIDE.append(float(t_drawn) - received)
    _idle(drv)
    return float(t_drawn) - float(t0), _ws_bytes(drv)


def _choose_upload(drv) -> None:
    from selenium.webdriver.common.by import By

    deadline = time.time() + 60
    while time.time() < deadline:
        labels = [e for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label')
                  if e.text.strip() == "Upload"]
        if labels:
            labels[0].click()
            break
        time.sleep(0.3)
    while time.time() < deadline:
        if drv.find_elements(By.CSS_SELECTOR, 'input[type="file"]'):
            return
        time.sleep(0.3)
    raise RuntimeError("no file input on the Live prediction page")


def _upload(drv, path: Path):
    from selenium.webdriver.common.by import By

    return lambda: drv.find_elements(By.CSS_SELECTOR, 'input[type="file"]')[0].send_keys(str(path))


def bench_browser(store_path: Path, n: int, port: int, n_clusters: int, block: int = 4) -> dict:
    """Live upload -> map drawn, and Voxel clusters k / cluster -> map drawn, brain view vs Plotly reference."""
    from webapp.browser import chrome_driver, quit_driver, start_app_server, stop_app_server

    store_imgs = _store_image_paths(store_path)
    uploads = upload_images(store_imgs, 2 * n + 16, seed=1)
    tmp = Path(tempfile.mkdtemp(prefix="brainviz-bench-uploads-"))
    files = []
    for i, d in enumerate(uploads):
        p = tmp / f"upload_{i:03d}.jpg"
        p.write_bytes(d)
        files.append((p, d))
    proc, url, _ = start_app_server(store_path, port, env={"HF_HUB_OFFLINE": "1"})
    drv = chrome_driver(window="1500,1400")
    drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _WS_COUNTER})
    modes = ("view", "plotly")
    out = {"live": {m: [] for m in modes}, "live_bytes": {m: [] for m in modes},
           "first_mount": {m: [] for m in modes},
           "k": {m: [] for m in modes}, "k_bytes": {m: [] for m in modes},
           "cluster": {m: [] for m in modes}, "cluster_bytes": {m: [] for m in modes}}
    try:
        it = iter(files)
        k = 0
        while min(len(out["live"][m]) for m in modes) < n:
            mode = modes[k % 2]
            k += 1
            if len(out["live"][mode]) >= n:
                continue
            _page(drv, url, "Live_prediction", mode == "plotly")
            _choose_upload(drv)
            p, d = next(it)
            token = hashlib.sha1(d).hexdigest()[:16]
            out["first_mount"][mode].append(_timed(drv, "live_brain", _upload(drv, p), prefix=token)[0])
            for _ in range(min(block, n - len(out["live"][mode]))):
                p, d = next(it)
                ms, nbytes = _timed(drv, "live_brain", _upload(drv, p), prefix=hashlib.sha1(d).hexdigest()[:16])
                out["live"][mode].append(ms)
                out["live_bytes"][mode].append(nbytes)
        k = 0
        while n_clusters and min(len(out["k"][m]) for m in modes) < n_clusters:
            mode = modes[k % 2]
            k += 1
            _clusters_block(drv, url, mode, min(block, n_clusters - len(out["k"][mode])), out)
    finally:
        quit_driver(drv)
        stop_app_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


#: The smallest page with a brain view: a number input and a map that changes with it (Streamlit's floor).
_FLOOR_PAGE = """
import numpy as np
import streamlit as st

from brainviz import plotting as B
from webapp.brainview import brain_view

n = st.number_input("map", 0, 10**6, 0)
rng = np.random.default_rng(int(n))
idx = np.arange(B.N_FSAVERAGE5)
brain_view({h: np.where(idx < 2000, rng.normal(size=B.N_FSAVERAGE5), np.nan) for h in B.HEMIS}, key="floor",
           vmin=-3, vmax=3, title=f"map {n}")
"""


def bench_floor(store_path: Path, n: int, port: int) -> list:
    """ms from a click (the number input's + button) to the new map drawn on the smallest page with a brain
    view: what Streamlit's rerun and the brain view cost with no page code (the floor of every page)."""
    from selenium.webdriver.common.by import By

    from webapp.browser import chrome_driver, drawn, quit_driver, start_app_server, stop_app_server, wait_drawn

    tmp = Path(tempfile.mkdtemp(prefix="brainviz-bench-floor-"))
    (tmp / "floor.py").write_text(_FLOOR_PAGE)
    proc, url, _ = start_app_server(store_path, port, env={"HF_HUB_OFFLINE": "1"}, script=str(tmp / "floor.py"))
    drv = chrome_driver(window="1300,1000")
    out = []
    try:
        drv.get(url)
        wait_drawn(drv, "floor")
        _idle(drv)
        drv.execute_script("document.addEventListener('click', e => {"
                           " window.__bvT0 = performance.timeOrigin + performance.now(); }, true);")
        for _ in range(n):
            _idle(drv)
            old = drawn(drv, "floor")[0]
            drv.execute_script("window.__bvT0 = null;")
            drv.find_elements(By.CSS_SELECTOR, '[data-testid="stNumberInputStepUp"]')[0].click()
            _, t1 = wait_drawn(drv, "floor", not_token=old, poll=0.01)
            out.append(float(t1) - float(drv.execute_script("return window.__bvT0;")))
    finally:
        quit_driver(drv)
        stop_app_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _clusters_block(drv, url: str, mode: str, count: int, out: dict) -> None:
    """On Voxel clusters (highlight on): ``count`` k changes and ``count`` cluster changes, timed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from webapp.browser import drawn, wait_drawn

    _page(drv, url, "Voxel_clusters", mode == "plotly")
    wait_drawn(drv, "brain")
    _idle(drv)
    toggle = [e for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] label')
              if "Highlight the selected cluster" in e.text][0]
    before = drawn(drv, "brain")
    toggle.click()  # the other clusters fade: the map changes with the selected cluster on both paths
    wait_drawn(drv, "brain", not_token=before[0] if before else None, timeout=60)
    _idle(drv)

    step = [Keys.ARROW_RIGHT]

    def k_step():  # walk k up to the largest, then down to the smallest, ...: as many new maps as there are k
        thumb = [e for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] [data-testid="stSlider"]')
                 if e.text.startswith("k (number of clusters)")][0].find_element(By.CSS_SELECTOR, 'input[type="range"]')
        value, low, high = (float(thumb.get_attribute(a)) for a in ("value", "min", "max"))
        if value >= high:
            step[0] = Keys.ARROW_LEFT
        elif value <= low:
            step[0] = Keys.ARROW_RIGHT
        drv.execute_script("arguments[0].focus();", thumb)
        thumb.send_keys(step[0])

    for i in range(count):
        ms, nbytes = _timed(drv, "brain", k_step)
        out["k"][mode].append(ms)
        out["k_bytes"][mode].append(nbytes)

    def pick(index):
        def act():
            drv.execute_script("window.__bvT0 = null;")
            box = [e for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stSelectbox"]')
                   if e.text.split("\n")[0].strip() == "Cluster"][0]
            box.find_element(By.CSS_SELECTOR, 'button[aria-label="Open"]').click()
            deadline = time.time() + 20
            while time.time() < deadline:
                opts = drv.find_elements(By.CSS_SELECTOR, '[role="option"]')
                if opts:
                    opts[index % len(opts)].click()
                    return
                time.sleep(0.05)
            raise RuntimeError("the Cluster box did not open")
        return act

    for i in range(count):
        ms, nbytes = _timed(drv, "brain", pick(1 if i % 2 == 0 else 0))
        out["cluster"][mode].append(ms)
        out["cluster_bytes"][mode].append(nbytes)


def _store_image_paths(store_path: Path) -> list[str]:
    from brainviz.store.reader import Store

    store = Store(store_path)
    try:
        images = store.images()
        return (images[images["dataset"] != "k92"]["path"].astype(str).tolist()
                or images["path"].astype(str).tolist())
    finally:
        store.close()


# --------------------------------------------------------------------------- payloads
#: Brain pages and the keys of their brain views (webapp.brainview).
BRAIN_PAGES = {"1_Voxel_clusters": ("brain", "planted", "recovered"), "3_Live_prediction": ("live_brain",),
               "4_Model_evaluation": ("acc_brain",), "6_In_silico_experiment": ("is_brain",)}


def _sent_bytes(at) -> dict:
    """{key: bytes} of every brain view and every Plotly chart of a run page, as the protobuf holds them
    (brain view: JSON arguments + the bytes argument; Plotly: the figure JSON)."""
    out = {}
    for e in at.get("component_instance"):
        p = e.proto
        if p.component_name.endswith("brainview"):
            out[p.id.rsplit("-", 1)[-1]] = len(p.json_args) + sum(len(a.bytes) for a in p.special_args)
    for e in at.get("plotly_chart"):
        out[e.proto.id.rsplit("-", 1)[-1]] = len(e.proto.spec)
    return out


def bench_payloads(store_path: Path) -> dict:
    """Bytes sent per update by each brain page (AppTest, default settings), brain views vs the Plotly figures
    (``?brain=plotly``); on Voxel clusters for every k and every subject of the default scope."""
    from streamlit.testing.v1 import AppTest

    os.environ["BRAINVIZ_STORE"] = str(store_path)

    def k_slider(at):
        return next(s for s in at.select_slider if s.label == "k (number of clusters)")

    def run(page: str, reference: bool, k=None, subject=None):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
        at.switch_page(f"pages/{page}.py")
        if reference:
            at.query_params["brain"] = "plotly"
        at.run()
        if k is not None or subject is not None:
            if k is not None:
                k_slider(at).set_value(k)
            if subject is not None:
                next(s for s in at.selectbox if s.label == "Brain shown").set_value(subject)
            at.run()
        if at.exception:
            raise RuntimeError(f"{page}: {at.exception[0].message[:300]}")
        return at

    out = {}
    for page, keys in BRAIN_PAGES.items():
        view, ref = _sent_bytes(run(page, False)), _sent_bytes(run(page, True))
        out[page] = {"view": {k: view.get(k) for k in keys}, "plotly": {k: ref.get(k) for k in keys}}
    at = run("1_Voxel_clusters", False)
    ks = list(k_slider(at).options)
    subjects = list(next(s for s in at.selectbox if s.label == "Brain shown").options)
    totals = []
    for k in ks:
        for subj in subjects:
            sent = _sent_bytes(run("1_Voxel_clusters", False, k=int(k), subject=subj))
            totals.append((int(k), subj, sent.get("brain", 0), sum(sent.get(key, 0) for key in BRAIN_PAGES[
                "1_Voxel_clusters"])))
    out["clusters_grid"] = totals
    return out


def print_payloads(p: dict) -> None:
    print("\nBytes sent per update (AppTest, default settings): brain view (JSON arguments + bytes) vs the Plotly "
          "figure JSON of the same map")
    for page in BRAIN_PAGES:
        for key, v in p[page]["view"].items():
            r = p[page]["plotly"].get(key)
            if v is None:
                print(f"  {page:24s} {key:11s} not drawn with these settings")
                continue
            print(f"  {page:24s} {key:11s} brain view {v / 1e3:6.1f} KB   plotly {r / 1e3 if r else float('nan'):7.1f} KB"
                  + (f"   ({r / v:.0f}x)" if r else ""))
    grid = p.get("clusters_grid") or []
    if grid:
        main = [g[2] for g in grid]
        page = [g[3] for g in grid]
        worst = max(grid, key=lambda g: g[3])
        print(f"  Voxel clusters, every k x subject of the default scope ({len(grid)} pages): main view max "
              f"{max(main) / 1e3:.1f} KB (median {statistics.median(main) / 1e3:.1f}); all brain views of the page "
              f"max {max(page) / 1e3:.1f} KB (k = {worst[0]}, {worst[1]}), median {statistics.median(page) / 1e3:.1f} KB")
    allv = [v for page in BRAIN_PAGES for v in p[page]["view"].values() if v] + [g[2] for g in grid]
    print(f"  largest brain view update: {max(allv) / 1e3:.1f} KB (bound: 100 KB per update on fsaverage5)")


# --------------------------------------------------------------------------- pages
def bench_pages(store_path: Path, runs: int) -> dict:
    from streamlit.testing.v1 import AppTest

    os.environ["BRAINVIZ_STORE"] = str(store_path)
    pages = {"home": ROOT / "app.py"} | {p.stem: p for p in sorted((ROOT / "pages").glob("*.py"))}
    trivial = Path(tempfile.mkdtemp()) / "trivial.py"
    trivial.write_text("import streamlit as st\nst.write('hello')\n")
    out = {}

    def app_at(p: Path) -> AppTest:
        if p == trivial or p.name == "app.py":
            return AppTest.from_file(str(p), default_timeout=300)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
        return at.switch_page(f"pages/{p.name}")

    for name, p in {"(trivial page)": trivial, **pages}.items():
        app_at(p).run()  # cold: fills st.cache_resource
        times = []
        for _ in range(runs):
            at = app_at(p)
            t0 = time.perf_counter()
            at.run()
            times.append((time.perf_counter() - t0) * 1e3)
            if at.exception:
                print(f"  ! {name}: {at.exception[0].message[:200]}")
        out[name] = times
    return out


# --------------------------------------------------------------------------- report
def print_server(r: dict) -> None:
    c, ref = r["view"], r["plotly"]
    print(f"\nLive prediction on {r['device']}, server side: {r['n']} distinct uploads (JPEG 425 x 425), subject "
          f"{r['subject']} ({r['n_vertices']} vertices), both paths per upload, interleaved; "
          f"model load {r['load_s']:.1f} s once per process")
    print(f"  {'stage (ms)':12s} {'view p50':>10s} {'p95':>7s}   {'plotly p50':>13s} {'p95':>7s}   ratio p50")
    for k in STAGES:
        a50, a95, b50, b95 = pct(c[k], 50), pct(c[k], 95), pct(ref[k], 50), pct(ref[k], 95)
        print(f"  {k:12s} {a50:10.1f} {a95:7.1f}   {b50:13.1f} {b95:7.1f}   {b50 / max(a50, 1e-9):6.2f}x")
    bv, bp = statistics.median(r["bytes"]["view"]), statistics.median(r["bytes"]["plotly"])
    print(f"  one map as sent: brain view {bv / 1e3:.1f} KB (max {max(r['bytes']['view']) / 1e3:.1f} KB), "
          f"plotly figure JSON {bp / 1e3:.1f} KB ({bp / bv:.0f}x)")
    lp50, lp95 = pct(c["total"], 50), pct(c["total"], 95)
    rp50, rp95 = pct(r["bare"], 50), pct(r["bare"], 95)
    print(f"  upload bytes -> brain map ready : p50 {lp50:7.1f} ms   p95 {lp95:7.1f} ms   (brain view payload, serialized)")
    print(f"  reference path (plotly figure)  : p50 {pct(ref['total'], 50):7.1f} ms   p95 {pct(ref['total'], 95):7.1f} ms")
    print(f"  reference: bare backbone forward: p50 {rp50:7.1f} ms   p95 {rp95:7.1f} ms")
    print(f"  ratio live / bare forward       : p50 {lp50 / rp50:5.2f}x   p95 {lp95 / rp95:5.2f}x")


def _line(label: str, view: list, plotly: list, view_bytes: list | None = None, plotly_bytes: list | None = None):
    if not view or not plotly:
        print(f"  {label}: not measured")
        return
    print(f"  {label}: brain view p50 {pct(view, 50):6.0f} ms  p95 {pct(view, 95):6.0f} ms   |   plotly p50 "
          f"{pct(plotly, 50):6.0f} ms  p95 {pct(plotly, 95):6.0f} ms   |   plotly / view p50 "
          f"{pct(plotly, 50) / pct(view, 50):5.2f}x")
    if view_bytes and plotly_bytes:
        print(f"  {' ' * len(label)}  websocket bytes per rerun, median: brain view {statistics.median(view_bytes) / 1e3:.1f} KB"
              f", plotly {statistics.median(plotly_bytes) / 1e3:.1f} KB")


def print_browser(b: dict) -> None:
    print("\nUser action -> map drawn in headless Chromium (SwiftShader WebGL, no GPU; streamlit run on 127.0.0.1), "
          "brain view vs Plotly reference (?brain=plotly) in alternating blocks, first action of a block after "
          "opening the page not counted")
    _line("Live upload -> map drawn       ", b["live"]["view"], b["live"]["plotly"], b["live_bytes"]["view"],
          b["live_bytes"]["plotly"])
    _line("Voxel clusters k -> map drawn  ", b["k"]["view"], b["k"]["plotly"], b["k_bytes"]["view"],
          b["k_bytes"]["plotly"])
    _line("Voxel clusters cluster -> drawn", b["cluster"]["view"], b["cluster"]["plotly"], b["cluster_bytes"]["view"],
          b["cluster_bytes"]["plotly"])
    fm = b["first_mount"]
    if fm["view"] and fm["plotly"]:
        print(f"  (first upload after opening the Live page, view mount: brain view {statistics.median(fm['view']):.0f} ms, "
              f"plotly {statistics.median(fm['plotly']):.0f} ms, median of {len(fm['view'])} / {len(fm['plotly'])})")
    if b.get("floor"):
        print(f"  floor: the smallest page with a brain view (a number input + the map), click -> new map drawn: "
              f"p50 {pct(b['floor'], 50):.0f} ms, p95 {pct(b['floor'], 95):.0f} ms ({len(b['floor'])} clicks): "
              "Streamlit's rerun + the brain view, no page code")
    if BROWSER_SIDE:
        print(f"  brain view, its arguments arrived -> map drawn (the browser side of the brain view): p50 "
              f"{pct(BROWSER_SIDE, 50):.0f} ms, p95 {pct(BROWSER_SIDE, 95):.0f} ms over {len(BROWSER_SIDE)} maps")
    print(f"  counts: live {len(b['live']['view'])} / {len(b['live']['plotly'])}, k {len(b['k']['view'])} / "
          f"{len(b['k']['plotly'])}, cluster {len(b['cluster']['view'])} / {len(b['cluster']['plotly'])}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default=None, help="store file (default: $BRAINVIZ_STORE, data/brainviz.duckdb, "
                                                  "else a synthetic one is built)")
    ap.add_argument("--n", type=int, default=60, help="distinct uploads timed on the server (>= 50 for the report)")
    ap.add_argument("--browser", type=int, default=0, help="uploads timed per path in headless Chromium (0: skip)")
    ap.add_argument("--clusters", type=int, default=None,
                    help="k changes and cluster changes timed per path on Voxel clusters (default: --browser)")
    ap.add_argument("--port", type=int, default=8611, help="port of the streamlit server of the browser timing")
    ap.add_argument("--runs", type=int, default=3, help="warm renders timed per page")
    ap.add_argument("--skip-pages", action="store_true")
    ap.add_argument("--skip-payloads", action="store_true", help="leave out the bytes-per-update table (AppTest)")
    args = ap.parse_args(argv)

    from webapp.storefile import store_path as default_store

    store_path = Path(args.store) if args.store else default_store()
    if not store_path.is_file():
        from brainviz.sample_store import build_app_store

        print(f"no store at {store_path}; building a synthetic one …", flush=True)
        store_path = build_app_store(Path(tempfile.mkdtemp(prefix="brainviz-bench-")))
    print(f"store: {store_path}")
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")

    print_server(bench_server(store_path, args.n))
    if not args.skip_payloads:
        print_payloads(bench_payloads(store_path))
    if args.browser:
        try:
            n_clusters = args.browser if args.clusters is None else args.clusters
            b = bench_browser(store_path, args.browser, args.port, n_clusters)
            b["floor"] = bench_floor(store_path, args.browser, args.port + 1)
            print_browser(b)
        except Exception as exc:  # no chromium etc.: say so, keep the rest
            print(f"\nbrowser timing not measured: {type(exc).__name__}: {exc}")
    try:
        import torch

        if not torch.cuda.is_available():
            print("\nGPU: none on this machine; live prediction on a GPU was not measured.")
    except ImportError:  # pragma: no cover
        pass

    if not args.skip_pages:
        pages = bench_pages(store_path, args.runs)
        base = statistics.median(pages["(trivial page)"])
        print(f"\nPage first render with a warm cache (AppTest, median of {args.runs})")
        for name, t in pages.items():
            med = statistics.median(t)
            print(f"  {name:22s} {med:8.0f} ms   {med / base:6.1f}x trivial page")
    print(f"\nload average at end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
