"""Image thumbnails as the store keeps them (table ``thumbnails``): what every page shows.

A thumbnail is the image as the backbone sees its colours (:func:`brainviz.features.preprocess.to_rgb`:
EXIF orientation applied, transparent pixels on NSD gray, any mode to 8-bit RGB), shrunk so that its
longer side is at most :data:`THUMBNAIL_SIDE` px (never enlarged; Pillow's ``thumbnail``, Lanczos),
saved as a JPEG of quality :data:`JPEG_QUALITY`. 256 px is the largest size a page shows a stored
image at (four to a row on a wide page); the demo brain's 200-px NSD images, the 128-px vim-1 images and
the 175-px 92-image set keep their size.

Measured on the seed-0 demo store's 2,811 images (969 NSD, 1,750 vim-1, 92 from the 92-image set):
23.3 MB as JPEG (quality 90: 14.1 + 8.6 + 0.6 MB). Lossless would cost 4-5 times more (60 of its 200-px NSD
images: 14.9 KB as JPEG, 58.9 KB as lossless WebP, 74.5 KB as PNG) for what is shown at 256 px. A picture is
not the image file for the encoder: the multi-subject model's predictions of these 60 thumbnails vs their
PNG files, per image, correlate (over vertices, after removing the mean over images) 0.989 in the median,
0.957 at worst; the pages predict from thumbnails only where the store holds no prediction (the Live page's
example images; In-silico sets of a model other than the live one).

:func:`thumbnails_of_files` decodes and encodes on ``workers`` threads (Pillow releases the GIL while
it decodes, resizes and encodes); results keep the order of the input.
"""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from .errors import BrainVizDataError

#: Longest side of a stored thumbnail, px (images are never enlarged).
THUMBNAIL_SIDE = 256
#: JPEG quality of stored thumbnails.
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Thumbnail:
    """One thumbnail: ``data`` (the bytes of a JPEG file), its ``format`` and size in pixels."""

    data: bytes
    width: int
    height: int
    format: str = "jpeg"


def thumbnail(image: Image.Image | np.ndarray, side: int = THUMBNAIL_SIDE, name: str = "image") -> Thumbnail:
    """The :class:`Thumbnail` of a PIL image or an (H, W[, 3]) uint8 array (``name``: for messages)."""
    from .features.preprocess import to_rgb

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, np.uint8))
    if image.width < 1 or image.height < 1:
        raise BrainVizDataError(name, f"empty image of size {image.size}")
    rgb = to_rgb(image)
    if rgb is image:
        rgb = image.copy()
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=JPEG_QUALITY)
    return Thumbnail(buf.getvalue(), rgb.width, rgb.height)


def thumbnail_of_file(path: str | Path, side: int = THUMBNAIL_SIDE) -> Thumbnail:
    """The :class:`Thumbnail` of an image file (a JPEG is decoded at the smallest scale that still gives
    ``side`` px); BrainVizDataError naming the file when it cannot be read."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))  # JPEG: DCT-scaled decode; other formats: no effect
            im.load()
            return thumbnail(im, side, name=str(path))
    except BrainVizDataError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BrainVizDataError(path, f"cannot make a thumbnail: not a readable image ({type(exc).__name__}: {exc})") \
            from None


def thumbnails_of_files(paths: Sequence[str | Path], workers: int = 1, side: int = THUMBNAIL_SIDE,
                        chunk: int = 2048) -> Iterable[tuple[int, list[Thumbnail]]]:
    """Thumbnails of ``paths`` in chunks of ``chunk`` (bounded memory for NSD-sized image sets): yields
    ``(start, thumbnails of paths[start:start + chunk])`` in order, made on ``workers`` threads."""
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        for start in range(0, len(paths), chunk):
            part = paths[start:start + chunk]
            yield start, list(pool.map(lambda p: thumbnail_of_file(p, side), part))


__all__ = ["THUMBNAIL_SIDE", "JPEG_QUALITY", "Thumbnail", "thumbnail", "thumbnail_of_file", "thumbnails_of_files"]
