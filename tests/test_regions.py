"""Region index sets, crop geometry (IOD squares, alignment, the paper's boxes) and horizontal flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microx_hf.landmarks import get_backend
from microx_hf.regions import (
    DEFAULT_REGION_SCALES,
    FLIP_PERMUTATION,
    PAPER_PADDING,
    REGION_INDICES,
    REGION_NAMES,
    CropBox,
    crop_boxes,
    crop_region,
    crop_regions,
    flip_landmarks,
    flip_permutation,
    hflip_crops,
    interocular_distance,
    roll_angle,
    validate_regions,
)
from tests import media


@pytest.fixture(scope="module")
def photo_points() -> np.ndarray:
    return get_backend("dlib").detect(media.astronaut())[0].points


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def test_index_sets_follow_ibug_with_image_sides():
    assert REGION_INDICES["left_eye"] == tuple(range(36, 42))
    assert REGION_INDICES["right_eye"] == tuple(range(42, 48))
    assert REGION_INDICES["mouth"] == tuple(range(48, 68))
    assert set(REGION_NAMES) == set(DEFAULT_REGION_SCALES)
    with pytest.raises(ValueError, match="unknown region"):
        validate_regions(["face", "chin"])
    with pytest.raises(ValueError, match="duplicates"):
        validate_regions(["face", "face"])


def test_landmarks_on_the_photo_have_image_left_eye_first(photo_points):
    left, right = photo_points[36:42].mean(0), photo_points[42:48].mean(0)
    assert left[0] < right[0]
    assert interocular_distance(photo_points) == pytest.approx(np.linalg.norm(right - left))
    assert abs(roll_angle(photo_points)) < 5


@pytest.mark.parametrize("align", [True, False])
def test_iod_boxes_contain_their_landmarks(photo_points, align):
    regions = list(REGION_NAMES)
    boxes = crop_boxes(photo_points, regions, "iod", align=align)
    iod = interocular_distance(photo_points)
    for name in regions:
        box = boxes[name]
        assert box.width == pytest.approx(DEFAULT_REGION_SCALES[name] * iod)
        assert box.contains(photo_points[list(REGION_INDICES[name])]).all(), name
    # Each feature is nearer its own crop's centre than any other crop's.
    eye = photo_points[36:42].mean(0)
    assert np.linalg.norm(eye - [boxes["left_eye"].cx, boxes["left_eye"].cy]) < 0.1 * iod


def test_aligned_boxes_turn_with_the_head():
    pose = media.face_poses(24, motion="rotate")[0][0]  # rolled by -20 degrees
    frame = media.render_frame((640, 360), [pose])
    points = get_backend("dlib").landmarks(frame, pose.box).points
    boxes = crop_boxes(points, ["face", "left_eye", "mouth"], align=True)
    assert boxes["face"].angle == pytest.approx(-pose.angle, abs=4)  # OpenCV's angle is counter-clockwise
    for name in ("left_eye", "mouth"):
        assert boxes[name].contains(points[list(REGION_INDICES[name])]).all()


def test_alignment_makes_a_rolled_face_look_upright():
    """The face crop of a face rolled by 20 degrees matches the upright crop when aligned, less when not."""
    backend = get_backend("dlib")
    upright_pose = media.face_poses(1)[0][0]
    upright_frame = media.render_frame((640, 360), [upright_pose])
    reference = crop_regions(upright_frame, backend.landmarks(upright_frame, upright_pose.box).points, ["face"], 32)
    rolled_pose = media.face_poses(24, motion="rotate")[0][0]
    rolled_frame = media.render_frame((640, 360), [rolled_pose])
    points = backend.landmarks(rolled_frame, rolled_pose.box).points
    aligned = crop_regions(rolled_frame, points, ["face"], 32, align=True)
    unaligned = crop_regions(rolled_frame, points, ["face"], 32, align=False)
    assert _ncc(aligned, reference) > 0.9
    assert _ncc(aligned, reference) > _ncc(unaligned, reference) + 0.1


def test_paper_boxes_are_the_padded_landmark_extents(photo_points):
    boxes = crop_boxes(photo_points, ["left_eye", "mouth", "nose", "face"], geometry="paper")
    eye = boxes["left_eye"]
    assert eye.cx - eye.width / 2 == pytest.approx(photo_points[36, 0] - PAPER_PADDING)
    assert eye.cx + eye.width / 2 == pytest.approx(photo_points[39, 0] + PAPER_PADDING)
    assert eye.cy - eye.height / 2 == pytest.approx(min(photo_points[38, 1], photo_points[40, 1]) - PAPER_PADDING)
    assert eye.angle == 0
    assert boxes["face"].contains(photo_points).all()
    mouth = boxes["mouth"]
    assert mouth.width == pytest.approx(abs(photo_points[54, 0] - photo_points[48, 0]) + 2 * PAPER_PADDING)
    assert mouth.height == pytest.approx(abs(photo_points[57, 1] - photo_points[51, 1]) + 2 * PAPER_PADDING)
    crops = crop_regions(media.astronaut(), photo_points, ["left_eye", "mouth"], 20, geometry="paper")
    assert crops.shape == (2, 3, 20, 20) and crops.dtype == np.uint8
    with pytest.raises(ValueError, match="geometry"):
        crop_boxes(photo_points, ["face"], geometry="square")


def test_crop_region_cuts_the_right_pixels():
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 120:160] = 255  # a white 40x20 block centred at (140, 50)
    crop = crop_region(image, CropBox(140, 50, 40, 20), 16)
    assert crop.shape == (16, 16, 3)
    assert crop[2:-2, 2:-2].min() > 200  # all white inside
    outside = crop_region(image, CropBox(140, 50, 80, 40), 16)
    assert outside[0, 0].max() == 0 and outside[8, 8].min() == 255
    # Large shrink factors are area-averaged: a fine checkerboard becomes flat grey, not aliased stripes.
    board = (np.indices((400, 400)).sum(0) % 2 * 255).astype(np.uint8)
    small = crop_region(board, CropBox(200, 200, 384, 384), 24)
    assert small.std() < 20 and abs(small.mean() - 127) < 20
    rotated = crop_region(image, CropBox(140, 50, 40, 20, angle=90), 16)
    assert rotated[8, 8].min() == 255


def test_flip_permutation_swaps_left_and_right(photo_points):
    assert sorted(FLIP_PERMUTATION) == list(range(68))
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))  # an involution
    image = media.astronaut()
    flipped_points = flip_landmarks(photo_points, image.shape[1])
    detected = get_backend("dlib").detect(np.ascontiguousarray(image[:, ::-1]))[0].points
    # The flipped photo's own landmarks agree with the flipped landmarks, point for point (left eye stays left).
    iod = interocular_distance(photo_points)
    assert np.abs(detected - flipped_points).mean() < 0.1 * iod
    assert flipped_points[36:42, 0].mean() < flipped_points[42:48, 0].mean()


def test_hflip_crops_swaps_regions_and_mirrors():
    regions = ["face", "left_eye", "right_eye", "mouth"]
    assert flip_permutation(regions) == [0, 2, 1, 3]
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (2, 4, 3, 3, 5, 7), dtype=np.uint8)  # (B, R, T, C, S, S')
    mask = rng.random((2, 4, 3)) > 0.5
    flipped, flipped_mask = hflip_crops(crops, mask, regions)
    np.testing.assert_array_equal(flipped[:, 1], crops[:, 2, ..., ::-1])
    np.testing.assert_array_equal(flipped[:, 0], crops[:, 0, ..., ::-1])
    np.testing.assert_array_equal(flipped_mask[:, 1], mask[:, 2])
    torch_crops, torch_mask = hflip_crops(torch.from_numpy(crops), torch.from_numpy(mask), regions)
    np.testing.assert_array_equal(torch_crops.numpy(), flipped)
    np.testing.assert_array_equal(torch_mask.numpy(), flipped_mask)
    one_clip, _ = hflip_crops(crops[0], None, regions, region_axis=0)  # (R, T, C, S, S)
    np.testing.assert_array_equal(one_clip, flipped[0])
    with pytest.raises(ValueError, match="mirror"):
        flip_permutation(["face", "left_eye"])
