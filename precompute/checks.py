"""Checks that run before any pipeline work, so a bad flag or an unwritable output fails in
the first second with one line (exit code 2) instead of a traceback after minutes.

* :func:`parse_ue` - ``--ue`` must be a JSON object whose keys are Universal-Encoder
  settings with values of the right type and range.
* :func:`check_outputs` - the store path is not a folder and its folder, the work folder
  and the cache folder can be created and written.
* :func:`install_sigterm` - SIGTERM is handled like Ctrl-C (temp files removed, exit 143).
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import signal
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

from brainviz.errors import BrainVizDataError

#: Settings ``--ue`` may not change (they come from other flags or from the run itself).
_UE_RESERVED = {"seed": "--seed", "progress": "the progress display"}
#: Largest value ``--ue`` accepts per setting (larger ones would run for days or exhaust memory;
#: the report's GPU settings are far below: 50 epochs, 5,000 voxels per image, C = 128).
UE_MAX = {"embed_dim": 4096, "proj_dim": 4096, "mlp_hidden": 65536, "n_epochs": 10_000, "transfer_epochs": 10_000,
          "voxel_updates": 1_000_000, "min_epochs": 10_000, "transfer_updates": 1_000_000, "batch_images": 4096,
          "batch_voxels": 1_000_000,
          "lr": 10.0, "attn_lr": 10.0, "embed_lr": 10.0, "transfer_lr": 10.0, "weight_decay": 100.0,
          "embed_init_std": 100.0, "pos_init_std": 100.0, "patience": 10_000, "predict_batch_images": 100_000,
          "predict_batch_voxels": 10_000_000}
#: Most permutations of ``--n-perm`` (each keeps an image order in memory: 10,000 x 1,000 images = 80 MB).
MAX_N_PERM = 100_000


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so it unwinds exactly like Ctrl-C."""


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        return isinstance(value, list)
    return True  # a type this check does not know: left to UniversalConfig.validate


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def parse_ue(text: str | None) -> dict:
    """The ``--ue`` overrides as a dict, or BrainVizDataError('--ue', what is wrong)."""
    if text is None or text == "":
        return {}
    from dataclasses import fields

    from brainviz.encoders.universal import UniversalConfig

    try:
        over = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BrainVizDataError("--ue", f"not valid JSON ({exc.msg} at character {exc.pos}); "
                                        "write e.g. --ue '{\"n_epochs\": 10}' (keys in double quotes)") from None
    if not isinstance(over, dict):
        raise BrainVizDataError("--ue", f"expected a JSON object like {{\"n_epochs\": 10}}, got a JSON "
                                        f"{ {list: 'list', str: 'string', int: 'number', float: 'number', bool: 'boolean'}.get(type(over), type(over).__name__) }")
    hints = typing.get_type_hints(UniversalConfig)
    known = [f.name for f in fields(UniversalConfig) if f.name not in _UE_RESERVED]
    for key, value in over.items():
        if key in _UE_RESERVED:
            raise BrainVizDataError("--ue", f"{key!r} is set by {_UE_RESERVED[key]}, not by --ue")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BrainVizDataError("--ue", f"unknown setting {key!r}{hint}; known: {', '.join(known)}")
        if not _type_ok(value, hints[key]):
            raise BrainVizDataError("--ue", f"{key} must be {_type_name(hints[key])}, got {json.dumps(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BrainVizDataError("--ue", f"{key} must be a finite number, got {json.dumps(value)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key in UE_MAX and value > UE_MAX[key]:
            raise BrainVizDataError("--ue", f"{key} = {value:g} is larger than BrainViz accepts ({UE_MAX[key]:g})")
    try:
        UniversalConfig(**over).validate()
    except BrainVizDataError as exc:
        raise BrainVizDataError("--ue", f"{str(exc.path).removeprefix('config.')}: {exc.problem}") from None
    return over


def _probe_writable(folder: Path, what: str) -> None:
    """Create ``folder`` (and parents) and write/remove a probe file there, or raise naming it."""
    if folder.exists() and not folder.is_dir():
        raise BrainVizDataError(folder, f"{what} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BrainVizDataError(folder, f"{what} is not writable ({exc.strerror})") from None


def check_outputs(args: argparse.Namespace) -> None:
    """Check the output paths of a pipeline command before it starts work."""
    store = getattr(args, "store", None)
    if store is not None and args.command in ("analyze", "all"):
        store = Path(store)
        if store.is_dir():
            raise BrainVizDataError(store, "--store is a folder; give the path of a store file, "
                                           "e.g. data/brainviz.duckdb")
        _probe_writable(store.parent, "the store's folder")
    for attr, what in (("work_dir", "the work folder (--work-dir)"), ("cache_dir", "the feature cache (--cache-dir)")):
        folder = getattr(args, attr, None)
        if folder is not None:
            _probe_writable(Path(folder), what)


#: The subcommands :func:`preflight` checks.
PIPELINE_COMMANDS = ("features", "train", "evaluate", "analyze", "all")


def preflight(args: argparse.Namespace) -> None:
    """Every check of a pipeline command (:data:`PIPELINE_COMMANDS`); other commands pass unchecked."""
    if getattr(args, "command", None) not in PIPELINE_COMMANDS:
        return
    if hasattr(args, "ue"):
        args.ue_overrides = parse_ue(args.ue)
    check_outputs(args)


def install_sigterm():
    """Handle SIGTERM like Ctrl-C: raise :class:`Terminated` (a KeyboardInterrupt) in the main thread.

    Returns the previous handler (give it to :func:`restore_sigterm` when the command ends, so a
    caller running ``main()`` in-process, e.g. a test, keeps its own handling), or None.
    """
    def handler(signum, frame):  # noqa: ARG001
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        return None


def restore_sigterm(previous) -> None:
    """Put back the SIGTERM handler :func:`install_sigterm` replaced."""
    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)
        except ValueError:
            pass
