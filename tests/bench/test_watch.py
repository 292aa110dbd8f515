"""bench._common.watch: the one sampler of a child process's peak memory (bench_nsd_scale, decoding_alone)."""
from __future__ import annotations

import subprocess
import sys

from bench._common import watch


def test_watch_reports_exit_and_the_anonymous_peak():
    code = "import numpy as np, time; a = np.ones(80 * 2**20 // 8); time.sleep(0.8); raise SystemExit(3)"
    got = watch(subprocess.Popen([sys.executable, "-c", code]), every=0.05)
    assert got["exit"] == 3
    assert got["peak_anon_mb"] >= 70 and got["peak_rss_mb"] >= got["peak_anon_mb"] - 1
    assert got["wall_s"] >= 0.8


def test_watch_kills_a_child_past_its_timeout():
    got = watch(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]), timeout=0.5, every=0.05)
    assert got["exit"] != 0 and got["wall_s"] < 30
