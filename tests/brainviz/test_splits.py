"""The evaluation split (brainviz.splits): test fMRI when present, else held-out training images."""
from __future__ import annotations

import numpy as np
import pytest

from brainviz.errors import BrainVizDataError
from brainviz.splits import (EVAL_HELD_OUT, EVAL_TEST, MIN_HELD_OUT, SubjectFiles, held_out_count, held_out_order,
                             plan_splits)


def _keys(ids) -> list[str]:
    return [f"nsd-{i:05d}" for i in ids]


def test_test_fmri_is_used_when_present():
    f = SubjectFiles(_keys(range(50)), _keys(range(100, 110)), "nsd", True)
    s = plan_splits({"subj01": f})["subj01"]
    assert s.evaluation == EVAL_TEST and not s.held_out
    assert s.train_keys == f.train_keys and s.test_keys == f.test_keys
    np.testing.assert_array_equal(s.train_rows, np.arange(50))
    np.testing.assert_array_equal(s.test_rows, np.arange(10))
    assert "test fMRI" in s.describe()


def test_subjects_without_test_fmri_hold_out_the_same_shared_images():
    rng = np.random.default_rng(0)
    shared = list(range(0, 300))  # images every subject saw
    files = {}
    for i, name in enumerate(("subj01", "subj02", "subj03")):
        own = list(range(1000 * (i + 1), 1000 * (i + 1) + 600 + 100 * i))
        ids = rng.permutation(shared + own)
        files[name] = SubjectFiles(_keys(ids), _keys(range(50000 + i, 50010 + i)), "nsd", False)
    plan = plan_splits(files)
    held = plan["subj01"].test_keys
    assert all(plan[s].test_keys == held for s in plan)  # identical images, identical order
    assert len(held) == held_out_count(min(len(f.train_keys) for f in files.values())) == 90
    assert set(held) <= set(_keys(shared))
    for name, f in files.items():
        s = plan[name]
        assert s.evaluation == EVAL_HELD_OUT and s.held_out
        assert not set(s.train_keys) & set(s.test_keys)  # nothing evaluated was fitted
        assert len(s.train_keys) + len(s.test_keys) == len(f.train_keys)
        assert [f.train_keys[r] for r in s.train_rows] == s.train_keys  # rows of the training file
        assert [f.train_keys[r] for r in s.test_rows] == s.test_keys
        assert s.unscored_keys == list(f.test_keys)
        assert "held out" in s.describe() and "3 subjects" in s.describe()


def test_held_out_choice_is_deterministic_and_ignores_file_order():
    keys = _keys(range(200))
    a = plan_splits({"s": SubjectFiles(keys, [], "nsd", False)})["s"]
    b = plan_splits({"s": SubjectFiles(keys[::-1], [], "nsd", False)})["s"]
    assert a.test_keys == b.test_keys and len(a.test_keys) == max(20, MIN_HELD_OUT)
    assert held_out_order(keys) == held_out_order(list(reversed(keys)))
    assert held_out_order(keys) != sorted(keys)  # pseudo-random, not the first ids


def test_a_single_subject_or_few_shared_images_hold_out_their_own():
    files = {"subj01": SubjectFiles(_keys(range(0, 400)), [], "nsd", False),
             "subj02": SubjectFiles(_keys(range(395, 900)), [], "nsd", False)}  # 5 shared: too few
    plan = plan_splits(files)
    assert len(plan["subj01"].test_keys) == 40 and len(plan["subj02"].test_keys) == 50
    assert not plan["subj01"].shared_with and "its own images" in plan["subj01"].describe()
    # another stimulus set is its own group
    plan = plan_splits({**files, "subj05": SubjectFiles([f"vim1-{i:05d}" for i in range(100)], [], "vim1", False)})
    assert len(plan["subj05"].test_keys) == 20


def test_held_out_counts():
    assert held_out_count(9841) == 984 and held_out_count(150) == 20 and held_out_count(40) == 10
    assert held_out_count(3) == 0  # too few to hold any out: the plan says evaluation is skipped


def test_duplicate_training_images_are_refused():
    with pytest.raises(BrainVizDataError, match="more than once"):
        plan_splits({"s": SubjectFiles(_keys([1, 2, 2]), [], "nsd", False)})
