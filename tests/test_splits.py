"""Protocols: no subject on both sides of a subject-independent split, whatever the subject list."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.splits import (
    assert_subject_independent,
    leave_one_subject_out,
    make_folds,
    paper_split,
    subject_holdout,
    subject_kfold,
)

subject_lists = st.lists(st.sampled_from([f"s{i:03d}" for i in range(12)]), min_size=2, max_size=60).filter(
    lambda s: len(set(s)) >= 2
)


@settings(max_examples=150, deadline=None)
@given(subjects=subject_lists, k=st.integers(2, 12), seed=st.integers(0, 10_000))
def test_kfold_never_puts_a_subject_on_both_sides(subjects, k, seed):
    k = min(k, len(set(subjects)))
    folds = subject_kfold(subjects, k, seed)
    assert len(folds) == k
    array = np.array(subjects)
    seen = np.concatenate([f.test for f in folds])
    assert sorted(seen.tolist()) == list(range(len(subjects)))  # each row tested exactly once
    for fold in folds:
        assert len(fold.test) > 0
        assert not set(array[fold.train]) & set(array[fold.test])
        assert sorted(np.concatenate([fold.train, fold.test]).tolist()) == list(range(len(subjects)))
        assert_subject_independent(fold, subjects)


@settings(max_examples=100, deadline=None)
@given(subjects=subject_lists)
def test_loso_tests_each_subject_alone(subjects):
    folds = leave_one_subject_out(subjects)
    array = np.array(subjects)
    assert [f.test_subjects[0] for f in folds] == sorted(set(subjects))
    for fold in folds:
        assert set(array[fold.test]) == set(fold.test_subjects)
        assert fold.test_subjects[0] not in set(array[fold.train])


@settings(max_examples=100, deadline=None)
@given(subjects=subject_lists, seed=st.integers(0, 1000))
def test_holdout_is_subject_independent(subjects, seed):
    train, val = subject_holdout(subjects, 0.2, seed)
    array = np.array(subjects)
    assert len(train) and len(val)
    assert not set(array[train]) & set(array[val])


def test_kfold_is_balanced_and_reproducible():
    subjects = [f"s{i}" for i in range(10) for _ in range(i + 1)]  # 55 rows, uneven subjects
    a = subject_kfold(subjects, 3, seed=1)
    b = subject_kfold(subjects, 3, seed=1)
    assert [f.test.tolist() for f in a] == [f.test.tolist() for f in b]
    sizes = [len(f.test) for f in a]
    assert max(sizes) - min(sizes) <= 10  # the largest subject has 10 rows


def test_paper_split_is_random_over_windows_and_flagged():
    fold = paper_split(50, 0.2, seed=0)
    assert len(fold.test) == 10 and len(fold.train) == 40
    assert not set(fold.train) & set(fold.test)
    assert fold.subject_independent is False
    assert_subject_independent(fold, ["s1"] * 50)  # not checked for the paper protocol


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="num_folds=5"):
        subject_kfold(["a", "b", "a"], 5)
    with pytest.raises(ValueError, match="unknown protocol"):
        make_folds(["a", "b"], "random")
    with pytest.raises(ValueError, match="both train and test"):
        fold = subject_kfold(["a", "b"], 2)[0]
        fold.train = np.array([0, 1])
        assert_subject_independent(fold, ["a", "b"])


def test_kfold_seed_chooses_among_balanced_assignments():
    subjects = [f"s{i}" for i in range(8) for _ in range(3)]  # equal sizes: many balanced assignments
    assignments = {tuple(tuple(f.test_subjects) for f in subject_kfold(subjects, 4, seed)) for seed in range(6)}
    assert len(assignments) > 1
    for seed in range(6):
        assert [len(f.test) for f in subject_kfold(subjects, 4, seed)] == [6, 6, 6, 6]
