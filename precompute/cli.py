"""Command line: a thin layer over :mod:`brainviz` (argument parsing and messages only).

Every subcommand turns a :class:`~brainviz.errors.BrainVizDataError` into a
one-line message on stderr and exit code 2 (no traceback).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from brainviz.errors import BrainVizDataError
from brainviz.paths import DEFAULT_DEMO_DIR


def _cmd_demo_brain(args: argparse.Namespace) -> int:
    from brainviz.demo_brain import build_demo_brain

    t0 = time.perf_counter()
    out = build_demo_brain(args.out, data_root=args.data_root, seed=args.seed,
                           max_images=args.max_images, progress=True)
    print(f"demo brain (SIMULATED) written to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _constant_vertices(sub) -> int:
    """Vertices of ``sub`` whose training response is the same in every image (r undefined); raises
    BrainVizDataError when that is every vertex (nothing to learn from)."""
    from brainviz.data.streaming import streamed_vertex_stats

    n_const, n_all = 0, 0
    for h in ("lh", "rh"):
        stats = streamed_vertex_stats(sub.hemi_responses("train", h))
        n_const += int((stats["min"] == stats["max"]).sum())
        n_all += len(stats["min"])
    if n_all and n_const == n_all:
        raise BrainVizDataError(sub._fmri_path("train", "lh").parent,  # noqa: SLF001
                                "every vertex has the same training response in every image (constant data): "
                                "there is nothing to learn from; check how the files were written")
    return n_const


def _cmd_inspect(args: argparse.Namespace) -> int:
    from brainviz.pipeline import Context, PipelineConfig

    ctx = Context(PipelineConfig(dataset=args.dataset, data_root=args.data_root, noise_ceiling=args.noise_ceiling))
    ds = ctx.dataset
    constant = {name: _constant_vertices(s) for name, s in ds.subjects.items()}
    kind = "SIMULATED (demo brain)" if ds.simulated else "real (no manifest marks it simulated)"
    print(f"dataset: {ds.path}")
    print(f"data:    {kind}")
    for s in ds.subjects.values():
        info = s.summary()
        print(f"\n{info['subject']}  surface={info['surface']}  source={','.join(info['datasets'])}")
        print(f"  images: train={info['n_train']}  test={info['n_test']}"
              f"  (test responses: {'yes' if info['test_responses'] else 'no'};"
              f" repetitions: {'yes' if info['repeats'] else 'no'})")
        print(f"  vertices: lh={info['vertices']['lh']}  rh={info['vertices']['rh']}")
        if constant[s.name]:
            print(f"  WARNING: {constant[s.name]} vertices have the same training response in every image: "
                  "their accuracy (r) is undefined and they are left out of medians")
        for cls, names in info["rois"].items():
            print(f"  {cls:15s} {', '.join(names) if names else '(none)'}")
    print("\nOK: every file has the expected shape, dtype and image count.\n")
    from .stages import print_plan

    import textwrap

    for s in ds.subjects:
        _, source = ctx.noise_ceiling(s, "train")
        print(textwrap.fill(f"reliability of {s}: {source}", 118, subsequent_indent="    "))
    print_plan(ctx)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m precompute",
        description="BrainViz offline precompute: build the demo brain, extract features, train "
                    "encoders and write every analysis into one DuckDB store for the app.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo-brain", help="build the SIMULATED demo brain in the Algonauts 2023 layout")
    d.add_argument("--out", type=Path, default=DEFAULT_DEMO_DIR, help=f"output folder (default {DEFAULT_DEMO_DIR})")
    d.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    d.add_argument("--data-root", type=Path, default=None,
                   help="shared data folder (default: $BRAINVIZ_DATA, else ../shared/data)")
    d.add_argument("--max-images", type=int, default=None, help="use only this many images (quick builds)")
    d.set_defaults(func=_cmd_demo_brain)

    i = sub.add_parser("inspect", help="validate a dataset in the Algonauts 2023 layout and print what it holds")
    i.add_argument("dataset", type=Path, help="folder holding subjNN/ folders (or one subject folder)")
    i.add_argument("--data-root", type=Path, default=None,
                   help="shared data folder (default: $BRAINVIZ_DATA, else ../shared/data)")
    i.add_argument("--noise-ceiling", type=Path, default=None, metavar="DIR",
                   help="per-vertex noise ceilings subjNN/{lh,rh}.npy in percent (as for the pipeline)")
    i.set_defaults(func=_cmd_inspect)

    from . import stages  # noqa: F401  (registers the pipeline subcommands when available)
    stages.add_subcommands(sub)
    from . import predict  # `predict`: run an image folder / zip through a trained encoder

    predict.add_subcommand(sub)
    return p


def _os_error_line(exc: OSError) -> str:
    """'error: PATH: what happened' from an OSError, without a traceback."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc)
    return f"error: {where}: {what}" if where else f"error: {what}"


def main(argv: list[str] | None = None) -> int:
    from .checks import Terminated, install_sigterm, preflight, restore_sigterm

    args = build_parser().parse_args(argv)
    previous = install_sigterm()
    try:
        preflight(args)  # --ue, output folders: fail before any work
        return int(args.func(args) or 0)
    except BrainVizDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(_os_error_line(exc), file=sys.stderr)
        return 2
    except Terminated:
        print("terminated (SIGTERM): nothing was half-written (outputs are renamed into place only when "
              "complete)", file=sys.stderr)
        return _end_jobs(143)
    except KeyboardInterrupt:
        print("interrupted: nothing was half-written (outputs are renamed into place only when complete)",
              file=sys.stderr)
        return _end_jobs(130)
    finally:
        restore_sigterm(previous)


def _end_jobs(code: int) -> int:
    """``code``, or end the process now with it when a job thread is still inside torch / BLAS
    (leaving the interpreter then aborts natively with exit code 134; :mod:`brainviz.jobs`)."""
    import os

    from brainviz.jobs import stragglers

    if stragglers():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
