"""Classification metrics for emotion recognition, clip-level aggregation and the confusion-matrix plot.

Emotion corpora are skewed (BAUM-1s is mostly neutral and happy), so accuracy alone flatters a model that
predicts the majority class. Next to it we report the unweighted average recall (UAR, the mean of per-class
recalls; the affective-computing challenges' headline metric) and the macro-F1.

scikit-learn computes them (`confusion_matrix`, `f1_score`, `precision_recall_fscore_support`, with
``zero_division=0`` and the classes named explicitly; the UAR comes from the confusion matrix as
`balanced_accuracy_score` computes it), so the conventions are scikit-learn's:
- UAR (balanced accuracy) averages the recall over the classes that occur in ``y_true`` (a class without test
  examples has no recall).
- Macro-F1 averages the F1 over the classes that occur in ``y_true`` or ``y_pred``.
- A precision or recall whose denominator is zero is 0.

The plot is scikit-learn's `ConfusionMatrixDisplay`, coloured by the share of each true class, labelled with counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

logger = logging.getLogger(__name__)


def _check_ids(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and of equal length, got {y_true.shape} and {y_pred.shape}")
    for name, ids in (("y_true", y_true), ("y_pred", y_pred)):
        # scikit-learn would silently leave out ids that are not among `labels`.
        if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
            raise ValueError(f"{name} holds ids outside [0, {num_labels}): {sorted(set(ids.tolist()))}")
    return y_true, y_pred


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Count matrix whose row is the true class and column the predicted class.

    Args:
        y_true: true label ids.
        y_pred: predicted label ids, same length.
        num_labels: L; every id must lie in ``[0, L)``.

    Returns:
        ``(L, L)`` int64 array.
    """
    y_true, y_pred = _check_ids(y_true, y_pred, num_labels)
    if not y_true.size:
        return np.zeros((num_labels, num_labels), dtype=np.int64)
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(num_labels)).astype(np.int64)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str] | int) -> dict[str, Any]:
    """Accuracy, UAR, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        y_true: true label ids.
        y_pred: predicted label ids.
        labels: the label names in id order, or just their number L.

    Returns:
        A JSON-safe dict: ``accuracy``, ``uar``, ``macro_f1``, ``num_examples``, ``per_class``
        (``{name: {precision, recall, f1, support}}``), ``labels`` and ``confusion_matrix`` (list of rows).
    """
    names = [str(i) for i in range(labels)] if isinstance(labels, int) else list(labels)
    y_true, y_pred = _check_ids(y_true, y_pred, len(names))
    matrix = confusion_matrix(y_true, y_pred, len(names))
    ids = np.arange(len(names))
    if y_true.size:
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=ids, zero_division=0
        )
        accuracy = float(skm.accuracy_score(y_true, y_pred))
        # UAR from the matrix (scikit-learn's balanced accuracy: the mean recall over the classes in y_true; a
        # predicted class that never occurs in y_true has no recall). `balanced_accuracy_score` takes no `labels`
        # and warns on every call whose data holds one class only (a tiny validation set, one subject's clips).
        present = matrix.sum(axis=1) > 0
        uar = float((np.diag(matrix)[present] / matrix.sum(axis=1)[present]).mean())
        # Macro-F1 over the classes in y_true or y_pred, named explicitly for the same reason.
        seen = np.union1d(y_true, y_pred)
        macro_f1 = float(skm.f1_score(y_true, y_pred, labels=seen, average="macro", zero_division=0))
    else:
        precision = recall = f1 = np.zeros(len(names))
        support = np.zeros(len(names), dtype=np.int64)
        accuracy = uar = macro_f1 = 0.0
    return {
        "accuracy": accuracy,
        "uar": uar,
        "macro_f1": macro_f1,
        "num_examples": int(matrix.sum()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "labels": names,
        "confusion_matrix": matrix.tolist(),
    }


def compute_window_metrics(eval_prediction: Any) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: window-level accuracy, UAR and macro-F1.

    Used for validation during training (early stopping); the clip-level numbers come from
    `training.evaluate`. Expects plain logits as predictions, which holds when
    ``config.keys_to_ignore_at_inference`` lists the model's extra outputs.
    """
    logits = eval_prediction.predictions
    if isinstance(logits, (tuple, list)):  # extras not ignored: the fused logits come first
        logits = logits[0]
    labels = np.asarray(eval_prediction.label_ids)
    preds = np.asarray(logits).argmax(axis=-1)
    metrics = classification_metrics(labels, preds, int(np.asarray(logits).shape[-1]))
    return {key: metrics[key] for key in ("accuracy", "uar", "macro_f1")}


def save_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Write the confusion matrix as a PNG (counts, rows normalised for the colour) and as JSON beside it.

    Args:
        matrix: ``(L, L)`` counts, rows true, columns predicted.
        labels: the L label names.
        path: the PNG path; the JSON goes to the same path with the suffix ``.json``.
        title: the figure title.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(
        json.dumps(
            {"labels": list(labels), "rows": "true", "columns": "predicted", "matrix": matrix.tolist()}, indent=2
        )
    )
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, row_sums, out=np.zeros(matrix.shape), where=row_sums > 0)
    size = 1.2 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    display = skm.ConfusionMatrixDisplay(normalised, display_labels=list(labels))
    display.plot(ax=ax, cmap="Blues", xticks_rotation=45, im_kw={"vmin": 0.0, "vmax": 1.0}, text_kw={"fontsize": 8})
    display.figure_.axes[-1].set_ylabel("fraction of the true class")  # the colour bar
    # Colours show each true class's shares, the cells its counts (what a reader checks against the totals).
    for (i, j), text in np.ndenumerate(display.text_):
        text.set_text(str(matrix[i, j]))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    logger.info("wrote %s", path)
    return path
