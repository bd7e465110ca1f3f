"""Train MicroX with the transformers `Trainer` on a processed-clip dataset, then evaluate it clip by clip.

Usage (flags, or a JSON file with the same keys as the first argument; flags after it override the file; in code
`run(ModelArguments(...), DataArguments(...), TrainingArguments(...))`)::

    python -m training.train --dataset_name_or_path data/baum1s --output_dir runs/baum1s \
        --protocol kfold --num_folds 5 --fold 0 --num_train_epochs 30 --per_device_train_batch_size 8
    python -m training.train configs/baum1s.json --fold 2
    accelerate launch -m training.train configs/baum1s.json        # several GPUs: the Trainer's own support
    torchrun --nproc_per_node 4 -m training.train configs/baum1s.json

A config file holds the flags' names as keys, e.g.::

    {"dataset_name_or_path": "data/baum1s", "output_dir": "runs/baum1s-loso", "protocol": "loso",
     "preset": "default", "num_train_epochs": 40, "per_device_train_batch_size": 8, "learning_rate": 1e-3,
     "class_balance": "weighted_loss", "early_stopping_patience": 5, "mixed_precision": "auto", "seed": 0}

Each training step sees one random 10-frame window per clip (`training.data.WindowTransform`), so an epoch is one
pass over the clips and long clips do not dominate. Validation (for early stopping) and the final test use every
window of a clip (`expand_windows`); the test reports clip-level predictions, the mean of the window
probabilities (`training.evaluate`).

Protocols (`--protocol`): ``given`` uses the dataset's own splits; ``kfold`` and ``loso`` build subject-independent
folds over all of its rows (`training.splits`) and train fold ``--fold``; ``paper`` reproduces the MicroX paper's
random 80/20 split over 10-frame windows, which is optimistic and reported only for comparison. The validation set
is made of whole subjects held out of the training part, unless the dataset has a validation split.
"""

# ruff: noqa: E402 (`--help` is answered before the heavy imports, see below)
from __future__ import annotations

import sys

from training.scripts import exit_on_short_help
from training.train_arguments import TRAINER_FLAGS, DataArguments, ModelArguments


def print_help_and_exit(argv: list[str]) -> None:
    """`--help` / `-h`: MicroX's own flags and the Trainer's few that a first run sets, in a second (without
    importing torch or transformers); `--help-all` is left to the full parser (every `TrainingArguments` flag)."""
    exit_on_short_help(
        argv,
        prog="python -m training.train",
        description=__doc__,
        groups=[("model", ModelArguments), ("data", DataArguments), ("trainer (a few; --help-all for all)",
                                                                      TRAINER_FLAGS)],
        epilog="Every flag of transformers' TrainingArguments works too: python -m training.train --help-all",
        usage="%(prog)s [CONFIG.json] --dataset_name_or_path DATA --output_dir RUN [--flag VALUE ...]",
    )  # fmt: skip


if __name__ == "__main__":
    print_help_and_exit(sys.argv[1:])

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict, concatenate_datasets
from transformers import EarlyStoppingCallback, HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import IntervalStrategy, get_last_checkpoint

from microx_hf.configuration_microx import KNOWN_REGIONS, MicroXConfig
from microx_hf.errors import DatasetFormatError
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.frame_encoder_hub import is_hub_encoder
from microx_hf.modeling_microx import MicroXForVideoClassification
from training.data import DistillTargets, WindowDataset, WindowTransform, collate_windows, expand_windows, load_clips
from training.evaluate import evaluate_dataset
from training.metrics import compute_window_metrics
from training.schema import ENCODER_COLUMN, prepared_extractor_settings
from training.scripts import ArgumentsError, run_script
from training.splits import assert_subject_independent, make_folds, paper_split, subject_holdout
from training.trainer import (
    MicroXTrainer,
    WeightedLoss,
    class_weights,
    source_share_weights,
)

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Parse flags; a first argument ending in ``.json`` is a config file whose keys the flags may override.
    `--help` prints the short help and exits; `--help-all` the full one, with every `TrainingArguments` flag."""
    argv = list(sys.argv[1:] if argv is None else argv)
    print_help_and_exit(argv)
    argv = ["--help" if a == "--help-all" else a for a in argv]
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    if argv and argv[0].endswith(".json"):
        config_path = Path(argv.pop(0))
        if not config_path.is_file():
            raise FileNotFoundError(f"training config {config_path} does not exist")
        values = json.loads(config_path.read_text())
        known = {f.name for dc in parser.dataclass_types for f in dataclasses.fields(dc)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ArgumentsError(f"{config_path} has unknown keys {unknown}; see `python -m training.train --help`")
        parser.set_defaults(**values)
        # A required flag given in the file is no longer required on the command line.
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)


@dataclass
class Splits:
    """The data of one run: clips to train on, clips (or windows) to validate and test on."""

    train: Dataset
    validation: Dataset | None
    test: Dataset | None
    protocol: str
    fold_name: str
    subject_independent: bool
    test_subjects: list[str] = field(default_factory=list)
    windows_are_clips: bool = False  # the paper protocol: train and test rows are already single windows


def make_splits(clips: DatasetDict, data_args: DataArguments, num_frames: int, regions: list[str]) -> Splits:
    """Apply the protocol to the dataset."""
    if data_args.protocol == "given":
        if data_args.train_split not in clips:
            raise DatasetFormatError(f"no split {data_args.train_split!r}; the dataset has {list(clips)}")
        train = clips[data_args.train_split]
        test = clips.get(data_args.test_split)
        if test is None:
            logger.warning("no test split %r: the run will report no test results", data_args.test_split)
        validation = clips.get(data_args.validation_split)
        splits = Splits(train, validation, test, "given", "given", subject_independent=True)
        if test is not None:
            splits.test_subjects = sorted(set(test["subject"]))
            shared = set(train["subject"]) & set(test["subject"])
            if shared:
                logger.warning("the given splits share subjects %s: results are not subject-independent", shared)
                splits.subject_independent = False
    else:
        full = concatenate_datasets(list(clips.values())) if len(clips) > 1 else next(iter(clips.values()))
        if data_args.protocol == "paper":
            # The paper cut clips into non-overlapping 10-frame segments and split those at random.
            full = expand_windows(full, num_frames, num_frames, regions)
            fold = paper_split(len(full), 0.2, data_args.split_seed)
        else:
            subjects = full["subject"]
            folds = make_folds(subjects, data_args.protocol, data_args.num_folds, data_args.split_seed)
            if not 0 <= data_args.fold < len(folds):
                raise ArgumentsError(
                    f"--fold {data_args.fold} is out of range: {data_args.protocol} has {len(folds)} folds"
                )
            fold = folds[data_args.fold]
            assert_subject_independent(fold, subjects)
        splits = Splits(
            full.select(fold.train),
            None,
            full.select(fold.test),
            data_args.protocol,
            fold.name,
            fold.subject_independent,
            fold.test_subjects,
            windows_are_clips=data_args.protocol == "paper",
        )
    if splits.validation is None and data_args.validation_fraction > 0:
        if splits.windows_are_clips:
            held = paper_split(len(splits.train), data_args.validation_fraction, data_args.split_seed)
            keep, val = held.train, held.test
        elif len(set(splits.train["subject"])) >= 2:
            keep, val = subject_holdout(splits.train["subject"], data_args.validation_fraction, data_args.split_seed)
        else:
            keep, val = None, None
            logger.warning("one training subject only: no validation set, so no early stopping")
        if keep is not None:
            splits.validation = splits.train.select(val)
            splits.train = splits.train.select(keep)
    if data_args.max_train_clips is not None:
        splits.train = splits.train.select(range(min(data_args.max_train_clips, len(splits.train))))
    logger.info(
        "protocol %s (%s): %d training rows, %s validation, %s test",
        splits.protocol,
        splits.fold_name,
        len(splits.train),
        len(splits.validation) if splits.validation is not None else "no",
        len(splits.test) if splits.test is not None else "no",
    )
    return splits


def build_config(model_args: ModelArguments, clips: Dataset, settings: dict[str, Any]) -> MicroXConfig:
    """The model config: the preset, the user's overrides, and what the dataset fixes (labels, regions, crop size)."""
    names = clips.features["label"].names
    overrides = model_args.overrides()
    data_regions = [r for r in settings.get("regions", KNOWN_REGIONS) if r in clips.column_names]
    regions = overrides.pop("regions", None) or data_regions
    missing = [r for r in regions if r not in clips.column_names]
    if missing or not regions:
        raise DatasetFormatError(
            f"regions {missing or regions} have no column in the dataset (columns: {clips.column_names}); "
            "prepare the dataset with those regions or drop them from the config"
        )
    crop_size = int(clips.features[regions[0]].shape[-1])
    if overrides.get("image_size", crop_size) != crop_size:
        raise DatasetFormatError(
            f"config image_size={overrides['image_size']} but the dataset holds {crop_size}x{crop_size} crops; "
            "prepare the dataset with --crop_size equal to the model's image_size"
        )
    overrides.update(image_size=crop_size, regions=list(regions))
    overrides.setdefault("num_frames", int(settings.get("num_frames", 10)))
    stored = int(clips.features[ENCODER_COLUMN].shape[-1]) if ENCODER_COLUMN in clips.column_names else None
    if stored is not None and not is_hub_encoder(overrides.get("frame_encoder")):
        # A packaged encoder sees the face at the side the dataset stored it at; a Hub encoder at its processor's.
        overrides.setdefault("frame_encoder_size", stored)
    id2label = dict(enumerate(names))
    label2id = {name: i for i, name in id2label.items()}
    config = MicroXConfig.from_preset(model_args.preset, id2label=id2label, label2id=label2id, **overrides)
    if config.frame_encoder is not None and stored is not None and stored != config.frame_encoder_size:
        raise DatasetFormatError(
            f"the dataset's {ENCODER_COLUMN!r} are {stored}x{stored} but the frame encoder {config.frame_encoder!r} "
            f"takes {config.frame_encoder_size}x{config.frame_encoder_size}; prepare the dataset with "
            f"--encoder_crop_size {config.frame_encoder_size}"
        )
    return config


def build_feature_extractor(config: MicroXConfig, settings: dict[str, Any]):
    """The feature extractor that reproduces the dataset's preprocessing, for the model's frames and regions."""
    settings = {k: v for k, v in settings.items() if k not in ("feature_extractor_type", "image_processor_type")}
    overrides = {"num_frames": config.num_frames, "regions": list(config.regions), "crop_size": config.image_size}
    if config.frame_encoder is not None:
        overrides.update(encoder_crop_size=config.frame_encoder_size, encoder_region=config.frame_encoder_region)
    return MicroXFeatureExtractor.from_dict({**settings, **overrides})


def init_frame_encoder(model: MicroXForVideoClassification, weights: str | None) -> str | None:
    """Load the frame encoder's pretrained weights into a fresh model; returns where they came from."""
    if model.config.frame_encoder is None or (weights or "").lower() == "none":
        return None
    from safetensors.torch import load_file

    if weights is None and is_hub_encoder(model.config.frame_encoder):
        model.microx.frame_encoder.load_pretrained(model.config.frame_encoder)  # AutoModelForImageClassification
        logger.info("frame encoder %s: pretrained weights from the Hub", model.config.frame_encoder)
        return model.config.frame_encoder
    if weights is None:
        from training.teachers import get_teacher

        path = get_teacher(model.config.frame_encoder).weights_path()
    else:
        path = Path(weights)
    model.microx.load_frame_encoder(load_file(str(path)))
    logger.info("frame encoder %s: pretrained weights from %s", model.config.frame_encoder, path)
    return str(path)


def resolve_precision(model_args: ModelArguments, training_args: TrainingArguments) -> TrainingArguments:
    """Apply ``--mixed_precision``: the same command runs in fp32 on a CPU and in bf16/fp16 on a GPU."""
    choice = model_args.mixed_precision
    if choice == "no":
        return training_args
    cuda = torch.cuda.is_available()
    if choice == "auto":
        choice = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "no"
    elif not cuda:
        raise RuntimeError(f"--mixed_precision {choice} needs a CUDA GPU; use 'auto' to fall back to fp32 on a CPU")
    logger.info("mixed precision: %s", choice)
    return dataclasses.replace(training_args, bf16=choice == "bf16", fp16=choice == "fp16")


def prepare_training_args(
    training_args: TrainingArguments, data_args: DataArguments, has_validation: bool
) -> TrainingArguments:
    """Settings the data pipeline needs, and evaluation every epoch for early stopping unless the user chose."""
    changes: dict[str, Any] = {"remove_unused_columns": False, "label_names": ["labels"]}
    if training_args.dataloader_pin_memory and not torch.cuda.is_available():
        # Pinned memory only speeds copies to a GPU; without one, torch warns on every epoch's DataLoader.
        changes["dataloader_pin_memory"] = False
    if training_args.ddp_find_unused_parameters is None:
        # Every branch runs on every window (a masked region is zeroed, not skipped): no unused parameters in DDP.
        changes["ddp_find_unused_parameters"] = False
    if has_validation and data_args.early_stopping_patience > 0 and training_args.eval_strategy == IntervalStrategy.NO:
        logger.info("early stopping: evaluating and saving every epoch, keeping the best model by validation UAR")
        changes.update(
            eval_strategy="epoch",
            save_strategy="epoch",
            load_best_model_at_end=True,
            metric_for_best_model=training_args.metric_for_best_model or "uar",
        )
        if training_args.metric_for_best_model is None:
            changes["greater_is_better"] = True
    if not has_validation and training_args.eval_strategy != IntervalStrategy.NO:
        raise ArgumentsError(
            "eval_strategy is set but there is no validation data: give a dataset with a validation split or "
            "--validation_fraction > 0 with at least two training subjects"
        )
    return dataclasses.replace(training_args, **changes)


def run(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict[str, Any]:
    """Train, save the model and its feature extractor, evaluate on the test part; returns the test results."""
    set_seed(training_args.seed)
    clips = load_clips(data_args.dataset_name_or_path, revision=data_args.dataset_revision)
    first = next(iter(clips.values()))
    settings = prepared_extractor_settings(first)

    if model_args.model_name_or_path:
        model = MicroXForVideoClassification.from_pretrained(model_args.model_name_or_path)
        feature_extractor = MicroXFeatureExtractor.from_pretrained(model_args.model_name_or_path)
        config = model.config
        if list(config.id2label.values()) != list(first.features["label"].names):
            raise DatasetFormatError(
                f"the checkpoint's labels {list(config.id2label.values())} differ from the dataset's "
                f"{first.features['label'].names}; relabel the dataset or train from a preset"
            )
    else:
        config = build_config(model_args, first, settings)
        model = MicroXForVideoClassification(config)
        init_frame_encoder(model, model_args.frame_encoder_weights)
        feature_extractor = build_feature_extractor(config, settings)
    use_encoder_crops = config.frame_encoder is not None and ENCODER_COLUMN in first.column_names
    if config.frame_encoder is not None and not use_encoder_crops:
        logger.warning(
            "the dataset has no %r column: the frame encoder sees the %d px %r crops resized to %d px; prepare the "
            "dataset with --encoder_crop_size %d for sharper inputs",
            ENCODER_COLUMN, config.image_size, config.frame_encoder_region, config.frame_encoder_size,
            config.frame_encoder_size,
        )  # fmt: skip
        feature_extractor.encoder_crop_size = None
    distill = None
    if model_args.distill_teachers:
        # A prior calibrated by `prior_bias` learns from targets calibrated alike (not ones that undo it).
        bias = getattr(config, "prior_bias", None) if config.fusion == "residual" else None
        distill = DistillTargets(model_args.teacher_list(), list(config.id2label.values()),
                                 model_args.distill_temperature, model_args.teacher_weights(), bias)  # fmt: skip

    stride = data_args.eval_window_stride or getattr(feature_extractor, "window_stride", None) or config.num_frames

    def windows_of(rows: Dataset, train: bool, windows_per_clip: int = 1) -> WindowDataset:
        transform = WindowTransform.for_model(
            config,
            feature_extractor,
            train=train,
            seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
            flip_prob=data_args.flip_prob,
        )
        # Validation windows carry the teachers' targets too: the validation loss of a window without a label of
        # its own (real video) is its distillation loss, and its label for the metrics the teachers' answer.
        return WindowDataset(rows, transform, windows_per_clip=windows_per_clip, encoder_crops=use_encoder_crops,
                             distill=distill, teacher_labels=not train and distill is not None)  # fmt: skip

    # Under torchrun/accelerate the main process writes the window datasets' cache first; the others reuse it.
    with training_args.main_process_first(desc="splits and evaluation windows"):
        splits = make_splits(clips, data_args, config.num_frames, list(config.regions))
        # `windows_per_clip` random windows per clip and epoch
        train_set = windows_of(splits.train, train=True, windows_per_clip=data_args.windows_per_clip)
        eval_set = None
        if splits.validation is not None:
            if splits.windows_are_clips:
                eval_set = windows_of(splits.validation, train=False)
            else:
                windows = expand_windows(splits.validation, config.num_frames, stride, config.regions)
                eval_set = windows_of(windows, train=False)

    training_args = resolve_precision(model_args, training_args)
    training_args = prepare_training_args(training_args, data_args, eval_set is not None)

    train_labels = np.asarray(splits.train["label"])
    if (train_labels < 0).any() and distill is None:
        raise ArgumentsError(
            f"{int((train_labels < 0).sum())} training clips have no label (-1: real video to learn from the "
            "teachers): give --distill_teachers, with the teachers' logits in the dataset (prepare_dataset --teachers)"
        )
    compute_loss_func, sample_weights, weights = None, None, None
    if data_args.class_balance == "weighted_loss":
        weights = class_weights(train_labels, config.num_labels)
        logger.info("class weights: %s", dict(zip(config.id2label.values(), weights.tolist(), strict=True)))
        compute_loss_func = WeightedLoss(weights, config.region_loss_weight)
    elif data_args.class_balance == "balanced_sampler":
        per_class = class_weights(train_labels, config.num_labels).numpy()
        per_clip = np.where(train_labels >= 0, per_class[np.maximum(train_labels, 0)], 1.0)
        sample_weights = np.tile(per_clip, data_args.windows_per_clip)  # WindowDataset repeats the clips in order
    if data_args.source_shares:
        per_clip = source_share_weights(splits.train["source"], data_args.shares())
        if sample_weights is not None:
            per_clip = per_clip * sample_weights[: len(per_clip)]
        sample_weights = np.tile(per_clip, data_args.windows_per_clip)

    callbacks = []
    if eval_set is not None and data_args.early_stopping_patience > 0:
        if training_args.load_best_model_at_end:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience))
        else:
            logger.warning("no early stopping: it needs --load_best_model_at_end (and matching eval/save strategies)")
    trainer = MicroXTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=feature_extractor,
        data_collator=collate_windows,
        compute_metrics=compute_window_metrics,
        compute_loss_func=compute_loss_func,
        callbacks=callbacks,
        sample_weights=sample_weights,
        distill_weight=model_args.distill_weight if distill is not None else 0.0,
        distill_temperature=model_args.distill_temperature,
        class_weights=weights,
    )

    resume = training_args.resume_from_checkpoint
    if resume is not None and resume.lower() in ("last", "auto", "true"):
        resume = get_last_checkpoint(training_args.output_dir)
        if resume is None:
            logger.info("no checkpoint in %s to resume from: starting afresh", training_args.output_dir)
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()  # the best model when load_best_model_at_end, with the feature extractor
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    results: dict[str, Any] = {}
    if splits.test is not None and trainer.is_world_process_zero():
        results = evaluate_dataset(
            trainer.model,
            feature_extractor,
            splits.test,
            output_dir=training_args.output_dir,
            window_stride=stride,
            batch_size=training_args.per_device_eval_batch_size,
            windows_are_clips=splits.windows_are_clips,
            metadata={
                "protocol": splits.protocol,
                "fold": splits.fold_name,
                "subject_independent": splits.subject_independent,
                "test_subjects": splits.test_subjects,
                "dataset": data_args.dataset_name_or_path,
                "num_train_clips": len(splits.train),
                "num_validation_rows": len(splits.validation) if splits.validation is not None else 0,
                "class_balance": data_args.class_balance,
                "early_stopping_patience": data_args.early_stopping_patience if callbacks else 0,
                "metric_for_best_model": training_args.metric_for_best_model,
                "preset": model_args.preset,
                "seed": training_args.seed,
                "frame_encoder": config.frame_encoder,
                "distill_teachers": model_args.teacher_list(),
                "distill_weight": model_args.distill_weight if distill is not None else 0.0,
                "distill_temperature": model_args.distill_temperature if distill is not None else None,
            },
        )
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point: parse flags (or a JSON config file) and `run`."""
    model_args, data_args, training_args = parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=training_args.get_process_log_level()
    )
    return run(model_args, data_args, training_args)


if __name__ == "__main__":
    run_script(main)
