"""MicroX feature extractor: a face video -> per-region crop windows for `MicroXForVideoClassification`.

The extraction itself (decoding, landmarks, crops, windows, normalisation) is `microx_hf.extraction`; this class
gives it the Hugging Face API: it subclasses `BaseImageProcessor` (not `BaseVideoProcessor`, which needs
torchvision) so that its settings are saved with the model as `preprocessor_config.json` and come back with
`from_pretrained` / `AutoImageProcessor`, and `__call__` returns a `BatchFeature` of model inputs.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from .extraction import DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD, ClipCrops, FrameCrops, MicroXExtraction

_SETTINGS = [name for name in inspect.signature(MicroXExtraction._configure).parameters if name != "self"]


class MicroXFeatureExtractorKwargs(TypedDict, total=False):
    """The settings `from_pretrained(..., **kwargs)` may override."""

    fps: float
    num_frames: int
    window_stride: int
    regions: list[str]
    crop_size: int
    geometry: str
    region_scales: dict[str, float]
    align: bool
    image_mean: list[float]
    image_std: list[float]
    landmark_backend: str
    landmark_backend_used: str | None
    detect_every: int
    detect_max_side: int
    max_duration: float | None
    max_side: int | None
    encoder_crop_size: int | None
    encoder_region: str
    face_choice: str | int
    allow_still: bool


class MicroXFeatureExtractor(MicroXExtraction, BaseImageProcessor):
    """Turns a face video into normalised region-crop windows; the settings are those of `MicroXExtraction`."""

    model_input_names = ["pixel_values", "region_mask", "encoder_pixel_values"]
    valid_kwargs = MicroXFeatureExtractorKwargs

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("image_processor_type", None)
        settings = {name: kwargs.pop(name) for name in _SETTINGS if name in kwargs}
        BaseImageProcessor.__init__(self, **kwargs)
        self._configure(**settings)

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> MicroXFeatureExtractor:
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

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in list(output):
            if key.startswith("_"):
                output.pop(key)
        return output

    # --- extraction ----------------------------------------------------------------------------------------

    def preprocess(
        self,
        video: str | Path | np.ndarray | list[np.ndarray] | ClipCrops,
        return_tensors: str | None = None,
        stride: int | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """A video -> model inputs.

        Args:
            video: A path, frames (see `extract_clip`), or a `ClipCrops` already extracted.
            return_tensors: "pt" for torch tensors, "np"/None for numpy arrays.
            stride: Window stride (default `window_stride`).

        Returns:
            `BatchFeature` with pixel_values (B, R, T, C, S, S) float32, region_mask (B, R, T) bool,
            encoder_pixel_values (B, T, C, E, E) float32 when the extractor cuts encoder crops, window_starts (B,)
            seconds, landmarks (N, 68, 2) and landmark_backend (str).
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}; settings belong to the extractor's constructor")
        clip = video if isinstance(video, ClipCrops) else self.extract_clip(video)
        crops, mask, starts = self.windows(clip, stride)
        data = {
            "pixel_values": self.normalize(crops),
            "region_mask": mask,
            **(
                {}
                if clip.encoder_crops is None
                else {"encoder_pixel_values": self.normalize(self._encoder_windows(clip, stride))}
            ),
            "window_starts": starts,
            "landmarks": clip.landmarks,
            "landmark_backend": clip.landmark_backend,
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    def __call__(self, video: Any, return_tensors: str | None = None, **kwargs: Any) -> BatchFeature:
        """Same as `preprocess`."""
        return self.preprocess(video, return_tensors=return_tensors, **kwargs)


def _register() -> None:
    from . import register

    register()


_register()  # importing the Hugging Face extractor makes the MicroX Auto classes known (it never travels)

__all__ = ["MicroXFeatureExtractor", "ClipCrops", "FrameCrops", "DEFAULT_IMAGE_MEAN", "DEFAULT_IMAGE_STD"]
