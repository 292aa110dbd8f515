"""Run independent fits side by side: threads with one torch / BLAS thread each.

A Universal Encoder step is a stream of small matrix products, which a few CPU cores share
poorly. Measured on the 2-core demo machine: one training step of the demo's joint model (32
images x 1,041 voxels each) takes 135 ms with torch's 2 threads and 224 ms with 1, and two fits
with 1 thread each running at the same time take 226-239 ms per step each, about 116 ms per
step of work; two whole UE fits took 0.84x the wall time side by side (``python -m bench --only
ue``, bench/RESULTS.md). scikit-learn's k-means on a few thousand embeddings is even slower
with OpenMP's second thread (:func:`brainviz.clusters.kmeans_threads`). So the independent fits
of a run (the encoders of the train stage, the models scored by the evaluate stage, the transfer
curve's image subsamples, k-means fits, decoding per subject, permutation tests) finish sooner as concurrent jobs with one thread each than one
after the other with every thread: ``precompute all`` on the demo brain took 650-707 s instead
of 836 s (bench/RESULTS.md, precompute section).

Each job's arithmetic runs in one thread, so its result does not depend on what runs beside
it or in which order the jobs finish: results are deterministic given the number of workers
(with 1 worker everything runs in the calling thread, with the thread settings unchanged).

The progress display shows the jobs of :func:`run_jobs` (:func:`brainviz.progress.jobs_begin`): how many are
done, the running ones by name with what they :func:`report`, and the time left from their progress.

Stopping (Ctrl-C, SIGTERM, a failed job): no further job starts, the jobs still running are
asked to stop (:func:`check_cancelled`, called by the Universal Encoder at every step and by
:func:`report`, raises :class:`Cancelled` in them) and :func:`run_jobs` waits up to
:data:`CANCEL_WAIT_S` seconds for them before it raises. A process must not end while a job
thread is still inside torch or BLAS (the C++ runtime then aborts: "terminate called without
an active exception", exit code 134): :func:`stragglers` names the job threads still running,
and the CLI ends with ``os._exit`` when there are any.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import Callable, Sequence, TypeVar

from . import progress as _progress
from .errors import BrainVizDataError

__all__ = ["CANCEL_WAIT_S", "Cancelled", "check_cancelled", "default_workers", "report", "run_jobs",
           "stragglers", "worker_threads"]

T = TypeVar("T")
_local = threading.local()
#: Seconds :func:`run_jobs` waits for running jobs to stop after Ctrl-C, SIGTERM or a failed job.
CANCEL_WAIT_S = 10.0
_threads: set[threading.Thread] = set()
_threads_lock = threading.Lock()


class Cancelled(Exception):
    """Raised inside a job thread by :func:`check_cancelled` once its :func:`run_jobs` is stopping."""


def check_cancelled() -> None:
    """From inside a job: raise :class:`Cancelled` when the run is stopping (cheap; call it often,
    e.g. every training step). Does nothing outside a job thread of :func:`run_jobs`."""
    stop = getattr(_local, "stop", None)
    if stop is not None and stop.is_set():
        raise Cancelled()


def stragglers() -> list[str]:
    """Names of job threads still running (after a stop they are finishing their current step)."""
    with _threads_lock:
        return sorted(t.name for t in _threads if t.is_alive())


def report(text: str, done: float | None = None) -> None:
    """From inside a job: what it is doing now (e.g. ``'epoch 3/10'``), shown after its name in the
    progress display, and ``done``, the fraction of the job's work finished (0..1) when known: the
    time-left estimate follows it (:class:`brainviz.progress.Progress`). Does nothing outside a job of
    :func:`run_jobs`. Raises :class:`Cancelled` in a job whose run is stopping."""
    check_cancelled()
    hook = getattr(_local, "report", None)
    if hook is not None:
        hook(text, done)


def default_workers(device: str | None = None) -> int:
    """Jobs run at once by default: 2 on a CPU with at least 2 cores, 1 on a GPU (``device``
    'cuda...' or, when None, whenever CUDA is available: one GPU runs one fit at a time best)."""
    import torch

    if (device is None and torch.cuda.is_available()) or (device or "").startswith("cuda"):
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


@contextlib.contextmanager
def worker_threads(workers: int):
    """``with``: torch and BLAS threads per job, all cores shared among ``workers`` jobs
    (process-wide; restored afterwards); yields the threads per job. Nothing changes with 1
    worker. OpenMP's limit belongs to each thread: a job thread sets its own (:func:`run_jobs`)."""
    import torch

    if workers <= 1:
        yield torch.get_num_threads()
        return
    from threadpoolctl import threadpool_limits

    from .features.base import torch_threads

    per_job = max(1, torch.get_num_threads() // workers)
    with torch_threads(per_job), threadpool_limits(limits=per_job, user_api="blas"):
        yield per_job


def run_jobs(jobs: Sequence[tuple[str, Callable[[], T]]], workers: int = 1, *,
             describe: bool = True) -> dict[str, T]:
    """Run ``jobs`` ([(name, function)]) with ``workers`` at a time; returns {name: result}.

    Jobs start in the given order (put the longest first). With ``workers`` > 1 the torch and
    BLAS / OpenMP threads are divided among them for the duration (:func:`worker_threads`). With
    ``describe`` the progress display shows the jobs (with one worker too): how many are done, the
    running ones and what they :func:`report`. The first exception of a job is
    raised once it happens; no further job starts.
    """
    names = [n for n, _ in jobs]
    if len(set(names)) != len(names):
        raise BrainVizDataError("jobs", f"job names must be unique, got {names}")
    if workers < 1:
        raise BrainVizDataError("workers", f"must be >= 1, got {workers}")
    results: dict[str, T] = {}
    token = _progress.jobs_begin(names, min(workers, len(jobs))) if describe else None

    def call(name: str, fn: Callable[[], T]) -> T:
        """Run one job in this thread, shown in the progress display while it runs."""
        _progress.job_started(token, name)
        _local.report = lambda text, done=None: _progress.job_report(token, name, text, done)
        try:
            out = fn()
        finally:
            _local.report = None
        _progress.job_finished(token, name)
        return out

    if workers == 1 or len(jobs) <= 1:
        try:
            for name, fn in jobs:
                results[name] = call(name, fn)
        finally:
            _progress.jobs_end(token)
        return results

    todo: queue.SimpleQueue = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    done: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def worker(threads: int) -> None:
        from threadpoolctl import threadpool_limits

        _local.stop = stop
        try:
            with threadpool_limits(limits=threads, user_api="openmp"):  # scikit-learn's OpenMP, this thread
                work()
        finally:
            _local.stop = None
            with _threads_lock:
                _threads.discard(threading.current_thread())

    def work() -> None:
        while not stop.is_set():
            try:
                name, fn = todo.get_nowait()
            except queue.Empty:
                return
            try:
                out = call(name, fn)
            except BaseException as e:  # noqa: BLE001  (handed to the calling thread)
                done.put((name, None, e))
                return
            done.put((name, out, None))

    threads: list[threading.Thread] = []
    with worker_threads(workers) as per_job:
        for i in range(min(workers, len(jobs))):
            t = threading.Thread(target=worker, args=(per_job,), name=f"brainviz-job-{i}", daemon=True)
            with _threads_lock:
                _threads.add(t)
            threads.append(t)
            t.start()
        try:
            while len(results) < len(jobs):
                try:
                    name, out, err = done.get(timeout=0.5)
                except queue.Empty:
                    continue
                if err is not None:
                    raise err
                results[name] = out
        finally:
            stop.set()  # no job starts any more; running ones stop at their next check_cancelled()
            _join(threads, CANCEL_WAIT_S)
            _progress.jobs_end(token)
    return {n: results[n] for n in names}


def _join(threads: Sequence[threading.Thread], timeout: float) -> None:
    """Wait for ``threads`` to end, at most ``timeout`` seconds in all; a second Ctrl-C stops waiting."""
    import time

    deadline = time.monotonic() + timeout
    try:
        for t in threads:
            while t.is_alive() and time.monotonic() < deadline:
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        pass
