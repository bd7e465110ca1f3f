"""Face video -> region crops, frame by frame: the work of `MicroXFeatureExtractor`, without transformers.

Pipeline (MicroX paper, SUTD 2020, with the speed-ups measured in docs/MEASUREMENTS.md): decode at `fps` (OpenCV,
by timestamps) -> follow one face (detect every `detect_every` frames on a grey frame of at most `detect_max_side`
px, 68 iBUG landmarks every frame) -> crop each region (`microx_hf.regions`) to `crop_size` squares (and the frame
encoder's region at `encoder_crop_size`) -> windows of `num_frames` frames every `window_stride` frames
(`microx_hf.windows`) -> normalise.

Frames are streamed (`iter_crops`): a frame is dropped as soon as it is cropped. Frames without a face give zero
crops and a False `mask`; the model ignores them. A clip shorter than one window is flagged `padded`: its window
repeats the last frame.

`MicroXFeatureExtractor` (a `BaseImageProcessor`, saved as `preprocessor_config.json`) mixes this in for the
Hugging Face API; `MicroXCropper` is the same extraction from a saved `preprocessor_config.json` without importing
transformers' image processing (seconds of start-up for `microx predict`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .container import still_image_format
from .errors import InvalidVideoError
from .regions import DEFAULT_REGION_SCALES, DEFAULT_REGIONS, GEOMETRIES, crop_boxes, crop_region, validate_regions

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_MEAN = [0.5, 0.5, 0.5]
DEFAULT_IMAGE_STD = [0.5, 0.5, 0.5]


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
            crops).
    """

    timestamp: float
    crops: np.ndarray
    mask: np.ndarray
    points: np.ndarray | None
    encoder_crop: np.ndarray | None = None
    frame: np.ndarray | None = None


@dataclass
class ClipCrops:
    """Region crops of every frame of one clip.

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
    """

    crops: np.ndarray
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

    @property
    def num_frames(self) -> int:
        """N, the number of frames."""
        return int(self.timestamps.shape[0])

    @property
    def face_fraction(self) -> float:
        """Share of frames in which the face was found."""
        return float(np.isfinite(self.landmarks[:, 0, 0]).mean()) if self.num_frames else 0.0


class MicroXExtraction:
    """The extraction settings and work, mixed into `MicroXFeatureExtractor` and `MicroXCropper`.

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
    """

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
        from .landmarks.tracking import validate_face_choice

        try:
            self.face_choice = validate_face_choice(self.face_choice)
        except ValueError as err:
            raise bad("face_choice", self.face_choice, str(err).split(": ", 1)[1]) from None
        if self.landmark_backend != "auto" and self.landmark_backend not in registered_backends():
            raise bad("landmark_backend", self.landmark_backend, f"choose 'auto' or one of {registered_backends()}")

    def get_backend(self):
        """The landmark backend this extractor uses (built once, shared)."""
        from .landmarks import get_backend

        return get_backend(self.landmark_backend)

    def _frames(self, video: str | Path | np.ndarray | list[np.ndarray]) -> Iterator[tuple[float, np.ndarray]]:
        if isinstance(video, (str, Path)):
            from .video import iter_frames

            yield from iter_frames(
                video,
                fps=self.fps,
                max_duration=self.max_duration,
                max_side=self.max_side,
                allow_still=self.allow_still,
            )
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
            yield i / self.fps, self._as_rgb(np.asarray(frame))

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
        if self.max_side is not None and max(frame.shape[:2]) > self.max_side:
            scale = self.max_side / max(frame.shape[:2])
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame)

    def iter_crops(
        self, video: str | Path | np.ndarray | list[np.ndarray], summary: dict[str, Any] | None = None
    ) -> Iterator[FrameCrops]:
        """Region crops frame by frame, as the video decodes: memory stays bounded whatever its length.

        Args:
            video: As for `extract_clip`.
            summary: A dict filled after the last frame with what `ClipCrops` reports of the whole clip: `still`,
                `faces_seen`, `face_choice`, `followed_face`, `landmark_backend`.

        Yields:
            One `FrameCrops` per frame (at `fps`).

        Raises:
            As `extract_clip`; `InvalidVideoError` only after the last frame when there was none.
        """
        from .landmarks import FaceTracker

        backend = self.get_backend()
        tracker = FaceTracker(
            backend, detect_every=self.detect_every, detect_max_side=self.detect_max_side, face_choice=self.face_choice
        )
        r, s = len(self.regions), self.crop_size
        empty_crop = np.zeros((r, 3, s, s), np.uint8)
        e = self.encoder_crop_size
        empty_encoder = None if e is None else np.zeros((3, e, e), np.uint8)
        no_face = np.zeros(r, bool)
        count = 0
        for timestamp, frame in self._frames(video):
            count += 1
            face = tracker.update(frame)
            if face is None:
                yield FrameCrops(timestamp, empty_crop, no_face, None, empty_encoder, frame)
                continue
            frame_crops, frame_mask, encoder_crop = self._crop_frame(frame, face.points, face.mesh)
            yield FrameCrops(timestamp, frame_crops, frame_mask, face.points, encoder_crop, frame)
        if not count:
            raise InvalidVideoError("the video has no frames: pass a video with at least one frame")
        if self.landmark_backend_used != backend.name:  # written once, not on every call from every thread
            self.landmark_backend_used = backend.name
        if summary is not None:
            summary.update(
                still=self.allow_still and isinstance(video, (str, Path)) and still_image_format(video) is not None,
                faces_seen=tracker.faces_seen,
                face_choice=self.face_choice,
                followed_face=tracker.followed_face,
                landmark_backend=backend.name,
            )
        logger.debug("extracted %d frames, detector ran %d times", count, tracker.stats["detections"])

    def extract_clip(self, video: str | Path | np.ndarray | list[np.ndarray]) -> ClipCrops:
        """Region crops of every frame of a video, all in memory (a prepared dataset's row; for long videos,
        `predict` streams `iter_crops` instead).

        Args:
            video: A video file path, an (N, H, W, 3) RGB / (N, H, W) grey uint8 array, or a list of frames.
                Arrays and lists are taken to be at `fps` already.

        Returns:
            A `ClipCrops`; a clip shorter than one window is flagged `padded` (its window repeats the last frame).

        Raises:
            InvalidVideoError: No frames, or frames of the wrong shape (and the errors of `microx_hf.video`).
            BackendUnavailableError: The landmark backend cannot run here.
        """
        from .windows import is_padded

        crops: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        points: list[np.ndarray] = []
        stamps: list[float] = []
        encoder_crops: list[np.ndarray] = []
        no_points = np.full((68, 2), np.nan, np.float32)
        summary: dict[str, Any] = {}
        for frame in self.iter_crops(video, summary):
            stamps.append(frame.timestamp)
            crops.append(frame.crops)
            masks.append(frame.mask)
            points.append(no_points if frame.points is None else frame.points)
            if frame.encoder_crop is not None:
                encoder_crops.append(frame.encoder_crop)
        padded = is_padded(len(stamps), self.num_frames)
        if padded:
            logger.info(
                "clip has %d frames, fewer than num_frames=%d: its one window repeats the last frame",
                len(stamps),
                self.num_frames,
            )
        return ClipCrops(
            crops=np.stack(crops, axis=1),  # (N, R, C, S, S) -> (R, N, C, S, S)
            mask=np.stack(masks, axis=1),  # (R, N)
            timestamps=np.asarray(stamps, dtype=np.float64),
            landmarks=np.stack(points).astype(np.float32),
            regions=list(self.regions),
            fps=self.fps,
            padded=padded,
            encoder_crops=np.stack(encoder_crops) if encoder_crops else None,  # (N, C, E, E)
            **summary,
        )

    def _crop_frame(
        self, frame: np.ndarray, points: np.ndarray, mesh: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(R, C, S, S) crops, (R,) mask and the (C, E, E) encoder crop (or None) of one frame; a region whose
        centre is outside the frame is masked.

        `mesh`: the face's denser points where the backend has them (brows and mouth are placed on them)."""
        boxes = crop_boxes(points, self.regions, self.geometry, self.region_scales, self.align, mesh=mesh)
        height, width = frame.shape[:2]
        crops = np.zeros((len(self.regions), 3, self.crop_size, self.crop_size), np.uint8)
        mask = np.zeros(len(self.regions), bool)
        for i, name in enumerate(self.regions):
            box = boxes[name]
            if not (0 <= box.cx < width and 0 <= box.cy < height):
                continue
            crops[i] = crop_region(frame, box, self.crop_size).transpose(2, 0, 1)  # (S, S, C) -> (C, S, S)
            mask[i] = True
        encoder_crop = None
        if self.encoder_crop_size is not None:
            e = self.encoder_crop_size
            encoder_crop = np.zeros((3, e, e), np.uint8)
            k = self.regions.index(self.encoder_region)
            if mask[k]:
                encoder_crop = crop_region(frame, boxes[self.encoder_region], e).transpose(2, 0, 1)  # (C, E, E)
        return crops, mask, encoder_crop

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


class MicroXCropper(MicroXExtraction):
    """`MicroXFeatureExtractor`'s extraction without transformers: the same settings, crops and windows.

    Args:
        **settings: The settings of `MicroXExtraction`.
    """

    def __init__(self, **settings: Any) -> None:
        self._configure(**settings)

    @classmethod
    def from_json_file(cls, path: str | Path) -> MicroXCropper:
        """The extraction a saved `preprocessor_config.json` describes."""
        import inspect

        values = json.loads(Path(path).read_text())
        known = set(inspect.signature(MicroXExtraction._configure).parameters) - {"self"}
        return cls(**{k: v for k, v in values.items() if k in known})
