"""Pixel-level early-visual model: Gabor contrast energy and CSS pRFs.

The compressive spatial summation (CSS) model (Kay et al. 2008, 2013): a
vertex's response is its Gaussian-weighted sum of local contrast energy,
raised to a compressive exponent (~0.5)::

    r(image) = ( sum_xy G(x, y; x0, y0, sigma) * E_image(x, y) ) ** n

``E`` is the contrast energy of a small Gabor filter bank (3 spatial
frequencies x 4 orientations, quadrature pairs) applied with FFTs to the
grayscale image downsampled to ``size x size`` pixels. ``G`` is a 2-D
Gaussian normalised over the whole visual field, so pRFs partly off the image
are driven less.

Coordinates are in **field units**: the image spans [-1, 1] in x (left ->
right) and y (bottom -> top); degrees = field units x (field of view / 2).
"""
from __future__ import annotations

import numpy as np

#: Spatial frequencies (cycles per image) and orientations (degrees) of the bank.
SFS = (4.0, 8.0, 16.0)
ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)
DEFAULT_SIZE = 64
CSS_EXPONENT = 0.5
_BANDWIDTH_OCT = 1.0


def gabor_bank(size: int = DEFAULT_SIZE, sfs=SFS, orientations=ORIENTATIONS) -> np.ndarray:
    """(n_sf * n_orient, size, size) one-sided Gabor filters in the Fourier domain.

    Each filter is a Gaussian bump (1-octave bandwidth, peak 1) at one spatial
    frequency and orientation on one side of the spectrum only, so the inverse
    FFT of image x filter is the complex (quadrature-pair) response whose
    squared magnitude is the local contrast energy. Order: sf-major.
    """
    f = np.fft.fftfreq(size) * size  # cycles per image
    fy, fx = np.meshgrid(f, f, indexing="ij")
    # half-width at half-height of a b-octave band = sf * (2^(b/2) - 2^(-b/2)) / 2
    hwhh = (2 ** (_BANDWIDTH_OCT / 2) - 2 ** (-_BANDWIDTH_OCT / 2)) / 2
    out = []
    for sf in sfs:
        sig = sf * hwhh / np.sqrt(2 * np.log(2))
        for th in np.deg2rad(orientations):
            u = fx * np.cos(th) + fy * np.sin(th)
            v = -fx * np.sin(th) + fy * np.cos(th)
            out.append(np.exp(-((u - sf) ** 2 + v ** 2) / (2 * sig ** 2)))
    return np.asarray(out)


def channel_energy(gray: np.ndarray, bank: np.ndarray | None = None) -> np.ndarray:
    """(n_images, n_channels, size, size) float32 Gabor energy of grayscale images.

    ``gray``: (n_images, size, size) luminance in [0, 1]. Each image's mean is
    subtracted (contrast); energy is ``|ifft2(fft2(contrast) * filter)|**2``.
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim == 2:
        gray = gray[None]
    size = gray.shape[-1]
    bank = gabor_bank(size) if bank is None else bank
    c = gray - gray.mean(axis=(1, 2), keepdims=True)
    F = np.fft.fft2(c)
    resp = np.fft.ifft2(F[:, None] * bank[None], axes=(-2, -1))
    return (resp.real ** 2 + resp.imag ** 2).astype(np.float32)


def contrast_energy(gray: np.ndarray, bank: np.ndarray | None = None) -> np.ndarray:
    """(n_images, size, size) float32 contrast energy summed over all Gabor channels."""
    return channel_energy(gray, bank).sum(axis=1)


def pixel_grid(size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(size*size,) x and y field coordinates of the pixel centres (row-major, y up)."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(-c, c, indexing="ij")
    return xx.ravel(), yy.ravel()


def prf_weights(prf: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """(n_vertices, size*size) Gaussian pooling weights of pRFs ``prf`` (n, 3): x, y, sigma (field units).

    Each Gaussian integrates to 1 over the infinite plane, so the weights of a
    pRF fully inside the image sum to ~1 and those of a pRF off the image to ~0.
    """
    prf = np.atleast_2d(np.asarray(prf, dtype=np.float64))
    px, py = pixel_grid(size)
    area = (2.0 / size) ** 2
    dx = px[None] - prf[:, :1]
    dy = py[None] - prf[:, 1:2]
    s2 = prf[:, 2:3] ** 2
    return (np.exp(-(dx ** 2 + dy ** 2) / (2 * s2)) * area / (2 * np.pi * s2)).astype(np.float32)


def prf_response(energy: np.ndarray, prf: np.ndarray, exponent: float = CSS_EXPONENT) -> np.ndarray:
    """CSS pRF responses (n_images, n_vertices) float32.

    ``energy``: (n_images, size, size) contrast energy (:func:`contrast_energy`);
    ``prf``: (n_vertices, 3) x, y, sigma in field units.
    """
    energy = np.asarray(energy, dtype=np.float32)
    n, size = energy.shape[0], energy.shape[-1]
    w = prf_weights(prf, size)
    drive = energy.reshape(n, -1) @ w.T
    return np.power(np.maximum(drive, 0.0), exponent).astype(np.float32)


def fraction_in_view(prf: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """(n_vertices,) fraction of each pRF's Gaussian mass that falls on the image."""
    return prf_weights(prf, size).sum(axis=1)


#: Names of :func:`lowlevel_features` columns.
LOWLEVEL_NAMES = ("centre_sf4", "centre_sf8", "centre_sf16", "ori_0", "ori_45", "ori_90", "ori_135",
                  "periphery_sf16", "luminance", "rms_contrast")


def lowlevel_features(gray: np.ndarray, chan: np.ndarray) -> np.ndarray:
    """(n_images, 10) pixel statistics (see :data:`LOWLEVEL_NAMES`), raw (not standardised).

    Central energy per spatial frequency (Gaussian, sigma 0.35 field units),
    whole-image energy per orientation, high-SF energy outside radius 0.5,
    mean luminance and RMS contrast. ``chan``: (n, 12, size, size) from
    :func:`channel_energy`; ``gray``: (n, size, size).
    """
    n, nc, size, _ = chan.shape
    px, py = pixel_grid(size)
    r2 = px ** 2 + py ** 2
    centre = np.exp(-r2 / (2 * 0.35 ** 2))
    centre /= centre.sum()
    periph = (r2 > 0.25).astype(np.float64)
    periph /= periph.sum()
    c = chan.reshape(n, len(SFS), len(ORIENTATIONS), -1).astype(np.float64)
    feats = [c.sum(2) @ centre,                       # (n, 3)
             c.sum(1).mean(-1),                       # (n, 4)
             (c[:, -1].sum(1) @ periph)[:, None],     # (n, 1)
             gray.reshape(n, -1).mean(1)[:, None],
             gray.reshape(n, -1).std(1)[:, None]]
    f = np.concatenate(feats, axis=1)
    f[:, :8] = np.sqrt(np.maximum(f[:, :8], 0))
    return f.astype(np.float32)
