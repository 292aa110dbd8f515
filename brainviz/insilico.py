"""In-silico experiments: run image sets through a trained encoder and compare the predicted maps.

What a neuroscientist does with an encoder instead of a scanner: predict every vertex's
response to two stimulus sets (say faces and everything else), then map where set A
drives the cortex more than set B.

Pieces (pure functions; the CLI ``python -m precompute predict`` and the app page
"In-silico experiment" are thin layers over them):

* **Image sets** — :func:`list_image_files` / :func:`image_entries_from_uploads` list the files of a
  folder, a zip or an upload; :func:`iter_decoded` decodes them with
  :func:`brainviz.live.validate_image` (the same checks as live prediction), yielding the
  good images and the bad files with the reason. Every file or zip member that is not used is
  listed with its reason (hidden, ``__MACOSX``, an unsafe ``..`` path, too large, damaged in the
  zip, not an image ...); only directory entries are passed over. Sizes are checked before
  anything is read: a zip's member count and central directory from its end record (before
  they are parsed), each member's size from its header (zip bombs), each file's size on disk.
  Names are shown with control characters escaped (``\\x01``).
* **Upload bounds** (the app page, per set; a session holds two sets): :data:`MAX_SET_BYTES`
  uploaded, :data:`MAX_UPLOAD_ZIP_MEMBERS` members per zip, :data:`MAX_UPLOAD_IMAGES` images
  and :data:`MAX_SET_DECODED_PIXELS` decoded pixels; what is over a bound is listed, not used.
* **Prediction** — :func:`predict_entries` runs a :class:`~brainviz.live.LivePredictor` over
  decoded images in batches (CPU or GPU) with a progress callback; :func:`predict_store_images`
  predicts images the store knows (NSD) from stored predictions, the pipeline's feature
  cache, or the image files, in that order.
* **Tag sets** — :func:`tag_sets`: NSD images by category (e.g. faces vs everything else),
  excluding a subject's training images.
* **Statistics** — :func:`contrast`: per-vertex Welch t, Welch-Satterthwaite df, two-sided p,
  effect size (Cohen's d with the average variance, the effect size that goes with Welch's
  test), Benjamini-Hochberg FDR (``scipy.stats.false_discovery_control``) at a chosen q.
* **Summaries** — :func:`roi_table` (per ROI group), :func:`top_images` (by mean predicted
  response in an ROI), :func:`group_rdms` (predicted RDM per ROI group with extreme pairs, via
  :mod:`brainviz.rsa`).

All response arrays are (n_images, n_vertices) float32 in the store's vertex order (lh first).
Predictions of a model trained on the SIMULATED demo brain are simulated too; say so.
"""
from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import BrainVizDataError

#: Most images per uploaded set on the app page (prediction costs ~20-50 ms per image on CPU).
MAX_UPLOAD_IMAGES = 200
#: Most images per set for NSD images by tag (their predictions are cached per server).
MAX_STORE_IMAGES = 1000
#: Largest zip accepted (bytes, compressed) and largest total uncompressed size of its images.
MAX_ZIP_BYTES = 200 * 1024 * 1024
MAX_ZIP_UNCOMPRESSED = 1024 * 1024 * 1024
#: Most members of a zip read from disk (``precompute predict``); a zip's end record is checked first.
MAX_ZIP_MEMBERS = 100_000
#: App page bounds per image set (a session holds two sets): bytes uploaded (files and zips;
#: larger sets: ``python -m precompute predict``), members of one uploaded zip, pixels decoded
#: (a JPEG counts at the reduced scale it is decoded at: at most ~1-4 megapixels).
MAX_SET_BYTES = 100 * 1024 * 1024
MAX_UPLOAD_ZIP_MEMBERS = 1000
MAX_SET_DECODED_PIXELS = 1_000_000_000
#: Minimum images per set for a t-test.
MIN_IMAGES = 3
DEFAULT_Q = 0.05

ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------- image sets
@dataclass(frozen=True)
class ImageEntry:
    """One candidate image file: a display name and a way to read its bytes.

    ``size`` is the (uncompressed) byte size when known before reading (folders, zips).
    """

    name: str
    read: Callable[[], bytes]
    size: int | None = None


def printable(name: str) -> str:
    """``name`` with control and other non-printable characters escaped (``\\x01``), for tables,
    GIfTI map names and messages (XML cannot hold them)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(name))


def _unused_reason(name: str) -> str | None:
    """Why a file / member ``name`` (relative, '/'-separated) is not read, or None to read it."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts or (parts and parts[0].endswith(":")):
        return "unsafe path (absolute or with '..'); not read"
    if "__MACOSX" in parts:
        return "macOS metadata (__MACOSX folder), not an image"
    if any(p.startswith(".") for p in parts if p):
        return "hidden file (a name starting with '.'), not read"
    return None


def _mb_text(n: float) -> str:
    from .live import MB

    return f"{n / MB:.1f} MB"


def _read_file(path: Path, limit: int) -> bytes:
    """A file's bytes; refused from its size on disk (and never more than ``limit`` + 1 bytes read)."""
    size = path.stat().st_size
    if size > limit:
        raise BrainVizDataError(path.name, f"the file is {_mb_text(size)}; the limit is {_mb_text(limit)}")
    with open(path, "rb") as f:
        out = f.read(limit + 1)
    if len(out) > limit:
        raise BrainVizDataError(path.name, f"the file is over {_mb_text(limit)}; the limit is {_mb_text(limit)}")
    return out


def list_image_files(source: str | Path, max_images: int | None = None) -> tuple[list[ImageEntry], list[tuple[str, str]]]:
    """The files of a folder (recursively) or a zip, sorted by name.

    Every file is an entry (files that are not images are rejected later, by :func:`iter_decoded`,
    with the reason) except hidden files, ``__MACOSX`` folders and unsafe zip paths, which are
    listed in ``problems`` with the reason. Files are read only when used, after a size check.

    Returns
    -------
    (entries, problems): ``problems`` lists (name, reason) of files not read (hidden, unsafe, zip
    members too large from their header) and files beyond ``max_images``.

    Raises
    ------
    BrainVizDataError when ``source`` does not exist, is not a folder or zip, is an unreadable
    or oversized zip, or holds no files.
    """
    from .live import MAX_BYTES

    src = Path(source).expanduser()
    problems: list[tuple[str, str]] = []
    if src.is_dir():
        entries = []
        for p in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = p.relative_to(src).as_posix()
            why = _unused_reason(rel)
            if why is not None:
                problems.append((printable(rel), why))
            else:
                entries.append(ImageEntry(printable(rel), (lambda p=p: _read_file(p, MAX_BYTES)), p.stat().st_size))
    elif src.is_file():
        if not zipfile.is_zipfile(src):
            raise BrainVizDataError(src, "not a folder or a zip file")
        if src.stat().st_size > MAX_ZIP_BYTES:
            raise BrainVizDataError(src, f"zip is {src.stat().st_size / 1e6:.0f} MB; the limit is "
                                         f"{MAX_ZIP_BYTES / 1e6:.0f} MB")
        entries, problems = _zip_entries(src.read_bytes(), src, max_members=MAX_ZIP_MEMBERS)
    else:
        raise BrainVizDataError(src, "no such folder or zip file")
    if not entries and not problems:
        raise BrainVizDataError(src, "holds no files")
    if max_images is not None and len(entries) > max_images:
        problems += [(e.name, f"over the limit of {max_images} images per set") for e in entries[max_images:]]
        entries = entries[:max_images]
    return entries, problems


def _zip_directory(f) -> tuple[int, int]:
    """(members, central-directory bytes) from a zip's end record (zip64 too), read from the end of
    the open binary file ``f`` before anything else of the zip is parsed."""
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - (22 + 65535)))
    tail = f.read()
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        raise zipfile.BadZipFile("no end-of-central-directory record")
    n, cd_bytes = struct.unpack("<HI", tail[i + 10:i + 16])
    if n == 0xFFFF or cd_bytes == 0xFFFFFFFF:
        j = tail.rfind(b"PK\x06\x06", 0, i)
        if j < 0 or i - j < 56:
            raise zipfile.BadZipFile("zip64 end record missing")
        n, cd_bytes = struct.unpack("<QQ", tail[j + 32:j + 48])
    return int(n), int(cd_bytes)


def _member_error(exc: BaseException) -> str:
    """A damaged or unusable zip member, in words."""
    if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
        return "the member is encrypted (password-protected); not read"
    if isinstance(exc, NotImplementedError):
        return f"the member uses a compression method this Python cannot read ({exc})"
    return f"the member is damaged in the zip ({type(exc).__name__}: {exc})"


def _zip_entries(source: bytes | Path, label: str | Path, *, max_members: int = MAX_ZIP_MEMBERS,
                 max_uncompressed: int = MAX_ZIP_UNCOMPRESSED) -> tuple[list[ImageEntry], list[tuple[str, str]]]:
    """Entries of a zip (bytes in memory, or a file path); the member count and the central
    directory's size are checked from the end record first, then members over the per-image byte
    limit (or past ``max_uncompressed`` in all) are refused from their header, before decompression.
    Members that are not read are listed in the problems with the reason."""
    from .live import MAX_BYTES

    try:
        f = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")
    except OSError as exc:
        raise BrainVizDataError(label, f"cannot read the zip file ({exc.strerror})") from None
    try:
        n, cd_bytes = _zip_directory(f)
        if n > max_members or cd_bytes > max_members * 1024:
            raise BrainVizDataError(label, f"the zip holds {n:,} members ({cd_bytes / 1e6:.1f} MB of directory); "
                                           f"the limit is {max_members:,}")
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
        if len(infos) > max_members:
            raise BrainVizDataError(label, f"the zip holds {len(infos):,} members; the limit is {max_members:,}")
        infos = sorted((i for i in infos if not i.is_dir()), key=lambda i: i.filename)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        f.close()
        raise BrainVizDataError(label, f"unreadable zip file ({exc})") from None
    except BaseException:
        f.close()
        raise
    entries, problems, total = [], [], 0
    for info in infos:
        shown = printable(info.filename)
        why = _unused_reason(info.filename)
        if why is not None:
            problems.append((shown, why))
            continue
        if info.file_size > MAX_BYTES:
            problems.append((shown, f"the file is {_mb_text(info.file_size)} uncompressed; the limit is "
                                    f"{_mb_text(MAX_BYTES)}"))
            continue
        total += info.file_size
        if total > max_uncompressed:
            problems.append((shown, f"the zip holds more than {_mb_text(max_uncompressed)} uncompressed; "
                                    "the rest was skipped"))
            continue

        def read(info=info, shown=shown) -> bytes:
            try:
                with zf.open(info) as m:
                    out = m.read(MAX_BYTES + 1)  # never trust the header alone
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError,
                    ValueError) as exc:
                raise BrainVizDataError(shown, _member_error(exc)) from None
            if len(out) > MAX_BYTES:
                raise BrainVizDataError(shown, "decompresses to more than its header says and the size limit")
            return out

        entries.append(ImageEntry(shown, read, info.file_size))
    return entries, problems


def image_entries_from_uploads(files: Iterable[tuple[str, bytes]],
                               max_images: int | None = MAX_UPLOAD_IMAGES, *,
                               max_bytes: int | None = MAX_SET_BYTES,
                               max_members: int = MAX_UPLOAD_ZIP_MEMBERS) -> tuple[list[ImageEntry], list[tuple[str, str]]]:
    """Entries from uploaded (name, bytes): zips are opened (their members become entries,
    named ``zipname/member``), other files are entries themselves.

    ``max_bytes``: uploads (files and zips, in the given order) past this many bytes in all are
    listed as over the set's limit and not opened; ``max_members``: a zip with more members is
    refused from its end record, before its directory is parsed. Uncompressed zip members count
    against ``MAX_ZIP_UNCOMPRESSED`` for the whole set.

    Returns (entries, problems) like :func:`list_image_files`.
    """
    entries: list[ImageEntry] = []
    problems: list[tuple[str, str]] = []
    total = 0
    unzipped = 0
    for name, data in files:
        name = printable(name)
        total += len(data)
        if max_bytes is not None and total > max_bytes:
            problems.append((name, f"over the limit of {_mb_text(max_bytes)} uploaded per set (larger sets: "
                                   "python -m precompute predict)"))
            continue
        if name.lower().endswith(".zip") or (data[:4] == b"PK\x03\x04"):
            if len(data) > MAX_ZIP_BYTES:
                problems.append((name, f"zip is {len(data) / 1e6:.0f} MB; the limit is {MAX_ZIP_BYTES / 1e6:.0f} MB"))
                continue
            try:
                es, ps = _zip_entries(data, name, max_members=max_members,
                                      max_uncompressed=max(0, MAX_ZIP_UNCOMPRESSED - unzipped))
            except BrainVizDataError as exc:
                problems.append((name, exc.problem))
                continue
            unzipped += sum(e.size or 0 for e in es)
            entries += [ImageEntry(f"{name}/{e.name}", e.read, e.size) for e in es]
            problems += [(f"{name}/{n}", r) for n, r in ps]
        else:
            entries.append(ImageEntry(name, (lambda d=data: d), len(data)))
    if max_images is not None and len(entries) > max_images:
        problems += [(e.name, f"over the limit of {max_images} images per set") for e in entries[max_images:]]
        entries = entries[:max_images]
    return entries, problems


def iter_decoded(entries: Sequence[ImageEntry], max_side: int = 512,
                 max_pixels: int | None = None) -> Iterator[tuple[str, object, str | None]]:
    """Decode each entry with :func:`brainviz.live.validate_image`.

    Yields (name, PIL RGB image or None, reason or None): the reason (e.g. "this is not an image
    file ...", "the PNG file is corrupt or truncated ...") when the file is rejected.
    ``max_side``: decoded images are downscaled to at most this side (the backbone uses 224 px).
    ``max_pixels``: once this many pixels were decoded (``brainviz_source["decoded_pixels"]``),
    the remaining entries are not read (each is yielded with the reason).
    """
    from .live import validate_image

    decoded = 0
    for e in entries:
        if max_pixels is not None and decoded >= max_pixels:
            yield e.name, None, (f"over the limit of {max_pixels / 1e6:,.0f} megapixels decoded per set "
                                 "(larger sets: python -m precompute predict)")
            continue
        try:
            data = e.read()
            img = validate_image(data, name=e.name, max_side=max_side)
        except BrainVizDataError as exc:
            yield e.name, None, exc.problem
            continue
        except OSError as exc:
            yield e.name, None, f"cannot read the file ({exc})"
            continue
        src = img.info.get("brainviz_source", {})
        decoded += int(src.get("decoded_pixels") or np.prod(src.get("stored_size") or img.size))
        yield e.name, img, None


@dataclass
class PredictedSet:
    """Predicted responses of an image set.

    names : (n_images,) names of the images predicted, in row order.
    responses : {subject: (n_images, n_vertices) float32}
    bad : [(name, reason)] files listed and skipped.
    seconds : wall time of decoding + prediction.
    device : where the model ran.
    notes : {name: [conversion notes]} (e.g. "CMYK image converted to RGB").
    """

    names: list[str]
    responses: dict[str, np.ndarray]
    bad: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    notes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def images_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("nan")


def predict_entries(predictor, entries: Sequence[ImageEntry], subjects: Sequence[str] | None = None,
                    batch_size: int = 32, progress: ProgressFn | None = None,
                    bad: Sequence[tuple[str, str]] = (), max_pixels: int | None = None) -> PredictedSet:
    """Predicted responses of ``subjects`` (default: all of the model's) to every decodable entry.

    Parameters
    ----------
    predictor : :class:`brainviz.live.LivePredictor` (or anything with ``.predict(list_of_PIL, subjects)``
        returning ``.predictions[subject]`` (b, V) and a ``.device``).
    entries : the image files (see :func:`list_image_files`).
    batch_size : images per forward pass.
    progress : called as ``progress(n_done, n_total)`` after each batch (files, good or bad).
    bad : problems found while listing (kept at the front of ``PredictedSet.bad``).
    max_pixels : decoded pixels per set (see :func:`iter_decoded`; the app page: MAX_SET_DECODED_PIXELS).
    """
    if batch_size < 1:
        raise BrainVizDataError("batch_size", f"must be >= 1, got {batch_size}")
    subjects = list(predictor.subjects if subjects is None else subjects)
    t0 = time.perf_counter()
    names: list[str] = []
    chunks: dict[str, list[np.ndarray]] = {s: [] for s in subjects}
    out_bad = list(bad)
    notes: dict[str, list[str]] = {}
    batch: list = []
    batch_names: list[str] = []
    done = 0

    def flush():
        if not batch:
            return
        res = predictor.predict(list(batch), subjects)
        for s in subjects:
            chunks[s].append(np.asarray(res.predictions[s], dtype=np.float32).reshape(len(batch), -1))
        names.extend(batch_names)
        batch.clear()
        batch_names.clear()

    for name, img, reason in iter_decoded(entries, max_pixels=max_pixels):
        done += 1
        if img is None:
            out_bad.append((name, reason))
        else:
            batch.append(img)
            batch_names.append(name)
            if img.info.get("brainviz_notes"):
                notes[name] = list(img.info["brainviz_notes"])
            if len(batch) >= batch_size:
                flush()
                if progress:
                    progress(done, len(entries))
    flush()
    if progress:
        progress(len(entries), len(entries))
    responses = {s: (np.concatenate(chunks[s]) if chunks[s] else np.zeros((0, 0), np.float32)) for s in subjects}
    return PredictedSet(names, responses, out_bad, time.perf_counter() - t0, str(getattr(predictor, "device", "cpu")),
                        notes)


# --------------------------------------------------------------------------- store images (NSD by tag)
def _resolve_image_path(path: str, store_path: str | Path | None) -> Path:
    from .paths import PROJECT_ROOT

    p = Path(str(path)).expanduser()
    if p.is_absolute():
        return p
    for base in ([Path(store_path).parent] if store_path else []) + [PROJECT_ROOT, Path.cwd()]:
        if (base / p).is_file():
            return base / p
    return PROJECT_ROOT / p


def _pipeline_feature_cache(store, backbone: str, cache_dir: str | Path, weights: str | Path | None = None,
                            seed: int = 0):
    """The pipeline's feature-cache entry of the store's dataset images (all non-k92 images, sorted
    by key, as ``precompute features`` wrote it) for the backbone with ``weights`` / ``seed`` (the
    live predictor's), or None when it is not on disk."""
    try:
        from .features import cached_features
        from .features.cache import cache_entry_dir, image_set_hash
        from .features.weights import weights_identity

        imgs = store.images()
        imgs = imgs[imgs["dataset_id"].notna()].sort_values("image_key")
        keys = imgs["image_key"].tolist()
        paths = [_resolve_image_path(p, store.path) for p in imgs["path"]]
        folder = Path(cache_dir) / "features"
        entry = cache_entry_dir(folder, backbone, weights_identity(backbone, weights, seed), len(keys),
                                image_set_hash(keys, paths))
        if not entry.is_dir():
            return None
        return cached_features(backbone, keys, paths, folder, weights=weights, seed=seed, progress=False,
                               on_corrupt="raise")
    except (BrainVizDataError, OSError, ValueError, TypeError, KeyError, ImportError):
        return None


def predict_store_images(predictor, store, keys: Sequence[str], subject: str, *, cache_dir: str | Path | None = None,
                         batch_size: int = 32, progress: ProgressFn | None = None) -> tuple[np.ndarray, str]:
    """(n, V) float32 predicted responses of ``subject`` to images the store knows, and how they were got.

    In order of preference:

    1. ``"stored"``: the store's predictions of this model for these images (``predictions`` table,
       model id or ``<model id>:all-images``);
    2. ``"feature cache"``: the pipeline's cached backbone features (``<cache_dir>/features``) + the encoder;
    3. ``"images"``: the image files, decoded and run through the backbone and encoder in batches.

    All three give the same numbers up to float16 feature rounding (the live path rounds like the cache).
    """
    keys = [str(k) for k in keys]
    if not keys:
        return np.zeros((0, store.n_vertices(subject)), np.float32), "stored"
    model_id = getattr(predictor, "model_id", "")
    for mid in (model_id, f"{model_id}:all-images"):
        try:
            have = set(store.prediction_keys(mid, subject))
        except BrainVizDataError:
            continue
        if have and set(keys) <= have:
            if progress:
                progress(len(keys), len(keys))
            return store.predictions(mid, subject, keys).astype(np.float32, copy=False), "stored"
    from .paths import DEFAULT_CACHE_DIR

    fs = _pipeline_feature_cache(store, predictor.backbone.name, cache_dir or DEFAULT_CACHE_DIR,
                                 getattr(predictor, "weights", None), getattr(predictor, "seed", 0))
    if fs is not None:
        out = []
        for i in range(0, len(keys), 128):
            sub = fs.subset(keys[i:i + 128])
            out.append(np.asarray(predictor.encoder.predict(sub, subject), dtype=np.float32))
            if progress:
                progress(min(len(keys), i + 128), len(keys))
        return np.concatenate(out), "feature cache"
    imgs = store.images(keys)
    paths = dict(zip(imgs["image_key"], imgs["path"]))
    entries = [ImageEntry(k, (lambda p=_resolve_image_path(paths[k], store.path): p.read_bytes())) for k in keys]
    res = predict_entries(predictor, entries, [subject], batch_size=batch_size, progress=progress)
    if res.bad:
        name, reason = res.bad[0]
        raise BrainVizDataError(name, f"stored image cannot be used: {reason}")
    return res.responses[subject], "images"


def tag_sets(tags: pd.DataFrame, category: str | Sequence[str], *, versus: str | Sequence[str] | None = None,
             threshold: float = 0.5, keys: Iterable[str] | None = None,
             exclude: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Image keys of set A (``category`` score >= threshold) and set B.

    Parameters
    ----------
    tags : category scores in [0, 1] indexed by image key (the store's ``image_tags``).
    category : e.g. 'faces', or several categories (an image belongs when ANY of them reaches the
        threshold, e.g. ('places', 'indoor') for scenes: NSD's 'places' score is high mostly for
        outdoor scenes, rooms score on 'indoor').
    versus : None -> B = everything else (no category of A reaches the threshold); a category (or
        several) -> B = images of that category that are not in A.
    keys : restrict to these images (e.g. the NSD images of the store); default all tagged images.
    exclude : keys to leave out of both sets (e.g. the subject's training images).

    Returns
    -------
    (A, B) sorted lists of image keys.
    """
    cats = [c for c in tags.columns if c != "tags"]
    a_cats = [category] if isinstance(category, str) else list(category)
    b_cats = [] if versus is None else ([versus] if isinstance(versus, str) else list(versus))
    if not a_cats:
        raise BrainVizDataError("category", "choose at least one category for set A")
    for c in a_cats + b_cats:
        if c not in cats:
            raise BrainVizDataError("category", f"{c!r} is not a tag category ({', '.join(cats)})")
    t = tags
    if keys is not None:
        t = t.loc[t.index.intersection(list(keys))]
    t = t.loc[~t.index.isin(set(exclude))]
    t = t[t[cats].notna().any(axis=1)]
    a = (t[a_cats].astype(float).fillna(0.0) >= threshold).any(axis=1)
    if versus is None:
        b = ~a
    else:
        b = (t[b_cats].astype(float).fillna(0.0) >= threshold).any(axis=1) & ~a
    return sorted(t.index[a]), sorted(t.index[b])


# --------------------------------------------------------------------------- statistics
@dataclass
class ContrastResult:
    """Per-vertex A vs B statistics (all arrays (n_vertices,), float64).

    t : Welch t (positive = A > B); df : Welch-Satterthwaite degrees of freedom;
    p : two-sided p; p_fdr : Benjamini-Hochberg adjusted p; significant : p_fdr <= q;
    d : effect size (mean A - mean B) / sqrt((var A + var B) / 2); diff : mean A - mean B;
    n_a, n_b : images per set; q : the FDR level; min_d : the smallest |d| that counts (:attr:`passes`).

    The images are the samples: the test asks whether the predicted responses differ between the sets
    more than between the images of a set. Predicted responses carry no trial-to-trial noise, so with
    many images even differences far too small to matter pass FDR (faces vs everything else: about 3
    in 4 vertices of the demo brain at q = 0.05); ``min_d`` keeps only differences of a size that
    matters as well (Cohen: 0.2 small, 0.5 medium, 0.8 large).
    """

    t: np.ndarray
    df: np.ndarray
    p: np.ndarray
    p_fdr: np.ndarray
    significant: np.ndarray
    d: np.ndarray
    diff: np.ndarray
    n_a: int
    n_b: int
    q: float
    min_d: float = 0.0

    @property
    def passes(self) -> np.ndarray:
        """(n_vertices,) bool: FDR-significant and |d| >= ``min_d``."""
        return self.significant & (np.abs(self.d) >= self.min_d)

    @property
    def t_thresholded(self) -> np.ndarray:
        """t where FDR-significant with |d| >= ``min_d`` (:attr:`passes`), NaN elsewhere."""
        return np.where(self.passes, self.t, np.nan)

    def t_threshold(self) -> float | None:
        """Smallest |t| that survives FDR (None when nothing does)."""
        s = self.significant & np.isfinite(self.t)
        return float(np.min(np.abs(self.t[s]))) if s.any() else None


def fdr(p, q: float = DEFAULT_Q) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg: (adjusted p, reject mask at level q). NaN p stay NaN / not rejected."""
    from scipy.stats import false_discovery_control

    if not 0 < q < 1:
        raise BrainVizDataError("q", f"the FDR level must be in (0, 1), got {q}")
    p = np.asarray(p, dtype=np.float64)
    adj = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        adj[ok] = false_discovery_control(p[ok], method="bh")
    return adj, np.where(ok, adj <= q, False)


def contrast(a, b, q: float = DEFAULT_Q, min_d: float = 0.0) -> ContrastResult:
    """Welch t-test of set A vs set B at every vertex, with effect size and FDR.

    Parameters
    ----------
    a : (n_a, n_vertices) predicted responses to set A.
    b : (n_b, n_vertices) predicted responses to set B (same vertices).
    q : FDR level (Benjamini-Hochberg over vertices).
    min_d : smallest |effect size d| that counts besides FDR (:attr:`ContrastResult.passes`; 0 = FDR alone).

    Vertices with zero variance in both sets get t = 0, p = 1.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise BrainVizDataError("responses", f"sets must be (n, n_vertices) with the same vertices; got {a.shape} "
                                             f"and {b.shape}")
    if len(a) < MIN_IMAGES or len(b) < MIN_IMAGES:
        raise BrainVizDataError("image sets", f"each set needs at least {MIN_IMAGES} images (A has {len(a)}, "
                                              f"B has {len(b)})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise BrainVizDataError("responses", "predicted responses contain NaN or infinite values")
    ma, mb = a.mean(0), b.mean(0)
    va, vb = a.var(0, ddof=1), b.var(0, ddof=1)
    na, nb = len(a), len(b)
    se2 = va / na + vb / nb
    flat = se2 <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(flat, 0.0, (ma - mb) / np.sqrt(np.where(flat, 1.0, se2)))
        df = np.where(flat, na + nb - 2.0,
                      se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1)))
        sd_av = np.sqrt((va + vb) / 2)
        d = np.where(sd_av > 0, (ma - mb) / np.where(sd_av > 0, sd_av, 1.0), 0.0)
    p = 2 * stats.t.sf(np.abs(t), df)
    p = np.where(flat, 1.0, p)
    p_fdr, sig = fdr(p, q)
    if not (np.isfinite(min_d) and min_d >= 0):
        raise BrainVizDataError("min_d", f"the smallest effect size must be a number >= 0, got {min_d}")
    return ContrastResult(t=t, df=df, p=p, p_fdr=p_fdr, significant=sig, d=d, diff=ma - mb, n_a=na, n_b=nb, q=q,
                          min_d=float(min_d))


def roi_table(result: ContrastResult, groups: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per ROI group: vertices, mean t, peak t (largest |t|), mean effect size d, % FDR-significant
    with A > B and with A < B, the same with |d| >= ``result.min_d`` as well (``pct_pass_*``), mean
    difference.

    ``groups``: {name: (n_vertices,) bool}; an 'all vertices' row is added first.
    """
    rows = []
    for name, m in {"all vertices": np.ones(len(result.t), bool), **dict(groups)}.items():
        m = np.asarray(m, bool)
        if not m.any():
            continue
        t = result.t[m]
        peak = t[np.argmax(np.abs(t))]
        rows.append({"roi": name, "n_vertices": int(m.sum()), "mean_t": float(t.mean()), "peak_t": float(peak),
                     "mean_d": float(result.d[m].mean()), "mean_diff": float(result.diff[m].mean()),
                     "pct_sig_A>B": 100.0 * float((result.significant[m] & (t > 0)).mean()),
                     "pct_sig_A<B": 100.0 * float((result.significant[m] & (t < 0)).mean()),
                     "pct_pass_A>B": 100.0 * float((result.passes[m] & (t > 0)).mean()),
                     "pct_pass_A<B": 100.0 * float((result.passes[m] & (t < 0)).mean())})
    return pd.DataFrame(rows)


def top_images(responses, names: Sequence[str], mask, k: int = 8) -> pd.DataFrame:
    """The ``k`` images with the highest mean predicted response inside ``mask``.

    responses : (n_images, n_vertices); names : (n_images,); mask : (n_vertices,) bool.
    Returns DataFrame rank (1 = highest), name, score (mean response in the mask).
    """
    r = np.asarray(responses, dtype=np.float64)
    m = np.asarray(mask, bool)
    if not m.any() or len(r) == 0:
        return pd.DataFrame(columns=["rank", "name", "score"])
    score = r[:, m].mean(1)
    order = np.argsort(-score, kind="stable")[:k]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "name": [names[i] for i in order],
                         "score": score[order]})


@dataclass
class GroupRDM:
    """Predicted RDM of one image set inside one ROI group.

    rdm : (n_images, n_images) 1 - Pearson r of the predicted patterns; names : row order;
    most_similar / most_dissimilar : DataFrames name_a, name_b, value (best first).
    """

    group: str
    rdm: np.ndarray
    names: list[str]
    most_similar: pd.DataFrame
    most_dissimilar: pd.DataFrame


def group_rdms(responses, names: Sequence[str], groups: Mapping[str, np.ndarray], metric: str = "correlation",
               k: int = 5) -> dict[str, GroupRDM]:
    """Predicted RDM (via :func:`brainviz.rsa.rdm`) per ROI group with its ``k`` most similar and most
    dissimilar image pairs (:func:`brainviz.rsa.extreme_pairs_from_rdm`).

    responses : (n_images, n_vertices); groups : {name: (n_vertices,) bool} (groups with < 2
    vertices are skipped).
    """
    from . import rsa as rdmlib

    r = np.asarray(responses, dtype=np.float32)
    if len(r) < 3:
        raise BrainVizDataError("image set", f"an RDM needs at least 3 images, got {len(r)}")
    out = {}
    for g, m in groups.items():
        m = np.asarray(m, bool)
        if m.sum() < 2:
            continue
        sq = rdmlib.rdm(r[:, m], metric=metric)
        kk = min(k, len(r) * (len(r) - 1) // 2)

        def pairs(kind):
            df = rdmlib.extreme_pairs_from_rdm(sq, k=kk, kind=kind)
            return pd.DataFrame({"name_a": [names[i] for i in df["i"]], "name_b": [names[j] for j in df["j"]],
                                 "value": df["value"].to_numpy()})

        out[g] = GroupRDM(g, sq, list(names), pairs("lowest"), pairs("largest"))
    return out


def roi_means_table(responses, names: Sequence[str], groups: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """(n_images, n_groups) mean predicted response per ROI group; index = image names."""
    r = np.asarray(responses, dtype=np.float64)
    cols = {g: r[:, np.asarray(m, bool)].mean(1) for g, m in groups.items() if np.asarray(m, bool).any()}
    return pd.DataFrame(cols, index=pd.Index(list(names), name="image"))


def auc_of_map(values, positive) -> float:
    """Area under the ROC curve of ``values`` (n_vertices,) separating ``positive`` (bool) vertices
    from the rest (Mann-Whitney U / (n_pos n_neg)); NaN values are left out.

    Used ONLY by the simulation checks against the demo brain's planted regions (ground truth).
    """
    from scipy.stats import mannwhitneyu

    v = np.asarray(values, dtype=np.float64)
    pos = np.asarray(positive, bool)
    ok = np.isfinite(v)
    x, y = v[ok & pos], v[ok & ~pos]
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    return float(mannwhitneyu(x, y, alternative="two-sided").statistic / (len(x) * len(y)))
