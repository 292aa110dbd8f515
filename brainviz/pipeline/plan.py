"""What a precompute run can compute on a dataset, and what it skips (why, and what would enable it).

:func:`evaluation_notes` and :func:`skipped_analyses` are derived from the dataset and the run's
configuration alone (no training), so ``precompute inspect`` shows them before any work,
``precompute all`` prints them at the end and the analyze stage stores them (table
``skipped_analyses``) for the pages, which say why a section is empty instead of suggesting a
rebuild that cannot help. Analyses add what they find only while running (e.g. too few PPA vertices)
with :meth:`~brainviz.pipeline.context.Context.skip`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..names import ROI_SETS
from ..paths import KRIEGESKORTE92, resolve_data_root
from ..errors import BrainVizDataError

__all__ = ["Skip", "evaluation_notes", "skipped_analyses", "format_skips"]


@dataclass(frozen=True)
class Skip:
    """One analysis not computed: ``analysis``, ``subject`` (None = the whole run), ``reason``, ``enable``."""

    analysis: str
    reason: str
    enable: str
    subject: str | None = None

    def as_row(self) -> dict:
        return asdict(self)


def evaluation_notes(ctx) -> dict[str, str]:
    """{subject: where its evaluation images come from} (:meth:`brainviz.splits.SubjectImages.describe`)."""
    return {s: ctx.images[s].describe() for s in ctx.subject_names}


def skipped_analyses(ctx) -> list[Skip]:
    """The analyses this dataset and configuration cannot give, each with its reason and remedy."""
    out: list[Skip] = []
    subjects = ctx.subject_names
    if len(subjects) < 2:
        why = f"the dataset has one subject ({subjects[0]})"
        out.append(Skip("Universal Encoder trained on many subjects (ue_multi) and its voxel clusters", why,
                        "a dataset with two or more subjects"))
        out.append(Skip("transfer curve (pre-train on other subjects, learn a new subject's embeddings)", why,
                        "a dataset with two or more subjects"))
    for s in subjects:
        if not ctx.has_test(s):
            out.append(Skip("evaluation (encoder scores, retrieval, RDMs, decoding)",
                            f"{s} has too few training images to hold any out and no test fMRI",
                            "more training images, or test_split/test_fmri", s))
        no_nc = "no repetitions and no noise-ceiling file of the subject's vertex counts"
        if ctx.noise_ceiling(s, "train")[0] is None:
            out.append(Skip("reliability threshold of the clusters (every vertex is clustered)", no_nc,
                            "single-trial repetitions (*_fmri_repeats) or --noise-ceiling DIR "
                            "(subjNN/{lh,rh}.npy in percent)", s))
        if ctx.has_test(s) and ctx.noise_ceiling(s, "test")[0] is None:
            out.append(Skip("noise ceiling and noise-normalized accuracy", no_nc,
                            "repetitions of the evaluation images or --noise-ceiling DIR", s))
        if ctx.has_test(s) and ctx.repeats(s, "test") is None:
            out.append(Skip("within-subject RDM noise ceiling and cross-validated RDMs",
                            "they need single-trial repetitions of the evaluation images, which the dataset "
                            "does not have", "a dataset with *_fmri_repeats", s))
        sub = ctx.dataset.subjects[s]
        if ctx.source(s) == ctx.main_source and not any(sub.roi_mask(n).any() for n in ROI_SETS):
            out.append(Skip("decoding per ROI set", f"{s} has none of the ROIs of report 003's ROI sets",
                            "roi_masks with the prf-visualrois / floc-* / streams classes", s))
    main = [s for s in ctx.main_subjects if ctx.has_test(s)]
    if len(main) >= 2:
        keys = ctx.images[main[0]].test_keys
        if not all(ctx.images[s].test_keys == keys for s in main):
            out.append(Skip("RSA noise ceiling across subjects",
                            "the subjects' evaluation images differ (it needs the same images in every subject)",
                            "test fMRI of shared images, or held-out images every subject saw"))
    elif len(subjects) > 1:
        out.append(Skip("RSA noise ceiling across subjects", "fewer than two subjects of one stimulus set "
                        "have evaluation images", "two or more subjects who saw the same images"))
    try:
        k92 = resolve_data_root(ctx.config.data_root) / KRIEGESKORTE92
    except BrainVizDataError:
        k92 = None
    if k92 is None or not k92.is_dir():
        out.append(Skip("92-image human-IT RSA (Kriegeskorte et al. 2008)", "the data root has no kriegeskorte92/",
                        "the 92-image data of rsagroup/rsatoolbox demos/92imageData in <data root>/kriegeskorte92"))
    tagged = int(ctx.tags.drop(columns="tags", errors="ignore").notna().any(axis=1).sum())
    if tagged < len(ctx.catalog):
        out.append(Skip("semantic tags of the images (cluster descriptions, in-silico sets by tag)",
                        f"only {tagged} of {len(ctx.catalog)} images carry tags (the NSD shared1000 HED tags)",
                        "tags exist only for the NSD shared1000 images; the others are described without tags"))
    return out + list(getattr(ctx, "runtime_skips", []))


def format_skips(skips: list[Skip]) -> list[str]:
    """Lines for the terminal: one per analysis and reason, naming the subjects it concerns."""
    groups: dict[tuple, list[str]] = {}
    for k in skips:
        groups.setdefault((k.analysis, k.reason, k.enable), []).extend([k.subject] if k.subject else [])
    return [f"- {analysis}" + (" (" + ", ".join(subs) + ")" if subs else "") + f": {reason}. To enable: {enable}."
            for (analysis, reason, enable), subs in groups.items()]
