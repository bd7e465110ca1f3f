"""The npm teachers (face-api's expression network, Human's emotion network) as torch modules.

- The committed converted weights reproduce the committed outputs of the original runtime (TensorFlow.js 4.22.0,
  CPU backend) on the fixed parity inputs: logits within 1e-4 (measured: 4e-6), every top-1 the same.
- The converters' tfjs reading (uint8 dequantisation, HWIO/depthwise/pointwise/dense layouts, TensorFlow's `same`
  padding) is checked on tiny models the tests write themselves, against a numpy NHWC implementation of the same
  math in tfjs' own layouts. Nothing is fetched.
"""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from microx_hf.frame_encoder_faceapi import FACEAPI_EXPRESSIONS, FaceApiExpressionNet
from training.labels import PAPER7
from training.teachers import faceapi, get_teacher, human, teacher_names
from training.teachers.parity import compare, digest, fixed_inputs, reference_path, to_tensor
from training.teachers.tfjs import decode_weights, quantise_uint8

LOGIT_TOLERANCE = 1e-4


# --- numpy reference of the tfjs math (NHWC, tfjs layouts) --------------------------------------------------------


def _pad_same(x, k, s, value=0.0):
    pads = [(0, 0)]
    for size in x.shape[1:3]:
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)], constant_values=value)


def _windows(x, k, s, padding, value=0.0):
    """Yields (i, j, patch) with patch (N, OH, OW, C) = the input seen by kernel tap (i, j)."""
    if padding == "SAME":
        x = _pad_same(x, k, s, value)
    oh, ow = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    for i in range(k):
        for j in range(k):
            yield i, j, x[:, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s, :]


def np_conv(x, w, b, s=1, padding="SAME"):
    """tf.conv2d with an HWIO filter, plus bias."""
    return sum(p @ w[i, j] for i, j, p in _windows(x, w.shape[0], s, padding)) + b


def np_depthwise(x, w, s=1, padding="SAME"):
    """tf.depthwiseConv2d with a (kH, kW, C, 1) filter."""
    return sum(p * w[i, j, :, 0] for i, j, p in _windows(x, w.shape[0], s, padding))


def np_maxpool_same(x):
    return np.max(np.stack([p for _, _, p in _windows(x, 3, 2, "SAME", -np.inf)]), axis=0)


def relu(x):
    return np.maximum(x, 0)


def np_faceapi(t, x):
    """face-api's FaceFeatureExtractor + classifier on (N, S, S, 3) RGB in [0, 1], tensors `t` by tfjs name."""
    x = (x * 255.0 - np.array([122.782, 117.001, 104.298])) / 255.0

    def sep(x, p, s=1):
        return np_conv(np_depthwise(x, t[f"{p}/depthwise_filter"], s), t[f"{p}/pointwise_filter"], t[f"{p}/bias"])

    for block in range(4):
        p = f"dense{block}"
        if block == 0:
            out1 = relu(np_conv(x, t[f"{p}/conv0/filters"], t[f"{p}/conv0/bias"], 2))
        else:
            out1 = relu(sep(x, f"{p}/conv0", 2))
        out2 = sep(out1, f"{p}/conv1")
        out3 = sep(relu(out1 + out2), f"{p}/conv2")
        out4 = sep(relu(out1 + out2 + out3), f"{p}/conv3")
        x = relu(out1 + out2 + out3 + out4)
    return x.mean(axis=(1, 2)) @ t["fc/weights"] + t["fc/bias"]


def np_human(w, x):
    """Human's emotion graph on (N, S, S, 3) RGB in [0, 1]; `w` maps short graph names to tensors."""

    def fused(x, node, s=1, padding="VALID"):
        return np_conv(x, w[f"{node}_weights"], w[f"{node}_bn_offset"], s, padding)

    x = (x @ np.array([0.2989, 0.5870, 0.1140]))[..., None]
    x = (x - 0.5) * 2.0
    x = relu(fused(x, "conv2d_1/Conv2D", 2))
    x = relu(fused(x, "conv2d_2/Conv2D"))
    residual = fused(x, "conv2d_3/Conv2D", 2, "SAME")
    x = relu(fused(np_depthwise(x, w["dw1"]), "separable_conv2d_1/separable_conv2d"))
    x = fused(np_depthwise(x, w["dw2"]), "separable_conv2d_2/separable_conv2d")
    x = np_maxpool_same(x) + residual
    residual = fused(x, "conv2d_4/Conv2D", 2, "SAME")
    x = relu(fused(np_depthwise(relu(x), w["dw3"]), "separable_conv2d_3/separable_conv2d"))
    x = fused(np_depthwise(x, w["dw4"]), "separable_conv2d_4/separable_conv2d")
    x = np_maxpool_same(x) + residual
    x = np_conv(x, w["cls_w"], w["cls_b"], 1, "SAME")
    return x.mean(axis=(1, 2))


# --- committed weights against the original runtime ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["faceapi", "human"])
def test_committed_weights_reproduce_tfjs_reference(name):
    spec = get_teacher(name)
    reference = np.load(reference_path(name))
    names, images = fixed_inputs(spec.input_size)
    assert list(reference["names"]) == names
    assert str(reference["digest"]) == digest(images), "the parity inputs changed; rerun the parity check"
    module = spec.build()
    module.load_state_dict(load_file(str(spec.extra["committed_weights"])))
    module.eval()
    x = to_tensor(images)
    with torch.no_grad():
        logits = module(x)
    ours = {"logits": logits.numpy(), "probs": logits.softmax(-1).numpy()}
    if name == "faceapi":
        with torch.no_grad():
            ours["features"] = module.forward_features(x).mean(dim=(2, 3)).numpy()
    report = compare(reference, ours)
    assert report["max_abs_logits"] < LOGIT_TOLERANCE, report
    assert report["max_abs_probs"] < LOGIT_TOLERANCE, report
    if name == "faceapi":
        assert report["max_abs_features"] < LOGIT_TOLERANCE, report
    assert report["top1_agree"] == report["n"] == len(names)
    # The astronaut's broad smile is happy for both networks, in tfjs and here.
    assert spec.classes[int(ours["logits"][names.index("astronaut_face")].argmax())] == "happy"
    runtime = json.loads(str(reference["runtime"]))
    assert runtime["tfjs"] == "4.22.0" and runtime["backend"] == "cpu"


def test_spec_load_uses_weights_in_cache_without_fetching(tmp_path):
    for name in ("faceapi", "human"):
        spec = get_teacher(name)
        shutil.copy(spec.extra["committed_weights"], tmp_path / spec.extra["committed_weights"].name)
        module = spec.load(tmp_path)
        assert not module.training
        out = module(torch.rand(2, 3, spec.input_size, spec.input_size))
        assert out.shape == (2, len(spec.classes)) and torch.isfinite(out).all()
    assert {"faceapi", "human"} <= set(teacher_names())


# --- class mapping -----------------------------------------------------------------------------------------------


def test_class_mapping_to_paper7():
    fa, hu = get_teacher("faceapi"), get_teacher("human")
    assert (
        fa.classes == FACEAPI_EXPRESSIONS == ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
    )
    assert hu.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    expected = {
        "faceapi": {
            "neutral": "neutral",
            "happy": "happy",
            "sad": "sad",
            "angry": "anger",
            "fearful": "fear",
            "disgusted": "contempt",
            "surprised": "surprise",
        },
        "human": {
            "angry": "anger",
            "disgust": "contempt",
            "fear": "fear",
            "happy": "happy",
            "sad": "sad",
            "surprise": "surprise",
            "neutral": "neutral",
        },
    }
    for spec in (fa, hu):
        matrix = spec.microx_matrix(list(PAPER7))
        assert matrix.shape == (7, 7)
        # Each source class goes to exactly one MicroX label and every label gets exactly one class.
        assert (matrix.sum(1) == 1).all() and (matrix.sum(0) == 1).all()
        for k, cls in enumerate(spec.classes):
            assert PAPER7[int(matrix[k].argmax())] == expected[spec.name][cls]
        probs = torch.rand(3, 7).softmax(-1).numpy()
        np.testing.assert_allclose((probs @ matrix).sum(1), 1.0, rtol=1e-6)
    # A label set without contempt drops disgust's mass rather than moving it elsewhere.
    partial = fa.microx_matrix(["happy", "anger"])
    assert partial[fa.classes.index("disgusted")].sum() == 0 and partial[fa.classes.index("happy"), 0] == 1


# --- converters on tiny models written here ------------------------------------------------------------------------


def _random(rng, shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def test_faceapi_converter_matches_numpy_reference(tmp_path):
    """A face-api-format manifest + bin (uint8 filters, float32 biases), converted and run at 32x32 (even sides:
    TensorFlow pads stride-2 convolutions (0, 1)) against numpy."""
    rng = np.random.default_rng(0)
    specs, blobs, tensors = [], [], {}

    def add(name, value, quantise):
        if quantise:
            codes, scale, lo = quantise_uint8(value)
            specs.append(
                {
                    "name": name,
                    "shape": list(value.shape),
                    "dtype": "float32",
                    "quantization": {"dtype": "uint8", "scale": scale, "min": lo},
                }
            )
            blobs.append(codes.tobytes())
            value = (codes.astype(np.float64) * scale + lo).astype(np.float32)
        else:
            specs.append({"name": name, "shape": list(value.shape), "dtype": "float32"})
            blobs.append(value.astype("<f4").tobytes())
        tensors[name] = value

    channels = [3, 32, 64, 128, 256]
    for block in range(4):
        cin, cout = channels[block], channels[block + 1]
        for conv in range(4):
            p, c = f"dense{block}/conv{conv}", cin if conv == 0 else cout
            if block == 0 and conv == 0:
                add(f"{p}/filters", _random(rng, (3, 3, 3, cout), 0.3), True)
            else:
                add(f"{p}/depthwise_filter", _random(rng, (3, 3, c, 1), 0.4), True)
                add(f"{p}/pointwise_filter", _random(rng, (1, 1, c, cout), 0.8 / np.sqrt(c)), True)
            add(f"{p}/bias", _random(rng, (cout,), 0.1), False)
    add("fc/weights", _random(rng, (256, 7), 0.1), True)
    add("fc/bias", _random(rng, (7,), 0.1), False)
    # Two shards, split mid-tensor, as tfjs' converter writes them.
    data = b"".join(blobs)
    (tmp_path / "m.bin-1").write_bytes(data[:1000])
    (tmp_path / "m.bin-2").write_bytes(data[1000:])
    manifest = tmp_path / "tiny-weights_manifest.json"
    manifest.write_text(json.dumps([{"paths": ["m.bin-1", "m.bin-2"], "weights": specs}]))

    decoded = decode_weights(json.loads(manifest.read_text()), tmp_path)
    for name, value in tensors.items():
        np.testing.assert_array_equal(decoded[name], value)

    out = faceapi.convert_files(manifest, tmp_path / "faceapi.safetensors")
    module = FaceApiExpressionNet()
    module.load_state_dict(load_file(str(out)))
    x = rng.random((2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        logits = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).double().numpy()  # (N, 3, S, S)
        features = module.forward_features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    t64 = {k: v.astype(np.float64) for k, v in tensors.items()}
    expected = np_faceapi(t64, x.astype(np.float64))
    assert features.shape == (2, 256, 2, 2)
    assert np.abs(expected).max() > 0.1  # the check is not vacuous
    np.testing.assert_allclose(logits, expected, atol=1e-4 * max(1.0, np.abs(expected).max()))


def test_faceapi_runs_at_other_sizes_divisible_by_16():
    module = FaceApiExpressionNet().eval()
    for size in (112, 96, 80, 64):
        with torch.no_grad():
            assert module.forward_features(torch.rand(1, 3, size, size)).shape == (1, 256, size // 16, size // 16)
            assert module(torch.rand(2, 3, size, size)).shape == (2, 7)
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        module(torch.rand(1, 1, 112, 112))


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _human_graph(rng):
    """A graph model in the layout of Human's emotion.json with random weights.

    Returns:
        The model JSON (without `weightsManifest`), graph name -> tensor, and short key -> tensor for `np_human`.
    """
    prefix = "StatefulPartitionedCall/model_1/"
    nodes, consts, short = [], {}, {}

    def const(name, value, key):
        nodes.append({"name": name, "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}})
        consts[name] = short[key] = value
        return name

    def attrs(stride, padding):
        return {
            "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
            "padding": {"s": _b64(padding)},
            "data_format": {"s": _b64("NHWC")},
        }

    def conv(name, data, node, shape, stride, padding, relu_too):
        fan_in = int(np.prod(shape[:3]))
        w = const(f"{prefix}{node}_weights", _random(rng, shape, 1.0 / np.sqrt(fan_in)), f"{node}_weights")
        b = const(f"{prefix}{node}_bn_offset", _random(rng, shape[-1:], 0.1), f"{node}_bn_offset")
        fused = ["BiasAdd", "Relu"] if relu_too else ["BiasAdd"]
        attr = {**attrs(stride, padding), "fused_ops": {"list": {"s": [_b64(f) for f in fused]}}}
        nodes.append({"name": prefix + name, "op": "_FusedConv2D", "input": [data, w, b], "attr": attr})
        return prefix + name

    def sepconv(name, data, node, cin, cout, unknown, key, relu_too):
        w = const(unknown, _random(rng, (3, 3, cin, 1), 0.3), key)
        dw = f"{prefix}{node}/depthwise"
        nodes.append({"name": dw, "op": "DepthwiseConv2dNative", "input": [data, w], "attr": attrs(1, "SAME")})
        return conv(name, dw, node, (1, 1, cin, cout), 1, "VALID", relu_too)

    def op(name, kind, inputs, **attr):
        nodes.append({"name": prefix + name, "op": kind, "input": inputs, "attr": attr})
        return prefix + name

    pool = {"ksize": {"list": {"i": ["1", "3", "3", "1"]}}, **attrs(2, "SAME")}
    dims = [{"size": str(d)} for d in (-1, 64, 64, 1)]
    nodes.append({"name": "input_1", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": dims}}}})
    x = conv("block1_conv1_act/Relu", "input_1", "conv2d_1/Conv2D", (3, 3, 1, 32), 2, "VALID", True)
    x = conv("block1_conv2_act/Relu", x, "conv2d_2/Conv2D", (3, 3, 32, 64), 1, "VALID", True)
    res = conv("batch_normalization_1/FusedBatchNormV3", x, "conv2d_3/Conv2D", (1, 1, 64, 128), 2, "SAME", False)
    x = sepconv("block2_sepconv2_act/Relu", x, "separable_conv2d_1/separable_conv2d", 64, 128, "unknown_9", "dw1", True)
    x = sepconv(
        "block2_sepconv2_bn/FusedBatchNormV3",
        x,
        "separable_conv2d_2/separable_conv2d",
        128,
        128,
        "unknown_15",
        "dw2",
        False,
    )
    x = op("max_pooling2d_1/MaxPool", "MaxPool", [x], **pool)
    add1 = op("add_1/add", "AddV2", [x, res])
    act = op("block3_sepconv1_act/Relu", "Relu", [add1])
    res = conv("batch_normalization_2/FusedBatchNormV3", add1, "conv2d_4/Conv2D", (1, 1, 128, 256), 2, "SAME", False)
    x = sepconv(
        "block3_sepconv2_act/Relu", act, "separable_conv2d_3/separable_conv2d", 128, 256, "unknown_26", "dw3", True
    )
    x = sepconv(
        "block3_sepconv2_bn/FusedBatchNormV3",
        x,
        "separable_conv2d_4/separable_conv2d",
        256,
        256,
        "unknown_32",
        "dw4",
        False,
    )
    x = op("max_pooling2d_2/MaxPool", "MaxPool", [x], **pool)
    add2 = op("add_2/add", "AddV2", [x, res])
    w = const("unknown_43", _random(rng, (3, 3, 256, 7), 0.05), "cls_w")
    b = const("unknown_44", _random(rng, (7,), 0.1), "cls_b")
    x = op(
        "conv2d_5/BiasAdd",
        "_FusedConv2D",
        [add2, w, b],
        **attrs(1, "SAME"),
        fused_ops={"list": {"s": [_b64("BiasAdd")]}},
    )
    x = op("global_average_pooling2d_1/Mean", "Mean", [x, f"{prefix}global_average_pooling2d_1/Mean/reduction_indices"])
    x = op("predictions/Softmax", "Softmax", [x])
    nodes.append({"name": "Identity", "op": "Identity", "input": [x]})
    graph = {"format": "graph-model", "modelTopology": {"node": nodes}}
    return graph, consts, short


def _write_graph(tmp_path, graph, consts, rng):
    names = list(consts)
    rng.shuffle(names)  # the converter must find tensors by the graph's names, not by their order in the file
    specs = [{"name": n, "shape": list(consts[n].shape), "dtype": "float32"} for n in names]
    (tmp_path / "g.bin").write_bytes(b"".join(consts[n].astype("<f4").tobytes() for n in names))
    path = tmp_path / "emotion.json"
    path.write_text(json.dumps({**graph, "weightsManifest": [{"paths": ["g.bin"], "weights": specs}]}))
    return path


def test_human_converter_matches_numpy_reference(tmp_path):
    rng = np.random.default_rng(1)
    graph, consts, short = _human_graph(rng)
    out = human.convert_files(_write_graph(tmp_path, graph, consts, rng), tmp_path / "human.safetensors")
    module = human.HumanEmotionNet()
    module.load_state_dict(load_file(str(out)))
    # 34 px: 34 -> 16 -> 14 -> 7 -> 4, so the max pools see an even side (TensorFlow pads (0, 1)) and an odd one.
    x = rng.random((2, 34, 34, 3)).astype(np.float32)
    with torch.no_grad():
        logits = module.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).double().numpy()  # (N, 3, S, S)
    expected = np_human({k: v.astype(np.float64) for k, v in short.items()}, x.astype(np.float64))
    assert np.abs(expected).max() > 0.05
    np.testing.assert_allclose(logits, expected, atol=1e-4 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize(
    ("node", "field", "value", "message"),
    [
        ("block1_conv1_act/Relu", "strides", {"list": {"i": ["1", "1", "1", "1"]}}, "strides"),
        ("batch_normalization_2/FusedBatchNormV3", "padding", {"s": _b64("VALID")}, "padding"),
        (
            "block2_sepconv2_bn/FusedBatchNormV3",
            "fused_ops",
            {"list": {"s": [_b64("BiasAdd"), _b64("Relu")]}},
            "fuses",
        ),
    ],
)
def test_human_converter_rejects_a_different_graph(tmp_path, node, field, value, message):
    rng = np.random.default_rng(2)
    graph, consts, _ = _human_graph(rng)
    target = next(n for n in graph["modelTopology"]["node"] if n["name"].endswith(node))
    target["attr"][field] = value
    with pytest.raises(ValueError, match=message):
        human.convert_files(_write_graph(tmp_path, graph, consts, rng), tmp_path / "human.safetensors")


def test_decode_weights_dtypes_and_errors(tmp_path):
    values16 = np.array([0.5, -1.25, 3.0], np.float16)
    codes = np.array([0, 1000, 65535], np.uint16)
    ints = np.array([1, 2], np.int32)
    (tmp_path / "w.bin").write_bytes(values16.tobytes() + codes.astype("<u2").tobytes() + ints.tobytes())
    manifest = [
        {
            "paths": ["w.bin"],
            "weights": [
                {"name": "h", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}},
                {
                    "name": "q",
                    "shape": [3],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint16", "scale": 0.01, "min": -2},
                },
                {"name": "i", "shape": [2], "dtype": "int32"},
            ],
        }
    ]
    out = decode_weights(manifest, tmp_path)
    np.testing.assert_array_equal(out["h"], values16.astype(np.float32))
    np.testing.assert_allclose(out["q"], codes * 0.01 - 2, rtol=1e-6)
    assert out["q"].dtype == np.float32 and out["i"].dtype == np.int32
    manifest[0]["weights"].append({"name": "x", "shape": [4], "dtype": "float32"})
    with pytest.raises(ValueError, match="end before"):
        decode_weights(manifest, tmp_path)
