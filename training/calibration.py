"""A label-free calibration of the frame encoder's prior: a class bias fitted on real video (`prior_bias`).

A face-expression network carries the class frequencies of its training data into its answers. On the real face
video a model can be trained on (`training.real_video`: speech, signing, head turns) every class but neutral is
rare, so the mean of the network's probabilities over those frames says which classes it favours on everyday faces
more than anything else. The bias divides that lean out, as a prior correction does (Saerens et al. 2002, with a
uniform target): b = -log(mean probability), centred on its median and bounded to +-`bound` nats so that it can
tip a close call but never overturn a confident answer; and classes in `never_raise` get no push upwards (face-api
already leans to fear on posed speech video: the bias must not feed that).

Measured on the labelled real stills of `bench/bench_real_labelled.py` (docs/real_faces_study.md), this bias fitted
on the permissive real videos lifted face-api's UAR from 0.601 to 0.640 (unbounded 0.646, and then it turned White
House speech from 69% to 50% neutral); it was not fitted or chosen on those stills. It needs no label: the frames are
unlabelled clips of a prepared dataset (label -1) with the encoder's network among their teachers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from .schema import teacher_column

logger = logging.getLogger(__name__)


def mean_probabilities(logits: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(L,) the mean over frames of a network's probabilities on the model's labels.

    Args:
        logits: (N, K) the network's logits per frame; rows with NaN (no face) are left out.
        matrix: (K, L) its classes -> the labels (`TeacherSpec.microx_matrix`).
    """
    z = np.asarray(logits, np.float64)
    z = z[np.isfinite(z).all(axis=1)]
    if not len(z):
        raise ValueError("no frame with a face to calibrate on")
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return ((p / p.sum(axis=1, keepdims=True)) @ matrix).mean(axis=0)


def bias_from_mean(mean: np.ndarray, labels: Sequence[str], bound: float = 1.0, never_raise=("fear",)) -> list[float]:
    """The bounded bias that evens out a mean prediction `mean` (L,): -log(mean) centred on its median, clipped to
    +-`bound`, and at most 0 for the labels in `never_raise`."""
    if bound <= 0:
        raise ValueError(f"bound={bound}: give a positive number of nats")
    b = -np.log(np.clip(np.asarray(mean, np.float64), 1e-6, None))
    b = np.clip(b - np.median(b), -bound, bound)
    for name in never_raise:
        if name in labels:
            b[list(labels).index(name)] = min(b[list(labels).index(name)], 0.0)
    return [round(float(v), 4) for v in b]


def fit_prior_bias(
    clips: Dataset, network: str, labels: Sequence[str], bound: float = 1.0, never_raise: Sequence[str] = ("fear",)
) -> dict:
    """Fit `prior_bias` on the unlabelled rows (label -1) of a prepared dataset, from `network`'s stored logits.

    Args:
        clips: Processed clips prepared with `--teachers` including `network` (the model's frame encoder).
        network: The teacher whose logits are the prior's (e.g. "faceapi": the encoder and the teacher see the same
            crop: the face square of 2.9 inter-ocular distances at 112 px).
        labels: The model's labels, in class order.

    Returns:
        {"prior_bias": [...] (L,), "mean": the network's mean prediction per label, "frames": frames used,
        "clips": clips used}.
    """
    from .teachers import get_teacher

    column = teacher_column(network)
    if column not in clips.column_names:
        raise ValueError(f"the dataset has no {column!r}: prepare it with --teachers including {network}")
    rows = [i for i, label in enumerate(clips["label"]) if label < 0]
    if not rows:
        raise ValueError("no unlabelled clip (label -1) to calibrate on: add real video labelled 'unlabelled'")
    logits = np.concatenate([np.asarray(clips[i][column], np.float32) for i in rows])  # (N, K)
    frames = int(np.isfinite(logits).all(axis=1).sum())
    mean = mean_probabilities(logits, get_teacher(network).microx_matrix(list(labels)))
    bias = bias_from_mean(mean, labels, bound, never_raise)
    logger.info("prior bias from %d frames of %d clips: %s", frames, len(rows), dict(zip(labels, bias, strict=True)))
    return {
        "prior_bias": bias,
        "mean": {name: round(float(m), 4) for name, m in zip(labels, mean, strict=True)},
        "frames": frames,
        "clips": len(rows),
        "network": network,
        "bound": bound,
        "never_raise": list(never_raise),
    }


__all__ = ["bias_from_mean", "fit_prior_bias", "mean_probabilities"]
