"""The losses of MicroX training and the `Trainer` that uses them: cross-entropy with class weights, distillation
from teachers' soft targets (labelled and unlabelled windows mixed, on the fused output and on every region branch),
a class-balanced sampler and source shares (`training/train.py` builds and runs it)."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer

from training.scripts import ArgumentsError

logger = logging.getLogger(__name__)


def distillation_loss(
    logits: torch.Tensor, teacher_probs: torch.Tensor, weight: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher || student) at `temperature`, times its square (so gradients keep their scale; Hinton et al.
    2015), averaged over the windows with a teacher target (`weight` 1) of the batch."""
    kl = row_kl(logits, teacher_probs, temperature)  # (B,)
    weight = weight.to(kl)
    return (kl * weight).sum() / weight.sum().clamp_min(1.0)


def row_kl(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at `temperature` times its square, per row: logits (..., L), targets (B, L) or
    broadcastable to the logits -> (...)."""
    log_student = F.log_softmax(logits.float() / temperature, dim=-1)
    teacher = teacher_probs.float().clamp_min(1e-8)
    return (teacher * (teacher.log() - log_student)).sum(dim=-1) * temperature**2


def mixed_loss(
    outputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    labelled: torch.Tensor,
    teacher_probs: torch.Tensor,
    teacher_weight: torch.Tensor,
    distill_weight: float,
    temperature: float,
    region_loss_weight: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of a batch that mixes labelled clips and unlabelled real video, with the teachers' soft targets.

    Per window: a labelled one gives (1 - distill_weight) * cross-entropy + distill_weight * distillation, an
    unlabelled one (label -1, or a label that came from the teachers) the distillation alone; a window without a
    teacher target (no face in its frames) gives its cross-entropy alone, or nothing. Both terms are taken on the
    fused logits and, times `region_loss_weight`, on each visible region's own logits (averaged over the regions):
    the teachers teach every region branch and its ConvLSTM what they see on the whole face, not only the fusion.

    Args:
        outputs: The model's "logits" (B, L), "region_logits" (B, R, L) and "region_weights" (B, R) (0 for a region
            hidden for the whole window).
        labels: (B,) class ids; ignored where `labelled` is False.
        labelled: (B,) bool.
        teacher_probs: (B, L) the teachers' (tempered) targets; teacher_weight (B,) 1 where there is one.
        class_weights: (L,) weights of the cross-entropy per class (`class_weights`), or None.
    """
    logits, region_logits = outputs["logits"], outputs["region_logits"]
    visible = (outputs["region_weights"] > 0).to(logits.dtype)  # (B, R)
    count = visible.sum(dim=1).clamp_min(1.0)  # (B,)
    labelled = labelled.to(logits.device) & (labels >= 0)
    safe = labels.clamp_min(0).long()
    weights = torch.ones(logits.shape[-1], device=logits.device) if class_weights is None else class_weights
    weights = weights.to(device=logits.device, dtype=torch.float32)
    ce = F.cross_entropy(logits.float(), safe, weight=weights, reduction="none")  # (B,)
    if region_loss_weight > 0:
        r = region_logits.shape[1]
        per_region = F.cross_entropy(
            region_logits.float().flatten(0, 1), safe.repeat_interleave(r), weight=weights, reduction="none"
        ).view(-1, r)  # (B, R)
        ce = ce + region_loss_weight * (per_region * visible).sum(dim=1) / count
    kd = row_kl(logits, teacher_probs, temperature)  # (B,)
    if region_loss_weight > 0:
        per_region = row_kl(region_logits, teacher_probs[:, None], temperature)  # (B, R)
        kd = kd + region_loss_weight * (per_region * visible).sum(dim=1) / count
    has_teacher = teacher_weight.to(logits.device) > 0
    w = float(distill_weight)
    loss = torch.where(
        labelled,
        torch.where(has_teacher, (1 - w) * ce + w * kd, ce),
        torch.where(has_teacher, kd, torch.zeros_like(kd)),
    )
    counted = (labelled | has_teacher).to(loss.dtype)
    return (loss * counted).sum() / counted.sum().clamp_min(1.0)


def class_weights(labels: list[int], num_labels: int) -> torch.Tensor:
    """Inverse class frequencies scaled so that the mean weight over the labelled training rows is 1 (absent classes:
    0; unlabelled rows, -1, are not counted)."""
    labels = np.asarray(labels, dtype=np.int64)
    labels = labels[labels >= 0]  # unlabelled clips (-1) learn from the teachers only
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = np.zeros(num_labels)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


class WeightedLoss:
    """``compute_loss_func`` for the Trainer: cross-entropy with per-class weights on the fused logits, plus
    `region_loss_weight` times the same on each visible region's own logits (the model's `region_loss_weight`,
    which its own loss would add, but the Trainer hands the labels to this function instead)."""

    def __init__(self, weights: torch.Tensor, region_loss_weight: float = 0.0):
        self.weights = weights
        self.region_loss_weight = region_loss_weight

    def _weighted(self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch) -> torch.Tensor:
        weights = self.weights.to(device=logits.device, dtype=logits.dtype)
        losses = F.cross_entropy(logits, labels, weight=weights, reduction="none")
        if num_items_in_batch is None:
            return losses.sum() / weights[labels].sum().clamp_min(1e-12)
        # Over an accumulated batch the Trainer expects a sum normalised by the number of items; the weights have
        # mean 1 over the training rows, so this matches the weighted mean in expectation.
        return losses.sum() / num_items_in_batch

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        labels = labels.to(logits.device).long()
        loss = self._weighted(logits, labels, num_items_in_batch)
        if self.region_loss_weight > 0:
            region_logits = outputs["region_logits"]  # (B, R, L)
            visible = outputs["region_weights"] > 0  # (B, R): a region hidden for the whole window has weight 0
            per_region = [
                self._weighted(region_logits[visible[:, r], r], labels[visible[:, r]], None)
                for r in range(region_logits.shape[1])
                if visible[:, r].any()
            ]
            if per_region:
                loss = loss + self.region_loss_weight * torch.stack(per_region).mean()
        return loss


class MicroXTrainer(Trainer):
    """The Trainer, with an optional class-balanced sampler (each class drawn equally often) and an optional
    distillation term from teachers' soft targets in the batch (`teacher_probs`, `teacher_weight`; `mixed_loss`).

    Args:
        class_weights: (L,) weights of the cross-entropy per class in the distillation loss, or None.
    """

    def __init__(
        self,
        *args,
        sample_weights: np.ndarray | None = None,
        distill_weight: float = 0.0,
        distill_temperature: float = 1.0,
        class_weights: torch.Tensor | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.sample_weights = sample_weights
        self.distill_weight = distill_weight
        self.distill_temperature = distill_temperature
        self.class_weights = class_weights

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_probs = inputs.pop("teacher_probs", None)
        teacher_weight = inputs.pop("teacher_weight", None)
        labelled = inputs.pop("labelled", None)
        if teacher_probs is None or self.distill_weight == 0:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = mixed_loss(
            outputs,
            labels,
            labels >= 0 if labelled is None else labelled,
            teacher_probs,
            teacher_weight,
            self.distill_weight,
            self.distill_temperature,
            self.model.config.region_loss_weight,
            self.class_weights,
        )
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is None:
            return super()._get_train_sampler(train_dataset)
        generator = torch.Generator().manual_seed(
            self.args.data_seed if self.args.data_seed is not None else self.args.seed
        )
        return torch.utils.data.WeightedRandomSampler(
            torch.as_tensor(self.sample_weights, dtype=torch.double),
            num_samples=len(self.sample_weights),
            replacement=True,
            generator=generator,
        )


def source_share_weights(sources: list[str], shares: dict[str, float]) -> np.ndarray:
    """Per clip, the sampling weight that draws each group of clips (clips whose `source` path starts with a key of
    `shares`) as often as its share says, whatever its size; clips of no group are never drawn.

    Raises:
        ArgumentsError: A group has no clip.
    """
    weights = np.zeros(len(sources))
    for prefix, share in shares.items():
        members = np.array([str(source).startswith(prefix) for source in sources])
        if not members.any():
            raise ArgumentsError(f"--source_shares: no training clip's source starts with {prefix!r}")
        weights[members & (weights == 0)] = share / members.sum()
    if not (weights > 0).all():
        logger.warning(
            "--source_shares: %d training clips belong to no group and are never drawn", (weights == 0).sum()
        )
    return weights * len(sources) / weights.sum()
