"""MicroX: emotion recognition from face videos, one ConvLSTM per facial region, Hugging Face native.

`MicroXForVideoClassification.from_pretrained(...)` (or `MicroXModel`, the same network) loads a checkpoint;
`MicroXFeatureExtractor` turns a video into region crops; `microx_hf.predict.predict(video)` does both.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForVideoClassification,
)

from .configuration_microx import PAPER_LABELS, MicroXConfig
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
from .feature_extraction_microx import ClipCrops, MicroXFeatureExtractor
from .modeling_microx import MicroXForVideoClassification, MicroXModel, MicroXOutput
from .predict import Prediction

__version__ = "0.1.0"

AutoConfig.register("microx", MicroXConfig, exist_ok=True)
AutoModel.register(MicroXConfig, MicroXModel, exist_ok=True)
AutoModelForVideoClassification.register(MicroXConfig, MicroXForVideoClassification, exist_ok=True)
# The extractor needs OpenCV and a landmark backend, so it is not custom code that travels: loading it needs this
# package installed. It is saved beside the weights as preprocessor_config.json.
AutoFeatureExtractor.register(MicroXConfig, MicroXFeatureExtractor, exist_ok=True)
AutoImageProcessor.register(MicroXConfig, slow_image_processor_class=MicroXFeatureExtractor, exist_ok=True)

# Saved checkpoints carry the config and model code, so they load with `trust_remote_code=True` where this
# package is not installed. `register_for_auto_class` writes `auto_map` for one model class only; the
# AutoModel entry is added in `MicroXPreTrainedModel.save_pretrained`.
MicroXConfig.register_for_auto_class()
MicroXForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

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
]
