"""Export a MicroX checkpoint to ONNX: its per-frame graph and its per-window graph, for `runtime_onnx.OnnxRuntime`.

The network's work splits in two (`encode_frames` / `classify_windows` in `network_microx.py`), and so does the
export:

- `frames.onnx`: the per-frame part. The stems and the first ConvLSTM input convolution of every stem region, the
  frame encoder (fer or face-api) and its prior. Inputs `pixel_values` (B, R, N, C, S, S) float32 normalised crops,
  `region_mask` (B, R, N) bool and, where the model has a frame encoder, `encoder_pixel_values` (B, M, C, E, E): the
  encoder's crops of the frames it encodes, every `encoder_every`-th (the model's `frame_encoder_every`) from the
  first, zeroed where the region was not found (`runtime_onnx.encoder_frames`); outputs the per-frame features,
  frame axis at dim 1: `stem_gates` (B, N, Rs*4F, H', W'), `encoder_gates` (B, M, 4F, He, We), `prior` (B, M, L)
  (each only where the model has that part; the runtime repeats the encoder's onto the frames between). B, N and M
  are dynamic.
- `windows.onnx`: the per-window part. The ConvLSTM recurrences over T frames, the region heads and the fusion.
  Inputs the same feature names with W windows of T frames, (W, T, ...), and `region_mask` (W, R, T) bool; outputs
  `logits` (W, L), `region_logits` (W, R, L), `region_weights` (W, R). W is dynamic, T is the model's `num_frames`
  (the recurrence is unrolled).

`manifest.json` beside them says what the graphs take and give (labels, regions, sizes, normalisation, feature
names), so that onnxruntime alone can run them, and records the parity measured at export: the graphs' class and
region probabilities against torch's on fixed inputs (`PARITY_BOUND`).

The dynamo exporter (`torch.export` + onnxscript, opset 18) is the default: it exports every configuration (fer,
face-api and no encoder; the paper preset) within 1e-6 of torch, in about 40-60 s for the shipped model on this
machine. The TorchScript-based one (`dynamo=False`, `--torchscript`) takes half a second but exports only models
without a pooled head (the paper preset): `F.adaptive_avg_pool2d` needs input sizes it loses in the recurrence, and
it cannot pool 4x4 to 3x3 (the fer encoder's map to the default grid) at all.

    microx export onnx MODEL OUT            # OUT/frames.onnx, OUT/windows.onnx, OUT/manifest.json
    python -m microx_hf.onnx_export MODEL OUT [--torchscript] [--mediapipe]

This module needs torch and `onnx` (`pip install "microx-hf[export]"`); running the graphs needs neither.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .runtime_onnx import FORMAT, FORMAT_VERSION, MANIFEST_FILE, encoder_frames

logger = logging.getLogger(__name__)

FRAMES_FILE = "frames.onnx"
WINDOWS_FILE = "windows.onnx"
OPTIMIZE = True  # onnxscript's graph optimiser: a third smaller graphs, loaded faster
OPSET = 18  # the dynamo exporter's own; asking for 17 makes it try (and fail) a version conversion
FEATURE_NAMES = ("stem_gates", "encoder_gates", "prior")
WINDOW_OUTPUTS = ("logits", "region_logits", "region_weights")
PARITY_BOUND = 1e-4  # max |probability difference| between the graphs and torch on fixed inputs


def network_of(model: nn.Module) -> nn.Module:
    """The plain `MicroXNetwork` of a MicroX model (`model.microx`), or the network itself."""
    return getattr(model, "microx", model)


def feature_names(net: nn.Module) -> list[str]:
    """The per-frame features this network computes, in `FEATURE_NAMES` order."""
    present = {
        "stem_gates": net.stem is not None,
        "encoder_gates": net.frame_encoder is not None,
        "prior": net.frame_encoder is not None and net.label_map is not None,
    }
    return [name for name in FEATURE_NAMES if present[name]]


class FramePart(nn.Module):
    """`encode_frames` as a module with tensor outputs (the per-frame graph), less what numpy does better outside
    it: the frame encoder gets only the frames it encodes, `encoder_pixel_values` (B, M, C, E, E), already masked and
    taken every `frame_encoder_every`-th frame by the caller (`OnnxRuntime.encode_frames`, `encoder_frames`), which
    also repeats their features onto the frames between. (A strided slice inside the graph makes torch.export
    specialise the batch and frame sizes.)"""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.names = feature_names(net)

    def forward(
        self, pixel_values: torch.Tensor, region_mask: torch.Tensor, encoder_pixel_values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        net = self.net
        features = {}
        if net.stem is not None:
            features["stem_gates"] = net.encode_stems(pixel_values * region_mask[..., None, None, None].float())
        if net.frame_encoder is not None:
            features.update(net.encode_faces(encoder_pixel_values))
        # Contiguous outputs: the fer encoder computes channels-last, which a graph output has no notion of.
        return tuple(features[name].contiguous() for name in self.names)


class WindowPart(nn.Module):
    """`classify_windows` as a module with tensor inputs and outputs (the per-window graph)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.names = feature_names(net)

    def forward(self, region_mask: torch.Tensor, *features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net.classify_windows(dict(zip(self.names, features, strict=True)), region_mask)
        return tuple(out[name] for name in WINDOW_OUTPUTS)


def example_inputs(config: Any, frames: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """Fixed inputs of `frames` frames for the export and its parity check: normalised noise crops with a few
    masked regions (one region hidden in one frame, one for a whole stretch)."""
    g = torch.Generator().manual_seed(seed)
    r, c, s = len(config.regions), config.num_channels, config.image_size
    inputs = {"pixel_values": torch.rand(1, r, frames, c, s, s, generator=g) * 2 - 1}
    mask = torch.ones(1, r, frames, dtype=torch.bool)
    mask[0, -1, 1] = False
    if r > 1:
        mask[0, 1, frames // 2 :] = False
    inputs["region_mask"] = mask
    if config.frame_encoder is not None:
        e = config.frame_encoder_size
        inputs["encoder_pixel_values"] = torch.rand(1, frames, c, e, e, generator=g) * 2 - 1
    return inputs


def _window_index(n_frames: int, num_frames: int, windows: int) -> torch.Tensor:
    """(W, T) frame indices of `windows` windows spread over `n_frames` frames (overlapping, as predict cuts them)."""
    starts = np.linspace(0, max(n_frames - num_frames, 0), windows).round().astype(int)
    index = np.minimum(starts[:, None] + np.arange(num_frames)[None], n_frames - 1)
    return torch.as_tensor(index)


def window_inputs(
    features: dict[str, torch.Tensor], region_mask: torch.Tensor, index: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The windows `index` (W, T) of per-frame features (1, N, ...) and a mask (1, R, N): (W, T, ...) and (W, R, T),
    as `microx_hf.scoring.ClipScorer` cuts them."""
    out = {name: value[0][index] for name, value in features.items()}  # (N, ...) -> (W, T, ...)
    out["region_mask"] = region_mask[0][:, index].transpose(0, 1)  # (R, W, T) -> (W, R, T)
    return out


def _export(
    module: nn.Module,
    args: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic: dict[str, dict[int, str]],
    dynamo: bool,
) -> None:
    kwargs: dict[str, Any] = {"input_names": input_names, "output_names": output_names, "opset_version": OPSET}
    if dynamo:
        from torch.export import Dim

        dims: dict[str, Any] = {}
        shapes = []
        for name in input_names:
            spec = {}
            for axis, label in dynamic.get(name, {}).items():
                dims.setdefault(label, Dim(label, min=1, max=4096))
                spec[axis] = dims[label]
            shapes.append(spec or None)
        if isinstance(module, WindowPart):  # forward(region_mask, *features): the features are one argument
            shapes = [shapes[0], tuple(shapes[1:])]
        kwargs.update(dynamo=True, dynamic_shapes=tuple(shapes), external_data=False, optimize=OPTIMIZE, verbose=False)
    else:
        kwargs.update(dynamo=False, dynamic_axes=dynamic, do_constant_folding=True)
    torch.onnx.export(module, args, str(path), **kwargs)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_parity(model: nn.Module, folder: str | Path, frames: int = 23, windows: int = 7) -> dict[str, float]:
    """Runs the exported graphs with onnxruntime and the network with torch on the same fixed inputs (`frames`
    frames, `windows` overlapping windows of them; other sizes than the export's) and returns the largest
    differences: `max_prob_diff` over the fused and the region probabilities, `max_weight_diff` over the region
    weights, `max_feature_diff` over the per-frame features."""
    from .runtime_onnx import OnnxRuntime

    net = network_of(model).eval()
    runtime = OnnxRuntime(folder)
    inputs = example_inputs(net.config, frames, seed=1)
    with torch.inference_mode():
        torch_features = net.encode_frames(**inputs)  # the whole torch path, as predict runs it
        index = _window_index(frames, net.config.num_frames, windows)
        win = window_inputs(torch_features, inputs["region_mask"], index)
        logits, region_logits, region_weights = WindowPart(net)(
            win["region_mask"], *(win[n] for n in feature_names(net))
        )
    numpy_inputs = {k: v.numpy() for k, v in inputs.items()}
    ort_features = runtime.encode_frames(
        numpy_inputs["pixel_values"], numpy_inputs["region_mask"], numpy_inputs.get("encoder_pixel_values")
    )
    feature_diff = max(float(np.abs(ort_features[k] - v.numpy()).max()) for k, v in torch_features.items())
    # The windows graph gets onnxruntime's own features: the whole path, as predict runs it.
    ort_windows = {k: v[0][index.numpy()] for k, v in ort_features.items()}
    ort_mask = numpy_inputs["region_mask"][0][:, index.numpy()].transpose(1, 0, 2)
    out = runtime.classify_windows(ort_windows, ort_mask)
    prob_diff = max(
        float(np.abs(_softmax(out["logits"]) - _softmax(logits.numpy())).max()),
        float(np.abs(_softmax(out["region_logits"]) - _softmax(region_logits.numpy())).max()),
    )
    weight_diff = float(np.abs(out["region_weights"] - region_weights.numpy()).max())
    return {"max_prob_diff": prob_diff, "max_weight_diff": weight_diff, "max_feature_diff": feature_diff}


def export_onnx(
    model: nn.Module,
    out: str | Path,
    dynamo: bool = True,
    check: bool = True,
    source: str | None = None,
) -> Path:
    """Writes `frames.onnx`, `windows.onnx` and `manifest.json` of a MicroX model into the folder `out`.

    Args:
        model: A MicroX model (`MicroXModel`, `MicroXForVideoClassification`, or its plain network).
        out: The folder to write (created); by convention `<model folder>/onnx`.
        dynamo: The dynamo exporter (onnxscript); False: the TorchScript-based one (fast, but it fails on pooled
            heads).
        check: Run the graphs with onnxruntime against torch (`check_parity`) and refuse an export whose
            probabilities differ by more than `PARITY_BOUND`.
        source: Where the weights came from, recorded in the manifest.

    Returns:
        The folder.

    Raises:
        RuntimeError: The graphs do not agree with torch within `PARITY_BOUND`.
    """
    net = network_of(model).eval()
    cfg = net.config
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = feature_names(net)
    started = time.perf_counter()
    inputs = example_inputs(cfg, frames=5)
    with torch.inference_mode():
        features = net.encode_frames(**inputs)
    every = int(cfg.frame_encoder_every) if cfg.frame_encoder is not None else 1
    if "encoder_pixel_values" in inputs:
        inputs["encoder_pixel_values"] = torch.from_numpy(
            encoder_frames(inputs["encoder_pixel_values"].numpy(), inputs["region_mask"].numpy(),
                           cfg.regions.index(cfg.frame_encoder_region), every)
        )  # fmt: skip
    frame_inputs = list(inputs)
    frame_dynamic = {"pixel_values": {0: "batch", 2: "frames"}, "region_mask": {0: "batch", 2: "frames"}}
    if "encoder_pixel_values" in inputs:
        frame_dynamic["encoder_pixel_values"] = {0: "batch", 1: "encoder_frames"}
    frame_dynamic.update(
        {name: {0: "batch", 1: "frames" if name == "stem_gates" else "encoder_frames"} for name in names}
    )
    with torch.no_grad():
        _export(FramePart(net), tuple(inputs.values()), out / FRAMES_FILE, frame_inputs, names,
                frame_dynamic, dynamo)  # fmt: skip
    index = _window_index(5, cfg.num_frames, 3)
    win = window_inputs(features, inputs["region_mask"], index)
    window_dynamic = {"region_mask": {0: "windows"}, **{name: {0: "windows"} for name in names}}
    window_dynamic.update({name: {0: "windows"} for name in WINDOW_OUTPUTS})
    with torch.no_grad():
        _export(WindowPart(net), (win["region_mask"], *(win[n] for n in names)), out / WINDOWS_FILE,
                ["region_mask", *names], list(WINDOW_OUTPUTS), window_dynamic, dynamo)  # fmt: skip
    export_s = time.perf_counter() - started
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "opset": OPSET,
        "exporter": "dynamo" if dynamo else "torchscript",
        "torch": torch.__version__,
        "source": source or getattr(model, "name_or_path", "") or "",
        "weights_sha256": _weights_digest(net),
        "labels": [cfg.id2label[i] for i in range(cfg.num_labels)],
        "regions": list(cfg.regions),
        "num_frames": int(cfg.num_frames),
        "num_channels": int(cfg.num_channels),
        "image_size": int(cfg.image_size),
        "frame_encoder": cfg.frame_encoder,
        "encoder_size": int(cfg.frame_encoder_size) if cfg.frame_encoder is not None else None,
        "encoder_region": cfg.frame_encoder_region if cfg.frame_encoder is not None else None,
        "encoder_every": every,
        "region_gate": net.region_gate,
        "image_mean": [float(v) for v in cfg.image_mean],
        "image_std": [float(v) for v in cfg.image_std],
        "features": names,
        "frames": {"file": FRAMES_FILE, "inputs": frame_inputs, "outputs": names},
        "windows": {"file": WINDOWS_FILE, "inputs": ["region_mask", *names], "outputs": list(WINDOW_OUTPUTS)},
        "export_s": round(export_s, 3),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    if check:
        parity = check_parity(model, out)
        manifest["parity"] = {k: float(f"{v:.3g}") for k, v in parity.items()}
        manifest["parity"]["bound"] = PARITY_BOUND
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if not parity["max_prob_diff"] <= PARITY_BOUND:
            raise RuntimeError(
                f"the ONNX graphs in {out} differ from torch by {parity['max_prob_diff']:.2e} in probability (bound "
                f"{PARITY_BOUND:g}): do not use them; report this with the model's config.json"
            )
    logger.info("exported %s to %s in %.1f s", manifest["source"] or "the model", out, export_s)
    return out


def _weights_digest(net: nn.Module) -> str:
    """SHA-256 over the network's state (names, shapes and bytes): which weights the graphs were made from."""
    digest = hashlib.sha256()
    for name, value in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --- the mesh landmark backend's networks ---------------------------------------------------------------------


class _NHWC(nn.Module):
    """A MediaPipe network taking (1, S, S, 3) NHWC float32, as its TFLite graph does (the layout of the frames)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(image.permute(0, 3, 1, 2))  # (1, S, S, 3) -> (1, 3, S, S)


def export_mediapipe(out: str | Path | None = None, check: bool = True) -> dict[str, float]:
    """Exports the `mediapipe` landmark backend's networks (BlazeFace short and full range, Face Mesh) from the
    safetensors that ship in `microx_hf/landmarks/weights` to ONNX graphs beside them (or into `out`).

    Each graph takes `image` (1, S, S, 3) float32, scaled as the backend scales it ([-1, 1] for BlazeFace, [0, 1]
    for the mesh), and gives the torch module's outputs. Returns the largest absolute difference of each graph's
    outputs from torch's on a real face (scikit-image's astronaut where installed, else noise), by file name.
    """
    from .landmarks import mesh_backend
    from .landmarks.mediapipe_nets import BlazeFaceFull, BlazeFaceShort, FaceMesh

    out = Path(out) if out is not None else mesh_backend.WEIGHTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    specs = [
        (BlazeFaceShort(), "blazeface_short", ["regressors", "logits"], 127.5, -1.0),
        (BlazeFaceFull(), "blazeface_full", ["regressors", "logits"], 127.5, -1.0),
        (FaceMesh(), "face_mesh", ["points", "presence"], 255.0, 0.0),
    ]
    diffs = {}
    for net, stem, outputs, scale, shift in specs:
        module = _NHWC(mesh_backend._load(net, f"{stem}.safetensors")).eval()
        x = torch.from_numpy(_test_image(net.input_size)).float()[None] / scale + shift  # (1, S, S, 3)
        path = out / f"{stem}.onnx"
        with torch.no_grad():
            # Static shapes: the TorchScript-based exporter handles these plain convolutional graphs in a second.
            torch.onnx.export(module, (x,), str(path), input_names=["image"], output_names=outputs,
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)  # fmt: skip
        if check:
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            with torch.inference_mode():
                expected = [t.numpy() for t in module(x)]
            got = session.run(None, {"image": x.numpy()})
            diffs[path.name] = max(float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True))
    return diffs


def _test_image(size: int) -> np.ndarray:
    """A real face at `size` x `size` (the astronaut's, when scikit-image is installed), else fixed noise."""
    import cv2

    try:
        from skimage import data
    except ImportError:
        return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    face = data.astronaut()[20:220, 140:340]  # her face, roughly centred
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


# --- command line ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Exports as `args` say (`cli.add_export_arguments`); prints where the graphs went and their parity with torch."""
    from .predict import load_model

    torch.set_num_threads(1)
    model, _ = load_model(args.export_model)
    out = export_onnx(model, args.out, dynamo=not args.torchscript, check=not args.no_check,
                      source=str(args.export_model))  # fmt: skip
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    parity = manifest.get("parity")
    line = f"wrote {out}: {FRAMES_FILE}, {WINDOWS_FILE}, {MANIFEST_FILE} ({manifest['exporter']} exporter"
    if parity:
        line += f"; max |probability difference| from torch {parity['max_prob_diff']:.1e}"
    print(line + ")")
    if args.mediapipe:
        for name, diff in export_mediapipe(out).items():
            print(f"wrote {out / name} (max |difference| from torch {diff:.1e})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m microx_hf.onnx_export MODEL OUT`: the same as `microx export onnx MODEL OUT`."""
    parser = argparse.ArgumentParser(
        prog="python -m microx_hf.onnx_export",
        description="Export a MicroX model to ONNX (frames.onnx, windows.onnx, manifest.json) for inference "
        "without torch; the graphs are checked against torch before they are kept.",
    )
    from .cli import add_export_arguments

    add_export_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
