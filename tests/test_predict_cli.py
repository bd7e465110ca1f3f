"""`predict`, `load_model`, the `microx` CLI and the pictures of `visualize`, on real videos from `tests/media.py`
with a tiny random model saved to a temporary folder and the real dlib landmark backend."""

import csv
import json
import logging
from importlib.metadata import entry_points

import cv2
import numpy as np
import pytest
import torch

from microx_hf.cli import main
from microx_hf.configuration_microx import MicroXConfig
from microx_hf.errors import InvalidVideoError, NoFaceDetectedError
from microx_hf.feature_extraction_microx import ClipCrops, MicroXFeatureExtractor
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.predict import ModelNotFoundError, Prediction, check_compatible, load_model, predict
from microx_hf.regions import crop_boxes
from microx_hf.visualize import TrackPreview, contact_sheet, face_track_preview, region_strips
from tests import media

N_FRAMES = 12
ABSENT = (4, 5, 6, 7)  # no face here: with 4-frame windows every 2 frames, window 2 (frames 4-7) has no face


def _tiny_config() -> MicroXConfig:
    return MicroXConfig(
        num_frames=4,
        image_size=17,
        hidden_size=6,
        stem_channels=[5],
        head_hidden_size=7,
        kernel_size=3,
        frame_encoder=None,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = _tiny_config()
    path = tmp_path_factory.mktemp("model")
    MicroXForVideoClassification(config).save_pretrained(path)
    MicroXFeatureExtractor.from_config(config, landmark_backend="dlib", window_stride=2).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {
        "face": media.make_face_video(root / "face.mp4", n_frames=N_FRAMES, absent_frames=ABSENT),
        "noface": media.make_noface_video(root / "noface.mp4", n_frames=8),
        "text": media.make_text_file(root / "notes.mp4"),
    }


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def prediction(loaded, videos) -> Prediction:
    model, extractor = loaded
    return predict(videos["face"], model, extractor)


# predict ---------------------------------------------------------------------------------------------------------


def test_prediction_shapes_and_probabilities(prediction):
    p = prediction
    assert p.labels == ["neutral", "anger", "contempt", "surprise", "fear", "happy", "sad"]
    assert p.regions == ["face", "left_eye", "right_eye", "nose", "mouth"]
    n_windows = len(p.window_starts)
    assert n_windows == 5  # starts 0, 2, 4, 6, 8 of 12 frames
    np.testing.assert_allclose(p.window_starts, np.arange(0, 10, 2) / 30.0, atol=1e-9)
    assert p.window_probs.shape == (n_windows, 7)
    assert p.region_weights.shape == (n_windows, 5)
    assert p.region_probs.shape == (n_windows, 5, 7)
    assert p.window_has_face.tolist() == [True, True, False, True, True]
    assert np.isnan(p.window_probs[2]).all() and np.isnan(p.region_weights[2]).all()
    face = p.window_has_face
    np.testing.assert_allclose(p.window_probs[face].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p.region_weights[face].sum(1), 1.0, atol=1e-5)
    assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert p.label == max(p.scores, key=p.scores.get)
    assert p.face_fraction == pytest.approx((N_FRAMES - len(ABSENT)) / N_FRAMES)
    assert p.landmark_backend == "dlib"
    assert p.clip.mask.shape == (5, N_FRAMES)
    assert not p.clip.mask[:, list(ABSENT)].any() and p.clip.mask[:, :4].all()


def test_clip_scores_are_the_mean_over_face_windows(prediction, loaded, videos):
    model, extractor = loaded
    # Straight through the extractor and the model, without predict().
    batch = extractor(str(videos["face"]), return_tensors="pt")
    with torch.inference_mode():
        out = model(pixel_values=batch["pixel_values"], region_mask=batch["region_mask"])
    has_face = batch["region_mask"].any(dim=(1, 2))
    probs = out.logits.softmax(-1)[has_face].numpy()
    np.testing.assert_allclose(prediction.window_probs[prediction.window_has_face], probs, atol=1e-5)
    np.testing.assert_allclose(list(prediction.scores.values()), probs.mean(0), atol=1e-5)
    weights = out.region_weights[has_face].numpy().mean(0)
    np.testing.assert_allclose(list(prediction.region_contributions.values()), weights, atol=1e-5)


def test_to_dict_is_json_safe(prediction):
    d = json.loads(json.dumps(prediction.to_dict(), allow_nan=False))
    assert d["label"] == prediction.label
    assert d["window_probs"][2] == [None] * 7
    assert "clip" not in d and "crops" not in json.dumps(d)


def test_predict_on_frames_in_memory(loaded):
    model, extractor = loaded
    p = predict(media.face_frames(8, (640, 360)), model, extractor, batch_size=1)
    assert p.window_has_face.all() and p.face_fraction == 1.0


def test_no_face_raises_a_helpful_error(loaded, videos):
    model, extractor = loaded
    with pytest.raises(NoFaceDetectedError, match="No face was found.*looks towards the camera"):
        predict(videos["noface"], model, extractor)


def test_bad_video_raises_a_microx_error(loaded, videos):
    model, extractor = loaded
    with pytest.raises(InvalidVideoError, match="not a video"):
        predict(videos["text"], model, extractor)


def test_predict_loads_model_by_path_and_env(model_dir, videos, monkeypatch, prediction):
    by_path = predict(videos["face"], model=str(model_dir))
    np.testing.assert_allclose(by_path.window_probs, prediction.window_probs, atol=1e-6)
    monkeypatch.setenv("MICROX_MODEL", str(model_dir))
    model, extractor = load_model()
    assert extractor.landmark_backend == "dlib" and extractor.window_stride == 2
    assert not model.training


def test_missing_default_model_says_what_to_pass(monkeypatch, tmp_path):
    import microx_hf.predict as predict_module

    monkeypatch.delenv("MICROX_MODEL", raising=False)
    monkeypatch.setattr(predict_module, "DEFAULT_MODEL", tmp_path / "default_model")
    with pytest.raises(ModelNotFoundError, match="--model") as excinfo:
        load_model()
    assert isinstance(excinfo.value, FileNotFoundError)
    with pytest.raises(ModelNotFoundError, match="not a MicroX model folder"):
        load_model(tmp_path)


def test_checkpoint_without_preprocessor_config(tmp_path, caplog):
    config = _tiny_config()
    MicroXForVideoClassification(config).save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="microx_hf.predict"):
        model, extractor = load_model(tmp_path)
    assert "preprocessor_config.json" in caplog.text
    assert (extractor.num_frames, extractor.crop_size) == (4, 17)


def test_mismatched_extractor_is_refused(loaded):
    model, _ = loaded
    with pytest.raises(ValueError, match="num_frames 10 vs 4"):
        check_compatible(model, MicroXFeatureExtractor(crop_size=17, landmark_backend="dlib"))


# CLI ---------------------------------------------------------------------------------------------------------------


def test_cli_predict_table(model_dir, videos, capsys, prediction):
    assert main(["predict", str(videos["face"]), "--model", str(model_dir)]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["video", "emotion"]
    assert str(videos["face"]) in lines[2] and prediction.label in lines[2]
    assert "4/5" in lines[2]  # windows with a face


def test_cli_skips_bad_files_json_and_timeline(model_dir, videos, capsys, tmp_path):
    timeline = tmp_path / "out" / "timeline.csv"
    argv = ["predict", str(videos["text"]), str(videos["face"]), str(videos["noface"])]
    rc = main([*argv, "--model", str(model_dir), "--json", "--timeline-csv", str(timeline), "--batch-size", "2"])
    assert rc == 1
    captured = capsys.readouterr()
    items = json.loads(captured.out)
    assert [i["video"] for i in items][0] == str(videos["face"])
    errors = {i["video"]: i["error"] for i in items if "error" in i}
    assert errors == {
        str(videos["text"]): "InvalidVideoError",
        str(videos["noface"]): "NoFaceDetectedError",
    }
    assert "Traceback" not in captured.err and "skipped" in captured.err and "2 of 3 videos failed" in captured.err
    with timeline.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and [r["has_face"] for r in rows] == ["1", "1", "0", "1", "1"]
    assert rows[2]["neutral"] == "" and float(rows[0]["neutral"]) > 0
    assert sum(float(rows[0][label]) for label in items[0]["labels"]) == pytest.approx(1.0, abs=1e-4)


def test_cli_missing_model_is_a_usage_error(videos, capsys, tmp_path):
    assert main(["predict", str(videos["face"]), "--model", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err


def test_cli_crops_writes_a_contact_sheet(model_dir, videos, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    # Window 1 covers frames 2-5: two with a face, two without (crossed out in red).
    assert main(["crops", str(videos["face"]), "-o", str(out), "--window", "1", "--model", str(model_dir)]) == 0
    sheet = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert sheet.shape[0] == 20 + 5 * (64 + 2)
    label_width = sheet.shape[1] - 4 * (64 + 2)
    y = 20 + 32  # middle row of the face region
    seen = sheet[20 : 20 + 64, label_width : label_width + 64]
    crossed = sheet[20 : 20 + 64, label_width + 2 * 66 : label_width + 2 * 66 + 64]
    assert seen.std(axis=-1).mean() > 3  # colour
    red = (crossed[..., 0] > 150) & (crossed[..., 1] < 100)
    assert red.sum() > 64 and sheet[y, 2:label_width].max() > 100  # the cross, and a region name
    capsys.readouterr()
    assert main(["crops", str(videos["face"]), "-o", str(out), "--window", "99", "--model", str(model_dir)]) == 2
    assert "--window 99: " in capsys.readouterr().err  # a usage error, found from the video's header


def test_help_and_console_script(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert "predict" in out and "crops" in out
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("microx") == "microx_hf.cli:main"


# visualize -------------------------------------------------------------------------------------------------------


def _clip(n: int = 6, s: int = 8) -> ClipCrops:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, n, 3, s, s), dtype=np.uint8)
    mask = np.ones((3, n), bool)
    mask[1, 2] = False
    return ClipCrops(
        crops=crops,
        mask=mask,
        timestamps=np.arange(n) / 30.0,
        landmarks=np.full((n, 68, 2), np.nan, np.float32),
        regions=["face", "nose", "mouth"],
        landmark_backend="dlib",
        fps=30.0,
    )


def test_contact_sheet_layout_and_masking():
    clip = _clip()
    c = 32  # cell side; each cell is followed by a 2 px gap, under a 20 px header
    sheet = contact_sheet(clip, cell=c)
    assert sheet.dtype == np.uint8 and sheet.shape[0] == 20 + 3 * (c + 2)
    label_width = sheet.shape[1] - 6 * (c + 2)
    assert sheet[20 : 20 + c, 2:label_width].max() > 100  # the region name
    cell = sheet[20 : 20 + c, label_width : label_width + c]
    expected = cv2.resize(clip.crops[0, 0].transpose(1, 2, 0), (c, c), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(cell, expected)
    y, x = 20 + (c + 2), label_width + 2 * (c + 2)  # region 1 ("nose"), frame 2: masked
    masked = sheet[y : y + c, x : x + c].astype(int)
    red = (masked[..., 0] > 150) & (masked[..., 1] < 100)
    grey = np.abs(masked[..., 0] - masked[..., 1]) <= 1
    assert red.sum() >= c and grey.mean() > 0.7  # grey but for the (anti-aliased) cross
    assert contact_sheet(clip, window=slice(1, 3), cell=c).shape[1] == label_width + 2 * (c + 2)
    assert contact_sheet(clip, window=1, num_frames=4, stride=2, cell=c).shape[1] == label_width + 4 * (c + 2)
    with pytest.raises(IndexError):
        contact_sheet(clip, window=5, num_frames=4, stride=2)


def test_face_track_preview_draws_landmarks_and_boxes():
    frames = media.face_frames(3, (320, 180), absent_frames=(1,))
    pose = media.face_poses(3, (320, 180), absent_frames=(1,))[0][0]
    points = np.full((3, 68, 2), np.nan, np.float32)
    rng = np.random.default_rng(0)
    # Plausible points: spread around the true face, eyes where the media says they are.
    points[[0, 2]] = (pose.center + rng.normal(0, pose.iod / 2, (68, 2))).astype(np.float32)
    points[[0, 2], 36:42] = pose.left_eye
    points[[0, 2], 42:48] = pose.right_eye
    original = frames.copy()
    out = face_track_preview(frames, points)
    np.testing.assert_array_equal(frames, original)  # inputs untouched
    assert len(out) == 3 and out[0].shape == frames[0].shape
    x, y = np.round(points[0, 0]).astype(int)
    assert tuple(out[0][y, x]) == (0, 255, 0)
    box = crop_boxes(points[0].astype(np.float64), ["face"])["face"]
    corner = np.round(box.corners()[0]).astype(int)
    assert np.abs(out[0][corner[1], corner[0]].astype(int) - original[0][corner[1], corner[0]]).sum() > 30
    assert not np.array_equal(out[1], original[1])  # "no face" written
    explicit = face_track_preview(frames, points, boxes=[np.array([10, 10, 50, 50]), None, None])
    assert np.abs(explicit[0][10, 30].astype(int) - (80, 200, 255)).max() < 20  # the face colour, anti-aliased
    with pytest.raises(ValueError):
        face_track_preview(frames, points[:2])


def test_region_strips_and_the_track_preview(prediction, loaded, videos):
    window = prediction.telling_window()
    assert window in prediction.window_crops  # the crops of each label's most telling window are kept
    clip = prediction.window_clip(window)
    assert clip.crops.shape[:2] == (5, 4) and clip.timestamps[0] == prediction.window_starts[window]
    with pytest.raises(ValueError, match="window_clip"):
        contact_sheet(prediction.clip)  # the streamed record keeps no crops
    strips = region_strips(clip, cell=16)
    assert len(strips) == 5 and all(s.shape[0] == 20 + 18 for s in strips)
    # One label column for all regions: the crops line up from strip to strip in the Space's gallery.
    assert len({s.shape[1] for s in strips}) == 1
    sheet = contact_sheet(clip, cell=16)
    np.testing.assert_array_equal(strips[2][20:], sheet[20 + 2 * 18 : 20 + 3 * 18])
    model, feature_extractor = loaded
    track = TrackPreview(feature_extractor, seconds=0.2, side=320)
    predict(videos["face"], model=model, feature_extractor=feature_extractor, on_frame=track.add)
    preview = track.frames  # drawn while the video streamed through predict: it was decoded once
    assert len(preview) == 6 and preview[0].shape == (180, 320, 3)
    plain = media.face_frames(1, (640, 360))[0]
    small = cv2.resize(plain, (320, 180), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(preview[0].astype(int) - small).max() > 100  # drawn on
    assert (
        np.abs(
            preview[4].astype(int)
            - cv2.resize(
                media.face_frames(1, (640, 360), absent_frames=(0,))[0], (320, 180), interpolation=cv2.INTER_AREA
            )
        ).max()
        > 100
    )  # "no face"


def test_extraction_in_a_second_thread_gives_the_same_prediction_and_its_errors(loaded, videos, tmp_path):
    from microx_hf.errors import VideoDecodeError

    model, feature_extractor = loaded
    a = predict(videos["face"], model=model, feature_extractor=feature_extractor, overlap=True)
    b = predict(videos["face"], model=model, feature_extractor=feature_extractor, overlap=False)
    np.testing.assert_array_equal(a.window_probs, b.window_probs)
    np.testing.assert_array_equal(a.clip.landmarks, b.clip.landmarks)
    broken = media.make_truncated_video(videos["face"], tmp_path / "broken.mp4", keep=0.5)
    with pytest.raises(VideoDecodeError):
        predict(broken, model=model, feature_extractor=feature_extractor, overlap=True)


def test_the_runtime_is_one_of_the_known_ones(loaded, videos):
    model, extractor = loaded
    with pytest.raises(ValueError, match="choose one of"):
        predict(videos["face"], model, extractor, runtime="tensorrt")
    with pytest.raises(ValueError, match="checkpoint folder"):
        predict(videos["face"], model, extractor, runtime="onnx")  # the exported network lives in a folder
