"""Evaluation protocols: subject-independent k-fold, leave-one-subject-out, and the paper's random split.

The headline protocol is subject-independent: every subject's clips lie entirely on one side of each split, so the
model is always scored on people it never saw. The MicroX paper (SUTD 2020) instead split its 10-frame segments at
random 80/20, so windows of the same clip (and subject) sat in both train and test; its 55.2% is therefore
optimistic. `paper_split` reproduces that protocol only to compare with the published number, and every fold it
makes is flagged ``subject_independent=False``.

All functions take the per-row subject list of a dataset and return row indices, so they work for clips and for
windows alike. The subject-independent folds come from scikit-learn (`GroupKFold`, `LeaveOneGroupOut`, with subjects
as groups); the random split is the paper's and stays its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

PROTOCOLS = ("kfold", "loso", "paper")


@dataclass
class Fold:
    """One train/test split of a dataset, as row indices.

    Attributes:
        name: e.g. ``"kfold-3-of-5"`` or ``"loso-s007"``.
        train: row indices of the training part.
        test: row indices of the test part.
        protocol: one of `PROTOCOLS`.
        subject_independent: False only for the paper's window-level random split.
        test_subjects: the subjects in the test part (empty for the paper protocol).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    protocol: str
    subject_independent: bool = True
    test_subjects: list[str] = field(default_factory=list)


def _as_subjects(subjects: Sequence[str]) -> np.ndarray:
    array = np.asarray([str(s) for s in subjects], dtype=object)
    if array.size == 0:
        raise ValueError("the subject list is empty: there is nothing to split")
    return array


def subject_kfold(subjects: Sequence[str], num_folds: int = 5, seed: int = 0) -> list[Fold]:
    """Subject-independent k-fold: `GroupKFold` over subjects, folds of similar row counts.

    `GroupKFold` deals the subjects largest first to the fold with the fewest rows so far, so the folds stay
    balanced even when subjects contribute very different numbers of clips. Among equally large subjects it goes by
    descending group number; numbering the subjects from a seeded shuffle makes ``seed`` choose among the balanced
    assignments (the same folds this function made before it used scikit-learn).

    Args:
        subjects: the subject of every row.
        num_folds: k, at least 2 and at most the number of distinct subjects.
        seed: the same seed gives the same folds.

    Returns:
        ``num_folds`` folds; each row is in the test part of exactly one fold.
    """
    array = _as_subjects(subjects)
    names, index = np.unique(array, return_inverse=True)
    if not 2 <= num_folds <= len(names):
        raise ValueError(
            f"num_folds={num_folds} is not possible with {len(names)} distinct subjects: choose 2..{len(names)} "
            "(or leave-one-subject-out)"
        )
    shuffled = list(names)
    np.random.default_rng(seed).shuffle(shuffled)
    # GroupKFold takes ties in descending group number: the first subject of the shuffle gets the highest.
    number = {name: len(shuffled) - 1 - position for position, name in enumerate(shuffled)}
    groups = np.array([number[name] for name in names])[index]
    folds = []
    for i, (train, test) in enumerate(GroupKFold(n_splits=num_folds).split(array, groups=groups)):
        folds.append(
            Fold(
                name=f"kfold-{i + 1}-of-{num_folds}",
                train=train,
                test=test,
                protocol="kfold",
                test_subjects=sorted(set(array[test].tolist())),
            )
        )
    return folds


def leave_one_subject_out(subjects: Sequence[str]) -> list[Fold]:
    """One fold per distinct subject (`LeaveOneGroupOut`), whose clips form the test part (sorted by subject)."""
    array = _as_subjects(subjects)
    distinct = sorted(set(array.tolist()))
    if len(distinct) < 2:
        raise ValueError(f"leave-one-subject-out needs at least 2 subjects, got {distinct}")
    folds = []
    for train, test in LeaveOneGroupOut().split(array, groups=array):
        subject = str(array[test[0]])
        folds.append(Fold(name=f"loso-{subject}", train=train, test=test, protocol="loso", test_subjects=[subject]))
    return folds


def paper_split(num_rows: int, test_fraction: float = 0.2, seed: int = 0) -> Fold:
    """The paper's protocol: a random split of the rows (10-frame windows), ignoring subjects. Optimistic.

    Args:
        num_rows: the number of windows.
        test_fraction: the paper used 0.2.
        seed: shuffling seed.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if num_rows < 2:
        raise ValueError(f"a random split needs at least 2 rows, got {num_rows}")
    order = np.random.default_rng(seed).permutation(num_rows)
    num_test = min(max(1, round(num_rows * test_fraction)), num_rows - 1)
    return Fold(
        name=f"paper-random-{round(100 * (1 - test_fraction))}-{round(100 * test_fraction)}",
        train=np.sort(order[num_test:]),
        test=np.sort(order[:num_test]),
        protocol="paper",
        subject_independent=False,
    )


def subject_holdout(subjects: Sequence[str], fraction: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole subjects (about ``fraction`` of the rows) for validation, e.g. for early stopping.

    Returns:
        ``(train_rows, validation_rows)``; the validation part holds at least one subject and the training part
        keeps at least one.
    """
    array = _as_subjects(subjects)
    distinct = sorted(set(array.tolist()))
    if len(distinct) < 2:
        raise ValueError(f"a subject-independent validation split needs at least 2 subjects, got {distinct}")
    rng = np.random.default_rng(seed)
    rng.shuffle(distinct)
    counts = Counter(array.tolist())
    chosen: list[str] = []
    rows = 0
    for subject in distinct[:-1]:  # the last one always stays in training
        if chosen and rows + counts[subject] > fraction * len(array):
            break
        chosen.append(subject)
        rows += counts[subject]
    in_validation = np.isin(array, chosen)
    return np.flatnonzero(~in_validation), np.flatnonzero(in_validation)


def make_folds(
    subjects: Sequence[str], protocol: str, num_folds: int = 5, seed: int = 0, test_fraction: float = 0.2
) -> list[Fold]:
    """All folds of ``protocol`` ("kfold", "loso" or "paper") for rows with these subjects."""
    if protocol == "kfold":
        return subject_kfold(subjects, num_folds, seed)
    if protocol == "loso":
        return leave_one_subject_out(subjects)
    if protocol == "paper":
        return [paper_split(len(subjects), test_fraction, seed)]
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def assert_subject_independent(fold: Fold, subjects: Sequence[str]) -> None:
    """Raise `ValueError` if any subject has rows on both sides of ``fold`` (skipped for the paper protocol)."""
    if not fold.subject_independent:
        return
    array = _as_subjects(subjects)
    shared = set(array[fold.train].tolist()) & set(array[fold.test].tolist())
    if shared:
        raise ValueError(f"fold {fold.name} puts subjects {sorted(shared)} in both train and test")
