"""Human's emotion network (npm `@vladmandic/human` 3.3.6, MIT) as a plain torch module.

The package ships `models/emotion.json` + `models/emotion.bin`: a tfjs *graph* model converted by the package's
author from oarriaga's face_classification (`"generatedBy": "https://github.com/oarriaga/face_classification"`):
its big-XCEPTION, 64x64 grey in, 7 classes. Read from the graph's nodes (every batch normalisation is already
folded into the convolution before it, as `*_bn_offset` biases):

    conv 3x3/2 valid 1->32, ReLU; conv 3x3 valid 32->64, ReLU
    block 2: residual conv 1x1/2 64->128;  sepconv 64->128, ReLU, sepconv 128->128, maxpool 3x3/2 same; add
    block 3: residual conv 1x1/2 128->256; ReLU, sepconv 128->256, ReLU, sepconv 256->256, maxpool; add
    conv 3x3 same 256->7, global average pool, softmax

(a "sepconv" is a 3x3 depthwise convolution without bias and a 1x1 pointwise one with bias; the residual branch of
block 3 starts from the sum *before* block 3's first ReLU). The classes and the input normalisation come from the
package's `src/gear/emotion.ts`: for a one-channel model the labels are angry, disgust, fear, happy, sad, surprise,
neutral ("oarriaga and gear"), and the face in [0, 1] is resized bilinearly to 64, turned grey with weights
0.2989/0.5870/0.1140 and mapped to `(grey - 0.5) * 2`. The graph ends in a softmax; `forward` returns the logits
before it.

    python -m training.teachers.human [--out PATH]     # fetch the package (npm pack) and convert
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import TeacherSpec, default_cache, register_teacher
from .tfjs import decode_weights, depthwise_to_torch, hwio_to_oihw, npm_package, read_manifest

logger = logging.getLogger(__name__)

PACKAGE = "@vladmandic/human"
VERSION = "3.3.6"
MODEL = "models/emotion.json"
WEIGHTS_FILE = "human.safetensors"
COMMITTED_WEIGHTS = Path(__file__).resolve().parent / "weights" / WEIGHTS_FILE

HUMAN_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # src/tfjs/constants.ts `rgb`
INPUT_SIZE = 64


def _maxpool_same(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's MaxPool 3x3, stride 2, `same`: pad with -inf, the odd pixel after (bottom/right)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D 3x3 `same`, stride 1: depthwise (no bias), then pointwise with bias."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        # Stride 1 and an odd kernel: TensorFlow's `same` padding is symmetric, torch's padding=1.
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class HumanEmotionNet(nn.Module):
    """oarriaga's big-XCEPTION as shipped in Human: 7 emotion logits from an RGB face crop.

    Classes, in output order: `HUMAN_EMOTIONS`. Input (N, 3, S, S) RGB in [0, 1] with S = 64 (the size the graph
    declares); the grey conversion and normalisation happen inside.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 2)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.block2_residual = nn.Conv2d(64, 128, 1, 2)
        self.block2_sep1 = SeparableConv(64, 128)
        self.block2_sep2 = SeparableConv(128, 128)
        self.block3_residual = nn.Conv2d(128, 256, 1, 2)
        self.block3_sep1 = SeparableConv(128, 256)
        self.block3_sep2 = SeparableConv(256, 256)
        self.classifier = nn.Conv2d(256, len(HUMAN_EMOTIONS), 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 7) of `x` (N, 3, S, S) RGB in [0, 1]; softmax gives the graph's output."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"HumanEmotionNet takes (N, 3, S, S) RGB in [0, 1], got shape {tuple(x.shape)}")
        weights = x.new_tensor(GREY_WEIGHTS).view(1, 3, 1, 1)
        grey = (x * weights).sum(dim=1, keepdim=True)  # (N, 1, S, S)
        x = (grey - 0.5) * 2.0
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        residual = self.block2_residual(x)
        x = self.block2_sep2(F.relu(self.block2_sep1(x)))
        x = _maxpool_same(x) + residual
        residual = self.block3_residual(x)
        x = self.block3_sep2(F.relu(self.block3_sep1(F.relu(x))))
        x = _maxpool_same(x) + residual
        return self.classifier(x).mean(dim=(2, 3))  # global average pool: (N, 7, H, W) -> (N, 7)


_PREFIX = "StatefulPartitionedCall/model_1/"
# Each torch layer and the graph node that computes it: (torch name, kind, node, data input, stride, padding, relu).
# "sep" nodes are the pointwise _FusedConv2D whose first input is a DepthwiseConv2dNative node on the data input.
_LAYERS = [
    ("conv1", "conv", "block1_conv1_act/Relu", "input_1", 2, "VALID", True),
    ("conv2", "conv", "block1_conv2_act/Relu", "block1_conv1_act/Relu", 1, "VALID", True),
    ("block2_residual", "conv", "batch_normalization_1/FusedBatchNormV3", "block1_conv2_act/Relu", 2, "SAME", False),
    ("block2_sep1", "sep", "block2_sepconv2_act/Relu", "block1_conv2_act/Relu", 1, "SAME", True),
    ("block2_sep2", "sep", "block2_sepconv2_bn/FusedBatchNormV3", "block2_sepconv2_act/Relu", 1, "SAME", False),
    ("block3_residual", "conv", "batch_normalization_2/FusedBatchNormV3", "add_1/add", 2, "SAME", False),
    ("block3_sep1", "sep", "block3_sepconv2_act/Relu", "block3_sepconv1_act/Relu", 1, "SAME", True),
    ("block3_sep2", "sep", "block3_sepconv2_bn/FusedBatchNormV3", "block3_sepconv2_act/Relu", 1, "SAME", False),
    ("classifier", "conv", "conv2d_5/BiasAdd", "add_2/add", 1, "SAME", False),
]
# The rest of the graph that `forward` reproduces: node -> (op, data inputs).
_GLUE = {
    "max_pooling2d_1/MaxPool": ("MaxPool", ["block2_sepconv2_bn/FusedBatchNormV3"]),
    "add_1/add": ("AddV2", ["max_pooling2d_1/MaxPool", "batch_normalization_1/FusedBatchNormV3"]),
    "block3_sepconv1_act/Relu": ("Relu", ["add_1/add"]),
    "max_pooling2d_2/MaxPool": ("MaxPool", ["block3_sepconv2_bn/FusedBatchNormV3"]),
    "add_2/add": ("AddV2", ["max_pooling2d_2/MaxPool", "batch_normalization_2/FusedBatchNormV3"]),
    "global_average_pooling2d_1/Mean": ("Mean", ["conv2d_5/BiasAdd"]),
    "predictions/Softmax": ("Softmax", ["global_average_pooling2d_1/Mean"]),
}


def _short(name: str) -> str:
    return name[len(_PREFIX) :] if name.startswith(_PREFIX) else name


def _attr(node: dict, key: str):
    value = node.get("attr", {}).get(key, {})
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(i) for i in items.get("i", [])]
    if "b" in value:
        return bool(value["b"])
    return None


def check_graph(topology: dict) -> dict[str, tuple[str, ...]]:
    """Checks that Human's emotion graph is the network `HumanEmotionNet` computes.

    Returns:
        Torch layer name -> the names of its weight tensors in the graph (filter[, depthwise], bias).

    Raises:
        ValueError: naming the first node that differs (op, inputs, stride, padding, fused ops, input shape).
    """
    nodes = {_short(n["name"]): n for n in topology["modelTopology"]["node"]}

    def expect(name: str, op: str, inputs: list[str], strides: int | None = None, padding: str | None = None):
        node = nodes.get(name)
        if node is None:
            raise ValueError(f"Human emotion graph: node {name!r} is missing")
        found = [_short(i) for i in node.get("input", [])]
        if node["op"] != op or found[: len(inputs)] != inputs:
            raise ValueError(f"Human emotion graph: {name} is {node['op']}{found}, expected {op}{inputs}")
        if strides is not None and _attr(node, "strides") != [1, strides, strides, 1]:
            raise ValueError(f"Human emotion graph: {name} has strides {_attr(node, 'strides')}, expected {strides}")
        if padding is not None and _attr(node, "padding") != padding:
            raise ValueError(f"Human emotion graph: {name} has padding {_attr(node, 'padding')}, expected {padding}")
        if _attr(node, "data_format") not in (None, "NHWC"):
            raise ValueError(f"Human emotion graph: {name} has data format {_attr(node, 'data_format')}")
        return node

    placeholder = nodes.get("input_1")
    dims = [int(d["size"]) for d in placeholder["attr"]["shape"]["shape"]["dim"]] if placeholder else None
    if dims != [-1, INPUT_SIZE, INPUT_SIZE, 1]:
        raise ValueError(f"Human emotion graph: input shape {dims}, expected [-1, {INPUT_SIZE}, {INPUT_SIZE}, 1]")
    weights: dict[str, tuple[str, ...]] = {}
    for torch_name, kind, name, data, stride, padding, relu in _LAYERS:
        fused = ["BiasAdd", "Relu"] if relu else ["BiasAdd"]
        if kind == "conv":
            node = expect(name, "_FusedConv2D", [data], stride, padding)
            weights[torch_name] = tuple(_short(i) for i in node["input"][1:3])
        else:
            node = nodes.get(name)
            depthwise = _short(node["input"][0]) if node else ""
            expect(depthwise, "DepthwiseConv2dNative", [data], stride, padding)
            node = expect(name, "_FusedConv2D", [depthwise], 1, "VALID")
            weights[torch_name] = (_short(nodes[depthwise]["input"][1]), *(_short(i) for i in node["input"][1:3]))
        if _attr(node, "fused_ops") != fused:
            raise ValueError(f"Human emotion graph: {name} fuses {_attr(node, 'fused_ops')}, expected {fused}")
    for name, (op, inputs) in _GLUE.items():
        node = expect(name, op, inputs, 2 if op == "MaxPool" else None, "SAME" if op == "MaxPool" else None)
        if op == "MaxPool" and _attr(node, "ksize") != [1, 3, 3, 1]:
            raise ValueError(f"Human emotion graph: {name} pools {_attr(node, 'ksize')}, expected 3x3")
    return weights


def state_dict_from_graph(topology: dict, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Human's graph tensors -> `HumanEmotionNet` state dict (numpy arrays in torch layouts)."""
    state: dict[str, np.ndarray] = {}
    for torch_name, names in check_graph(topology).items():
        values = [tensors[_PREFIX + n] if _PREFIX + n in tensors else tensors[n] for n in names]
        if len(values) == 3:  # separable: depthwise, pointwise, bias
            state[f"{torch_name}.depthwise.weight"] = depthwise_to_torch(values[0])
            state[f"{torch_name}.pointwise.weight"] = hwio_to_oihw(values[1])
            state[f"{torch_name}.pointwise.bias"] = values[2]
        else:
            state[f"{torch_name}.weight"] = hwio_to_oihw(values[0])
            state[f"{torch_name}.bias"] = values[1]
    expected = HumanEmotionNet().state_dict()
    if set(expected) != set(state):
        raise ValueError(f"graph tensors do not fill HumanEmotionNet: {sorted(set(expected) ^ set(state))}")
    for key, value in state.items():
        if tuple(expected[key].shape) != value.shape:
            raise ValueError(f"{key}: converted shape {value.shape}, module expects {tuple(expected[key].shape)}")
    return {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in state.items()}


def convert_files(model_path: Path, out: Path, source: str = "") -> Path:
    """Converts Human's `emotion.json` (+ its `.bin` next to it) into a safetensors file."""
    from safetensors.numpy import save_file

    manifest, topology = read_manifest(model_path)
    if topology is None or topology.get("format") != "graph-model":
        raise ValueError(f"{model_path} is not a tfjs graph model")
    state = state_dict_from_graph(topology, decode_weights(manifest, model_path.parent))
    metadata = {"source": source or str(model_path), "converter": "training/teachers/human.py"}
    for name in [model_path.name] + [p for group in manifest for p in group["paths"]]:
        metadata[f"sha256:{name}"] = hashlib.sha256((model_path.parent / name).read_bytes()).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata=metadata)
    logger.info("wrote %s (%d tensors)", out, len(state))
    return out


def convert(cache: Path) -> Path:
    """`cache/human.safetensors`, fetching Human with `npm pack` and converting it when missing."""
    out = Path(cache) / WEIGHTS_FILE
    if out.is_file():
        return out
    package = npm_package(PACKAGE, VERSION, cache)
    return convert_files(package / MODEL, out, source=f"npm {PACKAGE}@{VERSION}: {MODEL}")


SPEC = register_teacher(
    TeacherSpec(
        name="human",
        classes=HUMAN_EMOTIONS,
        to_microx={
            "angry": "anger",
            "disgust": "contempt",  # the paper merges disgust into contempt
            "fear": "fear",
            "happy": "happy",
            "sad": "sad",
            "surprise": "surprise",
            "neutral": "neutral",
        },
        input_size=INPUT_SIZE,
        grey=True,
        source=f"npm {PACKAGE}@{VERSION}: models/emotion.json + models/emotion.bin",
        licence="MIT",
        training_data=(
            "FER2013 (48x48 grey faces): Human credits oarriaga/face_classification for the model, and that "
            "project's README says its emotion models were trained on FER2013; the package itself does not say"
        ),
        build=HumanEmotionNet,
        convert=convert,
        notes=(
            "oarriaga big-XCEPTION converted to a tfjs graph by Human's author (batch norms folded); float32 "
            "weights as shipped"
        ),
        extra={"committed_weights": COMMITTED_WEIGHTS},
    )
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="safetensors path (default: the teachers' cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = default_cache()
    if args.out is None:
        convert(cache)
    else:
        package = npm_package(PACKAGE, VERSION, cache)
        convert_files(package / MODEL, args.out, source=f"npm {PACKAGE}@{VERSION}: {MODEL}")


if __name__ == "__main__":
    main()
