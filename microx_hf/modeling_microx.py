"""MicroX for Hugging Face: `MicroXModel` and `MicroXForVideoClassification` (`PreTrainedModel`s) of the MicroX
network, whose layers and computation live in `network_microx.py` (plain torch, also loadable without transformers
for a fast start). Both classes are the same network with the same checkpoint format.

This file travels to the Hub as custom code with `configuration_microx.py` and `network_microx.py`: it imports only
torch and public transformers API.
"""

import importlib
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_microx import MicroXConfig
from .network_microx import (
    FACEAPI_EXPRESSIONS,
    FaceApiExpressionNet,
    MicroXFrameFeatures,
    MicroXNetwork,
    RegionLinear,
)


@dataclass
class MicroXOutput(ModelOutput):
    """Output of a MicroX model.

    Args:
        loss: Cross-entropy of `logits` against `labels` (plus `config.region_loss_weight` times the mean
            cross-entropy of the visible regions' own logits), when labels are given.
        logits: Fused class scores, (B, L).
        region_logits: Class scores of each region's branch, (B, R, L).
        region_weights: How much each region contributed to the fused decision, (B, R); sums to 1 over the regions
            that were visible in the window and is 0 for a region masked out for the whole window.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    region_logits: torch.FloatTensor | None = None
    region_weights: torch.FloatTensor | None = None


class MicroXPreTrainedModel(PreTrainedModel):
    config_class = MicroXConfig
    config: MicroXConfig
    base_model_prefix = ""
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        if self._auto_class is None and __name__ == "microx_hf.modeling_microx":
            # Imported directly, not through the package: register now so the checkpoint carries its code. A
            # dynamic import, so that the Hub's loader of this file does not look for the package's registry.
            importlib.import_module("microx_hf").register()
        # `register_for_auto_class` records one Auto class; `MicroXModel` is the same network, so the saved
        # custom code serves `AutoModel` too.
        if self._auto_class is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}),
                                    "AutoModel": "modeling_microx.MicroXModel"}  # fmt: skip
            # The checkpoint's own `pipeline()` task; a relative import, so that the pipeline's file travels too.
            from .pipeline_microx import CUSTOM_PIPELINES

            self.config.custom_pipelines = {**(getattr(self.config, "custom_pipelines", None) or {}),
                                            **CUSTOM_PIPELINES}  # fmt: skip
        return super().save_pretrained(save_directory, *args, **kwargs)

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
                init.copy_(module.label_map, module._label_map_matrix())


class MicroXModel(MicroXNetwork, MicroXPreTrainedModel):
    """MicroX: per-region ConvLSTM branches and their fusion, returning emotion logits.

    `MicroXModel.from_pretrained(...)` gives the whole classifier (not a headless trunk), so that a user's first
    line of code predicts emotions. `MicroXForVideoClassification` is the same network under the name the Auto
    classes and the Trainer expect; the two load each other's checkpoints.
    """

    def __init__(self, config: MicroXConfig):
        super().__init__(config)
        self._build_network(config)
        self.post_init()
        if self.prior_weight is not None:
            # The encoder region starts as its prior: its learned correction starts at zero.
            with torch.no_grad():
                self.region_classifier.weight[self.encoder_index].zero_()

    def _output(self, **values) -> MicroXOutput:
        return MicroXOutput(**values)


class MicroXForVideoClassification(MicroXModel):
    """MicroX registered for `AutoModelForVideoClassification`: the same network and checkpoint as `MicroXModel`."""


__all__ = [
    "MicroXModel",
    "MicroXForVideoClassification",
    "MicroXPreTrainedModel",
    "MicroXOutput",
    "MicroXFrameFeatures",
    "FaceApiExpressionNet",
    "FACEAPI_EXPRESSIONS",
]
