"""Face-crop input (CK+48's 48x48 crops, DFEW/AFEW-style face videos): the frame is the face box, the landmarks are
found inside it, upscaled; an input that is not a face crop is refused with a clear error.

The crops are made here from the astronaut photo (public domain, scikit-image) and scikit-image's coffee cup."""

import cv2
import numpy as np
import pytest
from skimage import data

from microx_hf.errors import NoFaceDetectedError, NotAFaceCropError
from microx_hf.extraction import MicroXExtraction
from microx_hf.landmarks import get_backend
from microx_hf.regions import CropBox, crop_boxes, crop_region, eye_centers
from microx_hf.stream import FACE_CROP_SIDE
from tests import media

BACKENDS = ["dlib", "mediapipe"]


@pytest.fixture(scope="module")
def astronaut_crop() -> tuple[np.ndarray, np.ndarray]:
    """A CK+48-like crop of the astronaut's face (48x48, grey as RGB) and where her landmarks fall in it once
    upscaled to FACE_CROP_SIDE (dlib's 68 points on the whole photo, mapped into the crop)."""
    photo = media.astronaut()
    face = max(get_backend("dlib").detect(photo), key=lambda f: f.score)
    x0, y0, x1, y1 = face.box
    side = 1.15 * (x1 - x0)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2 + 0.08 * (x1 - x0)])
    crop = crop_region(photo, CropBox(centre[0], centre[1], side, side, 0.0), 48)
    crop = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    # Photo pixels -> upscaled-crop pixels (pixel centres at integer coordinates, as `crop_region` cuts them).
    scale = FACE_CROP_SIDE / side
    truth = (face.points - centre) * scale + (FACE_CROP_SIDE - 1) / 2
    return crop, truth


@pytest.mark.parametrize("backend", BACKENDS)
def test_landmarks_are_found_in_a_face_crop_and_the_regions_sit_on_the_eyes_and_mouth(astronaut_crop, backend):
    crop, truth = astronaut_crop
    extractor = MicroXExtraction(face_crops=True, allow_still=True, landmark_backend=backend, encoder_crop_size=112)
    clip = extractor.extract_clip(crop[None])  # one frame
    assert clip.mask.all() and clip.faces_seen == 1
    points = clip.landmarks[0]
    iod = float(np.linalg.norm(np.subtract(*eye_centers(truth))))
    assert iod > 0.25 * FACE_CROP_SIDE  # the crop was upscaled: the eyes are far apart in its pixels
    # Eye centres and mouth corners within 0.15 inter-ocular distances of where they are in the photo.
    for found, expected in zip(eye_centers(points), eye_centers(truth), strict=True):
        assert np.linalg.norm(found - expected) < 0.15 * iod
    assert np.abs(points[[48, 54]] - truth[[48, 54]]).max() < 0.15 * iod
    # Each region's square holds its landmarks; the face region is the whole crop.
    boxes = crop_boxes(points, extractor.regions, extractor.geometry, extractor.region_scales, extractor.align)
    for region, index in (("left_eye", range(36, 42)), ("right_eye", range(42, 48)), ("mouth", range(48, 68))):
        box = boxes[region]
        assert np.abs(truth[list(index)] - (box.cx, box.cy)).max() < box.width / 2, region
    face = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
    assert np.abs(clip.crops[0, 0].astype(int) - face).mean() < 12  # the face crop is the input itself
    assert clip.encoder_crops.shape == (1, 3, 112, 112)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crop_of_something_else_is_refused_clearly(backend):
    coffee = cv2.resize(data.coffee(), (64, 64), interpolation=cv2.INTER_AREA)
    extractor = MicroXExtraction(face_crops=True, landmark_backend=backend)
    with pytest.raises(NotAFaceCropError, match="not a crop of one face|is a crop of one face") as caught:
        extractor.extract_clip(np.stack([coffee] * 3))
    message = str(caught.value)
    assert "face_crops=True" in message and "3 frames" in message and "turn face-crop mode off" in message
    assert isinstance(caught.value, NoFaceDetectedError)  # callers that catch "no face" catch this too


def test_a_face_crop_video_with_a_frame_of_something_else_masks_that_frame(astronaut_crop):
    crop, _ = astronaut_crop
    other = cv2.resize(data.coffee(), (48, 48), interpolation=cv2.INTER_AREA)
    clip = MicroXExtraction(face_crops=True, landmark_backend="mediapipe").extract_clip(np.stack([crop, other, crop]))
    assert clip.mask.any(axis=0).tolist() == [True, False, True]


def test_predict_and_the_cli_read_face_crops(astronaut_crop, tmp_path):
    from microx_hf import MicroXConfig, MicroXFeatureExtractor, MicroXForVideoClassification
    from microx_hf.predict import predict

    crop, _ = astronaut_crop
    config = MicroXConfig(image_size=24, num_frames=3, stem_channels=[4], hidden_size=4, head_hidden_size=5,
                          frame_encoder_size=32)  # fmt: skip
    model = MicroXForVideoClassification(config).eval()
    extractor = MicroXFeatureExtractor.from_config(config, landmark_backend="mediapipe", allow_still=True)
    frames = np.stack([crop] * 4)
    prediction = predict(frames, model, extractor, overlap=False, face_crops=True)
    assert prediction.face_fraction == 1.0 and not extractor.face_crops  # the caller's extractor is left alone
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)
    from microx_hf import cli

    parser = cli._parser()
    args = parser.parse_args(["predict", "x.png", "--face-crops", "--allow-still"])
    assert args.face_crops and args.allow_still
    cli._apply_options(extractor, None, False, args.face_crops)
    assert extractor.face_crops
