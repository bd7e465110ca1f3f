"""Face video -> region crops, frame by frame: the one path every video takes (`ClipStream`).

Pipeline (MicroX paper, SUTD 2020, with the speed-ups measured in docs/MEASUREMENTS.md): decode at `fps` (OpenCV,
by timestamps) -> follow one face (detect every `detect_every` frames on a grey frame of at most `detect_max_side`
px, 68 iBUG landmarks every frame) -> crop each region (`microx_hf.regions`) to `crop_size` squares (and the frame
encoder's region at `encoder_crop_size`) -> windows of `num_frames` frames every `window_stride` frames
(`microx_hf.windows`) -> normalise.

The per-frame work lives in `microx_hf.stream` (`ClipStream`, the `ClipCrops` record, face-crop mode);
`MicroXExtraction.stream(video)` starts one; `extract_clip`, `predict`, the dataset preparation and the Space all read
videos through it.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .regions import DEFAULT_REGION_SCALES, DEFAULT_REGIONS, GEOMETRIES, validate_regions
from .stream import ClipCrops, ClipStream

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_MEAN = [0.5, 0.5, 0.5]
DEFAULT_IMAGE_STD = [0.5, 0.5, 0.5]


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
            landmarks are found inside it, upscaled (see `microx_hf.stream`); `NotAFaceCropError` when no frame is a
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
