"""MicroX: emotion from face videos with one ConvLSTM branch per facial region.

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

This file travels to the Hub as custom code: it imports only torch and public transformers API.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_microx import FRAME_ENCODERS, MicroXConfig


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


def _tf_same_pad(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Zero padding of TensorFlow's `same` mode: the odd pixel goes after (bottom/right), unlike torch's padding=k//2.

    With stride 2 on an even side, TensorFlow pads (0, 1) where a symmetric padding of 1 would shift every output by
    half a pixel; getting this wrong changes face-api's logits noticeably.
    """
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        out = -(-size // stride)  # ceil(size / stride)
        total = max((out - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class FaceApiSeparableConv(nn.Module):
    """tfjs `separableConv2d(x, depthwise 3x3, pointwise 1x1, stride, 'same')` plus a bias, as face-api uses it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(_tf_same_pad(x, 3, self.stride)))


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
        for block in (self.dense0, self.dense1, self.dense2, self.dense3):
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expression logits (N, 7) of `x` (N, 3, S, S) RGB in [0, 1]; softmax gives face-api's probabilities."""
        pooled = self.forward_features(x).mean(dim=(2, 3))  # (N, 256, S/16, S/16) -> (N, 256)
        return self.fc(pooled)


class MicroXStem(nn.Module):
    """Stride-2 3x3 convolutions applied to every frame of every region, one group of filters per region."""

    def __init__(self, num_regions: int, config: MicroXConfig):
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


class MicroXPreTrainedModel(PreTrainedModel):
    config_class = MicroXConfig
    config: MicroXConfig
    base_model_prefix = ""
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = False

    def save_pretrained(self, save_directory, *args, **kwargs):
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
        elif isinstance(module, MicroXModel):
            if module.prior_weight is not None:
                init.ones_(module.prior_weight)
            if module.label_map is not None:
                init.copy_(module.label_map, module._label_map_matrix())


class MicroXModel(MicroXPreTrainedModel):
    """MicroX: per-region ConvLSTM branches and their fusion, returning emotion logits.

    `MicroXModel.from_pretrained(...)` gives the whole classifier (not a headless trunk), so that a user's first
    line of code predicts emotions. `MicroXForVideoClassification` is the same network under the name the Auto
    classes and the Trainer expect; the two load each other's checkpoints.
    """

    def __init__(self, config: MicroXConfig):
        super().__init__(config)
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
        self.post_init()
        if self.prior_weight is not None:
            # The encoder region starts as its prior: its learned correction starts at zero.
            with torch.no_grad():
                self.region_classifier.weight[self.encoder_index].zero_()

    @staticmethod
    def _grid(config: MicroXConfig) -> int:
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
            features = self.frame_encoder.forward_features(face)  # (B*N, E, He, We)
            gates = self.encoder_convlstm[0].input_gates(features)  # (B*N, 4F, He, We)
            encoder_gates = gates.view(b, n, *gates.shape[1:])  # (B, N, 4F, He, We)
            if self.label_map is not None:
                logits = self.frame_encoder.fc(features.mean(dim=(2, 3)))  # (B*N, K)
                prior = (logits.float().softmax(dim=-1) @ self.label_map).view(b, n, -1)  # (B, N, L)
        return MicroXFrameFeatures(stem_gates, encoder_gates, prior, region_mask)

    def classify_windows(self, features: MicroXFrameFeatures, labels: torch.Tensor | None = None) -> MicroXOutput:
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
        return MicroXOutput(loss=loss, logits=logits, region_logits=region_logits, region_weights=region_weights)

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
            logits = torch.einsum("br,brl->bl", weights, region_logits)
        # With no visible region at all there is nothing to say: uniform logits, no contribution.
        logits = torch.where(any_visible, logits, torch.zeros_like(logits))
        return logits, weights


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
