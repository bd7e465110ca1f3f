"""Evaluate a MicroX checkpoint on a processed-clip dataset: clip-level predictions from all windows of each clip.

Each clip is cut into windows (`expand_windows`, the feature extractor's stride); the clip's prediction is the
mean of its window probabilities, the same rule `microx_hf.predict` applies to a user's video. The script writes
``results.json`` (accuracy, UAR, macro-F1, per-class precision/recall, the confusion matrix, and the same at window
level), ``confusion_matrix.json``, ``confusion_matrix.png`` and ``predictions.jsonl`` (one line per clip: source,
subject, truth, prediction, mean probabilities) into the output folder.

Usage (in code: `run(EvalArguments(...))`, or `evaluate_dataset(model, feature_extractor, clips)`)::

    python -m training.evaluate --model_name_or_path runs/baum1s --dataset_name_or_path data/baum1s \
        --output_dir runs/baum1s/eval      # --split: default 'test', else 'validation', else the only one
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from microx_hf.errors import DatasetFormatError
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.runtime import TorchRuntime
from microx_hf.scoring import WINDOW_BATCH, WindowScores, score_clip
from microx_hf.windows import pool_clips
from training.data import WindowDataset, WindowTransform, load_clips
from training.metrics import classification_metrics, save_confusion_matrix
from training.schema import ENCODER_COLUMN
from training.scripts import ArgumentsError, parse_arguments, run_script

logger = logging.getLogger(__name__)


def score_clips(
    model: torch.nn.Module, feature_extractor: Any, clips: Dataset, stride: int, batch_size: int = WINDOW_BATCH
) -> list[WindowScores]:
    """Every window of every clip, scored clip by clip as `microx_hf.predict` scores a video (`score_clip`): the
    per-frame work once per frame, the same windows, the same padding."""
    config = model.config
    transform = WindowTransform.for_model(config, feature_extractor, train=False)
    use_encoder = getattr(config, "frame_encoder", None) is not None and ENCODER_COLUMN in clips.column_names
    reader = WindowDataset(clips, transform, encoder_crops=use_encoder)
    runtime = TorchRuntime(model)
    out = []
    for row in range(clips.num_rows):
        crops, mask, _ = reader.read(row)  # per region (N, C, S, S), (N, R)
        encoder = reader.read_frames(row, [ENCODER_COLUMN])[ENCODER_COLUMN] if use_encoder else None
        out.append(score_clip(runtime, np.stack(crops), mask.T, stride, feature_extractor.image_mean,
                              feature_extractor.image_std, batch_size, encoder))  # fmt: skip
    return out


def teacher_agreement(
    model: torch.nn.Module, feature_extractor: Any, clips: Dataset, distill: Any, stride: int | None = None
) -> dict[str, Any]:
    """How well a model agrees with its teachers on clips without labels (a label-free validation).

    Every window of every clip is scored as `predict` scores a video; the teachers' target of the window
    (`training.data.DistillTargets` over its frames) is what it is compared with.

    Returns:
        "windows" scored, "agreement" (share of windows whose answer is the teachers' top class), "uar" (over the
        teachers' top classes), "kl" (mean KL(teachers || model) at temperature 1) and "answers" (share of each label).
    """
    from microx_hf.windows import frame_indices

    stride = stride or feature_extractor.window_stride
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    reader = WindowDataset(clips, WindowTransform.for_model(model.config, feature_extractor), distill=distill)
    truth, answers, kl = [], [], []
    for row, scores in enumerate(score_clips(model, feature_extractor, clips, stride)):
        logits = reader.read_frames(row, distill.columns)
        for start, probs in zip(scores.starts, scores.probs, strict=True):
            target, weight = distill(logits, frame_indices(int(start), model.config.num_frames, scores.num_frames))
            if not weight or not np.isfinite(probs).all():
                continue
            truth.append(int(np.argmax(target)))
            answers.append(int(np.argmax(probs)))
            kl.append(
                float(np.sum(target * (np.log(np.clip(target, 1e-8, None)) - np.log(np.clip(probs, 1e-8, None)))))
            )
    if not truth:
        return {"windows": 0}
    metrics = classification_metrics(truth, answers, labels)
    return {
        "windows": len(truth),
        "agreement": round(float(np.mean(np.equal(truth, answers))), 4),
        "uar": round(float(metrics["uar"]), 4),
        "kl": round(float(np.mean(kl)), 4),
        "answers": {labels[k]: round(float(np.mean(np.equal(answers, k))), 4) for k in sorted(set(answers))},
        "teachers": {labels[k]: round(float(np.mean(np.equal(truth, k))), 4) for k in sorted(set(truth))},
    }


def evaluate_dataset(
    model: torch.nn.Module,
    feature_extractor: Any,
    clips: Dataset,
    output_dir: str | Path | None = None,
    window_stride: int | None = None,
    batch_size: int = WINDOW_BATCH,
    windows_are_clips: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Clip-level and window-level metrics of ``model`` on ``clips``; writes the artifacts when ``output_dir`` is set.

    Args:
        model: a `MicroXForVideoClassification`.
        feature_extractor: its `MicroXFeatureExtractor` (for normalisation and the window stride).
        clips: processed clips (rows are clips), without a transform.
        output_dir: where ``results.json`` and the confusion matrix go.
        window_stride: frames between window starts; default the feature extractor's ``window_stride``.
        batch_size: windows per forward pass.
        windows_are_clips: the rows are already single windows (the paper protocol): score each on its own.
        metadata: extra keys recorded in ``results.json`` (protocol, fold, dataset...).

    Returns:
        The content of ``results.json``.
    """
    config = model.config
    labels = [config.id2label[i] for i in range(config.num_labels)]
    names = clips.features["label"].names
    if list(names) != labels:
        raise DatasetFormatError(
            f"the dataset's labels {names} differ from the model's {labels}; evaluate on data prepared with the "
            "model's label scheme"
        )
    if clips.num_rows == 0:
        raise ValueError("the evaluation set is empty")
    stride = window_stride or getattr(feature_extractor, "window_stride", None) or config.num_frames
    scores = score_clips(model, feature_extractor, clips, stride, batch_size)
    # The rule of `microx_hf.predict`: the mean over the windows in which a face was seen.
    probs = np.concatenate([s.probs for s in scores])  # (W, L), NaN rows for windows without a face
    clip_ids = np.concatenate([np.full(len(s.starts), k) for k, s in enumerate(scores)])
    has_face = np.concatenate([s.has_face for s in scores])
    order, clip_probs = pool_clips(probs, clip_ids, has_face)
    clip_labels = np.asarray(clips["label"])[order]
    window_labels = np.asarray(clips["label"])[clip_ids]
    clip_metrics = classification_metrics(clip_labels, clip_probs.argmax(axis=1), labels)
    window_metrics = classification_metrics(
        window_labels[has_face], np.nan_to_num(probs[has_face]).argmax(axis=1), labels
    )  # the windows with a face (the others are not scored)
    results: dict[str, Any] = {
        **(metadata or {}),
        "level": "window" if windows_are_clips else "clip",
        "aggregation": "each window alone"
        if windows_are_clips
        else "mean of the probabilities of the windows with a face",
        "num_clips": len(order),
        "num_windows": len(clip_ids),
        "num_windows_with_face": int(has_face.sum()),
        "window_stride": stride,
        "num_frames": config.num_frames,
        "accuracy": clip_metrics["accuracy"],
        "uar": clip_metrics["uar"],
        "macro_f1": clip_metrics["macro_f1"],
        "metrics": clip_metrics,
        "window_metrics": window_metrics,
    }
    what = (metadata or {}).get("split") or "test"
    logger.info(
        "%s (%s level): accuracy %.4f, UAR %.4f, macro-F1 %.4f over %d clips",
        what,
        results["level"],
        results["accuracy"],
        results["uar"],
        results["macro_f1"],
        len(order),
    )
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "results.json").write_text(json.dumps(results, indent=2))
        # One line per clip: which clip, the truth, the prediction and the mean probabilities, for error analysis.
        columns = clips.column_names
        sources = [clips["source"][i] for i in order] if "source" in columns else order
        subjects = [clips["subject"][i] for i in order] if "subject" in columns else order
        with (output_dir / "predictions.jsonl").open("w") as f:
            for k, clip in enumerate(order):
                record = {
                    "clip_id": int(clip),
                    "source": sources[k],
                    "subject": subjects[k],
                    "label": labels[int(clip_labels[k])],
                    "predicted": labels[int(clip_probs[k].argmax())],
                    "scores": {name: round(float(p), 6) for name, p in zip(labels, clip_probs[k], strict=True)},
                }
                f.write(json.dumps(record) + "\n")
        title = f"UAR {results['uar']:.3f}"
        if plot_title(results):
            title = f"{plot_title(results)}: {title}"
        save_confusion_matrix(clip_metrics["confusion_matrix"], labels, output_dir / "confusion_matrix.png", title)
        logger.info("wrote %s", output_dir / "results.json")
    return results


def plot_title(results: dict[str, Any]) -> str:
    """What the confusion plot's title says the numbers are of: the protocol and fold of a training run ("kfold
    fold-2"), else the split ("split test"); empty when the results say neither."""
    protocol, fold = results.get("protocol") or "", results.get("fold") or ""
    if protocol or fold:
        return " ".join(dict.fromkeys(p for p in (protocol, fold) if p))  # "given" "given" once
    return f"split {results['split']}" if results.get("split") else ""


def choose_split(splits: list[str], asked: str | None, dataset: str) -> str:
    """The split to evaluate: the one asked for, else "test", else "validation", else the only one there is.

    Raises:
        DatasetFormatError: The asked split is missing, or none was asked and the choice is not obvious; the message
            names the splits the dataset has.
    """
    if asked is not None:
        if asked not in splits:
            raise DatasetFormatError(
                f"{dataset} has no split {asked!r}; its splits are {', '.join(splits)}: pass one of them as --split"
            )
        return asked
    for name in ("test", "validation"):
        if name in splits:
            logger.info("evaluating split %r of %s", name, dataset)
            return name
    if len(splits) == 1:
        logger.warning(
            "%s has one split only, %r: evaluating it; if the model was trained on this dataset it has seen these "
            "clips (prepare_dataset --test_fraction 0.2 holds out test subjects)",
            dataset,
            splits[0],
        )
        return splits[0]
    raise DatasetFormatError(
        f"{dataset} has no 'test' or 'validation' split; its splits are {', '.join(splits)}: pass one as --split"
    )


@dataclass
class EvalArguments:
    """What to evaluate on which data."""

    model_name_or_path: str = field(default=None, metadata={"help": "A trained checkpoint folder or Hub id."})
    dataset_name_or_path: str = field(default=None, metadata={"help": "A processed-clip dataset (folder or Hub)."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Branch, tag or commit of a Hub dataset."})
    split: str | None = field(
        default=None,
        metadata={"help": "Split to evaluate; default 'test', else 'validation', else the dataset's only split."},
    )
    output_dir: str = field(default=None, metadata={"help": "Where results.json and the confusion matrix go."})
    window_stride: int | None = field(default=None, metadata={"help": "Frames between windows."})
    batch_size: int = field(default=WINDOW_BATCH, metadata={"help": "Windows per forward pass."})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda'...; default CUDA when available."})

    def __post_init__(self) -> None:
        missing = [f"--{name}" for name in ("model_name_or_path", "dataset_name_or_path", "output_dir")
                   if getattr(self, name) is None]  # fmt: skip
        if missing:
            raise ArgumentsError(f"give {' and '.join(missing)}")
        if self.batch_size < 1 or (self.window_stride is not None and self.window_stride < 1):
            raise ArgumentsError(f"--batch_size {self.batch_size} --window_stride {self.window_stride}: need >= 1")


def run(args: EvalArguments) -> dict[str, Any]:
    """Evaluate a checkpoint on one split of a processed-clip dataset; returns (and writes) the results.

    Raises:
        DatasetFormatError: The dataset has no split `args.split`, or none was asked and it has no obvious one (the
            message names the splits it has).
    """
    data = load_clips(args.dataset_name_or_path, revision=args.dataset_revision)
    split = choose_split(list(data), args.split, args.dataset_name_or_path)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = MicroXForVideoClassification.from_pretrained(args.model_name_or_path).to(device)
    feature_extractor = MicroXFeatureExtractor.from_pretrained(args.model_name_or_path)
    return evaluate_dataset(
        model,
        feature_extractor,
        data[split],
        args.output_dir,
        window_stride=args.window_stride,
        batch_size=args.batch_size,
        metadata={"model": args.model_name_or_path, "dataset": args.dataset_name_or_path, "split": split},
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the results."""
    return run(parse_arguments(EvalArguments, argv))


if __name__ == "__main__":
    run_script(main)
