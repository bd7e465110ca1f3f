"""face-api's face expression network as a MicroX frame encoder (npm `@vladmandic/face-api` 1.7.15, MIT).

A plain-torch copy of face-api's FaceFeatureExtractor (four densely connected blocks of depthwise-separable
convolutions, `src/faceFeatureExtractor/`) and its 256 -> 7 classifier (`src/faceExpressionNet/`). The converter
(`training/teachers/faceapi.py`) maps the package's tfjs weights onto it; a parity check compares it with tfjs.

This file travels to the Hub with `modeling_microx.py`: it imports only torch.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .tf_padding import pad_same

# face-api's classes, in its output order, and MicroX's label for each (the paper merges disgust into contempt).
FACEAPI_EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
FACEAPI_TO_LABELS = {
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "anger",
    "fearful": "fear",
    "disgusted": "contempt",
    "surprised": "surprise",
}
# face-api subtracts this mean (RGB, 0-255 scale) and then divides by 255 (FaceFeatureExtractor.forwardInput).
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)


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
            x = pad_same(x, 3, self.stride)
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
        out1 = F.relu(self.conv0(pad_same(x, 3, 2)) if self.first else self.conv0(x))
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

    classes = FACEAPI_EXPRESSIONS
    to_labels = FACEAPI_TO_LABELS
    channels = 256  # of the feature map `forward_features` returns
    native_size = 112  # the side face-api was trained on; smaller inputs lost agreement with it quickly

    @staticmethod
    def feature_size(size: int) -> int:
        """Side of the feature map for an input of side `size`: four stride-2 blocks with TensorFlow `same` padding
        halve it, rounding up, four times."""
        return -(-size // 16)

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

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) RGB in [0, 1] -> (`forward_features`' map, `head`'s logits): what a MicroX branch reads."""
        features = self.forward_features(x)
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expression logits (N, 7) of `x` (N, 3, S, S) RGB in [0, 1]; softmax gives face-api's probabilities."""
        return self.head(self.forward_features(x))
