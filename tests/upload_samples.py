"""Upload samples shared by the live-prediction tests: files that must be rejected with a clear message
(BAD_FILES) and files converted with a note (ACCEPTED_FILES)."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def png_bytes(img: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, format="PNG", **kw)
    return b.getvalue()


def good_png(size=(64, 48)) -> bytes:
    return png_bytes(Image.fromarray((RNG.random((size[1], size[0], 3)) * 255).astype(np.uint8)))


def bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A valid PNG header claiming w x h pixels, with a tiny IDAT (a decompression bomb header)."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b"")


def cmyk_jpeg() -> bytes:
    b = io.BytesIO()
    Image.fromarray((RNG.random((40, 40, 3)) * 255).astype(np.uint8)).convert("CMYK").save(b, format="JPEG")
    return b.getvalue()


def png16() -> bytes:
    return png_bytes(Image.fromarray((RNG.random((32, 32)) * 65535).astype(np.uint16)))


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "green", "blue")]
    b = io.BytesIO()
    frames[0].save(b, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return b.getvalue()


BAD_FILES = {  # name -> (bytes, expected fragment of the message)
    "text_renamed.png": (b"this is a plain text file, not an image\n" * 20, "not an image"),
    "truncated.png": (good_png((128, 128))[:400], "corrupt or truncated"),
    "one_pixel.png": (png_bytes(Image.new("RGB", (1, 1))), "too small"),
    "bomb.png": (bomb_png(), "too large"),
    "empty.png": (b"", "empty"),
}
ACCEPTED_FILES = {  # name -> (bytes, expected note fragment)
    "cmyk.jpg": (cmyk_jpeg(), "CMYK"),
    "sixteen_bit.png": (png16(), "16-bit"),
    "animated.gif": (animated_gif(), "first frame"),
}
