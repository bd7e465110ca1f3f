"""A Hugging Face image-classification checkpoint as the frame encoder (`frame_encoder="hf:ORG/NAME"`).

The checkpoints are tiny random ViTs and a tiny ConvNeXt that the tests build with expression names in `id2label`
and serve from the test Hub (tests/hub_server.py); nothing is downloaded from the internet. What a real checkpoint
(e.g. a ViT fine-tuned on FER2013) would add is trained weights, not another code path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi
from safetensors.torch import load_file
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    ConvNextImageProcessorPil,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
)

from microx_hf.configuration_microx import MicroXConfig
from microx_hf.errors import DatasetFormatError
from microx_hf.frame_encoder_hub import HubFrameEncoder, expression_label, feature_grid
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.predict import predict
from tests import media, snippets
from tests.test_train import TINY_MODEL, _argv, make_clips
from training import release, train

REPO = Path(__file__).resolve().parents[1]
# The names the issue lists, in the mixed case Hub checkpoints use.
EXPRESSIONS = ["angry", "Disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt"]
SIDE = 32  # the tiny encoders' input side (their image processor's size)
# Not 0.5: the encoder must be fed its own processor's normalisation, not MicroX's.
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TINY = {k: v for k, v in TINY_MODEL.items() if k != "frame_encoder_size"}


def _labels(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def tiny_vit(names: list[str] = EXPRESSIONS, seed: int = 0) -> ViTForImageClassification:
    torch.manual_seed(seed)
    config = ViTConfig(image_size=SIDE, patch_size=8, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=37, **_labels(names))  # fmt: skip
    return ViTForImageClassification(config).eval()


def tiny_convnext(seed: int = 0) -> ConvNextForImageClassification:
    torch.manual_seed(seed)
    config = ConvNextConfig(image_size=SIDE, patch_size=4, hidden_sizes=[8, 12, 16, 20], depths=[1, 1, 1, 1],
                            **_labels(EXPRESSIONS))  # fmt: skip
    return ConvNextForImageClassification(config).eval()


def push(model, processor, repo_id: str, folder: Path) -> str:
    """Serve a checkpoint from the test Hub; returns the `frame_encoder` value naming it."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    api = HfApi()
    api.create_repo(repo_id)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder))
    return f"hf:{repo_id}"


@pytest.fixture
def vit(hub, tmp_path) -> tuple[str, ViTForImageClassification]:
    """A tiny ViT on the test Hub, a repo of each test's own (a test may delete it)."""
    model = tiny_vit()
    processor = ViTImageProcessorPil(size={"height": SIDE, "width": SIDE}, image_mean=MEAN, image_std=STD)
    name = push(model, processor, hub.new_repo_id("tiny-vit-fer"), tmp_path / "vit")
    return name, model


def test_expression_names_map_case_insensitively_with_synonyms():
    pairs = {"angry": "anger", "Disgust": "contempt", "HAPPINESS": "happy", "sadness": "sad", "Surprised": "surprise",
             "fearful": "fear", " neutral ": "neutral", "contempt": "contempt"}  # fmt: skip
    assert {name: expression_label(name) for name in pairs} == pairs
    assert expression_label("calm") is None and expression_label("LABEL_3") is None


def test_feature_grid_drops_the_class_and_distillation_tokens():
    tokens = torch.arange(2 * 18 * 3, dtype=torch.float32).view(2, 18, 3)  # 2 leading tokens + a 4x4 grid
    grid = feature_grid(tokens)
    assert grid.shape == (2, 3, 4, 4)
    assert torch.equal(grid[1, :, 0, 1], tokens[1, 3]) and torch.equal(grid[0, :, 3, 3], tokens[0, 17])
    conv = torch.randn(2, 5, 3, 3)
    assert feature_grid(conv) is conv


def test_config_reads_the_encoder_from_the_hub_and_maps_its_labels(vit):
    name, model = vit
    config = MicroXConfig(frame_encoder=name, regions=["face", "mouth"], image_size=16, **TINY)
    assert config.frame_encoder_size == SIDE and config.encoder_feature_size == SIDE // 8
    assert config.frame_encoder_config["image_mean"] == pytest.approx(MEAN)
    assert config.frame_encoder_config["config"]["model_type"] == "vit"
    assert config.frame_encoder_label_map == {"angry": "anger", "Disgust": "contempt", "fear": "fear", "happy": "happy",
                                              "neutral": "neutral", "sad": "sad", "surprise": "surprise",
                                              "contempt": "contempt"}  # fmt: skip
    # The encoder's logits read through MicroX are the checkpoint's own on its processor's pixel values.
    encoder = HubFrameEncoder(config.frame_encoder_config)
    encoder.load_pretrained(name)
    images = np.random.default_rng(0).integers(0, 256, (3, SIDE, SIDE, 3), dtype=np.uint8)
    processor = ViTImageProcessorPil.from_pretrained(name.removeprefix("hf:"))
    pixel_values = processor(list(images), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        maps, logits = encoder.eval().encode(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
        expected = model(pixel_values=pixel_values).logits
    assert maps.shape == (3, 24, SIDE // 8, SIDE // 8)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_labels_that_cannot_be_mapped_are_refused_by_name(hub, tmp_path):
    processor = ViTImageProcessorPil(size={"height": SIDE, "width": SIDE})
    model = tiny_vit(["happy", "calm", "LABEL_2", "Sad"])
    name = push(model, processor, hub.new_repo_id("tiny-vit-calm"), tmp_path / "calm")
    with pytest.raises(ValueError, match=r"labels \['calm', 'LABEL_2'\] cannot be mapped") as err:
        MicroXConfig(frame_encoder=name, regions=["face", "mouth"], image_size=16, **TINY)
    assert "'Sad'" not in str(err.value).split("cannot be mapped")[0] and "frame_encoder_label_map" in str(err.value)
    # Mapped by hand, the same checkpoint is accepted.
    label_map = {"happy": "happy", "calm": "neutral", "LABEL_2": None, "Sad": "sad"}
    config = MicroXConfig(frame_encoder=name, frame_encoder_label_map=label_map, regions=["face", "mouth"],
                          image_size=16, **TINY)  # fmt: skip
    assert config.frame_encoder_label_map == label_map


def test_an_unreachable_checkpoint_says_what_it_needs(hub):
    with pytest.raises(ValueError, match="needs the network once"):
        MicroXConfig(frame_encoder=f"hf:{hub.new_repo_id('absent')}")
    with pytest.raises(ValueError, match="image-classification checkpoint 'hf:ORG/NAME'"):
        MicroXConfig(frame_encoder="vit-face-expression")


def test_an_input_side_the_encoder_cannot_take_is_refused(vit):
    with pytest.raises(ValueError, match="--encoder_crop_size 32"):
        MicroXConfig(frame_encoder=vit[0], frame_encoder_size=48, regions=["face", "mouth"], image_size=16, **TINY)


_RELOAD = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForVideoClassification

    torch.set_num_threads(1)
    folder, inputs = sys.argv[1], torch.load(sys.argv[2])
    model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**inputs["kwargs"]).logits
    encoder = type(model.microx.frame_encoder.classifier_model).__name__
    print(json.dumps({"module": type(model).__module__, "encoder": encoder,
                      "diff": (logits - inputs["logits"]).abs().max().item(),
                      "microx_hf": any(m.startswith("microx_hf") for m in sys.modules)}))
    """
)


def _fresh(script: str, folder: Path, probe: Path, cwd: Path) -> dict:
    """Run `script` in a fresh interpreter, offline (HF_HUB_OFFLINE=1, an empty cache), in the empty folder `cwd`."""
    cwd.mkdir()
    proc = subprocess.run([sys.executable, "-c", script, str(folder), str(probe)], cwd=cwd,
                          env=snippets.fresh_env(cwd), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_on_a_hub_vit_then_reload_offline_and_without_the_package(vit, tmp_path):
    name, vit_model = vit
    clips = make_clips(tmp_path / "tiny", encoder_size=SIDE)
    out = tmp_path / "run"
    flags = ("--max_steps", "1", "--save_strategy", "no", "--eval_strategy", "no", "--early_stopping_patience", "0")
    argv = _argv(clips, out, "--frame_encoder", name, *flags)
    argv[argv.index("--config_overrides") + 1] = json.dumps(TINY)
    train.main(argv)

    # The encoder's config and its processor's facts are in the MicroX config, its crops in the extractor's settings.
    config = json.loads((out / "config.json").read_text())
    assert config["frame_encoder"] == name and config["frame_encoder_size"] == SIDE
    assert config["frame_encoder_config"]["config"]["id2label"]["1"] == "Disgust"
    assert json.loads((out / "preprocessor_config.json").read_text())["encoder_crop_size"] == SIDE
    assert (out / "frame_encoder_hub.py").is_file()
    # Its weights are inside model.safetensors (transformers writes a ViT's keys in their checkpoint names).
    saved = load_file(str(out / "model.safetensors"))
    expected = vit_model.state_dict()
    assert len([k for k in saved if k.startswith("microx.frame_encoder.classifier_model.")]) == len(expected)

    # Reloaded with the package and the test Hub's repo gone: no download, the checkpoint's weights untouched (frozen
    # by default).
    HfApi().delete_repo(name.removeprefix("hf:"))
    model = MicroXForVideoClassification.from_pretrained(out).eval()
    encoder = model.microx.frame_encoder.classifier_model.state_dict()
    assert set(encoder) == set(expected) and all(torch.equal(encoder[k], v) for k, v in expected.items())
    generator = torch.Generator().manual_seed(1)
    kwargs = {
        "pixel_values": torch.randn(2, 2, 3, 3, 16, 16, generator=generator),
        "encoder_pixel_values": torch.randn(2, 3, 3, SIDE, SIDE, generator=generator),
    }
    with torch.no_grad():
        logits = model(**kwargs).logits
    probe = tmp_path / "probe.pt"
    torch.save({"kwargs": kwargs, "logits": logits}, probe)

    # The whole predict path on a face video: the extractor cuts the face at the encoder's side.
    prediction = predict(media.make_face_video(tmp_path / "face.mp4", n_frames=12, size=(320, 240)), model=out)
    assert set(prediction.scores) == {"neutral", "happy", "sad"} and sum(prediction.scores.values()) == pytest.approx(1)

    # The release (dry run) reloads it and names the checkpoint on the card, for its licence and training data.
    repo = name.removeprefix("hf:")
    release.main(["--checkpoint", str(out), "--repo_id", "me/microx-vit", "--output_dir", str(tmp_path / "release"),
                  "--dry_run", "--dataset_name", "Tiny"])  # fmt: skip
    card = (tmp_path / "release" / "README.md").read_text()
    assert f"[{repo}](https://huggingface.co/{repo})" in card and f"the model card of {repo}" in card

    # A fresh interpreter, offline, with the package importable: identical logits.
    result = _fresh(_RELOAD, out, probe, tmp_path / "offline")
    assert result["diff"] == 0.0 and result["encoder"] == "ViTForImageClassification"
    # A fresh interpreter, offline, where microx_hf cannot be imported: the folder's own code, identical logits.
    result = _fresh(snippets.without_microx(REPO) + _RELOAD, out, probe, tmp_path / "remote")
    assert result["module"].startswith("transformers_modules") and not result["microx_hf"]
    assert result["diff"] == 0.0 and result["encoder"] == "ViTForImageClassification"


def test_a_dataset_cropped_for_another_encoder_size_is_refused(vit, tmp_path):
    clips = make_clips(tmp_path / "tiny", num_subjects=3, clips_per_subject=1, encoder_size=16)
    argv = _argv(clips, tmp_path / "run", "--frame_encoder", vit[0], "--max_steps", "1")
    argv[argv.index("--config_overrides") + 1] = json.dumps(TINY)
    with pytest.raises(DatasetFormatError, match=f"--encoder_crop_size {SIDE}"):
        train.run(*train.parse_args(argv))


def test_a_hub_convnext_fine_tuned_saves_and_reloads(hub, tmp_path):
    processor = ConvNextImageProcessorPil(size={"shortest_edge": SIDE}, image_mean=MEAN, image_std=STD)
    convnext = tiny_convnext()
    name = push(convnext, processor, hub.new_repo_id("tiny-convnext-fer"), tmp_path / "convnext")
    config = MicroXConfig(frame_encoder=name, freeze_frame_encoder=False, regions=["face", "mouth"], image_size=16,
                          **TINY)  # fmt: skip
    assert config.frame_encoder_size == SIDE and config.encoder_feature_size == 1  # ConvNeXt: 1/32 of the input
    model = MicroXForVideoClassification(config)
    model.microx.frame_encoder.load_pretrained(name)
    encoder = model.microx.frame_encoder.classifier_model
    before = {k: v.clone() for k, v in encoder.state_dict().items()}

    # Fine-tuned: the encoder learns with the rest (one SGD step moves its weights).
    model.train()
    generator = torch.Generator().manual_seed(2)
    kwargs = {
        "pixel_values": torch.randn(4, 2, 3, 3, 16, 16, generator=generator),
        "encoder_pixel_values": torch.randn(4, 3, 3, SIDE, SIDE, generator=generator),
    }
    loss = model(**kwargs, labels=torch.tensor([0, 1, 2, 3])).loss
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert encoder.training
    moved = [k for k, v in encoder.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("convnext.encoder") for k in moved)

    model.eval()
    with torch.no_grad():
        logits = model(**kwargs).logits
    model.save_pretrained(tmp_path / "saved")
    HfApi().delete_repo(name.removeprefix("hf:"))
    reloaded = MicroXForVideoClassification.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**kwargs).logits, logits)


def test_a_hub_vit_encoder_exports_to_onnx(vit, tmp_path):
    """The ONNX export (`microx_hf.onnx_export`, dynamo) traces the Hub encoder inside `encode_frames`; its graphs
    agree with torch (the export's own parity check, onnxruntime against torch, whole path)."""
    from microx_hf.onnx_export import PARITY_BOUND, export_onnx

    config = MicroXConfig(frame_encoder=vit[0], regions=["face", "mouth"], image_size=16, **TINY)
    model = MicroXForVideoClassification(config)
    model.microx.frame_encoder.load_pretrained(vit[0])
    folder = export_onnx(model.eval(), tmp_path / "onnx")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["frame_encoder"] == vit[0] and manifest["encoder_size"] == SIDE
    assert manifest["parity"]["max_prob_diff"] <= PARITY_BOUND and manifest["parity"]["max_feature_diff"] <= 1e-4


def test_the_readme_recipe_parses():
    """The README's Hub-encoder recipe: every command's flags are its script's (parsed as the script parses them)."""
    import re
    import shlex

    from training.prepare_dataset import PrepareArguments
    from training.release import ReleaseArguments
    from training.scripts import ArgumentsError, parse_arguments

    section = (REPO / "README.md").read_text().split("### The same recipe on a Hugging Face face-expression", 1)[1]
    (block,) = re.findall(r"```bash\n(.*?)```", section.split("\n### ", 1)[0], re.DOTALL)
    lines = [line for line in block.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    commands = {argv[2]: argv[3:] for argv in map(shlex.split, lines)}
    assert list(commands) == ["training.prepare_dataset", "training.folds", "training.release"]
    assert parse_arguments(PrepareArguments, commands["training.prepare_dataset"]).encoder_crop_size == 224
    model_args, data_args, _ = train.parse_args(commands["training.folds"])
    assert model_args.overrides()["frame_encoder"] == "hf:trpakov/vit-face-expression"
    assert data_args.dataset_name_or_path == "data/baum1s-224"
    assert parse_arguments(ReleaseArguments, commands["training.release"]).checkpoint == "runs/baum1s-vit/fold-00"
    with pytest.raises(ArgumentsError, match="'hf:ORG/NAME'"):
        train.parse_args([*commands["training.folds"], "--frame_encoder", "trpakov/vit-face-expression"])


def test_a_checkpoint_saved_in_float16_runs_in_float32(hub, tmp_path):
    processor = ViTImageProcessorPil(size={"height": SIDE, "width": SIDE})
    name = push(tiny_vit().half(), processor, hub.new_repo_id("tiny-vit-fp16"), tmp_path / "fp16")
    model = MicroXForVideoClassification(MicroXConfig(frame_encoder=name, regions=["face", "mouth"], image_size=16,
                                                      **TINY))  # fmt: skip
    model.microx.frame_encoder.load_pretrained(name)  # its own check: our logits equal the checkpoint's
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    out = model(torch.randn(1, 2, 3, 3, 16, 16), encoder_pixel_values=torch.randn(1, 3, 3, SIDE, SIDE))
    assert out.logits.dtype == torch.float32 and torch.isfinite(out.logits).all()
