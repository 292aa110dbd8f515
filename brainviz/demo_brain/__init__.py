"""The simulated demo brain: real stimuli, tags, anatomy and noise levels; planted, known tuning.

Public entry point: :func:`build_demo_brain`. The pixel-level pRF model is
exposed for validation (:func:`contrast_energy`, :func:`prf_response`).
See ``../shared/specs/demo-brain.md`` and docs/ARCHITECTURE.md.
"""
from .anatomy import PATCHES, REGIONS, hemi_template, subject_anatomy
from .build import FIELD_DEG, GENERATOR_VERSION, build_demo_brain
from .prf import contrast_energy, prf_response

__all__ = ["build_demo_brain", "contrast_energy", "prf_response",
           "hemi_template", "subject_anatomy", "PATCHES", "REGIONS", "FIELD_DEG", "GENERATOR_VERSION"]
