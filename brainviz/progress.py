"""Progress of a long pipeline run: one overall display, nested step bars, a summary table.

``python -m precompute all`` runs a few stages (features, train, evaluate, ...), each made of
steps (a model of some subjects, an analysis). :class:`Progress` shows where the run is:

* ``tty`` (stderr is a terminal): one overall tqdm line at the top, ``stage i/n name · step ·
  elapsed · ≈ time left``, refreshed every second and cut to the terminal's width; the bars of
  the steps (training epochs, feature extraction, evaluation) are drawn beneath it and disappear
  when done; a line per finished stage stays above it.
* ``plain`` (not a terminal: CI logs, ``| tee``): no carriage returns and no bars. A line when a
  stage or a job starts, a line when a stage ends, and a heartbeat line every ``interval``
  seconds during long steps (with the innermost bar's count, e.g. ``evaluate 3/12``). Lines are
  at most :data:`MAX_LINE` characters.
* ``quiet``: nothing.

The estimate of the time left follows the work done. Each stage and each job of a stage
(:func:`brainviz.jobs.run_jobs`: the models of ``train``, ...) has an expected duration: from
the last complete run in the same work folder (``progress_history.json``), else typical
demo-brain durations (:data:`TYPICAL_SECONDS`, :data:`TYPICAL_JOB_SECONDS`), else an equal share
of its stage. The pace of this run is the time the work done so far took against its expected
duration, where the work done counts finished stages, finished jobs and the finished part of
running jobs (their epochs, :func:`brainviz.jobs.report`). The time left is the expected duration
of the work to come times that pace; the jobs of the current stage are scheduled on its workers.
A stage that reports no jobs and runs past its estimate is said to (``this stage is over its
estimate``) instead of counting as done.

Library code makes its bars with :func:`bar` and names its steps with :func:`step`; without an
active :class:`Progress` (tests, notebooks) :func:`bar` is a plain tqdm bar and :func:`step`
does nothing. Only one :class:`Progress` is active at a time (module-level, per process).
"""
from __future__ import annotations

import heapq
import json
import re
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence, TextIO

from tqdm.auto import tqdm

MODES = ("auto", "tty", "plain", "quiet")
#: Seconds of each stage of ``precompute all`` on the demo brain at default settings (2-core CPU,
#: bench/RESULTS.md 2026-11-30): only the first estimate of a run without history uses them.
TYPICAL_SECONDS = {"features": 44.0, "train": 358.0, "evaluate": 19.0, "transfer curve": 87.0, "analyze": 140.0}
#: Seconds of one job of a stage, by the kind of job (its name up to the first '-' or ' '): demo brain, two
#: jobs side by side with one thread each (brainviz/pipeline/train.py). Only the weights of a stage's jobs
#: before any history matter: the pace of the run scales them.
TYPICAL_JOB_SECONDS = {"train": {"ue_multi": 277.0, "ue_pretrain": 250.0, "ue_single": 35.0, "ridge": 5.0}}
HISTORY_FILE = "progress_history.json"
#: Longest line of the plain display (characters).
MAX_LINE = 120

_active: "Progress | None" = None


def current() -> "Progress | None":
    """The active :class:`Progress`, if any."""
    return _active


def fmt_seconds(s: float) -> str:
    """``73.4`` -> ``'1:13'``; ``3725`` -> ``'1:02:05'``."""
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def job_kind(name: str) -> str:
    """``'ue_pretrain-subj05 (subj01, ...)'`` -> ``'ue_pretrain'``: the key of :data:`TYPICAL_JOB_SECONDS`."""
    return re.split(r"[- ]", name.strip(), maxsplit=1)[0]


def short_name(name: str) -> str:
    """A job's name without its subject list: ``'ue_multi (subj01, subj02)'`` -> ``'ue_multi'``."""
    return name.split(" (")[0].split(", then")[0].strip()


def compact_name(name: str, width: int = 60) -> str:
    """A job's full name, with runs of consecutive subjects written ``subj01-subj04`` when longer than ``width``."""
    if len(name) <= width:
        return name

    def squeeze(m: re.Match) -> str:
        nums = [int(x) for x in re.findall(r"subj(\d+)", m.group(1))]
        if len(nums) > 2 and nums == list(range(nums[0], nums[0] + len(nums))):
            return f"(subj{nums[0]:02d}-subj{nums[-1]:02d})"
        return m.group(0)

    return re.sub(r"\((subj\d+(?:, subj\d+)+)\)", squeeze, name)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(1, width - 1)] + "…"


class _Job:
    """One job of a stage's job set: expected seconds, start / end times, finished fraction, last report."""

    __slots__ = ("name", "weight", "start", "end", "fraction", "text", "t0", "f0")

    def __init__(self, name: str, weight: float | None):
        self.name, self.weight, self.start, self.end, self.fraction, self.text = name, weight, None, None, 0.0, ""
        self.t0 = self.f0 = None  # time and fraction of its first report: the pace counts from there

    def measured(self, now: float) -> tuple[float, float] | None:
        """(seconds, fraction of the work) measured so far; None before a measurable part is done."""
        if self.start is None:
            return None
        t0, f0 = (self.t0, self.f0) if self.t0 is not None else (self.start, 0.0)
        if self.end is not None:
            return self.end - t0, 1.0 - f0
        return (now - t0, self.fraction - f0) if self.fraction - f0 >= 0.02 else None


class _CountingBar:
    """A bar that draws nothing (plain / quiet modes) but keeps its count for the heartbeat line."""

    def __init__(self, iterable=None, total=None, desc=""):
        self.iterable, self.desc, self.n, self.done = iterable, desc, 0, False
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.n += 1
        self.done = True

    def update(self, k: int = 1) -> None:
        self.n += k

    def set_postfix(self, *a, **k) -> None:
        pass

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def close(self) -> None:
        self.done = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def text(self) -> str:
        return f"{self.desc} {self.n}/{self.total}" if self.total else f"{self.desc} {self.n}"


class Progress:
    """Overall progress of a run of named stages (see the module docstring).

    Parameters
    ----------
    stages : the stage names, in run order (``stage i/n``).
    mode : 'auto' (tty when ``stream`` is a terminal, else plain), 'tty', 'plain' or 'quiet'.
    stream : where the display goes (default ``sys.stderr``).
    interval : seconds between heartbeat lines in plain mode.
    history : JSON file with the stage seconds of the last complete run (read for the
        estimate, written by :meth:`save_history`); None: typical durations only.
    title : prefix of plain lines.

    Use as a context manager; inside it, :meth:`stage` marks each stage, :func:`step` /
    :func:`bar` report from library code. After it, :attr:`records` holds
    ``[(stage, seconds, what was written)]`` and :meth:`summary` formats them.
    """

    def __init__(self, stages: Sequence[str], mode: str = "auto", stream: TextIO | None = None,
                 interval: float = 30.0, history: str | Path | None = None, title: str = "precompute"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.stages = list(stages)
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "tty" if isatty is not None and isatty() else "plain"
        self.mode = mode
        self.interval = float(interval)
        self.history = Path(history) if history else None
        self.title = title
        self.records: list[tuple[str, float, str]] = []
        self._expected = dict(TYPICAL_SECONDS)
        self._expected_jobs: dict[str, float] = {}  # "stage|job name" -> seconds (the last run)
        self._expected_source = "typical demo-brain durations"
        if self.history and self.history.is_file():
            try:
                got = json.loads(self.history.read_text())
                self._expected.update({k: float(v) for k, v in got.items() if k in self.stages})
                self._expected_jobs = {str(k): float(v) for k, v in (got.get("jobs") or {}).items()}
                self._expected_source = "the last run"
            except (OSError, ValueError, TypeError, AttributeError):
                pass
        self.job_seconds: dict[str, float] = {}  # "stage|job name" -> seconds of the jobs finished in this run
        self._jobs: dict[str, _Job] = {}  # the current stage's job set (brainviz.jobs.run_jobs), by name
        self._job_workers = 1
        self._job_token: object | None = None
        self._stage: str | None = None
        self._stage_t0 = 0.0
        self._written = ""
        self._steps: list[str] = []
        self._bars: list = []
        self._t0 = 0.0
        self._overall = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._last_line = 0.0

    # ---- what library code sees
    @property
    def library_bars(self) -> bool:
        """Whether library code may draw its own tqdm bars (only beneath a terminal display)."""
        return self.mode == "tty"

    def step(self, text: str, announce: bool = True) -> None:
        """Name what the current stage is doing now (e.g. ``'ue_multi (subj01, subj02)'``); ``announce``
        False: no line of its own in plain mode (the next heartbeat line shows it)."""
        with self._lock:
            if self._steps:
                self._steps[-1] = text
            else:
                self._steps.append(text)
        self._changed(announce=announce)

    @contextmanager
    def substep(self, text: str):
        """``with``: a step nested in the current one, restored afterwards."""
        with self._lock:
            self._steps.append(text)
        self._changed(announce=text.replace("_", " ") != self._stage)  # the stage's own timer: no extra line
        try:
            yield
        finally:
            with self._lock:
                if self._steps:
                    self._steps.pop()
            self._changed(announce=False)

    def bar(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it"):
        """A step bar nested under the overall display (tqdm in tty mode, a silent counter otherwise)."""
        if self.mode == "tty":
            b = tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=self.stream, dynamic_ncols=True)
        else:
            b = _CountingBar(iterable, total, desc)
        self._bars.append(b)
        return b

    def wrote(self, text: str) -> None:
        """What the current stage wrote (the summary table's last column)."""
        self._written = text

    # ---- jobs of the current stage (brainviz.jobs.run_jobs)
    def jobs_begin(self, names: Sequence[str], workers: int) -> object | None:
        """A set of jobs starts in the current stage (``workers`` at a time); returns a token for the calls
        below, or None when a set is already running (a nested set is not shown)."""
        with self._lock:
            if self._job_token is not None or self._stage is None:
                return None
            kinds = TYPICAL_JOB_SECONDS.get(self._stage, {})
            self._jobs = {n: _Job(n, self._expected_jobs.get(f"{self._stage}|{n}", kinds.get(job_kind(n))))
                          for n in names}
            known = [j.weight for j in self._jobs.values() if j.weight]
            # jobs without an expectation: the mean of the others, else an equal share of the stage's expectation
            fill = sum(known) / len(known) if known else \
                self._expected.get(self._stage, 60.0) * max(1, workers) / max(1, len(names))
            for j in self._jobs.values():
                j.weight = j.weight or fill
            self._job_workers = max(1, int(workers))
            self._job_token = object()
            return self._job_token

    def job_started(self, token, name: str) -> None:
        """Job ``name`` of the set ``token`` starts (a line of its own in plain mode)."""
        with self._lock:
            job = self._jobs.get(name) if token is not None and token is self._job_token else None
            if job is None:
                return
            job.start = time.perf_counter()
        self._line(self._fit(f"{self._where(jobs=False, count=False)} · start {compact_name(name)}", self._status(),
                             self._plain_width()))
        self._changed(announce=False)

    def job_report(self, token, name: str, text: str, fraction: float | None = None) -> None:
        """What job ``name`` does now and, when known, the fraction of its work done (0..1; never goes back)."""
        with self._lock:
            job = self._jobs.get(name) if token is not None and token is self._job_token else None
            if job is None:
                return
            job.text = text
            if fraction is not None:
                job.fraction = max(job.fraction, min(1.0, max(0.0, float(fraction))))
                if job.t0 is None:  # e.g. a training resumed at epoch 5: its pace counts from here
                    job.t0, job.f0 = time.perf_counter(), job.fraction
        self._changed(announce=False)

    def job_finished(self, token, name: str) -> None:
        """Job ``name`` ended (its seconds go into the history of the next run's estimate)."""
        with self._lock:
            job = self._jobs.get(name) if token is not None and token is self._job_token else None
            if job is None or job.start is None:
                return
            job.end, job.fraction = time.perf_counter(), 1.0
            self.job_seconds[f"{self._stage}|{name}"] = job.end - job.start
        self._changed(announce=False)

    def jobs_end(self, token) -> None:
        """The set ``token`` is over (finished or failed)."""
        with self._lock:
            if token is not None and token is self._job_token:
                self._jobs, self._job_token = {}, None

    # ---- stages
    @contextmanager
    def stage(self, name: str):
        """``with``: run stage ``name`` (one of :attr:`stages`); its time goes into the summary."""
        with self._lock:
            self._stage, self._stage_t0, self._written, self._steps, self._bars = name, time.perf_counter(), "", [], []
            self._jobs, self._job_token = {}, None
        self._line(self._fit(f"{self._where()}: started", self._status(), self._plain_width()))
        self._changed(announce=False)
        ok = False
        try:
            yield self
            ok = True
        finally:
            secs = time.perf_counter() - self._stage_t0
            with self._lock:
                self.records.append((name, secs, self._written if ok else "(failed)"))
                self._stage, self._steps, self._bars = None, [], []
                self._jobs, self._job_token = {}, None
            if self._overall is not None:
                self._overall.update(1)
            # what the stage wrote goes into the summary table at the end (paths make long lines)
            last = len(self.records) >= len(self.stages)
            self._line(f"stage {self._index(name)}/{len(self.stages)} {name}: {'done' if ok else 'FAILED'} in "
                       f"{fmt_seconds(secs)}" + ("" if last or not ok else f" · {self._status()}"))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0 if self._t0 else 0.0

    def pace(self) -> float:
        """Seconds this run took per expected second, over the work done so far (1.0 before any)."""
        with self._lock:
            now = time.perf_counter()
            # the feature stage is cheap when its cache is warm: it does not tell how fast the rest will go
            pairs = [(secs, self._expected[s]) for s, secs, _ in self.records
                     if s != "features" and self._expected.get(s)]
            for j in self._jobs.values():
                got = j.measured(now)
                if got is not None:
                    pairs.append((got[0], j.weight * got[1]))
        spent, expected = sum(a for a, _ in pairs), sum(e for _, e in pairs)
        return min(50.0, max(0.02, spent / expected)) if expected > 1e-6 else 1.0

    def stage_fraction(self) -> float | None:
        """Fraction of the current stage's jobs done (weighted by their expected seconds); None without jobs."""
        with self._lock:
            jobs = list(self._jobs.values())
        total = sum(j.weight for j in jobs)
        return sum(j.weight * j.fraction for j in jobs) / total if jobs and total > 0 else None

    def _jobs_left(self, pace: float) -> float:
        """Seconds until the current job set is done: running jobs extrapolated from their finished
        fraction, waiting jobs at their expected seconds x ``pace``, scheduled on the set's workers."""
        now = time.perf_counter()
        with self._lock:
            jobs, workers = list(self._jobs.values()), self._job_workers
        free = []
        for j in jobs:
            if j.start is None or j.end is not None:
                continue
            got = j.measured(now)
            if got is not None:  # its own pace
                free.append(got[0] * (1 - j.fraction) / got[1])
            else:  # nothing measured yet: its expectation, and never less than a tenth of it
                free.append(max(j.weight * pace - (now - j.start), 0.1 * j.weight * pace))
        free += [0.0] * max(0, workers - len(free))
        heapq.heapify(free)
        for j in jobs:
            if j.start is None:
                heapq.heappush(free, heapq.heappop(free) + j.weight * pace)
        return max(free) if free else 0.0

    def estimate(self) -> tuple[float, bool]:
        """(seconds left, whether the current stage has run past its estimate: then the seconds are those of
        the stages after it); see the module docstring."""
        pace = self.pace()
        done = {name for name, _, _ in self.records}
        left, over = 0.0, False
        for s in self.stages:
            if s in done:
                continue
            if s == self._stage:
                if self._jobs:
                    left += self._jobs_left(pace)
                else:
                    rest = self._expected.get(s, 0.0) * pace - (time.perf_counter() - self._stage_t0)
                    over = rest < 0
                    left += max(rest, 0.0)
            else:
                left += self._expected.get(s, 0.0) * pace
        return left, over

    def seconds_left(self) -> float | None:
        """Estimate of the time left (s); see :meth:`estimate`."""
        return self.estimate()[0]

    def summary(self) -> str:
        """Plain-text table: stage, seconds, what was written (and the total)."""
        rows = [(name, f"{secs:.1f}", what or "-") for name, secs, what in self.records]
        rows.append(("total", f"{sum(s for _, s, _ in self.records):.1f}", ""))
        w0 = max(len("stage"), *(len(r[0]) for r in rows))
        w1 = max(len("seconds"), *(len(r[1]) for r in rows))
        lines = [f"{'stage':<{w0}}  {'seconds':>{w1}}  what was written", f"{'-' * w0}  {'-' * w1}  {'-' * 16}"]
        lines += [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
        return "\n".join(lines)

    def save_history(self) -> None:
        """Write the stage seconds of this (complete) run for the next run's estimate."""
        if not self.history or len(self.records) != len(self.stages):
            return
        try:
            from .atomic import atomic_path

            self.history.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.history, ".json") as tmp:
                got = {n: round(s, 2) for n, s, _ in self.records}
                if self.job_seconds:
                    got["jobs"] = {k: round(v, 2) for k, v in self.job_seconds.items()}
                Path(tmp).write_text(json.dumps(got, indent=1))
        except OSError:
            pass

    # ---- context
    def __enter__(self) -> "Progress":
        global _active
        self._t0 = time.perf_counter()
        _active = self
        if self.mode == "tty":
            self._overall = tqdm(total=len(self.stages), position=0, leave=True, file=self.stream, dynamic_ncols=True,
                                 bar_format="{desc} |{bar:10}|")
            self._changed(announce=False)
        if self.mode in ("tty", "plain"):
            self._thread = threading.Thread(target=self._tick, name="brainviz-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        global _active
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._overall is not None:
            self._overall.set_description_str(f"{self.title}: {len(self.records)}/{len(self.stages)} stages "
                                              f"in {fmt_seconds(self.elapsed)}")
            self._overall.close()
        _active = None

    # ---- drawing
    def _index(self, name: str) -> int:
        return self.stages.index(name) + 1 if name in self.stages else len(self.records) + 1

    def _where(self, jobs: bool = True, count: bool = True) -> str:
        """``stage 2/5 train`` and what it does now: its steps, or its jobs (``3/11 done · ue_multi epoch 4/10``)."""
        with self._lock:
            name = self._stage
            steps = [s for s in self._steps if s and s.replace("_", " ") != name]
            running = [j for j in self._jobs.values() if j.start is not None and j.end is None]
            n_done, n_all = sum(j.end is not None for j in self._jobs.values()), len(self._jobs)
        if name is None:
            return self.title
        parts = [f"stage {self._index(name)}/{len(self.stages)} {name}"]
        if n_all:
            if count:
                parts.append(f"{n_done}/{n_all} done")
            if jobs and running:
                parts.append(", ".join(f"{short_name(j.name)} {j.text}".strip() for j in running))
        else:
            parts += steps
        return " · ".join(parts)

    def _left_text(self) -> str:
        left, over = self.estimate()
        if over:
            return (f" · ≈ {fmt_seconds(left)} left after this stage" if left >= 1 else "") + \
                " · this stage is over its estimate"
        return f" · ≈ {fmt_seconds(left)} left"

    def _status(self) -> str:
        """``42% · ≈ 3:10 left`` (the tty display adds the elapsed time; plain lines start with it)."""
        frac = self.stage_fraction()
        text = (f"{frac:.0%}" if frac is not None else "") + self._left_text()
        if self.mode == "tty":
            text = f"elapsed {fmt_seconds(self.elapsed)}" + (" · " if frac is not None else "") + text
        return text.removeprefix(" · ")

    def _fit(self, where: str, status: str, width: int) -> str:
        """``where · status`` in ``width`` characters: ``where`` is cut first (the estimate stays readable)."""
        return f"{_cut(where, max(20, width - len(status) - 3))} · {status}"

    def _plain_width(self) -> int:
        """Characters of a line after its ``[precompute 12:34]`` head (tty: the terminal's width)."""
        if self.mode == "tty":
            return shutil.get_terminal_size((120, 24)).columns - 1
        return MAX_LINE - len(f"[{self.title} {fmt_seconds(self.elapsed)}] ")

    def _line(self, text: str) -> None:
        if self.mode == "quiet":
            return
        self._last_line = time.perf_counter()
        if self.mode == "tty":
            tqdm.write(_cut(text, shutil.get_terminal_size((120, 24)).columns - 1), file=self.stream)
        else:  # one write per line: jobs running side by side (brainviz.jobs) report from several threads
            head = f"[{self.title} {fmt_seconds(self.elapsed)}] "
            with self._lock:
                self.stream.write(head + _cut(text, MAX_LINE - len(head)) + "\n")
                self.stream.flush()

    def _overall_text(self) -> str:
        width = shutil.get_terminal_size((120, 24)).columns - 16  # the overall bar takes ~15 columns
        return self._fit(self._where(), self._status(), width)

    def _changed(self, announce: bool) -> None:
        if self.mode == "tty" and self._overall is not None:
            self._overall.set_description_str(self._overall_text(), refresh=True)
        elif self.mode == "plain" and announce and self._stage is not None:
            self._line(self._fit(self._where(), self._status(), self._plain_width()))

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.interval)):
            if self.mode == "tty":
                if self._overall is not None:
                    self._overall.set_description_str(self._overall_text(), refresh=True)
            elif self._stage is not None and time.perf_counter() - self._last_line >= self.interval:
                with self._lock:
                    inner = [b.text() for b in self._bars if isinstance(b, _CountingBar) and b.n and not b.done]
                self._line(self._fit(" · ".join([self._where(), *inner[-1:]]), self._status(), self._plain_width()))


# --------------------------------------------------------------------------- for library code
def bar(iterable: Iterable | None = None, desc: str = "", total: int | None = None, enabled: bool = True,
        unit: str = "it"):
    """A progress bar for a step: nested under the active :class:`Progress`, else a plain tqdm bar
    (disabled when ``enabled`` is false)."""
    p = _active
    if p is not None:
        return p.bar(iterable, total=total, desc=desc, unit=unit)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled)


def jobs_begin(names: Sequence[str], workers: int) -> object | None:
    """:meth:`Progress.jobs_begin` of the active display (None without one)."""
    return _active.jobs_begin(names, workers) if _active is not None else None


def job_started(token, name: str) -> None:
    if _active is not None and token is not None:
        _active.job_started(token, name)


def job_report(token, name: str, text: str, fraction: float | None = None) -> None:
    if _active is not None and token is not None:
        _active.job_report(token, name, text, fraction)


def job_finished(token, name: str) -> None:
    if _active is not None and token is not None:
        _active.job_finished(token, name)


def jobs_end(token) -> None:
    if _active is not None and token is not None:
        _active.jobs_end(token)


def step(text: str, announce: bool = True) -> None:
    """Name the current step of the active :class:`Progress` (no-op without one); see :meth:`Progress.step`."""
    if _active is not None:
        _active.step(text, announce=announce)


@contextmanager
def substep(text: str):
    """``with``: a nested step of the active :class:`Progress` (no-op without one)."""
    if _active is None:
        yield
    else:
        with _active.substep(text):
            yield


def library_bars(default: bool) -> bool:
    """Whether library code should draw its own tqdm bars: ``default`` without an active
    :class:`Progress`; with one, only beneath a terminal display (never in plain or quiet mode)."""
    return default if _active is None else (default and _active.library_bars)
