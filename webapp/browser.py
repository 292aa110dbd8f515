"""The app in a real browser: a ``streamlit run app.py`` server on 127.0.0.1 and headless Chromium.

Used by the browser tests (tests/webapp/test_browser.py, tests/webapp/test_layout.py), the benchmarks (bench/bench_live.py,
bench/bench_upload_memory.py) and scripts/screenshots.py; not by the app itself (it needs selenium).
The server runs in its own process group and is stopped by its PID only.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Mapping

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BRAINVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BRAINVIZ_CHROMEDRIVER", "/usr/bin/chromedriver")


def start_app_server(store_path: Path, port: int, timeout: float = 120,
                     env: Mapping[str, str] | None = None, script: str = "app.py") -> tuple[subprocess.Popen, str, Path]:
    """Start ``streamlit run app.py`` (or another ``script``) on ``store_path`` and wait until it is healthy.

    Returns (process, base url, log file). ``env``: extra environment variables. Raises
    RuntimeError (with the end of the log) when the server exits or is not healthy within
    ``timeout`` seconds; the server is stopped first.
    """
    full_env = dict(os.environ, BRAINVIZ_STORE=str(store_path), PYTHONPATH=str(ROOT), **(env or {}))
    log = Path(tempfile.mkdtemp(prefix="brainviz-app-server-")) / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1", "--server.port",
             str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read().strip() == b"ok":
                return proc, url, log
        except OSError:
            time.sleep(0.5)
    stop_app_server(proc)
    raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_app_server(proc: subprocess.Popen) -> None:
    """Stop a server of :func:`start_app_server` (its process group, by PID): TERM, then KILL after 15 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def chrome_driver(window: str = "1500,1400", page_load_timeout: float = 90, extra_flags=()):
    """Headless Chromium (selenium, SwiftShader WebGL) with a fresh profile (removed by :func:`quit_driver`).

    ``extra_flags``: more Chromium switches (e.g. ``--disable-webgl``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="brainviz-chrome-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--enable-unsafe-swiftshader", f"--window-size={window}",
                 f"--user-data-dir={profile}", *extra_flags):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(page_load_timeout)
    drv._brainviz_profile = profile  # noqa: SLF001  (removed by quit_driver)
    return drv


def quit_driver(drv) -> None:
    """Quit a :func:`chrome_driver` browser and remove its profile."""
    prof = getattr(drv, "_brainviz_profile", None)
    drv.quit()
    if prof:
        shutil.rmtree(prof, ignore_errors=True)


# --------------------------------------------------------------------------- brain views in the page
#: The iframes of the brain view component (webapp/brainview).
BRAIN_FRAME = 'iframe[title="webapp.brainview.brainview"]'


def drawn(drv, key: str):
    """(token, epoch ms) of the brain view ``key``'s drawn marker (``#brainview-drawn-<key>``), or None.

    Written by the component two animation frames after it drew a map (and by the Plotly reference
    path, ``?brain=plotly``, once Plotly holds the figure); time = performance.timeOrigin + now().
    """
    return drv.execute_script(
        "const m = document.getElementById(arguments[0]);"
        "return m ? [m.dataset.token || '', parseFloat(m.dataset.t)] : null;", f"brainview-drawn-{key}")


def wait_drawn(drv, key: str, *, not_token: str | None = None, prefix: str = "", timeout: float = 90,
               poll: float = 0.02):
    """Wait until brain view ``key`` has drawn a map whose token starts with ``prefix`` and differs from
    ``not_token``; return (token, epoch ms). Raises RuntimeError on timeout or when the page shows an error."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        got = drawn(drv, key)
        if got and got[0].startswith(prefix) and got[0] != not_token:
            return got
        errs = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        if errs:
            raise RuntimeError(f"the page shows an error: {errs[0].text[:300]}")
        time.sleep(poll)
    raise RuntimeError(f"brain view {key!r} drew no new map within {timeout:.0f} s (last: {drawn(drv, key)})")


def epoch_ms(drv) -> float:
    """The page's clock (performance.timeOrigin + now(), ms): the time base of the drawn markers."""
    return float(drv.execute_script("return performance.timeOrigin + performance.now();"))


def browser_missing() -> str | None:
    """Why headless Chromium cannot run here (a test's skip reason), or None."""
    for p, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        if not (Path(p).is_file() or shutil.which(p)):
            return f"{what} not found at {p} (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None
