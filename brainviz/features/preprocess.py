"""Image loading and backbone preprocessing (PIL + numpy only, no torchvision).

Every backbone sees images the same way: any PIL mode is converted to RGB
(transparent pixels composited onto mid-gray, the background of the NSD
display), the central square is cropped (NSD stimuli are square crops too) and
resized with bicubic filtering to the backbone's resolution, then normalized
with the backbone's per-channel mean and std.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BrainVizDataError

#: RGB colour that transparent pixels are composited onto (NSD's gray screen).
BACKGROUND = (128, 128, 128)

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


def load_image(path: str | Path) -> Image.Image:
    """Read an image file fully into memory (first frame of animations).

    Raises
    ------
    BrainVizDataError
        When the file is missing or is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise BrainVizDataError(path, "image file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BrainVizDataError(path, f"not a readable image ({type(exc).__name__}: {exc})") from exc


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer or float grayscale -> 8-bit 'L', scaled (not clipped)."""
    arr = np.asarray(img, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    top = float(finite.max()) if finite.size else 0.0
    if img.mode.startswith("I;16"):
        arr = arr / 257.0
    elif img.mode == "F" and top <= 1.0:
        arr = arr * 255.0
    elif top > 255.0:
        arr = arr * (255.0 / (65535.0 if top <= 65535.0 else top))
    arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Return ``img`` as an 8-bit RGB image (EXIF orientation applied).

    Handles grayscale ('1', 'L', 16-bit 'I;16', 'I', 'F'), palette (with or
    without transparency), alpha modes (composited onto ``background``), CMYK,
    YCbCr, LAB and HSV.
    """
    if img.width < 1 or img.height < 1:
        raise BrainVizDataError(getattr(img, "filename", None) or "image", f"empty image of size {img.size}")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF must not make an image unusable
        pass
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_l(img).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return img.convert("RGB")


def center_square_resize(img: Image.Image, size: int) -> Image.Image:
    """Crop the central square of ``img`` and resize it to ``size`` x ``size`` (bicubic)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2.0, (h - side) / 2.0
    box = (left, top, left + side, top + side)
    if (w, h) == (size, size):
        return img
    gap = 2.0 if side >= 3 * size else None  # fast multi-step reduction for large uploads
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=gap)


class Preprocessor:
    """Callable ``PIL.Image | path -> torch.Tensor (3, size, size) float32``, normalized.

    Parameters
    ----------
    size : int
        Output side length in pixels (the backbone's input resolution).
    mean, std : sequence of 3 floats
        Per-channel normalization on the [0, 1] scale:
        ``x = (pixel / 255 - mean) / std``.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]):
        self.size = int(size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        std_arr = np.asarray(self.std, dtype=np.float32)
        self._scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
        self._offset = (-np.asarray(self.mean, dtype=np.float32) / std_arr).astype(np.float32)

    def _rgb(self, image: Image.Image | str | Path) -> Image.Image:
        if isinstance(image, (str, Path)):
            image = load_image(image)
        elif not isinstance(image, Image.Image):
            raise BrainVizDataError("image", f"expected a PIL image or a path, got {type(image).__name__}")
        return center_square_resize(to_rgb(image), self.size)

    def fill(self, image: Image.Image | str | Path, out: np.ndarray) -> np.ndarray:
        """Write the preprocessed image into ``out`` ((3, size, size) float32, e.g. a slot of a batch).

        No temporaries: the uint8 pixels are read channel-major and scaled into
        ``out``, then offset in place; the same two float32 roundings per value
        (``pixel * scale + offset``) as :meth:`image_array`, so the values are identical.
        """
        pixels = np.asarray(self._rgb(image))  # (size, size, 3) uint8
        np.multiply(pixels.transpose(2, 0, 1), self._scale[:, None, None], out=out)
        out += self._offset[:, None, None]
        return out

    def image_array(self, image: Image.Image | str | Path) -> np.ndarray:
        """Return the preprocessed image as (3, size, size) float32 numpy."""
        return self.fill(image, np.empty((3, self.size, self.size), dtype=np.float32))

    def __call__(self, image: Image.Image | str | Path) -> torch.Tensor:
        """Return the preprocessed image as a (3, size, size) float32 tensor."""
        return torch.from_numpy(self.image_array(image))

    def batch(self, images: Sequence[Image.Image | str | Path], out: torch.Tensor | None = None) -> torch.Tensor:
        """Return a (B, 3, size, size) float32 tensor for a list of images.

        ``out``: an optional (>= B, 3, size, size) float32 CPU tensor to fill
        (e.g. a reused or pinned buffer); its first B rows are returned.
        """
        n = len(images)
        if out is None:
            out = torch.empty((n, 3, self.size, self.size), dtype=torch.float32)
        elif out.dtype != torch.float32 or out.device.type != "cpu" or tuple(out.shape[1:]) != (3, self.size, self.size) \
                or out.shape[0] < n or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous float32 CPU tensor (>= {n}, 3, {self.size}, {self.size})")
        out = out[:n]
        arr = out.numpy()
        for i, im in enumerate(images):
            self.fill(im, arr[i])
        return out
