"""Live prediction: validate an uploaded image, then predict its brain response.

Two parts:

* :func:`validate_image` turns untrusted bytes (an upload, a camera shot) into a
  PIL RGB image or raises :class:`ImageValidationError` with a message a user can act
  on. Decisions, in order:

  ============================  ==============================================================
  empty / over ``max_bytes``    rejected ("empty file" / "file is N MB; the limit is ...")
  not an image / unknown type   rejected ("not an image PIL can read" / "type X not supported";
                                 allowed: PNG, JPEG, GIF, WebP, BMP, TIFF)
  decompression bomb            rejected BEFORE decoding: the header's width x height is
                                 checked against ``max_pixels`` (default 40 MP) and PIL's
                                 ``DecompressionBombWarning``/``Error`` are turned into errors
  tiny (< ``min_side`` px)      rejected ("too small: 1 x 1 px; at least 16 x 16")
  corrupt / truncated           rejected ("corrupt or truncated ...")
  animated (GIF, WebP, APNG)    ACCEPTED: the first frame is used (a note says so)
  CMYK                          ACCEPTED: converted to RGB (a note says so)
  16-bit (I;16 etc.)            ACCEPTED: scaled to 8 bit, then RGB (a note says so)
  alpha / palette / gray        converted to RGB (transparent pixels on NSD gray)
  EXIF rotation                 applied (camera photos)
  ============================  ==============================================================

  Notes about conversions are returned in ``image.info["brainviz_notes"]`` (list of str).
  Large images are downscaled to at most ``max_side`` px (default 1024) after decoding;
  the backbone works at 224 px anyway.

* :class:`LivePredictor` loads a stored Universal-Encoder checkpoint and its backbone
  once (use :func:`get_live_predictor`, an ``lru_cache``, or ``st.cache_resource`` in
  the app) and maps a PIL image to a (V,) predicted response per subject. It runs on
  cuda when available, else CPU.
"""
from __future__ import annotations

import io
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import BrainVizDataError

#: Largest accepted image (width x height) — checked from the header, before decoding.
MAX_PIXELS = 40_000_000
#: Largest accepted upload size in bytes.
MAX_BYTES = 25 * 1024 * 1024
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

# PIL's own bomb guard: warn above this, error above twice this. validate_image turns the
# warning into an error, so together with the explicit header check nothing bigger than
# MAX_PIXELS is ever decoded.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageValidationError(BrainVizDataError):
    """An uploaded image was rejected; ``str(err)`` is a message for the user."""


def _fail(name: str, problem: str) -> ImageValidationError:
    return ImageValidationError(name, problem)


def validate_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    min_side: int = MIN_SIDE,
    max_side: int | None = MAX_SIDE,
    name: str = "uploaded file",
) -> Image.Image:
    """Decode untrusted image bytes into an 8-bit RGB PIL image, or raise a clear error.

    Parameters
    ----------
    data : the raw file bytes.
    max_pixels : largest width x height accepted (checked before decoding).
    max_bytes : largest file size accepted.
    min_side : smallest width / height accepted.
    max_side : the decoded image is downscaled to fit max_side x max_side (None: keep).
    name : file name used in messages.

    Returns
    -------
    PIL.Image.Image in mode RGB; ``.info["brainviz_notes"]`` lists conversions made, and
    ``.info["brainviz_source"]`` = {"format", "mode", "size", "frames"} of the original.

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
        raise _fail(name, f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    allowed = ", ".join(sorted(set(ALLOWED_FORMATS.values())))
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _fail(name, f"image is too large to decode safely (decompression bomb guard: {exc}); "
                              f"the limit is {max_pixels / 1e6:.0f} megapixels") from None
        except UnidentifiedImageError:
            raise _fail(name, f"this is not an image file (or not a type BrainViz reads); upload one of: {allowed}") from None
        except Exception as exc:  # PIL raises many types on garbage headers
            raise _fail(name, f"cannot read this image header ({type(exc).__name__}: {exc}); "
                              f"upload one of: {allowed}") from None
        fmt = (img.format or "").upper()
        if fmt not in ALLOWED_FORMATS:
            raise _fail(name, f"image type {img.format or 'unknown'} is not supported; upload one of: {allowed}")
        w, h = img.size
        if w * h > max_pixels:
            raise _fail(name, f"image is {w} x {h} = {w * h / 1e6:.0f} megapixels; the limit is "
                              f"{max_pixels / 1e6:.0f} megapixels (decompression bomb guard)")
        if w < min_side or h < min_side:
            raise _fail(name, f"image is too small: {w} x {h} px; it must be at least {min_side} x {min_side} px")
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        source = {"format": ALLOWED_FORMATS[fmt], "mode": img.mode, "size": (w, h), "frames": n_frames}
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
            img.load()
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
        rgb = to_rgb(img)
        if rgb is img:
            rgb = img.copy()
    except BrainVizDataError as exc:
        raise _fail(name, exc.problem) from None
    except Exception as exc:
        raise _fail(name, f"cannot convert this image to RGB ({type(exc).__name__}: {exc})") from None
    if max_side and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        notes.append(f"downscaled from {w} x {h} to {rgb.size[0]} x {rgb.size[1]} px")
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


def pick_live_model(models) -> str | None:
    """The model to use for live prediction: a Universal-Encoder model with a checkpoint file,
    preferring the multi-subject one (it predicts every subject)."""
    if models is None or len(models) == 0:
        return None
    order = {"ue_multi": 0, "ue_transfer": 1, "ue_single": 2}
    cands = []
    for _, m in models.iterrows():
        if m.get("kind") in order and m.get("checkpoint_path"):
            n_subj = len(m.get("subjects") if m.get("subjects") is not None else [])
            cands.append((order[m["kind"]], -n_subj, m["model_id"]))
    return sorted(cands)[0][2] if cands else None


def _resolve_checkpoint(path: str, store_path: str | Path | None) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    from .paths import PROJECT_ROOT

    for base in ([Path(store_path).parent] if store_path else []) + [PROJECT_ROOT, Path.cwd()]:
        if (base / p).is_file():
            return base / p
    return (PROJECT_ROOT / p)


class LivePredictor:
    """Image -> predicted response of every subject of a stored Universal-Encoder model.

    Parameters
    ----------
    checkpoint : path of a ``UniversalEncoder.save`` checkpoint.
    backbone : backbone name the model was trained on (``models.backbone``).
    device : None (cuda if available else cpu), 'cpu' or 'cuda'.
    model_id : label for display.
    cpu_threads : torch intra-op threads for a prediction on CPU (default 1: for one image,
        extra threads cost more than they gain, and on a busy 2-core server they are ~10x
        slower; None leaves torch's setting).

    Loading takes seconds (backbone weights + checkpoint); keep one per process
    (:func:`get_live_predictor`). :meth:`predict` is thread-safe.
    """

    def __init__(self, checkpoint: str | Path, backbone: str, device: str | None = None, model_id: str = "",
                 cpu_threads: int | None = 1):
        from .encoders.universal import UniversalEncoder
        from .features.base import resolve_device
        from .features.registry import get_backbone

        self.model_id = model_id
        self.cpu_threads = cpu_threads
        self.device = resolve_device(device)
        self.backbone = get_backbone(backbone, device=self.device)
        self.encoder = UniversalEncoder.load(checkpoint, device=str(self.device))
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
    def from_store(cls, store, model_id: str | None = None, device: str | None = None) -> "LivePredictor":
        """Build from a :class:`~brainviz.store.reader.Store`: its checkpointed UE model."""
        ck, backbone, model_id = live_model_of(store, model_id)
        return cls(ck, backbone, device=device, model_id=model_id)

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


@lru_cache(maxsize=4)
def _cached_predictor(checkpoint: str, mtime_ns: int, backbone: str, device: str | None, model_id: str) -> LivePredictor:
    return LivePredictor(checkpoint, backbone, device=device, model_id=model_id)


def live_model_of(store, model_id: str | None = None) -> tuple[Path, str, str]:
    """(checkpoint file, backbone name, model id) of the store's live model (default: :func:`pick_live_model`).

    Raises :class:`BrainVizDataError` naming the store and what is missing.
    """
    models = store.models()
    model_id = model_id or pick_live_model(models)
    if model_id is None:
        raise BrainVizDataError(store.path, "no Universal-Encoder model with a checkpoint in this store; "
                                            "live prediction needs one (`python -m precompute all` trains it)")
    row = models[models["model_id"] == model_id]
    if row.empty:
        raise BrainVizDataError(store.path, f"model {model_id!r} is not in this store")
    row = row.iloc[0]
    if not row.get("checkpoint_path"):
        raise BrainVizDataError(store.path, f"model {model_id!r} has no checkpoint file")
    ck = _resolve_checkpoint(row["checkpoint_path"], store.path)
    if not ck.is_file():
        raise BrainVizDataError(ck, f"checkpoint of model {model_id!r} is missing; rebuild with "
                                    "`python -m precompute all`")
    if not row.get("backbone"):
        raise BrainVizDataError(store.path, f"model {model_id!r} does not name its backbone")
    return ck, row["backbone"], model_id


def get_live_predictor(store, model_id: str | None = None, device: str | None = None) -> LivePredictor:
    """One :class:`LivePredictor` per (checkpoint file version, backbone, device) per process."""
    ck, backbone, model_id = live_model_of(store, model_id)
    return _cached_predictor(str(ck), ck.stat().st_mtime_ns, backbone, device, model_id)


# --------------------------------------------------------------------------- helpers for the page
def pattern_similarity(pred: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Pearson correlation (n,) between one (V,) pattern and each row of a (n, V) bank."""
    p = np.asarray(pred, np.float64).ravel()
    B = np.asarray(bank, np.float64)
    p = p - p.mean()
    Bc = B - B.mean(1, keepdims=True)
    den = np.linalg.norm(Bc, axis=1) * (np.linalg.norm(p) or 1.0)
    return (Bc @ p) / np.where(den > 0, den, 1.0)


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
