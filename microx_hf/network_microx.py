"""The MicroX network in plain torch: region branches, ConvLSTM, the pretrained frame encoder, the fusion.

Implements the architecture of the MicroX paper (SUTD, 2020): every region crop sequence (full face, eyes, nose,
mouth) goes through its own ConvLSTM2D -> Dropout -> dense head, giving per-region class scores that a fusion
layer combines. The `paper` preset reproduces it exactly; the default is a faster variant (strided stem, pooling,
mask-aware attention fusion).

All region branches run at once: their convolutions are grouped convolutions with one group per region and their
dense layers are batched per-region matrices, so each region keeps its own weights without a Python loop.

With `config.frame_encoder` set, the face branch starts from a face-expression network pretrained on real faces
(`frame_encoders.py`: its feature map feeds the branch's ConvLSTM, and its own per-frame prediction is a prior), the
way strong video-emotion models start from a pretrained image encoder and add temporal modelling. The default
`residual` fusion makes the prior the answer and the region branches a bounded, gated correction to it:

    logits = log(prior) + prior_bias + g * c * tanh(delta / c),   g = sigmoid(fusion_gate)

where the prior is the encoder's label probabilities averaged over the window's frames, `prior_bias` a calibration
fitted without labels on real video, delta the attention-weighted region logits (centred) and c
`config.correction_bound`. The region classifiers start at zero and the gate nearly closed, so an untrained model
answers with its prior; training opens the gate only as far as the branches earn it, and a release whose branches
do worse than the prior on real faces closes it (`fusion_gate` = -inf: g = 0, the model is its prior).

Work that depends on one frame only (the stem, the ConvLSTM's input convolution, the frame encoder) is split from
the recurrence: `encode_frames` runs it once per frame and `classify_windows` runs the recurrence over any windows
of those frames, so overlapping windows of a video share it. `forward` does both for a batch of windows.

`MicroXNetwork` reads its sizes from a `MicroXConfig` (any object with its fields and derived sizes will do);
`modeling_microx.py` holds it as `self.microx` in the Hugging Face classes. This file travels to the Hub with
`modeling_microx.py`: it imports only torch.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .frame_encoders import frame_encoder_spec

# The keys of the per-frame features `encode_frames` returns (each with the frame axis at dim 1); a key is absent
# where the model has no such part.
FRAME_FEATURES = ("stem_gates", "encoder_gates", "prior")


class RegionLinear(nn.Module):
    """A separate dense layer per region: (B, R, I) -> (B, R, O)."""

    def __init__(self, num_regions: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_regions, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_regions, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bri,rio->bro", x, self.weight) + self.bias


class MicroXStem(nn.Module):
    """Stride-2 3x3 convolutions applied to every frame of every region, one group of filters per region."""

    def __init__(self, num_regions: int, num_channels: int, stem_channels: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = num_channels
        for out_channels in stem_channels:
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


class MicroXNetwork(nn.Module):
    """The MicroX network: per-region ConvLSTM branches and their fusion, from region crops to emotion logits.

    Args:
        config: A `MicroXConfig`; the network reads its fields and derived sizes and keeps it as `self.config`.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        num_regions, num_labels = len(config.regions), config.num_labels
        self.encoder_index = config.encoder_region_index
        self.stem_index = [i for i in range(num_regions) if i != self.encoder_index]
        num_stem = len(self.stem_index)
        self.stem = MicroXStem(num_stem, config.num_channels, config.stem_channels) if num_stem else None
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
        self.fusion_gate = None
        self.label_map: torch.Tensor | None = None
        self.prior_bias: torch.Tensor | None = None
        if config.frame_encoder is not None:
            spec = frame_encoder_spec(config.frame_encoder, config.frame_encoder_config)
            self.frame_encoder = spec.build()
            in_channels = spec.channels
            for _ in range(config.num_convlstm_layers):
                self.encoder_convlstm.append(
                    MicroXConvLSTM(1, in_channels, config.hidden_size, config.kernel_size, "same")
                )
                in_channels = config.hidden_size
            if config.frame_encoder_prior and config.fusion != "residual":
                self.prior_weight = nn.Parameter(torch.ones(()))
            if config.frame_encoder_prior:
                # (K, L): sums the encoder's class probabilities into the model's labels; a buffer, not learned, and
                # not saved (`label_map_matrix` rebuilds it from the config).
                del self.label_map
                self.register_buffer("label_map", self.label_map_matrix(), persistent=False)
            if config.freeze_frame_encoder:
                self.frame_encoder.requires_grad_(False)
        self.dropout = nn.Dropout(config.dropout)
        self.grid = config.pool_grid
        size = config.feature_size if config.head == "flatten" else self.grid
        head_in = config.hidden_size * size * size
        self.region_dense = RegionLinear(num_regions, head_in, config.head_hidden_size)
        self.head_dropout = nn.Dropout(config.head_dropout)
        self.region_classifier = RegionLinear(num_regions, config.head_hidden_size, num_labels)
        if config.fusion == "paper":
            self.fusion = nn.Linear(num_regions * num_labels, num_labels)
        elif config.fusion in ("attention", "residual"):
            self.region_score = RegionLinear(num_regions, config.head_hidden_size, 1)
        if config.fusion == "residual":
            # The gate's logit on the branches' correction (learned); CLOSED_GATE (-inf) switches the correction off.
            self.fusion_gate = nn.Parameter(torch.full((), float(config.fusion_gate_init)))
            # (L,) calibration of the prior, from the config (`prior_bias`): not learned and not saved in the weights.
            del self.prior_bias
            self.register_buffer("prior_bias", self.prior_bias_vector(), persistent=False)

    def label_map_matrix(self) -> torch.Tensor:
        """(K, L) 0/1 matrix: the encoder's class k counts for label l (`config.frame_encoder_label_map`)."""
        cfg = self.config
        classes = frame_encoder_spec(cfg.frame_encoder, cfg.frame_encoder_config).classes
        matrix = torch.zeros(len(classes), cfg.num_labels)
        for k, name in enumerate(classes):
            target = (cfg.frame_encoder_label_map or {}).get(name)
            if target is not None:
                matrix[k, cfg.label2id[target]] = 1.0
        return matrix

    def prior_bias_vector(self) -> torch.Tensor:
        """(L,) the prior's calibration (`config.prior_bias`, zeros when None)."""
        bias = self.config.prior_bias
        return torch.tensor(bias if bias is not None else [0.0] * self.config.num_labels, dtype=torch.float32)

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
        shape = tuple(pixel_values.shape)
        # Per-frame work takes any number of frames N; a window has exactly T.
        shape_ok = pixel_values.dim() == 6 and (
            shape[1:] == expected or (frames and shape[1:2] + shape[3:] == expected[:1] + expected[2:])
        )
        if not shape_ok:
            dims = (
                ", ".join(map(str, expected))
                if not frames
                else f"{expected[0]}, N, {', '.join(map(str, expected[2:]))}"
            )
            raise ValueError(
                f"pixel_values must have shape {layout} = (B, {dims}) for regions {cfg.regions}, got "
                f"{shape}. Prepare inputs with MicroXFeatureExtractor, whose settings must match "
                "the model's config (regions, num_frames, crop size)."
            )
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"pixel_values must be a float tensor (normalised crops), got {pixel_values.dtype}; "
                "use MicroXFeatureExtractor.normalize on uint8 crops."
            )
        if region_mask is not None and tuple(region_mask.shape) != shape[:3]:
            raise ValueError(
                f"region_mask must have shape (B, R, {'N' if frames else 'T'}) = {shape[:3]}, "
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
    ) -> dict[str, torch.Tensor]:
        """The per-frame part of the network: the stem and the first ConvLSTM input convolution of every stem
        region, and the frame encoder (with its prior) of the encoder region.

        Args:
            pixel_values: (B, R, N, C, H, W) normalised crops of N frames (any N), regions in `config.regions` order.
            region_mask: (B, R, N) bool, False where a region was not found; default all True.
            encoder_pixel_values: (B, N, C, E, E) the frame encoder's own crops of its region (E =
                `config.frame_encoder_size`), normalised like `pixel_values`; None: the region's crops in
                `pixel_values`, resized.

        Returns:
            The per-frame features (`FRAME_FEATURES`), each with the frame axis at dim 1: "stem_gates"
            (B, N, Rs*4F, H', W') the stem regions' input gates, "encoder_gates" (B, N, 4F, He, We) the encoder
            region's, "prior" (B, N, L) the encoder's own label probabilities; a key is absent where the model has
            no such part.
        """
        self._check_inputs(pixel_values, region_mask, frames=True)
        self._check_encoder_inputs(pixel_values, encoder_pixel_values)
        b, r, n = pixel_values.shape[:3]
        if region_mask is None:
            region_mask = torch.ones(b, r, n, dtype=torch.bool, device=pixel_values.device)
        region_mask = region_mask.to(device=pixel_values.device, dtype=torch.bool)
        # Zero masked frames so that their pixels cannot leak through the stem's normalisation statistics.
        x = pixel_values * region_mask[..., None, None, None].to(pixel_values.dtype)
        features = {}
        if self.stem is not None:
            features["stem_gates"] = self.encode_stems(x)
        if self.frame_encoder is not None:
            every = self.config.frame_encoder_every
            if encoder_pixel_values is not None:
                visible = region_mask[:, self.encoder_index, :, None, None, None].to(x.dtype)  # (B, N, 1, 1, 1)
                face = encoder_pixel_values.to(x.dtype) * visible  # (B, N, C, E, E)
            else:
                face = x[:, self.encoder_index]  # (B, N, C, H, W)
            if every > 1:
                face = face[:, ::every]  # (B, ceil(N / every), C, E, E): frames 0, k, 2k, ... of this call
            features.update({name: self._every_frame(value, n) for name, value in self.encode_faces(face).items()})
        return features

    def encode_stems(self, x: torch.Tensor) -> torch.Tensor:
        """The stem regions' part of `encode_frames`: (B, R, N, C, H, W) normalised crops, zero where a region was
        not found -> (B, N, Rs*4F, H', W') their first ConvLSTM's input gates."""
        b, _, n = x.shape[:3]
        xs = x[:, self.stem_index] if self.encoder_index is not None else x  # (B, Rs, N, C, H, W)
        xs = xs.transpose(1, 2).flatten(2, 3).flatten(0, 1)  # (B*N, Rs*C, H, W)
        gates = self.convlstm[0].input_gates(self.stem(xs))  # (B*N, Rs*4F, H', W')
        return gates.view(b, n, *gates.shape[1:])

    def encode_faces(self, face: torch.Tensor) -> dict[str, torch.Tensor]:
        """The frame encoder's part of `encode_frames` on the frames it encodes (every `frame_encoder_every`-th).

        Args:
            face: (B, M, C, E, E) normalised crops of the encoder region, zero where the region was not found (E:
                any size, resized to `config.frame_encoder_size`).

        Returns:
            "encoder_gates" (B, M, 4F, He, We) and, where the encoder's classes map to the model's, "prior" (B, M, L).
        """
        cfg = self.config
        b, m = face.shape[:2]
        face = face.flatten(0, 1)  # (B*M, C, E, E)
        size = cfg.frame_encoder_size
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
        encoded = [self.frame_encoder.encode(chunk) for chunk in chunks]  # (map, logits) per chunk
        maps = torch.cat([mp for mp, _ in encoded])  # (B*M, Ce, He, We)
        gates = self.encoder_convlstm[0].input_gates(maps)  # (B*M, 4F, He, We)
        features = {"encoder_gates": gates.view(b, m, *gates.shape[1:])}
        if self.label_map is not None:
            logits = torch.cat([k for _, k in encoded])  # (B*M, K)
            features["prior"] = (logits.float().softmax(dim=-1) @ self.label_map).view(b, m, -1)  # (B, M, L)
        return features

    def _every_frame(self, encoded: torch.Tensor, n: int) -> torch.Tensor:
        """(B, M, ...) features of every `frame_encoder_every`-th frame -> (B, N, ...), each frame taking those of the
        last encoded frame at or before it."""
        every = self.config.frame_encoder_every
        if every == 1:
            return encoded
        return encoded.repeat_interleave(every, dim=1)[:, :n]

    def classify_windows(
        self, features: dict[str, torch.Tensor], region_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The per-window part: the recurrence over each window's frames, the heads and the fusion.

        Args:
            features: `encode_frames`' features of B windows of T frames each, (B, T, ...) per key (from
                `encode_frames` of windows, or a whole clip's features indexed by each window's frames).
            region_mask: (B, R, T) bool.
            labels: (B,) class indices, for the loss.

        Returns:
            "logits" (B, L), "region_logits" (B, R, L), "region_weights" (B, R), and "loss" when labels are given.
        """
        cfg = self.config
        b, r, _ = region_mask.shape
        if self.training and cfg.region_dropout > 0:
            region_mask = self._drop_regions(region_mask)
        hidden = []  # (region indices, last hidden state (B, Rg*F, H', W')) per branch group
        if "stem_gates" in features:
            mask = region_mask[:, self.stem_index] if self.encoder_index is not None else region_mask
            x = self.convlstm[0].recur(features["stem_gates"], mask)  # (B, T, Rs*F, H', W')
            for layer in self.convlstm[1:]:
                x = layer(x, mask)
            hidden.append((self.stem_index, x[:, -1]))
        if "encoder_gates" in features:
            mask = region_mask[:, self.encoder_index : self.encoder_index + 1]  # (B, 1, T)
            x = self.encoder_convlstm[0].recur(features["encoder_gates"], mask)  # (B, T, F, He, We)
            for layer in self.encoder_convlstm[1:]:
                x = layer(x, mask)
            hidden.append(([self.encoder_index], x[:, -1]))
        size = cfg.feature_size if cfg.head == "flatten" else self.grid
        h = region_mask.new_zeros(b, r, cfg.hidden_size * size * size, dtype=hidden[0][1].dtype)  # (B, R, F*P*P)
        for index, last in hidden:
            last = self.dropout(last)  # (B, Rg*F, H', W')
            last = last.view(b, len(index), cfg.hidden_size, *last.shape[-2:])  # (B, Rg, F, H', W')
            if cfg.head == "pool":
                grid = self.grid
                last = F.adaptive_avg_pool2d(last.flatten(0, 1), grid).view(b, len(index), cfg.hidden_size, grid, grid)
            h[:, index] = last.flatten(2)  # (B, Rg, F*P*P)
        features_r = self.head_dropout(F.relu(self.region_dense(h)))  # (B, R, D)
        region_logits = self.region_classifier(features_r)  # (B, R, L)
        prior = None
        if "prior" in features:
            e = self.encoder_index
            prior = features["prior"]  # (B, T, L)
            visible = region_mask[:, e].to(prior.dtype)  # (B, T)
            prior = (prior * visible[..., None]).sum(1) / visible.sum(1, keepdim=True).clamp_min(1.0)  # (B, L)
            if self.prior_weight is not None:
                prior_logits = torch.log(prior + 1e-4).to(region_logits.dtype)
                region_logits = region_logits.clone()
                region_logits[:, e] = region_logits[:, e] + self.prior_weight * prior_logits

        visible = region_mask.any(dim=2)  # (B, R)
        logits, region_weights = self._fuse(features_r, region_logits, visible)
        if cfg.fusion == "residual":
            logits = self._correct_prior(prior, logits, visible)
        out = {"logits": logits, "region_logits": region_logits, "region_weights": region_weights}
        if labels is not None:
            labels = labels.to(logits.device).long()
            loss = F.cross_entropy(logits, labels)
            if cfg.region_loss_weight > 0:
                per_region = F.cross_entropy(
                    region_logits.flatten(0, 1), labels.repeat_interleave(r), reduction="none"
                ).view(b, r)  # (B, R)
                weight = visible.to(per_region.dtype)
                loss = loss + cfg.region_loss_weight * (per_region * weight).sum() / weight.sum().clamp_min(1.0)
            out["loss"] = loss
        return out

    @property
    def region_gate(self) -> float:
        """How much the region branches can move the answer: sigmoid(`fusion_gate`) for `residual` fusion (0: the
        model answers with its frame encoder's calibrated prior wherever the encoder region is visible), 1.0 for the
        other fusions, whose answer is the regions' fused logits."""
        if self.fusion_gate is None:
            return 1.0
        return float(torch.sigmoid(self.fusion_gate.detach().float()))

    def forward(
        self,
        pixel_values: torch.Tensor,
        region_mask: torch.Tensor | None = None,
        encoder_pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Classifies windows of region crops: `classify_windows(encode_frames(...))`.

        Args:
            pixel_values: (B, R, T, C, H, W) normalised crops, regions in `config.regions` order.
            region_mask: (B, R, T) bool, False where a region was not found in a frame (no face, occlusion). Masked
                frames never influence the output; a region masked for the whole window contributes nothing.
                Defaults to all True.
            encoder_pixel_values: (B, T, C, E, E) the frame encoder's own crops of its region, normalised like
                `pixel_values` (see `encode_frames`); None: resized from `pixel_values`.
            labels: (B,) class indices, for the loss.
        """
        self._check_inputs(pixel_values, region_mask)
        if region_mask is None:
            region_mask = torch.ones(pixel_values.shape[:3], dtype=torch.bool, device=pixel_values.device)
        region_mask = region_mask.to(device=pixel_values.device, dtype=torch.bool)
        features = self.encode_frames(pixel_values, region_mask, encoder_pixel_values)
        return self.classify_windows(features, region_mask, labels)

    def _correct_prior(self, prior: torch.Tensor, fused: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """`residual` fusion: the calibrated log-prior plus the gated, bounded correction from the regions.

        Args:
            prior: (B, L) the encoder's label probabilities averaged over the window's visible frames.
            fused: (B, L) the regions' attention-weighted logits (`_fuse`).
            visible: (B, R) whether each region was visible in the window.

        Returns:
            (B, L) logits; a window whose encoder region was hidden throughout keeps the regions' fused logits.
        """
        bound = self.config.correction_bound
        delta = fused - fused.mean(dim=-1, keepdim=True)  # (B, L): only differences between classes matter
        correction = bound * torch.tanh(delta / bound)
        log_prior = torch.log(prior.clamp_min(1e-6)).to(fused.dtype) + self.prior_bias.to(fused.dtype)  # (B, L)
        logits = log_prior + torch.sigmoid(self.fusion_gate).to(fused.dtype) * correction
        has_prior = visible[:, self.encoder_index : self.encoder_index + 1]  # (B, 1)
        return torch.where(has_prior, logits, fused)

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
            if fusion in ("attention", "residual"):
                scores = self.region_score(features).squeeze(-1)  # (B, R)
            else:  # mean
                scores = torch.zeros_like(visible, dtype=region_logits.dtype)
            scores = scores.masked_fill(~visible, float("-inf"))
            weights = torch.where(any_visible, scores, torch.zeros_like(scores)).softmax(dim=1) * visible
            floor = self.config.fusion_floor
            if floor > 0:
                # Every visible region keeps a share: (1 - floor) of the attention plus floor spread evenly.
                count = visible.sum(dim=1, keepdim=True).clamp_min(1).to(weights.dtype)
                weights = (1 - floor) * weights + floor * visible.to(weights.dtype) / count
            logits = torch.einsum("br,brl->bl", weights, region_logits)
        # With no visible region at all there is nothing to say: uniform logits, no contribution.
        logits = torch.where(any_visible, logits, torch.zeros_like(logits))
        return logits, weights
