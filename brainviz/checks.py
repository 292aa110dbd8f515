"""Input checks shared by the library: turn an argument into a checked numpy array or raise.

Every helper takes the value first and the argument's name second (``as_matrix(x, "responses")``)
and raises :class:`~brainviz.errors.BrainVizDataError` naming that argument. The encoders'
feature / response checks (:mod:`brainviz.encoders._inputs`) build on these.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import BrainVizDataError

__all__ = ["as_array", "as_matrix", "check_finite"]


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise when ``arr`` holds a NaN or an infinity (the message gives the first index)."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise BrainVizDataError(name, f"contains NaN or infinite values (first at index {bad})")


def as_array(x: Any, name: str, ndim: int | None = None, *, dtype=np.float64, finite: bool = False) -> np.ndarray:
    """``x`` as a numeric array of ``dtype`` (no copy when it already is one).

    ``ndim``: required number of dimensions (None: any). ``finite``: also reject NaN / inf.
    """
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise BrainVizDataError(name, f"not a numeric array ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise BrainVizDataError(name, f"expected a {ndim}-D array, got shape {arr.shape}")
    if finite:
        check_finite(arr, name)
    return arr


def as_matrix(x: Any, name: str, n_rows: int | None = None, *, dtype=np.float64, finite: bool = True,
              nonempty: bool = False) -> np.ndarray:
    """``x`` as a 2-D numeric array of ``dtype``, finite unless ``finite=False``.

    ``n_rows``: required number of rows. ``nonempty``: reject a matrix without rows or columns.
    """
    arr = as_array(x, name, 2, dtype=dtype)
    if nonempty and (arr.shape[0] == 0 or arr.shape[1] == 0):
        raise BrainVizDataError(name, f"expected a non-empty 2-D array, got shape {arr.shape}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise BrainVizDataError(name, f"expected {n_rows} rows, got {arr.shape[0]}")
    if finite:
        check_finite(arr, name)
    return arr
