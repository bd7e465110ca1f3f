"""Classification metrics for emotion recognition, clip-level aggregation and the confusion-matrix plot.

Emotion corpora are skewed (BAUM-1s is mostly neutral and happy), so accuracy alone flatters a model that
predicts the majority class. Next to it we report the unweighted average recall (UAR, the mean of per-class
recalls; the affective-computing challenges' headline metric) and the macro-F1.

Conventions (the same as scikit-learn's with ``zero_division=0``):
- UAR averages the recall over the classes that occur in ``y_true`` (a class without test examples has no recall).
- Macro-F1 averages the F1 over the classes that occur in ``y_true`` or ``y_pred``.
- A precision or recall whose denominator is zero is 0.

scikit-learn is not a dependency: these few lines of numpy are the whole computation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Count matrix whose row is the true class and column the predicted class.

    Args:
        y_true: true label ids.
        y_pred: predicted label ids, same length.
        num_labels: L; every id must lie in ``[0, L)``.

    Returns:
        ``(L, L)`` int64 array.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and of equal length, got {y_true.shape} and {y_pred.shape}")
    for name, ids in (("y_true", y_true), ("y_pred", y_pred)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
            raise ValueError(f"{name} holds ids outside [0, {num_labels}): {sorted(set(ids.tolist()))}")
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


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
    matrix = confusion_matrix(y_true, y_pred, len(names))
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)  # true examples per class
    predicted = matrix.sum(axis=0)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    total = int(matrix.sum())
    in_true = support > 0
    in_either = in_true | (predicted > 0)
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "uar": float(recall[in_true].mean()) if in_true.any() else 0.0,
        "macro_f1": float(f1[in_either].mean()) if in_either.any() else 0.0,
        "num_examples": total,
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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


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
    normalised = _safe_divide(matrix.astype(np.float64), np.broadcast_to(row_sums, matrix.shape))
    size = 1.2 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if normalised[i, j] > 0.5 else "black",
                fontsize=8,
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    logger.info("wrote %s", path)
    return path
