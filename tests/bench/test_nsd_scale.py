"""CI's small version of the NSD-sized benchmark (``python bench/bench_nsd_scale.py --scale S``): all 8 NSD
subjects in the released layout at 0.5 % of their real counts, every precompute stage in its own process with
``--quick`` settings, each stage's wall time and peak memory recorded, the store readable with its results."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import ROOT

pytestmark = pytest.mark.slow
SCALE = 0.005


def test_precompute_on_the_nsd_sized_release_at_ci_size(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "bench/bench_nsd_scale.py", "--scale", str(SCALE), "--out", str(tmp_path),
                          "--keep", "--timeout", "900"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads((tmp_path / f"result_s{SCALE:g}.json").read_text())
    stages = {r["stage"]: r for r in result["rows"]}
    for stage in ("features", "train", "evaluate", "analyze"):
        assert stages[stage]["exit"] == 0 and stages[stage]["peak_rss_mb"] > 0, stages[stage]
    assert stages["store (file)"]["disk_mb"] > 0 and result["timings"]

    from brainviz.store.reader import Store

    with Store(tmp_path / f"s{SCALE:g}" / "store.duckdb") as st:
        summary = st.summary()
        assert summary["subjects"] == [f"subj{i:02d}" for i in range(1, 9)]
        assert {"ue_multi", "ridge-subj01", "ridge-subj08"} <= set(summary["models"])
        assert summary["rows"]["vertex_metrics"] > 0 and summary["rows"]["clusters"] > 0
