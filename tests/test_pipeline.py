"""`transformers.pipeline("video-classification", model=..., trust_remote_code=True)` on MicroX checkpoints: from a
local folder, from the test Hub (tests/hub_server.py), and in a process where microx-hf cannot be imported (the
model's code still loads; the pipeline says what to install). Its scores are `microx_hf.predict.predict`'s."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi
from transformers import pipeline

import microx_hf
from microx_hf.configuration_microx import MicroXConfig
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.modeling_microx import CUSTOM_PIPELINES, MicroXForVideoClassification
from microx_hf.pipeline_microx import MicroXVideoClassificationPipeline
from microx_hf.predict import DEFAULT_MODEL, load_model, predict
from tests import media, snippets

PACKAGE = Path(microx_hf.__file__).resolve().parent


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = MicroXConfig(
        num_frames=4, image_size=17, hidden_size=6, stem_channels=[5], head_hidden_size=7, frame_encoder=None
    )
    path = tmp_path_factory.mktemp("pipeline") / "tiny-microx"
    MicroXForVideoClassification(config).save_pretrained(path)
    MicroXFeatureExtractor.from_config(config, landmark_backend="dlib", window_stride=2).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return media.make_face_video(tmp_path_factory.mktemp("pipeline_video") / "face.mp4", n_frames=12)


@pytest.fixture(scope="module")
def expected(model_dir, video) -> dict[str, float]:
    model, extractor = load_model(model_dir)
    return predict(video, model, extractor).scores


def _check_top(result, expected: dict[str, float], k: int) -> None:
    ranked = sorted(expected.items(), key=lambda item: -item[1])[:k]
    assert [r["label"] for r in result] == [label for label, _ in ranked]
    np.testing.assert_allclose([r["score"] for r in result], [s for _, s in ranked], atol=1e-6)
    assert all(set(r) == {"label", "score"} and isinstance(r["score"], float) for r in result)


def test_pipeline_from_a_local_folder(model_dir, video, expected):
    classifier = pipeline("video-classification", model=str(model_dir), trust_remote_code=True)
    assert type(classifier).__name__ == "MicroXVideoClassificationPipeline"
    assert classifier.feature_extractor.window_stride == 2  # the folder's preprocessor_config.json
    _check_top(classifier(str(video), top_k=3), expected, 3)
    _check_top(classifier(str(video)), expected, 5)  # top_k defaults to 5, as in transformers' pipeline
    _check_top(classifier(str(video), top_k=99), expected, 7)
    batch = classifier([str(video), str(video)], top_k=2)
    assert len(batch) == 2 and all(len(b) == 2 for b in batch)
    full = classifier(str(video), return_prediction=True)
    assert full.label == max(expected, key=expected.get) and full.window_probs.shape[1] == 7
    # The task is inferred from the config's custom_pipelines.
    assert pipeline(model=str(model_dir), trust_remote_code=True).task == "video-classification"


def test_pipeline_needs_trust_remote_code(model_dir):
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline("video-classification", model=str(model_dir))


def test_pipeline_class_serves_a_folder_without_the_pipeline_file(tmp_path, model_dir, video, expected):
    model, extractor = load_model(model_dir)
    model.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    (tmp_path / "pipeline_microx.py").unlink()
    config = json.loads((tmp_path / "config.json").read_text())
    del config["custom_pipelines"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    microx_hf.register()  # the Auto classes know MicroX: no remote code needed for the model
    classifier = pipeline("video-classification", model=str(tmp_path), pipeline_class=MicroXVideoClassificationPipeline)
    _check_top(classifier(str(video), top_k=2), expected, 2)


def test_pipeline_from_the_test_hub(model_dir, video, expected, hub, hub_repo_id):
    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_folder(repo_id=hub_repo_id, folder_path=model_dir, commit_message="tiny MicroX with its pipeline")
    assert {"pipeline_microx.py", "modeling_microx.py", "config.json"} <= set(api.list_repo_files(hub_repo_id))
    classifier = pipeline("video-classification", model=hub_repo_id, trust_remote_code=True)
    assert type(classifier).__module__.startswith("transformers_modules")  # the Hub's copy of the file
    _check_top(classifier(str(video), top_k=3), expected, 3)


_WITHOUT_MICROX = snippets.without_microx(Path(__file__).resolve().parents[1]) + textwrap.dedent(
    """
    from transformers import AutoModelForVideoClassification, pipeline

    model = AutoModelForVideoClassification.from_pretrained(sys.argv[1], trust_remote_code=True)
    print("model", type(model).__name__, model.config.num_labels)
    try:
        pipeline("video-classification", model=sys.argv[1], trust_remote_code=True)
    except ImportError as err:
        print("ImportError", err)
    assert not any(m == "microx_hf" or m.startswith("microx_hf.") for m in sys.modules)
    """
)


def test_without_microx_hf_the_model_loads_and_the_pipeline_says_what_to_install(model_dir, hub, hub_repo_id, tmp_path):
    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_folder(repo_id=hub_repo_id, folder_path=model_dir)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HOME"] = str(tmp_path / "hf_home")  # a Hub user's empty cache
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MICROX, hub_repo_id],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "model MicroXForVideoClassification 7" in proc.stdout
    message = proc.stdout.split("ImportError", 1)[1]
    assert "needs the microx-hf package" in message and 'pip install "microx-hf[dlib]"' in message
    assert "not on PyPI" in message


def test_the_default_model_serves_the_pipeline(video):
    assert filecmp.cmp(DEFAULT_MODEL / "pipeline_microx.py", PACKAGE / "pipeline_microx.py", shallow=False), (
        "refresh it: microx_hf.modeling_microx.save_code(DEFAULT_MODEL)"
    )
    config = MicroXConfig.from_pretrained(DEFAULT_MODEL)
    assert config.custom_pipelines == CUSTOM_PIPELINES
    classifier = pipeline("video-classification", model=str(DEFAULT_MODEL), trust_remote_code=True)
    result = classifier(str(video), top_k=1)
    assert len(result) == 1 and result[0]["label"] in config.label2id
