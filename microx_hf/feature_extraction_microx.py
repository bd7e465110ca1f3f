"""MicroX feature extractor: a face video -> per-region crop windows for `MicroXForVideoClassification`.

The extraction itself (the settings, `stream(video)` frame by frame, `extract_clip`, `windows`, `normalize`) is
`microx_hf.extraction.MicroXExtraction`; this class gives it the Hugging Face API: `__call__` returns model inputs as
a `BatchFeature`, and it subclasses `BaseImageProcessor` (not `BaseVideoProcessor`, which needs torchvision) so that
its settings are saved with the model as `preprocessor_config.json` and come back with `from_pretrained` /
`AutoImageProcessor`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from .extraction import DEFAULT_IMAGE_MEAN, DEFAULT_IMAGE_STD, SETTINGS, MicroXExtraction
from .stream import ClipCrops, FrameCrops

# What preprocessor_config.json says so that `AutoImageProcessor` / `AutoFeatureExtractor` find the extractor with
# `trust_remote_code=True`: the file saved beside it, which imports this package (the extraction cannot travel).
PROCESSOR_FILE = "image_processing_microx.py"
AUTO_MAP = {
    "AutoImageProcessor": "image_processing_microx.MicroXFeatureExtractor",
    "AutoFeatureExtractor": "image_processing_microx.MicroXFeatureExtractor",
}


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
    face_crops: bool


class MicroXFeatureExtractor(MicroXExtraction, BaseImageProcessor):
    """Turns a face video into normalised region-crop windows; the settings are those of `MicroXExtraction`."""

    model_input_names = ["pixel_values", "region_mask", "encoder_pixel_values"]
    valid_kwargs = MicroXFeatureExtractorKwargs

    def __init__(self, **kwargs: Any) -> None:
        for name in ("image_processor_type", "feature_extractor_type", "auto_map"):
            kwargs.pop(name, None)
        settings = {name: kwargs.pop(name) for name in SETTINGS if name in kwargs}
        BaseImageProcessor.__init__(self, **kwargs)
        self._configure(**settings)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in list(output):
            if key.startswith("_"):
                output.pop(key)
        return output

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> Any:
        """`BaseImageProcessor.save_pretrained`, plus `auto_map` and the image processor's file it names."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        folder = Path(save_directory)
        config_file = folder / "preprocessor_config.json"
        settings = json.loads(config_file.read_text())
        # `feature_extractor_type` lets AutoFeatureExtractor find this class where it is registered (`auto_map`
        # alone would send it to the folder's code, and ask for trust_remote_code).
        names = {"auto_map": AUTO_MAP, "feature_extractor_type": type(self).__name__}
        config_file.write_text(json.dumps({**settings, **names}, indent=2, sort_keys=True) + "\n")
        source = Path(__file__).resolve().with_name(PROCESSOR_FILE)
        if source.resolve() != (folder / PROCESSOR_FILE).resolve():
            shutil.copyfile(source, folder / PROCESSOR_FILE)
        return out

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


__all__ = ["MicroXFeatureExtractor", "ClipCrops", "FrameCrops", "DEFAULT_IMAGE_MEAN", "DEFAULT_IMAGE_STD"]
