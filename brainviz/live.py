"""Live prediction: validate an uploaded image, then predict its brain response.

Two parts:

* :func:`validate_image` turns untrusted bytes (an upload, a camera shot) into a
  PIL RGB image or raises :class:`ImageValidationError` with a message a user can act
  on. Decisions, in order:

  ============================  ==============================================================
  empty / over ``max_bytes``    rejected ("empty file" / "the file is 26.1 MB; the limit is 25 MB",
                                 MB = 1024 x 1024 bytes, as Streamlit's uploader counts)
  not an image / unknown type   rejected ("not an image PIL can read" / "type X not supported";
                                 allowed: PNG, JPEG, GIF, WebP, BMP, TIFF)
  decompression bomb            rejected BEFORE decoding: the header's width x height is
                                 checked against ``max_pixels`` (40 megapixels) for JPEG, which
                                 is decoded at a reduced scale (``draft``), and against
                                 ``max_decode_pixels`` (16 megapixels) for formats decoded at
                                 full size; PIL's ``DecompressionBombWarning``/``Error`` become
                                 the same message
  tiny (< ``min_side`` px)      rejected ("too small: 1 x 1 px; at least 16 x 16")
  corrupt / truncated           rejected ("corrupt or truncated ...")
  animated (GIF, WebP, APNG)    ACCEPTED: the first frame is used (a note says so)
  CMYK                          ACCEPTED: converted to RGB (a note says so)
  16-bit (I;16 etc.)            ACCEPTED: scaled to 8 bit, then RGB (a note says so)
  alpha / palette / gray        converted to RGB (transparent pixels on NSD gray)
  EXIF rotation                 applied (camera photos); a note says so, and sizes in messages
                                 and ``brainviz_source["size"]`` are the rotated (shown) size
  ============================  ==============================================================

  Memory: at most :data:`DECODE_SLOTS` uploads are decoded at a time (the others wait up to
  :data:`DECODE_WAIT_S` seconds), JPEGs are decoded at the smallest DCT scale that still
  gives ``max_side`` px, and a large decoded image is box-reduced before any color
  conversion. Ten simultaneous worst-case uploads stay far below 1 GB (bench/bench_upload_memory.py).

  Notes about conversions are returned in ``image.info["brainviz_notes"]`` (list of str).
  Large images are downscaled to at most ``max_side`` px (default 1024) after decoding;
  the backbone works at 224 px anyway.

* :class:`LivePredictor` loads the Universal-Encoder checkpoint the store holds
  (table ``checkpoints``: bytes read with ``torch.load(weights_only=True)``, so no pickled
  code runs) and its backbone once (use :func:`get_live_predictor`, or ``st.cache_resource``
  in the app) and maps a PIL image to a (V,) predicted response per subject. It needs
  nothing but the store and the backbone's weights. It runs on cuda when available, else
  CPU. The backbone gets the SAME weights as the run that trained the encoder
  (:func:`store_weights`: the store's record of the weights, the recorded file or one given
  in its place with the same content hash); a missing or different file is refused with one
  line naming it, never replaced by other weights.
"""
from __future__ import annotations

import io
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import BrainVizDataError
from .metrics import pattern_correlations
from .names import UE_KINDS

#: Largest accepted image (width x height) — checked from the header, before decoding. JPEGs up to
#: this size are decoded at a reduced scale (Pillow ``draft``), so they never cost their full size.
MAX_PIXELS = 40_000_000
#: Largest accepted image of a format decoded at full size (PNG, GIF, WebP, BMP, TIFF).
MAX_FULL_DECODE_PIXELS = 16_000_000
#: The MB of every size message and limit: 1024 x 1024 bytes (Streamlit's ``maxUploadSize`` unit).
MB = 1024 * 1024
#: Largest accepted upload size in bytes (= ``server.maxUploadSize`` in .streamlit/config.toml).
MAX_BYTES = 25 * MB
#: At most this many uploads are decoded at the same time (each may need ~100 MB while decoding).
DECODE_SLOTS = 2
#: How long an upload waits for a decode slot before it is turned away as "busy".
DECODE_WAIT_S = 60.0
#: Smallest accepted side, px.
MIN_SIDE = 16
#: Decoded images are downscaled to at most this side (px).
MAX_SIDE = 1024
ALLOWED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "GIF": "GIF", "WEBP": "WebP", "BMP": "BMP",
                   "TIFF": "TIFF"}
#: Memory the live predictor may keep for cached per-voxel terms (all subjects of the demo brain
#: take ~32 MB; 8 NSD subjects at the CPU defaults ~390 MB).
CACHE_BYTES = 512 * 1024 * 1024
#: File extensions accepted by the app's uploader.
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"]

# PIL's own bomb guard (Image.MAX_IMAGE_PIXELS, left as the process has it: importing this module changes
# nothing global) stops absurd headers inside Image.open; validate_image turns its warning into an error and
# checks every header against MAX_PIXELS before decoding, so nothing bigger than MAX_PIXELS is ever decoded.


class ImageValidationError(BrainVizDataError):
    """An uploaded image was rejected; ``str(err)`` is a message for the user."""


def _fail(name: str, problem: str) -> ImageValidationError:
    return ImageValidationError(name, problem)


_DECODE_SEMAPHORE = threading.BoundedSemaphore(DECODE_SLOTS)
#: EXIF orientations that turn the picture by 90 degrees (width and height swap).
_EXIF_SWAPS = {5, 6, 7, 8}
_EXIF_TEXT = {2: "mirrored", 3: "rotated 180°", 4: "flipped upside down", 5: "rotated 90° and mirrored",
              6: "rotated 90° clockwise", 7: "rotated 90° and mirrored", 8: "rotated 90° counter-clockwise"}


def _megapixels(n: float, limit: float | None = None) -> str:
    """``n`` pixels in megapixels (1 MP = 1,000,000 px); with ``limit``, enough decimals that a value
    over the limit never reads as equal to it."""
    mp = n / 1e6
    for digits in range(1, 7):
        text = f"{mp:.{digits}f}"
        if limit is None or float(text) > limit / 1e6:
            return text
    return f"{mp:g}"


def _mb(n: float, up: bool) -> str:
    import math

    v = (math.ceil if up else math.floor)(n / MB * 10) / 10
    return f"{v:g}"


def _pixel_message(pixels: float, limit: int, w: int | None = None, h: int | None = None, what: str = "") -> str:
    size = f"{w} x {h} px = " if w is not None else ""
    return (f"image is too large: {size}{_megapixels(pixels, limit)} megapixels; the limit is "
            f"{limit / 1e6:g} megapixels{what} (larger images could exhaust the server's memory; "
            "the model looks at 224 x 224 px anyway)")


def _exif_orientation(img: Image.Image) -> int:
    """EXIF orientation (1..8) from what the header already holds, without decoding pixels.

    (``PngImageFile.getexif()`` decodes the whole image to look for an eXIf chunk after the
    pixel data; that is what a 116 KB, 40-megapixel PNG must never trigger.)
    """
    try:
        raw = img.info.get("exif")
        if raw:
            exif = Image.Exif()
            exif.load(raw)
            value = exif.get(0x0112, 1)
        elif (img.format or "").upper() in ("TIFF", "MPO", "JPEG"):
            value = img.getexif().get(0x0112, 1)  # parsed from the header for these formats
        else:
            value = 1
        value = int(value or 1)
    except Exception:  # malformed EXIF: shown as stored
        return 1
    return value if value in _EXIF_TEXT else 1


def _format_limit(is_jpeg: bool, fmt: str, max_pixels: int, max_decode_pixels: int) -> tuple[int, str]:
    """(pixel limit, wording) of a format: JPEG is decoded at a reduced scale, the others in full."""
    if is_jpeg or max_decode_pixels >= max_pixels:
        return max_pixels, ""
    return max_decode_pixels, f" for {fmt} images (JPEG photos may have up to {max_pixels / 1e6:g} megapixels)"


def validate_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    min_side: int = MIN_SIDE,
    max_side: int | None = MAX_SIDE,
    name: str = "uploaded file",
    max_decode_pixels: int = MAX_FULL_DECODE_PIXELS,
) -> Image.Image:
    """Decode untrusted image bytes into an 8-bit RGB PIL image, or raise a clear error.

    Parameters
    ----------
    data : the raw file bytes.
    max_pixels : largest width x height accepted (checked before decoding); JPEG is decoded at
        a reduced scale, so this is its limit.
    max_bytes : largest file size accepted (messages in MB of 1024 x 1024 bytes).
    min_side : smallest width / height accepted.
    max_side : the decoded image is downscaled to fit max_side x max_side (None: keep).
    name : file name used in messages.
    max_decode_pixels : largest width x height of formats decoded at full size (PNG, GIF,
        WebP, BMP, TIFF); the smaller of this and ``max_pixels`` applies to them.

    Returns
    -------
    PIL.Image.Image in mode RGB; ``.info["brainviz_notes"]`` lists conversions made, and
    ``.info["brainviz_source"]`` = {"format", "mode", "size" (as shown, after EXIF rotation),
    "stored_size", "exif_orientation", "frames"} of the original and "decoded_pixels" (pixels
    decoded: a JPEG's are fewer, decoded at a reduced scale).

    Raises
    ------
    ImageValidationError (a BrainVizDataError)
    """
    from .features.preprocess import to_rgb

    if data is None:
        raise _fail(name, "no file given")
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise _fail(name, f"expected the file's bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise _fail(name, "the file is empty")
    if len(data) > max_bytes:
        raise _fail(name, f"the file is {_mb(len(data), True)} MB; the limit is {_mb(max_bytes, False)} MB")
    allowed = ", ".join(sorted(set(ALLOWED_FORMATS.values())))
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            m = re.search(r"\((\d+) pixels\)", str(exc))
            pixels = int(m.group(1)) if m else max_pixels + 1
            is_jpeg = data[:3] == b"\xff\xd8\xff"
            limit, what = _format_limit(is_jpeg, "PNG" if data[:4] == b"\x89PNG" else "non-JPEG",
                                        max_pixels, max_decode_pixels)
            raise _fail(name, _pixel_message(pixels, limit, what=what)) from None
        except UnidentifiedImageError:
            raise _fail(name, f"this is not an image file (or not a type BrainViz reads); upload one of: {allowed}") from None
        except Exception as exc:  # PIL raises many types on garbage headers
            raise _fail(name, f"cannot read this image header ({type(exc).__name__}: {exc}); "
                              f"upload one of: {allowed}") from None
        fmt = (img.format or "").upper()
        if fmt not in ALLOWED_FORMATS:
            raise _fail(name, f"image type {img.format or 'unknown'} is not supported; upload one of: {allowed}")
        w, h = img.size
        orientation = _exif_orientation(img)
        sw, sh = (h, w) if orientation in _EXIF_SWAPS else (w, h)  # the size the user sees
        draftable = ALLOWED_FORMATS[fmt] == "JPEG"
        limit, what = _format_limit(draftable, ALLOWED_FORMATS[fmt], max_pixels, max_decode_pixels)
        if w * h > limit:
            raise _fail(name, _pixel_message(w * h, limit, sw, sh, what))
        if w < min_side or h < min_side:
            raise _fail(name, f"image is too small: {sw} x {sh} px; it must be at least {min_side} x {min_side} px")
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        source = {"format": ALLOWED_FORMATS[fmt], "mode": img.mode, "size": (sw, sh), "stored_size": (w, h),
                  "exif_orientation": orientation, "frames": n_frames}
        if orientation != 1:
            turned = f"; shown as {sw} x {sh} px (stored as {w} x {h})" if (sw, sh) != (w, h) else ""
            notes.append(f"camera orientation applied (EXIF orientation {orientation}: {_EXIF_TEXT[orientation]}){turned}")
        # at most DECODE_SLOTS decodes at once: a burst of large uploads waits instead of adding up
        if not _DECODE_SEMAPHORE.acquire(timeout=DECODE_WAIT_S):
            raise _fail(name, "the server is busy decoding other uploads; please try again in a moment")
        try:
            # integrity check of the whole file (PNG CRCs, truncated streams), then a fresh decode
            try:
                img.verify()
            except Exception as exc:
                raise _fail(name, f"the {source['format']} file is corrupt or truncated ({type(exc).__name__}: {exc})") from None
            try:
                img = Image.open(io.BytesIO(data))
                if n_frames > 1:
                    img.seek(0)
                    notes.append(f"animated {source['format']} with {n_frames} frames: the first frame is used")
                if draftable and max_side:
                    img.draft(img.mode, (max_side, max_side))  # DCT-scaled decode: 1/2 .. 1/8 of the pixels
                img.load()
                source["decoded_pixels"] = img.size[0] * img.size[1]  # after a JPEG's reduced-scale decode
                if max_side and max(img.size) >= 2 * max_side:
                    try:  # box-reduce before any conversion: the full-size image is freed at once
                        img = img.reduce(max(img.size) // max_side)
                    except (ValueError, NotImplementedError):
                        pass  # modes reduce() does not handle ("1", "P"): converted at full size
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise _fail(name, f"image is too large to decode safely ({exc})") from None
            except Exception as exc:
                raise _fail(name, f"the {source['format']} file is corrupt or truncated ({type(exc).__name__}: {exc})") from None
            mode = img.mode
            if mode == "CMYK":
                notes.append("CMYK image converted to RGB (colors may differ slightly from print software)")
            elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                notes.append(f"{'16-bit' if mode.startswith('I;16') else 'high bit-depth'} image ({mode}) scaled to 8-bit gray")
            elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
                notes.append("transparent pixels shown on gray (the NSD screen background)")
            try:
                rgb = to_rgb(img)  # applies the EXIF orientation (kept in img.info through draft/reduce)
                if rgb is img:
                    rgb = img.copy()
            except BrainVizDataError as exc:
                raise _fail(name, exc.problem) from None
            except Exception as exc:
                raise _fail(name, f"cannot convert this image to RGB ({type(exc).__name__}: {exc})") from None
            del img
            if max_side and max(rgb.size) > max_side:
                rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            if rgb.size != (sw, sh):
                notes.append(f"downscaled from {sw} x {sh} to {rgb.size[0]} x {rgb.size[1]} px")
        finally:
            _DECODE_SEMAPHORE.release()
    rgb.info = {"brainviz_notes": notes, "brainviz_source": source}
    return rgb


# --------------------------------------------------------------------------- prediction
@dataclass
class LiveResult:
    """Output of :meth:`LivePredictor.predict`.

    predictions : {subject: (V,) float32 predicted response}
    timings_ms : {"features": ..., "encoder": ..., "total": ...}
    device : 'cpu' or 'cuda:0'
    """

    predictions: dict[str, np.ndarray]
    timings_ms: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"


def pick_live_model(models, stored: Collection[str] | None = None) -> str | None:
    """The model to use for live prediction: a Universal-Encoder model, preferring the multi-subject one
    (it predicts every subject). ``stored``: the model ids whose checkpoint a store holds
    (``Store.checkpoints()``), the only candidates; None: the rows with a ``checkpoint_path`` (a work
    folder's models, when the pipeline chooses the model a store will hold)."""
    if models is None or len(models) == 0:
        return None
    order = {k: i for i, k in enumerate(UE_KINDS)}
    cands = []
    for _, m in models.iterrows():
        usable = m["model_id"] in stored if stored is not None else bool(m.get("checkpoint_path"))
        if m.get("kind") in order and usable:
            n_subj = len(m.get("subjects") if m.get("subjects") is not None else [])
            cands.append((order[m["kind"]], -n_subj, m["model_id"]))
    return sorted(cands)[0][2] if cands else None


class LivePredictor:
    """Image -> predicted response of every subject of a stored Universal-Encoder model.

    Parameters
    ----------
    checkpoint : the bytes of a stored checkpoint (``Store.checkpoint``, ``UniversalEncoder.to_bytes``) or
        the path of a ``UniversalEncoder.save`` file.
    backbone : backbone name the model was trained on (``models.backbone``).
    device : None (cuda if available else cpu), 'cpu' or 'cuda'.
    model_id : label for display.
    cpu_threads : torch intra-op threads for a prediction on CPU (default 1: for one image,
        extra threads cost more than they gain, and on a busy 2-core server they are ~10x
        slower; None leaves torch's setting).

    weights, seed : the backbone's weights as for ``get_backbone`` (:func:`store_weights` gives those
        of the run that trained the encoder).
    weights_id : the identity the backbone's weights must have (``Backbone.weights_id``), or None
        (not checked).

    Loading takes seconds (backbone weights + checkpoint); keep one per process
    (:func:`get_live_predictor`). :meth:`predict` is thread-safe.
    """

    def __init__(self, checkpoint: bytes | str | Path, backbone: str, device: str | None = None, model_id: str = "",
                 cpu_threads: int | None = 1, *, weights: str | Path | None = None, seed: int = 0,
                 weights_id: str | None = None):
        from .encoders.universal import UniversalEncoder
        from .gpu import resolve_device
        from .features.registry import get_backbone

        self.model_id = model_id
        self.cpu_threads = cpu_threads
        self.device = resolve_device(device, strict=True)
        self.weights, self.seed = (None if weights is None else str(weights)), int(seed)
        self.backbone = get_backbone(backbone, device=self.device, weights=weights, seed=seed)
        if weights_id and self.backbone.weights_id != weights_id:
            raise BrainVizDataError(weights or backbone, f"the backbone's weights ({self.backbone.weights_id}) differ "
                                                         f"from those model {model_id!r} was trained with ({weights_id})")
        self.encoder = UniversalEncoder.load(checkpoint, device=str(self.device),
                                             name=f"stored checkpoint of model {model_id!r}")
        self.encoder.config.progress = False
        # the per-voxel half of the forward pass does not depend on the image: compute it once per
        # subject, for as many subjects as fit in CACHE_BYTES (every subject of the demo brain)
        largest = max(self.encoder.voxel_terms_nbytes(s) for s in self.encoder.subjects)
        self.encoder.cache_voxel_terms(max(1, min(len(self.encoder.subjects), CACHE_BYTES // largest)))
        self.subjects: list[str] = list(self.encoder.subjects)
        self._lock = threading.Lock()
        # warm-up: first forward pays for lazy init / kernel selection
        self.predict(Image.new("RGB", (64, 64), (128, 128, 128)))

    @classmethod
    def from_store(cls, store, model_id: str | None = None, device: str | None = None,
                   weights: str | Path | None = None, cpu_threads: int | None = 1,
                   weights_hint: str = "") -> "LivePredictor":
        """Build from a :class:`~brainviz.store.reader.Store`: the UE model whose checkpoint it holds, with the
        backbone weights of the run that trained it (``weights``: a file in place of the recorded one, see
        :func:`store_weights`)."""
        _, backbone, model_id = live_model_of(store, model_id)
        w, seed, wid = store_weights(store, backbone, model_id, override=weights, hint=weights_hint)
        return cls(store.checkpoint(model_id), backbone, device=device, model_id=model_id, cpu_threads=cpu_threads,
                   weights=w, seed=seed, weights_id=wid)

    def features(self, images: Image.Image | Sequence[Image.Image]):
        """FeatureSet of one image or a short list (backbone forward)."""
        from .features.extract import features_for_pil

        return features_for_pil(self.backbone, images, num_threads=self.cpu_threads)

    def predict(self, image: Image.Image | Sequence[Image.Image], subjects: Sequence[str] | None = None) -> LiveResult:
        """Predicted responses of ``subjects`` (default all) to one PIL image.

        With a list of images, each subject's array is (n_images, V) instead of (V,).
        """
        from .features.base import torch_threads

        single = isinstance(image, Image.Image)
        subjects = list(self.subjects if subjects is None else subjects)
        unknown = [s for s in subjects if s not in self.subjects]
        if unknown:
            raise BrainVizDataError("subject", f"{unknown} not in model {self.model_id!r} ({self.subjects})")
        with self._lock:
            t0 = time.perf_counter()
            fs = self.features(image)
            if self.device.type == "cuda":
                import torch

                torch.cuda.synchronize()
            t1 = time.perf_counter()
            out = {}
            with torch_threads(self.cpu_threads if self.device.type == "cpu" else None):
                for s in subjects:
                    p = self.encoder.predict(fs, s)
                    out[s] = p[0] if single else p
            t2 = time.perf_counter()
        return LiveResult(out, {"features": (t1 - t0) * 1e3, "encoder": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3},
                          str(self.device))


_PREDICTORS: "dict[tuple, LivePredictor]" = {}
_PREDICTORS_LOCK = threading.Lock()
#: Live predictors :func:`get_live_predictor` keeps (the oldest is dropped first).
MAX_PREDICTORS = 4


#: How a user points BrainViz at a weights file that moved (for :func:`store_weights` messages).
WEIGHTS_HINT = "give its new place with `precompute predict --weights FILE`, or BRAINVIZ_WEIGHTS=FILE for the app"


def store_weights(store, backbone: str, model_id: str = "", override: str | Path | None = None,
                  hint: str = "") -> tuple[str | None, int, str | None]:
    """``(weights, seed, weights_id)`` that rebuild the backbone weights the store's run trained its
    encoders on (:class:`~brainviz.features.weights.WeightsSpec` in ``meta``), for ``get_backbone``.

    ``override``: a weights file in place of the recorded one (moved, another machine); its content
    hash must equal the recorded one. Raises :class:`BrainVizDataError` with one line naming the file
    that is missing or differs (``hint``: how to pass ``override``; default :data:`WEIGHTS_HINT`). A store
    written before the weights were recorded: its run configuration's weights and seed, unchecked.
    """
    from .features.weights import WeightsSpec, resolve_weights

    spec = WeightsSpec.from_meta(store.meta())
    if spec is None or spec.backbone != backbone:
        return (None if override in (None, "") else str(override)), 0, None
    w, seed = resolve_weights(spec, override, model=f"model {model_id!r}" if model_id else "the encoder",
                              hint=hint or WEIGHTS_HINT)
    return w, seed, spec.weights_id or None


def live_model_of(store, model_id: str | None = None) -> tuple[str, str, str]:
    """(SHA-256 of the stored checkpoint, backbone name, model id) of the store's live model (default:
    :func:`pick_live_model` among the models whose checkpoint the store holds); the bytes are
    ``store.checkpoint(model_id)``.

    Raises :class:`BrainVizDataError` naming the store and what is missing.
    """
    models = store.models()
    held = store.checkpoints()
    digests = dict(zip(held["model_id"], held["sha256"])) if len(held) else {}
    model_id = model_id or pick_live_model(models, stored=digests)
    if model_id is None:
        raise BrainVizDataError(store.path, "no Universal-Encoder model with a checkpoint in this store; "
                                            "live prediction needs one (`python -m precompute all` stores it)")
    row = models[models["model_id"] == model_id]
    if row.empty:
        raise BrainVizDataError(store.path, f"model {model_id!r} is not in this store")
    row = row.iloc[0]
    if model_id not in digests:
        raise BrainVizDataError(store.path, f"this store holds no checkpoint of model {model_id!r} (it holds the "
                                            f"checkpoint of the live model only: {', '.join(digests) or 'none'})")
    if not row.get("backbone"):
        raise BrainVizDataError(store.path, f"model {model_id!r} does not name its backbone")
    return digests[model_id], row["backbone"], model_id


def get_live_predictor(store, model_id: str | None = None, device: str | None = None,
                       weights: str | Path | None = None) -> LivePredictor:
    """One :class:`LivePredictor` per (stored checkpoint, backbone and its weights, device) per process (at
    most :data:`MAX_PREDICTORS`); the weights are those of the store's run (:func:`store_weights`,
    ``weights`` in place of the recorded file). The checkpoint is read from the store only when the
    predictor is built."""
    digest, backbone, model_id = live_model_of(store, model_id)
    w, seed, wid = store_weights(store, backbone, model_id, override=weights)
    key = (digest, backbone, device, model_id, w, seed, wid)
    with _PREDICTORS_LOCK:
        if key in _PREDICTORS:
            return _PREDICTORS[key]
        predictor = LivePredictor(store.checkpoint(model_id), backbone, device=device, model_id=model_id,
                                  weights=w, seed=seed, weights_id=wid)
        while len(_PREDICTORS) >= MAX_PREDICTORS:
            _PREDICTORS.pop(next(iter(_PREDICTORS)))
        _PREDICTORS[key] = predictor
        return predictor


# --------------------------------------------------------------------------- helpers for the page
def pattern_similarity(pred: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Pearson correlation (n,) between one (V,) pattern and each row of a (n, V) bank (0 for a constant one)."""
    return pattern_correlations(np.ravel(pred)[None], bank, undefined=0.0, names=("pred", "bank"))[0]


def nearest_images(pred: np.ndarray, bank: np.ndarray, keys: Sequence[str], k: int = 6):
    """The ``k`` images whose stored predicted pattern correlates best with ``pred``: [(key, r)]."""
    r = pattern_similarity(pred, bank)
    order = np.argsort(-r)[:k]
    return [(keys[i], float(r[i])) for i in order]


def roi_means(pred: np.ndarray, groups: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Mean predicted response inside each ROI group mask ((V,) bool)."""
    out = {}
    for name, m in groups.items():
        m = np.asarray(m, bool)
        if m.any():
            out[name] = float(np.mean(np.asarray(pred)[m]))
    return out
