"""The decoding analysis alone (``brainviz.pipeline.analyses.decoding.run``) on a prepared dataset, in its own process:
wall seconds, peak RSS and the peaks of anonymous / file-backed resident memory (sampled every 0.2 s), the baseline
(the same process before decoding: Context and features loaded) and the headline numbers (issue 29).

    python bench/decoding_alone.py --base DIR [--root CODE] [--jobs N]

``DIR`` holds ``dataset/`` (``bench/make_nsd_release.py``) and ``cache/`` (``precompute features`` run on it with
``--cache-dir DIR/cache``); ``--root``: the code that runs (default this checkout; e.g. ``git archive REV | tar -x -C
CODE`` for a before / after on the same data)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, watch  # noqa: E402

CHILD = """
import json, sys, time
from pathlib import Path
base, jobs, baseline = Path(sys.argv[1]), (int(sys.argv[2]) or None), sys.argv[3] == "1"
from bench.make_nsd_release import NC_FOLDER
from brainviz.pipeline.analyses import decoding
from brainviz.pipeline.context import Context, PipelineConfig
from brainviz.pipeline.settings import AnalysisSettings
cfg = PipelineConfig(dataset=base / "dataset", store=base / "unused.duckdb", work_dir=base / "work", cache_dir=base / "cache",
                     noise_ceiling=base / "dataset" / NC_FOLDER, quick=True, progress=False, jobs=jobs)
ctx = Context(cfg)
ctx.features
if baseline:
    raise SystemExit(0)
t0 = time.perf_counter()
gen = decoding.run(ctx, AnalysisSettings.for_config(cfg))
while True:
    try:
        next(gen)
    except StopIteration as stop:
        head = stop.value
        break
print(json.dumps({"decoding_s": round(time.perf_counter() - t0, 1), "headline": head}))
"""


def measure(root: Path, base: Path, jobs: int, baseline: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1")
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(base), str(jobs), "1" if baseline else "0"], cwd=root, env=env,
                         stdout=subprocess.PIPE, text=True)
    stats = watch(p)
    out = p.stdout.read().strip()
    return {**stats, **(json.loads(out) if out else {}), "load": os.getloadavg()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="folder with dataset/ and cache/")
    ap.add_argument("--root", type=Path, default=ROOT, help="the code that runs (default: this checkout)")
    ap.add_argument("--jobs", type=int, default=0, help="precompute --jobs (default: its own default)")
    a = ap.parse_args(argv)
    base = measure(a.root.resolve(), a.base.resolve(), a.jobs, baseline=True)
    run = measure(a.root.resolve(), a.base.resolve(), a.jobs, baseline=False)
    run["baseline_anon_mb"] = base["peak_anon_mb"]
    print(json.dumps(run))
    return run["exit"]


if __name__ == "__main__":
    raise SystemExit(main())
