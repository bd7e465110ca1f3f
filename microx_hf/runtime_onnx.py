"""Running an exported MicroX model with onnxruntime: the scoring runtime that needs neither torch nor transformers.

`OnnxRuntime(folder)` loads the two graphs `microx_hf.onnx_export` writes (`frames.onnx`: the per-frame part,
`windows.onnx`: the per-window part; `manifest.json` says what they take and give) and implements the scoring
runtime interface of `microx_hf.runtime` (`encode_frames`, `classify_windows` on numpy arrays), the way
`TorchRuntime` does with the torch network. Importing this module imports numpy and onnxruntime only
(`import onnxruntime, numpy` takes about 0.3 s here; torch alone 1.2-1.7 s).

One intra-op thread by default: `predict` decodes and finds landmarks in a second thread, and on this project's
2-core machines two threads per session ran slower under load than one.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort

ONNX_DIR = "onnx"
MANIFEST_FILE = "manifest.json"
FORMAT = "microx-onnx"
FORMAT_VERSION = 2  # 2: the frames graph's encoder takes its frames masked, every `encoder_every`-th


def onnx_folder(folder: str | Path) -> Path | None:
    """The folder holding a MicroX ONNX export: `folder` itself or `folder/onnx`; None when neither does."""
    folder = Path(folder).expanduser()
    for candidate in (folder / ONNX_DIR, folder):
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
    return None


def session_options(threads: int = 1) -> ort.SessionOptions:
    """Sequential execution on `threads` intra-op threads that sleep, not spin, while idle (machines are shared)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No memory arena and no memory patterns: intermediate tensors are freed after each run. The arena kept growing
    # to a peak RSS of 470 MB on a 5 s clip (345 MB without); on one thread it was no faster.
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only
    return options


def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of a 1-D bilinear resize as torch's `F.interpolate(..., mode="bilinear",
    align_corners=False)` computes it (half-pixel centres, no antialiasing, edges clamped)."""
    scale = size_in / size_out
    src = np.maximum((np.arange(size_out) + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    matrix = np.zeros((size_out, size_in), np.float64)
    np.add.at(matrix, (np.arange(size_out), lo), 1.0 - frac)
    np.add.at(matrix, (np.arange(size_out), hi), frac)
    return matrix.astype(np.float32)


def encoder_frames(
    encoder_pixel_values: np.ndarray, region_mask: np.ndarray, encoder_index: int, every: int
) -> np.ndarray:
    """What the frames graph's encoder takes: (B, N, C, E, E) crops, zeroed where the encoder region was not found
    (`region_mask` (B, R, N)), every `every`-th frame from the first -> (B, ceil(N / every), C, E, E)."""
    visible = region_mask[:, encoder_index, ::every, None, None, None]  # the frames it encodes only
    return np.ascontiguousarray(encoder_pixel_values[:, ::every] * visible, dtype=np.float32)


class OnnxRuntime:
    """A MicroX model's exported graphs, run by onnxruntime on numpy arrays.

    Args:
        folder: A model folder with an `onnx/` export, or the export's folder itself.
        threads: Intra-op threads of each session.
        providers: onnxruntime execution providers (default the CPU's).

    Attributes:
        labels: Class names, in the model's order.
        regions: Region names, in the order of the R axis.
        num_frames: Frames per window T.
        region_gate: How much the region branches can move the answer (`MicroXNetwork.region_gate`, recorded at
            export; 1.0 in exports that predate it).
        config: The model's settings the feature extractor must match, from the manifest (the `MicroXConfig` fields
            `regions`, `num_frames`, `num_channels`, `image_size`, `id2label`, `num_labels`, `frame_encoder`,
            `frame_encoder_size`, `frame_encoder_region`, `image_mean`, `image_std`).
        manifest: The export's `manifest.json`.
    """

    def __init__(self, folder: str | Path, threads: int = 1, providers: list[str] | None = None) -> None:
        found = onnx_folder(folder)
        if found is None:
            raise FileNotFoundError(
                f"{folder} holds no MicroX ONNX export ({ONNX_DIR}/{MANIFEST_FILE}); write one with "
                f"`microx export onnx {folder} {Path(folder) / ONNX_DIR}`"
            )
        self.folder = found
        manifest = json.loads((found / MANIFEST_FILE).read_text())
        if manifest.get("format") != FORMAT or int(manifest.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{found / MANIFEST_FILE}: not a MicroX ONNX export this version reads (format "
                f"{manifest.get('format')!r} version {manifest.get('version')!r}); export the model again"
            )
        self.manifest = manifest
        self.labels: list[str] = list(manifest["labels"])
        self.regions: list[str] = list(manifest["regions"])
        self.num_frames: int = int(manifest["num_frames"])
        self.feature_names: list[str] = list(manifest["features"])
        self.image_mean = np.asarray(manifest["image_mean"], np.float32)
        self.image_std = np.asarray(manifest["image_std"], np.float32)
        self.encoder_size: int | None = manifest.get("encoder_size")
        self.encoder_index = self.regions.index(manifest["encoder_region"]) if self.encoder_size else None
        self.encoder_every = int(manifest.get("encoder_every", 1))  # the frame encoder runs on every k-th frame
        self.region_gate = float(manifest.get("region_gate", 1.0))
        self.config = SimpleNamespace(
            regions=list(self.regions),
            num_frames=self.num_frames,
            num_channels=int(manifest["num_channels"]),
            image_size=int(manifest["image_size"]),
            id2label=dict(enumerate(self.labels)),
            num_labels=len(self.labels),
            frame_encoder=manifest["frame_encoder"],
            frame_encoder_size=self.encoder_size,
            frame_encoder_region=manifest["encoder_region"],
            image_mean=[float(v) for v in manifest["image_mean"]],
            image_std=[float(v) for v in manifest["image_std"]],
        )
        options = session_options(threads)
        providers = providers or ["CPUExecutionProvider"]
        self._frames = ort.InferenceSession(str(found / manifest["frames"]["file"]), options, providers=providers)
        self._windows = ort.InferenceSession(str(found / manifest["windows"]["file"]), options, providers=providers)
        self._resize: tuple[np.ndarray, np.ndarray] | None = None

    def encode_frames(
        self, pixel_values: np.ndarray, region_mask: np.ndarray, encoder_pixel_values: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The per-frame part: features of M frames, frame axis at dim 1.

        Args:
            pixel_values: (1, R, M, C, S, S) float32 normalised crops.
            region_mask: (1, R, M) bool.
            encoder_pixel_values: (1, M, C, E, E) float32 normalised crops for the frame encoder; None: the encoder
                region's crops resized (as torch resizes them).

        Returns:
            {"stem_gates": (1, M, ...), "encoder_gates": (1, M, ...), "prior": (1, M, L)}, the keys the model has.
        """
        feeds = {
            "pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32),
            "region_mask": np.ascontiguousarray(region_mask, dtype=bool),
        }
        if self.encoder_size is not None:
            if encoder_pixel_values is None:
                encoder_pixel_values = self._resized_encoder_crops(feeds["pixel_values"])
            feeds["encoder_pixel_values"] = encoder_frames(
                encoder_pixel_values, feeds["region_mask"], self.encoder_index, self.encoder_every
            )
        features = dict(zip(self.feature_names, self._frames.run(self.feature_names, feeds), strict=True))
        if self.encoder_every > 1:  # each frame takes the features of the last encoded frame at or before it
            index = np.arange(feeds["pixel_values"].shape[2]) // self.encoder_every
            for name in ("encoder_gates", "prior"):
                if name in features:
                    features[name] = features[name][:, index]
        return features

    def classify_windows(self, features: dict[str, np.ndarray], region_mask: np.ndarray) -> dict[str, np.ndarray]:
        """The per-window part on W windows of T frames.

        Args:
            features: `encode_frames`' keys, each (W, T, ...).
            region_mask: (W, R, T) bool.

        Returns:
            {"logits": (W, L), "region_logits": (W, R, L), "region_weights": (W, R)} float32.
        """
        feeds = {name: np.ascontiguousarray(features[name], dtype=np.float32) for name in self.feature_names}
        feeds["region_mask"] = np.ascontiguousarray(region_mask, dtype=bool)
        logits, region_logits, region_weights = self._windows.run(["logits", "region_logits", "region_weights"], feeds)
        return {"logits": logits, "region_logits": region_logits, "region_weights": region_weights}

    def _resized_encoder_crops(self, pixel_values: np.ndarray) -> np.ndarray:
        """(1, M, C, E, E): the encoder region's crops (1, R, M, C, S, S) resized to E as torch's bilinear does."""
        face = pixel_values[:, self.encoder_index]  # (1, M, C, S, S)
        size_in, size_out = face.shape[-1], int(self.encoder_size)
        if size_in == size_out:
            return face
        if self._resize is None or self._resize[0].shape != (size_out, size_in):
            matrix = bilinear_matrix(size_in, size_out)
            self._resize = (matrix, matrix.T.copy())
        rows, cols = self._resize
        return (rows @ face @ cols).astype(np.float32)  # (E, S) @ (..., S, S) @ (S, E) -> (..., E, E)


__all__ = ["OnnxRuntime", "onnx_folder", "session_options", "bilinear_matrix", "encoder_frames"]
