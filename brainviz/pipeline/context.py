"""Pipeline configuration and the shared, lazily loaded inputs of every stage."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalog import SubjectImages, dataset_images, image_catalog
from ..data.algonauts import AlgonautsDataset, load_dataset
from ..data.noise_ceiling import find_noise_ceiling, read_noise_ceiling
from ..errors import BrainVizDataError
from ..paths import DEFAULT_CACHE_DIR, DEFAULT_OUTPUT_DIR, DEFAULT_STORE, NOISE_CEILINGS, resolve_data_root


@dataclass
class PipelineConfig:
    """Everything a precompute run depends on (saved into the store's provenance).

    ``transfer_sizes``: numbers of new-subject training images for the transfer
    curve (0 = all). ``quick``: tiny settings for tests and smoke runs. ``jobs``: independent
    fits run side by side (:mod:`brainviz.jobs`; None = :func:`brainviz.jobs.default_workers`).
    ``noise_ceiling``: a folder of per-vertex noise ceilings ``subjNN/{lh,rh}.npy`` in percent (the
    Algonauts 2023 files, :mod:`brainviz.data.noise_ceiling`), used where the dataset has no repetitions;
    every subject's files must match its vertex counts. None: the data root's
    ``algonauts2023_noise_ceiling/`` for the subjects whose vertex counts it matches.
    """

    dataset: Path
    store: Path = DEFAULT_STORE
    work_dir: Path = DEFAULT_OUTPUT_DIR / "work"
    cache_dir: Path = DEFAULT_CACHE_DIR
    data_root: Path | None = None
    backbone: str = "efficientnet-lite0"
    weights: str | None = None
    seed: int = 0
    ue_overrides: dict = field(default_factory=dict)
    transfer_subject: str | None = None
    transfer_sizes: tuple[int, ...] = (25, 50, 100, 200, 0)
    cluster_ks: tuple[int, ...] = (4, 6, 8, 10, 12, 14, 16)
    n_perm: int = 200
    quick: bool = False
    progress: bool = True
    jobs: int | None = None
    noise_ceiling: Path | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


class Context:
    """Inputs shared by the stages, loaded once and on demand.

    Attributes
    ----------
    config : PipelineConfig
    dataset : the validated Algonauts-layout dataset
    images : {subject: SubjectImages} row order of each subject's responses as image keys
    catalog : DataFrame of every distinct image (image_key, dataset, id, path)
    timings : {stage: seconds}
    """

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.dataset: AlgonautsDataset = load_dataset(config.dataset, validate=True)
        self.images: dict[str, SubjectImages] = dataset_images(self.dataset)
        self.catalog: pd.DataFrame = image_catalog(self.dataset)
        self.timings: dict[str, float] = {}
        self.runtime_skips: list = []  # what the analyses found they could not compute (pipeline.plan.Skip)
        self.work = Path(config.work_dir)  # created by the first write into it (brainviz.atomic, workdir)

    # ---- subjects
    @property
    def subject_names(self) -> list[str]:
        return list(self.dataset.subjects)

    def source(self, subject: str) -> str:
        return self.images[subject].source

    @property
    def main_source(self) -> str:
        """The stimulus dataset most subjects share (``nsd`` for the demo brain)."""
        sources = [self.source(s) for s in self.subject_names]
        return max(set(sources), key=sources.count)

    @property
    def main_subjects(self) -> list[str]:
        """Subjects of the main stimulus dataset (they share test images)."""
        return [s for s in self.subject_names if self.source(s) == self.main_source]

    @property
    def transfer_subject(self) -> str | None:
        """The subject held out of pre-training for the transfer curve (default: the first)."""
        if self.config.transfer_subject:
            if self.config.transfer_subject not in self.dataset.subjects:
                raise BrainVizDataError("--transfer-subject", f"{self.config.transfer_subject!r} is not a subject of {self.dataset.path}")
            return self.config.transfer_subject
        return self.main_subjects[0] if len(self.subject_names) > 1 else None

    def responses(self, subject: str, split: str, lazy: bool = False) -> np.ndarray:
        """(n_images, V) float32 responses of ``subject`` (lh then rh): ``"train"`` the fitted images
        (rows of ``images[subject].train_keys``), ``"test"`` the evaluation images (``test_keys``: the test
        fMRI, or the images held out of the training responses; :mod:`brainviz.splits`).

        ``lazy``: the same rows as a lazy array over the memory-mapped files
        (:class:`~brainviz.data.streaming.RowConcat`, ``RowSubset``): nothing is read until rows are indexed."""
        im, sub = self.images[subject], self.dataset.subjects[subject]
        if lazy:
            from ..data.streaming import RowSubset, subject_responses

            if split == "train" or im.held_out:
                full = subject_responses(sub, "train")
                rows = im.train_rows if split == "train" else im.test_rows
                whole = split == "train" and len(im.train_rows) == len(sub.train_images)
                return full if whole else RowSubset(full, rows)
            if split != "test":
                raise ValueError(f"split must be 'train' or 'test', got {split!r}")
            return subject_responses(sub, "test")
        if split == "train":
            return sub.responses("train", rows=None if len(im.train_rows) == len(sub.train_images) else im.train_rows)
        if split != "test":
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if im.held_out:
            return sub.responses("train", rows=im.test_rows)
        return sub.responses("test")

    def repeats(self, subject: str, split: str) -> np.ndarray | None:
        """(n_images, n_repeats, V) single trials of the ``split`` images (as :meth:`responses`), or None when
        the dataset has no repetitions for them."""
        im, sub = self.images[subject], self.dataset.subjects[subject]
        file_split = "train" if split == "train" or im.held_out else "test"
        if not sub.has_repeats(file_split):
            return None
        rows = im.train_rows if split == "train" else im.test_rows
        return sub.repeats(file_split, rows=rows)

    def has_test(self, subject: str) -> bool:
        """Whether ``subject`` has evaluation responses (test fMRI or held-out training images)."""
        return len(self.images[subject].test_keys) > 0

    # ---- reliability
    @cached_property
    def noise_ceiling_folder(self) -> Path | None:
        """The folder of published per-vertex noise ceilings (``config.noise_ceiling``, else the data
        root's ``algonauts2023_noise_ceiling/`` when it exists), or None."""
        if self.config.noise_ceiling is not None:
            folder = Path(self.config.noise_ceiling)
            if not folder.is_dir():
                raise BrainVizDataError(folder, "noise-ceiling folder is missing (--noise-ceiling)")
            return folder
        try:
            folder = resolve_data_root(self.config.data_root) / NOISE_CEILINGS
        except BrainVizDataError:
            return None
        return folder if folder.is_dir() else None

    def noise_ceiling(self, subject: str, split: str = "train") -> tuple[np.ndarray | None, str]:
        """``(nc, source)``: (V,) per-vertex noise ceiling (fraction) of ``subject`` and where it comes from.

        The one noise-ceiling policy of the pipeline. ``split="train"`` (reliability: which vertices are
        clustered) estimates it from the repetitions of the FITTED images only; ``split="test"`` (noise-
        normalized accuracy) from the repetitions of the evaluation images. Without repetitions: the
        published noise ceilings of the dataset (:attr:`noise_ceiling_folder`, matched by subject and vertex
        count); else ``(None, reason)``: no reliability estimate.
        """
        from ..metrics import noise_ceiling_from_repeats

        reps = self.repeats(subject, split)
        if reps is not None:
            what = "fitted" if split == "train" else "evaluation"
            return noise_ceiling_from_repeats(reps), f"repetitions of the {what} images"
        folder = self.noise_ceiling_folder
        counts = self.dataset.subjects[subject].n_vertices
        if self.config.noise_ceiling is not None:  # given explicitly: it must describe every subject
            return read_noise_ceiling(folder, subject, counts), f"noise-ceiling files ({folder})"
        nc, why = find_noise_ceiling(folder, subject, counts)
        if nc is not None:
            return nc, f"noise-ceiling files ({folder})"
        return None, f"none (no repetitions in the dataset; noise-ceiling files: {why})"

    # ---- features
    @property
    def random_weights(self) -> bool:
        """True when the backbone runs on a random initialization (open_clip / dinov2 without weights)."""
        from ..features.weights import random_init

        return random_init(self.config.backbone, self.config.weights)

    @cached_property
    def weights_spec(self):
        """:class:`~brainviz.features.weights.WeightsSpec` of this run's backbone weights (hashes a
        weights file once; the store records it, live use must find the same weights)."""
        from ..features.weights import weights_spec

        return weights_spec(self.config.backbone, self.config.weights, self.config.seed)

    @cached_property
    def features(self):
        """FeatureSet of every catalog image (memory-mapped, cached on disk)."""
        from ..features import cached_features

        with self.timed("features"):
            return cached_features(self.config.backbone, self.catalog.image_key.tolist(),
                                   self.catalog.path.tolist(), Path(self.config.cache_dir) / "features",
                                   weights=self.config.weights, seed=self.config.seed,
                                   progress=self.config.progress)

    def layers(self, keys: list[str]) -> np.ndarray:
        """(n, L, P, C) features of ``keys`` (in that order), in the cache's float16: half the memory of
        float32 (at NSD size 1.5 instead of 3.1 GB per subject); the Universal Encoder casts each batch
        to float32, so its models are the same as from a float32 copy."""
        fs = self.features
        idx = np.asarray(fs.indices(keys))
        out = np.empty((len(idx),) + tuple(fs.layers.shape[1:]), fs.layers.dtype)  # owned: the UE shares it
        for i in range(0, len(idx), 256):  # bounded temporaries
            out[i:i + 256] = fs.layers[idx[i:i + 256]]
        return out

    def feature_subset(self, keys: list[str]):
        return self.features.subset(keys)

    def workers(self, device: str | None = None) -> int:
        """How many independent fits run at once (``config.jobs``, else :func:`brainviz.jobs.default_workers`)."""
        from ..jobs import default_workers

        return int(self.config.jobs) if self.config.jobs else default_workers(device)

    # ---- tags and ground truth
    @cached_property
    def tags(self) -> pd.DataFrame:
        """Category scores of every catalog image (NaN where the image set has no tags)."""
        from ..data.images import CATEGORIES, load_nsd_shared1000

        frames = []
        if (self.catalog.dataset == "nsd").any():
            try:
                frames.append(load_nsd_shared1000(self.config.data_root, expected=None).scores)
            except BrainVizDataError:
                pass  # real NSD images outside shared1000 have no tags here
        scores = pd.concat(frames) if frames else pd.DataFrame(columns=[*CATEGORIES, "tags"])
        scores = scores[~scores.index.duplicated()]
        return scores.reindex(self.catalog.image_key)

    def planted_regions(self, subject: str) -> np.ndarray | None:
        """(V,) planted region name per vertex (demo brain ground truth), None for real data."""
        return self.dataset.planted_regions(subject)

    # ---- bookkeeping
    def skip(self, analysis: str, reason: str, enable: str, subject: str | None = None) -> None:
        """Record an analysis that could not be computed while running (stored, shown by the CLI and pages)."""
        from .plan import Skip

        self.runtime_skips.append(Skip(analysis, reason, enable, subject))

    @contextmanager
    def timed(self, stage: str):
        """``with``: add the block's seconds to ``timings[stage]`` (and show it as a step of the progress display)."""
        from ..progress import substep

        t0 = time.perf_counter()
        try:
            with substep(stage):
                yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0
