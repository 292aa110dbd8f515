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

``--sessions`` measures the In-silico page instead (issue 25): a ``streamlit run app.py``
server on a small store, two headless-Chromium sessions each uploading the largest sets
the page accepts (``--files`` JPEGs of 23.5 MiB per set, both sets), one session after the
other started, both kept open. It reports the server's resident memory: before the uploads,
its peak (``VmHWM``, sampled every 0.1 s too), with both sessions open, and after both
sessions ended (browsers closed; Streamlit ends a disconnected session after
``server.disconnectedSessionTTL``, set to 5 s here). ``--app-root DIR`` runs the server from
another checkout (``git archive <commit> | tar -x -C DIR``: the code before the change).

Run:  python bench/bench_upload_memory.py --sessions [--files 10] [--app-root DIR] [--port 8620]
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
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


# --------------------------------------------------------------------------- two app sessions (issue 25)
def big_jpeg(path: Path, target_mb: float = 23.5, seed: int = 0) -> None:
    """A JPEG of noise just under ``target_mb`` MiB (under the uploader's 25 MB per file, which the browser counts in 10^6 bytes)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    side = 3000
    while True:
        im = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=100, subsampling=0)
        if len(buf.getvalue()) <= target_mb * 2**20 or side < 500:
            path.write_bytes(buf.getvalue())
            return
        side = int(side * (target_mb * 2**20 / len(buf.getvalue())) ** 0.5) - 8


def _rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out["VmRSS"], out["VmHWM"]


def _insilico_session(url: str, files: list[Path], timeout: float = 600) -> dict:
    """A Chromium session on the In-silico page: upload ``files`` as set A and again as set B, wait
    until the page has handled both. Returns the driver (kept open) and what the page said."""
    from selenium.webdriver.common.by import By

    from webapp.browser import chrome_driver

    drv = chrome_driver()
    drv.get(f"{url}/In_silico_experiment")
    deadline = time.time() + timeout

    def wait_for(fn, what):
        while time.time() < deadline:
            got = fn()
            if got:
                return got
            errs = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
            if errs:
                raise RuntimeError(f"the page shows an exception: {errs[0].text[:300]}")
            time.sleep(0.3)
        shot = Path(tempfile.gettempdir()) / "bench_upload_memory_timeout.png"
        drv.save_screenshot(str(shot))
        raise RuntimeError(f"timed out waiting for {what} (screenshot {shot}); the page says: "
                           + drv.find_element(By.TAG_NAME, "body").text[-1500:])

    def upload_choice(slot: str):
        """The "Upload images" label of set ``slot``'s radio, or None while the page is not drawn."""
        for radio in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"]'):
            if f"Set {slot}: images from" in radio.text:
                return [e for e in radio.find_elements(By.TAG_NAME, "label") if e.text.strip() == "Upload images"]
        return None

    def uploader(slot: str):
        for up in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stFileUploader"]'):
            if f"Set {slot}: image files" in up.text:
                return up.find_elements(By.CSS_SELECTOR, 'input[type="file"]')
        return None

    for slot in ("A", "B"):
        for _ in range(10):  # a click during a rerun can be lost: click until the uploader is there
            wait_for(lambda: upload_choice(slot), f"set {slot}'s Upload choice")[0].click()
            t_click = time.time()
            while time.time() - t_click < 15 and not uploader(slot):
                time.sleep(0.3)
            if uploader(slot):
                break
        wait_for(lambda: uploader(slot), f"set {slot}'s file input")[0].send_keys("\n".join(str(f) for f in files))
        time.sleep(1.0)
    text = lambda: drv.find_element(By.TAG_NAME, "body").text  # noqa: E731
    running = lambda: drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')  # noqa: E731
    wait_for(lambda: "uploaded images predicted" in text() or "could not be predicted" in text(), "set A handled")
    idle_since = None
    while time.time() < deadline:  # both sets: the page stays idle for 6 s (rejected uploads leave no caption)
        if running():
            idle_since = None
        elif idle_since is None:
            idle_since = time.time()
        elif time.time() - idle_since > 6:
            break
        time.sleep(0.3)
    body = text()
    said = [line for line in body.splitlines() if "uploaded images predicted" in line or "limit" in line
            or "could not" in line or line.startswith("Contrast:")][:6]
    return {"driver": drv, "said": said}


def bench_sessions(files_per_set: int, port: int, app_root: Path | None, workdir: Path, rounds: int = 1) -> dict:
    """Peak / kept server memory for two In-silico sessions, each uploading two sets of big JPEGs."""
    import os
    import threading

    from webapp.browser import quit_driver

    root = (app_root or ROOT).resolve()
    store_dir = workdir / "store"
    if not (store_dir / "brainviz.duckdb").is_file():
        subprocess.run([sys.executable, "-m", "brainviz.sample_store", str(store_dir)], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}, capture_output=True)
    files = []
    for i in range(files_per_set):
        f = workdir / f"upload_{i:02d}.jpg"
        if not f.is_file():
            big_jpeg(f, seed=i)
        files.append(f)
    log = (workdir / "server.log").open("w")
    env = {**os.environ, "BRAINVIZ_STORE": str(store_dir / "brainviz.duckdb"), "PYTHONPATH": str(root),
           "HF_HUB_OFFLINE": "1", "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "5"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    samples: list[int] = []
    stop = threading.Event()
    drivers = []
    try:
        import urllib.request

        for _ in range(240):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        # warm the page once with a whole contrast of three small images per set (model load, caches,
        # figures), end that session, then take the baseline
        small = []
        for i in range(3):
            f = workdir / f"small_{i}.jpg"
            if not f.is_file():
                big_jpeg(f, target_mb=0.1, seed=100 + i)
            small.append(f)
        quit_driver(_insilico_session(url, small)["driver"])
        time.sleep(20)
        base = _rss(proc.pid)[0]

        def sample():
            while not stop.is_set():
                samples.append(_rss(proc.pid)[0])
                time.sleep(0.1)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        mb = lambda b: round(b / 2**20, 1)  # noqa: E731
        out = {"code": str(root), "files_per_set": files_per_set,
               "file_mb": round(sum(f.stat().st_size for f in files) / len(files) / 2**20, 1),
               "baseline_mb": mb(base), "rounds": []}
        for _ in range(rounds):
            said = []
            for _ in range(2):
                s = _insilico_session(url, files)
                drivers.append(s["driver"])
                said.append(s["said"])
            both_open = _rss(proc.pid)[0]
            for d in drivers:
                quit_driver(d)
            drivers = []
            time.sleep(30)  # > disconnectedSessionTTL (5 s) + BrainViz's reaper (every 5 s): both sessions ended
            after = _rss(proc.pid)[0]
            out["rounds"].append({"peak_extra_mb": mb(max(samples) - base), "both_open_extra_mb": mb(both_open - base),
                                  "after_sessions_end_extra_mb": mb(after - base), "page_said": said})
        stop.set()
        t.join()
        out.update(out["rounds"][0], peak_extra_mb=mb(max(samples) - base), hwm_mb=mb(_rss(proc.pid)[1]))
        return out
    finally:
        stop.set()
        for d in drivers:
            quit_driver(d)
        from webapp.browser import stop_app_server

        stop_app_server(proc)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="simultaneous uploads")
    ap.add_argument("--live", default=None, help="path of another live.py version to measure")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_upload_memory"), help="where the PNGs go")
    ap.add_argument("--sessions", action="store_true", help="two In-silico sessions uploading the largest sets")
    ap.add_argument("--files", type=int, default=10, help="--sessions: ~24.6 MB (23.5 MiB) JPEGs per set")
    ap.add_argument("--app-root", type=Path, default=None, help="--sessions: run the server from this checkout")
    ap.add_argument("--port", type=int, default=8620, help="--sessions: server port")
    ap.add_argument("--rounds", type=int, default=1, help="--sessions: rounds of two sessions, one after the other")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sessions:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(bench_sessions(args.files, args.port, args.app_root, args.out, args.rounds)))
        return
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
