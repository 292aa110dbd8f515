"""torchrun training of the pipeline's Universal Encoders on 1 vs N processes: time, per-rank peak RSS and
bytes of training data each rank read (issue 29, item 5).

Runs, for each process count, ``torchrun --standalone --nproc_per_node=N -m precompute.distributed`` on an
NSD-like dataset in the released Algonauts 2023 layout (bench/make_nsd_release.py: real vertex counts,
``--image-scale`` of the real image counts, hard-linked image contents), twice:

* cold: a new feature cache (the ranks extract their shares of the images, rank 0 merges) and a new work
  folder (``ue_multi`` and ``ue_pretrain-subj01`` trained);
* warm: the same cache, ``--no-reuse`` (training again: the training's own memory, without the backbone).

Usage (2 cores: 1 process with 2 threads vs 2 processes with 1 thread each)::

    nice -n 10 python bench/bench_distributed.py --out bench/out/distributed --nprocs 1 2

Prints a Markdown table and writes ``OUT/results.json``. The models are the pipeline's (``--quick`` settings
by default: 2 epochs); ``python -m precompute all`` on ``OUT/data`` with ``--work-dir OUT/work-N-warm
--cache-dir OUT/cache-N --quick`` reuses them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def torchrun(nproc: int, args: list[str], threads: int) -> tuple[dict, float, str]:
    """Run ``precompute.distributed`` under torchrun; (rank 0's summary, wall seconds, the command)."""
    from brainviz.ddp import local_launch

    cmd, env = local_launch(nproc, ["-m", "precompute.distributed", *args], threads=threads, torchrun=True)
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"torchrun failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    shown = " ".join(["torchrun", "--standalone", f"--nproc_per_node={nproc}", "-m", "precompute.distributed", *args])
    return summary, wall, shown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "distributed")
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--image-scale", type=float, default=0.05)
    ap.add_argument("--vertex-scale", type=float, default=1.0)
    ap.add_argument("--ue", default=None, help="--ue of precompute.distributed (default: the --quick settings)")
    a = ap.parse_args(argv)
    data = a.out / "data"
    if not data.exists():
        from bench.make_nsd_release import make_release

        make_release(data, image_scale=a.image_scale, vertex_scale=a.vertex_scale, n_subjects=a.subjects)
    cores = os.cpu_count() or 1
    rows, results = [], []
    for n in a.nprocs:
        threads = max(1, cores // n)
        for mode in ("cold", "warm"):
            args = ["--dataset", str(data), "--work-dir", str(a.out / f"work-{n}-{mode}"),
                    "--cache-dir", str(a.out / f"cache-{n}"), "--quick", "--quiet",
                    "--summary", str(a.out / f"summary-{n}-{mode}.json")]
            if a.ue:
                args += ["--ue", a.ue]
            if mode == "warm":
                args.append("--no-reuse")
            summary, wall, cmd = torchrun(n, args, threads)
            results.append({"nproc": n, "threads": threads, "mode": mode, "wall_s": wall, "command": cmd,
                            "summary": summary})
            for r in summary["ranks"]:
                read = r.get("input_bytes_read", {}).get("ue_multi", {})
                rows.append([n, threads, mode, f"{wall:.1f}", f"{summary['stages'].get('features', 0):.1f}",
                             f"{summary['models'].get('ue_multi', {}).get('seconds', 0):.1f}", r["rank"],
                             f"{r.get('peak_rss_mb', float('nan')):.0f}", f"{r.get('peak_anon_mb', float('nan')):.0f}",
                             f"{r.get('peak_file_mb', float('nan')):.0f}",
                             f"{read.get('responses', 0) / 2**20:.0f}", f"{read.get('features', 0) / 2**20:.0f}"])
    (a.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    head = ["processes", "threads each", "run", "wall s", "features s", "ue_multi s", "rank", "peak RSS MB",
            "peak anon MB", "peak file MB", "ue_multi responses read MB", "ue_multi features read MB"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
