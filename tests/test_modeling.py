"""MicroXConfig and the model: shapes, masking, save/load (also through Auto classes and remote code), errors."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from microx_hf import MicroXConfig, MicroXForVideoClassification, MicroXModel
from microx_hf.configuration_microx import CLOSED_GATE, PAPER_LABELS
from microx_hf.predict import DEFAULT_MODEL
from tests import snippets

# Odd sizes catch shape bugs; 3 frames and 17x17 crops keep it fast.
TINY = {
    "image_size": 17,
    "num_frames": 3,
    "stem_channels": [5],
    "hidden_size": 7,
    "head_hidden_size": 11,
    "frame_encoder_size": 32,
}
TINY_PAPER = {"image_size": 13, "num_frames": 3, "hidden_size": 5, "head_hidden_size": 9}


def tiny_config(preset: str = "default", **overrides) -> MicroXConfig:
    return MicroXConfig.from_preset(preset, **{**(TINY if preset == "default" else TINY_PAPER), **overrides})


def inputs(config: MicroXConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, len(config.regions), config.num_frames, config.num_channels, config.image_size, config.image_size)
    return torch.randn(shape, generator=g), torch.ones(shape[:3], dtype=torch.bool)


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("default", {}),
        ("default", {"fusion": "mean"}),
        ("default", {"fusion": "paper", "num_convlstm_layers": 2}),
        ("default", {"regions": ["face", "left_brow", "right_brow", "mouth"], "stem_channels": []}),
        ("paper", {}),
        ("paper", {"fusion": "attention", "head": "pool"}),
    ],
)
def test_shapes_and_finiteness(preset, overrides):
    config = tiny_config(preset, **overrides)
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config, batch=3)
    labels = torch.tensor([0, 3, 6])
    out = model(pixel_values, region_mask=mask, labels=labels)
    num_regions = len(config.regions)
    assert out.logits.shape == (3, 7)
    assert out.region_logits.shape == (3, num_regions, 7)
    assert out.region_weights.shape == (3, num_regions)
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits).all() and torch.isfinite(out.region_logits).all()
    torch.testing.assert_close(out.region_weights.sum(dim=1), torch.ones(3))
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("fusion", ["attention", "mean", "paper"])
def test_masked_region_pixels_do_not_change_the_output(fusion):
    config = tiny_config(fusion=fusion)
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config)
    mask[0, 2] = False  # the left eye of sample 0 is hidden for the whole window
    mask[1, :, 1] = False  # every region of sample 1 is missing in frame 1
    garbage = pixel_values.clone()
    garbage[0, 2] = 50 * torch.randn_like(garbage[0, 2])
    garbage[1, :, 1] = -30.0
    out, out_garbage = model(pixel_values, region_mask=mask), model(garbage, region_mask=mask)
    torch.testing.assert_close(out.logits, out_garbage.logits, rtol=0, atol=0)
    assert out.region_weights[0, 2] == 0
    # And the mask matters: unmasking the same garbage changes the answer.
    assert not torch.allclose(model(garbage).logits, out.logits)


def test_fully_masked_window_gives_uniform_logits():
    config = tiny_config()
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config, batch=1)
    out = model(pixel_values, region_mask=torch.zeros_like(mask))
    assert torch.equal(out.logits, torch.zeros_like(out.logits))
    assert torch.equal(out.region_weights, torch.zeros_like(out.region_weights))


def test_region_dropout_hides_regions_in_training_only():
    config = tiny_config(region_dropout=0.9)
    model = MicroXForVideoClassification(config)
    mask = torch.ones(64, len(config.regions), config.num_frames, dtype=torch.bool)
    torch.manual_seed(0)
    dropped = model.microx._drop_regions(mask)
    assert dropped.any(dim=(1, 2)).all(), "a sample must keep at least one region"
    assert (~dropped).any(), "with p=0.9 some regions must be hidden"
    # A region is dropped for the whole window, not frame by frame.
    per_region = dropped.any(dim=2)
    assert torch.equal(per_region[..., None].expand_as(dropped), dropped)
    model.eval()
    pixel_values, mask = inputs(config)
    torch.testing.assert_close(model(pixel_values).logits, model(pixel_values, region_mask=mask).logits)


def test_paper_preset_parameter_count_matches_the_published_architecture():
    config = MicroXConfig.from_preset("paper")
    assert (config.image_size, config.hidden_size, config.kernel_size, config.head_hidden_size) == (60, 64, 3, 256)
    assert config.regions == ["face", "left_eye", "right_eye", "nose", "mouth"]
    filters, k, channels, dense, labels, regions = 64, 3, 3, 256, 7, 5
    # Keras ConvLSTM2D: input kernel k*k*C*4F + recurrent kernel k*k*F*4F + bias 4F.
    convlstm = k * k * channels * 4 * filters + k * k * filters * 4 * filters + 4 * filters
    side = 60 - (k - 1)  # `valid` padding: 58x58
    flatten_dense = side * side * filters * dense + dense
    region_softmax = dense * labels + labels
    fusion = regions * labels * labels + labels
    expected = regions * (convlstm + flatten_dense + region_softmax) + fusion
    with torch.device("meta"):  # 276 M parameters: count them without allocating 1 GB
        model = MicroXForVideoClassification(config)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_default_is_what_ships_and_small():
    config = MicroXConfig()
    shipped = MicroXConfig.from_pretrained(DEFAULT_MODEL)
    # The prior's calibration is fitted per checkpoint (on real video); everything else is the default.
    drop = {"_name_or_path", "auto_map", "custom_pipelines", "architectures", "transformers_version", "dtype"}
    drop.add("prior_bias")
    assert {k: v for k, v in config.to_dict().items() if k not in drop} == {
        k: v for k, v in shipped.to_dict().items() if k not in drop
    }
    assert MicroXConfig.from_preset("default").to_dict() == config.to_dict()
    assert (config.frame_encoder, config.fusion, config.fusion_floor, config.region_dropout) == (
        "faceapi",
        "residual",
        0.1,
        0.15,
    )
    assert config.prior_bias is None and len(shipped.prior_bias) == 7
    with torch.device("meta"):
        model = MicroXForVideoClassification(config)
    # Under 5 MB as float32 safetensors.
    assert sum(p.numel() for p in model.parameters()) * 4 < 5e6


def test_derived_sizes():
    config = MicroXConfig()
    assert (config.feature_size, config.encoder_feature_size, config.pool_grid) == (12, 7, 3)
    assert config.encoder_region_index == 0 and config.stem_regions == ["left_eye", "right_eye", "nose", "mouth"]
    paper = MicroXConfig.from_preset("paper")
    assert (paper.feature_size, paper.encoder_region_index, paper.stem_regions) == (58, None, paper.regions)


def test_default_labels_and_config_round_trip(tmp_path):
    config = MicroXConfig()
    assert [config.id2label[i] for i in range(7)] == PAPER_LABELS
    assert config.label2id == {name: i for i, name in enumerate(PAPER_LABELS)}
    custom = MicroXConfig(id2label={0: "calm", 1: "angry", 2: "happy"}, label2id={"calm": 0, "angry": 1, "happy": 2})
    assert custom.num_labels == 3
    custom.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MicroXConfig)
    drop = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in drop} == {
        k: v for k, v in custom.to_dict().items() if k not in drop
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"regions": ["face", "ear"]}, "unknown region"),
        ({"regions": []}, "non-empty"),
        ({"regions": ["face", "face"]}, "once"),
        ({"fusion": "concat"}, "fusion"),
        ({"head": "dense"}, "head"),
        ({"convlstm_padding": "full"}, "convlstm_padding"),
        ({"dropout": 1.5}, "probability"),
        ({"num_frames": 0}, "positive integer"),
        ({"kernel_size": 4}, "odd kernel"),
        ({"image_size": 2, "convlstm_padding": "valid", "stem_channels": [4, 4]}, "too small"),
        ({"id2label": {0: "only"}}, "at least two labels"),
    ],
)
def test_bad_configs_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        MicroXConfig(**overrides)


def test_unknown_preset():
    with pytest.raises(ValueError, match="choose one of"):
        MicroXConfig.from_preset("fast")


def test_bad_input_shapes_raise_clear_errors():
    config = tiny_config()
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config)
    with pytest.raises(ValueError, match=r"\(B, R, T, C, H, W\)"):
        model(pixel_values[:, :3])  # wrong number of regions
    with pytest.raises(ValueError, match=r"\(B, R, T, C, H, W\)"):
        model(pixel_values[0])  # no batch axis
    with pytest.raises(ValueError, match="region_mask"):
        model(pixel_values, region_mask=mask[:, :, :2])
    with pytest.raises(ValueError, match="float"):
        model((pixel_values * 100).to(torch.uint8))


def assert_same_outputs(a, b, config):
    pixel_values, mask = inputs(config, seed=1)
    mask[1, 0, 0] = False
    a.eval()
    b.eval()
    out_a, out_b = a(pixel_values, region_mask=mask), b(pixel_values, region_mask=mask)
    torch.testing.assert_close(out_a.logits, out_b.logits, rtol=0, atol=0)
    torch.testing.assert_close(out_a.region_logits, out_b.region_logits, rtol=0, atol=0)


def test_save_load_exact_and_through_auto_classes(tmp_path):
    config = tiny_config()
    model = MicroXForVideoClassification(config)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoModel"] == "modeling_microx.MicroXModel"
    assert saved["auto_map"]["AutoModelForVideoClassification"] == "modeling_microx.MicroXForVideoClassification"
    for loader in (
        MicroXForVideoClassification.from_pretrained,
        MicroXModel.from_pretrained,
        AutoModel.from_pretrained,
        AutoModelForVideoClassification.from_pretrained,
    ):
        loaded = loader(tmp_path)
        assert isinstance(loaded, MicroXModel)
        for key, value in model.state_dict().items():
            assert torch.equal(value, loaded.state_dict()[key]), key
        assert_same_outputs(model, loaded, config)
    assert type(AutoModel.from_pretrained(tmp_path)) is MicroXModel
    assert type(AutoModelForVideoClassification.from_pretrained(tmp_path)) is MicroXForVideoClassification


def test_batchnorm_statistics_survive_save_load(tmp_path):
    config = tiny_config()
    model = MicroXForVideoClassification(config).train()
    pixel_values, mask = inputs(config, batch=4)
    model(pixel_values + 3.0, region_mask=mask)  # moves the running statistics away from their initial values
    model.save_pretrained(tmp_path)
    loaded = MicroXForVideoClassification.from_pretrained(tmp_path)
    assert_same_outputs(model, loaded, config)


REMOTE_CODE_SCRIPT = snippets.without_microx(Path(__file__).resolve().parents[1]) + textwrap.dedent(
    """
    import json
    try:
        import microx_hf  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("microx_hf must not be importable here")

    import torch
    from transformers import AutoModel, AutoModelForVideoClassification
    torch.set_num_threads(1)
    folder = sys.argv[1]
    data = torch.load(folder + "/inputs.pt")
    result = {}
    for name, auto in (("video", AutoModelForVideoClassification), ("model", AutoModel)):
        model = auto.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            out = model(data["pixel_values"], region_mask=data["region_mask"])
        result[name] = {"class": type(model).__name__, "max_diff": (out.logits - data["logits"]).abs().max().item()}
    print(json.dumps(result))
    """
)


def test_loads_with_trust_remote_code_without_the_package(tmp_path):
    config = tiny_config()
    model = MicroXForVideoClassification(config).eval()
    model.save_pretrained(tmp_path / "ckpt")
    pixel_values, mask = inputs(config, seed=2)
    mask[0, 1] = False
    with torch.no_grad():
        logits = model(pixel_values, region_mask=mask).logits
    torch.save({"pixel_values": pixel_values, "region_mask": mask, "logits": logits}, tmp_path / "ckpt" / "inputs.pt")
    script = REMOTE_CODE_SCRIPT
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ckpt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["video"]["class"] == "MicroXForVideoClassification"
    assert result["model"]["class"] == "MicroXModel"
    assert result["video"]["max_diff"] == 0.0 and result["model"]["max_diff"] == 0.0


def test_travelling_files_import_only_torch_numpy_transformers():
    import ast
    import pathlib

    from microx_hf.modeling_microx import CODE_FILES

    package = pathlib.Path(__file__).resolve().parents[1] / "microx_hf"
    allowed = {"torch", "numpy", "transformers", "dataclasses", "typing", "collections", "__future__", "importlib",
               "shutil", "pathlib", "json", "math", "functools"}  # fmt: skip
    for name in CODE_FILES:
        tree = ast.parse((package / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            elif isinstance(node, ast.ImportFrom):  # relative: another file that travels
                assert f"{node.module}.py" in CODE_FILES, f"{name} imports .{node.module}, which does not travel"
                continue
            else:
                continue
            assert roots <= allowed, f"{name} imports {roots - allowed}"


def test_learns_a_tiny_temporal_task():
    """Two classes that differ only in the direction of a brightness ramp over time: the ConvLSTM must use order."""
    torch.manual_seed(0)
    config = tiny_config(regions=["face", "mouth"], num_frames=4, dropout=0.0, head_dropout=0.0)
    model = MicroXForVideoClassification(config)
    ramp = torch.linspace(-1, 1, config.num_frames).view(1, 1, -1, 1, 1, 1)
    base = 0.3 * torch.randn(32, 2, config.num_frames, 3, config.image_size, config.image_size)
    labels = torch.arange(32) % 2
    pixel_values = base + torch.where(labels.view(-1, 1, 1, 1, 1, 1) == 1, ramp, ramp.flip(2))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimiser.zero_grad()
        loss = model(pixel_values, labels=labels).loss
        loss.backward()
        optimiser.step()
    model.eval()
    accuracy = (model(pixel_values).logits.argmax(-1) == labels).float().mean().item()
    assert accuracy == 1.0, (loss.item(), accuracy)


# Per-frame work and the pretrained frame encoder ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        # (With the encoder on every second frame, the frames it sees depend on where a call starts: exact only
        # with it on every frame.)
        {"frame_encoder_every": 1},
        {"frame_encoder": None},
        {"num_convlstm_layers": 2, "fusion": "mean"},
        {"frame_encoder": "fer", "fusion_floor": 0.2, "frame_encoder_every": 1},
    ],
)
def test_per_frame_features_shared_by_overlapping_windows_give_the_same_logits(overrides):
    config = tiny_config(**overrides)
    model = MicroXForVideoClassification(config).eval()
    g = torch.Generator().manual_seed(3)
    clip = torch.randn(1, len(config.regions), 8, 3, config.image_size, config.image_size, generator=g)
    mask = torch.ones(1, len(config.regions), 8, dtype=torch.bool)
    mask[0, 1, 2] = False
    starts = [0, 2, 4, 5]
    index = torch.stack([torch.arange(s, s + config.num_frames) for s in starts])  # (W, T)
    with torch.no_grad():
        features = {key: value[0][index] for key, value in model.encode_frames(clip, mask).items()}  # (W, T, ...)
        shared = model.classify_windows(features, mask[0][:, index].transpose(0, 1))  # mask (W, R, T)
        windows = torch.stack([clip[0, :, s : s + config.num_frames] for s in starts])
        window_mask = torch.stack([mask[0, :, s : s + config.num_frames] for s in starts])
        direct = model(windows, region_mask=window_mask)
    torch.testing.assert_close(shared.logits, direct.logits, rtol=0, atol=0)
    torch.testing.assert_close(shared.region_weights, direct.region_weights, rtol=0, atol=0)


def test_frozen_frame_encoder_does_not_change_in_a_training_step():
    config = tiny_config()
    assert config.frame_encoder == "faceapi" and config.freeze_frame_encoder
    model = MicroXForVideoClassification(config).train()
    network = model.microx
    assert not network.frame_encoder.training, "a frozen encoder stays in eval mode"
    before = {k: v.clone() for k, v in network.frame_encoder.state_dict().items()}
    # (`residual` fusion: the region classifiers start at zero, so they are what the first step moves.)
    others = {k: v.clone() for k, v in network.region_classifier.state_dict().items()}
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    pixel_values, mask = inputs(config, batch=4)
    model(pixel_values, region_mask=mask, labels=torch.tensor([0, 1, 2, 3])).loss.backward()
    optimiser.step()
    for key, value in network.frame_encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert any(not torch.equal(v, others[k]) for k, v in network.region_classifier.state_dict().items())
    unfrozen = MicroXForVideoClassification(tiny_config(freeze_frame_encoder=False)).train().microx
    assert all(p.requires_grad for p in unfrozen.frame_encoder.parameters()) and unfrozen.frame_encoder.training


def test_encoder_prior_maps_its_classes_onto_the_labels():
    model = MicroXForVideoClassification(tiny_config(frame_encoder="faceapi")).microx
    classes = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
    expected = {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "anger", "fearful": "fear",
                "disgusted": "contempt", "surprised": "surprise"}  # fmt: skip
    for k, name in enumerate(classes):
        row = model.label_map[k]
        assert row.sum() == 1 and model.config.id2label[int(row.argmax())] == expected[name]
    # A label set of its own (RAVDESS-like): classes without a counterpart map nowhere.
    labels = ["calm", "happy", "angry", "disgust"]
    custom = tiny_config(
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        frame_encoder="faceapi",
        frame_encoder_label_map={"happy": "happy", "angry": "angry", "disgusted": "disgust"},
    )
    m = MicroXForVideoClassification(custom).microx
    assert m.label_map.shape == (7, 4) and m.label_map.sum() == 3
    assert m.label_map[classes.index("disgusted"), labels.index("disgust")] == 1
    with pytest.raises(ValueError, match="frame_encoder_label_map"):
        tiny_config(frame_encoder="faceapi", frame_encoder_label_map={"happy": "joy"})
    # The default map keeps only the labels the model has.
    assert (
        MicroXConfig(
            id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}, frame_encoder="faceapi"
        ).frame_encoder_label_map["happy"]
        == "happy"
    )


def test_encoder_region_starts_as_its_prior():
    config = tiny_config(fusion="attention")
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config, batch=2)
    with torch.no_grad():
        out = model(pixel_values, region_mask=mask)
        features = model.encode_frames(pixel_values, mask)
    e = config.regions.index("face")
    expected = torch.log(features["prior"].mean(dim=1) + 1e-4)  # (B, L): the window's mean prior, as log-probabilities
    face_bias = model.microx.region_classifier.bias[e]
    torch.testing.assert_close(out.region_logits[:, e], expected + face_bias, rtol=1e-5, atol=1e-5)


def test_forward_rejects_unknown_arguments_and_computes_the_region_loss():
    config = tiny_config(region_loss_weight=0.0)
    model = MicroXForVideoClassification(config)
    pixel_values, mask = inputs(config)
    with pytest.raises(TypeError, match="regionmask"):
        model(pixel_values, regionmask=mask)
    labels = torch.tensor([1, 2])
    torch.manual_seed(0)
    plain = model.eval()(pixel_values, region_mask=mask, labels=labels).loss
    weighted = MicroXForVideoClassification(tiny_config(region_loss_weight=0.5))
    weighted.load_state_dict(model.state_dict())
    out = weighted.eval()(pixel_values, region_mask=mask, labels=labels)
    per_region = torch.nn.functional.cross_entropy(out.region_logits.flatten(0, 1), labels.repeat_interleave(5))
    torch.testing.assert_close(out.loss, plain + 0.5 * per_region)


def test_encoder_pixel_values_feed_the_encoder_and_are_checked():
    config = tiny_config(frame_encoder_every=1)
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config)
    g = torch.Generator().manual_seed(5)
    encoder = torch.randn(2, config.num_frames, 3, 32, 32, generator=g)
    with torch.no_grad():
        a = model(pixel_values, region_mask=mask, encoder_pixel_values=encoder).logits
        b = model(pixel_values, region_mask=mask).logits  # resized from the 17 px face crops instead
        features = model.encode_frames(pixel_values, mask, encoder)
    assert not torch.allclose(a, b)
    # The encoder's prior comes from its own crops: what the encoder alone says about them.
    with torch.no_grad():
        network = model.microx
        alone = network.frame_encoder((encoder * 0.5 + 0.5).flatten(0, 1)).softmax(-1) @ network.label_map
    torch.testing.assert_close(features["prior"].flatten(0, 1), alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="encoder_pixel_values must have shape"):
        model(pixel_values, region_mask=mask, encoder_pixel_values=encoder[:, :, :, :16])
    plain = MicroXForVideoClassification(tiny_config(frame_encoder=None))
    with pytest.raises(ValueError, match="no frame encoder"):
        plain(pixel_values, encoder_pixel_values=encoder)


def test_fusion_floor_keeps_every_visible_region_in_the_decision():
    config = tiny_config(fusion_floor=0.25)
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config, batch=2)
    mask[1, 3] = False  # the nose is hidden in the second window
    with torch.no_grad():
        out = model(pixel_values, region_mask=mask)
    torch.testing.assert_close(out.region_weights.sum(dim=1), torch.ones(2))
    assert (out.region_weights[0] >= 0.25 / 5 - 1e-6).all()
    assert out.region_weights[1, 3] == 0 and (out.region_weights[1][[0, 1, 2, 4]] >= 0.25 / 4 - 1e-6).all()
    with pytest.raises(ValueError, match="fusion_floor"):
        tiny_config(fusion_floor=1.0)


def test_fer_encoder_is_fers_network_and_sees_grey():
    config = tiny_config(frame_encoder="fer", frame_encoder_size=64)
    assert config.encoder_feature_size == 4 and config.frame_encoder_label_map["disgust"] == "contempt"
    model = MicroXForVideoClassification(config).eval().microx
    from training.teachers import get_teacher

    teacher = get_teacher("fer").load()
    model.load_frame_encoder(teacher.state_dict())
    g = torch.Generator().manual_seed(1)
    face = torch.rand(3, 3, 64, 64, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model.frame_encoder(face), teacher(face))
        # Only the brightness of each pixel matters to it: the same grey image in colour gives the same answer.
        grey = (0.299 * face[:, 0] + 0.587 * face[:, 1] + 0.114 * face[:, 2]).unsqueeze(1).expand(-1, 3, -1, -1)
        torch.testing.assert_close(model.frame_encoder(face), model.frame_encoder(grey), rtol=1e-4, atol=1e-4)


def test_the_label_map_buffer_is_rebuilt_on_load(tmp_path):
    """It is not saved (a non-persistent buffer) and from_pretrained builds the model on the meta device."""
    model = MicroXForVideoClassification(tiny_config())
    model.save_pretrained(tmp_path)
    loaded = MicroXForVideoClassification.from_pretrained(tmp_path).microx
    assert not any("label_map" in key for key in model.state_dict())
    assert loaded.label_map.device.type == "cpu"
    assert torch.equal(loaded.label_map, model.microx.label_map_matrix()) and loaded.label_map.sum() == 7


def test_residual_fusion_starts_as_its_calibrated_prior_and_a_closed_gate_keeps_it_there():
    bias = [0.5, -0.25, 0.0, 0.1, -1.0, 0.3, 0.2]
    config = tiny_config(prior_bias=bias)
    assert config.fusion == "residual" and config.fusion_gate_init == -4.0
    model = MicroXForVideoClassification(config).eval()
    pixel_values, mask = inputs(config, batch=3)
    mask[1, 2] = False  # an eye hidden in the second window
    mask[2, 0, :2] = False  # the face hidden in two frames of the third

    def calibrated_prior() -> torch.Tensor:
        features = model.encode_frames(pixel_values, mask)
        visible = mask[:, 0].float()  # (B, T): frames where the encoder region was found
        prior = (features["prior"] * visible[..., None]).sum(1) / visible.sum(1, keepdim=True)  # (B, L)
        return torch.log(prior.clamp_min(1e-6)) + torch.tensor(bias)

    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values, region_mask=mask).logits, calibrated_prior(), rtol=0, atol=0)
        # Trained branches with an open gate move it, by at most g * correction_bound per class...
        torch.nn.init.normal_(model.microx.region_classifier.weight, std=1.0)
        model.microx.fusion_gate.fill_(2.0)
        moved = model(pixel_values, region_mask=mask)
        shift = moved.logits - calibrated_prior()
        spread = shift.max(dim=1).values - shift.min(dim=1).values
        assert (spread > 0.01).all() and (
            spread <= 2 * config.correction_bound * torch.sigmoid(torch.tensor(2.0))
        ).all()
        # ... and the region weights say which region moved it, every visible region keeping its floor.
        assert moved.region_weights[1, 2] == 0 and (moved.region_weights[0] >= 0.1 / 5 - 1e-6).all()
        model.microx.fusion_gate.fill_(CLOSED_GATE)  # what a release does when the branches lose to the prior
        torch.testing.assert_close(model(pixel_values, region_mask=mask).logits, calibrated_prior(), rtol=0, atol=0)
        # A window without its face leaves the decision to the other regions.
        hidden = mask.clone()
        hidden[:, 0] = False
        out = model(pixel_values, region_mask=hidden)
        expected = torch.einsum("br,brl->bl", out.region_weights, out.region_logits)
        torch.testing.assert_close(out.logits, expected)
    # A closed gate passes no NaN into training.
    model.train()
    model(pixel_values, region_mask=mask, labels=torch.tensor([0, 1, 2])).loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_prior_bias_and_a_closed_gate_survive_save_load(tmp_path):
    bias = [0.25, 0.5, 1.0, 0.0, -0.5, -1.0, -0.75]
    model = MicroXForVideoClassification(tiny_config(prior_bias=bias))
    with torch.no_grad():
        model.microx.fusion_gate.fill_(CLOSED_GATE)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["prior_bias"] == bias
    loaded = MicroXForVideoClassification.from_pretrained(tmp_path)
    assert loaded.config.prior_bias == bias and loaded.microx.prior_bias.tolist() == bias
    assert loaded.microx.fusion_gate.item() == float("-inf")
    assert_same_outputs(model, loaded, model.config)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fusion": "residual", "frame_encoder": None}, "starts from the frame encoder's prior"),
        ({"fusion": "residual", "frame_encoder_prior": False}, "starts from the frame encoder's prior"),
        ({"prior_bias": [0.0] * 6}, "give 7 finite numbers"),
        ({"prior_bias": [0.0] * 6 + [50.0]}, "give 7 finite numbers"),
        ({"prior_bias": [0.0] * 7, "fusion": "attention"}, "calibrates the prior"),
        ({"correction_bound": 0}, "correction_bound"),
    ],
)
def test_residual_fusion_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        MicroXConfig(**overrides)
    # Without a frame encoder the default fusion is the attention over regions.
    assert MicroXConfig(frame_encoder=None).fusion == "attention"


def test_frame_encoder_every_second_frame_reuses_its_features():
    config = tiny_config(frame_encoder_every=1)
    every = tiny_config()
    assert every.frame_encoder_every == 2  # the default with `residual` fusion
    assert tiny_config(fusion="attention").frame_encoder_every == 1  # what checkpoints saved before it computed
    model = MicroXForVideoClassification(config).eval()
    halved = MicroXForVideoClassification(every).eval()
    halved.load_state_dict(model.state_dict())
    pixel_values, mask = inputs(config, batch=2)
    pixel_values = torch.cat([pixel_values, pixel_values[:, :, :2]], dim=2)  # 5 frames: an odd count
    mask = torch.ones(pixel_values.shape[:3], dtype=torch.bool)
    with torch.no_grad():
        full = model.encode_frames(pixel_values, mask)
        half = halved.encode_frames(pixel_values, mask)
    for key in ("encoder_gates", "prior"):
        torch.testing.assert_close(half[key][:, [0, 2, 4]], full[key][:, [0, 2, 4]])  # encoded frames: the same
        torch.testing.assert_close(half[key][:, [1, 3]], full[key][:, [0, 2]])  # the others: their predecessor's
    torch.testing.assert_close(half["stem_gates"], full["stem_gates"])  # the other regions see every frame
    with pytest.raises(ValueError, match="frame_encoder_every"):
        tiny_config(frame_encoder_every=0)
