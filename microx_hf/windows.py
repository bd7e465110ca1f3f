"""Windows: how a clip's frames become the model's windows, and how window scores become the clip's scores.

The MicroX paper reads emotion from windows of `num_frames` consecutive frames (10 at 30 fps: 1/3 s). A clip is
covered by windows every `stride` frames, the last one moved back to end on the clip's last frame; a clip
shorter than one window gives a single window padded by repeating its last frame. The clip's scores are the mean
of the probabilities of the windows in which a face was seen (a window without a face says nothing about the
emotion). Every part of MicroX that cuts windows or pools them (the feature extractor, `predict`, the training
data and the evaluation) uses the functions here, so that a clip scores the same through each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def window_starts(n_frames: int, num_frames: int, stride: int) -> list[int]:
    """Start indices of windows of `num_frames` frames, every `stride` frames, covering the whole clip.

    The last window is moved back to end at the clip's last frame when the stride would leave frames uncovered.
    A clip shorter than one window gives `[0]` (`window_indices` pads it).

    Args:
        n_frames: Frames in the clip (at least 1).
        num_frames: Frames per window (at least 1).
        stride: Frames between window starts (at least 1).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames={n_frames}: a clip needs at least one frame")
    if num_frames < 1 or stride < 1:
        raise ValueError(f"num_frames={num_frames}, stride={stride}: both must be at least 1")
    starts = [k * stride for k in range(regular_windows(n_frames, num_frames, stride))]
    last = max(n_frames - num_frames, 0)
    if not starts or starts[-1] != last:
        starts.append(last)
    return starts


def regular_windows(n_frames: int, num_frames: int, stride: int) -> int:
    """How many windows starting every `stride` frames (0, stride, 2 stride, ...) fit in `n_frames` frames: the
    windows a stream can score before it knows where the clip ends (`window_starts` adds the last one)."""
    return 0 if n_frames < num_frames else (n_frames - num_frames) // stride + 1


def frame_indices(start: int, num_frames: int, n_frames: int) -> np.ndarray:
    """(T,) frame indices of the window starting at `start`; past the clip's end the last frame repeats."""
    return np.minimum(np.arange(start, start + num_frames), n_frames - 1)


def window_indices(n_frames: int, num_frames: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of every window of a clip.

    Returns:
        starts (W,) int and indices (W, T) int: window w shows frames `indices[w]` (padded for short clips).
    """
    starts = np.asarray(window_starts(n_frames, num_frames, stride), dtype=np.int64)
    return starts, np.stack([frame_indices(int(s), num_frames, n_frames) for s in starts])


def is_padded(n_frames: int, num_frames: int) -> bool:
    """Whether a clip of `n_frames` frames is shorter than one window (so its window repeats its last frame)."""
    return n_frames < num_frames


def normalize(crops: Any, image_mean: Sequence[float], image_std: Sequence[float]) -> Any:
    """uint8 crops (..., C, H, W) -> float32 ((x / 255 - mean) / std), numpy or torch alike."""
    mean = np.asarray(image_mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(image_std, np.float32).reshape(-1, 1, 1)
    if not isinstance(crops, np.ndarray) and hasattr(crops, "float"):  # a torch tensor
        import torch

        mean_t = torch.as_tensor(mean, device=crops.device)
        std_t = torch.as_tensor(std, device=crops.device)
        return (crops.float() / 255.0 - mean_t) / std_t
    return ((np.asarray(crops, np.float32) / 255.0 - mean) / std).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, in the dtype of `logits` (numerically stable)."""
    logits = np.asarray(logits)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def clip_scores(window_probs: np.ndarray, has_face: np.ndarray | None = None) -> np.ndarray:
    """The clip's probabilities: the mean of the window probabilities over the windows with a face.

    Args:
        window_probs: (W, L) probabilities per window; rows of windows without a face may be NaN.
        has_face: (W,) bool; default: the rows without NaN.

    Returns:
        (L,) probabilities.

    Raises:
        ValueError: No window shows a face.
    """
    window_probs = np.asarray(window_probs, dtype=np.float64)
    if has_face is None:
        has_face = np.isfinite(window_probs).all(axis=1)
    has_face = np.asarray(has_face, dtype=bool)
    if not has_face.any():
        raise ValueError("no window of the clip shows a face: there is nothing to score")
    return window_probs[has_face].mean(axis=0)


def pool_clips(
    window_probs: np.ndarray, clip_ids: Sequence[Any], has_face: np.ndarray | None = None
) -> tuple[list, np.ndarray]:
    """`clip_scores` for many clips at once.

    Args:
        window_probs: (W, L) probabilities of the windows of all clips.
        clip_ids: (W,) the clip of each window.
        has_face: (W,) bool, as in `clip_scores`.

    Returns:
        The clip ids in order of first appearance and their (K, L) probabilities. A clip in which no window shows
        a face gets the mean of all its windows (it must still be scored in an evaluation).
    """
    window_probs = np.asarray(window_probs, dtype=np.float64)
    clip_ids = list(clip_ids)
    if window_probs.ndim != 2 or len(clip_ids) != window_probs.shape[0]:
        raise ValueError(
            f"window_probs must be (W, L) with one clip id per window, got {window_probs.shape} and {len(clip_ids)} ids"
        )
    if has_face is None:
        has_face = np.isfinite(window_probs).all(axis=1)
    has_face = np.asarray(has_face, dtype=bool)
    order: dict = {}
    index = np.array([order.setdefault(c, len(order)) for c in clip_ids], dtype=np.int64)
    pooled = np.zeros((len(order), window_probs.shape[1]))
    for k in range(len(order)):
        rows = index == k
        use = rows & has_face if (rows & has_face).any() else rows
        pooled[k] = np.nan_to_num(window_probs[use]).mean(axis=0)
    return list(order), pooled


__all__ = [
    "window_starts",
    "regular_windows",
    "frame_indices",
    "window_indices",
    "is_padded",
    "normalize",
    "softmax",
    "clip_scores",
    "pool_clips",
]
