"""What runs the network for `predict` and the evaluation: the `Runtime` interface, on numpy arrays, its torch
implementation `TorchRuntime`, and `load_runtime`, which picks the runtime for a checkpoint.

`microx_hf.scoring.ClipScorer` calls a runtime twice: `encode_frames` on the frames of a clip as they arrive (the
per-frame part of the network: stem, the ConvLSTM's input convolution, the frame encoder and its prior), and
`classify_windows` on batches of windows of those frames (the recurrence, the heads and the fusion). Anything with
this interface can run a MicroX checkpoint; `microx_hf.runtime_onnx.OnnxRuntime(folder)` runs the same network with
ONNX Runtime, from the graphs `microx export onnx` writes into the checkpoint's `onnx/` folder.

`load_runtime(name, runtime="auto")` is how the package loads a checkpoint for inference: ONNX Runtime where the
checkpoint carries an `onnx/` export and onnxruntime is installed (neither torch nor transformers is imported then:
about 0.3 s of imports against 2-5 s), else torch (`load_model`).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import ModelNotFoundError

if TYPE_CHECKING:
    import torch

    from .extraction import MicroXExtraction

logger = logging.getLogger(__name__)

# "auto": onnx where the checkpoint has an ONNX export and onnxruntime imports, else torch.
RUNTIMES = ("auto", "onnx", "torch")
ONNX_FILES = ["config.json", "preprocessor_config.json", "onnx/*"]  # what the onnx runtime needs of a Hub repo


class Runtime(Protocol):
    """Runs a MicroX network on numpy arrays.

    Attributes:
        labels: Label names in class order (L).
        regions: Region names in the order of the R axis.
        num_frames: Frames per window (T).
        region_gate: How much the region branches can move the answer (`MicroXNetwork.region_gate`): 0 where the
            model answers with its frame encoder's calibrated prior, 1.0 where the regions' fusion is the answer.
        config: The model's settings that the feature extractor must match (`predict.check_compatible`): a
            `MicroXConfig`, or an object with the same fields (`regions`, `num_frames`, `image_size`, `id2label`,
            `num_labels`, `frame_encoder`, `frame_encoder_size`, `frame_encoder_region`, `image_mean`, `image_std`).
    """

    labels: list[str]
    regions: list[str]
    num_frames: int
    region_gate: float
    config: Any

    def encode_frames(
        self, pixel_values: np.ndarray, region_mask: np.ndarray, encoder_pixel_values: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """The per-frame part of the network for M frames.

        Args:
            pixel_values: (1, R, M, C, S, S) float32 normalised crops.
            region_mask: (1, R, M) bool.
            encoder_pixel_values: (1, M, C, E, E) float32 normalised crops of the frame encoder, or None.

        Returns:
            Per-frame features, each with the frame axis at dim 1: "stem_gates" (1, M, ...), "encoder_gates"
            (1, M, ...), "prior" (1, M, L); a key is absent where the model has no such part.
        """

    def classify_windows(self, features: dict[str, np.ndarray], region_mask: np.ndarray) -> dict[str, np.ndarray]:
        """The per-window part of the network for W windows.

        Args:
            features: The keys of `encode_frames`, each (W, T, ...): every window's frames.
            region_mask: (W, R, T) bool.

        Returns:
            "logits" (W, L), "region_logits" (W, R, L) and "region_weights" (W, R), float32.
        """


class TorchRuntime:
    """A `MicroXModel` (or `MicroXForVideoClassification`) as a `Runtime`, on its own device, in inference mode.

    A model in training mode is switched to eval mode for each call and back (do not share a training model between
    threads); a model already in eval mode is left alone, so threads sharing it never change each other's mode.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        import torch  # here, not at the top: the `Runtime` interface is also what a torch-free runtime implements

        self._torch = torch
        self.model = model
        self.config = config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.regions = list(config.regions)
        self.num_frames = int(config.num_frames)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype

    @property
    def region_gate(self) -> float:
        """The model's `MicroXNetwork.region_gate`, read at each call (training moves it)."""
        return getattr(self.model, "microx", self.model).region_gate

    def _tensor(self, array: np.ndarray, dtype: Any = None) -> torch.Tensor:
        return self._torch.from_numpy(np.ascontiguousarray(array)).to(self.device, dtype or self.dtype)

    def _run(self, method, *args) -> dict[str, np.ndarray]:
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with self._torch.inference_mode():
                out = method(*args)
        finally:
            if was_training:
                self.model.train(True)
        return {key: value.float().cpu().numpy() for key, value in out.items() if value is not None}

    def encode_frames(
        self, pixel_values: np.ndarray, region_mask: np.ndarray, encoder_pixel_values: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        encoder = None if encoder_pixel_values is None else self._tensor(encoder_pixel_values)
        mask = self._tensor(region_mask, self._torch.bool)
        return self._run(self.model.encode_frames, self._tensor(pixel_values), mask, encoder)

    def classify_windows(self, features: dict[str, np.ndarray], region_mask: np.ndarray) -> dict[str, np.ndarray]:
        tensors = {key: self._tensor(value) for key, value in features.items()}
        out = self._run(self.model.classify_windows, tensors, self._tensor(region_mask, self._torch.bool))
        return {key: out[key] for key in ("logits", "region_logits", "region_weights")}


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported here (asked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def _hub_snapshot(repo_id: str) -> Path | None:
    """The files of a Hub model that the onnx runtime needs (`ONNX_FILES`), downloaded (or from the cache); None when
    they cannot be had."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=ONNX_FILES))
    except Exception as err:  # offline and not cached, unknown repo, unreachable: the torch path says it in full
        logger.info("no ONNX files of %s from the Hub (%s: %s)", repo_id, type(err).__name__, err)
        return None


def load_runtime(name_or_path: str | Path | None = None, runtime: str = "auto") -> tuple[Runtime, MicroXExtraction]:
    """Load a MicroX checkpoint for inference: the runtime that runs its network and its feature extractor.

    Args:
        name_or_path: A local folder or a Hub model id. None: `$MICROX_MODEL`, else the default model that ships
            with the package.
        runtime: "onnx": ONNX Runtime runs the graphs of the checkpoint's `onnx/` folder (`microx export onnx`);
            torch and transformers are not imported. "torch": the transformers model (`load_model`). "auto"
            (default): onnx where the checkpoint has an ONNX export (for a Hub id: in its repository) and
            onnxruntime is installed, else torch. Both give the same probabilities within 1e-4.

    Returns:
        (runtime, feature_extractor): a `Runtime` (`OnnxRuntime` or `TorchRuntime`) and the extractor saved with the
        checkpoint (a `MicroXExtraction` on the onnx path, a `MicroXFeatureExtractor` on the torch path); `predict`
        takes both (`predict(video, runtime, feature_extractor)`).

    Raises:
        ModelNotFoundError: Nothing loadable at `name_or_path`, or runtime="onnx" and it has no ONNX export.
        PickledWeightsError: runtime="torch" (or no export) and only pickled weights.
        ImportError: runtime="onnx" and onnxruntime is not installed.
    """
    from .predict import _local_folder, _resolve_name, load_model

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: choose one of {RUNTIMES}")
    name = _resolve_name(name_or_path)
    if runtime != "torch":
        local = _local_folder(name, weights=False)
        folder = local if isinstance(local, Path) else _hub_snapshot(str(local))
        exported = folder is not None and (folder / "onnx" / "manifest.json").is_file()
        if runtime == "onnx" and not exported:
            where = folder or name
            raise ModelNotFoundError(
                f"runtime='onnx': {where} has no ONNX export (onnx/manifest.json). Write one with `microx export onnx "
                f"{name} {Path(str(name)) / 'onnx'}` (needs torch and microx-hf[export]), or use runtime='torch'."
            )
        if exported and (runtime == "onnx" or onnxruntime_installed()):
            if not onnxruntime_installed():
                raise ImportError("runtime='onnx' needs onnxruntime: pip install onnxruntime")
            from .extraction import MicroXExtraction
            from .runtime_onnx import OnnxRuntime

            engine = OnnxRuntime(folder)
            saved = folder / "preprocessor_config.json"
            if saved.is_file():
                extractor = MicroXExtraction.from_json_file(saved)
            else:
                logger.warning("%s has no preprocessor_config.json: using an extractor built from the model", name)
                extractor = MicroXExtraction.from_config(engine.config)
            logger.info("loaded %s with onnxruntime", name)
            return engine, extractor
        if exported:
            logger.info("%s has an ONNX export but onnxruntime is not installed: using torch", name)
    model, extractor = load_model(name)
    return TorchRuntime(model), extractor
