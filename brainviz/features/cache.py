"""On-disk feature cache: computed once, opened memory-mapped.

One cache entry is a folder ``<cache_dir>/<backbone>__<weights>__n<N>__<hash>/``::

    layers.npy   (N, L, P, C) float16
    pooled.npy   (N, D) float32
    meta.json    format version, backbone, weights_id, keys, layer_names, channels,
                 grid, shapes, image-set hash, sha256 and size of both .npy files

The folder name is keyed by the backbone, the weights identity, the feature
code version and a hash of the image set (keys in row order + each file's size
and mtime, or its content with ``image_hash="content"``). The folder is built
in a temporary sibling and renamed into place (``brainviz.atomic.atomic_dir``),
so an interrupted run never leaves a half-written entry under the final name.
Opening checks meta, shapes, dtypes and file sizes (``verify="quick"``) or also
the sha256 of both files (``verify="full"``); a damaged entry is recomputed
(``on_corrupt="recompute"``, with a warning) or reported
(``on_corrupt="raise"`` -> BrainVizDataError). Files with the same content (hard links, or equal
bytes) are computed once and their rows copied (:func:`distinct_files`): e.g. one image under
several NSD ids, as in the NSD-sized benchmark (bench/make_nsd_release.py).

In a ``torch.distributed`` job (``torchrun -m precompute.distributed``) every rank calls
:func:`cached_features`; a missing entry is then built in parallel (:func:`_compute_entry_distributed`):
rank 0 makes the temporary folder, each rank extracts its contiguous share of whole batches of the
distinct images into its own part files there, rank 0 merges them into ``layers.npy`` / ``pooled.npy``,
writes ``meta.json`` and renames the folder into place, and the others wait only for that merge. The
batches are those of a one-process run, so the entry is byte for byte the one-process entry
(``tests/brainviz/encoders/test_distributed.py``); a rank that dies leaves only the temporary folder (named with rank
0's pid, removed by the next writer once that process is gone). The cache folder must be shared by
every rank (one machine, or a shared file system).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_dir
from ..errors import BrainVizDataError
from .featureset import FeatureSet
from .weights import weights_identity

#: Bump when preprocessing or layer choice changes: old cache entries are then ignored.
FEATURES_VERSION = 2  # 2: five backbone layers (issue 10); entries of other versions are not reused
LAYERS_FILE, POOLED_FILE, META_FILE = "layers.npy", "pooled.npy", "meta.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def image_set_hash(image_keys: Sequence[str], image_paths: Sequence[str | Path], mode: str = "stat") -> str:
    """Hex sha256 identifying an ordered image set.

    ``mode="stat"``: keys + file sizes + mtimes (fast; any touch of a file
    invalidates). ``mode="content"``: keys + sha256 of each file's bytes.
    """
    if len(image_keys) != len(image_paths):
        raise BrainVizDataError("image_paths", f"{len(image_keys)} keys but {len(image_paths)} paths")
    if mode not in ("stat", "content"):
        raise ValueError(f"image_hash must be 'stat' or 'content', not {mode!r}")
    h = hashlib.sha256(f"images-v1:{mode}\n".encode())
    for key, path in zip(image_keys, image_paths):
        path = Path(path)
        try:
            st = path.stat()
        except OSError as exc:
            raise BrainVizDataError(path, "image file not found") from exc
        if mode == "stat":
            token = f"{st.st_size}:{st.st_mtime_ns}"
        else:
            token = hashlib.sha256(path.read_bytes()).hexdigest()
        h.update(f"{key}\t{token}\n".encode())
    return h.hexdigest()


def cache_entry_dir(cache_dir: str | Path, backbone_name: str, weights_id: str, n_images: int, set_hash: str) -> Path:
    """Folder of the cache entry for these identities."""
    name = f"{_slug(backbone_name)}__{_slug(weights_id)}__v{FEATURES_VERSION}__n{n_images}__{set_hash[:16]}"
    return Path(cache_dir) / name


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _open_entry(entry: Path, keys: Sequence[str], set_hash: str, verify: str) -> FeatureSet:
    """Open a cache entry memory-mapped; raise BrainVizDataError if anything is off."""
    meta_path = entry / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise BrainVizDataError(meta_path, "cache metadata missing") from exc
    except (OSError, ValueError) as exc:
        raise BrainVizDataError(meta_path, f"unreadable cache metadata ({exc})") from exc
    if meta.get("format") != FEATURES_VERSION or meta.get("image_set_hash") != set_hash:
        raise BrainVizDataError(meta_path, "cache metadata does not match this image set / version")
    if list(meta.get("keys", [])) != list(keys):
        raise BrainVizDataError(meta_path, "cached image keys differ from the requested keys")
    arrays = {}
    for fname, dtype in ((LAYERS_FILE, np.float16), (POOLED_FILE, np.float32)):
        path = entry / fname
        info = meta["files"][fname]
        if not path.is_file():
            raise BrainVizDataError(path, "cache file missing")
        if path.stat().st_size != info["bytes"]:
            raise BrainVizDataError(path, f"cache file has {path.stat().st_size} bytes, expected {info['bytes']} (truncated?)")
        if verify == "full" and _sha256_file(path) != info["sha256"]:
            raise BrainVizDataError(path, "cache file checksum mismatch (corrupt)")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BrainVizDataError(path, f"unreadable cache file ({exc})") from exc
        if arr.dtype != dtype or list(arr.shape) != list(info["shape"]):
            raise BrainVizDataError(path, f"cache array is {arr.dtype}{arr.shape}, expected {np.dtype(dtype)}{tuple(info['shape'])}")
        arrays[fname] = arr
    pooled = arrays[POOLED_FILE]
    if verify in ("quick", "full") and not np.isfinite(pooled).all():
        raise BrainVizDataError(entry / POOLED_FILE, "cache contains non-finite values (corrupt)")
    return FeatureSet(
        keys=tuple(keys), layers=arrays[LAYERS_FILE], pooled=pooled, layer_names=meta["layer_names"],
        channels=meta["channels"], backbone=meta["backbone"], weights_id=meta["weights_id"], grid=tuple(meta["grid"]),
    )


def distinct_files(paths: Sequence[str | Path]) -> tuple[list[int], np.ndarray]:
    """``(firsts, inverse)``: the row of the first file of each distinct content, and for every path
    the index into ``firsts`` of its content ((n,) int64), so ``paths[firsts[inverse[i]]]`` holds the
    same bytes as ``paths[i]``.

    Same content = the same file (hard links: device and inode) or, among files of equal size,
    equal sha256 of the bytes (only files that share a size are read). A path that cannot be
    stat'ed counts as its own content (reading it fails later, with the usual message).
    """
    ident: dict[tuple, int] = {}
    by_size: dict[int, list[tuple]] = {}
    firsts: list[int] = []
    inverse = np.empty(len(paths), np.int64)
    pending: list[tuple[int, tuple]] = []  # (row, inode key) of files not yet resolved
    for i, p in enumerate(paths):
        try:
            st = Path(p).stat()
            key = ("inode", st.st_dev, st.st_ino)
        except OSError:
            key, st = ("row", i), None
        if key not in ident:
            ident[key] = -1
            if st is not None:
                by_size.setdefault(st.st_size, []).append(key)
        pending.append((i, key))
    # inode keys that share a size with another inode: merge those with equal bytes
    alias: dict[tuple, tuple] = {}
    path_of = {}
    for i, key in pending:
        path_of.setdefault(key, paths[i])
    for same_size in by_size.values():
        if len(same_size) > 1:
            seen: dict[str, tuple] = {}
            for key in same_size:
                digest = _sha256_file(Path(path_of[key]))
                alias[key] = seen.setdefault(digest, key)
    for i, key in pending:
        key = alias.get(key, key)
        if ident.get(key, -1) < 0:
            ident[key] = len(firsts)
            firsts.append(i)
        inverse[i] = ident[key]
    return firsts, inverse


class _ScatterRows:
    """Write target for :func:`~.extract.extract_into` over the distinct files: row ``j`` of the
    distinct set is written to every row of ``out`` that holds the same content."""

    def __init__(self, out: np.ndarray, inverse: np.ndarray, n_distinct: int):
        self.out, self.dtype = out, out.dtype
        order = np.argsort(inverse, kind="stable")
        self.rows = np.split(order, np.cumsum(np.bincount(inverse, minlength=n_distinct))[:-1])

    def __setitem__(self, rows: slice, values: np.ndarray) -> None:
        for j, v in zip(range(*rows.indices(len(self.rows))), values):
            self.out[self.rows[j]] = v


def _entry_meta(backbone, keys, set_hash: str, tmp: Path, shapes: dict) -> dict:
    """``meta.json`` of an entry whose ``.npy`` files are complete in ``tmp`` (fsynced, checksummed here)."""
    files = {}
    for fname in (LAYERS_FILE, POOLED_FILE):
        p = tmp / fname
        with open(p, "rb+") as f:
            os.fsync(f.fileno())
        files[fname] = {"shape": shapes[fname], "bytes": p.stat().st_size, "sha256": _sha256_file(p)}
    return {
        "format": FEATURES_VERSION,
        "backbone": backbone.name,
        "weights_id": backbone.weights_id,
        "weights_note": backbone.weights_note,
        "random_weights": bool(backbone.random_weights),
        "layer_names": list(backbone.layer_names),
        "channels": list(backbone.channels),
        "grid": list(backbone.grid),
        "image_size": backbone.image_size,
        "image_set_hash": set_hash,
        "n_images": len(keys),
        "keys": list(keys),
        "files": files,
    }


def _open_outputs(folder: Path, backbone, n: int, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """New (n, L, P, C) float16 and (n, D) float32 ``.npy`` memmaps in ``folder``."""
    layers = np.lib.format.open_memmap(
        folder / f"{prefix}{LAYERS_FILE}", mode="w+", dtype=np.float16,
        shape=(n, backbone.n_layers, backbone.n_patches, backbone.n_channels),
    )
    pooled = np.lib.format.open_memmap(folder / f"{prefix}{POOLED_FILE}", mode="w+", dtype=np.float32,
                                       shape=(n, backbone.pooled_dim))
    return layers, pooled


def _finish(tmp: Path, backbone, keys, set_hash: str, layers: np.ndarray, pooled: np.ndarray) -> None:
    shapes = {LAYERS_FILE: list(layers.shape), POOLED_FILE: list(pooled.shape)}
    layers.flush()
    pooled.flush()
    del layers, pooled
    (tmp / META_FILE).write_text(json.dumps(_entry_meta(backbone, keys, set_hash, tmp, shapes), indent=1))


def _compute_entry(entry: Path, backbone, keys, paths, set_hash: str, batch_size: int, progress: bool,
                   num_threads: int | None = None) -> None:
    from .extract import extract_into

    n = len(keys)
    with atomic_dir(entry) as tmp:
        layers, pooled = _open_outputs(tmp, backbone, n)
        if n:  # each distinct file content once (e.g. one image under several NSD ids)
            firsts, inverse = distinct_files(paths)
            if len(firsts) == n:
                extract_into(backbone, paths, layers, pooled, batch_size=batch_size, progress=progress,
                             num_threads=num_threads)
            else:
                extract_into(backbone, [paths[i] for i in firsts], _ScatterRows(layers, inverse, len(firsts)),
                             _ScatterRows(pooled, inverse, len(firsts)), batch_size=batch_size,
                             progress=progress, num_threads=num_threads)
        _finish(tmp, backbone, keys, set_hash, layers, pooled)


def share_of_batches(n: int, batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``n`` that ``rank`` extracts: a contiguous run of whole batches of
    ``batch_size`` (the batches of a one-process run, so every image goes through the network in the
    same batch either way), the batches dealt as evenly as possible."""
    n_batches = -(-n // batch_size) if n else 0
    b0, b1 = (rank * n_batches) // world_size, ((rank + 1) * n_batches) // world_size
    return min(n, b0 * batch_size), min(n, b1 * batch_size)


def _compute_entry_distributed(entry: Path, backbone_args: dict, keys, paths, set_hash: str, batch_size: int,
                               progress: bool, num_threads: int | None, info) -> None:
    """Build a cache entry with every rank of the process group (module docstring)."""
    import torch.distributed as dist

    from .extract import extract_into
    from .registry import get_backbone

    n = len(keys)
    rank, world = info.rank, info.world_size
    backbone = get_backbone(**backbone_args)

    def part(r: int) -> str:
        return f"part{r:05d}."

    def extract_share(tmp: Path, firsts: list[int]) -> None:
        start, stop = share_of_batches(len(firsts), batch_size, rank, world)
        if stop > start:
            layers, pooled = _open_outputs(tmp, backbone, stop - start, part(rank))
            extract_into(backbone, [paths[i] for i in firsts[start:stop]], layers, pooled, batch_size=batch_size,
                         progress=progress, num_threads=num_threads)
            layers.flush()
            pooled.flush()
            del layers, pooled

    if rank == 0:
        with atomic_dir(entry) as tmp:
            firsts, inverse = distinct_files(paths) if n else ([], np.zeros(0, np.int64))
            box = [(str(tmp), list(firsts))]
            dist.broadcast_object_list(box, src=0)
            extract_share(tmp, firsts)
            dist.barrier()  # every share is written
            layers, pooled = _open_outputs(tmp, backbone, n)
            m = len(firsts)
            scatter = m != n
            L_out = _ScatterRows(layers, inverse, m) if scatter else layers
            P_out = _ScatterRows(pooled, inverse, m) if scatter else pooled
            for r in range(world):
                start, stop = share_of_batches(m, batch_size, r, world)
                if stop <= start:
                    continue
                pre = part(r)
                pl = np.load(tmp / f"{pre}{LAYERS_FILE}", mmap_mode="r")
                pp = np.load(tmp / f"{pre}{POOLED_FILE}", mmap_mode="r")
                for i in range(0, stop - start, 1024):  # bounded memory
                    j = min(stop - start, i + 1024)
                    L_out[start + i:start + j] = pl[i:j]
                    P_out[start + i:start + j] = pp[i:j]
                del pl, pp
                (tmp / f"{pre}{LAYERS_FILE}").unlink()
                (tmp / f"{pre}{POOLED_FILE}").unlink()
            _finish(tmp, backbone, keys, set_hash, layers, pooled)
        dist.barrier()  # the entry is in place
    else:
        box = [None]
        dist.broadcast_object_list(box, src=0)
        tmp_name, firsts = box[0]
        extract_share(Path(tmp_name), firsts)
        dist.barrier()  # every share is written
        dist.barrier()  # rank 0 merged them and renamed the entry into place


def _process_group():
    """The torch.distributed rank and world size (:func:`brainviz.ddp.dist_info`); one process when torch
    is not even imported (opening an existing entry needs numpy only)."""
    if "torch.distributed" not in sys.modules:
        from types import SimpleNamespace

        return SimpleNamespace(rank=0, world_size=1, is_main=True, distributed=False)
    from ..ddp import dist_info

    return dist_info()


def cached_features(
    backbone_name: str,
    image_keys: Sequence[str],
    image_paths: Sequence[str | Path],
    cache_dir: str | Path,
    weights: str | Path | None = None,
    batch_size: int = 32,
    *,
    device=None,
    seed: int = 0,
    progress: bool = True,
    image_hash: str = "stat",
    verify: str = "quick",
    on_corrupt: str = "recompute",
    num_threads: int | None = None,
) -> FeatureSet:
    """Features of the images, from the on-disk cache (computed and stored on first use).

    Parameters
    ----------
    backbone_name, weights, seed, device
        As for :func:`get_backbone`; the backbone is only loaded on a cache miss.
    image_keys : sequence of str
        Unique image keys (e.g. ``"nsd-02950"``), the row order of the result.
    image_paths : sequence of path
        The image file of each key.
    cache_dir : path
        Folder holding cache entries (e.g. ``brainviz.paths.DEFAULT_CACHE_DIR / "features"``).
    image_hash : {"stat", "content"}
        How files enter the cache key (see :func:`image_set_hash`).
    verify : {"quick", "full", "none"}
        Checks on opening an existing entry (see module docstring).
    on_corrupt : {"recompute", "raise"}
    num_threads : int, optional
        torch CPU threads while computing (None: torch's default).

    Returns
    -------
    FeatureSet
        ``layers`` (N, L, P, C) float16 and ``pooled`` (N, D) float32, read-only memmaps.
    """
    keys = [str(k) for k in image_keys]
    paths = [Path(p) for p in image_paths]
    if len(set(keys)) != len(keys):
        raise BrainVizDataError("image_keys", "image keys are not unique")
    if verify not in ("quick", "full", "none") or on_corrupt not in ("recompute", "raise"):
        raise ValueError("verify must be quick/full/none and on_corrupt recompute/raise")
    set_hash = image_set_hash(keys, paths, image_hash)
    wid = weights_identity(backbone_name, weights, seed)
    entry = cache_entry_dir(cache_dir, backbone_name, wid, len(keys), set_hash)
    info = _process_group()
    problem: BrainVizDataError | str | None = None
    if entry.exists() and info.is_main:  # in a distributed job rank 0 looks, and the others follow
        try:
            fs = _open_entry(entry, keys, set_hash, verify)
            if not info.distributed:
                return fs
        except BrainVizDataError as exc:
            problem = exc
    if info.distributed:  # open it, or build it together
        import torch.distributed as dist

        box = [(entry.exists(), str(problem) if problem else None) if info.is_main else None]
        dist.broadcast_object_list(box, src=0)
        exists, found = box[0]
        if exists and found is None:
            return fs if info.is_main else _open_entry(entry, keys, set_hash, verify)
        problem = problem if info.is_main else found
    if problem is not None:
        if on_corrupt == "raise":
            raise problem if isinstance(problem, BrainVizDataError) else BrainVizDataError(entry, problem)
        if info.is_main:
            warnings.warn(f"feature cache entry is damaged, recomputing: {problem}", RuntimeWarning, stacklevel=2)
    backbone_args = dict(name=backbone_name, device=device, weights=weights, seed=seed)
    if info.distributed:
        _compute_entry_distributed(entry, backbone_args, keys, paths, set_hash, batch_size,
                                   progress and info.is_main, num_threads, info)
        return _open_entry(entry, keys, set_hash, verify)
    from .registry import get_backbone

    backbone = get_backbone(**backbone_args)
    _compute_entry(entry, backbone, keys, paths, set_hash, batch_size, progress, num_threads)
    return _open_entry(entry, keys, set_hash, verify)
