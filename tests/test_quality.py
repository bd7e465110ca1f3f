"""The quality summary of a prediction (`microx_hf.quality`, `Prediction.quality`) and what a user is told when no
face is found: measured while the clip streams (no second decoding), a low-confidence note for a very dark clip, a
sideways video told that it may be rotated. Real clips from `tests/media.py`, the real dlib backend, a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from microx_hf import quality
from microx_hf.cli import main
from microx_hf.configuration_microx import MicroXConfig
from microx_hf.errors import NoFaceDetectedError
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.predict import predict
from microx_hf.video_writer import write_video
from tests import media


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = MicroXConfig(
        frame_encoder=None, num_frames=4, image_size=16, hidden_size=6, stem_channels=[5], head_hidden_size=7
    )
    path = tmp_path_factory.mktemp("models") / "tiny"
    MicroXForVideoClassification(config).save_pretrained(path)
    MicroXFeatureExtractor.from_config(config, landmark_backend="dlib", window_stride=4).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A clean face clip, the same clip very dark (every pixel times 0.15, as an unlit room), and the clip turned
    sideways (stored turned 90 degrees, no rotation tag: a phone video whose rotation was lost)."""
    folder = tmp_path_factory.mktemp("quality")
    frames = media.face_frames(24, (480, 360), "pan")
    return {
        "clean": write_video(folder / "clean.mp4", frames),
        "dark": write_video(folder / "dark.mp4", (frames.astype(np.float32) * 0.15).round().astype(np.uint8)),
        "sideways": write_video(folder / "sideways.mp4", np.ascontiguousarray(np.rot90(frames, k=1, axes=(1, 2)))),
        "sideways_other_way": write_video(
            folder / "sideways_cw.mp4", np.ascontiguousarray(np.rot90(frames, k=-1, axes=(1, 2)))
        ),
    }


def test_the_summary_is_measured_on_the_face_as_the_clip_streams(model_dir, clips):
    prediction = predict(clips["clean"], model=str(model_dir))
    q = prediction.quality
    stats = prediction.clip.face_stats
    assert len(stats.widths) == round(prediction.face_fraction * prediction.clip.num_frames)  # one per face frame
    # The astronaut's face in a 480x360 frame: `face_poses` puts it at 1.2x its 90 px photo box, about 110 px wide.
    pose = media.face_poses(24, (480, 360), "pan")[0][0]
    assert 0.8 * (pose.box[2] - pose.box[0]) < q.face_width_px < 1.6 * (pose.box[2] - pose.box[0])
    assert 0.01 < q.face_area_share < 0.2
    assert 90 < q.brightness < 200 and q.contrast > 30
    assert q.face_fraction == pytest.approx(prediction.face_fraction)
    assert 0 <= q.top_margin <= 1 and 0 <= q.entropy <= 1
    assert not any("dark" in note or "small" in note or "blurred" in note for note in q.notes), q.notes
    summary = prediction.to_dict()["quality"]
    assert json.loads(json.dumps(summary)) == summary
    assert summary["low_confidence"] == bool(q.notes) and summary["notes"] == list(q.notes)


def test_a_very_dark_clip_gets_the_note(model_dir, clips):
    prediction = predict(clips["dark"], model=str(model_dir))  # the face is still found in the dark
    q = prediction.quality
    assert q.brightness < quality.MIN_BRIGHTNESS
    assert q.low_confidence and "the face is very dark" in q.note()
    assert q.note().startswith("Low confidence: ")
    assert prediction.to_dict()["quality"]["low_confidence"] is True


@pytest.mark.parametrize(("clip", "turn"), [("sideways", 90), ("sideways_other_way", 270)])
def test_a_sideways_video_without_a_face_says_it_may_be_rotated(model_dir, clips, clip, turn):
    with pytest.raises(NoFaceDetectedError) as info:
        predict(clips[clip], model=str(model_dir))
    message = str(info.value)
    assert "may be rotated" in message and f"turned {turn} degrees clockwise" in message


def test_a_video_without_any_face_is_not_called_rotated(model_dir, tmp_path):
    video = media.make_noface_video(tmp_path / "noface.mp4", n_frames=12)
    with pytest.raises(NoFaceDetectedError) as info:
        predict(video, model=str(model_dir))
    assert "rotated" not in str(info.value) and "dark" not in str(info.value)


def test_the_rotation_check_runs_only_when_no_face_was_found(model_dir, clips, monkeypatch):
    calls = []
    original = quality.NoFaceProbe.rotation_hint
    monkeypatch.setattr(quality.NoFaceProbe, "rotation_hint", lambda self, *a: calls.append(1) or original(self, *a))
    predict(clips["clean"], model=str(model_dir))
    assert calls == []
    with pytest.raises(NoFaceDetectedError):
        predict(clips["sideways"], model=str(model_dir))
    assert calls == [1]


def test_the_probe_keeps_a_few_frames_spread_over_the_clip():
    probe = quality.NoFaceProbe()
    for i in range(100):
        probe.offer(np.full((720, 1280, 3), i, np.uint8))
    assert len(probe.frames) <= quality.PROBE_FRAMES
    assert max(frame.shape[1] for frame in probe.frames) <= quality.PROBE_SIDE
    values = [int(frame[0, 0]) for frame in probe.frames]
    assert values[0] == 0 and values[-1] >= 48, values  # from the start to past the middle


def test_a_dark_video_without_a_face_is_called_dark(model_dir, tmp_path):
    frames = np.stack([media.background((320, 240)) // 12 for _ in range(10)])
    with pytest.raises(NoFaceDetectedError, match="very dark"):
        predict(write_video(tmp_path / "night.mp4", frames), model=str(model_dir))


def test_flat_scores_and_poor_light_are_judged_by_the_stated_thresholds():
    stats = quality.FaceStats()
    crop = np.full((3, 16, 16), 200, np.uint8)
    crop[:, ::2] = 20  # stripes: contrast and sharpness
    stats.add((360, 480, 3), np.array([[100.0, 100.0], [100.0 + quality.MIN_FACE_WIDTH_PX / 2, 150.0]]), crop)
    flat = np.full(7, 1 / 7)
    q = quality.assess(stats, 1.0, flat)
    assert q.entropy == pytest.approx(1.0) and q.top_margin == pytest.approx(0.0)
    assert any("nearly flat" in note for note in q.notes) and any("small" in note for note in q.notes)
    sure = quality.assess(None, 1.0, np.array([0.9, 0.05, 0.05]))
    assert not sure.notes and sure.face_width_px is None
    assert quality.assess(None, 0.3, np.array([0.9, 0.1])).notes == ("a face was found in only 30% of the frames",)


def test_the_cli_prints_the_note_and_the_json_carries_the_summary(model_dir, clips, capsys):
    assert main(["predict", str(clips["dark"]), "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()
    assert f"microx: note: {clips['dark']}: low confidence: the face is very dark" in captured.err
    assert main(["predict", str(clips["dark"]), "--model", str(model_dir), "--json"]) == 0
    item = json.loads(capsys.readouterr().out)[0]
    assert item["quality"]["low_confidence"] is True and item["quality"]["brightness"] < quality.MIN_BRIGHTNESS
    assert main(["predict", str(clips["sideways"]), "--model", str(model_dir)]) == 1
    assert "NoFaceDetectedError" in (err := capsys.readouterr().err) and "may be rotated" in err
