"""brainviz.progress: the overall display of `precompute all` (tty / plain / quiet), the summary, the estimate.

The end-to-end check (a real `precompute all` run, not on a terminal: no carriage returns, stage lines,
summary table) is in tests/brainviz/pipeline/test_pipeline.py, which runs the pipeline once for all its tests.
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
    assert any("stage 1/3 features: done in" in ln for ln in lines)  # what it wrote: in the summary table
    assert any("left" in ln for ln in lines)  # each line starts with the time elapsed: [precompute 0:01]
    assert max(len(ln) for ln in lines) <= P.MAX_LINE


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


def test_estimate_follows_the_work_done_inside_a_stage(tmp_path):
    """Typical durations say train takes 10 s (two jobs side by side); the jobs report their epochs. The
    estimate follows the jobs' progress: half of the work done in ~0.4 s means ~0.4 s more for the stage and
    the later stage at the same pace -- not the typical 10 s, and not 0 s once the stage runs past 10 s."""
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps({"train": 10.0, "analyze": 20.0}))
    pr = P.Progress(["train", "analyze"], mode="quiet", history=hist)
    with pr:
        with pr.stage("train"):
            token = P.jobs_begin(["big (subj01, subj02)", "small (subj01)"], 2)
            assert pr.stage_fraction() == 0.0
            assert pr.seconds_left() == pytest.approx(30.0, abs=0.5)  # no job measured yet: the expectation
            for name in ("big (subj01, subj02)", "small (subj01)"):
                P.job_started(token, name)
                P.job_report(token, name, "epoch 1/10", 0.0)
            time.sleep(0.4)
            for name in ("big (subj01, subj02)", "small (subj01)"):
                P.job_report(token, name, "epoch 6/10", 0.5)
            left, over = pr.estimate()
            assert not over
            # each job: 0.4 s for half its work -> 0.4 s more; analyze: 20 s x pace (0.4 s per 5 expected s)
            assert left == pytest.approx(0.4 + 20.0 * 0.4 / 5.0, rel=0.25)
            assert pr.stage_fraction() == pytest.approx(0.5)
            assert "0/2 done" in pr._where() and "big epoch 6/10" in pr._where()
            P.job_report(token, "big (subj01, subj02)", "epoch 1/10", 0.0)  # a later phase: never goes back
            assert pr.stage_fraction() == pytest.approx(0.5)
            for name in ("big (subj01, subj02)", "small (subj01)"):
                P.job_finished(token, name)
            P.jobs_end(token)
        with pr.stage("analyze"):
            pass
    pr.save_history()
    saved = json.loads(hist.read_text())
    assert set(saved["jobs"]) == {"train|big (subj01, subj02)", "train|small (subj01)"}
    # the next run weighs the jobs by these seconds
    pr2 = P.Progress(["train", "analyze"], mode="quiet", history=hist)
    with pr2, pr2.stage("train"):
        P.jobs_begin(["big (subj01, subj02)", "small (subj01)", "new one"], 1)
        weights = [j.weight for j in pr2._jobs.values()]
        assert weights[:2] == pytest.approx([saved["jobs"]["train|big (subj01, subj02)"],
                                             saved["jobs"]["train|small (subj01)"]])
        assert weights[2] == pytest.approx(sum(weights[:2]) / 2)  # unknown: the mean of the known ones


def test_a_stage_past_its_estimate_says_so_instead_of_counting_as_done(tmp_path):
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps({"train": 0.1, "analyze": 100.0}))
    buf = io.StringIO()
    pr = P.Progress(["train", "analyze"], mode="plain", stream=buf, interval=0.2, history=hist)
    with pr, pr.stage("train"):
        time.sleep(0.5)
        left, over = pr.estimate()
        assert over and left == pytest.approx(100.0)
    assert "this stage is over its estimate" in buf.getvalue()


def test_long_job_names_are_shortened_and_lines_stay_short():
    name = "ue_pretrain-subj08 (subj01, subj02, subj03, subj04, subj05, subj06, subj07), then ue_transfer-subj08"
    assert P.short_name(name) == "ue_pretrain-subj08" and P.job_kind(name) == "ue_pretrain"
    assert P.compact_name(name) == "ue_pretrain-subj08 (subj01-subj07), then ue_transfer-subj08"
    assert P.compact_name("ue_multi (subj01, subj02)") == "ue_multi (subj01, subj02)"
    buf = io.StringIO()
    pr = P.Progress(["features", "train", "evaluate", "transfer curve", "analyze"], mode="plain", stream=buf,
                    interval=0.1)
    names = ["ue_multi (subj01, subj02, subj03, subj04, subj05, subj06, subj07, subj08)", name] + \
        [f"ue_single-subj0{i} (subj0{i})" for i in range(1, 9)]
    with pr, pr.stage("train"):
        token = P.jobs_begin(names, 2)
        for n in names[:2]:
            P.job_started(token, n)
            P.job_report(token, n, "fit epoch 3/10", 0.2)
        time.sleep(0.35)
    lines = buf.getvalue().splitlines()
    assert max(len(ln) for ln in lines) <= P.MAX_LINE, "\n".join(lines)
    assert any("start ue_multi (subj01-subj08)" in ln for ln in lines)
    heartbeat = [ln for ln in lines if "ue_multi fit epoch 3/10" in ln]
    assert heartbeat and all("left" in ln and "0/10 done" in ln for ln in heartbeat)
