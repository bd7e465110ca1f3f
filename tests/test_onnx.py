"""ONNX export and the onnxruntime path: parity with torch, torch-free imports, the mesh backend's graphs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from microx_hf import MicroXConfig, MicroXForVideoClassification
from microx_hf.cli import main as cli_main
from microx_hf.landmarks import get_backend
from microx_hf.onnx_export import (
    PARITY_BOUND,
    _weights_digest,
    check_parity,
    export_mediapipe,
    export_onnx,
    network_of,
)
from microx_hf.predict import DEFAULT_MODEL, load_model
from microx_hf.runtime_onnx import OnnxRuntime, bilinear_matrix

ROOT = Path(__file__).resolve().parents[1]
TINY = {"image_size": 17, "num_frames": 4, "stem_channels": [5], "hidden_size": 7, "head_hidden_size": 11}
CONFIGS = {
    "fer": lambda: MicroXConfig.from_preset("default", **TINY, frame_encoder_size=32),
    "faceapi": lambda: MicroXConfig.from_preset("default", **TINY, frame_encoder="faceapi", frame_encoder_size=32),
    # The shipped default's shape: face-api on every k-th frame only, fused as a bounded correction of its prior.
    "faceapi_every3": lambda: MicroXConfig.from_preset(
        "default", **TINY, frame_encoder="faceapi", frame_encoder_size=32, frame_encoder_every=3, fusion="residual"
    ),
    "none": lambda: MicroXConfig.from_preset("default", **TINY, frame_encoder=None, fusion="mean"),
    "paper": lambda: MicroXConfig.from_preset("paper", image_size=13, num_frames=3, hidden_size=5, head_hidden_size=9),
}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _model(name: str) -> MicroXForVideoClassification:
    torch.manual_seed(0)
    model = MicroXForVideoClassification(CONFIGS[name]()).eval()
    with torch.no_grad():  # trained-looking weights: a zeroed encoder classifier and unit BN statistics hide bugs
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def _compare(model, runtime: OnnxRuntime, frames: int, index: np.ndarray, seed: int = 3) -> float:
    """Largest probability difference between torch and onnxruntime on random crops of `frames` frames with masks
    (a region hidden for a stretch, one frame without any face), windows `index` (W, T)."""
    net = network_of(model)
    cfg = net.config
    rng = np.random.default_rng(seed)
    r, s = len(cfg.regions), cfg.image_size
    pixel_values = rng.uniform(-1, 1, (1, r, frames, 3, s, s)).astype(np.float32)
    mask = rng.random((1, r, frames)) > 0.2
    mask[0, :, 0] = False  # a frame without a face
    encoder = None
    if cfg.frame_encoder is not None:
        e = cfg.frame_encoder_size
        encoder = rng.uniform(-1, 1, (1, frames, 3, e, e)).astype(np.float32)
    with torch.inference_mode():
        features = net.encode_frames(
            torch.from_numpy(pixel_values),
            torch.from_numpy(mask),
            None if encoder is None else torch.from_numpy(encoder),
        )
        window_mask = torch.from_numpy(mask[0][:, index].transpose(1, 0, 2))  # (R, W, T) -> (W, R, T)
        out = net.classify_windows({k: v[0][torch.from_numpy(index)] for k, v in features.items()}, window_mask)
    got_features = runtime.encode_frames(pixel_values, mask, encoder)
    windows = {k: v[0][index] for k, v in got_features.items()}
    got = runtime.classify_windows(windows, mask[0][:, index].transpose(1, 0, 2))
    assert got["logits"].shape == tuple(out["logits"].shape) and got["region_weights"].shape == (len(index), r)
    np.testing.assert_allclose(got["region_weights"], out["region_weights"].numpy(), atol=1e-5)
    return max(
        float(np.abs(_softmax(got["logits"]) - _softmax(out["logits"].numpy())).max()),
        float(np.abs(_softmax(got["region_logits"]) - _softmax(out["region_logits"].numpy())).max()),
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Tiny models of every frame encoder and the paper preset, exported once (the dynamo exporter takes seconds)."""
    out = {}
    for name in ("fer", "faceapi", "faceapi_every3", "paper"):
        model = _model(name)
        folder = export_onnx(model, tmp_path_factory.mktemp(name) / "onnx")
        out[name] = (model, folder)
    return out


@pytest.mark.parametrize("name", ["fer", "faceapi", "faceapi_every3", "paper"])
def test_export_agrees_with_torch_on_any_number_of_frames_and_windows(exported, name):
    model, folder = exported[name]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["parity"]["max_prob_diff"] <= PARITY_BOUND and manifest["weights_sha256"] == _weights_digest(
        network_of(model)
    )
    runtime = OnnxRuntime(folder)
    t = model.config.num_frames
    assert runtime.num_frames == t and runtime.regions == model.config.regions
    assert runtime.labels == [model.config.id2label[i] for i in range(model.config.num_labels)]
    # 1 frame (a clip shorter than a window repeats it), a few, many; 1 window, several overlapping ones.
    assert _compare(model, runtime, 1, np.zeros((1, t), int)) <= PARITY_BOUND
    assert _compare(model, runtime, 9, np.array([np.arange(t), np.arange(t) + 2, np.arange(t) + 5])) <= PARITY_BOUND
    index = np.arange(0, 30, 2)[:, None] + np.arange(t)[None]
    assert _compare(model, runtime, 33, index) <= PARITY_BOUND


def test_a_window_without_any_visible_region_gives_uniform_logits(exported):
    model, folder = exported["fer"]
    runtime = OnnxRuntime(folder)
    cfg = model.config
    features = runtime.encode_frames(
        np.zeros((1, len(cfg.regions), 4, 3, 17, 17), np.float32),
        np.zeros((1, len(cfg.regions), 4), bool),
        np.zeros((1, 4, 3, 32, 32), np.float32),
    )
    out = runtime.classify_windows({k: v[0][None] for k, v in features.items()}, np.zeros((1, 5, 4), bool))
    assert np.all(out["logits"] == 0) and np.all(out["region_weights"] == 0)


def test_without_encoder_crops_the_runtime_resizes_as_torch_does(exported):
    model, folder = exported["fer"]
    runtime = OnnxRuntime(folder)
    rng = np.random.default_rng(0)
    pixel_values = rng.uniform(-1, 1, (1, 5, 6, 3, 17, 17)).astype(np.float32)
    mask = np.ones((1, 5, 6), bool)
    with torch.inference_mode():
        expected = model.encode_frames(torch.from_numpy(pixel_values), torch.from_numpy(mask), None)
    got = runtime.encode_frames(pixel_values, mask, None)
    np.testing.assert_allclose(got["encoder_gates"], expected["encoder_gates"].numpy(), atol=2e-4)
    np.testing.assert_allclose(got["prior"], expected["prior"].numpy(), atol=1e-5)


@pytest.mark.parametrize(("size_in", "size_out"), [(17, 32), (48, 64), (60, 64), (64, 48), (5, 5)])
def test_bilinear_matrix_is_torchs_bilinear_resize(size_in, size_out):
    x = torch.rand(2, 3, size_in, size_in)
    expected = torch.nn.functional.interpolate(x, size=size_out, mode="bilinear", align_corners=False)
    m = bilinear_matrix(size_in, size_out)
    np.testing.assert_allclose(m @ x.numpy() @ m.T, expected.numpy(), atol=1e-5)


def test_the_command_exports_a_model_folder(tmp_path, capsys):
    model = _model("none")
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "model" / "onnx"
    assert cli_main(["export", "onnx", str(tmp_path / "model"), str(out)]) == 0
    assert "max |probability difference| from torch" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"frames.onnx", "windows.onnx", "manifest.json"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["features"] == ["stem_gates"] and manifest["encoder_size"] is None
    assert _compare(load_model(tmp_path / "model")[0], OnnxRuntime(tmp_path / "model"), 7, np.array([[0, 1, 2, 3]])) < (
        PARITY_BOUND
    )


def test_a_folder_without_an_export_is_refused_with_the_command_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="microx export onnx"):
        OnnxRuntime(tmp_path)


def test_the_shipped_model_carries_its_export_and_it_agrees_with_torch():
    model, _ = load_model(DEFAULT_MODEL)
    folder = DEFAULT_MODEL / "onnx"
    manifest = json.loads((folder / "manifest.json").read_text())
    # Made from these very weights: a retrained default must be exported again (`microx export onnx`).
    assert manifest["weights_sha256"] == _weights_digest(network_of(model))
    parity = check_parity(model, folder)
    assert parity["max_prob_diff"] <= PARITY_BOUND and parity["max_weight_diff"] <= PARITY_BOUND


def test_the_onnx_runtime_and_the_mesh_backend_import_no_torch(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from microx_hf.runtime_onnx import OnnxRuntime\n"
        "from microx_hf.landmarks import get_backend\n"
        "from skimage import data\n"
        f"rt = OnnxRuntime({str(DEFAULT_MODEL)!r})\n"
        "f = rt.encode_frames(np.zeros((1, 5, 3, 3, 48, 48), np.float32), np.ones((1, 5, 3), bool), None)\n"
        "out = rt.classify_windows({k: v[:, [0, 1, 2, 2, 2, 2, 2, 2, 2, 2]] for k, v in f.items()},\n"
        "                          np.ones((1, 5, 10), bool))\n"
        "faces = get_backend('mediapipe').detect(data.astronaut())\n"
        "assert len(faces) == 1 and np.isfinite(faces[0].points).all(), faces\n"
        "assert out['logits'].shape == (1, 7)\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- the mediapipe landmark backend's graphs ------------------------------------------------------------------


def test_mesh_graphs_match_the_tflite_runtime():
    """The shipped ONNX graphs against what Google's TFLite runtime computed on the same inputs (the reference of
    test_mesh_backend.py)."""
    import onnxruntime as ort

    from microx_hf.landmarks.mesh_backend import onnx_path
    from training.convert_mediapipe import parity_inputs

    with np.load(ROOT / "tests" / "data" / "mediapipe_tflite_reference.npz") as data:
        reference = dict(data)
    inputs = parity_inputs()
    for name in ("blazeface_short", "blazeface_full", "face_mesh"):
        session = ort.InferenceSession(str(onnx_path(name)), providers=["CPUExecutionProvider"])
        for case in ("noise", "astronaut"):
            out = session.run(None, {"image": inputs[name][case][None]})
            key = f"{name}/{case}"
            if name == "face_mesh":
                np.testing.assert_allclose(out[0][0], reference[f"{key}/points"], atol=2e-3)
                np.testing.assert_allclose(out[1][0], reference[f"{key}/face_logit"], atol=2e-3)
            else:
                kept = reference[f"{key}/anchors"]
                np.testing.assert_allclose(out[1][0].reshape(-1), reference[f"{key}/logits"], atol=2e-3)
                np.testing.assert_allclose(out[0][0][kept], reference[f"{key}/regressors"], atol=2e-3)


def test_mesh_backend_engines_agree_on_a_real_face():
    from skimage import data

    image = data.astronaut()
    onnx, torch_engine = get_backend("mediapipe", engine="onnx"), get_backend("mediapipe", engine="torch")
    assert onnx.engine == "onnx" and torch_engine.engine == "torch"
    assert get_backend("mediapipe").engine == "onnx"  # "auto" takes onnxruntime where it is installed
    a, b = onnx.detect(image), torch_engine.detect(image)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0].box, b[0].box, atol=1e-2)
    np.testing.assert_allclose(a[0].points, b[0].points, atol=1e-2)  # pixels of a 512 px photo
    assert abs(a[0].score - b[0].score) < 1e-4


def test_export_mediapipe_rebuilds_the_shipped_graphs(tmp_path):
    diffs = export_mediapipe(tmp_path)
    assert set(diffs) == {"blazeface_short.onnx", "blazeface_full.onnx", "face_mesh.onnx"}
    assert max(diffs.values()) < 1e-3  # raw outputs: pixels of the network's input and logits


def test_classify_windows_input_names_follow_the_features(exported):
    model, folder = exported["fer"]
    runtime = OnnxRuntime(folder)
    assert runtime.feature_names == ["stem_gates", "encoder_gates", "prior"]
    assert [i.name for i in runtime._windows.get_inputs()] == ["region_mask", *runtime.feature_names]
