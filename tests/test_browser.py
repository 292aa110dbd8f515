"""Browser test: every page rendered by a real Streamlit server in headless Chromium.

Starts ``streamlit run app.py`` on 127.0.0.1 (free port) with BRAINVIZ_STORE pointing at
the synthetic store, opens each page in headless Chromium (selenium, /usr/bin/chromium +
/usr/bin/chromedriver), saves a screenshot per page (to $BRAINVIZ_SCREENSHOTS or a temp
dir), asserts that the page shows no exception and that the 3-D brain canvas is not blank
(pixel variance and colored pixels inside the figure area), then stops the server by PID.

Skipped with a reason when chromium / chromedriver / selenium are missing.
Run: ``pytest -m browser tests/test_browser.py``.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.app_fixtures import app_store  # noqa: F401  (session fixture)
from tests.app_server import CHROMEDRIVER, CHROMIUM, chrome_driver, quit_driver, start_app_server, stop_app_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: (url path, screenshot name, has a 3-D brain)
PAGES = [
    ("", "home", False),
    ("Voxel_clusters", "voxel_clusters", True),
    ("RDM_explorer", "rdm_explorer", False),
    ("Live_prediction", "live_prediction", True),
    ("Model_evaluation", "model_evaluation", True),
    ("Decoding", "decoding", False),
]


def _missing() -> str | None:
    for p, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        if not (Path(p).is_file() or shutil.which(p)):
            return f"{what} not found at {p} (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(app_store):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    try:
        proc, url, _ = start_app_server(app_store, _free_port(), timeout=90)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        stop_app_server(proc)


@pytest.fixture(scope="module")
def driver(server):
    drv = chrome_driver(window="1500,2600", page_load_timeout=60)
    try:
        yield drv
    finally:
        quit_driver(drv)


@pytest.fixture(scope="module")
def shot_dir():
    d = Path(os.environ.get("BRAINVIZ_SCREENSHOTS") or tempfile.mkdtemp(prefix="brainviz-shots-"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _wait_rendered(drv, timeout: float = 90) -> None:
    """Until the app stopped running and its spinners are gone."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    time.sleep(1.5)
    while time.time() < deadline:
        running = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        spinners = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stSpinner"]')
        app = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stApp"]')
        if app and not running and not spinners:
            time.sleep(1.0)
            if not drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
                return
        time.sleep(0.5)
    raise AssertionError("page did not finish running")


def _brain_pixels(drv):
    """RGB array of the first plotly figure that holds a 3-D scene (None if there is none)."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    for plot in drv.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"):
        if plot.find_elements(By.CSS_SELECTOR, ".gl-container canvas, canvas"):
            if not plot.find_elements(By.CSS_SELECTOR, ".gl-container"):
                continue
            drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", plot)
            time.sleep(2.0)  # WebGL draw
            return np.asarray(Image.open(io.BytesIO(plot.screenshot_as_png)).convert("RGB"))
    return None


@pytest.mark.parametrize("page,name,has_brain", PAGES, ids=[p[1] for p in PAGES])
def test_page_renders(driver, server, shot_dir, page, name, has_brain):
    from selenium.webdriver.common.by import By

    driver.get(f"{server}/{page}")
    _wait_rendered(driver)
    if has_brain:  # wait for the WebGL scene to exist
        deadline = time.time() + 60
        while time.time() < deadline and not driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .gl-container"):
            time.sleep(0.5)
        time.sleep(2.0)
    driver.save_screenshot(str(shot_dir / f"{name}.png"))
    exc = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not exc, f"{name}: exception shown: {exc[0].text[:500]}"
    body = driver.find_element(By.CSS_SELECTOR, '[data-testid="stApp"]').text
    assert "Traceback" not in body
    if name != "home" and name != "rdm_explorer":
        assert "SIMULATED" in body, f"{name}: simulated data not labelled"
    if has_brain:
        px = _brain_pixels(driver)
        assert px is not None, f"{name}: no 3-D brain figure found"
        from PIL import Image

        Image.fromarray(px).save(shot_dir / f"{name}_brain.png")
        h, w, _ = px.shape
        inner = px[h // 8: h - h // 8, w // 8: w - w // 8].astype(float)
        assert inner.std() > 12, f"{name}: brain canvas looks blank (pixel std {inner.std():.1f})"
        sat = inner.max(-1) - inner.min(-1)
        assert (sat > 60).mean() > 0.01, f"{name}: no colored vertices visible in the brain canvas"
        gray = (sat < 15) & (inner.mean(-1) > 60) & (inner.mean(-1) < 235)
        assert gray.mean() > 0.01, f"{name}: no shaded gray surface visible"
    if name == "live_prediction":  # the page marks when its map has been drawn (bench/bench_live.py reads it)
        assert _map_drawn(driver, "") is not None, "live page: no map-drawn marker"


def _map_drawn(drv, token_prefix: str, timeout: float = 90):
    """(token, performance.now() ms) of the Live page's ``#brainviz-live-map-drawn`` marker once its token
    starts with ``token_prefix``; None on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = drv.execute_script("const m = document.getElementById('brainviz-live-map-drawn');"
                                 "return m ? [m.dataset.token || '', parseFloat(m.dataset.t)] : null;")
        if got and got[0].startswith(token_prefix):
            return got
        time.sleep(0.1)
    return None


def test_live_upload_draws_the_map(driver, server, shot_dir):
    """Upload an image on the Live page: the map of THAT image is drawn (marker token = its hash), not blank."""
    import hashlib

    from PIL import Image
    from selenium.webdriver.common.by import By

    driver.get(f"{server}/Live_prediction")
    _wait_rendered(driver)
    [e for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label') if e.text.strip() == "Upload"][0].click()
    deadline = time.time() + 60
    while time.time() < deadline and not driver.find_elements(By.CSS_SELECTOR, 'input[type="file"]'):
        time.sleep(0.3)
    rng = np.random.default_rng(3)
    img = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize((320, 240), Image.NEAREST)
    path = shot_dir / "upload.png"
    img.save(path)
    token = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    driver.find_elements(By.CSS_SELECTOR, 'input[type="file"]')[0].send_keys(str(path))
    assert _map_drawn(driver, token) is not None, "the uploaded image's map was not drawn"
    _wait_rendered(driver)
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert "upload.png" in driver.find_element(By.CSS_SELECTOR, '[data-testid="stApp"]').text
    driver.save_screenshot(str(shot_dir / "live_prediction_upload.png"))
    px = _brain_pixels(driver)
    assert px is not None
    inner = px[px.shape[0] // 8: -px.shape[0] // 8, px.shape[1] // 8: -px.shape[1] // 8].astype(float)
    sat = inner.max(-1) - inner.min(-1)
    assert inner.std() > 12 and (sat > 60).mean() > 0.01, "live map after upload looks blank"
