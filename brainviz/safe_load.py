"""Read pickled files without running code from them.

A pickle names callables (``module.name``) that ``pickle.load`` imports and calls,
so a crafted file runs arbitrary code (``os.system``...). Every pickle BrainViz reads
goes through a restricted unpickler that resolves only an allowlist of names and
refuses everything else with a :class:`~brainviz.errors.BrainVizDataError` naming
the file and the refused name:

* :func:`load_npy_object` - an object ``.npy`` (or a raw pickle), e.g. the Algonauts
  ROI mappings ``mapping_<class>.npy`` (a dict of int -> str in a 0-d object array):
  only numpy's array/scalar reconstruct helpers, ``ndarray``, ``dtype`` and the
  builtins ``dict``, ``int``, ``str`` are admitted.
* :func:`load_joblib` - a joblib file of a BrainViz estimator (ridge checkpoints in
  the work folder): numpy arrays (no object arrays), plain containers, and the
  classes of the modules the caller names.

Sizes: an array a pickle builds (numpy's ``_reconstruct`` and ``__setstate__``) may not hold
more elements than the file has bytes (every element of a real array is stored in the file),
so a tiny file cannot make BrainViz allocate a huge array. Messages never pass on numpy's or
torch's advice to load with fewer checks (:func:`safe_message`).
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import BrainVizDataError

#: What the real Algonauts mapping files hold (written by numpy 1.x or 2.x).
NUMPY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})
MAPPING_GLOBALS = NUMPY_GLOBALS | {("builtins", "dict"), ("builtins", "int"), ("builtins", "str")}
#: Plain containers and numbers a fitted estimator's attributes may hold.
CONTAINER_GLOBALS = frozenset({("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int",
                                                         "float", "str", "bool", "complex", "slice", "range")})


class RefusedPickle(pickle.UnpicklingError):
    """A pickle named a global outside the allowlist."""


_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}


def _n_elements(shape: Any) -> int:
    try:
        dims = [int(d) for d in shape] if isinstance(shape, (tuple, list)) else [int(shape)]
    except (TypeError, ValueError):
        raise RefusedPickle(f"an array of shape {shape!r}") from None
    n = 1
    for d in dims:
        if d < 0:
            raise RefusedPickle(f"an array of shape {tuple(dims)}")
        n *= d
    return n


def _check_size(shape: Any, limit: int) -> None:
    n = _n_elements(shape)
    if n > limit:
        raise RefusedSize(f"an array of {n:,} elements, more than its {limit:,} bytes could hold")


def _make_unpickler(base: type, allowed: frozenset, modules: tuple[str, ...], limit: int | None = None) -> type:
    class Restricted(base):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) in _RECONSTRUCT and (module, name) in allowed and limit is not None:
                real = super().find_class(module, name)

                def reconstruct(subtype, shape, dtype):
                    _check_size(shape, limit)
                    return real(subtype, shape, dtype)

                return reconstruct
            if (module, name) in allowed:
                return super().find_class(module, name)
            if module in modules:
                obj = super().find_class(module, name)
                if isinstance(obj, type):  # classes only: never a module-level function
                    return obj
            raise RefusedPickle(f"{module}.{name}")

        def persistent_load(self, pid: Any) -> Any:
            raise RefusedPickle(f"persistent id {pid!r}")

        if limit is not None and hasattr(base, "load_build"):  # the pure-Python unpickler: check BUILD
            def load_build(self) -> None:
                obj, state = self.stack[-2], self.stack[-1]
                if isinstance(obj, np.ndarray) and isinstance(state, tuple) and len(state) >= 2:
                    _check_size(state[1], limit)
                super().load_build()

    return Restricted


class RefusedSize(RefusedPickle):
    """A pickle described an array larger than the file could hold."""


def _refused(path: Path, what: str, expected: str, size: bool = False) -> BrainVizDataError:
    if size:
        return BrainVizDataError(path, f"refused to load: the file's pickle describes {what}; not {expected} "
                                       "(a damaged or crafted file)")
    return BrainVizDataError(path, f"refused to load: the file's pickle asks for {what}, which {expected} never "
                                   "contains (loading it could run code from the file)")


def load_npy_object(path: str | Path, *, allowed: frozenset = MAPPING_GLOBALS,
                    expected: str = "an ROI mapping") -> Any:
    """The object stored in an object ``.npy`` file (or a raw pickle), without running code.

    Returns the array's single item for a 0-d object array (``np.save(f, np.array(d, dtype=object))``),
    else the array / unpickled object. Raises BrainVizDataError naming ``path``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            limit = os.fstat(f.fileno()).st_size
            # the pure-Python unpickler, so that BUILD (an array's __setstate__) is checked too
            Unpickler = _make_unpickler(pickle._Unpickler, frozenset(allowed), (), limit)  # noqa: SLF001
            magic = f.read(6)
            f.seek(0)
            if magic == b"\x93NUMPY":
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                    else np.lib.format.read_array_header_2_0  # 2.0 and 3.0 share the header layout
                shape, fortran, dtype = read_header(f)
                if not dtype.hasobject:
                    _check_size(shape, limit)
                    f.seek(0)
                    return np.load(f, allow_pickle=False)
                obj = Unpickler(f, encoding="latin1").load()
            else:
                obj = Unpickler(f, encoding="latin1").load()
    except RefusedPickle as exc:
        raise _refused(path, str(exc), expected, isinstance(exc, RefusedSize)) from None
    except BrainVizDataError:
        raise
    except Exception as exc:  # corrupt header / truncated pickle
        raise BrainVizDataError(path, f"not a readable {expected} ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        return obj.item()
    return obj


def load_joblib(path: str | Path, modules: Iterable[str], *, expected: str = "a BrainViz model") -> Any:
    """``joblib.load`` restricted to numpy arrays, plain containers and classes of ``modules``.

    Object arrays are refused (joblib would unpickle them with the unrestricted pickle).
    """
    import joblib.numpy_pickle as jnp

    path = Path(path)
    allowed = NUMPY_GLOBALS | CONTAINER_GLOBALS | {("joblib.numpy_pickle", "NumpyArrayWrapper")}
    try:
        limit = path.stat().st_size
    except OSError as exc:
        raise BrainVizDataError(path, f"cannot read {expected} ({exc.strerror})") from None
    Base = _make_unpickler(jnp.NumpyUnpickler, frozenset(allowed), tuple(modules), limit)

    class Restricted(Base):  # type: ignore[misc, valid-type]
        def load_build(self) -> None:
            obj, state = self.stack[-2], self.stack[-1]
            if isinstance(obj, jnp.NumpyArrayWrapper) and isinstance(state, dict):
                if np.dtype(state.get("dtype", np.float32)).hasobject:
                    raise RefusedPickle("a numpy object array")
                _check_size(state.get("shape", ()), limit)
            super().load_build()

    try:
        with open(path, "rb") as f:
            with jnp._validate_fileobject_and_memmap(f, str(path), None) as (fobj, _):  # noqa: SLF001
                if isinstance(fobj, str):
                    raise BrainVizDataError(path, "written by a joblib older than 0.10; retrain the model")
                return Restricted(str(path), fobj, True, mmap_mode=None).load()
    except RefusedPickle as exc:
        raise _refused(path, str(exc), expected, isinstance(exc, RefusedSize)) from None
    except BrainVizDataError:
        raise
    except Exception as exc:
        raise BrainVizDataError(path, f"not a readable {expected} ({type(exc).__name__}: {exc})") from None


def safe_message(exc: BaseException | str) -> str:
    """An error message of numpy or torch without their advice to load the file with fewer checks
    (numpy's "allow_pickle", torch's "weights_only=False" / "add_safe_globals"): BrainViz never does
    that with a file it did not write, and a user should not either. Other messages: unchanged."""
    text = str(exc)
    if "allow_pickle" in text:
        return "the file holds Python objects (an object array), which BrainViz does not load from data files"
    if "weights_only" in text or "Weights only load failed" in text or "safe_globals" in text:
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({m.group(1)})" if m else ""
        return (f"the file holds Python objects beyond tensors{what}, which BrainViz does not load "
                "(loading them could run code from the file)")
    return text


__all__ = ["load_npy_object", "load_joblib", "RefusedPickle", "MAPPING_GLOBALS", "safe_message"]
