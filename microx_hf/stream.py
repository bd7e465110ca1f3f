"""One video on its way through a feature extractor, frame by frame (`ClipStream`), and the record of what passed
(`ClipCrops`); `MicroXExtraction.stream(video)` starts one.

Frames are streamed: a frame is dropped as soon as its consumer is done with it. Frames without a face give zero
crops and a False `mask`; the model ignores them. What is learned about the clip on the way (a still image, the
faces seen and the one followed, the landmark backend, a clip shorter than one window) is recorded by the stream
where it is learned and ends in its `ClipCrops` record. `extract_clip`, `predict`, the dataset preparation and the
Space all read videos through it.

Input that is already a face crop (CK+48's 48x48 crops, DFEW/AFEW-style face videos) has no camera frame around the
face, and a detector sized for camera frames finds nothing in it. With `face_crops=True` the frame *is* the face
box: it is upscaled until its shorter side is `FACE_CROP_SIDE` px, set on a black canvas twice its size (so the
landmark backend's detector sees the face with room around it), and the face the detector finds there, centred in
the crop and at least `FACE_CROP_MIN_SHARE` of its side, gives the landmarks of the eyes, nose and mouth regions; the
`face` region (and the frame encoder's crop) is the whole frame. A frame with no such face is masked; an input in
which no frame has one raises `NotAFaceCropError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import InvalidVideoError, NotAFaceCropError
from .quality import FaceStats, NoFaceProbe
from .regions import CropBox, crop_boxes, crop_region

logger = logging.getLogger(__name__)

NO_POINTS = np.full((68, 2), np.nan, np.float32)  # the landmarks of a frame without a face
# Face-crop mode: the shorter side a crop is upscaled to before its landmarks are found (dlib's HOG and BlazeFace
# found every one of 8 CK+48 crops upscaled from 48 px to this side, and no face in 5 crops of other things).
FACE_CROP_SIDE = 192
# ... and the smallest face, as a share of the crop's shorter side, that counts as the crop's face.
FACE_CROP_MIN_SHARE = 0.3


@dataclass
class FrameCrops:
    """The region crops of one frame.

    Attributes:
        timestamp: Seconds from the first frame.
        crops: (R, C, S, S) uint8, zeros where `mask` is False.
        mask: (R,) bool, False where the region was not found.
        points: (68, 2) float32 landmarks, None where no face was found.
        encoder_crop: (C, E, E) uint8 crop of the encoder region at `encoder_crop_size` (zeros where its mask is
            False), or None when the extractor makes none.
        frame: The RGB frame the crops were cut from (not a copy: do not change it; for teachers that need their own
            crops and for previews).
    """

    timestamp: float
    crops: np.ndarray
    mask: np.ndarray
    points: np.ndarray | None
    encoder_crop: np.ndarray | None = None
    frame: np.ndarray | None = None


@dataclass
class TrackedFrame:
    """A decoded frame and the face followed in it (None: no face), before cropping (`ClipStream.faces`)."""

    timestamp: float
    frame: np.ndarray
    face: Any


@dataclass
class ClipCrops:
    """The record of one clip: its region crops and every fact learned while it was read.

    Attributes:
        crops: (R, N, C, S, S) uint8, regions in `regions` order; zeros where `mask` is False. None in the record
            `predict` returns, which streams the crops and keeps only those of a few windows.
        mask: (R, N) bool, False where the region was not found.
        timestamps: (N,) float seconds.
        landmarks: (N, 68, 2) float32, NaN where no face.
        regions: Region names.
        landmark_backend: The backend that produced the landmarks (resolved, never "auto").
        fps: Frame rate of the crops.
        padded: Whether the clip is shorter than one window (its window repeats the last frame); say so to the
            user: one repeated frame shows no motion.
        encoder_crops: (N, C, E, E) uint8 crops of the encoder region at the extractor's `encoder_crop_size`, or
            None.
        still: Whether the clip is a still image read as one frame (`allow_still`): its scores rest on one frame.
        faces_seen: The most faces found in one whole-frame detection (0: none; more than 1: several people).
        face_choice: The policy that picked the followed face ("auto", "largest", "central" or an index).
        followed_face: Left-to-right position (from 0) of the followed face among those seen when it was first
            found; None when no face was followed.
        face_stats: Size, light and sharpness of the followed face in each frame with a face (`microx_hf.quality`;
            `Prediction.quality` judges them).
        rotation_hint: Only when no face was found in any frame: the clockwise turn (90, 270, or 180 degrees) under
            which the detector finds a face in a few of the frames (the video may be sideways), else None.
        frame_brightness: Only when no face was found: the median brightness (mean grey level, 0-255) of a few of
            its frames, else None.
    """

    crops: np.ndarray | None
    mask: np.ndarray
    timestamps: np.ndarray
    landmarks: np.ndarray
    regions: list[str]
    landmark_backend: str
    fps: float
    padded: bool = False
    encoder_crops: np.ndarray | None = None
    still: bool = False
    faces_seen: int = 0
    face_choice: str | int = "auto"
    followed_face: int | None = None
    face_stats: FaceStats | None = None
    rotation_hint: int | None = None
    frame_brightness: float | None = None

    @property
    def num_frames(self) -> int:
        """N, the number of frames."""
        return int(self.timestamps.shape[0])

    @property
    def face_fraction(self) -> float:
        """Share of frames in which the face was found (a frame counts when any region was)."""
        return float(self.mask.any(axis=0).mean()) if self.num_frames else 0.0


class ClipStream:
    """One video on its way through a feature extractor: iterate it for each frame's `FrameCrops` as the video
    decodes (memory stays bounded whatever its length); `clip` is the record of what passed.

    Made by `MicroXExtraction.stream`; it can be iterated once.

    Args:
        extractor: The `MicroXExtraction` (or `MicroXFeatureExtractor`) whose settings apply.
        video: A video file path, an (N, H, W, 3) RGB / (N, H, W) grey uint8 array, or a list of frames. Arrays and
            lists are taken to be at the extractor's `fps` already.
        keep_crops: Keep every frame's crops in the record (a prepared dataset's row); otherwise the record keeps
            masks, timestamps and landmarks only (a few bytes a frame).

    Raises (while iterating):
        InvalidVideoError: No frames (after the last one), or frames of the wrong shape (and the errors of
            `microx_hf.video`).
        BackendUnavailableError: The landmark backend cannot run here.
    """

    def __init__(self, extractor: Any, video: str | Path | np.ndarray | list[np.ndarray], keep_crops: bool = False):
        from .landmarks import FaceTracker

        self.extractor = extractor
        self.video = video
        self.keep_crops = keep_crops
        self.backend = extractor.get_backend()
        self.tracker = FaceTracker(
            self.backend,
            detect_every=extractor.detect_every,
            detect_max_side=extractor.detect_max_side,
            face_choice=extractor.face_choice,
            landmark_skip_shift=extractor.landmark_skip_shift,
        )
        self.still = False
        self.finished = False
        self._faces_found = 0
        self._stamps: list[float] = []
        self._masks: list[np.ndarray] = []
        self._points: list[np.ndarray] = []
        self._crops: list[np.ndarray] = []
        self._encoder_crops: list[np.ndarray] = []
        self._no_face: tuple | None = None  # the crops, mask and encoder crop of a frame without a face (shared)
        self.face_stats = FaceStats()  # of the frames with a face, in `crop`
        self._face_region = extractor.regions.index("face") if "face" in extractor.regions else None
        self._probe: NoFaceProbe | None = NoFaceProbe()  # frames kept until a face is found, then dropped
        self.rotation_hint: int | None = None
        self.frame_brightness: float | None = None

    def __iter__(self) -> Iterator[FrameCrops]:
        for tracked in self.faces():
            yield self.crop(tracked)

    def faces(self) -> Iterator[TrackedFrame]:
        """The first half of the work on each frame: decoding and following the face (the landmarks). `crop` does
        the rest; `predict` runs this half in a second thread and `crop` beside the network, which balances the two
        threads' work (decoding and landmarks took 6-7 ms a frame on real footage, the crops 1.4 and the network
        3.5). Iterating the stream does both in turn."""
        ex = self.extractor
        for timestamp, frame in self._frames():
            if ex.face_crops:
                frame, face = self._face_in_crop(frame)
            else:
                face = self.tracker.update(frame)
            if face is None:
                if self._probe is not None:
                    self._probe.offer(frame)
            else:
                self._faces_found += 1
                self._probe = None
            self._stamps.append(timestamp)
            self._points.append(NO_POINTS if face is None else face.points)
            yield TrackedFrame(timestamp, frame, face)
        if not self._stamps:
            raise InvalidVideoError("the video has no frames: pass a video with at least one frame")
        if ex.face_crops and not self._faces_found:
            where = f" of {self.video}" if isinstance(self.video, (str, Path)) else ""
            raise NotAFaceCropError(
                f"face_crops=True, but none of the {len(self._stamps)} frames{where} is a crop of one face: the "
                f"{self.backend.name!r} landmark backend found no face filling the image. Pass images or videos in "
                "which one face fills the frame (e.g. CK+48's 48x48 crops), or turn face-crop mode off for camera "
                "footage (the face is then searched for in the frame)."
            )
        if self._probe is not None:  # no face in any frame: is the video sideways, or dark?
            self.frame_brightness = self._probe.brightness()
            self.rotation_hint = self._probe.rotation_hint(self.backend, ex.detect_max_side)
            self._probe = None
        if ex.landmark_backend_used != self.backend.name:  # written once, not on every call from every thread
            ex.landmark_backend_used = self.backend.name
        self.finished = True
        if self.padded:
            logger.info(
                "clip has %d frames, fewer than num_frames=%d: its one window repeats the last frame",
                len(self._stamps),
                ex.num_frames,
            )
        logger.debug("extracted %d frames, detector ran %d times", len(self._stamps), self.tracker.stats["detections"])

    def crop(self, tracked: TrackedFrame) -> FrameCrops:
        """The second half: the region crops of a frame from `faces`, in the order `faces` gave them."""
        ex = self.extractor
        face = tracked.face
        if face is None:
            if self._no_face is None:
                r, s, e = len(ex.regions), ex.crop_size, ex.encoder_crop_size
                empty_encoder = None if e is None else np.zeros((3, e, e), np.uint8)
                self._no_face = (np.zeros((r, 3, s, s), np.uint8), np.zeros(r, bool), empty_encoder)
            crops, mask, encoder_crop = self._no_face
        else:
            crops, mask, encoder_crop = self._crop(tracked.frame, face.points, face.mesh)
            shown = self._face_region is not None and mask[self._face_region]
            self.face_stats.add(tracked.frame.shape, face.points, crops[self._face_region] if shown else None)
        self._masks.append(mask)
        if self.keep_crops:
            self._crops.append(crops)
            if encoder_crop is not None:
                self._encoder_crops.append(encoder_crop)
        points = None if face is None else face.points
        return FrameCrops(tracked.timestamp, crops, mask, points, encoder_crop, tracked.frame)

    @property
    def padded(self) -> bool:
        """Whether the clip (so far) is shorter than one window."""
        from .windows import is_padded

        return is_padded(len(self._stamps), self.extractor.num_frames)

    @property
    def clip(self) -> ClipCrops:
        """The record of the frames read so far (all of them once iteration has ended)."""
        if not self._stamps:
            raise InvalidVideoError("the video has no frames: pass a video with at least one frame")
        return ClipCrops(
            crops=np.stack(self._crops, axis=1) if self._crops else None,  # (N, R, C, S, S) -> (R, N, C, S, S)
            mask=np.stack(self._masks, axis=1),  # (R, N)
            timestamps=np.asarray(self._stamps, dtype=np.float64),
            landmarks=np.stack(self._points).astype(np.float32),  # (N, 68, 2)
            regions=list(self.extractor.regions),
            landmark_backend=self.backend.name,
            fps=self.extractor.fps,
            padded=self.padded,
            encoder_crops=np.stack(self._encoder_crops) if self._encoder_crops else None,  # (N, C, E, E)
            still=self.still,
            faces_seen=int(self._faces_found > 0) if self.extractor.face_crops else self.tracker.faces_seen,
            face_choice=self.extractor.face_choice,
            followed_face=(0 if self._faces_found else None)
            if self.extractor.face_crops
            else self.tracker.followed_face,
            face_stats=self.face_stats,
            rotation_hint=self.rotation_hint,
            frame_brightness=self.frame_brightness,
        )

    def _frames(self) -> Iterator[tuple[float, np.ndarray]]:
        video, ex = self.video, self.extractor
        if isinstance(video, (str, Path)):
            from .video import iter_frames

            frames = iter_frames(
                video, fps=ex.fps, max_duration=ex.max_duration, max_side=ex.max_side, allow_still=ex.allow_still
            )
            for item in frames:
                self.still = bool(frames.still)
                yield item
            return
        if isinstance(video, np.ndarray):
            if video.ndim == 3 and video.shape[-1] not in (1, 3):  # (N, H, W) grey
                video = video[..., None]
            if video.ndim != 4 or video.shape[-1] not in (1, 3):
                raise InvalidVideoError(
                    f"expected frames as an (N, H, W, 3) RGB or (N, H, W) grey uint8 array, got shape {video.shape}"
                )
        elif not isinstance(video, Iterable):
            raise InvalidVideoError(
                f"expected a video path, an (N, H, W, 3) array or a list of frames, got {type(video).__name__}"
            )
        for i, frame in enumerate(video):
            yield i / ex.fps, self._as_rgb(np.asarray(frame))

    def _as_rgb(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 3 and frame.shape[-1] == 1:
            frame = frame[..., 0]
        if frame.ndim == 2:
            frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2RGB)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise InvalidVideoError(f"expected an (H, W, 3) RGB or (H, W) grey frame, got shape {frame.shape}")
        if frame.dtype != np.uint8:
            if np.issubdtype(frame.dtype, np.floating) and frame.size and frame.max() <= 1.0:
                frame = frame * 255.0
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        max_side = self.extractor.max_side
        if max_side is not None and max(frame.shape[:2]) > max_side:
            scale = max_side / max(frame.shape[:2])
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame)

    def _face_in_crop(self, frame: np.ndarray) -> tuple[np.ndarray, Any]:
        """Face-crop mode: the frame upscaled to `FACE_CROP_SIDE` and the face that fills it (a `Face` in the
        upscaled frame's pixels), or None where the backend finds no face centred in the crop."""
        from .landmarks import Face
        from .landmarks.tracking import plausible_landmarks

        height, width = frame.shape[:2]
        scale = FACE_CROP_SIDE / min(height, width)
        if scale > 1:
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            height, width = frame.shape[:2]
        pad_y, pad_x = height // 2, width // 2
        canvas = cv2.copyMakeBorder(frame, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=0)
        offset = np.array([pad_x, pad_y, pad_x, pad_y], np.float64)
        best = None
        for box, score in self.backend.detect_boxes(canvas):
            x0, y0, x1, y1 = np.asarray(box, np.float64) - offset
            centred = 0 <= (x0 + x1) / 2 < width and 0 <= (y0 + y1) / 2 < height
            large = np.sqrt(max(x1 - x0, 0) * max(y1 - y0, 0)) >= FACE_CROP_MIN_SHARE * min(height, width)
            if centred and large and (best is None or score > best[1]):
                best = (np.asarray(box, np.float64), float(score))
        if best is None:
            return frame, None
        face = self.backend.landmarks(canvas, best[0])
        points = face.points - offset[:2].astype(np.float32)
        if not plausible_landmarks(points):
            return frame, None
        mesh = None if face.mesh is None else face.mesh - offset[:2].astype(np.float32)
        return frame, Face(best[0] - offset, best[1], points, mesh=mesh)

    def _crop(
        self, frame: np.ndarray, points: np.ndarray, mesh: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(R, C, S, S) crops, (R,) mask and the (C, E, E) encoder crop (or None) of one frame; a region whose
        centre is outside the frame is masked.

        `mesh`: the face's denser points where the backend has them (brows and mouth are placed on them)."""
        ex = self.extractor
        boxes = crop_boxes(points, ex.regions, ex.geometry, ex.region_scales, ex.align, mesh=mesh)
        height, width = frame.shape[:2]
        if ex.face_crops and "face" in boxes:
            # The frame is the face box: the whole crop, made square with black around a non-square one.
            side = float(max(height, width))
            boxes["face"] = CropBox((width - 1) / 2, (height - 1) / 2, side, side, 0.0)
        crops = np.zeros((len(ex.regions), 3, ex.crop_size, ex.crop_size), np.uint8)
        mask = np.zeros(len(ex.regions), bool)
        for i, name in enumerate(ex.regions):
            box = boxes[name]
            if not (0 <= box.cx < width and 0 <= box.cy < height):
                continue
            crops[i] = crop_region(frame, box, ex.crop_size).transpose(2, 0, 1)  # (S, S, C) -> (C, S, S)
            mask[i] = True
        encoder_crop = None
        if ex.encoder_crop_size is not None:
            e = ex.encoder_crop_size
            encoder_crop = np.zeros((3, e, e), np.uint8)
            if mask[ex.regions.index(ex.encoder_region)]:
                encoder_crop = crop_region(frame, boxes[ex.encoder_region], e).transpose(2, 0, 1)  # (C, E, E)
        return crops, mask, encoder_crop
