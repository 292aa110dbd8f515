"""Browser layout test: every page at 1,280 and 1,920 px wide, screenshotted whole, with nothing covered or clipped.

A real ``streamlit run app.py`` (webapp/browser.py) on the synthetic store, in headless Chromium. For each
page and width the window is made as tall as the page (so one screenshot holds all of it, saved to
``$BRAINVIZ_SCREENSHOTS`` or a temp dir as ``<page>_<width>.png``), then :data:`LAYOUT_JS` checks, in
the browser, what can be checked from the DOM:

* every title, axis title, tick label, annotation, legend entry, colour-bar label and bar label of a
  Plotly chart lies inside the chart (the SVG clips what sticks out);
* the chart's tool bar (top right, shown on hover) covers no label and no plot area of a 2-D chart;
* annotations, titles and legend entries of a chart do not overlap one another, nor do the tick labels
  of one axis;
* no text of the app is cut with an ellipsis (selectors, metrics, captions) and nothing is wider than the
  page (no sideways scrolling).

3-D scenes (the brain maps) are checked for clipped labels only: their tool bar sits over the scene by
design. Tables (drawn on a canvas) cannot be checked from the DOM: the screenshots show them.
``test_layout_checker_catches_bad_charts`` shows the checks fail on charts built to break them.

Run: ``pytest -m browser tests/webapp/test_layout.py``; screenshots of another running app:
``python -m tests.webapp.test_layout --url http://127.0.0.1:8501 --out shots/``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pytest

from webapp.browser import browser_missing, chrome_driver, quit_driver

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: (url path, screenshot name)
PAGES = [
    ("", "home"),
    ("Voxel_clusters", "voxel_clusters"),
    ("RDM_explorer", "rdm_explorer"),
    ("Live_prediction", "live_prediction"),
    ("Model_evaluation", "model_evaluation"),
    ("Decoding", "decoding"),
    ("In_silico_experiment", "insilico"),
]
WIDTHS = (1280, 1920)
MAX_HEIGHT = 16000  # px: a taller page is screenshotted down to here

#: Returns a list of problems (strings) of the page shown; see the module docstring.
LAYOUT_JS = r"""
const problems = [];
const R = el => el.getBoundingClientRect();
const shown = el => {
  const b = R(el), cs = getComputedStyle(el);
  return b.width > 0.5 && b.height > 0.5 && cs.visibility !== 'hidden' && cs.display !== 'none'
         && parseFloat(cs.opacity || '1') > 0 && (el.textContent || '').trim() !== '';
};
const overlap = (a, b, tol) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > tol
                            && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > tol;
const inside = (a, b, tol) => a.left >= b.left - tol && a.right <= b.right + tol
                           && a.top >= b.top - tol && a.bottom <= b.bottom + tol;
const txt = el => (el.textContent || '').trim().slice(0, 40);
document.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
  const svg = gd.querySelector('svg.main-svg');
  if (!svg) return;
  const fig = R(svg);
  if (fig.width < 2 || fig.height < 2) return;
  const title = gd.querySelector('.gtitle');
  const name = `chart ${i + 1}` + (title && txt(title) ? ` "${txt(title)}"` : '');
  const is3d = !!(gd._fullLayout && gd._fullLayout._subplots && (gd._fullLayout._subplots.gl3d || []).length);
  const pick = sel => Array.from(gd.querySelectorAll(sel)).filter(shown);
  const labels = pick('.gtitle, .xtitle, .ytitle, .annotation-text, .legendtext, .cbtitle text, text.cbtitle');
  const ticks = {};
  gd.querySelectorAll('.xtick text, .ytick text, .cbaxis text, g[class*="cb"] .ytick text').forEach(el => {
    if (!shown(el)) return;
    const g = el.closest('.xaxislayer-above, .yaxislayer-above, .cbaxis') || el.parentNode.parentNode;
    const key = (g && (g.className.baseVal || g.className)) + '|' + (el.closest('.subplot, .colorbar, .cbaxis') ? 'cb' : '')
                + '|' + (el.parentNode.classList.contains('xtick') ? 'x' : 'y') + '|' + Math.round(R(g).left);
    (ticks[key] = ticks[key] || []).push(el);
  });
  const allTicks = Object.values(ticks).flat();
  const bars = pick('.bartext, text.bartext, .textpoint text');
  for (const el of [...labels, ...allTicks, ...bars]) {
    if (!inside(R(el), fig, 1.5)) problems.push(`${name}: "${txt(el)}" is clipped at the chart's edge`);
  }
  if (!is3d) {
    const mb = gd.querySelector('.modebar');
    if (mb) {
      const m = R(mb);
      for (const el of [...labels, ...allTicks, ...bars]) {
        if (overlap(R(el), m, 1)) problems.push(`${name}: the tool bar covers "${txt(el)}"`);
      }
      gd.querySelectorAll('.draglayer .nsewdrag').forEach(p => {
        if (overlap(R(p), m, 1)) problems.push(`${name}: the tool bar covers the plot area`);
      });
    }
  }
  for (let a = 0; a < labels.length; a++) for (let b = a + 1; b < labels.length; b++) {
    if (labels[a].contains(labels[b]) || labels[b].contains(labels[a])) continue;
    if (overlap(R(labels[a]), R(labels[b]), 1)) problems.push(`${name}: "${txt(labels[a])}" overlaps "${txt(labels[b])}"`);
  }
  // rotated tick labels (tickangle): their boxes overlap on screen although the text does not; two labels
  // collide when the distance between their parallel baselines is under 0.8 of the font size
  const angle = el => { const m = /rotate\((-?[\d.]+)/.exec(el.getAttribute('transform') || ''); return m ? +m[1] : 0; };
  const collide = (a, b) => {
    const ta = angle(a), tb = angle(b);
    if (!ta && !tb) return overlap(R(a), R(b), 1);
    const ra = R(a), rb = R(b), th = ta * Math.PI / 180;
    const dx = (rb.left + rb.right - ra.left - ra.right) / 2, dy = (rb.top + rb.bottom - ra.top - ra.bottom) / 2;
    const font = parseFloat(getComputedStyle(a).fontSize) || 12;
    return Math.abs(-dx * Math.sin(th) + dy * Math.cos(th)) < 0.8 * font;
  };
  for (const group of Object.values(ticks)) for (let a = 0; a < group.length; a++) for (let b = a + 1; b < group.length; b++) {
    if (collide(group[a], group[b])) problems.push(`${name}: tick labels "${txt(group[a])}" and "${txt(group[b])}" overlap`);
  }
  for (const t of allTicks) for (const l of labels.filter(l => l.classList.contains('annotation-text'))) {
    if (overlap(R(t), R(l), 1)) problems.push(`${name}: tick label "${txt(t)}" overlaps "${txt(l)}"`);
  }
});
const app = document.querySelector('[data-testid="stApp"]');
if (app) {
  for (const el of app.querySelectorAll('*')) {
    if (el.closest('.js-plotly-plot, [data-testid="stDataFrame"], [data-testid="stTable"], [data-testid="stCode"], pre, code')) continue;
    const cs = getComputedStyle(el);
    if (cs.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1 && shown(el)
        && el.children.length <= 3) problems.push(`text cut with an ellipsis: "${txt(el)}"`);
  }
  const main = document.querySelector('[data-testid="stMain"]');
  if (main && main.scrollWidth > main.clientWidth + 2) problems.push(`the page is ${main.scrollWidth - main.clientWidth} px wider than the window`);
}
return Array.from(new Set(problems));
"""


def wait_rendered(drv, timeout: float = 120) -> None:
    """Until the app stopped running, its spinners are gone and every chart has been drawn."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    time.sleep(1.5)
    while time.time() < deadline:
        busy = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"], [data-testid="stSpinner"]')
        if drv.find_elements(By.CSS_SELECTOR, '[data-testid="stApp"]') and not busy:
            time.sleep(1.5)
            if not drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'):
                return
        time.sleep(0.5)
    raise AssertionError("page did not finish running")


def page_height(drv) -> int:
    """Height (px) the window needs to show the whole page without scrolling."""
    return int(drv.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]');"
        "return Math.max(m ? m.scrollHeight : 0, document.documentElement.scrollHeight);"))


def show_page(drv, url: str, width: int) -> None:
    """Open ``url`` at ``width`` px and make the window as tall as the page (charts redrawn at that size)."""
    drv.set_window_size(width, 1000)
    drv.get(url)
    wait_rendered(drv)
    for _ in range(3):  # a taller window can change the layout (charts resize): settle
        want = min(MAX_HEIGHT, page_height(drv) + 120)
        if abs(drv.execute_script("return window.innerHeight") - want) < 20:
            break
        drv.set_window_size(width, want)
        time.sleep(2.0)
        wait_rendered(drv)
    time.sleep(2.0)  # WebGL scenes and plotly relayouts


def layout_problems(drv) -> list[str]:
    """What :data:`LAYOUT_JS` finds on the page shown."""
    return list(drv.execute_script(LAYOUT_JS))


def shoot(url: str, out: Path, widths=WIDTHS, pages=PAGES, drv=None) -> dict[str, list[str]]:
    """Screenshot every page at every width into ``out`` (``<name>_<width>.png``); {shot name: problems}."""
    own = drv is None
    drv = drv or chrome_driver(window=f"{widths[0]},1000", page_load_timeout=90)
    found = {}
    try:
        for width in widths:
            for page, name in pages:
                show_page(drv, f"{url}/{page}", width)
                drv.save_screenshot(str(out / f"{name}_{width}.png"))
                found[f"{name}_{width}"] = layout_problems(drv)
    finally:
        if own:
            quit_driver(drv)
    return found


# --------------------------------------------------------------------------- pytest
@pytest.fixture(scope="module")
def driver():
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    drv = chrome_driver(window="1280,1000", page_load_timeout=90)
    try:
        yield drv
    finally:
        quit_driver(drv)


@pytest.fixture(scope="module")
def server(app_server, driver):
    return app_server


@pytest.fixture(scope="module")
def shot_dir():
    d = Path(os.environ.get("BRAINVIZ_SCREENSHOTS") or tempfile.mkdtemp(prefix="brainviz-layout-"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page,name", PAGES, ids=[p[1] for p in PAGES])
def test_page_layout(driver, server, shot_dir, page, name, width):
    from selenium.webdriver.common.by import By

    show_page(driver, f"{server}/{page}", width)
    driver.save_screenshot(str(shot_dir / f"{name}_{width}.png"))
    exc = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not exc, f"{name}: exception shown: {exc[0].text[:500]}"
    assert driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot") or name == "home", f"{name}: no chart drawn"
    problems = layout_problems(driver)
    assert not problems, f"{name} at {width} px:\n" + "\n".join(problems)


def test_layout_checker_catches_bad_charts(driver, tmp_path):
    """The checks fail on charts built to break them: a title under the tool bar, a legend and an annotation
    outside the figure, two annotations on top of each other, crowded tick labels; and pass on a good chart
    (with rotated tick labels whose boxes overlap)."""
    import plotly.graph_objects as go

    bad = go.Figure(go.Bar(x=[f"a rather long category name {i}" for i in range(40)], y=list(range(40))))
    bad.update_layout(width=500, height=300, margin=dict(l=10, r=10, t=10, b=10), showlegend=True,
                      title=dict(text="a title pushed under the tool bar", x=0.98, xanchor="right", y=0.99),
                      legend=dict(x=1.6, y=0.5))
    bad.update_xaxes(tickangle=0)
    bad.add_annotation(x=1, y=30, text="first label", showarrow=False)
    bad.add_annotation(x=1, y=30, text="second label", showarrow=False)
    bad.add_annotation(x=-0.3, y=0.5, xref="paper", yref="paper", text="far outside on the left", showarrow=False)
    from webapp import charts as C

    good = go.Figure(go.Bar(x=[f"long label number {i}" for i in range(8)], y=[1, 3, 2, 4, 1, 3, 2, 4], name="bars"))
    good.update_layout(width=500, height=360, margin=dict(l=50, r=20, t=10, b=130), title="a good chart")
    good.update_xaxes(tickangle=-45)  # rotated labels whose boxes overlap but whose text does not
    C.tidy(good)  # the pages' fix: the tool bar's row kept free, the title at the left
    html = tmp_path / "charts.html"
    html.write_text("<html><body>" + bad.to_html(full_html=False, include_plotlyjs=True, div_id="bad")
                    + good.to_html(full_html=False, include_plotlyjs=False, div_id="good", config=C.CONFIG)
                    + "</body></html>")
    driver.set_window_size(1280, 1000)
    driver.get(html.as_uri())
    time.sleep(2.0)
    problems = layout_problems(driver)
    text = "\n".join(problems)
    assert all(p.startswith("chart 1") for p in problems), text  # the good chart passes
    assert "the tool bar covers" in text, text
    assert "is clipped at the chart's edge" in text and "far outside on the left" in text, text
    assert '"first label" overlaps "second label"' in text, text
    assert "tick labels" in text and "overlap" in text, text


if __name__ == "__main__":  # screenshots + problems of an app that is already running
    ap = argparse.ArgumentParser(description="Screenshot every page at 1,280 and 1,920 px and list layout problems.")
    ap.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8501")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    ap.add_argument("--pages", nargs="+", default=None, help="screenshot names to take (default: every page)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in PAGES if a.pages is None or p[1] in a.pages]
    for shot, probs in shoot(a.url, a.out, a.widths, chosen).items():
        print(f"{shot}: {len(probs)} problems" + "".join(f"\n  - {p}" for p in probs))
