"""``precompute`` on the NSD-sized benchmark dataset, stage by stage: wall time and peak RSS (issue 29).

Generates ``bench/make_nsd_release.py --scale S`` (8 subjects, real counts x S, released layout),
then runs ``python -m precompute features``, ``train``, ``evaluate``, ``analyze`` one after the
other, each in its own process (``--quick`` model settings unless ``--full-settings``), and
reads each process's peak resident set size from ``os.wait4`` (the ``Maximum resident set
size`` of ``/usr/bin/time -v``; model fits run as threads of that process, so it covers them).
Memory-mapped pages that were read count in RSS, as the kernel counts them; ``/proc/PID/status``
sampled every 0.2 s splits it into anonymous memory (RssAnon: arrays) and file pages (RssFile:
memmapped feature cache and responses, given back under memory pressure); each peak separately.

Usage::

    nice -n 15 python bench/bench_nsd_scale.py --scale 0.1 --out bench/out/nsd_scale    # ~10 min
    python bench/bench_nsd_scale.py --scale 0.01 --keep                                   # CI size

Prints one Markdown row per stage and writes ``<out>/result_s<S>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, ROOT, watch  # noqa: E402
from bench.make_nsd_release import NC_FOLDER, make_release  # noqa: E402

STAGES = ("features", "train", "evaluate", "analyze")


def run_stage(args: list[str], log: Path, timeout: float, root: Path = ROOT) -> dict:
    """``python -m precompute ARGS`` in its own process: exit code, wall seconds, peak RSS (MB).
    ``root``: the code that runs (another checkout, e.g. ``git archive REV | tar -x -C DIR``, for a before/after)."""
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1")
    with open(log, "w") as fh:
        p = subprocess.Popen([sys.executable, "-m", "precompute", *args], cwd=root, env=env, stdout=fh,
                             stderr=subprocess.STDOUT)
        return watch(p, timeout=timeout)


def du_mb(path: Path) -> float:
    seen, total = set(), 0
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return round(total / 2**20, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, required=True, help="image and vertex counts x SCALE (1 = NSD)")
    ap.add_argument("--out", type=Path, default=OUT / "nsd_scale")
    ap.add_argument("--full-settings", action="store_true", help="default model settings instead of --quick")
    ap.add_argument("--jobs", type=int, default=None, help="precompute --jobs (default: its own default)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per stage")
    ap.add_argument("--keep", action="store_true", help="keep the dataset, cache and store afterwards")
    a = ap.parse_args(argv)
    base = a.out / f"s{a.scale:g}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    data = base / "dataset"
    t0 = time.perf_counter()
    make_release(data, scale=a.scale)
    rows = [{"stage": "generate dataset", "exit": 0, "wall_s": round(time.perf_counter() - t0, 1),
             "peak_rss_mb": None, "disk_mb": du_mb(data)}]
    common = ["--dataset", str(data), "--store", str(base / "store.duckdb"), "--work-dir", str(base / "work"),
              "--cache-dir", str(base / "cache"), "--noise-ceiling", str(data / NC_FOLDER), "--quiet"]
    common += [] if a.full_settings else ["--quick"]
    common += ["--jobs", str(a.jobs)] if a.jobs else []
    for stage in STAGES:
        r = run_stage([stage, *common], base / f"{stage}.log", a.timeout)
        r["stage"] = stage
        r["disk_mb"] = du_mb(base / ("cache" if stage == "features" else "work"))
        rows.append(r)
        print(json.dumps(r), flush=True)
        if r["exit"] != 0:
            print((base / f"{stage}.log").read_text()[-3000:])
            break
    timings = {}
    if (base / "store.duckdb").exists():
        from brainviz.store.reader import Store

        st = Store(base / "store.duckdb")
        try:
            timings = json.loads(st.meta().get("timings", "{}"))
        finally:
            st.close()
        rows.append({"stage": "store (file)", "disk_mb": round((base / "store.duckdb").stat().st_size / 2**20, 1)})
    counts = json.loads((data / "BENCHMARK_DATA.txt").read_text().split("\n", 2)[2])
    result = {"scale": a.scale, "quick": not a.full_settings, "rows": rows, "timings": timings,
              "dataset": counts, "load": os.getloadavg()}
    (a.out / f"result_s{a.scale:g}.json").write_text(json.dumps(result, indent=1))
    print("| scale | stage | wall s | peak RSS MB | peak anon MB | peak file MB | disk MB |")
    for r in rows:
        print(f"| {a.scale:g} | {r['stage']} | {r.get('wall_s', '')} | {r.get('peak_rss_mb') or ''} | "
              f"{r.get('peak_anon_mb', '')} | {r.get('peak_file_mb', '')} | {r.get('disk_mb', '')} |")
    print("stage timings inside the run (s):", json.dumps(timings))
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if all(r.get("exit", 0) == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
