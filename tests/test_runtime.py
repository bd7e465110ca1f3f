"""Choosing and loading the runtime (`load_runtime`, `predict(runtime=...)`, `microx predict --runtime`): ONNX
Runtime by default where the checkpoint carries an export, with the same answers as torch on real-looking clips,
without importing torch or transformers; the default model loaded once per process, also from several threads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from microx_hf import predict as predict_module
from microx_hf import runtime as runtime_module
from microx_hf.errors import ModelNotFoundError
from microx_hf.predict import DEFAULT_MODEL, predict
from microx_hf.runtime import TorchRuntime, load_runtime
from microx_hf.runtime_onnx import OnnxRuntime
from tests import media

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runtime_clips")
    return {
        "pan": media.make_face_video(folder / "pan.mp4", n_frames=46, motion="pan"),
        "two": media.make_two_people_video(folder / "two.mp4"),
    }


@pytest.fixture
def fresh_cache():
    """predict's cache of loaded checkpoints, empty before and after the test."""
    predict_module._CACHE.clear()
    yield predict_module._CACHE
    predict_module._CACHE.clear()


@pytest.fixture
def counted_loads(monkeypatch) -> list[tuple]:
    """Every `load_runtime` call (slowed down, so that concurrent first calls really overlap)."""
    calls: list[tuple] = []
    real = runtime_module.load_runtime

    def counting(name_or_path=None, runtime="auto"):
        calls.append((name_or_path, runtime))
        time.sleep(0.2)
        return real(name_or_path, runtime)

    monkeypatch.setattr(runtime_module, "load_runtime", counting)
    return calls


def _model_copy(tmp_path: Path, onnx: bool = True) -> Path:
    """The shipped default copied (its ONNX export only where `onnx`)."""
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, folder, ignore=None if onnx else shutil.ignore_patterns("onnx"))
    return folder


def test_auto_takes_onnx_where_the_checkpoint_has_an_export_and_torch_elsewhere(tmp_path):
    engine, extractor = load_runtime(DEFAULT_MODEL)
    assert isinstance(engine, OnnxRuntime) and type(extractor).__name__ == "MicroXExtraction"
    assert engine.labels == [engine.config.id2label[i] for i in range(engine.config.num_labels)]
    torch_engine, torch_extractor = load_runtime(DEFAULT_MODEL, runtime="torch")
    assert isinstance(torch_engine, TorchRuntime) and type(torch_extractor).__name__ == "MicroXFeatureExtractor"
    assert engine.labels == torch_engine.labels and engine.regions == torch_engine.regions
    # The same extraction settings either way (the same preprocessor_config.json).
    for key in ("regions", "crop_size", "encoder_crop_size", "window_stride", "landmark_backend", "image_mean"):
        assert getattr(extractor, key) == getattr(torch_extractor, key), key

    plain = _model_copy(tmp_path, onnx=False)
    assert isinstance(load_runtime(plain)[0], TorchRuntime)
    with pytest.raises(ModelNotFoundError, match="microx export onnx"):
        load_runtime(plain, runtime="onnx")
    with pytest.raises(ValueError, match="choose one of"):
        load_runtime(plain, runtime="tensorrt")


def test_an_onnx_only_folder_needs_no_weights(tmp_path):
    folder = _model_copy(tmp_path)
    (folder / "model.safetensors").unlink()
    assert isinstance(load_runtime(folder)[0], OnnxRuntime)
    with pytest.raises(ModelNotFoundError, match="no weights"):
        load_runtime(folder, runtime="torch")


@pytest.mark.parametrize("clip", ["pan", "two"])
def test_onnx_and_torch_give_the_same_answers(clips, clip, fresh_cache):
    onnx = predict(clips[clip], runtime="onnx")
    torch_ = predict(clips[clip], runtime="torch")
    assert onnx.label == torch_.label
    np.testing.assert_array_equal(onnx.clip.landmarks, torch_.clip.landmarks)  # the same extraction
    np.testing.assert_array_equal(onnx.window_starts, torch_.window_starts)
    has_face = onnx.window_has_face
    assert has_face.sum() >= 3 and np.array_equal(has_face, torch_.window_has_face)
    assert np.abs(onnx.window_probs[has_face] - torch_.window_probs[has_face]).max() <= 1e-4
    assert np.abs(onnx.region_weights[has_face] - torch_.region_weights[has_face]).max() <= 1e-4
    assert np.abs(onnx.region_probs[has_face] - torch_.region_probs[has_face]).max() <= 1e-4
    assert max(abs(onnx.scores[k] - torch_.scores[k]) for k in onnx.scores) <= 1e-4
    assert onnx.faces_seen == torch_.faces_seen and onnx.followed_face == torch_.followed_face
    # "auto" is onnx here.
    assert predict(clips[clip]).window_probs[has_face].tolist() == onnx.window_probs[has_face].tolist()


def test_the_shipped_model_says_its_face_network_decided(clips, fresh_cache, tmp_path, capsys):
    """The shipped default's region gate stayed closed at release: both runtimes say so, the prediction says the
    prior decided (its region weights describe a switched-off correction), and the table names the face network.
    The same model with its gate opened says the regions decide."""
    from microx_hf.cli import main
    from microx_hf.cli_output import PRIOR_NAME

    for runtime in ("onnx", "torch"):
        engine = load_runtime(DEFAULT_MODEL, runtime=runtime)[0]
        assert engine.region_gate == 0.0, runtime
        prediction = predict(clips["pan"], runtime=runtime)
        assert prediction.region_gate == 0.0 and prediction.decided_by_prior, runtime
        assert prediction.to_dict()["decided_by_prior"] is True
    assert main(["predict", str(clips["pan"])]) == 0
    table = capsys.readouterr().out
    assert "decided by" in table and PRIOR_NAME in table

    import torch

    from microx_hf.predict import load_model

    model, extractor = load_model(DEFAULT_MODEL)
    with torch.no_grad():
        model.microx.fusion_gate.fill_(0.0)  # opened half-way
    opened = predict(clips["pan"], model, extractor)
    assert opened.region_gate == 0.5 and not opened.decided_by_prior
    assert TorchRuntime(model).region_gate == 0.5


def test_a_loaded_runtime_and_its_extractor_go_to_predict(clips):
    engine, extractor = load_runtime(DEFAULT_MODEL, runtime="onnx")
    a = predict(clips["pan"], engine, extractor)
    b = predict(clips["pan"], runtime="onnx")
    np.testing.assert_array_equal(a.window_probs, b.window_probs)
    with pytest.raises(ValueError, match="feature extractor"):
        predict(clips["pan"], engine)


def test_repeated_calls_load_the_default_once(clips, fresh_cache, counted_loads):
    first = predict(clips["pan"])
    for _ in range(3):
        again = predict(clips["pan"])
    np.testing.assert_array_equal(first.window_probs, again.window_probs)
    assert counted_loads == [(None, "auto")]
    predict(clips["pan"], model=DEFAULT_MODEL)  # the same checkpoint by name: the same entry
    predict(clips["pan"], runtime="torch")  # another runtime: another entry
    assert counted_loads == [(None, "auto"), (None, "torch")]


def test_concurrent_first_calls_load_once(clips, fresh_cache, counted_loads):
    results, errors = [], []

    def call() -> None:
        try:
            results.append(predict(clips["pan"], overlap=False))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4
    assert counted_loads == [(None, "auto")]
    for result in results[1:]:
        np.testing.assert_array_equal(result.window_probs, results[0].window_probs)


def test_a_folder_written_again_is_loaded_again(tmp_path, clips, fresh_cache, counted_loads):
    folder = _model_copy(tmp_path)
    predict(clips["pan"], model=folder)
    predict(clips["pan"], model=str(folder))
    assert len(counted_loads) == 1
    config = folder / "config.json"
    config.write_text(config.read_text() + "\n")  # as a new training run would write it
    predict(clips["pan"], model=folder)
    assert len(counted_loads) == 2


def _fresh(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # With progress bars as a user has them (the test session turns the Hub's off, and transformers follows it).
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=env
    )


def test_the_onnx_path_never_imports_torch_or_transformers(clips, tmp_path):
    """`microx predict` (the CLI's main, as the console script runs it) and `predict(..., runtime="onnx")` in a fresh
    interpreter: the answers come, and neither torch nor transformers is in sys.modules."""
    video = shutil.copy(clips["pan"], tmp_path / "face.mp4")
    code = (
        "import sys, json\n"
        "from microx_hf.cli import main\n"
        "assert main(['predict', sys.argv[1], '--jsonl']) == 0\n"
        "from microx_hf.predict import predict\n"
        "p = predict(sys.argv[1], runtime='onnx')\n"
        "q = predict(sys.argv[1])\n"
        "print(json.dumps({'label': p.label, 'same': p.window_probs.tolist() == q.window_probs.tolist(),\n"
        "                  'heavy': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}))\n"
    )
    proc = _fresh(code, tmp_path, str(video))
    assert proc.returncode == 0, proc.stderr
    row, summary = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert row["label"] == summary["label"] and summary["same"]
    assert summary["heavy"] == []
    assert "Loading weights" not in proc.stderr


def test_the_torch_path_shows_no_progress_bars(clips, tmp_path):
    """A library call that loads the model says nothing on stderr (transformers' "Loading weights" bars)."""
    code = (
        "import sys\n"
        "from microx_hf.predict import predict\n"
        "for _ in range(2):\n"
        "    predict(sys.argv[1], runtime='torch')\n"
        "from transformers.utils import logging\n"
        "print(logging.is_progress_bar_enabled())\n"
    )
    proc = _fresh(code, tmp_path, str(clips["pan"]))
    assert proc.returncode == 0, proc.stderr
    assert "Loading weights" not in proc.stderr and "%|" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "True"  # the user's own setting is left as it was


def test_the_command_takes_a_runtime(clips, capsys):
    from microx_hf.cli import main

    rows = {}
    for runtime in ("onnx", "torch"):
        assert main(["predict", str(clips["pan"]), "--jsonl", "--runtime", runtime]) == 0
        rows[runtime] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rows["onnx"]["label"] == rows["torch"]["label"]
    for a, b in zip(rows["onnx"]["window_probs"], rows["torch"]["window_probs"], strict=True):
        assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-4


def test_a_hub_model_runs_on_its_onnx_export(hub, hub_repo_id, clips):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_folder(repo_id=hub_repo_id, folder_path=str(DEFAULT_MODEL))
    engine, extractor = load_runtime(hub_repo_id)
    assert isinstance(engine, OnnxRuntime)
    local = predict(clips["pan"], runtime="onnx")
    remote = predict(clips["pan"], engine, extractor)
    np.testing.assert_array_equal(local.window_probs, remote.window_probs)
    with pytest.raises(ModelNotFoundError):
        load_runtime(hub.new_repo_id("missing"))


def test_both_runtimes_keep_the_interface():
    """The `Runtime` interface as `ClipScorer` and `check_compatible` use it, on the shipped model: the same names,
    shapes and dtypes from onnxruntime as from torch, and the settings the extractor is checked against."""
    from microx_hf.extraction import MicroXExtraction
    from microx_hf.predict import check_compatible
    from microx_hf.runtime import Runtime

    runtimes = {name: load_runtime(DEFAULT_MODEL, runtime=name)[0] for name in ("onnx", "torch")}
    extractor = MicroXExtraction.from_json_file(DEFAULT_MODEL / "preprocessor_config.json")
    rng = np.random.default_rng(0)
    pixel_values = rng.uniform(-1, 1, (1, 5, 7, 3, 48, 48)).astype(np.float32)
    size = extractor.encoder_crop_size  # the shipped model: face-api at 112 px
    encoder = rng.uniform(-1, 1, (1, 7, 3, size, size)).astype(np.float32)
    mask = np.ones((1, 5, 7), bool)
    index = np.array([[0, 1, 2, 3, 4, 5, 6, 6, 6, 6]])
    outputs = {}
    for name, runtime in runtimes.items():
        for attribute in Runtime.__annotations__:
            assert hasattr(runtime, attribute), (name, attribute)
        check_compatible(runtime.config, extractor)  # raises on any mismatch
        assert runtime.config.frame_encoder == "faceapi" and runtime.config.frame_encoder_size == size == 112
        features = runtime.encode_frames(pixel_values, mask, encoder)
        out = runtime.classify_windows(
            {k: v[0][index] for k, v in features.items()}, mask[0][:, index].transpose(1, 0, 2)
        )
        outputs[name] = (
            {k: (v.shape, v.dtype) for k, v in features.items()},
            {k: (v.shape, v.dtype) for k, v in out.items()},
        )
    assert outputs["onnx"] == outputs["torch"]
    assert runtimes["onnx"].labels == runtimes["torch"].labels and runtimes["onnx"].num_frames == 10
