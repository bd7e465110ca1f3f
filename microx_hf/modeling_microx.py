"""MicroX for Hugging Face: `MicroXModel` and `MicroXForVideoClassification`, `PreTrainedModel`s that hold the
plain-torch `MicroXNetwork` (`network_microx.py`) as `self.microx`, as transformers' VideoMAE classes hold
`self.videomae`. Both classes are the same network with the same checkpoint (keys `microx.*`).

Every folder `save_pretrained` writes carries the model code and transformers' `auto_map`, so that
`AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True)` works where microx_hf is not
imported or not installed, and names its `pipeline()` task (`custom_pipelines`).

This file travels to the Hub as custom code: it imports only torch and public transformers API.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_microx import MicroXConfig
from .network_microx import MicroXNetwork, RegionLinear

# What config.json says so that the Auto classes find the code saved beside it (transformers' format).
AUTO_MAP = {
    "AutoConfig": "configuration_microx.MicroXConfig",
    "AutoModel": "modeling_microx.MicroXModel",
    "AutoModelForVideoClassification": "modeling_microx.MicroXForVideoClassification",
}
# The checkpoint's own `pipeline()` task (the format `Pipeline.save_pretrained` writes): `pipeline()` prefers it to the
# built-in task of the same name.
CUSTOM_PIPELINES = {
    "video-classification": {
        "impl": "pipeline_microx.MicroXVideoClassificationPipeline",
        "pt": ["AutoModelForVideoClassification"],
        "type": "video",
    }
}
# The files a saved folder carries: the model's (torch and transformers only), and the pipeline's and the image
# processor's, which import the microx_hf package when they are used (face detection needs OpenCV and a landmark
# backend, which cannot travel).
CODE_FILES = (
    "configuration_microx.py",
    "modeling_microx.py",
    "network_microx.py",
    "frame_encoders.py",
    "frame_encoder_fer.py",
    "frame_encoder_faceapi.py",
    "frame_encoder_hub.py",
    "tf_padding.py",
    "pipeline_microx.py",
    "image_processing_microx.py",
)


@dataclass
class MicroXOutput(ModelOutput):
    """Output of a MicroX model.

    Args:
        loss: Cross-entropy of `logits` against `labels` (plus `config.region_loss_weight` times the mean
            cross-entropy of the visible regions' own logits), when labels are given.
        logits: Fused class scores, (B, L).
        region_logits: Class scores of each region's branch, (B, R, L).
        region_weights: How much each region contributed to the fused decision, (B, R) (with `residual` fusion: to
            the regions' correction of the prior); sums to 1 over the regions that were visible in the window and is
            0 for a region masked out for the whole window.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    region_logits: torch.FloatTensor | None = None
    region_weights: torch.FloatTensor | None = None


def save_code(folder: str | Path) -> None:
    """Copy the code files beside this one into `folder` (those that exist: a copy loaded from the Hub has the ones
    it imported)."""
    here = Path(__file__).resolve().parent
    for name in CODE_FILES:
        source, target = here / name, Path(folder) / name
        if source.is_file() and source != target.resolve():
            shutil.copyfile(source, target)


class MicroXPreTrainedModel(PreTrainedModel):
    config_class = MicroXConfig
    config: MicroXConfig
    base_model_prefix = ""
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the code files, `auto_map` and `custom_pipelines`."""
        self.config.auto_map = dict(AUTO_MAP)
        self.config.custom_pipelines = dict(CUSTOM_PIPELINES)
        super().save_pretrained(save_directory, *args, **kwargs)
        save_code(save_directory)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, RegionLinear)):
            # LeCun-normal on the fan-in: a fixed small std (0.02) starved the narrow per-region layers of signal
            # and a ramp-direction toy task never left chance.
            fan_in = module.weight.shape[-2] if isinstance(module, RegionLinear) else module.weight.shape[1]
            init.normal_(module.weight, mean=0.0, std=fan_in**-0.5)
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if module.running_mean is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, MicroXNetwork):
            if module.prior_weight is not None:
                init.ones_(module.prior_weight)
            if module.label_map is not None:
                # Not saved (a non-persistent buffer), and from_pretrained builds the model on the meta device.
                init.copy_(module.label_map, module.label_map_matrix())
            if module.prior_bias is not None:
                init.copy_(module.prior_bias, module.prior_bias_vector())  # from the config, likewise
            if module.fusion_gate is not None:
                init.constant_(module.fusion_gate, module.config.fusion_gate_init)


class MicroXModel(MicroXPreTrainedModel):
    """MicroX: per-region ConvLSTM branches and their fusion, returning emotion logits.

    `MicroXModel.from_pretrained(...)` gives the whole classifier (not a headless trunk), so that a user's first
    line of code predicts emotions. `MicroXForVideoClassification` is the same network under the name the Auto
    classes and the Trainer expect; the two load each other's checkpoints.
    """

    def __init__(self, config: MicroXConfig):
        super().__init__(config)
        self.microx = MicroXNetwork(config)
        self.post_init()
        with torch.no_grad():
            if self.microx.fusion_gate is not None:
                # `residual` fusion: every region's logits start at zero, so an untrained model is exactly its prior.
                self.microx.region_classifier.weight.zero_()
            elif self.microx.prior_weight is not None:
                # The encoder region starts as its prior: its learned correction starts at zero.
                self.microx.region_classifier.weight[self.microx.encoder_index].zero_()

    def encode_frames(
        self,
        pixel_values: torch.Tensor,
        region_mask: torch.Tensor | None = None,
        encoder_pixel_values: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The per-frame part of the network (see `MicroXNetwork.encode_frames`): (B, R, N, C, H, W) crops of N
        frames -> per-frame features, each (B, N, ...)."""
        return self.microx.encode_frames(pixel_values, region_mask, encoder_pixel_values)

    def classify_windows(
        self, features: dict[str, torch.Tensor], region_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> MicroXOutput:
        """The per-window part (see `MicroXNetwork.classify_windows`): features (B, T, ...) and region_mask
        (B, R, T) of B windows -> their output."""
        return MicroXOutput(**self.microx.classify_windows(features, region_mask, labels))

    def forward(
        self,
        pixel_values: torch.Tensor,
        region_mask: torch.Tensor | None = None,
        encoder_pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> MicroXOutput | tuple:
        r"""Classifies windows of region crops.

        Args:
            pixel_values: (B, R, T, C, H, W) normalised crops, regions in `config.regions` order.
            region_mask: (B, R, T) bool, False where a region was not found in a frame (no face, occlusion). Masked
                frames never influence the output; a region masked for the whole window contributes nothing.
                Defaults to all True.
            encoder_pixel_values: (B, T, C, E, E) the frame encoder's own crops of its region, normalised like
                `pixel_values`; None: resized from `pixel_values`.
            labels: (B,) class indices, for the loss.
            return_dict: False for a tuple (loss, logits, region_logits, region_weights), without the Nones.
        """
        out = MicroXOutput(**self.microx(pixel_values, region_mask, encoder_pixel_values, labels))
        if return_dict is False:
            return out.to_tuple()
        return out


class MicroXForVideoClassification(MicroXModel):
    """MicroX registered for `AutoModelForVideoClassification`: the same network and checkpoint as `MicroXModel`."""


# Custom code in transformers' terms: saved folders carry these files and name the classes in `auto_map` (this does
# not register anything with the Auto classes; `microx_hf.register` does).
MicroXModel.register_for_auto_class("AutoModel")
MicroXForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")


__all__ = ["MicroXModel", "MicroXForVideoClassification", "MicroXPreTrainedModel", "MicroXOutput"]
