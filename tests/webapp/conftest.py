"""Fixtures of the browser tests (test_browser.py, test_layout.py)."""
from __future__ import annotations

import pytest

from brainviz.ddp import free_port
from webapp.browser import browser_missing, start_app_server, stop_app_server


@pytest.fixture(scope="module")
def app_server(app_store):
    """URL of ``streamlit run app.py`` on the app store (127.0.0.1, a free port), stopped by PID afterwards;
    the test is skipped when Chromium, chromedriver or selenium is missing."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    try:
        proc, url, _ = start_app_server(app_store, free_port(), timeout=90)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        stop_app_server(proc)
