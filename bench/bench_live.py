"""Benchmark: live prediction, upload to the map on screen, with in-run references.

Three measurements, each against the code path before the cached figure (the reference), in the
same run:

1. **Server**, per image (>= 50 distinct JPEG uploads, 425 x 425, each timed on both paths,
   interleaved so background load hits both alike): upload bytes -> ``validate_image`` (decode)
   -> backbone -> encoder (the displayed subject, as the page) -> fsaverage5 map + Plotly figure
   (figure) -> what ``st.plotly_chart`` does with it before sending (``to_dict`` + ``to_json``:
   serialize). Cached path: :func:`brainviz.plotting.map_figure`; reference:
   :func:`brainviz.plotting.brain_figure` (the uncached builder the page used before).
   p50 / p95 of every stage and of the total.
   Also the bare backbone forward (``features_for_pil``, the part no app can avoid).
2. **Browser** (``--browser N``, needs chromium + chromedriver + selenium): a real
   ``streamlit run app.py`` on 127.0.0.1 (``--port``), the Live prediction page in headless
   Chromium (SwiftShader WebGL, no GPU), N uploads per path: time from the file input's
   ``change`` event to the page's ``#brainviz-live-map-drawn`` marker for that image (written
   two animation frames after Plotly holds the new figure). Reference: the same page with
   ``?figure=reference``. Blocks of uploads alternate between the paths; the first upload of a
   block (the chart's first mount) is not counted.
3. Page first render with a warm cache (Streamlit AppTest), per page, vs a trivial page
   (``--skip-pages`` to leave out).

Usage::

    python bench/bench_live.py [--store data/brainviz.duckdb] [--n 60] [--browser 12] [--port 8611]

Without ``--store`` (and without ``$BRAINVIZ_STORE`` / the default store) a small synthetic
store is built first (tests/app_fixtures.py, ~15 s).
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

STAGES = ("decode", "backbone", "encoder", "figure", "serialize", "total")


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
    """Per-stage server timings of the cached and the reference path over ``n`` distinct uploads."""
    import plotly.io
    import plotly.tools
    import torch

    from brainviz import live as L
    from brainviz import plotting as B
    from brainviz.data.surfaces import load_meshes
    from brainviz.features.extract import features_for_pil
    from brainviz.store.reader import Store
    from webapp import viewmodel as V

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
    # as in the app: meshes, shading and (cached path) the figure scaffold are warmed when the model loads
    load_meshes("inflated"), B.background_shading()
    B.map_figure({h: np.zeros(B.N_FSAVERAGE5) for h in B.HEMIS}, vmin=-1, vmax=1, hover_name="predicted")

    def once(data: bytes, cached: bool) -> dict:
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
        fig = B.map_figure(maps, meta="x", **kw) if cached else B.brain_figure(maps, **kw)
        t3 = time.perf_counter()
        # what st.plotly_chart does before the figure goes out
        spec = plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True),
                                 validate=False)
        t4 = time.perf_counter()
        ms = lambda a, b: (b - a) * 1e3  # noqa: E731
        return {"decode": ms(t0, t1), "backbone": res.timings_ms["features"], "encoder": res.timings_ms["encoder"],
                "figure": ms(t2, t3), "serialize": ms(t3, t4), "total": ms(t0, t4), "bytes": len(spec)}

    ref_img = L.validate_image(uploads[0])

    def bare() -> float:
        t0 = time.perf_counter()
        features_for_pil(pred.backbone, ref_img, num_threads=pred.cpu_threads)
        if pred.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    for d in uploads[:3]:  # warm-up
        once(d, True), once(d, False), bare()
    out = {"cached": {k: [] for k in STAGES}, "reference": {k: [] for k in STAGES}, "bare": [], "bytes": {}}
    for i, d in enumerate(uploads):
        order = (True, False) if i % 2 == 0 else (False, True)
        for cached in order:
            r = once(d, cached)
            name = "cached" if cached else "reference"
            for k in STAGES:
                out[name][k].append(r[k])
            out["bytes"][name] = r["bytes"]
        out["bare"].append(bare())
    store.close()
    out.update(device=str(pred.device), load_s=load_s, n=len(uploads), subject=s, n_vertices=len(verts))
    return out


# --------------------------------------------------------------------------- browser
def open_live_upload(drv, url: str, reference: bool = False, timeout: float = 120) -> None:
    """Open the Live prediction page (``?figure=reference`` for the reference path), choose Upload."""
    from selenium.webdriver.common.by import By

    drv.get(f"{url}/Live_prediction" + ("?figure=reference" if reference else ""))
    deadline = time.time() + timeout
    while time.time() < deadline:
        labels = [e for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label')
                  if e.text.strip() == "Upload"]
        if labels:
            labels[0].click()
            break
        errs = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlertContentError"]')
        if errs:
            raise RuntimeError(f"the Live prediction page shows an error: {errs[0].text[:300]}")
        time.sleep(0.3)
    else:
        raise RuntimeError("the Live prediction page shows no Upload choice")
    while time.time() < deadline:
        if drv.find_elements(By.CSS_SELECTOR, 'input[type="file"]'):
            break
        time.sleep(0.3)
    else:
        raise RuntimeError("no file input on the Live prediction page")
    # time origin of an upload: the file input's change event (capture phase, any input)
    drv.execute_script("window.__bvT0 = null; document.addEventListener('change', e => {"
                       "if (e.target && e.target.type === 'file') window.__bvT0 = performance.now(); }, true);")


def upload_and_wait(drv, path: Path, data: bytes, timeout: float = 120) -> float:
    """Upload ``path`` (bytes ``data``) and return ms from the input's change event to the map drawn."""
    from selenium.webdriver.common.by import By

    token = hashlib.sha1(data).hexdigest()[:16]
    drv.execute_script("window.__bvT0 = null;")
    drv.find_elements(By.CSS_SELECTOR, 'input[type="file"]')[0].send_keys(str(path))
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = drv.execute_script(
            "const m = document.getElementById('brainviz-live-map-drawn');"
            "return m ? [m.dataset.token || '', parseFloat(m.dataset.t), window.__bvT0] : null;")
        if got and got[0].startswith(token) and got[2] is not None:
            return float(got[1]) - float(got[2])
        errs = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlertContentError"]')
        if errs:
            raise RuntimeError(f"the page shows an error: {errs[0].text[:300]}")
        time.sleep(0.02)
    raise RuntimeError(f"map of {path.name} not drawn within {timeout:.0f} s")


def bench_browser(store_path: Path, n: int, port: int, block: int = 4) -> dict:
    """Upload -> map drawn in headless Chromium, cached vs reference page, ``n`` timed uploads each."""
    store_imgs = _store_image_paths(store_path)
    uploads = upload_images(store_imgs, 2 * n + 8, seed=1)
    tmp = Path(tempfile.mkdtemp(prefix="brainviz-bench-uploads-"))
    files = []
    for i, d in enumerate(uploads):
        p = tmp / f"upload_{i:03d}.jpg"
        p.write_bytes(d)
        files.append((p, d))
    from tests.app_server import chrome_driver, quit_driver, start_app_server, stop_app_server

    proc, url, _ = start_app_server(store_path, port, env={"HF_HUB_OFFLINE": "1"})
    drv = chrome_driver()
    out = {"cached": [], "reference": [], "first_mount": {"cached": [], "reference": []}}
    try:
        it = iter(files)
        modes = ("cached", "reference")
        k = 0
        while min(len(out["cached"]), len(out["reference"])) < n:
            mode = modes[k % 2]
            k += 1
            if len(out[mode]) >= n:
                continue
            open_live_upload(drv, url, reference=mode == "reference")
            p, d = next(it)
            out["first_mount"][mode].append(upload_and_wait(drv, p, d))  # chart mounts: not counted
            for _ in range(min(block, n - len(out[mode]))):
                p, d = next(it)
                out[mode].append(upload_and_wait(drv, p, d))
    finally:
        quit_driver(drv)
        stop_app_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _store_image_paths(store_path: Path) -> list[str]:
    from brainviz.store.reader import Store

    store = Store(store_path)
    try:
        images = store.images()
        return (images[images["dataset"] != "k92"]["path"].astype(str).tolist()
                or images["path"].astype(str).tolist())
    finally:
        store.close()


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
    c, ref = r["cached"], r["reference"]
    print(f"\nLive prediction on {r['device']}, server side: {r['n']} distinct uploads (JPEG 425 x 425), subject "
          f"{r['subject']} ({r['n_vertices']} vertices), both paths per upload, interleaved; "
          f"model load {r['load_s']:.1f} s once per process")
    print(f"  {'stage (ms)':12s} {'cached p50':>10s} {'p95':>7s}   {'reference p50':>13s} {'p95':>7s}   ratio p50")
    for k in STAGES:
        a50, a95, b50, b95 = pct(c[k], 50), pct(c[k], 95), pct(ref[k], 50), pct(ref[k], 95)
        print(f"  {k:12s} {a50:10.1f} {a95:7.1f}   {b50:13.1f} {b95:7.1f}   {b50 / max(a50, 1e-9):6.2f}x")
    print(f"  figure JSON sent: cached {r['bytes']['cached'] / 1e6:.2f} MB, reference {r['bytes']['reference'] / 1e6:.2f} MB")
    lp50, lp95 = pct(c["total"], 50), pct(c["total"], 95)
    rp50, rp95 = pct(r["bare"], 50), pct(r["bare"], 95)
    print(f"  upload bytes -> brain map ready : p50 {lp50:7.1f} ms   p95 {lp95:7.1f} ms   (cached figure, serialized)")
    print(f"  reference path (uncached figure): p50 {pct(ref['total'], 50):7.1f} ms   p95 {pct(ref['total'], 95):7.1f} ms")
    print(f"  reference: bare backbone forward: p50 {rp50:7.1f} ms   p95 {rp95:7.1f} ms")
    print(f"  ratio live / bare forward       : p50 {lp50 / rp50:5.2f}x   p95 {lp95 / rp95:5.2f}x")


def print_browser(b: dict) -> None:
    c, ref = b["cached"], b["reference"]
    print(f"\nUpload -> map drawn in headless Chromium (SwiftShader WebGL, no GPU; streamlit run on 127.0.0.1), "
          f"{len(c)} + {len(ref)} uploads in alternating blocks, first mount of each block not counted")
    print(f"  cached figure   : p50 {pct(c, 50):7.0f} ms   p95 {pct(c, 95):7.0f} ms")
    print(f"  reference figure: p50 {pct(ref, 50):7.0f} ms   p95 {pct(ref, 95):7.0f} ms")
    print(f"  ratio reference / cached: p50 {pct(ref, 50) / pct(c, 50):5.2f}x")
    fm = b["first_mount"]
    print(f"  (first upload after opening the page, chart mount: cached {statistics.median(fm['cached']):.0f} ms, "
          f"reference {statistics.median(fm['reference']):.0f} ms, median of {len(fm['cached'])} / {len(fm['reference'])})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default=None, help="store file (default: $BRAINVIZ_STORE, data/brainviz.duckdb, "
                                                  "else a synthetic one is built)")
    ap.add_argument("--n", type=int, default=60, help="distinct uploads timed on the server (>= 50 for the report)")
    ap.add_argument("--browser", type=int, default=0, help="uploads timed per path in headless Chromium (0: skip)")
    ap.add_argument("--port", type=int, default=8611, help="port of the streamlit server of the browser timing")
    ap.add_argument("--runs", type=int, default=3, help="warm renders timed per page")
    ap.add_argument("--skip-pages", action="store_true")
    args = ap.parse_args(argv)

    from webapp.storefile import store_path as default_store

    store_path = Path(args.store) if args.store else default_store()
    if not store_path.is_file():
        from tests.app_fixtures import build_app_store

        print(f"no store at {store_path}; building a synthetic one …", flush=True)
        store_path = build_app_store(Path(tempfile.mkdtemp(prefix="brainviz-bench-")))
    print(f"store: {store_path}")
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")

    print_server(bench_server(store_path, args.n))
    if args.browser:
        try:
            print_browser(bench_browser(store_path, args.browser, args.port))
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
