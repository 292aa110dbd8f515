"""Shared helpers of the benchmark suite: machine info, memory sampling, isolated runs, tables.

Every benchmark returns a :class:`BenchResult` (tables of rows, notes, goals)
that ``python -m bench`` writes into ``bench/RESULTS.md``. Timings on a shared
machine are noisy, so each table carries a ratio against a reference measured
in the same run.

Memory: each measured call runs in a fresh Python process (:func:`run_isolated`)
so peaks do not leak between methods. Two figures are reported:

* ``peak RSS``: the kernel's high-water mark (``ru_maxrss``) of the process. It
  includes file-backed pages of memory-mapped inputs that were touched (they
  are page cache the kernel may drop at any time, not memory the process holds).
* ``peak anon``: the largest anonymous resident memory (``RssAnon`` in
  ``/proc/self/status``, sampled every 5 ms by a thread): the memory the
  computation really holds (heap, numpy and torch buffers).

Both include the interpreter and imported libraries; ``base`` (anonymous
memory right before the measured call) is reported so the increment is visible.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MB = 2**20
RESULT_MARK = "@@BENCH_RESULT@@"


def watch(proc: subprocess.Popen, timeout: float | None = None, every: float = 0.2) -> dict:
    """Wait for ``proc`` (started by the caller), sampling its ``/proc/PID/status`` every ``every`` s; kill it after
    ``timeout`` s. Returns exit (code), wall_s (from this call), peak_rss_mb (the kernel's ``ru_maxrss`` from
    ``os.wait4``, as ``/usr/bin/time -v``), peak_anon_mb / peak_file_mb (the largest sampled RssAnon: the process's
    arrays, and RssFile: file pages such as memory-mapped inputs, reclaimable)."""
    t0 = time.perf_counter()
    peaks = {"RssAnon": 0, "RssFile": 0}
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                k, _, v = ln.partition(":")
                if k in peaks:
                    peaks[k] = max(peaks[k], int(v.split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        if timeout is not None and time.perf_counter() - t0 > timeout:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(every)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"exit": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1),
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
            "peak_anon_mb": round(peaks["RssAnon"] / 1024, 1), "peak_file_mb": round(peaks["RssFile"] / 1024, 1)}


# ------------------------------------------------------------------------------ machine
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """nproc, RAM, CPU model, library versions, GPU (or why none), load average."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), platform.processor() or "unknown")
    mem = next((int(ln.split()[1]) * 1024 for ln in _read("/proc/meminfo").splitlines()
                if ln.startswith("MemTotal")), 0)
    info: dict[str, Any] = {"cpu": cpu, "nproc": os.cpu_count(), "ram_gb": round(mem / 2**30, 1),
                            "python": platform.python_version(), "platform": platform.platform()}
    try:
        import numpy as np

        info["numpy"] = np.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (GPU figures: not measured)"
    except ImportError:  # pragma: no cover
        info["gpu"] = "unknown"
    try:
        info["loadavg_at_start"] = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    return info


# ------------------------------------------------------------------------------ memory
def _status_kb(field_name: str) -> int:
    for ln in _read("/proc/self/status").splitlines():
        if ln.startswith(field_name + ":"):
            return int(ln.split()[1])
    return 0


def rss_anon_mb() -> float:
    return _status_kb("RssAnon") / 1024


def max_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemSampler:
    """Sample RssAnon every ``interval`` s in a thread; ``peak_anon_mb`` after the block."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_anon_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_anon_mb = max(self.peak_anon_mb, rss_anon_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "MemSampler":
        self.base_anon_mb = rss_anon_mb()
        self.peak_anon_mb = self.base_anon_mb
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_anon_mb = max(self.peak_anon_mb, rss_anon_mb())


def measure(fn: Callable, *args, **kwargs) -> dict[str, Any]:
    """Run ``fn`` once in this process: seconds, peak anon / RSS (MB), and its return value."""
    with MemSampler() as ms:
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        secs = time.perf_counter() - t0
    return {"seconds": secs, "peak_anon_mb": ms.peak_anon_mb, "base_anon_mb": ms.base_anon_mb,
            "peak_rss_mb": max_rss_mb(), "value": value}


def run_isolated(target: str, kwargs: dict | None = None, timeout: float = 1800,
                 env: dict | None = None, preload: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh Python process and measure it (see :func:`measure`).

    ``preload``: modules imported before the clock starts (import time is not
    what is measured). With ``BRAINVIZ_BENCH_INPROCESS=1`` (quick mode) the call
    runs in this process instead (memory figures then include everything
    before it). The function must return something JSON-serializable
    (small). Returns the measurement dict, or ``{"error": ...}`` when the
    process failed or timed out.
    """
    if os.environ.get("BRAINVIZ_BENCH_INPROCESS") == "1":  # quick mode: no process start-up per call
        for name in preload:
            importlib.import_module(name)
        mod_name, func_name = target.split(":")
        try:
            out = measure(getattr(importlib.import_module(mod_name), func_name), **(kwargs or {}))
        except Exception as exc:  # reported like a failed process
            return {"error": f"{type(exc).__name__}: {exc}"[-400:]}
        return json.loads(json.dumps(out, default=_json_default))
    cmd = [sys.executable, "-m", "bench._common", target, json.dumps(kwargs or {}), ",".join(preload)]
    full_env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for ln in reversed(res.stdout.splitlines()):
        if ln.startswith(RESULT_MARK):
            return json.loads(ln[len(RESULT_MARK):])
    tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {res.returncode}: " + " | ".join(tail)[-400:]}


def _worker(target: str, kwargs_json: str, preload: str = "") -> None:
    for name in filter(None, preload.split(",")):
        importlib.import_module(name)
    mod_name, func_name = target.split(":")
    func = getattr(importlib.import_module(mod_name), func_name)
    kwargs = json.loads(kwargs_json)
    out = measure(func, **kwargs)
    print(RESULT_MARK + json.dumps(out, default=_json_default), flush=True)


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


# ------------------------------------------------------------------------------ results
@dataclass
class Table:
    caption: str
    rows: list[dict[str, Any]]
    columns: list[str] | None = None


@dataclass
class Goal:
    goal: str
    met: bool | None  # None: not measured
    detail: str = ""


@dataclass
class BenchResult:
    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    seconds: float = 0.0
    raw_output: str | None = None  # verbatim output of an external script
    #: headline rows for the summary table: {"figure", "BrainViz", "reference", "ratio"}
    summary: list[dict[str, Any]] = field(default_factory=list)

    def add_summary(self, figure: str, brainviz: Any, reference: str, ratio: float | None, unit: str = "") -> None:
        self.summary.append({"benchmark": self.name, "figure": figure,
                             "BrainViz": f"{fmt(brainviz)}{unit}" if not isinstance(brainviz, str) else brainviz,
                             "reference": reference, "ratio": ratio})


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 100:
            return f"{v:,.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.01:
            return f"{v:.2f}"
        return f"{v:.2g}"
    return str(v)


def markdown_table(table: Table) -> str:
    cols = table.columns or list(dict.fromkeys(k for r in table.rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in table.rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def print_result(res: BenchResult) -> None:
    print(f"\n## {res.title}")
    for t in res.tables:
        print(f"\n{t.caption}\n")
        print(markdown_table(t))
    for n in res.notes:
        print(f"- {n}")
    for g in res.goals:
        status = "MET" if g.met else ("not measured" if g.met is None else "NOT MET")
        print(f"goal: {g.goal}: {status} {g.detail}")


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def cli_main(run: Callable[..., BenchResult], argv=None) -> int:
    """Standalone ``python bench/bench_X.py [--quick]`` for one benchmark."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny sizes")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    print_result(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
