"""Measurement noise of the demo brain, calibrated to real NSD noise ceilings.

Noise ceiling (NC) convention of NSD / Algonauts 2023, as a fraction (NSD
publishes ``100 * NC``, percent; :func:`load_real_noise_ceiling` converts)::

    ncsnr = sqrt(signal var) / sqrt(noise var)
    NC    = ncsnr**2 / (ncsnr**2 + 1 / n_repeats)

with single trials z-scored per session so that signal var + noise var = 1
(estimated back by :func:`brainviz.metrics.noise_ceiling_from_repeats` with
``method="nsd"``). Each vertex gets a target NC drawn from a real subject's NC
distribution; its single trials are ``sqrt(signal var) * clean + sqrt(noise var) * noise``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.noise_ceiling import read_noise_ceiling
from ..errors import BrainVizDataError
from ..metrics import zscore
from ..paths import NOISE_CEILINGS, resolve_data_root

N_REPEATS = 3
SESSION_TRIALS = 750
#: Fraction of the noise variance shared by all vertices on a trial (global fluctuations).
SHARED_NOISE = 0.1
#: ncsnr multiplier turning 7T NSD noise ceilings into 3T-like ones.
SNR_3T = 0.5


def nc_to_ncsnr(nc: np.ndarray, n_repeats: int = N_REPEATS) -> np.ndarray:
    """ncsnr from NC (fraction): inverse of :func:`ncsnr_to_nc`."""
    f = np.clip(np.asarray(nc, dtype=np.float64), 0.0, 0.999)
    return np.sqrt(f / (n_repeats * (1 - f)))


def ncsnr_to_nc(ncsnr: np.ndarray, n_repeats: int = N_REPEATS) -> np.ndarray:
    """NC as a fraction: ``ncsnr**2 / (ncsnr**2 + 1/n_repeats)``."""
    s2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    return s2 / (s2 + 1.0 / n_repeats)


def load_real_noise_ceiling(subject: str, data_root: str | Path | None = None) -> np.ndarray:
    """(n,) the finite real NSD noise ceilings (fractions) of ``subject`` (e.g. ``"subj01"``), lh then rh: the
    distribution the demo brain draws its targets from (read by :func:`brainviz.data.noise_ceiling.read_noise_ceiling`)."""
    folder = resolve_data_root(data_root) / NOISE_CEILINGS
    nc = read_noise_ceiling(folder, subject)
    nc = nc[np.isfinite(nc)]
    if nc.size == 0:
        raise BrainVizDataError(folder / subject, "no finite noise ceilings")
    return nc


def assign_target_nc(score: np.ndarray, real_nc: np.ndarray, rng: np.random.Generator,
                     snr_scale: float = 1.0) -> np.ndarray:
    """(n,) target NC: a sample of ``real_nc`` given to vertices in the rank order of ``score``.

    The vertex with the highest score gets the highest sampled NC, so the
    target distribution is the real one while its layout follows the score.
    ``snr_scale`` multiplies ncsnr (e.g. :data:`SNR_3T`).
    """
    n = len(score)
    sample = rng.choice(real_nc, n, replace=n > len(real_nc))
    if snr_scale != 1.0:
        sample = ncsnr_to_nc(nc_to_ncsnr(sample) * snr_scale)
    out = np.empty(n)
    out[np.argsort(score, kind="stable")] = np.sort(sample)
    return out


def simulate_trials(clean: np.ndarray, target_nc: np.ndarray, rng: np.random.Generator,
                    n_repeats: int = N_REPEATS, session_trials: int = SESSION_TRIALS,
                    shared: float = SHARED_NOISE) -> tuple[np.ndarray, np.ndarray]:
    """Single-trial responses with the target noise ceilings.

    Parameters
    ----------
    clean : (n_images, n_vertices) standardised clean responses.
    target_nc : (n_vertices,) fractions.

    Returns
    -------
    repeats : (n_images, n_repeats, n_vertices) float32, z-scored per session
        (trials in random order, ``session_trials`` per session).
    signal : (n_images, n_vertices) float32, ``sqrt(signal var) * clean`` (noise-free).
    """
    n_img, n_v = clean.shape
    s = nc_to_ncsnr(target_nc, n_repeats)
    sig_var = s ** 2 / (1 + s ** 2)
    sig_sd = np.sqrt(sig_var).astype(np.float32)
    noise_sd = np.sqrt(1 - sig_var).astype(np.float32)
    signal = (clean.astype(np.float32) * sig_sd[None])
    n_trials = n_img * n_repeats
    order = rng.permutation(n_trials)          # trial t shows image order[t] // n_repeats
    trials = np.empty((n_trials, n_v), np.float32)
    glob = rng.standard_normal(n_trials).astype(np.float32)
    a, b = np.float32(np.sqrt(1 - shared)), np.float32(np.sqrt(shared))
    for start in range(0, n_trials, session_trials):
        idx = order[start:start + session_trials]
        eps = rng.standard_normal((len(idx), n_v), dtype=np.float32)
        x = signal[idx // n_repeats] + noise_sd[None] * (a * eps + b * glob[start:start + len(idx), None])
        trials[idx] = zscore(x)  # per session (float32)
    repeats = trials.reshape(n_img, n_repeats, n_v)
    return repeats, signal
