"""Face video -> region crops, frame by frame: the one path every video takes (`ClipStream`).

Pipeline (MicroX paper, SUTD 2020, with the speed-ups measured in docs/MEASUREMENTS.md): decode at `fps` (OpenCV,
by timestamps) -> follow one face (detect every `detect_every` frames on a grey frame of at most `detect_max_side`
px, 68 iBUG landmarks every frame) -> crop each region (`microx_hf.regions`) to `crop_size` squares (and the frame
encoder's region at `encoder_crop_size`) -> windows of `num_frames` frames every `window_stride` frames
(`microx_hf.windows`) -> normalise.

Input that is already a face crop (CK+48's 48x48 crops, DFEW/AFEW-style face videos) has no camera frame around the
face, and a detector sized for camera frames finds nothing in it. With `face_crops=True` the frame *is* the face
box: it is upscaled until its shorter side is `FACE_CROP_SIDE` px, set on a black canvas twice its size (so the
landmark backend's detector sees the face with room around it), and the face the detector finds there, centred in
the crop and at least `FACE_CROP_MIN_SHARE` of its side, gives the landmarks of the eyes, nose and mouth regions; the
`face` region (and the frame encoder's crop) is the whole frame. A frame with no such face is masked; an input in
which no frame has one raises `NotAFaceCropError`.

Frames are streamed: a frame is dropped as soon as its consumer is done with it. Frames without a face give zero
crops and a False `mask`; the model ignores them. What is learned about the clip on the way (a still image, the
faces seen and the one followed, the landmark backend, a clip shorter than one window) is recorded by the stream
where it is learned and ends in its `ClipCrops` record. `MicroXExtraction.stream(video)` starts one;
`extract_clip`, `predict`, the dataset preparation and the Space all read videos through it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import InvalidVideoError, NotAFaceCropError
from .quality import FaceStats, NoFaceProbe
from .regions import (
    DEFAULT_REGION_SCALES,
    DEFAULT_REGIONS,
    GEOMETRIES,
    CropBox,
    crop_boxes,
    crop_region,
    validate_regions,
)

logger = logging.getLogger(__name__)

NO_POINTS = np.full((68, 2), np.nan, np.float32)  # the landmarks of a frame without a face
DEFAULT_IMAGE_MEAN = [0.5, 0.5, 0.5]
DEFAULT_IMAGE_STD = [0.5, 0.5, 0.5]
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


class MicroXExtraction:
    """The feature extractor without transformers: its settings and work (`MicroXFeatureExtractor` adds the Hugging
    Face API: saving, loading, `__call__`). Importing transformers' image processing costs seconds; a runtime that
    needs no transformers (ONNX Runtime) reads a saved `preprocessor_config.json` with `from_json_file`.

    Args:
        fps: Frame rate the video is resampled to (the paper: 30 fps).
        num_frames: Frames per window T (the paper: 10).
        window_stride: Frames between the starts of consecutive windows.
        regions: Region names, in the order of the model's R axis (see `microx_hf.regions.REGION_INDICES`).
        crop_size: Side S of the square crops (the paper: 60).
        geometry: "iod" (squares sized by inter-ocular distance) or "paper" (the paper's boxes + 5 px, stretched).
        region_scales: Square side per region in inter-ocular distances ("iod"); missing regions use
            `DEFAULT_REGION_SCALES`.
        align: Rotate crops so the eyes are level ("iod" only).
        image_mean: Per-channel mean subtracted after scaling to [0, 1].
        image_std: Per-channel standard deviation divided by after that.
        landmark_backend: "auto", "dlib" or "face_alignment" (see `microx_hf.landmarks`).
        landmark_backend_used: The backend that produced the crops last (set by extraction; saved so a checkpoint
            records which landmarks it was trained on).
        detect_every: Run the face detector every k-th frame; landmarks run on every frame.
        detect_max_side: Longest side of the grey frame the detector sees.
        max_duration: Refuse videos longer than this many seconds (None: no limit).
        max_side: Downscale frames whose longer side exceeds this (None: never).
        encoder_crop_size: Also cut `encoder_region` at this side for a model's pretrained frame encoder
            (`MicroXConfig.frame_encoder_size`; its inputs `encoder_pixel_values`), from the full frame; None: no.
        encoder_region: The region the encoder sees (same square as that region's crop, at its own size).
        face_choice: Which face to follow when several are seen: "auto" (detector score with bonuses for size and
            centrality), "largest", "central", or an index counting faces left to right from 0 (see
            `microx_hf.landmarks.FaceTracker`).
        allow_still: Read a still image (PNG, JPEG, ...) as a one-frame clip (flagged `ClipCrops.still`) instead of
            raising `StillImageError`.
        face_crops: The input is already cropped to one face (CK+48, DFEW, AFEW): the frame is the face box and the
            landmarks are found inside it, upscaled (see the module docstring); `NotAFaceCropError` when no frame is a
            face crop. A setting of the input: turn it on for crops, whatever the model was trained on.
        landmark_skip_shift: Between detections, reuse the last landmarks moved by the face's measured shift instead
            of running the landmark model while that shift stays under this many inter-ocular distances (0.02
            skipped about half the frames of real footage; see `microx_hf.landmarks.tracking`); None (default): run
            it on every frame. A model should be trained with the setting it runs with.
    """

    def __init__(self, **settings: Any) -> None:
        self._configure(**settings)

    @classmethod
    def from_json_file(cls, path: str | Path) -> MicroXExtraction:
        """The extraction a saved `preprocessor_config.json` describes (other keys are left out)."""
        values = json.loads(Path(path).read_text())
        return cls(**{k: v for k, v in values.items() if k in SETTINGS})

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> MicroXExtraction:
        """An extractor whose regions, frames per window and crop size follow a `MicroXConfig`.

        Args:
            config: A `MicroXConfig` (anything with `regions`, `num_frames`, `image_size`).
            **kwargs: Other settings.
        """
        settings = {"regions": list(config.regions), "num_frames": config.num_frames, "crop_size": config.image_size}
        for key in ("image_mean", "image_std"):
            if getattr(config, key, None) is not None:
                settings[key] = list(getattr(config, key))
        if getattr(config, "frame_encoder", None) is not None:
            settings["encoder_crop_size"] = config.frame_encoder_size
            settings["encoder_region"] = config.frame_encoder_region
        return cls(**{**settings, **kwargs})

    def _configure(
        self,
        fps: float = 30.0,
        num_frames: int = 10,
        window_stride: int = 5,
        regions: list[str] | tuple[str, ...] | None = None,
        crop_size: int = 48,
        geometry: str = "iod",
        region_scales: dict[str, float] | None = None,
        align: bool = True,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        landmark_backend: str = "auto",
        landmark_backend_used: str | None = None,
        detect_every: int = 5,
        detect_max_side: int = 480,
        max_duration: float | None = 600.0,
        max_side: int | None = 1280,
        encoder_crop_size: int | None = None,
        encoder_region: str = "face",
        face_choice: str | int = "auto",
        allow_still: bool = False,
        face_crops: bool = False,
        landmark_skip_shift: float | None = None,
    ) -> None:
        """Sets and checks the settings (the arguments are documented on the class)."""
        self.fps = float(fps)
        self.num_frames = int(num_frames)
        self.window_stride = int(window_stride)
        self.regions = validate_regions(list(regions) if regions is not None else list(DEFAULT_REGIONS))
        self.crop_size = int(crop_size)
        self.geometry = geometry
        scales = {**DEFAULT_REGION_SCALES, **(region_scales or {})}
        self.region_scales = {name: float(scales[name]) for name in self.regions}
        self.align = bool(align)
        self.image_mean = [float(v) for v in (image_mean if image_mean is not None else DEFAULT_IMAGE_MEAN)]
        self.image_std = [float(v) for v in (image_std if image_std is not None else DEFAULT_IMAGE_STD)]
        self.landmark_backend = landmark_backend
        self.landmark_backend_used = landmark_backend_used
        self.detect_every = int(detect_every)
        self.detect_max_side = int(detect_max_side)
        self.max_duration = None if max_duration is None else float(max_duration)
        self.max_side = None if max_side is None else int(max_side)
        self.encoder_crop_size = None if encoder_crop_size is None else int(encoder_crop_size)
        self.encoder_region = encoder_region
        self.face_choice = face_choice
        self.allow_still = bool(allow_still)
        self.face_crops = bool(face_crops)
        self.landmark_skip_shift = landmark_skip_shift
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, value: Any, hint: str) -> ValueError:
            return ValueError(f"MicroXFeatureExtractor: {name}={value!r} is invalid: {hint}")

        if not (np.isfinite(self.fps) and self.fps > 0):
            raise bad("fps", self.fps, "pass a positive frame rate")
        for name in ("num_frames", "window_stride", "crop_size", "detect_every"):
            if getattr(self, name) < 1:
                raise bad(name, getattr(self, name), "it must be at least 1")
        if self.geometry not in GEOMETRIES:
            raise bad("geometry", self.geometry, f"choose one of {GEOMETRIES}")
        if self.encoder_crop_size is not None:
            if self.encoder_crop_size < 16:
                raise bad("encoder_crop_size", self.encoder_crop_size, "give at least 16, or None for no encoder crop")
            if self.encoder_region not in self.regions:
                raise bad("encoder_region", self.encoder_region, f"choose one of regions={self.regions}")
        if any(v <= 0 for v in self.region_scales.values()):
            raise bad("region_scales", self.region_scales, "every scale must be positive")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise bad("image_mean/image_std", (self.image_mean, self.image_std), "give 3 values, positive std")
        from .landmarks import registered_backends
        from .landmarks.tracking import validate_face_choice, validate_skip_shift

        try:
            self.face_choice = validate_face_choice(self.face_choice)
        except ValueError as err:
            raise bad("face_choice", self.face_choice, str(err).split(": ", 1)[1]) from None
        try:
            self.landmark_skip_shift = validate_skip_shift(self.landmark_skip_shift)
        except ValueError as err:
            raise bad("landmark_skip_shift", self.landmark_skip_shift, str(err).split(": ", 1)[1]) from None
        if self.landmark_backend != "auto" and self.landmark_backend not in registered_backends():
            raise bad("landmark_backend", self.landmark_backend, f"choose 'auto' or one of {registered_backends()}")

    def get_backend(self):
        """The landmark backend this extractor uses (built once, shared)."""
        from .landmarks import get_backend

        return get_backend(self.landmark_backend)

    def stream(self, video: str | Path | np.ndarray | list[np.ndarray], keep_crops: bool = False) -> ClipStream:
        """A video read frame by frame: iterate the stream for each frame's `FrameCrops`; its `clip` is the record
        of the clip (see `ClipStream`)."""
        return ClipStream(self, video, keep_crops=keep_crops)

    def extract_clip(self, video: str | Path | np.ndarray | list[np.ndarray]) -> ClipCrops:
        """Region crops of every frame of a video, all in memory (a prepared dataset's row; for long videos,
        `predict` streams instead).

        Args:
            video: A video file path, an (N, H, W, 3) RGB / (N, H, W) grey uint8 array, or a list of frames.
                Arrays and lists are taken to be at `fps` already.

        Returns:
            A `ClipCrops`; a clip shorter than one window is flagged `padded` (its window repeats the last frame).

        Raises:
            InvalidVideoError: No frames, or frames of the wrong shape (and the errors of `microx_hf.video`).
            BackendUnavailableError: The landmark backend cannot run here.
        """
        stream = self.stream(video, keep_crops=True)
        for _ in stream:
            pass
        return stream.clip

    # --- windows and tensors -------------------------------------------------------------------------------

    def windows(self, clip: ClipCrops, stride: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut a clip into windows of `num_frames` frames.

        Args:
            clip: From `extract_clip`.
            stride: Frames between window starts (default `window_stride`).

        Returns:
            crops (B, R, T, C, S, S) uint8, mask (B, R, T) bool, starts (B,) float seconds.
        """
        from .windows import window_indices

        t = self.num_frames
        starts, indices = window_indices(clip.num_frames, t, stride or self.window_stride)  # (B,), (B, T)
        crops = clip.crops[:, indices].transpose(1, 0, 2, 3, 4, 5)  # (R, B, T, C, S, S) -> (B, R, T, C, S, S)
        mask = clip.mask[:, indices].transpose(1, 0, 2)  # (R, B, T) -> (B, R, T)
        return np.ascontiguousarray(crops), np.ascontiguousarray(mask), clip.timestamps[starts].astype(np.float64)

    def _encoder_windows(self, clip: ClipCrops, stride: int | None = None) -> np.ndarray:
        """(B, T, C, E, E) uint8 encoder crops of the windows `windows` cuts."""
        from .windows import window_indices

        _, indices = window_indices(clip.num_frames, self.num_frames, stride or self.window_stride)
        return np.ascontiguousarray(clip.encoder_crops[indices])

    def normalize(self, crops: Any) -> Any:
        """uint8 crops (..., C, H, W) -> float32 ((x / 255 - image_mean) / image_std), numpy or torch alike."""
        from .windows import normalize

        return normalize(crops, self.image_mean, self.image_std)


SETTINGS = [name for name in inspect.signature(MicroXExtraction._configure).parameters if name != "self"]
