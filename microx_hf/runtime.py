"""What runs the network for `predict` and the evaluation: the `Runtime` interface, on numpy arrays, and its torch
implementation `TorchRuntime`.

`microx_hf.scoring.ClipScorer` calls a runtime twice: `encode_frames` on the frames of a clip as they arrive (the
per-frame part of the network: stem, the ConvLSTM's input convolution, the frame encoder and its prior), and
`classify_windows` on batches of windows of those frames (the recurrence, the heads and the fusion). Anything with
this interface can run a MicroX checkpoint; `microx_hf.runtime_onnx.OnnxRuntime(folder)` runs the same network with
ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch


class Runtime(Protocol):
    """Runs a MicroX network on numpy arrays.

    Attributes:
        labels: Label names in class order (L).
        regions: Region names in the order of the R axis.
        num_frames: Frames per window (T).
    """

    labels: list[str]
    regions: list[str]
    num_frames: int

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
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.regions = list(config.regions)
        self.num_frames = int(config.num_frames)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype

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
