"""Which engine draws the brain view: NiiVue or three.js (the choice behind webapp/brainview).

The same map in both: the two fsaverage5 inflated hemispheres of the app's mesh asset
(:func:`brainviz.plotting.mesh_asset`), one value per vertex, drawn in headless Chromium (SwiftShader
WebGL, as the browser test). Per engine and round: the page load (bundle parse), the mesh parse,
the first draw (engine set up + meshes + first frame on screen) and the p50 of 15 updates (new
values on every vertex, redrawn, two animation frames; in brackets the work without waiting for frames:
values set, drawn, ``gl.finish()``). Bundle sizes are those esbuild writes
(minified; gzip as the server sends them).

Run (needs Node and the packages of package.json, and chromium + chromedriver)::

    cd bench/viewer_choice && npm ci && cd ../.. && python bench/viewer_choice/measure.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
ENGINES = {"three.js": "three_page.js", "NiiVue": "niivue_page.js"}


def build(out: Path) -> dict:
    esbuild = HERE / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        raise SystemExit("run `npm ci` in bench/viewer_choice first")
    sizes = {}
    for name, src in ENGINES.items():
        js = out / f"{Path(src).stem}.js"
        subprocess.run([str(esbuild), src, "--bundle", "--minify", "--format=iife", "--target=es2020",
                        f"--outfile={js}", "--log-level=error"], cwd=HERE, check=True)
        (out / f"{Path(src).stem}.html").write_text(
            '<!doctype html><html><body style="margin:0"><canvas id="gl" width="900" height="520" '
            f'style="width:900px;height:520px"></canvas><script src="{js.name}"></script></body></html>')
        data = js.read_bytes()
        sizes[name] = (len(data), len(gzip.compress(data)))
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    from brainviz import plotting as B
    from webapp.browser import chrome_driver, quit_driver

    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "mesh.bin").write_bytes(B.mesh_asset("inflated"))
    sizes = build(out)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):  # noqa: D401 - no access log
            pass

    handler = functools.partial(Quiet, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    res: dict = {name: [] for name in ENGINES}
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")
    try:
        for _ in range(args.rounds):
            for name, src in ENGINES.items():  # alternate the engines, a fresh browser each time
                drv = chrome_driver(window="1000,700")
                try:
                    drv.set_script_timeout(180)
                    drv.get(f"{url}/{Path(src).stem}.html")
                    load = drv.execute_script("const e = performance.getEntriesByType('navigation')[0];"
                                              "return e.loadEventEnd - e.startTime;")
                    r = drv.execute_async_script("const done = arguments[arguments.length - 1];"
                                                 "window.run(15).then(done).catch(e => done({error: String(e)}));")
                    if "error" in r:
                        raise RuntimeError(f"{name}: {r['error']}")
                    res[name].append({"load": load, **r})
                finally:
                    quit_driver(drv)
    finally:
        httpd.shutdown()
    print(f"\n{'engine':10s} {'bundle (min / gzip)':>22s} {'page load':>10s} {'mesh parse':>11s} {'first draw':>11s} "
          f"{'update p50':>11s} {'(GL work)':>10s}   (medians of {args.rounds} rounds, ms)")
    for name, rs in res.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("load", "parse", "firstDraw", "updateP50", "workP50")}
        b, g = sizes[name]
        print(f"{name:10s} {b / 1e3:9.0f} KB / {g / 1e3:5.0f} KB {med['load']:10.0f} {med['parse']:11.0f} "
              f"{med['firstDraw']:11.0f} {med['updateP50']:11.1f} {med['workP50']:10.1f}")
    print(f"load average at end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
