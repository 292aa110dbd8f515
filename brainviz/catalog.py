"""The images and responses of a dataset, indexed by image key, for the pipeline.

An image key is ``f"{dataset}-{id:05d}"`` (``nsd-02950``, ``vim1-00012``), the
same key whatever subject saw the image, so subjects who saw the same image
share its features.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data.algonauts import AlgonautsDataset, AlgonautsSubject, parse_image_name
from .splits import SubjectFiles, SubjectImages, plan_splits

__all__ = ["image_key", "subject_files", "dataset_images", "subject_images", "image_catalog", "rows_for",
           "SubjectImages"]


def image_key(path: str | Path) -> str:
    """``train-0001_nsd-02950.png`` -> ``nsd-02950``."""
    info = parse_image_name(path)
    return f"{info['dataset']}-{int(info['id']):05d}"


def subject_files(subject: AlgonautsSubject) -> SubjectFiles:
    """Image keys of one subject's files: training rows, test rows, source, whether test responses exist."""
    train = [image_key(p) for p in subject.train_images]
    test = [image_key(p) for p in subject.test_images]
    source = parse_image_name(subject.train_images[0])["dataset"] if train else "unknown"
    return SubjectFiles(train, test, str(source), subject.has_responses("test"))


def dataset_images(dataset: AlgonautsDataset) -> dict[str, SubjectImages]:
    """{subject: SubjectImages}: each subject's fitted and evaluation images (:mod:`brainviz.splits`)."""
    return plan_splits({n: subject_files(s) for n, s in dataset.subjects.items()})


def subject_images(subject: AlgonautsSubject) -> SubjectImages:
    """The fit / evaluation split of one subject on its own (:func:`brainviz.splits.plan_splits`)."""
    return plan_splits({subject.name: subject_files(subject)})[subject.name]


def image_catalog(dataset: AlgonautsDataset) -> pd.DataFrame:
    """Every distinct image of the dataset: columns image_key, dataset, id, path.

    One row per key (the first file found is used as the path), sorted by key.
    """
    rows = {}
    for s in dataset.subjects.values():
        for p in s.train_images + s.test_images:
            k = image_key(p)
            if k not in rows:
                info = parse_image_name(p)
                rows[k] = {"image_key": k, "dataset": info["dataset"], "id": int(info["id"]), "path": str(p)}
    return pd.DataFrame(sorted(rows.values(), key=lambda r: r["image_key"]),
                        columns=["image_key", "dataset", "id", "path"])


def rows_for(keys: list[str], all_keys: list[str]) -> np.ndarray:
    """Row indices of ``keys`` inside ``all_keys`` (e.g. a FeatureSet's key order)."""
    index = {k: i for i, k in enumerate(all_keys)}
    return np.array([index[k] for k in keys], dtype=np.int64)
