"""The benchmark suite runs end to end at tiny size (``python -m bench --quick``), so CI exercises it.

No timing assertions: only that every benchmark runs, reports a ratio against
its reference, and that the report is written. (precompute and live opt in
with ``--quick --only ...``; they need a demo brain / store and take minutes.)
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import ROOT


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> tuple[subprocess.CompletedProcess, str]:
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    return res, out.read_text() if out.exists() else ""


def test_quick_suite_runs_and_writes_the_report(quick_report):
    res, md = quick_report
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "(FAILED)" not in md
    for section in ("# BrainViz benchmark results", "## Machine", "## Summary: BrainViz vs reference",
                    "RDMs (1 - Pearson)", "Ridge encoders", "Universal Encoder training throughput",
                    "Feature extraction", "Out-of-core"):
        assert section in md, section
    assert "quick mode" in md and "nproc" in md and "cpu" in md


def test_every_benchmark_reports_a_ratio(quick_report):
    _, md = quick_report
    summary = md.split("## Summary: BrainViz vs reference", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in summary.splitlines() if ln.startswith("| ") and not ln.startswith("| benchmark")]
    names = {ln.split("|")[1].strip() for ln in rows}
    assert {"rdm", "ridge", "ue", "features", "outofcore"} <= names
    for ln in rows:
        ratio = ln.rstrip(" |").split("|")[-1].strip()
        assert ratio not in ("", "-"), ln


def test_streamed_and_in_memory_results_agree_in_the_report(quick_report):
    _, md = quick_report
    line = next(ln for ln in md.splitlines() if ln.startswith("- streamed == in-memory"))
    rel = float(line.split("max relative difference ")[1].split(" ")[0])
    assert rel < 1e-4


def test_runner_rejects_unknown_benchmark():
    res = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_gpu_check_code_paths_on_the_cpu(tmp_path):
    """``python -m bench --gpu`` refuses without CUDA (exit 2, one line saying why); its four parts run on the CPU at
    tiny size (the figures mean nothing there: only that the code paths work before a GPU is lent)."""
    import torch

    from bench import bench_gpu

    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    if not torch.cuda.is_available():
        res = subprocess.run([sys.executable, "-m", "bench", "--gpu", "--out", str(tmp_path / "R.md")], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "no CUDA device" in res.stderr and not (tmp_path / "R.md").exists()
    res = bench_gpu.run(device="cpu")
    table = res.tables[0]
    assert [r["part"] for r in table.rows] == ["features: efficientnet-lite0", "UE training (report settings)",
                                               "live prediction"]
    assert "images/s" in table.rows[0]["figure"] and "steps/s" in table.rows[1]["figure"]
    assert table.rows[2]["figure"].startswith("p50 ") and res.goals[0].met is not None
    assert "no GPU" in res.title
