"""MicroX: emotion recognition from face videos, one ConvLSTM per facial region, Hugging Face native.

`MicroXForVideoClassification.from_pretrained(...)` (or `MicroXModel`, the same network) loads a checkpoint;
`MicroXFeatureExtractor` turns a video into region crops; `microx_hf.predict.predict(video)` does both.

The exports load on first use (importing transformers' model and image-processing classes costs seconds), and
taking any of the Hugging Face classes from here registers MicroX with the Auto classes (`register`). Every folder
MicroX writes also carries its code and `auto_map`, so `trust_remote_code=True` loads it without this package.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    BackendUnavailableError,
    DatasetFormatError,
    InvalidVideoError,
    MicroXError,
    ModelNotFoundError,
    NoFaceDetectedError,
    VideoDecodeError,
    VideoLimitError,
    VideoNotFoundError,
)

__version__ = "0.1.0"

# Export -> the module that defines it (loaded, and the Auto classes registered, on first use).
_LAZY = {
    "PAPER_LABELS": "configuration_microx",
    "MicroXConfig": "configuration_microx",
    "MicroXModel": "modeling_microx",
    "MicroXForVideoClassification": "modeling_microx",
    "MicroXOutput": "modeling_microx",
    "MicroXFeatureExtractor": "feature_extraction_microx",
    "ClipCrops": "extraction",
    "Prediction": "predict",
}
_REGISTERED = False


def register() -> None:
    """Register the MicroX classes with transformers' Auto classes, so that `AutoConfig`, `AutoModel`,
    `AutoModelForVideoClassification`, `AutoFeatureExtractor` and `AutoImageProcessor` load MicroX folders with this
    package's classes, without `trust_remote_code`. Taking a Hugging Face class from `microx_hf` calls it; it runs
    once.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    from transformers import (
        AutoConfig,
        AutoFeatureExtractor,
        AutoImageProcessor,
        AutoModel,
        AutoModelForVideoClassification,
    )

    from .configuration_microx import MicroXConfig
    from .feature_extraction_microx import MicroXFeatureExtractor
    from .modeling_microx import MicroXForVideoClassification, MicroXModel

    AutoConfig.register("microx", MicroXConfig, exist_ok=True)
    AutoModel.register(MicroXConfig, MicroXModel, exist_ok=True)
    AutoModelForVideoClassification.register(MicroXConfig, MicroXForVideoClassification, exist_ok=True)
    AutoFeatureExtractor.register(MicroXConfig, MicroXFeatureExtractor, exist_ok=True)
    AutoImageProcessor.register(MicroXConfig, slow_image_processor_class=MicroXFeatureExtractor, exist_ok=True)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        if _LAZY[name] in ("configuration_microx", "modeling_microx", "feature_extraction_microx"):
            register()
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PAPER_LABELS",
    "BackendUnavailableError",
    "ClipCrops",
    "DatasetFormatError",
    "InvalidVideoError",
    "ModelNotFoundError",
    "MicroXConfig",
    "MicroXError",
    "MicroXFeatureExtractor",
    "MicroXForVideoClassification",
    "MicroXModel",
    "MicroXOutput",
    "NoFaceDetectedError",
    "Prediction",
    "VideoDecodeError",
    "VideoLimitError",
    "VideoNotFoundError",
    "register",
]
