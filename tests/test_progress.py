"""brainviz.progress: the overall display of `precompute all` (tty / plain / quiet), the summary, the estimate.

The end-to-end check (a real `precompute all` run, not on a terminal: no carriage returns, stage lines,
summary table) is in tests/test_pipeline.py, which runs the pipeline once for all its tests.
"""
from __future__ import annotations

import io
import json
import time

import pytest

from brainviz import progress as P


def _run(mode: str, stages=("features", "train", "evaluate"), interval: float = 30.0, history=None):
    buf = io.StringIO()
    pr = P.Progress(list(stages), mode=mode, stream=buf, interval=interval, history=history)
    with pr:
        with pr.stage("features"):
            pr.wrote("10 images x 4 layers")
        with pr.stage("train"):
            for s in P.bar(["subj01", "subj02", "subj03"], desc="ridge"):
                P.step(f"ridge-{s} ({s})")
                time.sleep(0.15)
        with pr.stage("evaluate"):
            with P.substep("rdms"):
                time.sleep(0.3)
    return pr, buf.getvalue()


def test_plain_mode_writes_lines_without_carriage_returns():
    pr, out = _run("plain", interval=0.1)
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert all(ln.startswith("[precompute ") for ln in lines)
    assert any("stage 2/3 train · ridge-subj02 (subj02)" in ln for ln in lines)  # which model and subject
    assert any("stage 3/3 evaluate · rdms" in ln for ln in lines)
    assert any("stage 1/3 features: done in" in ln and "10 images x 4 layers" in ln for ln in lines)
    assert any("left" in ln for ln in lines) and any("elapsed" in ln for ln in lines)


def test_quiet_mode_writes_nothing_and_still_sums_up():
    pr, out = _run("quiet")
    assert out == ""
    table = pr.summary()
    assert table.splitlines()[0].split() == ["stage", "seconds", "what", "was", "written"]
    assert [ln.split()[0] for ln in table.splitlines()[2:]] == ["features", "train", "evaluate", "total"]
    assert "10 images x 4 layers" in table


def test_tty_mode_nests_step_bars_under_the_overall_line():
    pr, out = _run("tty")
    assert "stage 2/3 train · ridge-subj01 (subj01)" in out
    assert "ridge:" in out and "3/3" in out  # the nested step bar
    assert "stage 2/3 train: done in" in out  # a line per finished stage stays above the display
    assert "precompute: 3/3 stages" in out


def test_library_bars_only_beneath_a_terminal_display():
    assert P.library_bars(True) is True and P.current() is None
    for mode, expected in (("tty", True), ("plain", False), ("quiet", False)):
        with P.Progress(["a"], mode=mode, stream=io.StringIO()):
            assert P.library_bars(True) is expected
            assert P.library_bars(False) is False
    assert P.current() is None
    assert list(P.bar(range(3), enabled=False)) == [0, 1, 2]  # no active display: plain (disabled) tqdm


def test_failed_stage_is_recorded_and_history_only_after_a_full_run(tmp_path):
    hist = tmp_path / "h.json"
    pr = P.Progress(["a", "b"], mode="quiet", history=hist)
    with pytest.raises(RuntimeError), pr:
        with pr.stage("a"):
            pass
        with pr.stage("b"):
            raise RuntimeError("boom")
    assert pr.records[-1][0] == "b" and pr.records[-1][2] == "(failed)"
    pr.save_history()
    assert pr.records and len(pr.records) == 2 and hist.exists()  # both stages ran (one failed): written
    pr2 = P.Progress(["a", "b", "c"], mode="quiet", history=hist)
    with pr2:
        with pr2.stage("a"):
            pass
    pr2.save_history()  # incomplete run: the history is not overwritten
    assert set(json.loads(hist.read_text())) == {"a", "b"}


def test_estimate_uses_history_scaled_by_the_stages_done(tmp_path):
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps({"features": 100.0, "train": 10.0, "evaluate": 20.0}))
    pr = P.Progress(["features", "train", "evaluate"], mode="quiet", history=hist)
    with pr:
        assert pr.seconds_left() == pytest.approx(130.0, abs=1.0)
        with pr.stage("features"):
            pass
        with pr.stage("train"):
            time.sleep(0.2)
        # train took ~0.2 s of 10 expected: the rest is scaled by the same factor (features not counted)
        assert pr.seconds_left() == pytest.approx(20.0 * pr.records[1][1] / 10.0, rel=0.05)
    assert P.fmt_seconds(73.4) == "1:13" and P.fmt_seconds(3725) == "1:02:05"
