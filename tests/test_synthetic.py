"""Synthetic expression clips (`training/synthetic/`): shapes, determinism, that the first frame carries no label,
that the landmarks move as the action units say (checked with the real dlib landmark model on the rendered frames),
identities and flips, and the written dataset (real mp4v files read back with OpenCV)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from microx_hf.errors import NoFaceDetectedError
from microx_hf.regions import FLIP_PERMUTATION
from microx_hf.video_writer import write_video
from tests.media import astronaut
from training import synthetic as S


@pytest.fixture(scope="module")
def face() -> S.FaceIdentity:
    return S.prepare_face(astronaut(), "astronaut")


def _geometry(points: np.ndarray) -> dict[str, float]:
    """Face-frame measurements in IOD units (y grows down the face)."""
    center, ex, ey, iod = S.face_frame(np.asarray(points, np.float64))

    def y(i: int) -> float:
        return float((points[i] - center) @ ey / iod)

    return {
        "corners": (y(48) + y(54)) / 2,  # mouth corners' height
        "gap": y(66) - y(62),  # inner-lip opening
        "brows": float(np.mean([y(i) for i in range(17, 27)])),
        "inner_brows": (y(21) + y(22)) / 2,
    }


def test_clip_shape_dtype_and_motion(face):
    for label in S.LABELS:
        frames = S.generate_clip(
            face.image, face.landmarks, label, np.random.default_rng(0), num_frames=7, size=(161, 123)
        )
        assert frames.shape == (7, 123, 161, 3)
        assert frames.dtype == np.uint8
        assert 20 < frames.mean() < 235
        assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 1.0  # head motion at least


def test_render_clip_reports_landmarks_and_onset(face):
    clip = S.render_clip(face.image, face.landmarks, "happy", np.random.default_rng(1), num_frames=20)
    assert clip.landmarks.shape == (20, 68, 2)
    assert clip.intensity.shape == (20,)
    assert clip.intensity[0] == 0.0
    assert np.all(np.diff(clip.intensity) >= -1e-6)  # an onset: never falls
    assert 0.65 * 0.999 <= clip.intensity[-1] <= 1.0
    json.dumps(clip.params)


def test_deterministic_for_a_seed(face):
    def make(seed: int) -> np.ndarray:
        return S.generate_clip(face.image, face.landmarks, "fear", np.random.default_rng(seed), 6, (96, 72))

    np.testing.assert_array_equal(make(5), make(5))
    assert not np.array_equal(make(5), make(6))


def test_early_frames_carry_no_label(face):
    """The same generator state gives the same frames until the onset starts; the labels differ only later."""
    clips = {
        label: S.render_clip(face.image, face.landmarks, label, np.random.default_rng(7), 12, (128, 96))
        for label in S.LABELS
    }
    first = clips["neutral"].frames[0]
    for label, clip in clips.items():
        np.testing.assert_array_equal(clip.frames[0], first, err_msg=label)
    for label in S.LABELS[1:]:
        moved = np.abs(clips[label].landmarks[-1] - clips["neutral"].landmarks[-1]).max()
        assert moved > 1.0, f"{label}: landmarks barely differ from neutral at the end ({moved:.2f} px)"


@pytest.mark.parametrize("label", ["happy", "surprise", "sad", "anger"])
def test_detected_landmarks_move_as_the_action_units_say(face, label):
    clip = S.render_clip(face.image, face.landmarks, label, np.random.default_rng(3), 12, (320, 240), augment=False)
    first, last = S.detect_landmarks(clip.frames[0]), S.detect_landmarks(clip.frames[-1])
    # The image followed the landmarks: dlib finds them where the generator put them.
    iod = S.face_frame(last)[3]
    assert np.linalg.norm(last - clip.landmarks[-1], axis=1).mean() < 0.06 * iod
    before, after = _geometry(first), _geometry(last)
    change = {k: after[k] - before[k] for k in before}
    if label == "happy":
        assert change["corners"] < -0.04  # lip corners up
    elif label == "surprise":
        assert change["gap"] > 0.15  # mouth open
        assert change["brows"] < -0.05  # brows up
    elif label == "sad":
        assert change["corners"] > 0.04  # lip corners down
        assert change["inner_brows"] < -0.04  # inner brows up
    elif label == "anger":
        assert change["brows"] > 0.03  # brows down
        assert change["gap"] < -0.02  # parted lips pressed together


def test_flip_keeps_image_left_indices(face):
    flipped = S.flip_face(face)
    assert flipped.landmarks[S.LEFT_EYE, 0].mean() < flipped.landmarks[S.RIGHT_EYE, 0].mean()
    assert flipped.landmarks[48, 0] < flipped.landmarks[54, 0]
    assert flipped.landmarks[0, 0] < flipped.landmarks[16, 0]
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))
    # The flipped photo's pixels under its landmarks are the original's under the mirrored ones.
    width = face.image.shape[1]
    p = face.landmarks[30].round().astype(int)
    q = flipped.landmarks[30].round().astype(int)
    assert q[0] == width - 1 - p[0] and q[1] == p[1]


def test_identities_differ_and_repeat(face):
    subjects = S.make_identities([face], per_face=3, seed=0)
    assert [s.name for s in subjects] == ["astronaut-00", "astronaut-01", "astronaut-02"]
    np.testing.assert_array_equal(subjects[0].image, face.image)
    for subject in subjects[1:]:
        assert subject.image.shape == face.image.shape
        assert np.abs(subject.landmarks - face.landmarks).max() > 1.0
        # Still a detectable face, with landmarks close to the ones the variant claims.
        found = S.detect_landmarks(subject.image)
        assert np.linalg.norm(found - subject.landmarks, axis=1).mean() < 0.08 * S.face_frame(found)[3]
    again = S.make_identities([face], per_face=3, seed=0)
    np.testing.assert_array_equal(again[2].image, subjects[2].image)


def test_load_faces_from_a_folder(tmp_path):
    cv2.imwrite(str(tmp_path / "astro.png"), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    (tmp_path / "notes.txt").write_text("not a photo")
    faces = S.load_faces(tmp_path, builtin=False)
    assert [f.name for f in faces] == ["astro"]
    with pytest.raises(FileNotFoundError):
        S.load_faces(tmp_path / "missing", builtin=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoFaceDetectedError):
        S.load_faces(tmp_path / "empty", builtin=False)


def test_unknown_label_is_refused(face):
    with pytest.raises(ValueError, match="unknown label"):
        S.generate_clip(face.image, face.landmarks, "boredom", np.random.default_rng(0), 4)


def _read_all(path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.stack(frames)


def test_main_writes_a_plain_folder_dataset(tmp_path):
    argv = ["--out_dir", str(tmp_path / "syn"), "--clips_per_label", "2", "--identities", "2", "--min_frames", "10",
            "--max_frames", "13", "--size", "96x74", "--seed", "3"]  # fmt: skip
    out = S.main(argv)
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == len(meta) == 2 * len(S.LABELS)
    assert set(rows[0]) == {"path", "label", "subject"}
    assert {r["label"] for r in rows} == set(S.LABELS)
    subjects = {r["subject"] for r in rows}
    assert len(subjects) == 2 * len(S.builtin_faces())  # the photo + one variant per built-in photo
    for row, info in zip(rows, meta, strict=True):
        path = out / row["path"]
        assert path.parent.parent.name == row["label"] and path.parent.name == row["subject"]
        frames = _read_all(path)
        assert frames.shape[1:] == (74, 96, 3)
        assert len(frames) == info["num_frames"]
        assert 10 <= info["num_frames"] <= 13
    # A second run refuses to mix with the first unless told to replace it.
    with pytest.raises(FileExistsError):
        S.main(["--out_dir", str(out), "--clips_per_label", "1", "--identities", "1", "--labels", "happy"])
    again = S.main([*argv, "--overwrite"])
    assert (again / "manifest.csv").read_text().splitlines()[1:] == [",".join(r.values()) for r in rows]
    # The project's plain-folder reader finds the same clips, labels and subjects by both routes.
    from training.sources.folder import read_folder

    expected = sorted((r["path"], r["label"], r["subject"]) for r in rows)
    for listing in (read_folder(out), read_folder(out / "manifest.csv")):
        assert sorted((c.source, c.label, c.subject) for c in listing.clips) == expected


@pytest.mark.slow  # two spawned workers each import microx_hf (transformers): about 10 s
def test_dataset_is_a_function_of_the_seed_not_of_num_proc(tmp_path):
    kwargs = dict(clips_per_label=1, seed=11, identities=2, num_frames=(10, 11), size=(64, 48), labels=["happy", "sad"])
    one = S.generate_dataset(tmp_path / "one", num_proc=1, **kwargs)
    two = S.generate_dataset(tmp_path / "two", num_proc=2, **kwargs)
    assert (one / "manifest.csv").read_text() == (two / "manifest.csv").read_text()
    assert (one / "metadata.jsonl").read_text() == (two / "metadata.jsonl").read_text()
    for line in (one / "manifest.csv").read_text().splitlines()[1:]:
        rel = line.split(",")[0]
        np.testing.assert_array_equal(_read_all(one / rel), _read_all(two / rel))


def test_odd_video_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="even"):
        S.generate_dataset(tmp_path, clips_per_label=1, size=(97, 75))
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 75, 97, 3), np.uint8))


def test_action_units_are_mirror_symmetric_and_contempt_is_one_sided(face):
    for name, field in S.AU_FIELDS.items():
        mirrored = field[FLIP_PERMUTATION] * (-1, 1)
        np.testing.assert_allclose(mirrored, field, err_msg=name)
    seen = set()
    for seed in range(6):
        clip = S.render_clip(
            face.image, face.landmarks, "contempt", np.random.default_rng(seed), 8, (96, 72), augment=False
        )
        change = _geometry_pair(clip.landmarks[0], clip.landmarks[-1])
        raised = "left" if change[48] < change[54] else "right"  # y grows down: the raised corner moved less
        assert abs(change[48] - change[54]) > 0.03, f"seed {seed}: lip corners moved alike {change}"
        assert raised == clip.params["side"]
        seen.add(raised)
    assert seen == {"left", "right"}


def _geometry_pair(before: np.ndarray, after: np.ndarray) -> dict[int, float]:
    """Vertical motion of the two lip corners (48, 54) in IOD units of the first frame's face frame."""
    _, _, ey, iod = S.face_frame(np.asarray(before, np.float64))
    return {i: float((after[i] - before[i]) @ ey / iod) for i in (48, 54)}
