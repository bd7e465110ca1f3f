"""Running teachers on real frames: face crops at each teacher's own input size, probabilities on MicroX's labels.

A teacher sees the library's `face` region (a square of `scale` inter-ocular distances around the face, rotated
so the eyes are level; `microx_hf.regions`) cut from the full-resolution frame at the teacher's input size, not an
upscaled model crop. Its class probabilities are summed onto MicroX's labels with `TeacherSpec.microx_matrix`
(disgust goes to contempt); an ensemble is the mean of its members' mapped probabilities.

The face scale 2.9 (the library's default face crop) was the best of 2.2/2.5/2.9 for fer on the labelled real
stills (4 of 5 against 3 of 5) and equal for facex (`bench/teachers_probe_pypi.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from microx_hf.regions import crop_boxes, crop_region

from . import TeacherSpec, get_teacher

FACE_SCALE = 2.9


def teacher_crop(frame_rgb: np.ndarray, points: np.ndarray, size: int, scale: float = FACE_SCALE) -> np.ndarray:
    """The aligned face square of `scale` inter-ocular distances, cut from the frame at `size` x `size` (RGB uint8)."""
    box = crop_boxes(points, ["face"], "iod", {"face": scale}, True)["face"]
    return crop_region(frame_rgb, box, size)


class Teachers:
    """One or more teachers, run on (frame, 68 landmarks) pairs.

    Args:
        names: Registered teacher names (`training.teachers.teacher_names()`).
        labels: The label names to map onto, in the student's class order.
        cache: Where converted weights live (see `training.teachers.default_cache`).
        scale: Face crop scale in inter-ocular distances.
        batch_size: Faces per forward pass.
    """

    def __init__(
        self,
        names: Sequence[str],
        labels: Sequence[str],
        cache: Path | None = None,
        scale: float = FACE_SCALE,
        batch_size: int = 32,
    ) -> None:
        if not names:
            raise ValueError("give at least one teacher name")
        self.specs: list[TeacherSpec] = [get_teacher(n) for n in names]
        self.labels = list(labels)
        self.scale = scale
        self.batch_size = batch_size
        self.modules = [spec.load(cache) for spec in self.specs]
        self.matrices = [spec.microx_matrix(self.labels) for spec in self.specs]

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    @torch.inference_mode()
    def logits(self, frames: Sequence[np.ndarray], points: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Each teacher's logits (N, K) in its own classes, for N faces."""
        out = {}
        for spec, module in zip(self.specs, self.modules, strict=True):
            crops = np.stack(
                [teacher_crop(f, p, spec.input_size, self.scale) for f, p in zip(frames, points, strict=True)]
            )
            x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, S, S) RGB in [0, 1]
            chunks = [module(x[i : i + self.batch_size]).float() for i in range(0, len(x), self.batch_size)]
            out[spec.name] = torch.cat(chunks).numpy()
        return out

    def probs(self, logits: dict[str, np.ndarray], temperature: float = 1.0) -> dict[str, np.ndarray]:
        """Each teacher's probabilities (N, L) on the student's labels, from `logits`."""
        out = {}
        for spec, matrix in zip(self.specs, self.matrices, strict=True):
            z = logits[spec.name] / temperature
            p = np.exp(z - z.max(axis=1, keepdims=True))
            out[spec.name] = (p / p.sum(axis=1, keepdims=True)) @ matrix
        return out

    def ensemble(self, logits: dict[str, np.ndarray], temperature: float = 1.0) -> np.ndarray:
        """(N, L) mean of the teachers' mapped probabilities."""
        return np.mean(list(self.probs(logits, temperature).values()), axis=0)


__all__ = ["FACE_SCALE", "Teachers", "teacher_crop"]
