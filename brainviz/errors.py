"""The one error type BrainViz raises for bad input data."""
from __future__ import annotations

from pathlib import Path


class BrainVizDataError(ValueError):
    """Malformed or missing input data.

    The message always names the offending file (or field) and what is wrong,
    so a user can fix it without reading a traceback.

    Attributes
    ----------
    path : str or None
        The file, folder or field the problem is in.
    problem : str
        What is wrong with it.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
