"""`transformers.pipeline` for MicroX checkpoints: the emotions of a whole face video, with scores.

    from transformers import pipeline

    classifier = pipeline("video-classification", model="owner/microx-model", trust_remote_code=True)
    classifier("face.mp4", top_k=3)  # [{"label": "happy", "score": 0.61}, {"label": "neutral", ...}, ...]

transformers' own video-classification pipeline cannot serve MicroX: it decodes with PyAV, samples a fixed number
of frames once and feeds them through a video processor in one forward pass. MicroX finds the face in every frame,
cuts region crops from its landmarks, scores every window and averages the windows that show a face; that is
`microx_hf.predict.predict`, which this pipeline runs. So it is a custom pipeline under the task name
"video-classification": a checkpoint's ``config.json`` names it in ``custom_pipelines`` (`modeling_microx`
writes it) and carries this file, and `pipeline()` prefers a model's own custom task over the built-in one of the
same name (trust_remote_code=True).

This file travels with checkpoints, like ``modeling_microx.py``, so it imports only transformers. Face detection
and cropping live in the ``microx-hf`` package (OpenCV, a landmark backend): the pipeline imports it when it is
built and says what to install when it is missing. The network alone loads without the package
(`AutoModelForVideoClassification.from_pretrained(..., trust_remote_code=True)`).
"""

from __future__ import annotations

from typing import Any

from transformers import Pipeline

from .image_processing_microx import microx_module


class MicroXVideoClassificationPipeline(Pipeline):
    """Top-k emotions of a whole video, as `microx_hf.predict.predict` computes them (mean over the windows that
    show a face).

    Call it with a video file path (or a list of them), or RGB frames (N, H, W, 3) uint8 at the extractor's fps.

    Args (per call):
        top_k: How many labels to return, best first (default 5, at most the number of labels).
        return_prediction: Return the whole `microx_hf.predict.Prediction` (per-window probabilities, region
            contributions, crops) instead of the list of labels and scores.
        window_batch_size: Windows per forward pass inside one video (default `microx_hf.scoring.WINDOW_BATCH`).
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False  # the extractor is the package's, loaded below
    _load_tokenizer = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        predict = microx_module("predict")
        if self.feature_extractor is None:
            self.feature_extractor = predict.extractor_for(self.model)
        self._predict = predict.predict

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

    def _forward(self, model_inputs: dict[str, Any], batch_size: int | None = None) -> dict[str, Any]:
        options = {} if batch_size is None else {"batch_size": batch_size}
        prediction = self._predict(model_inputs["video"], self.model, self.feature_extractor, **options)
        return {"prediction": prediction}

    def postprocess(self, model_outputs: dict[str, Any], top_k: int = 5, return_prediction: bool = False):
        prediction = model_outputs["prediction"]
        if return_prediction:
            return prediction
        ranked = sorted(prediction.scores.items(), key=lambda item: -item[1])
        top_k = max(1, min(top_k, len(ranked)))
        return [{"label": label, "score": float(score)} for label, score in ranked[:top_k]]
