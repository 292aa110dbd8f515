"""Helpers of the app tests (Streamlit AppTest): open a page, run it, read its texts and charts."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests import ROOT

HOME = str(ROOT / "app.py")
PAGES = {p.stem: str(p) for p in sorted((ROOT / "pages").glob("*.py"))}
TIMEOUT = 120


def run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.message for e in at.exception]
    return at


def page(name: str) -> AppTest:
    """The app (app.py as main script, like `streamlit run app.py`) switched to page ``name``."""
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    at.run(timeout=TIMEOUT)
    at.switch_page(f"pages/{name}.py")
    return at


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "header", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def brains(at: AppTest) -> int:
    """Brain views (the webapp.brainview component) on the page."""
    return sum(e.proto.component_name.endswith("brainview") for e in at.get("component_instance"))


def charts(at: AppTest) -> int:
    """Plotly charts and brain views."""
    return len(at.get("plotly_chart")) + brains(at)
