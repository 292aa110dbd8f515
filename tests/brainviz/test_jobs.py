"""brainviz.jobs: independent fits side by side in threads."""
import threading
import time

import numpy as np
import pytest
import torch

from brainviz.errors import BrainVizDataError
from brainviz.jobs import default_workers, run_jobs, worker_threads


def _fit(seed: int) -> np.ndarray:
    """A small deterministic torch fit (a few Adam steps of a linear model)."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 8, generator=g), torch.randn(64, 2, generator=g)
    lin = torch.nn.Linear(8, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 8, generator=g))
        lin.bias.zero_()
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        ((lin(x) - y) ** 2).mean().backward()
        opt.step()
    return lin.weight.detach().numpy().copy()


def test_results_by_name_in_job_order_and_equal_for_any_number_of_workers():
    jobs = [(f"fit {s}", lambda s=s: _fit(s)) for s in range(5)]
    one = run_jobs(jobs, 1)
    two = run_jobs(jobs, 2)
    assert list(one) == list(two) == [f"fit {s}" for s in range(5)]
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


def test_jobs_run_side_by_side_with_one_thread_each_and_settings_come_back():
    before = torch.get_num_threads()
    seen, started = [], threading.Barrier(2, timeout=10)

    def job():
        started.wait()  # both jobs are running at the same time
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return True

    out = run_jobs([("a", job), ("b", job)], 2)
    assert out == {"a": True, "b": True}
    assert len({name for name, _ in seen}) == 2
    assert all(n == max(1, before // 2) for _, n in seen)
    assert torch.get_num_threads() == before
    with worker_threads(1) as n:  # one worker: nothing changes
        assert n == before == torch.get_num_threads()


def test_a_failing_job_raises_and_no_further_job_starts():
    ran = []

    def bad():
        raise BrainVizDataError("job", "broken on purpose")

    def slow(i):
        time.sleep(0.2)
        ran.append(i)

    jobs = [("bad", bad)] + [(f"slow {i}", lambda i=i: slow(i)) for i in range(6)]
    with pytest.raises(BrainVizDataError, match="broken on purpose"):
        run_jobs(jobs, 2)
    time.sleep(0.5)  # the job that was running beside the failure may finish; nothing after it starts
    assert len(ran) <= 1


def test_bad_arguments():
    with pytest.raises(BrainVizDataError, match="unique"):
        run_jobs([("a", lambda: 1), ("a", lambda: 2)], 2)
    with pytest.raises(BrainVizDataError, match="workers"):
        run_jobs([("a", lambda: 1)], 0)
    assert default_workers("cuda:0") == 1
    assert default_workers("cpu") in (1, 2)


def test_jobs_name_what_they_are_doing_in_the_progress_display():
    import io

    from brainviz import jobs as J
    from brainviz import progress as P

    both = threading.Barrier(2, timeout=10)
    seen = {}

    def job(name, pr):
        both.wait()
        J.report(f"epoch 2/4 of {name}", done=0.25)
        both.wait()
        if name == "a":
            seen["running"] = pr._where()
            seen["fraction"] = pr.stage_fraction()
        both.wait()
        return name

    buf = io.StringIO()
    with P.Progress(["train"], mode="plain", stream=buf) as pr:
        with pr.stage("train"):
            run_jobs([("fit a (subj01)", lambda: job("a", pr)), ("fit b (subj02)", lambda: job("b", pr))], 2)
            assert pr._where() == "stage 1/1 train"  # the job set is over
    # both running, by short name, with what they reported; how many are done; the work done
    assert seen["running"].startswith("stage 1/1 train · 0/2 done · ")
    assert "fit a epoch 2/4 of a" in seen["running"] and "fit b epoch 2/4 of b" in seen["running"]
    assert seen["fraction"] == pytest.approx(0.25)
    lines = buf.getvalue().splitlines()
    assert any("start fit a (subj01)" in ln for ln in lines) and any("start fit b (subj02)" in ln for ln in lines)
    assert not any("epoch" in ln for ln in lines)  # no line per report: a heartbeat line shows it
    assert set(pr.job_seconds) == {"train|fit a (subj01)", "train|fit b (subj02)"}
    J.report("outside a job: nothing happens")
    # one worker, or no display: the same calls, nothing shown
    assert run_jobs([("fit c", lambda: J.report("epoch 2/3", done=0.5) or "c")], 1) == {"fit c": "c"}
