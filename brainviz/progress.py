"""Progress of a long pipeline run: one overall display, nested step bars, a summary table.

``python -m precompute all`` runs a few stages (features, train, evaluate, ...), each made of
steps (a model of some subjects, an analysis). :class:`Progress` shows where the run is:

* ``tty`` (stderr is a terminal): one overall tqdm line at the top, ``stage i/n name · step ·
  elapsed · ≈ time left``, refreshed every second; the bars of the steps (training epochs,
  feature extraction, evaluation) are drawn beneath it and disappear when done; a line per
  finished stage stays above it.
* ``plain`` (not a terminal: CI logs, ``| tee``): no carriage returns and no bars. A line when a
  stage or a step starts, a line when a stage ends, and a heartbeat line every ``interval``
  seconds during long steps (with the innermost bar's count, e.g. ``evaluate 3/12``).
* ``quiet``: nothing.

The estimate of the time left uses the stage durations of the last complete run in the same
work folder (``progress_history.json``) or, before any run, typical demo-brain durations,
scaled by how long the stages done so far took against that expectation.

Library code makes its bars with :func:`bar` and names its steps with :func:`step`; without an
active :class:`Progress` (tests, notebooks) :func:`bar` is a plain tqdm bar and :func:`step`
does nothing. Only one :class:`Progress` is active at a time (module-level, per process).
"""
from __future__ import annotations

import json
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
HISTORY_FILE = "progress_history.json"

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
        self._expected_source = "typical demo-brain durations"
        if self.history and self.history.is_file():
            try:
                got = json.loads(self.history.read_text())
                self._expected.update({k: float(v) for k, v in got.items() if k in self.stages})
                self._expected_source = "the last run"
            except (OSError, ValueError, TypeError, AttributeError):
                pass
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

    # ---- stages
    @contextmanager
    def stage(self, name: str):
        """``with``: run stage ``name`` (one of :attr:`stages`); its time goes into the summary."""
        with self._lock:
            self._stage, self._stage_t0, self._written, self._steps, self._bars = name, time.perf_counter(), "", [], []
        self._line(f"{self._where()}: started · elapsed {fmt_seconds(self.elapsed)}{self._left_text()}")
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
            if self._overall is not None:
                self._overall.update(1)
            self._line(f"stage {self._index(name)}/{len(self.stages)} {name}: {'done' if ok else 'FAILED'} in "
                       f"{fmt_seconds(secs)}" + (f" · {self.records[-1][2]}" if self.records[-1][2] else ""))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0 if self._t0 else 0.0

    def seconds_left(self) -> float | None:
        """Estimate of the time left (s): expected durations of the stages to come, scaled by how the
        finished stages compared with their expectation; None before anything is known."""
        done = {name: secs for name, secs, _ in self.records}
        # the feature stage is cheap when its cache is warm: it does not tell how fast the rest will go
        ref = [(done[s], self._expected[s]) for s in done if s != "features" and self._expected.get(s)]
        scale = min(20.0, max(0.005, sum(a for a, _ in ref) / sum(e for _, e in ref))) if ref else 1.0
        left = 0.0
        for s in self.stages:
            if s in done:
                continue
            exp = self._expected.get(s, 0.0) * scale
            if s == self._stage:
                exp = max(exp - (time.perf_counter() - self._stage_t0), 0.0)
            left += exp
        return left

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
                Path(tmp).write_text(json.dumps({n: round(s, 2) for n, s, _ in self.records}, indent=1))
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

    def _where(self) -> str:
        with self._lock:
            name = self._stage
            steps = [s for s in self._steps if s and s.replace("_", " ") != name]
        if name is None:
            return self.title
        return " · ".join([f"stage {self._index(name)}/{len(self.stages)} {name}", *steps])

    def _left_text(self) -> str:
        left = self.seconds_left()
        if left is None:
            return ""
        if left < 1 and self._stage is not None:
            return " · taking longer than estimated"
        return f" · ≈ {fmt_seconds(left)} left"

    def _status(self) -> str:
        return f"elapsed {fmt_seconds(self.elapsed)}{self._left_text()}"

    def _line(self, text: str) -> None:
        if self.mode == "quiet":
            return
        self._last_line = time.perf_counter()
        if self.mode == "tty":
            tqdm.write(text, file=self.stream)
        else:  # one write per line: jobs running side by side (brainviz.jobs) report from several threads
            with self._lock:
                self.stream.write(f"[{self.title} {fmt_seconds(self.elapsed)}] {text}\n")
                self.stream.flush()

    def _changed(self, announce: bool) -> None:
        if self.mode == "tty" and self._overall is not None:
            self._overall.set_description_str(f"{self._where()} · {self._status()}", refresh=True)
        elif self.mode == "plain" and announce and self._stage is not None:
            self._line(f"{self._where()} · {self._status()}")

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self.mode == "tty":
                if self._overall is not None:
                    self._overall.set_description_str(f"{self._where()} · {self._status()}", refresh=True)
            elif self._stage is not None and time.perf_counter() - self._last_line >= self.interval:
                with self._lock:
                    inner = [b.text() for b in self._bars if isinstance(b, _CountingBar) and b.n and not b.done]
                self._line(" · ".join([self._where(), *inner[-1:], self._status()]))


# --------------------------------------------------------------------------- for library code
def bar(iterable: Iterable | None = None, desc: str = "", total: int | None = None, enabled: bool = True,
        unit: str = "it"):
    """A progress bar for a step: nested under the active :class:`Progress`, else a plain tqdm bar
    (disabled when ``enabled`` is false)."""
    p = _active
    if p is not None:
        return p.bar(iterable, total=total, desc=desc, unit=unit)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled)


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
