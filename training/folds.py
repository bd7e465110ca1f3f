"""Run every fold of a protocol and aggregate: mean and standard deviation over folds, plus pooled totals.

Takes exactly the arguments of `training.train` (flags or a JSON file; in code `run(model_args, data_args,
training_args)`); ``--fold`` is ignored, each fold trains into ``<output_dir>/fold-NN`` and the summary goes to
``<output_dir>/folds.json``::

    python -m training.folds --dataset_name_or_path data/baum1s --output_dir runs/loso --protocol loso ...

The per-fold numbers are clip-level (`training.evaluate`). The standard deviation is the sample standard deviation
(ddof=1) over folds. ``pooled`` scores all test clips of all folds together (each clip is tested exactly once),
which is steadier than the fold mean when folds are small (one subject each under LOSO).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainingArguments

from training import train
from training.data import load_clips
from training.metrics import classification_metrics
from training.scripts import ArgumentsError, run_script
from training.splits import make_folds

logger = logging.getLogger(__name__)

SUMMARY_METRICS = ("accuracy", "uar", "macro_f1")


def aggregate_folds(fold_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation, min and max of each headline metric over folds, and the pooled confusion matrix.

    Args:
        fold_results: the ``results.json`` content of each fold.
    """
    if not fold_results:
        raise ValueError("no fold results to aggregate")
    summary: dict[str, Any] = {}
    for name in SUMMARY_METRICS:
        values = np.array([r[name] for r in fold_results], dtype=np.float64)
        summary[name] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "per_fold": values.tolist(),
        }
    labels = fold_results[0]["metrics"]["labels"]
    matrix = np.sum([np.asarray(r["metrics"]["confusion_matrix"]) for r in fold_results], axis=0)
    y_true = np.repeat(np.arange(len(labels)), matrix.sum(axis=1))
    y_pred = np.concatenate([np.repeat(np.arange(len(labels)), row) for row in matrix]) if matrix.sum() else []
    pooled = classification_metrics(y_true, y_pred, labels)
    return {
        "protocol": fold_results[0].get("protocol"),
        "dataset": fold_results[0].get("dataset"),
        "subject_independent": all(r.get("subject_independent", False) for r in fold_results),
        "num_folds": len(fold_results),
        "folds": [r.get("fold") for r in fold_results],
        **summary,
        "pooled": pooled,
    }


def run(
    model_args: train.ModelArguments, data_args: train.DataArguments, training_args: TrainingArguments
) -> dict[str, Any]:
    """Train and evaluate every fold (`train.run` with each `fold` and its own output folder), write
    ``folds.json``; returns the summary."""
    if data_args.protocol == "given":
        raise ArgumentsError("the fold runner needs --protocol kfold, loso or paper")
    if data_args.protocol == "paper":
        num_folds = 1
    else:
        clips = load_clips(data_args.dataset_name_or_path, revision=data_args.dataset_revision)
        subjects = [s for split in clips.values() for s in split["subject"]]
        num_folds = len(make_folds(subjects, data_args.protocol, data_args.num_folds, data_args.split_seed))
    root = Path(training_args.output_dir)
    # Under accelerate/torchrun every process trains every fold; only process 0 evaluates, so only it aggregates.
    main_process = training_args.process_index == 0
    results = []
    for fold in range(num_folds):
        fold_dir = root / f"fold-{fold:02d}"
        logger.info("fold %d of %d -> %s", fold + 1, num_folds, fold_dir)
        fold_results = train.run(
            model_args,
            dataclasses.replace(data_args, fold=fold),
            dataclasses.replace(training_args, output_dir=str(fold_dir)),
        )
        if not fold_results:
            if not main_process:
                continue
            raise RuntimeError(f"fold {fold} produced no test results")
        results.append(fold_results)
    if not main_process:
        return {}
    summary = aggregate_folds(results)
    root.mkdir(parents=True, exist_ok=True)
    (root / "folds.json").write_text(json.dumps(summary, indent=2))
    logger.info(
        "%s over %d folds: accuracy %.4f +- %.4f, UAR %.4f +- %.4f",
        summary["protocol"],
        num_folds,
        summary["accuracy"]["mean"],
        summary["accuracy"]["std"],
        summary["uar"]["mean"],
        summary["uar"]["std"],
    )
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point: the flags of `training.train`."""
    model_args, data_args, training_args = train.parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=training_args.get_process_log_level()
    )
    return run(model_args, data_args, training_args)


if __name__ == "__main__":
    run_script(main)
