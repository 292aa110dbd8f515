"""Peak memory of N simultaneous worst-case uploads through ``brainviz.live.validate_image``.

The worst case of issue 15: a PNG of 39.7 megapixels (7300 x 5440, one flat color) that
compresses to ~116 KB, so it passes every size limit of the uploader. The script

1. writes that PNG (and, for the bounded decoder, the largest PNG it still decodes),
2. in a FRESH process: imports the live module, holds the N upload byte strings, records
   the resident set size, runs ``validate_image`` in N threads started together, and
   reports the peak RSS above that baseline (``ru_maxrss``, sampled every 5 ms too),
3. prints one JSON line per case.

``--live PATH`` runs another version of ``brainviz/live.py`` (e.g. the one before issue 15:
``git show 8c5d345:brainviz/live.py > /tmp/live_before.py``) inside the current package.

Run:  python bench/bench_upload_memory.py [--n 10] [--live /tmp/live_before.py]
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worst_png(w: int = 7300, h: int = 5440, fmt: str = "PNG") -> bytes:
    """A flat gray picture of w x h px: tiny on disk, large when decoded."""
    import numpy as np
    from PIL import Image

    im = Image.fromarray(np.full((h, w, 3), 128, np.uint8))
    buf = io.BytesIO()
    if fmt == "PNG":
        im.save(buf, format="PNG", optimize=True, compress_level=9)
    else:
        im.save(buf, format=fmt, quality=50)
    return buf.getvalue()


CHILD = r'''
import importlib.util, json, os, resource, sys, threading, time
sys.path.insert(0, {root!r})
import brainviz, brainviz.errors, brainviz.features.preprocess  # noqa: E401
live_path, data_path, n = {live!r}, {data!r}, {n}
if live_path:
    spec = importlib.util.spec_from_file_location("brainviz._live_bench", live_path)
    L = importlib.util.module_from_spec(spec); L.__package__ = "brainviz"
    sys.modules["brainviz._live_bench"] = L; spec.loader.exec_module(L)
else:
    import brainviz.live as L
data = open(data_path, "rb").read()
uploads = [bytes(data) for _ in range(n)]

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
peak = [0]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss()); time.sleep(0.005)
base = rss()
base_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
results = [None] * n
go = threading.Barrier(n)
def work(i):
    go.wait()
    t = time.perf_counter()
    try:
        im = L.validate_image(uploads[i], name="worst.png")
        results[i] = ("ok", im.size, round(time.perf_counter() - t, 2))
    except Exception as exc:
        results[i] = ("rejected", str(exc)[:160], round(time.perf_counter() - t, 2))
s = threading.Thread(target=sample); s.start()
t0 = time.perf_counter()
ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
wall = time.perf_counter() - t0
stop.set(); s.join()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"n": n, "file_bytes": len(data), "baseline_rss_mb": round(base / 2**20, 1),
                  "peak_extra_mb": round((max(maxrss, peak[0]) - base) / 2**20, 1),
                  "peak_extra_mb_sampled": round((peak[0] - base) / 2**20, 1),
                  "maxrss_grew": maxrss > base_max, "wall_s": round(wall, 2),
                  "outcomes": sorted({{r[0] for r in results}}), "first": results[0]}}))
'''


def run_case(png: Path, n: int, live: str | None) -> dict:
    code = CHILD.format(root=str(ROOT), live=live or "", data=str(png), n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="simultaneous uploads")
    ap.add_argument("--live", default=None, help="path of another live.py version to measure")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_upload_memory"), help="where the PNGs go")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cases = {"39.7 MP PNG (issue 15 worst case)": (7300, 5440, "PNG"),
             "39.7 MP JPEG": (7300, 5440, "JPEG")}
    if args.live is None:
        sys.path.insert(0, str(ROOT))
        from brainviz.live import MAX_FULL_DECODE_PIXELS

        side = int(MAX_FULL_DECODE_PIXELS ** 0.5)
        cases[f"{side} x {side} PNG (largest PNG still decoded)"] = (side, side, "PNG")
    for label, (w, h, fmt) in cases.items():
        png = args.out / f"flat_{w}x{h}.{fmt.lower()}"
        if not png.exists():
            png.write_bytes(worst_png(w, h, fmt))
        res = run_case(png, args.n, args.live)
        print(json.dumps({"case": label, "live": args.live or "brainviz/live.py", **res}))


if __name__ == "__main__":
    main()
