"""Screenshots of every page with a brain, as in docs/screenshots/ (headless Chromium).

Starts ``streamlit run app.py`` on ``--store`` (127.0.0.1, ``--port``), opens each brain page at
each ``--width`` (default 1280 and 1920 px), waits until every brain view has drawn its map and
the page has finished running, and saves ``<page>.png`` (first width) / ``<page>_<width>.png``
(others) in ``--out``; for Voxel clusters also its planted-vs-recovered section
(``voxel_clusters_recovery``). Needs chromium + chromedriver + selenium (scripts/install_browser.sh).

    python scripts/screenshots.py --store data/brainviz.duckdb --out docs/screenshots
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: url path -> (file stem, keys of its brain views)
BRAIN_PAGES = {
    "Voxel_clusters": ("voxel_clusters", ("brain", "planted", "recovered")),
    "Live_prediction": ("live_prediction", ("live_brain",)),
    "Model_evaluation": ("model_evaluation", ("acc_brain",)),
    "In_silico_experiment": ("insilico", ("is_brain",)),
}


def _idle(drv, timeout: float = 180) -> None:
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    quiet = 0
    while time.time() < deadline and quiet < 4:
        busy = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"], [data-testid="stSpinner"]')
        quiet = 0 if busy else quiet + 1
        time.sleep(0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="the store to show")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--width", type=int, action="append", help="window width in px (repeatable; 1280 and 1920)")
    ap.add_argument("--height", type=int, default=2200, help="window height of the page shots (px)")
    ap.add_argument("--port", type=int, default=8612)
    ap.add_argument("--pages", nargs="*", help=f"only these pages ({', '.join(BRAIN_PAGES)})")
    ap.add_argument("--insilico-map", help="the In-silico page's map to show, e.g. 't (all vertices)'")
    args = ap.parse_args(argv)
    widths = args.width or [1280, 1920]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from selenium.webdriver.common.by import By

    from webapp.browser import chrome_driver, quit_driver, start_app_server, stop_app_server, wait_drawn

    proc, url, _ = start_app_server(Path(args.store), args.port, env={"HF_HUB_OFFLINE": "1"}, timeout=180)
    try:
        for i, width in enumerate(widths):
            suffix = "" if i == 0 else f"_{width}"
            drv = chrome_driver(window=f"{width},{args.height}")
            try:
                for page, (stem, keys) in BRAIN_PAGES.items():
                    if args.pages and page not in args.pages:
                        continue
                    drv.set_window_size(width, args.height)
                    drv.get(f"{url}/{page}")
                    try:
                        for key in keys:
                            wait_drawn(drv, key, timeout=900)  # in-silico: ~500 images predicted once
                    except RuntimeError as exc:  # e.g. a store too small for the page's defaults
                        print(f"{stem}: no brain drawn ({exc}); skipped")
                        continue
                    _idle(drv)
                    if page == "In_silico_experiment" and args.insilico_map:
                        old = wait_drawn(drv, "is_brain")[0]
                        [e for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label')
                         if e.text.strip() == args.insilico_map][0].click()
                        wait_drawn(drv, "is_brain", not_token=old, timeout=300)
                        _idle(drv)
                    time.sleep(1.0)
                    drv.save_screenshot(str(out / f"{stem}{suffix}.png"))
                    print(f"{stem}{suffix}.png")
                    if page == "Voxel_clusters":
                        heads = [h for h in drv.find_elements(By.CSS_SELECTOR, "h3")
                                 if h.text.startswith("Planted vs recovered")]
                        if heads:
                            drv.set_window_size(width, 1400)
                            drv.execute_script("arguments[0].scrollIntoView({block: 'start'});", heads[0])
                            time.sleep(1.5)
                            drv.save_screenshot(str(out / f"voxel_clusters_recovery{suffix}.png"))
                            print(f"voxel_clusters_recovery{suffix}.png")
            finally:
                quit_driver(drv)
    finally:
        stop_app_server(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
