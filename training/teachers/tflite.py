"""TFLite flatbuffers read without TensorFlow, and a float64 numpy forward of their graph with dequantised weights:
what the converters of networks shipped as `.tflite` files (facex's) check their torch modules against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from microx_hf.tf_padding import tf_same_pads
from microx_hf.windows import softmax

logger = logging.getLogger(__name__)


@dataclass
class TfliteTensor:
    """A tensor of a tflite graph: its raw constant data (if any) and quantisation.

    Attributes:
        name: The tensor's name in the file.
        shape: Static shape.
        dtype: numpy dtype name of the stored values ("float32", "uint8", "int8", "int32").
        data: The stored values (raw, not dequantised), or None for activations.
        scale, zero_point: Quantisation parameters (per tensor, or per channel along `quantized_dimension`).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0

    def dequantised(self, hybrid_weight: bool = False) -> np.ndarray:
        """The float value of a constant tensor.

        Args:
            hybrid_weight: The tensor is a weight read directly by a hybrid CONV_2D / DEPTHWISE_CONV_2D /
                FULLY_CONNECTED with a float input. TOCO stored such weights as UINT8 holding int8 values with
                zero point 0, and TFLite's hybrid kernels reinterpret the bytes as int8, so this does too.
        """
        if self.data is None:
            raise ValueError(f"tensor {self.name!r} has no constant data")
        values = self.data
        if self.scale is None or values.dtype in (np.float32, np.int32):
            return values.astype(np.float64)
        if hybrid_weight and values.dtype == np.uint8:
            if np.any(self.zero_point != 0):
                raise ValueError(f"hybrid weight {self.name!r} has zero point {self.zero_point}, expected 0")
            values = values.view(np.int8)
        shape = [1] * values.ndim
        shape[self.quantized_dimension] = -1
        scale = self.scale.reshape(shape) if self.scale.size > 1 else self.scale
        zero = self.zero_point.reshape(shape) if self.zero_point.size > 1 else self.zero_point
        return (values.astype(np.float64) - zero) * scale


@dataclass
class TfliteOp:
    """An operator: its builtin name, input/output tensor indices (-1: absent) and options as plain values."""

    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class TfliteGraph:
    """The first subgraph of a tflite model, read into plain Python (ops in execution order)."""

    tensors: list[TfliteTensor]
    ops: list[TfliteOp]
    inputs: list[int]
    outputs: list[int]

    def producer(self, tensor: int) -> TfliteOp | None:
        return next((op for op in self.ops if tensor in op.outputs), None)


_OPTION_FIELDS = (
    "padding",
    "strideH",
    "strideW",
    "fusedActivationFunction",
    "depthMultiplier",
    "dilationHFactor",
    "dilationWFactor",
    "beta",
    "keepNumDims",
)


def read_tflite(path: Path) -> TfliteGraph:
    """Parse a tflite flatbuffer with ai-edge-litert's own schema (`pip install "microx-hf[convert]"`)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as err:
        raise ImportError('reading tflite files needs ai-edge-litert: pip install "microx-hf[convert]"') from err

    def names(enum) -> dict[int, str]:
        return {v: k for k, v in vars(enum).items() if not k.startswith("_")}

    op_names, act_names, pad_names = (
        names(schema.BuiltinOperator),
        names(schema.ActivationFunctionType),
        names(schema.Padding),
    )
    dtype_names = {
        schema.TensorType.FLOAT32: "float32",
        schema.TensorType.INT32: "int32",
        schema.TensorType.UINT8: "uint8",
        schema.TensorType.INT8: "int8",
    }
    model = flatbuffer_utils.read_model(str(path))
    if len(model.subgraphs) != 1:
        raise ValueError(f"{path}: expected one subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    tensors = []
    for t in graph.tensors:
        if t.type not in dtype_names:
            raise ValueError(f"{path}: tensor {t.name!r} has unsupported type {t.type}")
        dtype = dtype_names[t.type]
        shape = tuple(int(s) for s in t.shape)
        raw = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        data = None
        if raw is not None and len(raw):
            data = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape).copy()
        q = t.quantization
        scale = zero = None
        dim = 0
        if q is not None and q.scale is not None and len(q.scale):
            scale = np.asarray(q.scale, np.float64)
            zero = np.asarray(q.zeroPoint, np.int64)
            dim = int(q.quantizedDimension)
        tensors.append(TfliteTensor(t.name.decode(), shape, dtype, data, scale, zero, dim))
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        options = {}
        for key in _OPTION_FIELDS:
            if op.builtinOptions is not None and hasattr(op.builtinOptions, key):
                options[key] = getattr(op.builtinOptions, key)
        if "fusedActivationFunction" in options:
            options["fusedActivationFunction"] = act_names[options["fusedActivationFunction"]]
        if "padding" in options:
            options["padding"] = pad_names[options["padding"]]
        ops.append(TfliteOp(kind, [int(i) for i in op.inputs], [int(i) for i in op.outputs], options))
    return TfliteGraph(tensors, ops, [int(i) for i in graph.inputs], [int(i) for i in graph.outputs])


# --- a numpy forward of the tflite graph, float64 with dequantised weights ---------------------------------------

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _fused(x: np.ndarray, name: str) -> np.ndarray:
    if name == "NONE":
        return x
    if name == "RELU":
        return np.maximum(x, 0.0)
    if name == "RELU6":
        return np.clip(x, 0.0, 6.0)
    if name == "RELU_N1_TO_1":
        return np.clip(x, -1.0, 1.0)
    raise ValueError(f"fused activation {name!r} is not supported")


def weight_values(graph: TfliteGraph, index: int, values: dict[int, np.ndarray]) -> np.ndarray:
    if index in values:  # produced by a DEQUANTIZE op
        return values[index]
    return graph.tensors[index].dequantised(hybrid_weight=True)


def _conv_windows(x: np.ndarray, kh: int, kw: int, options: dict) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, C, kh, kw) windows for a tflite conv with `options`."""
    if options.get("dilationHFactor", 1) != 1 or options.get("dilationWFactor", 1) != 1:
        raise ValueError("dilated convolutions are not supported")
    sh, sw = options["strideH"], options["strideW"]
    if options["padding"] == "SAME":
        top, bottom = tf_same_pads(x.shape[1], kh, sh)
        left, right = tf_same_pads(x.shape[2], kw, sw)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return windows[:, ::sh, ::sw]


def tflite_forward(graph: TfliteGraph, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every tensor's value for the graph input `x` (N, H, W, C), in float64, with weights dequantised.

    Covers the ops facex's MobileNetV2 uses: PAD, DEQUANTIZE, CONV_2D, DEPTHWISE_CONV_2D, ADD, FULLY_CONNECTED and
    SOFTMAX, with fused activations. Unlike TFLite's hybrid kernels it does not quantise activations.
    """
    values: dict[int, np.ndarray] = {graph.inputs[0]: np.asarray(x, np.float64)}
    for op in graph.ops:
        o = op.options
        if op.kind == "DEQUANTIZE":
            y = graph.tensors[op.inputs[0]].dequantised()
        elif op.kind == "PAD":
            pads = graph.tensors[op.inputs[1]].data
            y = np.pad(values[op.inputs[0]], [tuple(int(v) for v in p) for p in pads])
        elif op.kind == "CONV_2D":
            w = weight_values(graph, op.inputs[1], values)  # (O, kh, kw, I)
            win = _conv_windows(values[op.inputs[0]], w.shape[1], w.shape[2], o)
            y = np.einsum("nhwcij,oijc->nhwo", win, w)
            if op.inputs[2] >= 0:
                y = y + graph.tensors[op.inputs[2]].dequantised()
            y = _fused(y, o["fusedActivationFunction"])
        elif op.kind == "DEPTHWISE_CONV_2D":
            w = weight_values(graph, op.inputs[1], values)  # (1, kh, kw, C*M)
            h = values[op.inputs[0]]
            mult = o.get("depthMultiplier", 1) or w.shape[3] // h.shape[3]
            win = _conv_windows(h, w.shape[1], w.shape[2], o)
            kernel = w[0].reshape(w.shape[1], w.shape[2], h.shape[3], mult)  # output channel c * M + m
            y = np.einsum("nhwcij,ijcm->nhwcm", win, kernel).reshape(*win.shape[:3], -1)  # -> (N, Ho, Wo, C*M)
            if op.inputs[2] >= 0:
                y = y + graph.tensors[op.inputs[2]].dequantised()
            y = _fused(y, o["fusedActivationFunction"])
        elif op.kind == "ADD":
            y = _fused(values[op.inputs[0]] + values[op.inputs[1]], o.get("fusedActivationFunction", "NONE"))
        elif op.kind == "FULLY_CONNECTED":
            w = weight_values(graph, op.inputs[1], values)  # (units, features)
            h = values[op.inputs[0]].reshape(-1, w.shape[1])  # row-major (NHWC) flattening, as TFLite does
            y = h @ w.T
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                y = y + graph.tensors[op.inputs[2]].dequantised()
            y = _fused(y, o["fusedActivationFunction"])
        elif op.kind == "SOFTMAX":
            y = softmax(values[op.inputs[0]] * o.get("beta", 1.0))
        else:
            raise ValueError(f"tflite op {op.kind} is not supported by this converter")
        values[op.outputs[0]] = y
    return values
