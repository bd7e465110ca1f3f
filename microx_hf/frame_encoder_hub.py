"""Any Hugging Face image-classification checkpoint as a MicroX frame encoder: `frame_encoder="hf:ORG/NAME"`.

Many face-expression classifiers on the Hub (ViT, ConvNeXt, Swin, ... fine-tuned on FER2013 or AffectNet) can sit
under the face branch the way the packaged networks do (`frame_encoder_fer.py`, `frame_encoder_faceapi.py`):

- **Online, once.** When a `MicroXConfig` names one and has no `frame_encoder_config` yet, `hub_encoder_config`
  reads the checkpoint's config (`AutoConfig`) and its image processor (`AutoImageProcessor`: input side, rescale,
  normalisation) from the Hub and stores them in the MicroX config. Training then loads the weights
  (`HubFrameEncoder.load_pretrained`, through `AutoModelForImageClassification`).
- **Offline, ever after.** The architecture is rebuilt from the stored config (`from_config`, no download) and the
  weights are part of the MicroX checkpoint (`model.safetensors`), so `from_pretrained` of a MicroX folder needs no
  second download, with or without `trust_remote_code`.
- **Labels by name.** The checkpoint's `id2label` names ("angry", "Disgust", "happiness", ...) are mapped onto
  MicroX's seven by `EXPRESSION_NAMES`, case-insensitively (disgust merges into contempt, as in the paper); a name
  that is not an expression MicroX knows is refused, named, unless `frame_encoder_label_map` maps it.
- **What feeds the branch.** The feature map is the base model's last hidden state: a convolutional stage's map as
  it is (ConvNeXt, ResNet: (N, C, h, w)), or a transformer's patch tokens put back on their grid (ViT, DeiT, Swin:
  the leading class/distillation tokens dropped). The logits are the checkpoint's own classifier on the base
  model's pooled output (or, where there is none, the first token, as ViT's classifier reads it); loading the
  weights checks that they equal the checkpoint's own `logits`, and refuses an architecture whose head differs.

This file travels to the Hub with `modeling_microx.py`: it imports only torch and public transformers API (inside
the functions that need it, so that importing the config stays cheap).
"""

import json
import math
from functools import lru_cache

import torch
from torch import nn

HUB_PREFIX = "hf:"

# An image classifier's label name (lower case) -> MicroX's label. Disgust merges into contempt, as in the paper.
EXPRESSION_NAMES = {
    "neutral": "neutral",
    "anger": "anger",
    "angry": "anger",
    "contempt": "contempt",
    "disgust": "contempt",
    "disgusted": "contempt",
    "surprise": "surprise",
    "surprised": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
}


def is_hub_encoder(name: str | None) -> bool:
    """Whether a `frame_encoder` value names a Hub image-classification checkpoint (`hf:ORG/NAME[@REVISION]`)."""
    return isinstance(name, str) and name.startswith(HUB_PREFIX)


def hub_reference(name: str) -> tuple[str, str | None]:
    """`hf:ORG/NAME@REVISION` -> ("ORG/NAME", "REVISION"); the revision is None when not given. A local folder
    (`hf:/path/to/checkpoint`) works as well."""
    if not is_hub_encoder(name) or not name[len(HUB_PREFIX) :].strip():
        raise ValueError(f"frame_encoder={name!r} is not valid: write a Hub checkpoint as 'hf:ORG/NAME[@REVISION]'")
    repo, _, revision = name[len(HUB_PREFIX) :].partition("@")
    return repo, (revision or None)


def expression_label(name: str) -> str | None:
    """MicroX's label for an image classifier's label name, or None where the name is no expression MicroX knows."""
    return EXPRESSION_NAMES.get(str(name).strip().lower())


def hub_encoder_config(name: str) -> dict:
    """Read (from the Hub, or its cache) what MicroX needs to build the encoder `hf:ORG/NAME` without the Hub again.

    Returns:
        {"config": the checkpoint's config as a dict (`to_dict()`, with `model_type`), "size": the input side its
        image processor gives, "scale": what an RGB value in [0, 1] is multiplied by before normalising (255 times the
        processor's `rescale_factor`), "image_mean", "image_std": its normalisation (0 and 1 where it has none)}.
    """
    from transformers import AutoConfig, AutoImageProcessor

    repo, revision = hub_reference(name)
    try:
        config = AutoConfig.from_pretrained(repo, revision=revision)
        processor = AutoImageProcessor.from_pretrained(repo, revision=revision)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"frame_encoder={name!r}: could not read the checkpoint's config and image processor (config.json, "
            f"preprocessor_config.json) from the Hub or its cache ({err}). Building a MicroX model on a Hub encoder "
            "needs the network once (or the checkpoint in the Hugging Face cache); a saved MicroX checkpoint does not."
        ) from err
    side = _processor_side(processor) or getattr(config, "image_size", None)
    if not isinstance(side, int):
        raise ValueError(
            f"frame_encoder={name!r}: its image processor states no input size (size/crop_size) and its config no "
            "image_size; give MicroXConfig(frame_encoder_config=...) yourself (see frame_encoder_hub.hub_encoder_config)"
        )
    channels = int(getattr(config, "num_channels", 3))
    rescale = float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0
    normalise = getattr(processor, "do_normalize", True)
    mean = list(processor.image_mean) if normalise else [0.0] * channels
    std = list(processor.image_std) if normalise else [1.0] * channels
    if isinstance(mean, float):
        mean, std = [mean] * channels, [std] * channels
    values = {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}  # not where it was read from
    return {
        "config": values,
        "size": int(side),
        "scale": 255.0 * rescale,
        "image_mean": [float(v) for v in mean],
        "image_std": [float(v) for v in std],
    }


def _processor_side(processor) -> int | None:
    """The side of the images the processor hands its model: its center crop if it crops, else its resize."""

    def side(size) -> int | None:
        if size is None:
            return None
        if isinstance(size, int):
            return size
        get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
        return get("height") or get("shortest_edge")

    if getattr(processor, "do_center_crop", False):
        cropped = side(getattr(processor, "crop_size", None))
        if cropped:
            return int(cropped)
    resized = side(getattr(processor, "size", None))
    return int(resized) if resized else None


def feature_grid(hidden: torch.Tensor) -> torch.Tensor:
    """A base model's last hidden state as a feature map (N, C, h, w): a convolutional map as it is; a token sequence
    (N, L, D) without its leading non-patch tokens (class, distillation, register tokens: L - h*w of them, h*w the
    largest square in L), the patch tokens put back on their square grid."""
    if hidden.dim() == 4:
        return hidden  # (N, C, h, w)
    n, length, d = hidden.shape
    side = math.isqrt(length)
    patches = hidden[:, length - side * side :]  # (N, h*w, D)
    return patches.transpose(1, 2).reshape(n, d, side, side)  # (N, D, h, w)


def _build_classifier(encoder_config: dict) -> nn.Module:
    """The checkpoint's architecture, randomly initialised, from its stored config (no download)."""
    from transformers import AutoConfig, AutoModelForImageClassification

    values = dict(encoder_config)
    model_type = values.pop("model_type")
    # float32 whatever dtype the checkpoint was saved in (a float16 checkpoint's config says so): MicroX computes in it.
    return AutoModelForImageClassification.from_config(AutoConfig.for_model(model_type, **values), dtype=torch.float32)


class HubFrameEncoder(nn.Module):
    """A Hub image-classification checkpoint as a MicroX frame encoder: (N, 3, S, S) RGB in [0, 1] -> its feature
    map and its logits, normalised the way its image processor does.

    Args:
        hub_config: `hub_encoder_config`'s dict (kept in `MicroXConfig.frame_encoder_config`).
    """

    def __init__(self, hub_config: dict):
        super().__init__()
        self.classifier_model = _build_classifier(hub_config["config"])
        self.scale = float(hub_config["scale"])
        self.image_mean = tuple(float(v) for v in hub_config["image_mean"])
        self.image_std = tuple(float(v) for v in hub_config["image_std"])
        self.size = int(hub_config["size"])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> the checkpoint's `pixel_values` (its processor's rescale and normalisation)."""
        mean = x.new_tensor(self.image_mean).view(1, -1, 1, 1)
        std = x.new_tensor(self.image_std).view(1, -1, 1, 1)
        return (x * self.scale - mean) / std

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) RGB in [0, 1] -> (the feature map (N, C, h, w), the checkpoint's logits (N, K))."""
        out = self.classifier_model.base_model(pixel_values=self.normalise(x))
        hidden = out.last_hidden_state
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = hidden[:, 0]  # the class token, as ViT's and DeiT's classifiers read it
        return feature_grid(hidden), self.classifier_model.classifier(pooled)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[1]

    def load_pretrained(self, name: str) -> None:
        """Load the checkpoint's weights from the Hub (`AutoModelForImageClassification`); refuses an architecture
        whose own logits differ from `encode`'s (a head other than `classifier` on the pooled output or first token).
        """
        from transformers import AutoModelForImageClassification

        repo, revision = hub_reference(name)
        # float32 whatever the checkpoint was saved in: the MicroX model computes in it (and the check below too).
        pretrained = AutoModelForImageClassification.from_pretrained(repo, revision=revision, dtype=torch.float32)
        pretrained.eval()
        self.classifier_model.load_state_dict(pretrained.state_dict())
        training = self.training
        self.eval()
        x = torch.rand(2, 3, self.size, self.size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ours = self.encode(x)[1]
            theirs = pretrained(pixel_values=self.normalise(x)).logits
        self.train(training)
        if not torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4):
            raise ValueError(
                f"frame_encoder={name!r}: MicroX reads a {type(pretrained).__name__}'s logits as `classifier` on the "
                "base model's pooled output (or first token), and that differs from the checkpoint's own logits by "
                f"{(ours - theirs).abs().max().item():.3g}: this architecture is not supported as a frame encoder"
            )


@lru_cache(maxsize=16)
def _probe(config_json: str, size: int) -> tuple[int, int, int]:
    """(channels, side of the feature map, number of classes) of an encoder at input side `size`, found by running
    it on the meta device (no memory, no weights)."""
    hub_config = json.loads(config_json)
    with torch.device("meta"):
        encoder = HubFrameEncoder(hub_config)
        maps, logits = encoder.encode(torch.empty(1, 3, size, size))
    return int(maps.shape[1]), int(maps.shape[-1]), int(logits.shape[-1])


def probe(hub_config: dict, size: int) -> tuple[int, int, int]:
    """(channels, feature-map side, classes) of the encoder `hub_config` describes, at input side `size`; a
    `ValueError` where the architecture cannot take that side."""
    try:
        return _probe(json.dumps(hub_config, sort_keys=True), int(size))
    except (RuntimeError, ValueError, AssertionError) as err:
        raise ValueError(
            f"the Hub encoder ({hub_config['config'].get('model_type')}) cannot take {size}x{size} inputs ({err}); its "
            f"image processor gives {hub_config['size']}: use that frame_encoder_size (prepare_dataset "
            f"--encoder_crop_size {hub_config['size']})"
        ) from err


def hub_classes(hub_config: dict) -> tuple[str, ...]:
    """The checkpoint's label names, in output order (its `id2label`)."""
    id2label = hub_config["config"].get("id2label") or {}
    return tuple(str(id2label[k]) for k in sorted(id2label, key=int))
