"""``python -m bench`` (``make bench``): run the benchmark suite and write ``bench/RESULTS.md``.

Options::

    python -m bench                       # every benchmark at full size -> bench/RESULTS.md
    python -m bench --quick               # tiny sizes (CI smoke) -> bench/out/RESULTS-quick.md
    python -m bench --only rdm ridge      # a subset (names below)
    python -m bench --skip precompute live
    python -m bench --out path/to/RESULTS.md
    python -m bench --only rdm --update   # re-run some, keep the others' last results (bench/out/results.json)
    python -m bench --only ridge --ridge-nsd  # ridge also at NSD size (9,000 x 1,000 x 40,000; ~5-15 min)
    python -m bench --gpu                 # the GPU check (bench/bench_gpu.py, < 8 min), added to the last results

Benchmarks (each prints its figures and a ratio against a reference measured in the same run):
rdm, ridge, ue, features, outofcore, precompute, live (bench/bench_live.py, run as a script when present).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

from ._common import OUT, ROOT, BenchResult, Goal, Table, machine_info, markdown_table, now_iso, print_result

NAMES = ("rdm", "ridge", "ue", "features", "outofcore", "precompute", "live")
#: run only when asked for (``--gpu``): needs a CUDA device
GPU = "gpu"
#: not in a plain ``--quick`` run (each needs a store or a demo brain: minutes); ``--quick --only NAME`` runs them
QUICK_OPT_IN = ("precompute", "live")
MODULES = {"rdm": "bench.bench_rdm", "ridge": "bench.bench_ridge", "ue": "bench.bench_ue",
           "features": "bench.bench_features", "outofcore": "bench.bench_outofcore",
           "precompute": "bench.bench_precompute", GPU: "bench.bench_gpu"}
LIVE_SCRIPT = ROOT / "bench" / "bench_live.py"


def run_live(quick: bool, store: Path | None) -> BenchResult:
    """bench/bench_live.py (owned by the app): run as a script, its output kept verbatim; p50 goal parsed."""
    res = BenchResult("live", "Live prediction latency (bench/bench_live.py)")
    if not LIVE_SCRIPT.exists():
        res.notes.append("bench/bench_live.py not present: skipped")
        return res
    args = [sys.executable, str(LIVE_SCRIPT), "--n", "5" if quick else "60", "--runs", "1",
            "--browser", "0" if quick else "10"]
    if quick:
        args.append("--skip-pages")
    if store is not None and store.exists():
        args += ["--store", str(store)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                                      env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
        out = p.stdout + ("" if p.returncode == 0 else f"\n[exit {p.returncode}]\n" + p.stderr[-2000:])
    except subprocess.TimeoutExpired:
        out = "timed out after 1800 s"
    res.seconds = time.perf_counter() - t0
    res.raw_output = out.strip()
    m = re.search(r"brain map ready\s*:\s*p50\s+([\d.]+)\s*ms", out)
    ref = re.search(r"bare backbone forward\s*:\s*p50\s+([\d.]+)\s*ms", out)
    if m:
        p50 = float(m.group(1))
        ratio = p50 / float(ref.group(1)) if ref else None
        res.add_summary("live prediction p50 (upload -> brain map)", p50, "bare backbone forward p50", ratio, " ms")
        res.goals.append(Goal("live prediction p50 <= 100 ms on this CPU (upload bytes -> figure serialized)",
                              p50 <= 100, f"(p50 {p50:.1f} ms)"))
    else:
        res.goals.append(Goal("live prediction p50 <= 100 ms on this CPU (upload bytes -> figure serialized)", None,
                              "(no p50 in the output)"))
    return res


def run_one(name: str, quick: bool, store: Path | None, device: str | None = None) -> BenchResult:
    if name == "live":
        return run_live(quick, store)
    mod = importlib.import_module(MODULES[name])
    t0 = time.perf_counter()
    try:
        res = mod.run(quick=quick, device=device) if name == GPU else mod.run(quick=quick)
    except Exception:  # a failing benchmark is reported, the others still run
        res = BenchResult(name, f"{name} (FAILED)")
        res.notes.append("```\n" + traceback.format_exc()[-3000:] + "\n```")
    res.seconds = res.seconds or (time.perf_counter() - t0)
    return res


def _save(results: list[BenchResult], path: Path, info: dict) -> None:
    path.write_text(json.dumps({"machine": info, "results": [dataclasses.asdict(r) for r in results]},
                               indent=1, default=str))


def _load(path: Path) -> dict[str, BenchResult]:
    if not path.exists():
        return {}
    out = {}
    for d in json.loads(path.read_text())["results"]:
        d["tables"] = [Table(**t) for t in d["tables"]]
        d["goals"] = [Goal(**g) for g in d["goals"]]
        out[d["name"]] = BenchResult(**d)
    return out


def write_markdown(path: Path, results: list[BenchResult], info: dict, command: str, quick: bool,
                   total_s: float) -> None:
    lines = ["# BrainViz benchmark results", "",
             f"Generated by `{command}` on {now_iso()} ({total_s / 60:.1f} min for the benchmarks run by it; each "
             "section gives its own duration)"
             + (" (**quick mode: tiny sizes, figures not meaningful**)" if quick else "") + ".",
             "Every benchmark measures its reference in the same run; the machine is shared with other jobs, "
             "so absolute timings are noisy and the ratios are the figures to compare.", "",
             "## Machine", ""]
    lines.append(markdown_table(Table("", [{"": k, "value": v} for k, v in info.items()], ["", "value"])))
    lines += ["", "## Summary: BrainViz vs reference", "",
              "ratio: reference time / BrainViz time (speed-up), or BrainViz / reference for throughput, memory "
              "and the fractions named in the row.", ""]
    summary = [r for res in results for r in res.summary]
    if summary:
        lines.append(markdown_table(Table("", summary, ["benchmark", "figure", "BrainViz", "reference", "ratio"])))
    goals = [(res.name, g) for res in results for g in res.goals]
    if goals:
        lines += ["", "## Goals", "", "| benchmark | goal | status | detail |", "|---|---|---|---|"]
        for name, g in goals:
            status = "met" if g.met else ("not measured" if g.met is None else "**not met**")
            lines.append(f"| {name} | {g.goal} | {status} | {g.detail.strip('()')} |")
    for res in results:
        lines += ["", f"## {res.title}", "", f"_{res.name}: {res.seconds:.0f} s_"]
        for t in res.tables:
            lines += ["", t.caption, "", markdown_table(t)]
        if res.raw_output:
            lines += ["", "```", res.raw_output, "```"]
        if res.notes:
            lines.append("")
            lines += [f"- {n}" for n in res.notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke test)")
    ap.add_argument("--only", nargs="+", choices=(*NAMES, GPU), default=None, help="run only these benchmarks")
    ap.add_argument("--skip", nargs="+", choices=NAMES, default=(), help="skip these benchmarks")
    ap.add_argument("--update", action="store_true",
                    help="keep the last results of the benchmarks not run now (from bench/out/results*.json)")
    ap.add_argument("--out", type=Path, default=None,
                    help="markdown report (default bench/RESULTS.md; quick: bench/out/RESULTS-quick.md)")
    ap.add_argument("--ridge-nsd", action="store_true",
                    help="ridge: also fit at NSD size, one subject (9,000 x 1,000 x 40,000, responses memory-mapped)")
    ap.add_argument("--gpu", action="store_true",
                    help="the GPU check alone (features images/s, UE steps/s and utilisation, live latency, peak GPU "
                         "memory; < 8 min), added to the last results (implies --update)")
    ap.add_argument("--device", default=None, help="--gpu on this device (default: the current CUDA device)")
    args = ap.parse_args(argv)
    if args.gpu:
        import torch

        if args.device is None and not torch.cuda.is_available():
            print("error: --gpu: no CUDA device here (torch.cuda.is_available() is False); run it on a machine "
                  "with a GPU, or name --device cpu to check the code paths", file=sys.stderr)
            return 2
        args.only, args.update = [GPU], True
    if args.ridge_nsd:
        os.environ["BRAINVIZ_BENCH_RIDGE_NSD"] = "1"
    names = [n for n in (args.only or NAMES) if n not in args.skip]
    quick_skipped = []
    if args.quick and args.only is None:  # the smoke run stays under a minute: the slow end-to-end ones opt in
        quick_skipped = [n for n in QUICK_OPT_IN if n in names]
        names = [n for n in names if n not in QUICK_OPT_IN]
    if args.quick:
        os.environ["BRAINVIZ_BENCH_INPROCESS"] = "1"
        # tiny tensors: one thread (OpenMP spin-waiting on a busy shared machine costs 10-100x)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = args.out or (OUT / "RESULTS-quick.md" if args.quick else ROOT / "bench" / "RESULTS.md")
    OUT.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    command = "python -m bench" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    t0 = time.perf_counter()
    store_json = OUT / ("results-quick.json" if args.quick else "results.json")
    previous = _load(store_json) if args.update else {}
    results = []

    def ordered() -> list[BenchResult]:
        done = {r.name: r for r in results}
        return [done.get(n) or previous[n] for n in (*NAMES, GPU) if n in done or n in previous]

    for name in names:
        print(f"\n=== {name} ===", flush=True)
        store = OUT / "precompute" / "store.duckdb" if "precompute" in names and not args.quick else None
        res = run_one(name, args.quick, store, args.device)
        print_result(res)
        if res.raw_output:
            print(res.raw_output)
        results.append(res)
        write_markdown(out, ordered(), info, command, args.quick, time.perf_counter() - t0)  # partial results kept
        _save(ordered(), store_json, info)
    if quick_skipped:
        print(f"(quick mode: {', '.join(quick_skipped)} not run; use --quick --only {' '.join(quick_skipped)})")
    print(f"\nwritten {out} ({time.perf_counter() - t0:.0f} s)")
    failed = [r.name for r in results if r.title.endswith("(FAILED)")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
