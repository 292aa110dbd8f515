"""Which images each subject's models are fitted on and which they are evaluated on.

Every score BrainViz shows (encoder r, noise-normalized accuracy, retrieval, transfer curve,
RDMs and RSA, decoding, the pair model) is computed on images the models never saw. The
evaluation images of a subject are, by this rule (deterministic: the same for every run on the
same dataset, whatever ``--seed``):

1. **Test fMRI**: a subject with test responses (``test_split/test_fmri/``, which the demo
   brain writes) is fitted on all its training images and evaluated on its test images.
2. **Held out of the training images**: the Algonauts 2023 release has no test fMRI, so part
   of the training images are held out of fitting and used for evaluation instead:

   * the subjects of one stimulus dataset (e.g. all NSD subjects) without test fMRI hold out
     the SAME images, chosen among the training images every one of them saw (NSD's shared
     images), so that RDMs, RSA across subjects, the transfer curve and joint clusters compare
     subjects on identical images: :func:`held_out_count` of the group's smallest training set
     (10 %), or all shared images when they are fewer;
   * a subject alone in its group, or a group sharing fewer than :data:`MIN_SHARED` images,
     holds out :func:`held_out_count` of its own training images.

   Which images: the first in a fixed pseudo-random order of image keys
   (:func:`held_out_order`: BLAKE2b of :data:`SPLIT_SALT` + key), so any subject that saw an
   image ranks it the same way, and the choice does not depend on file order or on the seed.

On the real release (8 NSD subjects, 8,779-9,841 training images each, of which several
hundred shared images every subject saw), rule 2 holds out up to 10 % of the smallest
training set, taken from the shared images.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

#: Fraction of a subject's training images held out for evaluation when it has no test fMRI.
HELD_OUT_FRACTION = 0.10
#: ... but at least this many images (or a quarter of the training images when there are fewer than 80).
MIN_HELD_OUT = 20
#: A group of subjects holds out shared images only when they share at least this many.
MIN_SHARED = 20
#: Salt of :func:`held_out_order` (changing it changes every held-out split: never change it silently).
SPLIT_SALT = "brainviz-held-out-v1"

#: ``SubjectImages.evaluation`` values.
EVAL_TEST = "test"
EVAL_HELD_OUT = "held-out"


@dataclass(frozen=True)
class SubjectImages:
    """A subject's images: which are fitted, which are evaluated, and where their responses are.

    Attributes
    ----------
    subject : ``subjNN``
    train_keys : (n_fit,) image keys the models are fitted on, in the row order of :attr:`train_rows`.
    test_keys : (n_eval,) image keys the models are evaluated on ("test" images in the store and on
        the pages, whichever rule chose them).
    source : the stimulus dataset (``nsd``, ``vim1``, ...).
    train_rows : (n_fit,) rows of the training responses file holding ``train_keys``.
    test_rows : (n_eval,) rows of the file holding ``test_keys``' responses: the test responses file
        (``evaluation == "test"``) or the training responses file (``"held-out"``).
    evaluation : :data:`EVAL_TEST` or :data:`EVAL_HELD_OUT` (see the module docstring).
    unscored_keys : image keys of the test split without responses (the released test images):
        features are computed, nothing is scored on them.
    shared_with : held-out images shared with these other subjects (the same images for all of them).
    """

    subject: str
    train_keys: list[str]
    test_keys: list[str]
    source: str
    train_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    evaluation: str = EVAL_TEST
    unscored_keys: list[str] = field(default_factory=list)
    shared_with: tuple[str, ...] = ()

    @property
    def held_out(self) -> bool:
        """True when the evaluation images were held out of the training images (no test fMRI)."""
        return self.evaluation == EVAL_HELD_OUT

    def describe(self) -> str:
        """One line for the CLI, the store and the pages, e.g. ``'200 test images (test fMRI)'``."""
        if self.held_out:
            whose = (f"images all {len(self.shared_with) + 1} subjects saw" if self.shared_with
                     else "its own images")
            return f"{len(self.test_keys)} training images held out ({whose}; the dataset has no test fMRI)"
        return f"{len(self.test_keys)} test images (test fMRI)"


@dataclass(frozen=True)
class SubjectFiles:
    """What a subject's files hold, in file order (the input of :func:`plan_splits`).

    Attributes
    ----------
    train_keys : (n_train,) keys of the training images, the rows of the training responses.
    test_keys : (n_test,) keys of the test images, the rows of the test responses if any.
    source : stimulus dataset.
    has_test_responses : whether test responses exist.
    """

    train_keys: Sequence[str]
    test_keys: Sequence[str]
    source: str
    has_test_responses: bool


def held_out_order(keys: Sequence[str]) -> list[str]:
    """``keys`` in the fixed pseudo-random order of the held-out rule (BLAKE2b of salt + key), unique."""
    def rank(key: str) -> bytes:
        return hashlib.blake2b(f"{SPLIT_SALT}:{key}".encode(), digest_size=8).digest()

    return sorted(dict.fromkeys(keys), key=rank)


def held_out_count(n_train: int) -> int:
    """How many of ``n_train`` training images a subject holds out: ``HELD_OUT_FRACTION`` of them, at
    least ``MIN_HELD_OUT`` (a quarter when fewer than 4 x MIN_HELD_OUT), and at most ``n_train - 2``."""
    n = max(int(round(HELD_OUT_FRACTION * n_train)), min(MIN_HELD_OUT, n_train // 4))
    return int(max(0, min(n, n_train - 2)))


def plan_splits(files: Mapping[str, SubjectFiles]) -> dict[str, SubjectImages]:
    """The fit / evaluation split of every subject (the rule of the module docstring).

    Parameters
    ----------
    files : {subject: SubjectFiles} in the dataset's subject order.

    Returns
    -------
    {subject: SubjectImages}; held-out evaluation keys are in :func:`held_out_order`, the same order
    for every subject of a group, so their response matrices line up image by image.
    """
    out: dict[str, SubjectImages] = {}
    groups: dict[str, list[str]] = defaultdict(list)
    for s, f in files.items():
        if len(f.train_keys) != len(set(f.train_keys)):
            dup = next(k for k in f.train_keys if list(f.train_keys).count(k) > 1)
            from .errors import BrainVizDataError

            raise BrainVizDataError(f"{s}/training_split/training_images",
                                    f"image {dup} appears more than once among the training images")
        if f.has_test_responses:
            out[s] = SubjectImages(s, list(f.train_keys), list(f.test_keys), f.source,
                                   np.arange(len(f.train_keys)), np.arange(len(f.test_keys)), EVAL_TEST)
        else:
            groups[f.source].append(s)
    for source, subs in groups.items():
        shared = set.intersection(*(set(files[s].train_keys) for s in subs)) if len(subs) > 1 else set()
        if len(shared) >= MIN_SHARED:
            n_group = min(held_out_count(len(files[s].train_keys)) for s in subs)
            held = held_out_order(shared)[:n_group]
            per_subject = {s: held for s in subs}
        else:
            per_subject = {s: held_out_order(files[s].train_keys)[:held_out_count(len(files[s].train_keys))]
                           for s in subs}
        for s in subs:
            f = files[s]
            held = per_subject[s]
            pos = {k: i for i, k in enumerate(f.train_keys)}
            held_set = set(held)
            fit_rows = np.array([i for i, k in enumerate(f.train_keys) if k not in held_set], dtype=np.int64)
            out[s] = SubjectImages(s, [f.train_keys[i] for i in fit_rows], list(held), f.source, fit_rows,
                                   np.array([pos[k] for k in held], dtype=np.int64), EVAL_HELD_OUT,
                                   unscored_keys=list(f.test_keys),
                                   shared_with=tuple(o for o in subs if o != s) if len(shared) >= MIN_SHARED else ())
    return {s: out[s] for s in files}
