"""Scoring a clip's windows with a runtime, frame by frame, in bounded memory, on numpy arrays.

A clip's frames arrive one at a time (`ClipScorer.push`). The per-frame part of the network (`encode_frames`:
the stem, the ConvLSTM's input convolution, the pretrained frame encoder) runs once per frame, in chunks, and the
per-window part (`classify_windows`: the recurrence, heads and fusion) runs on batches of the windows of
`microx_hf.windows` as soon as their frames are in. Frames no window still needs are dropped, so memory is bounded
by a window and a batch, not by the video's length. `predict` (a user's video) and the evaluation of a prepared
dataset (`training.evaluate`) both score through here, so a clip gets the same scores through either. The network
itself runs behind the `microx_hf.runtime.Runtime` interface (torch, or ONNX Runtime), so nothing here needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .windows import frame_indices, normalize, regular_windows, softmax, window_starts

if TYPE_CHECKING:
    from .runtime import Runtime

# Windows per call of the per-window part: 4-8 was fastest on a CPU, 32 was 40-49% slower per window.
WINDOW_BATCH = 8


@dataclass
class WindowScores:
    """What the model said about each window of one clip.

    Attributes:
        starts: (W,) first frame of each window.
        probs: (W, L) fused probabilities; NaN rows for windows without a face (not scored).
        region_weights: (W, R) fusion weight of each region; NaN rows for windows without a face.
        region_probs: (W, R, L) each region's own probabilities; NaN for windows without a face.
        num_frames: Frames in the clip.
        padded: The clip is shorter than one window (its only window repeats the last frame).
        kept_crops: Window index -> (R, T, C, S, S) uint8 crops, for the windows `keep_telling` kept: for each
            label, the window with the highest probability of that label.
    """

    starts: np.ndarray
    probs: np.ndarray
    region_weights: np.ndarray
    region_probs: np.ndarray
    num_frames: int
    padded: bool
    kept_crops: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def has_face(self) -> np.ndarray:
        """(W,) bool: windows in which a face was seen (the ones the model scored)."""
        return np.isfinite(self.probs).all(axis=1)


class ClipScorer:
    """Scores the windows of one clip as its frames arrive.

    Args:
        runtime: What runs the network (`microx_hf.runtime.TorchRuntime(model)`, or an ONNX one).
        stride: Frames between window starts.
        image_mean: The feature extractor's normalisation mean.
        image_std: Its standard deviation.
        batch_size: Windows per call of the per-window part.
        keep_telling: Keep the uint8 crops of each label's most telling window (for displays).
    """

    def __init__(
        self,
        runtime: Runtime,
        stride: int,
        image_mean: list[float],
        image_std: list[float],
        batch_size: int = WINDOW_BATCH,
        keep_telling: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: pass at least 1")
        self.runtime = runtime
        self.num_frames = int(runtime.num_frames)
        self.stride = int(stride)
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.batch_size = int(batch_size)
        self.keep_telling = keep_telling
        self.num_labels = len(runtime.labels)
        self.num_regions = len(runtime.regions)
        # Frames from `base` on: uint8 crops and masks, and the encoded features of the first `encoded` of them.
        self.base = 0
        self.crops: list[np.ndarray] = []  # (R, C, S, S) uint8 per frame
        self.masks: list[np.ndarray] = []  # (R,) bool per frame
        self.encoder_crops: list[np.ndarray | None] = []  # (C, E, E) uint8 per frame, or None
        self.features: dict[str, np.ndarray] = {}  # per key (1, encoded, ...) for frames base .. base + encoded
        self.encoded = 0
        self.next_window = 0  # index of the next regular window (start = index * stride) to score
        self.ready: list[tuple[int, np.ndarray]] = []  # (start, (T,) absolute frame indices) awaiting a batch
        self.results: list[tuple[int, np.ndarray | None, np.ndarray | None, np.ndarray | None]] = []
        self.best: dict[int, tuple[float, int]] = {}  # label -> (probability, window index in results)
        self.kept: dict[int, np.ndarray] = {}

    @property
    def num_seen(self) -> int:
        return self.base + len(self.crops)

    def push(self, crops: np.ndarray, mask: np.ndarray, encoder_crop: np.ndarray | None = None) -> None:
        """Adds one frame: crops (R, C, S, S) uint8 in the model's region order, mask (R,) bool, and the frame
        encoder's own crop (C, E, E) uint8 where the extractor cuts one (else the model resizes its region's)."""
        self.crops.append(np.asarray(crops, dtype=np.uint8))
        self.masks.append(np.asarray(mask, dtype=bool))
        self.encoder_crops.append(encoder_crop)
        t, s = self.num_frames, self.stride
        while self.next_window < regular_windows(self.num_seen, t, s):
            start = self.next_window * s
            self.ready.append((start, np.arange(start, start + t)))
            self.next_window += 1
        if len(self.ready) >= self.batch_size:
            self._flush()

    def finish(self) -> WindowScores:
        """Scores what is left (the last window ends on the last frame; a short clip gets one padded window)."""
        n, t = self.num_seen, self.num_frames
        if n == 0:
            raise ValueError("no frames were pushed: there is nothing to score")
        scored_last = self.results[-1][0] if self.results else None
        pending_last = self.ready[-1][0] if self.ready else None
        last = window_starts(n, t, self.stride)[-1]
        if last not in (scored_last, pending_last):
            self.ready.append((last, frame_indices(last, t, n)))
        self._flush()
        self.results.sort(key=lambda item: item[0])
        w = len(self.results)
        probs = np.full((w, self.num_labels), np.nan, np.float32)
        weights = np.full((w, self.num_regions), np.nan, np.float32)
        region_probs = np.full((w, self.num_regions, self.num_labels), np.nan, np.float32)
        for k, (_, p, rw, rp) in enumerate(self.results):
            if p is not None:
                probs[k], weights[k], region_probs[k] = p, rw, rp
        starts = np.asarray([start for start, *_ in self.results], dtype=np.int64)
        return WindowScores(starts, probs, weights, region_probs, n, n < t, dict(self.kept))

    # --- internals ------------------------------------------------------------------------------------------

    def _encode_pending(self, upto: int) -> None:
        """Encodes the frames `base + encoded` .. `upto` (absolute, exclusive) in one call."""
        first = self.base + self.encoded
        if upto <= first:
            return
        pending = slice(first - self.base, upto - self.base)
        chunk = np.stack(self.crops[pending], axis=1)  # (R, M, C, S, S)
        mask = np.stack(self.masks[pending], axis=1)  # (R, M)
        pixel_values = normalize(chunk, self.image_mean, self.image_std)[None]  # (1, R, M, C, S, S)
        encoder = self.encoder_crops[pending]
        encoder_values = None
        if encoder and all(e is not None for e in encoder):
            encoder_values = normalize(np.stack(encoder), self.image_mean, self.image_std)[None]  # (1, M, C, E, E)
        new = self.runtime.encode_frames(pixel_values, mask[None], encoder_values)
        self.features = {
            key: np.concatenate([self.features[key], value], axis=1) if key in self.features else value
            for key, value in new.items()
        }
        self.encoded = upto - self.base

    def _flush(self) -> None:
        if not self.ready:
            return
        ready, self.ready = self.ready, []
        for i in range(0, len(ready), self.batch_size):
            self._score(ready[i : i + self.batch_size])
        self._drop_old_frames()

    def _score(self, batch: list[tuple[int, np.ndarray]]) -> None:
        frames = np.stack([index for _, index in batch])  # (W, T) absolute frame indices
        masks = np.stack(self.masks, axis=1)  # (R, N_buffered)
        local = frames - self.base
        has_face = masks[:, local].any(axis=(0, 2))  # (W,)
        face_rows = np.flatnonzero(has_face)
        if len(face_rows):
            self._encode_pending(int(frames[face_rows].max()) + 1)
            index = local[face_rows]  # (W', T)
            features = {key: value[0][index] for key, value in self.features.items()}  # (W', T, ...)
            window_mask = masks[:, index].transpose(1, 0, 2)  # (R, W', T) -> (W', R, T)
            out = self.runtime.classify_windows(features, window_mask)
            probs = softmax(out["logits"])
            weights = out["region_weights"]
            region_probs = softmax(out["region_logits"])
        k = 0
        for row, (start, index) in enumerate(batch):
            if not has_face[row]:
                self.results.append((start, None, None, None))
                continue
            self.results.append((start, probs[k], weights[k], region_probs[k]))
            if self.keep_telling:
                self._keep(len(self.results) - 1, probs[k], index)
            k += 1

    def _keep(self, window: int, probs: np.ndarray, index: np.ndarray) -> None:
        for label, p in enumerate(probs):
            best = self.best.get(label)
            if best is None or p > best[0]:
                self.best[label] = (float(p), window)
        wanted = {w for _, w in self.best.values()}
        if window in wanted and window not in self.kept:
            local = index - self.base
            self.kept[window] = np.stack([self.crops[i] for i in local], axis=1)  # (R, T, C, S, S)
        for w in list(self.kept):
            if w not in wanted:
                del self.kept[w]

    def _drop_old_frames(self) -> None:
        # Keep what the next regular window needs, and the last T frames for the final window.
        keep_from = min(self.next_window * self.stride, self.num_seen - self.num_frames)
        drop = keep_from - self.base
        if drop <= 0:
            return
        drop = min(drop, len(self.crops))
        del self.crops[:drop]
        del self.masks[:drop]
        del self.encoder_crops[:drop]
        encoded_drop = min(drop, self.encoded)
        self.features = {key: value[:, encoded_drop:] for key, value in self.features.items()}
        self.encoded -= encoded_drop
        self.base += drop


def score_clip(
    runtime: Runtime,
    crops: np.ndarray,
    mask: np.ndarray,
    stride: int,
    image_mean: list[float],
    image_std: list[float],
    batch_size: int = WINDOW_BATCH,
    encoder_crops: np.ndarray | None = None,
) -> WindowScores:
    """Scores every window of a clip whose crops are all in memory (a prepared dataset's row).

    Args:
        runtime: What runs the network (`TorchRuntime(model)`).
        crops: (R, N, C, S, S) uint8 in the model's region order.
        mask: (R, N) bool.
        encoder_crops: (N, C, E, E) uint8 crops for the model's frame encoder, or None.
    """
    scorer = ClipScorer(runtime, stride, image_mean, image_std, batch_size)
    crops = np.asarray(crops)
    mask = np.asarray(mask, dtype=bool)
    for i in range(crops.shape[1]):
        scorer.push(crops[:, i], mask[:, i], None if encoder_crops is None else encoder_crops[i])
    return scorer.finish()


__all__ = ["ClipScorer", "WindowScores", "WINDOW_BATCH", "score_clip"]
