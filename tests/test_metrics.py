"""Metric functions against values computed by hand."""

import json

import numpy as np
import pytest

from training.metrics import (
    classification_metrics,
    compute_window_metrics,
    confusion_matrix,
    save_confusion_matrix,
)


def test_metrics_match_hand_computed_values():
    # 3 classes. true: a a a a b b c ; pred: a a b c b a c
    y_true = [0, 0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 2, 1, 0, 2]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 1], [1, 1, 0], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 7)
    # recalls: a 2/4, b 1/2, c 1/1 -> UAR 2/3
    assert m["uar"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # precisions: a 2/3, b 1/2, c 1/2
    assert m["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["precision"] == pytest.approx(0.5)
    f1_a = 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)  # 4/7
    f1_b = 0.5
    f1_c = 2 * 0.5 * 1.0 / 1.5  # 2/3
    assert m["per_class"]["a"]["f1"] == pytest.approx(f1_a)
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b + f1_c) / 3)
    assert m["per_class"]["b"]["support"] == 2
    json.dumps(m)  # JSON-safe


def test_uar_ignores_classes_absent_from_truth_and_zero_division_is_zero():
    # class 2 never true, predicted once; class 1 never predicted.
    m = classification_metrics([0, 0, 1, 1], [0, 2, 0, 0], 3)
    assert m["uar"] == pytest.approx((0.5 + 0.0) / 2)  # class 2 has no recall
    assert m["per_class"]["1"]["precision"] == 0.0
    assert m["per_class"]["2"]["precision"] == 0.0
    # F1: class0 p=1/3 r=1/2 -> 0.4; class1 0; class2 0; all appear in true or pred
    assert m["macro_f1"] == pytest.approx(0.4 / 3)
    assert m["accuracy"] == pytest.approx(0.25)


def test_one_class_only_gives_numbers_and_no_warning():
    # A validation set of one person's clips often holds one class: scikit-learn's balanced_accuracy_score warned
    # ("A single label was found in 'y_true' and 'y_pred'") on every evaluation of such a run.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics([1, 1, 1], [1, 1, 1], 3)
        assert (m["uar"], m["accuracy"], m["macro_f1"]) == (1.0, 1.0, 1.0)
        m = classification_metrics([1, 1], [2, 2], 3)
        assert (m["uar"], m["macro_f1"]) == (0.0, 0.0)


def test_confusion_matrix_rejects_bad_ids():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="equal length"):
        confusion_matrix([0, 1], [0], 3)


def test_compute_window_metrics_accepts_tuple_predictions():
    class P:
        predictions = (np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), np.zeros((3, 5, 2)))
        label_ids = np.array([0, 1, 1])

    m = compute_window_metrics(P())
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["uar"] == pytest.approx(0.75)


def test_confusion_png_and_json(tmp_path):
    path = save_confusion_matrix([[3, 1], [0, 2]], ["happy", "sad"], tmp_path / "cm.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "cm.json").read_text())
    assert saved["matrix"] == [[3, 1], [0, 2]] and saved["labels"] == ["happy", "sad"]
