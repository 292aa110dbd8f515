"""Benchmark: live prediction latency and page first-render time, with in-run references.

Measured (CPU unless cuda is present; the device is printed):

* live prediction, end to end: upload bytes -> validate_image -> backbone + encoder for every
  subject of the model -> fsaverage5 map -> Plotly brain figure ready. p50 / p95 over N runs.
* reference: the bare backbone forward of the decoded image (``features_for_pil``, the part no
  app can avoid), with the same thread setting as the predictor.
* page first-render time with a warm cache (Streamlit AppTest; the store, predictor and
  meshes already cached by an earlier run in this process), per page, p50 over R runs.
* reference: a trivial one-line page opened the same way (the framework's own overhead). Pages
  are opened like a user does: a new session renders Home, then switches to the page; the
  page's render is timed (Home is timed as the first render of a session).

Ratios printed: live / bare forward, page / trivial page.

Usage::

    python bench/bench_live.py [--store data/brainviz.duckdb] [--n 30] [--runs 3]

Without ``--store`` (and without ``$BRAINVIZ_STORE`` / the default store) a small synthetic
store is built first (tests/app_fixtures.py, ~30 s).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q))


def sample_upload(path: str | None) -> bytes:
    from PIL import Image

    if path and Path(path).is_file():
        img = Image.open(path).convert("RGB").resize((425, 425))
    else:
        img = Image.fromarray((np.random.default_rng(0).random((425, 425, 3)) * 255).astype(np.uint8))
    b = io.BytesIO()
    img.save(b, format="JPEG", quality=90)  # a typical phone/web upload
    return b.getvalue()


def bench_live(store_path: Path, n: int) -> dict:
    import torch

    from brainviz import app_support as S
    from brainviz import brainplot as B
    from brainviz import live as L
    from brainviz.store.reader import Store

    store = Store(store_path)
    t = time.perf_counter()
    pred = L.get_live_predictor(store)
    load_s = time.perf_counter() - t
    subjects = pred.subjects
    verts = {s: store.vertices(s) for s in subjects}
    B.load_meshes("inflated"), B.background_shading()  # as in the app: cached after the first page view
    keys = store.prediction_keys(pred.model_id, subjects[0]) if subjects else []
    upload = sample_upload(store.images(keys[:1])["path"].iloc[0] if keys else None)

    def once(all_subjects: bool = False) -> float:
        """What the Live page does: the displayed subject (or every subject of the model)."""
        t0 = time.perf_counter()
        img = L.validate_image(upload)
        s = subjects[0]
        res = pred.predict(img, None if all_subjects else [s])
        B.brain_figure(S.to_fsaverage5(res.predictions[s], verts[s]), cmap="RdBu_r")
        return (time.perf_counter() - t0) * 1e3

    from PIL import Image

    from brainviz.features.extract import features_for_pil

    ref_img = Image.open(io.BytesIO(upload)).convert("RGB")

    def bare() -> float:
        """The backbone alone on the decoded image (same fast path and thread setting as the page)."""
        t0 = time.perf_counter()
        features_for_pil(pred.backbone, ref_img, num_threads=pred.cpu_threads)
        if pred.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e3

    for _ in range(3):  # warm-up
        once(), bare()
    live, live_all, ref = [], [], []
    for _ in range(n):  # interleaved, so background load hits all three alike
        live.append(once())
        live_all.append(once(True))
        ref.append(bare())
    store.close()
    return {"device": str(pred.device), "subjects": len(subjects),
            "vertices": int(sum(len(v) for v in verts.values())), "load_s": load_s,
            "live": live, "live_all": live_all, "ref": ref}


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default=None, help="store file (default: $BRAINVIZ_STORE, data/brainviz.duckdb, "
                                                  "else a synthetic one is built)")
    ap.add_argument("--n", type=int, default=30, help="live predictions timed")
    ap.add_argument("--runs", type=int, default=3, help="warm renders timed per page")
    ap.add_argument("--skip-pages", action="store_true")
    args = ap.parse_args(argv)

    from brainviz import app_support as S

    store_path = Path(args.store) if args.store else S.store_path()
    if not store_path.is_file():
        from tests.app_fixtures import build_app_store

        print(f"no store at {store_path}; building a synthetic one …", flush=True)
        store_path = build_app_store(Path(tempfile.mkdtemp(prefix="brainviz-bench-")))
    print(f"store: {store_path}")

    r = bench_live(store_path, args.n)
    lp50, lp95 = pct(r["live"], 50), pct(r["live"], 95)
    rp50, rp95 = pct(r["ref"], 50), pct(r["ref"], 95)
    print(f"\nLive prediction on {r['device']} ({r['subjects']} subjects, {r['vertices']} vertices in all; "
          f"model load {r['load_s']:.1f} s once per process)")
    ap50, ap95 = pct(r["live_all"], 50), pct(r["live_all"], 95)
    print(f"  upload bytes -> brain map ready : p50 {lp50:7.1f} ms   p95 {lp95:7.1f} ms   (1 subject, as the page)")
    print(f"  same, predicting every subject  : p50 {ap50:7.1f} ms   p95 {ap95:7.1f} ms")
    print(f"  reference: bare backbone forward: p50 {rp50:7.1f} ms   p95 {rp95:7.1f} ms")
    print(f"  ratio live / bare forward       : p50 {lp50 / rp50:5.2f}x   p95 {lp95 / rp95:5.2f}x")
    print(f"  ratio all subjects / bare       : p50 {ap50 / rp50:5.2f}x   p95 {ap95 / rp95:5.2f}x")

    if not args.skip_pages:
        pages = bench_pages(store_path, args.runs)
        base = statistics.median(pages["(trivial page)"])
        print(f"\nPage first render with a warm cache (AppTest, median of {args.runs})")
        for name, t in pages.items():
            med = statistics.median(t)
            print(f"  {name:22s} {med:8.0f} ms   {med / base:6.1f}x trivial page")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
