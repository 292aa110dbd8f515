"""Run the ``precompute`` CLI in this process with its output captured (tests of the pipeline)."""
from __future__ import annotations

import contextlib
import io


def run_precompute(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``python -m precompute *argv``, run in this process."""
    from precompute.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()
