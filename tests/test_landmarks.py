"""Landmark backends, the registry and the face tracker, on the astronaut photo and videos made from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microx_hf.errors import BackendUnavailableError
from microx_hf.landmarks import _REGISTRY as REGISTRY
from microx_hf.landmarks import (
    Face,
    FaceTracker,
    LandmarkBackend,
    available_backends,
    get_backend,
    register_backend,
    registered_backends,
)
from microx_hf.landmarks.fan_backend import FAN_WEIGHTS_FILE, FanBackend, decode_heatmaps
from microx_hf.landmarks.tracking import LANDMARK_SKIP_MAX, box_iou, plausible_landmarks
from tests import media

# The mission patch on the astronaut's suit, where dlib's HOG fires with a score of about 0.
PATCH_BOX = np.array([123.0, 330.0, 227.0, 434.0])


@pytest.fixture(scope="module")
def dlib_backend():
    return get_backend("dlib")


def _eyes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[36:42].mean(0), points[42:48].mean(0)


# --- registry ------------------------------------------------------------------------------------------------


def test_registry_lists_builtins_and_rejects_unknown_names():
    assert {"dlib", "face_alignment"} <= set(registered_backends())
    assert "dlib" in available_backends()
    with pytest.raises(ValueError, match="unknown landmark backend 'nope'"):
        get_backend("nope")
    with pytest.raises(TypeError):
        register_backend("bad")(object)
    with pytest.raises(ValueError, match="reserved"):
        register_backend("auto")


def test_registry_accepts_a_plugin_and_reports_its_unavailability():
    @register_backend("test_unavailable")
    class Unavailable(LandmarkBackend):
        @classmethod
        def check_available(cls):
            raise BackendUnavailableError("needs the moon: pip install moon")

        def detect_boxes(self, image):
            return []

        def landmarks(self, image_rgb, box):
            raise NotImplementedError

    try:
        assert "test_unavailable" in registered_backends()
        assert "test_unavailable" not in available_backends()
        with pytest.raises(BackendUnavailableError, match="pip install moon"):
            get_backend("test_unavailable")
    finally:
        REGISTRY.pop("test_unavailable")


def test_get_backend_reuses_instances(dlib_backend):
    assert get_backend("dlib") is dlib_backend
    assert dlib_backend.name == "dlib"


# --- dlib on the photo ---------------------------------------------------------------------------------------


def test_dlib_landmarks_on_the_astronaut_photo(dlib_backend):
    faces = dlib_backend.detect(media.astronaut())
    best = faces[0]
    assert best.points.shape == (68, 2) and best.points.dtype == np.float32
    # Measured once with this model: HOG box (179, 83)-(266, 170), eyes at (203.3, 101.5) and (246.7, 103.8).
    assert box_iou(best.box, np.array([179.0, 83.0, 266.0, 170.0])) > 0.9
    left, right = _eyes(best.points)
    assert np.linalg.norm(left - media.LEFT_EYE) < 3 and np.linalg.norm(right - media.RIGHT_EYE) < 3
    # Geometry: image-left eye first, the nose tip between the eyes and below, the mouth below the nose.
    nose, mouth = best.points[30], best.points[48:68].mean(0)
    assert left[0] < nose[0] < right[0]
    assert nose[1] > max(left[1], right[1]) + 10
    assert mouth[1] > nose[1] + 5
    assert plausible_landmarks(best.points, best.box)


def test_hog_false_positive_on_the_patch_is_not_followed(dlib_backend):
    image = media.astronaut()
    boxes = dlib_backend.detect_boxes(image)
    assert any(box_iou(b, PATCH_BOX) > 0.8 for b, _ in boxes), "the known false positive disappeared: update test"
    face = FaceTracker(dlib_backend, detect_max_side=512).update(image)
    assert face is not None and box_iou(face.box, np.array([179.0, 83.0, 266.0, 170.0])) > 0.9
    # The patch alone (face cut away) is not taken for a face.
    patch_only = np.ascontiguousarray(image[250:, :])
    assert any(box_iou(b, PATCH_BOX - [0, 250, 0, 250]) > 0.8 for b, _ in dlib_backend.detect_boxes(patch_only))
    assert FaceTracker(dlib_backend, detect_max_side=512).update(patch_only) is None


def test_plausibility_rejects_scrambled_points(dlib_backend):
    face = dlib_backend.detect(media.astronaut())[0]
    assert plausible_landmarks(face.points, face.box)
    assert not plausible_landmarks(face.points[::-1].copy(), face.box)  # chin and brows swapped
    upside_down = face.points.copy()
    upside_down[:, 1] = 300 - upside_down[:, 1]
    assert not plausible_landmarks(upside_down)
    assert not plausible_landmarks(face.points, face.box * 4)  # points far too small for the box


# --- tracking on videos --------------------------------------------------------------------------------------


@pytest.mark.parametrize("motion", ["pan", "zoom", "rotate"])
def test_tracker_follows_the_face_and_reports_absence(dlib_backend, motion):
    absent = (7, 8, 9, 10, 11)  # leaves on a frame without detection (7), returns after a detection frame
    frames = media.face_frames(24, motion=motion, absent_frames=absent)
    poses = media.face_poses(24, motion=motion, absent_frames=absent)
    tracker = FaceTracker(dlib_backend, detect_every=5)
    faces = [tracker.update(frame) for frame in frames]
    for i, (face, pose) in enumerate(zip(faces, poses, strict=True)):
        if not pose:
            assert face is None, f"frame {i}: face reported where there is none"
            continue
        assert face is not None, f"frame {i}: face missed"
        left, right = _eyes(face.points)
        iod = pose[0].iod
        assert np.linalg.norm(left - pose[0].left_eye) < 0.12 * iod, f"frame {i}"
        assert np.linalg.norm(right - pose[0].right_eye) < 0.12 * iod, f"frame {i}"
    # Detection ran every 5th frame while the face was followed, and on every frame while it was gone.
    assert tracker.stats["detections"] < 14


def test_tracker_with_detection_every_frame_matches(dlib_backend):
    frames = media.face_frames(24, motion="pan")[:6]
    every = FaceTracker(dlib_backend, detect_every=1)
    sparse = FaceTracker(dlib_backend, detect_every=6)
    for frame in frames:
        a, b = every.update(frame), sparse.update(frame)
        iod = np.linalg.norm(np.subtract(*_eyes(a.points)))
        assert np.abs(a.points - b.points).mean() < 0.05 * iod
    assert every.stats["detections"] == 6 and sparse.stats["detections"] == 1


def test_tracker_follows_one_of_two_faces(dlib_backend):
    frames = media.face_frames(12, two_faces=True)
    poses = media.face_poses(12, two_faces=True)
    assert len(dlib_backend.detect_boxes(frames[0])) == 2
    tracker = FaceTracker(dlib_backend, detect_every=3)
    faces = [tracker.update(f) for f in frames]
    assert all(f is not None for f in faces)
    followed = [
        int(np.argmin([np.linalg.norm(_eyes(f.points)[0] - p.left_eye) for p in pose]))
        for f, pose in zip(faces, poses, strict=True)
    ]
    assert len(set(followed)) == 1


def test_tracker_accepts_grey_frames(dlib_backend):
    frames = media.face_frames(6, grey=True)
    tracker = FaceTracker(dlib_backend)
    faces = [tracker.update(np.ascontiguousarray(f[..., 0])) for f in frames]  # (H, W) grey
    pose = media.face_poses(1)[0][0]
    assert all(f is not None for f in faces)
    assert np.linalg.norm(_eyes(faces[-1].points)[0] - pose.left_eye) < 0.12 * pose.iod


def test_tracker_rejects_bad_settings(dlib_backend):
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(dlib_backend, detect_every=0)
    with pytest.raises(ValueError, match="census_every"):
        FaceTracker(dlib_backend, census_every=0)


# --- several people ------------------------------------------------------------------------------------------


def _track(tracker: FaceTracker, frames: np.ndarray) -> list:
    return [tracker.update(frame) for frame in frames]


def test_a_second_person_who_comes_in_later_is_counted(dlib_backend):
    """Two different real faces (the astronaut, then Grace Hopper from frame 15 on): the census counts the second
    one while the first is followed; without it (the tracker before the fix) she is never seen."""
    frames, left, _ = media.two_people_frames(45, second_from=15)
    tracker = FaceTracker(dlib_backend)
    faces = _track(tracker, frames)
    assert tracker.faces_seen == 2 and tracker.followed_face == 0 and tracker.stats["censuses"] >= 1
    # The followed face is still the astronaut, on the left, in every frame.
    assert all(f is not None and np.linalg.norm(f.points.mean(0) - c) < 40 for f, c in zip(faces, left, strict=True))
    before = FaceTracker(dlib_backend, census_every=None)
    _track(before, frames)
    assert before.faces_seen == 1 and before.stats["censuses"] == 0


def test_two_people_from_the_start_and_one_person_alone(dlib_backend):
    frames, _, right = media.two_people_frames(12)
    tracker = FaceTracker(dlib_backend, face_choice=1)
    faces = _track(tracker, frames)
    assert (tracker.faces_seen, tracker.followed_face) == (2, 1)
    assert np.linalg.norm(faces[-1].points.mean(0) - right[-1]) < 40, "face 1 from the left is Grace Hopper"
    alone = FaceTracker(dlib_backend, census_every=5)
    _track(alone, media.face_frames(20))
    assert alone.faces_seen == 1 and alone.stats["censuses"] >= 2, "a census on one face counts one"


def test_a_person_coming_in_on_the_left_moves_the_followed_face_right(dlib_backend):
    frames, _, _ = media.two_people_frames(40, second_from=10)
    mirrored = np.ascontiguousarray(frames[:, :, ::-1])  # Grace Hopper now comes in on the left
    tracker = FaceTracker(dlib_backend)
    _track(tracker, mirrored)
    assert (tracker.faces_seen, tracker.followed_face) == (2, 1)


# --- face_alignment (FAN) ------------------------------------------------------------------------------------


@pytest.fixture
def fan_home(tmp_path, monkeypatch):
    """An empty torch home (no FAN weights) where downloading is impossible."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MICROX_OFFLINE", "1")  # the download path has its own tests (test_fan_download.py)

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    import face_alignment.utils

    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", no_download)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_fan_backend_without_weights_says_which_file_to_place(fan_home):
    assert "face_alignment" not in available_backends()
    with pytest.raises(BackendUnavailableError) as info:
        get_backend("face_alignment")
    assert FAN_WEIGHTS_FILE in str(info.value) and str(fan_home) in str(info.value)
    assert get_backend("auto").name == "dlib"


def test_fan_backend_loads_local_weights(fan_home):
    from face_alignment.models import FAN

    fan_home.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), fan_home / FAN_WEIGHTS_FILE)
    assert available_backends()[0] == "face_alignment"
    backend = get_backend("auto")
    assert isinstance(backend, FanBackend) and backend.weights_file == fan_home / FAN_WEIGHTS_FILE
    image = media.astronaut()
    face = backend.landmarks(image, np.array([179.0, 83.0, 266.0, 170.0]))
    assert isinstance(face, Face) and face.points.shape == (68, 2) and np.isfinite(face.points).all()
    # Random weights put the points anywhere, but always inside the square the network saw: side
    # 200 * (w + h) / 195 around the box centre moved up by 0.12 of its height.
    side = 200 * (87 + 87) / 195
    centre = np.array([222.5, 126.5 - 0.12 * 87])
    assert (face.points >= centre - side / 2).all() and (face.points <= centre + side / 2).all()
    faces = backend.detect(image)
    assert faces[0].score > 1 and all(f.points.shape == (68, 2) for f in faces)


def test_fan_backend_reports_a_broken_weights_file(fan_home):
    fan_home.mkdir(parents=True)
    (fan_home / FAN_WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(BackendUnavailableError, match="cannot load FAN weights"):
        get_backend("face_alignment")


def test_heatmap_decoding_matches_face_alignment():
    from face_alignment.utils import _get_preds_fromhm

    rng = np.random.default_rng(0)
    heatmaps = rng.random((68, 64, 64)).astype(np.float32)
    heatmaps[0, 0, 5] = 3.0  # a peak on the border: no sub-pixel step
    ours, peaks = decode_heatmaps(heatmaps)
    flat = heatmaps.reshape(1, 68, -1)
    idx = flat.argmax(-1)
    # The pure-Python body of face_alignment's numba function (compiling it would take 10 s).
    theirs, _ = _get_preds_fromhm.py_func(heatmaps[None].copy(), idx.copy())
    np.testing.assert_allclose(ours, theirs[0], atol=1e-5)
    np.testing.assert_allclose(peaks, flat[0, np.arange(68), idx[0]])


def test_tracker_finds_faces_too_small_for_the_detection_size(dlib_backend):
    """Two faces in a 1280x560 frame are about 134 px, 50 px once the frame is shrunk to 480 px: too small for HOG."""
    import cv2

    frame = media.face_frames(1, size=(1280, 560), two_faces=True)[0]
    small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (480, 210), interpolation=cv2.INTER_LINEAR)
    assert dlib_backend.detect_boxes(small) == []
    tracker = FaceTracker(dlib_backend, detect_max_side=480)
    face = tracker.update(frame)
    assert face is not None
    pose = min(
        media.face_poses(1, size=(1280, 560), two_faces=True)[0],
        key=lambda p: np.linalg.norm(p.left_eye - face.points[36:42].mean(0)),
    )
    assert np.linalg.norm(face.points[36:42].mean(0) - pose.left_eye) < 0.12 * pose.iod
    # While it is followed, re-detection in its neighbourhood keeps it (no fall back to the small frame).
    assert all(tracker.update(frame) is not None for _ in range(6))


def test_tracker_starts_with_the_large_central_face(dlib_backend):
    big = media._pose((320.0, 190.0), 1.4, 8.0)  # a little rolled: HOG scores it lower than the small face
    small = media._pose((565.0, 85.0), 0.95, 0.0)
    frame = media.render_frame((640, 360), [small, big])
    (_, first), (_, second) = dlib_backend.detect_boxes(frame)
    assert first > second + 0.3  # the small corner face has the better score ...
    face = FaceTracker(dlib_backend).update(frame)  # ... but the large central one is followed
    assert np.linalg.norm(face.points[36:42].mean(0) - big.left_eye) < 0.12 * big.iod


# --- skipping the landmark model while the face holds still (`landmark_skip_shift`) ---------------------------


def _follow(backend, frames, **kwargs) -> tuple[FaceTracker, list[np.ndarray], list[int]]:
    """Every frame's points (NaN where no face) and the indices of the frames whose landmarks were reused."""
    tracker = FaceTracker(backend, **kwargs)
    points, reused = [], []
    for i, frame in enumerate(frames):
        before = tracker.stats["skipped"]
        face = tracker.update(frame)
        points.append(np.full((68, 2), np.nan) if face is None else face.points)
        if tracker.stats["skipped"] > before:
            reused.append(i)
    return tracker, points, reused


def _slow_pan(n: int = 150) -> tuple[list, list]:
    """Frames of a face panning slowly (about 1% of its inter-ocular distance a frame), and its true poses."""
    size = (640, 360)
    poses = [pose for (pose,) in media.face_poses(n * 4, size, "pan")][:n]
    return [media.render_frame(size, [pose]) for pose in poses], poses


@pytest.mark.parametrize("backend_name", ["dlib", "mediapipe"])
def test_skipped_landmarks_follow_the_face_as_the_model_would(backend_name):
    backend = get_backend(backend_name)
    frames, poses = _slow_pan()
    step = np.linalg.norm(poses[1].center - poses[0].center) / poses[0].iod
    assert 0.005 < step < 0.02  # slow enough to skip at 0.02, fast enough that a shift must be applied
    _, full, none_reused = _follow(backend, frames)
    tracker, gated, reused = _follow(backend, frames, landmark_skip_shift=0.02)
    assert none_reused == [] and len(reused) >= len(frames) // 3
    assert tracker.stats["skipped"] == len(reused)
    # Detection frames always run the model, and never more than LANDMARK_SKIP_MAX frames in a row reuse one pass.
    assert not set(reused) & set(range(0, len(frames), tracker.detect_every))
    runs = np.split(np.asarray(reused), np.flatnonzero(np.diff(reused) > 1) + 1)
    assert max(len(run) for run in runs) <= LANDMARK_SKIP_MAX
    # Reused landmarks are the last full pass moved with the face: by its true motion since that pass, within half
    # a pixel, and within a few hundredths of the inter-ocular distance (a landmark model's own frame-to-frame
    # jitter; dlib's points are whole pixels) of where the model would have put them.
    gated, full = np.stack(gated), np.stack(full)
    last_full = np.array([max(j for j in range(i) if j not in reused) for i in reused])
    moved = (gated[reused] - gated[last_full]).mean(axis=1)  # (K, 2)
    truth = np.stack([poses[i].center - poses[j].center for i, j in zip(reused, last_full, strict=True)])
    miss = np.linalg.norm(moved - truth, axis=1)
    assert miss.max() < 0.5 and miss.mean() < 0.4 * np.linalg.norm(truth, axis=1).mean(), (moved, truth)
    iod = np.array([pose.iod for pose in poses])[reused]
    error = np.median(np.linalg.norm(gated[reused] - full[reused], axis=2), axis=1) / iod
    assert np.median(error) < 0.03 and np.percentile(error, 90) < 0.06, error


def test_a_changed_face_is_measured_again_even_without_motion(dlib_backend):
    frames, poses = _slow_pan(1)
    still = [frames[0]] * 6
    covered = frames[0].copy()
    x0, y0, x1, y1 = poses[0].box.astype(int)
    covered[y0:y1, x0:x1] = np.random.default_rng(0).integers(0, 255, covered[y0:y1, x0:x1].shape)  # something passes
    tracker, _, reused = _follow(dlib_backend, [*still, covered], landmark_skip_shift=0.02)
    assert reused == [1, 2, 3, 4]  # frame 0 and 5 detect; the covered frame 6 runs the model
    assert tracker.stats["skipped"] == 4


def test_skipping_is_off_by_default_and_a_saved_setting(tmp_path):
    from microx_hf.extraction import MicroXExtraction
    from microx_hf.feature_extraction_microx import MicroXFeatureExtractor

    assert (
        MicroXExtraction().landmark_skip_shift is None and FaceTracker(get_backend("dlib")).landmark_skip_shift is None
    )
    extractor = MicroXFeatureExtractor(landmark_skip_shift=0.02, landmark_backend="mediapipe")
    extractor.save_pretrained(tmp_path)
    assert MicroXFeatureExtractor.from_pretrained(tmp_path).landmark_skip_shift == 0.02
    reread = MicroXExtraction.from_json_file(tmp_path / "preprocessor_config.json")
    assert reread.landmark_skip_shift == 0.02 and reread.landmark_backend == "mediapipe"
    stream = reread.stream(media.face_frames(12))
    for _ in stream:
        pass
    assert stream.tracker.landmark_skip_shift == 0.02 and stream.tracker.stats["skipped"] > 0
    for bad in (0, -0.01, 0.5, "0.02", True):
        with pytest.raises(ValueError, match="landmark_skip_shift"):
            MicroXExtraction(landmark_skip_shift=bad)
