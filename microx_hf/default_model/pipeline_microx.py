"""`transformers.pipeline` for MicroX checkpoints: the emotions of a whole face video, with scores.

    from transformers import pipeline

    classifier = pipeline("video-classification", model="owner/microx-model", trust_remote_code=True)
    classifier("face.mp4", top_k=3)  # [{"label": "happy", "score": 0.61}, {"label": "neutral", ...}, ...]

transformers' own video-classification pipeline cannot serve MicroX: it decodes with PyAV, samples a fixed number
of frames once and feeds them through a video processor in one forward pass. MicroX finds the face in every frame,
cuts region crops from its landmarks, scores every window and averages the windows that show a face; that is
`microx_hf.predict.predict`, which this pipeline runs. So it is a custom pipeline under the task name
"video-classification": a checkpoint's ``config.json`` names it in ``custom_pipelines`` and carries this file, and
`pipeline()` prefers a model's own custom task over the built-in one of the same name (trust_remote_code=True).

This file travels with checkpoints, like ``modeling_microx.py``, so it imports only transformers (and torch/numpy
through it). Face detection and cropping live in the ``microx-hf`` package (OpenCV, a landmark backend): the
pipeline imports it when it is built and says what to install when it is missing. A scores-only pipeline thus
needs ``pip install torch==2.13.0 "microx-hf[dlib]"``; the network alone loads without the package
(`AutoModelForVideoClassification.from_pretrained(..., trust_remote_code=True)`).
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from transformers import Pipeline

PIPELINE_TASK = "video-classification"
# What `config.json` says under "custom_pipelines" (transformers' format, as `Pipeline.save_pretrained` writes it).
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_microx.MicroXVideoClassificationPipeline",
        "pt": ["AutoModelForVideoClassification"],
        "type": "video",
    }
}
INSTALL_HINT = (
    'pip install torch==2.13.0, then pip install "microx-hf[dlib]" (microx-hf is not on PyPI yet: build its wheel '
    "from the MicroX repository with `python -m build` and install that file, with the [dlib] extra)"
)


def _microx_predict():
    """The `microx_hf.predict` module, or an ImportError that says how to install it."""
    # importlib, not an import statement: transformers refuses to load a custom-code file whose imports are missing,
    # and then the user would not read what to install.
    try:
        return importlib.import_module("microx_hf.predict")
    except ImportError as err:
        raise ImportError(
            "The MicroX pipeline needs the microx-hf package, which finds the face in every frame and cuts the region "
            f"crops the model reads; it cannot be imported here ({err}). Install it: {INSTALL_HINT}."
        ) from err


class MicroXVideoClassificationPipeline(Pipeline):
    """Top-k emotions of a whole video, as `microx_hf.predict.predict` computes them (mean over the windows that
    show a face).

    Call it with a video file path (or a list of them), or RGB frames (N, H, W, 3) uint8 at the extractor's fps.

    Args (per call):
        top_k: How many labels to return, best first (default 5, at most the number of labels).
        return_prediction: Return the whole `microx_hf.predict.Prediction` (per-window probabilities, region
            contributions, crops) instead of the list of labels and scores.
        window_batch_size: Windows per forward pass inside one video (default 32).
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False  # the extractor is the package's, loaded below
    _load_tokenizer = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        predict_module = _microx_predict()
        if self.feature_extractor is None:
            self.feature_extractor = self._load_extractor(predict_module)
        predict_module.check_compatible(self.model, self.feature_extractor)
        self._predict = predict_module.predict

    def _load_extractor(self, predict_module):
        # Not an import statement: transformers refuses a custom-code file whose imports are not installed.
        extractor_class = importlib.import_module("microx_hf.feature_extraction_microx").MicroXFeatureExtractor
        source = getattr(self.model, "name_or_path", "") or ""
        # The revision the model came from (from_pretrained records the Hub commit), so both match.
        revision = getattr(self.model.config, "_commit_hash", None)
        try:
            if source:
                return extractor_class.from_pretrained(source, revision=revision)
        except OSError:
            pass
        return predict_module.extractor_for(self.model)

    def _sanitize_parameters(self, top_k=None, return_prediction=None, window_batch_size=None, **kwargs):
        forward_params, postprocess_params = {}, {}
        if window_batch_size is not None:
            forward_params["batch_size"] = int(window_batch_size)
        if top_k is not None:
            postprocess_params["top_k"] = int(top_k)
        if return_prediction is not None:
            postprocess_params["return_prediction"] = bool(return_prediction)
        return {}, forward_params, postprocess_params

    def preprocess(self, video: Any) -> dict[str, Any]:
        if isinstance(video, str) and video.startswith(("http://", "https://")):
            raise ValueError(f"{video}: the MicroX pipeline reads local video files; download it first")
        # Decoding and face cropping run inside predict(), which streams the video: nothing to batch here.
        return {"video": video}

    def _forward(self, model_inputs: dict[str, Any], batch_size: int = 32) -> dict[str, Any]:
        prediction = self._predict(model_inputs["video"], model=self.model, feature_extractor=self.feature_extractor,
                                   batch_size=batch_size)  # fmt: skip
        return {"prediction": prediction}

    def postprocess(self, model_outputs: dict[str, Any], top_k: int = 5, return_prediction: bool = False):
        prediction = model_outputs["prediction"]
        if return_prediction:
            return prediction
        ranked = sorted(prediction.scores.items(), key=lambda item: -item[1])
        top_k = max(1, min(top_k, len(ranked)))
        return [{"label": label, "score": float(score)} for label, score in ranked[:top_k]]


def save_pipeline_code(folder: str | Path) -> None:
    """Make a saved checkpoint folder serve `pipeline("video-classification", model=folder, trust_remote_code=True)`:
    copy this file into it and name the pipeline in its ``config.json`` under ``custom_pipelines``."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: save the model there first (save_pretrained)")
    config = json.loads(config_path.read_text())
    config["custom_pipelines"] = {**(config.get("custom_pipelines") or {}), **CUSTOM_PIPELINES}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    target = folder / Path(__file__).name
    if Path(__file__).resolve() != target.resolve():
        shutil.copyfile(__file__, target)
