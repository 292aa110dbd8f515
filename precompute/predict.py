"""``python -m precompute predict``: run an image folder or zip through a trained encoder.

Writes into ``--out`` (built in a temporary folder, renamed into place when complete)::

    predictions.npy        float32 (n_images, n_vertices): predicted response of every vertex
    images.csv             row, file (the row order of predictions.npy), notes (conversions made)
    bad_files.csv          file, reason: files listed and skipped
    roi_means.csv          mean predicted response per ROI group (rows = images.csv order)
    lh.mean.func.gii       mean predicted map over the images, per hemisphere (rh. too)
    lh.predicted.func.gii  one data array per image, named by file (rh. too; skipped when huge)
    summary.json           model, subject, backbone and its weights' identity, surface, counts, device, timings
    .brainviz-predict.json the marker of a folder this command wrote: the files it wrote

The backbone gets the weights the store's run trained the encoder on (the recorded file, or
``--weights FILE`` in its place with the same content hash); a missing or different file is an
error naming it (exit code 2), never a silent switch to other weights.

An existing ``--out`` folder is replaced only when it is one this command wrote and holds
nothing else: its marker lists every file in it. Any other folder (a project folder, an
output with notes or figures added) is refused with exit code 2, and nothing in it changes.

A thin layer over :mod:`brainviz.insilico` and :mod:`brainviz.export`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from brainviz.errors import BrainVizDataError
from brainviz.names import UE_KINDS
from brainviz.paths import DEFAULT_STORE

#: Per-image GIfTI maps are written while n_images x n_surface_vertices stays below this (200 MB float32).
MAX_PER_IMAGE_GIFTI_VALUES = 50_000_000


def _pick_model(store, wanted: str) -> str:
    """A model id from ``--model``: a model id of the store, or a kind (ue_multi, ...)."""
    models = store.models()
    if models.empty:
        raise BrainVizDataError(store.path, "the store holds no trained models (run `python -m precompute all`)")
    if wanted in set(models["model_id"]):
        row = models[models["model_id"] == wanted].iloc[0]
    elif wanted in set(models["kind"]):
        from brainviz.live import pick_live_model

        mid = pick_live_model(models[models["kind"] == wanted])
        if mid is None:
            raise BrainVizDataError("--model", f"no {wanted} model with a checkpoint in {store.path}")
        row = models[models["model_id"] == mid].iloc[0]
    else:
        ue = sorted(models.loc[models["kind"].isin(UE_KINDS), "model_id"])
        raise BrainVizDataError("--model", f"{wanted!r} is not a model id or kind of this store; "
                                           f"Universal-Encoder models: {', '.join(ue) or 'none'}")
    if row["kind"] not in UE_KINDS:
        raise BrainVizDataError("--model", f"{row['model_id']!r} is a {row['kind']} model; predict needs a "
                                           f"Universal-Encoder model ({', '.join(UE_KINDS)})")
    return str(row["model_id"])


#: The file that marks a folder as written by ``predict``: JSON {"written_by", "files": [names]}.
MARKER = ".brainviz-predict.json"


def _foreign_entries(out: Path) -> list[str] | None:
    """What in an existing ``--out`` folder this command did not write (sorted names), or None when
    the folder has no valid marker (so nothing in it is known to be ours)."""
    try:
        marker = json.loads((out / MARKER).read_text())
        ours = set(marker["files"]) if marker.get("written_by") == "brainviz predict" else None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if ours is None or not all(isinstance(f, str) for f in ours):
        return None
    return sorted(p.name for p in out.iterdir()
                  if p.name != MARKER and (p.name not in ours or p.is_dir() or p.is_symlink()))


def _check_out(out: Path) -> None:
    """``--out`` is new, empty, or a folder this command wrote that holds nothing else; else refuse."""
    if out.is_symlink():
        raise BrainVizDataError(out, "--out is a symbolic link; give a real folder path")
    if out.exists() and not out.is_dir():
        raise BrainVizDataError(out, "--out exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    foreign = _foreign_entries(out)
    if foreign is None:
        raise BrainVizDataError(out, "--out is a non-empty folder that predict did not write (no "
                                     f"{MARKER}); nothing was changed: choose a new folder")
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise BrainVizDataError(out, f"--out holds files predict did not write ({', '.join(foreign[:3])}{more}); "
                                     "nothing was changed: move them or choose a new folder")


def _check_args(args: argparse.Namespace) -> None:
    if not Path(args.images).expanduser().exists():
        raise BrainVizDataError(args.images, "--images: no such folder or zip file")
    if args.batch_size < 1:
        raise BrainVizDataError("--batch-size", f"must be >= 1, got {args.batch_size}")
    _check_out(Path(args.out).expanduser())
    if not Path(args.store).expanduser().is_file():
        raise BrainVizDataError(args.store, "no store here; build it with `python -m precompute all` or pass --store")


def _write_csv(df, path: Path) -> None:
    df.to_csv(path, index=False)


def _cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm.auto import tqdm

    from brainviz import export, insilico
    from brainviz.rois import roi_groups
    from brainviz.atomic import atomic_dir
    from brainviz.live import LivePredictor, live_model_of, store_weights
    from brainviz.store.reader import Store

    _check_args(args)
    entries, problems = insilico.list_image_files(args.images)
    store = Store(args.store)
    model_id = _pick_model(store, args.model)
    ck, backbone, model_id = live_model_of(store, model_id)
    from brainviz.gpu import resolve_device

    try:
        device = resolve_device(args.device, strict=True)
    except BrainVizDataError as exc:
        raise BrainVizDataError("--device", exc.problem) from None
    # the backbone weights of the run that trained the encoder (the recorded file, or --weights in its
    # place with the same content hash); a missing or different file: one line naming it, exit code 2
    weights, seed, weights_id = store_weights(store, backbone, model_id, override=args.weights,
                                              hint="pass --weights FILE with the file the encoder was trained on")
    t_load = time.perf_counter()
    predictor = LivePredictor(ck, backbone, device=device, model_id=model_id, cpu_threads=None, weights=weights,
                              seed=seed, weights_id=weights_id)
    t_load = time.perf_counter() - t_load
    subjects = list(predictor.subjects)
    subject = args.subject or ("subj01" if "subj01" in subjects else subjects[0])
    if subject not in subjects:
        raise BrainVizDataError("--subject", f"{subject!r} is not a subject of model {model_id!r} ({', '.join(subjects)})")
    vertices = store.vertices(subject)
    surface = export.store_surface(store, subject)

    print(f"predict: {len(entries)} files from {args.images} · model {model_id} · {subject} · {surface} · "
          f"device {predictor.device} (model loaded in {t_load:.1f} s)", file=sys.stderr)
    bar = tqdm(total=len(entries), desc="predict", unit="img", disable=args.no_progress)

    def progress(done, total):
        bar.update(done - bar.n)

    res = insilico.predict_entries(predictor, entries, [subject], batch_size=args.batch_size, progress=progress,
                                   bad=problems)
    bar.close()
    pred = res.responses[subject]
    if res.n == 0:
        for name, reason in res.bad[:5]:
            print(f"  skipped {name}: {reason}", file=sys.stderr)
        raise BrainVizDataError(args.images, f"none of the {len(entries)} files is a usable image")
    if pred.shape[1] != len(vertices):
        raise BrainVizDataError(store.path, f"the model predicts {pred.shape[1]} vertices for {subject}, the store has "
                                            f"{len(vertices)}: store and checkpoint do not belong together")
    simulated = bool(store.simulated)
    meta = {"brainviz:model": model_id, "brainviz:subject": subject,
            "brainviz:simulated": str(simulated).lower()}
    out = Path(args.out).expanduser()
    t_write = time.perf_counter()
    with atomic_dir(out) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # a normal folder once renamed (mkdtemp makes it private)
        np.save(tmp / "predictions.npy", pred.astype(np.float32))
        _write_csv(pd.DataFrame({"row": np.arange(res.n), "file": res.names,
                                 "notes": ["; ".join(res.notes.get(n, [])) for n in res.names]}), tmp / "images.csv")
        _write_csv(pd.DataFrame(res.bad, columns=["file", "reason"]), tmp / "bad_files.csv")
        groups = roi_groups(vertices, include_planted_food=False)
        insilico.roi_means_table(pred, res.names, groups).reset_index().rename(columns={"image": "file"}) \
            .to_csv(tmp / "roi_means.csv", index=False)
        written = ["predictions.npy", "images.csv", "bad_files.csv", "roi_means.csv"]
        mean = export.SurfaceMap.from_vertices(pred.mean(0), vertices, surface, name=f"mean predicted response "
                                               f"({res.n} images, {model_id}, {subject})", meta=meta)
        written += [p.name for p in export.save_gifti(mean, tmp, "mean")]
        n_surf = export.n_surface_vertices(surface)
        per_image = res.n * n_surf <= MAX_PER_IMAGE_GIFTI_VALUES
        if per_image:
            maps = export.SurfaceMap.from_vertices(pred, vertices, surface, name="predicted",
                                                   map_names=list(res.names), meta=meta)
            written += [p.name for p in export.save_gifti(maps, tmp, "predicted")]
        summary = {"model": model_id, "subject": subject, "backbone": backbone,
                   "backbone_weights": predictor.backbone.weights_id, "surface": surface,
                   "simulated": simulated, "store": str(store.path), "images": str(args.images),
                   "n_images": res.n, "n_bad": len(res.bad), "n_vertices": int(pred.shape[1]),
                   "device": res.device, "batch_size": args.batch_size,
                   "seconds_model_load": round(t_load, 2), "seconds_predict": round(res.seconds, 2),
                   "images_per_second": round(res.images_per_second, 2),
                   "per_image_gifti": per_image, "files": written + ["summary.json"]}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
        (tmp / MARKER).write_text(json.dumps({"written_by": "brainviz predict", "files": summary["files"]}))
        _check_out(out)  # again just before the swap: nothing was added to the old folder meanwhile
    t_write = time.perf_counter() - t_write
    for name, reason in res.bad:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    print(f"{res.n} images predicted, {len(res.bad)} skipped, in {res.seconds:.1f} s "
          f"({res.images_per_second:.1f} images/s on {res.device}); outputs written in {t_write:.1f} s to {out}"
          + ("" if per_image else " (per-image GIfTI skipped: too large; predictions.npy has every image)")
          + (" — SIMULATED model" if simulated else ""))
    return 0


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    """Register ``predict`` on the CLI's subparsers."""
    p = sub.add_parser("predict", help="predict every vertex's response to a folder or zip of images",
                       description="Run every image of a folder (recursively) or a zip through a trained "
                                   "Universal-Encoder model of the store; bad files are listed and skipped.")
    p.add_argument("--images", type=Path, required=True, help="folder or .zip of images (PNG, JPEG, GIF, WebP, BMP, TIFF)")
    p.add_argument("--out", type=Path, required=True, help="output folder (written atomically)")
    p.add_argument("--model", default="ue_multi", help="model id or kind (default ue_multi)")
    p.add_argument("--subject", default=None, help="subject to predict (default subj01, else the model's first)")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"DuckDB store (default {DEFAULT_STORE})")
    p.add_argument("--weights", default=None,
                   help="backbone weights file, when it is no longer where the store's run had it (its content "
                        "must be the file the encoder was trained on; default: the file the store records)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto = cuda when available, else cpu")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)
