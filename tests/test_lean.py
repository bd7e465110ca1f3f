"""The lean load path (`load_model(..., lean=True)`): the same network and extraction without transformers."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from microx_hf import MicroXConfig, MicroXFeatureExtractor, MicroXForVideoClassification
from microx_hf.extraction import MicroXCropper
from microx_hf.network_microx import MicroXNet
from microx_hf.predict import load_model, predict
from tests import media

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("lean") / "model"
    config = MicroXConfig.from_preset(
        "default", image_size=17, num_frames=4, stem_channels=[5], hidden_size=7, head_hidden_size=11,
        frame_encoder_size=32,
    )  # fmt: skip
    MicroXForVideoClassification(config).eval().save_pretrained(path)
    MicroXFeatureExtractor.from_config(config, landmark_backend="dlib", window_stride=2).save_pretrained(path)
    return path


def test_lean_and_transformers_paths_give_identical_predictions(folder, tmp_path):
    lean_model, lean_fe = load_model(folder, lean=True)
    model, fe = load_model(folder)
    assert isinstance(lean_model, MicroXNet) and isinstance(lean_fe, MicroXCropper)
    assert isinstance(model, MicroXForVideoClassification)
    video = media.make_face_video(tmp_path / "face.mp4", n_frames=20, size=(320, 240))
    a = predict(video, model=lean_model, feature_extractor=lean_fe)
    b = predict(video, model=model, feature_extractor=fe)
    np.testing.assert_array_equal(a.window_probs, b.window_probs)
    np.testing.assert_array_equal(a.region_weights, b.region_weights)
    assert a.label == b.label and a.to_dict() == b.to_dict()


def test_a_config_saved_before_a_field_existed_loads_through_transformers(folder, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("model.safetensors", "preprocessor_config.json"):
        (old / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    del config["region_loss_weight"]
    (old / "config.json").write_text(json.dumps(config))
    model, _ = load_model(old, lean=True)
    assert isinstance(model, MicroXForVideoClassification) and model.config.region_loss_weight == 0.0


def test_the_lean_path_imports_no_transformers(folder, tmp_path):
    video = media.make_face_video(tmp_path / "face.mp4", n_frames=12, size=(320, 240))
    script = (
        "import sys; from microx_hf.predict import load_model, predict; "
        f"m, fe = load_model({str(folder)!r}, lean=True); p = predict({str(video)!r}, model=m, feature_extractor=fe); "
        "heavy = [k for k in ('transformers', 'datasets', 'gradio', 'matplotlib', 'scipy') if k in sys.modules]; "
        "print(p.label, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("[]"), out.stdout
