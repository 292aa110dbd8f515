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


def test_jobs_name_what_they_are_doing_in_the_progress_display(monkeypatch):
    from brainviz import jobs as J

    shown = []
    monkeypatch.setattr(J._progress, "step", lambda text, announce=True: shown.append((text, announce)))
    both = threading.Barrier(2, timeout=10)

    def job(name):
        both.wait()
        J.report(f"epoch 1/3 of {name}")
        both.wait()
        return name

    run_jobs([("fit a", lambda: job("a")), ("fit b", lambda: job("b"))], 2)
    texts = [t for t, _ in shown]
    assert any("fit a" in t and "fit b" in t for t in texts)  # both running, by name
    assert any("fit a epoch 1/3 of a" in t for t, announce in shown if not announce)  # no line of its own
    assert all(t.endswith("done)") for t in texts)  # how many jobs have finished
    J.report("outside a job: nothing happens")
    # one worker: the same display, from the calling thread
    shown.clear()
    run_jobs([("fit c", lambda: J.report("epoch 2/3") or "c")], 1)
    assert [t for t, _ in shown] == ["fit c (0/1 done)", "fit c epoch 2/3 (0/1 done)"]
