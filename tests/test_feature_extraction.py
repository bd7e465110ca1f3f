"""MicroXFeatureExtractor on real video files made from the astronaut photo: masks, crops, windows, save/load."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch
from transformers import BatchFeature

from microx_hf.configuration_microx import MicroXConfig
from microx_hf.errors import InvalidVideoError
from microx_hf.feature_extraction_microx import ClipCrops, MicroXFeatureExtractor
from microx_hf.regions import crop_regions
from microx_hf.windows import window_starts
from tests import media

REGIONS = ["face", "left_eye", "right_eye", "nose", "mouth"]


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


@pytest.fixture(scope="module")
def extractor() -> MicroXFeatureExtractor:
    return MicroXFeatureExtractor(num_frames=4, window_stride=3, crop_size=17, regions=REGIONS, landmark_backend="dlib")


@pytest.fixture(scope="module")
def reference_crops() -> np.ndarray:
    """Crops (R, C, S, S) of the upright face from the uncompressed photo, for comparing with video crops."""
    from microx_hf.landmarks import get_backend

    frame = media.face_frames(1)[0]
    points = get_backend("dlib").landmarks(frame, media.face_poses(1)[0][0].box).points
    return crop_regions(frame, points, REGIONS, 17)


@pytest.mark.parametrize("motion", ["pan", "zoom", "rotate"])
def test_masks_are_honest_and_crops_follow_the_face(tmp_path, extractor, reference_crops, motion):
    absent = (6, 7, 8, 9)
    path = media.make_face_video(tmp_path / f"{motion}.mp4", n_frames=18, motion=motion, absent_frames=absent)
    poses = media.face_poses(18, motion=motion, absent_frames=absent)
    clip = extractor.extract_clip(path)
    assert isinstance(clip, ClipCrops) and clip.landmark_backend == "dlib" and not clip.padded
    assert clip.crops.shape == (5, 18, 3, 17, 17) and clip.crops.dtype == np.uint8
    assert clip.mask.shape == (5, 18) and clip.landmarks.shape == (18, 68, 2)
    np.testing.assert_allclose(clip.timestamps, np.arange(18) / 30, atol=1e-3)
    present = np.array([bool(p) for p in poses])
    np.testing.assert_array_equal(clip.mask, np.broadcast_to(present, (5, 18)))
    assert not clip.crops[:, ~present].any() and np.isnan(clip.landmarks[~present]).all()
    for i in np.nonzero(present)[0]:
        pose = poses[i][0]
        left_eye = clip.landmarks[i, 36:42].mean(0)
        assert np.linalg.norm(left_eye - pose.left_eye) < 0.12 * pose.iod, f"frame {i}"
        # Aligned, IOD-scaled crops look like the upright face's crops whatever the motion.
        for r, name in enumerate(REGIONS):
            assert _ncc(clip.crops[r, i], reference_crops[r]) > 0.9, f"frame {i}, {name}"
    assert clip.face_fraction == pytest.approx(present.mean())


def test_call_returns_model_inputs(tmp_path, extractor):
    path = media.make_face_video(tmp_path / "a.mp4", n_frames=11, absent_frames=(10,))
    out = extractor(path, return_tensors="pt")
    assert isinstance(out, BatchFeature)
    starts = window_starts(11, 4, 3)
    assert out["pixel_values"].shape == (len(starts), 5, 4, 3, 17, 17)
    assert out["pixel_values"].dtype == torch.float32
    assert out["pixel_values"].min() >= -1.0 and out["pixel_values"].max() <= 1.0
    assert out["region_mask"].dtype == torch.bool and out["region_mask"].shape == (len(starts), 5, 4)
    assert not out["region_mask"][-1, :, -1].any() and out["region_mask"][0].all()
    np.testing.assert_allclose(out["window_starts"].numpy(), np.array(starts) / 30, atol=1e-3)
    assert out["landmarks"].shape == (11, 68, 2) and out["landmark_backend"] == "dlib"
    # Masked frames normalise to exactly the value of a zero pixel, and numpy output matches torch output.
    np_out = extractor(path)
    assert isinstance(np_out["pixel_values"], np.ndarray)
    np.testing.assert_allclose(np_out["pixel_values"], out["pixel_values"].numpy())
    assert (np_out["pixel_values"][-1, :, -1] == -1.0).all()


def test_arrays_lists_and_grey_frames(extractor):
    frames = media.face_frames(5, motion="pan")
    from_array = extractor.extract_clip(frames)
    from_list = extractor.extract_clip(list(frames))
    np.testing.assert_array_equal(from_array.crops, from_list.crops)
    assert from_array.mask.all()
    grey = media.face_frames(5, motion="pan", grey=True)[..., 0]  # (N, H, W)
    clip = extractor.extract_clip(grey)
    assert clip.mask.all() and clip.crops.shape == (5, 5, 3, 17, 17)
    assert (clip.crops[:, :, 0] == clip.crops[:, :, 1]).all()  # grey in, grey crops out
    np.testing.assert_allclose(clip.landmarks, from_array.landmarks, atol=0.05 * media.face_poses(1)[0][0].iod)


def test_grey_video_file(tmp_path, extractor):
    path = media.make_face_video(tmp_path / "grey.avi", n_frames=6, grey=True, fourcc="MJPG")
    clip = extractor.extract_clip(path)
    assert clip.mask.all()


def test_short_clip_is_padded_with_its_last_frame(extractor, caplog):
    frames = media.face_frames(2)
    with caplog.at_level(logging.INFO, logger="microx_hf.stream"):
        clip = extractor.extract_clip(frames)
    # The clip keeps its own frames; its one window repeats the last of them (microx_hf.windows).
    assert clip.padded and clip.num_frames == 2
    np.testing.assert_allclose(clip.timestamps, np.arange(2) / 30)
    assert "repeats the last frame" in caplog.text
    crops, mask, starts = extractor.windows(clip)
    assert crops.shape == (1, 5, 4, 3, 17, 17) and mask.all() and starts.tolist() == [0.0]
    np.testing.assert_array_equal(crops[0, :, 3], clip.crops[:, 1])
    np.testing.assert_array_equal(crops[0, :, 2], clip.crops[:, 1])


def test_video_without_a_face(tmp_path, extractor):
    clip = extractor.extract_clip(media.make_noface_video(tmp_path / "none.mp4", n_frames=5))
    assert not clip.mask.any() and not clip.crops.any() and clip.face_fraction == 0


def test_two_faces_one_is_followed(extractor):
    frames = media.face_frames(8, two_faces=True)
    poses = media.face_poses(8, two_faces=True)
    clip = extractor.extract_clip(frames)
    assert clip.mask.all()
    eyes = clip.landmarks[:, 36:42].mean(1)
    nearest = [
        int(np.argmin([np.linalg.norm(e - p.left_eye) for p in pose])) for e, pose in zip(eyes, poses, strict=True)
    ]
    assert len(set(nearest)) == 1


def test_bad_inputs_raise_clear_errors(extractor):
    with pytest.raises(InvalidVideoError, match="no frames"):
        extractor.extract_clip([])
    with pytest.raises(InvalidVideoError, match=r"\(N, H, W, 3\)"):
        extractor.extract_clip(np.zeros((2, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="geometry"):
        MicroXFeatureExtractor(geometry="round")
    with pytest.raises(ValueError, match="unknown region"):
        MicroXFeatureExtractor(regions=["face", "ear"])
    with pytest.raises(ValueError, match="landmark_backend"):
        MicroXFeatureExtractor(landmark_backend="openpose")


def test_settings_survive_save_and_load(tmp_path):
    extractor = MicroXFeatureExtractor(
        fps=25.0,
        num_frames=3,
        window_stride=2,
        regions=["mouth", "left_brow", "right_brow"],
        crop_size=13,
        geometry="paper",
        region_scales={"mouth": 1.6},
        align=False,
        image_mean=[0.4, 0.5, 0.6],
        image_std=[0.2, 0.3, 0.4],
        landmark_backend="dlib",
        detect_every=3,
        detect_max_side=320,
        max_duration=30.0,
        max_side=640,
        face_choice=1,
        allow_still=True,
    )
    extractor.extract_clip(media.face_frames(3))  # records the backend that produced the crops
    extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["landmark_backend_used"] == "dlib" and saved["geometry"] == "paper"
    assert saved["face_choice"] == 1 and saved["allow_still"] is True
    loaded = MicroXFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == extractor.to_dict()
    assert loaded.region_scales == {"mouth": 1.6, "left_brow": 1.2, "right_brow": 1.2}
    overridden = MicroXFeatureExtractor.from_pretrained(tmp_path, num_frames=5)
    assert overridden.num_frames == 5 and overridden.crop_size == 13


def test_from_config_follows_the_model_config():
    config = MicroXConfig(
        frame_encoder=None, regions=["face", "mouth", "left_brow", "right_brow"], num_frames=3, image_size=16
    )
    extractor = MicroXFeatureExtractor.from_config(config, window_stride=2)
    assert extractor.regions == config.regions and extractor.num_frames == 3 and extractor.crop_size == 16
    out = extractor(media.face_frames(4), return_tensors="pt")
    assert out["pixel_values"].shape == (2, 4, 3, 3, 16, 16)


def test_normalize_numpy_and_torch_agree(extractor):
    crops = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3, 6, 6), dtype=np.uint8)
    a = extractor.normalize(crops)
    b = extractor.normalize(torch.from_numpy(crops))
    assert a.dtype == np.float32 and b.dtype == torch.float32
    np.testing.assert_allclose(a, b.numpy(), atol=1e-6)
    assert a.min() >= -1 and a.max() <= 1


def test_auto_classes_load_the_extractor(tmp_path):
    from transformers import AutoFeatureExtractor, AutoImageProcessor

    import microx_hf

    config = MicroXConfig(frame_encoder=None, num_frames=3, image_size=16)
    config.save_pretrained(tmp_path)
    MicroXFeatureExtractor.from_config(config, landmark_backend="dlib").save_pretrained(tmp_path)
    assert (tmp_path / "image_processing_microx.py").is_file()
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["auto_map"]["AutoImageProcessor"]
    microx_hf.register()  # the folder's own code is for where it is not: tests/test_remote_code.py
    for auto in (AutoImageProcessor, AutoFeatureExtractor):
        for trust in (False, True):
            loaded = auto.from_pretrained(tmp_path, trust_remote_code=trust)
            assert type(loaded) is MicroXFeatureExtractor and loaded.crop_size == 16 and loaded.num_frames == 3


def test_paper_geometry_crops_the_features(extractor):
    paper = MicroXFeatureExtractor(
        num_frames=2, crop_size=17, regions=REGIONS, geometry="paper", landmark_backend="dlib"
    )
    frames = media.face_frames(2)
    clip = paper.extract_clip(frames)
    assert clip.mask.all()
    points = clip.landmarks[0]
    expected = crop_regions(frames[0], points, REGIONS, 17, geometry="paper")
    np.testing.assert_array_equal(clip.crops[:, 0], expected)
    # The paper's eye box is a flat strip: stretched to a square, it differs from the IOD square crop.
    assert _ncc(clip.crops[1, 0], extractor.extract_clip(frames).crops[1, 0]) < 0.9


def test_the_backend_that_ran_is_recorded(tmp_path, monkeypatch):
    """With FAN weights present, "auto" runs face_alignment and says so (random weights: no plausible face)."""
    from face_alignment.models import FAN

    from microx_hf.landmarks.fan_backend import FAN_WEIGHTS_FILE

    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(FAN(4).state_dict(), folder / FAN_WEIGHTS_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    extractor = MicroXFeatureExtractor(num_frames=2, crop_size=9, regions=["face"], landmark_backend="auto")
    clip = extractor.extract_clip(media.face_frames(2))
    assert clip.landmark_backend == "face_alignment" == extractor.landmark_backend_used
    assert extractor.to_dict()["landmark_backend_used"] == "face_alignment"
    assert extractor.to_dict()["landmark_backend"] == "auto"


def test_frames_are_streamed_not_kept(monkeypatch, extractor):
    """Only crops are kept: each decoded frame is freed once the next ones arrive."""
    import weakref

    import microx_hf.video

    frames = media.face_frames(8)
    refs: list[weakref.ref] = []

    class FakeFrames:  # what `iter_frames` returns, with fresh arrays as a decoder's
        still = False

        def __iter__(self):
            for i in range(len(frames)):
                frame = frames[i].copy()
                refs.append(weakref.ref(frame))
                yield i / 30, frame
                del frame
                assert all(ref() is None for ref in refs[:-2]), "an earlier frame is still held"

    monkeypatch.setattr(microx_hf.video, "iter_frames", lambda path, **kwargs: FakeFrames())
    clip = extractor.extract_clip("stream.mp4")
    assert clip.mask.all() and len(refs) == 8


def test_encoder_crops_are_the_face_square_at_the_encoders_size(tmp_path):
    from microx_hf import MicroXConfig

    config = MicroXConfig.from_preset("default", image_size=17, num_frames=4, frame_encoder_size=48)
    extractor = MicroXFeatureExtractor.from_config(config, landmark_backend="dlib")
    assert extractor.encoder_crop_size == 48 and extractor.encoder_region == "face"
    clip = extractor.extract_clip(media.face_frames(6))
    assert clip.encoder_crops.shape == (6, 3, 48, 48) and clip.encoder_crops.dtype == np.uint8
    # The same square as the 17 px face crop, only sharper: shrunk to 17 px they nearly agree.
    small = np.stack(
        [cv2.resize(c.transpose(1, 2, 0), (17, 17), interpolation=cv2.INTER_AREA) for c in clip.encoder_crops]
    )
    face = clip.crops[0].transpose(0, 2, 3, 1).astype(int)
    assert np.abs(small.astype(int) - face).mean() < 12
    batch = extractor(clip, return_tensors="pt")
    assert tuple(batch["encoder_pixel_values"].shape) == (len(batch["pixel_values"]), 4, 3, 48, 48)
    reloaded = MicroXFeatureExtractor.from_dict(extractor.to_dict())
    assert reloaded.encoder_crop_size == 48


# Several faces, stills ---------------------------------------------------------------------------------------------


FULL = {"detect_max_side": 1280}  # detect on the full frame: both faces are large enough for HOG there


def _two_sizes() -> tuple[np.ndarray, list]:
    """Frames with a small face on the left and a large one on the right (both upright)."""
    small = media._pose((160.0, 180.0), 1.0, 0.0)
    large = media._pose((450.0, 180.0), 1.4, 0.0)
    frame = media.render_frame((640, 360), [small, large])
    return np.stack([frame] * 6), [small, large]


def _followed(clip, poses) -> int:
    eye = clip.landmarks[0, 36:42].mean(0)
    return int(np.argmin([np.linalg.norm(eye - p.left_eye) for p in poses]))


@pytest.mark.parametrize(("face_choice", "expected"), [("largest", 1), (0, 0), (1, 1), ("0", 0)])
def test_face_choice_picks_the_face_and_the_clip_says_so(face_choice, expected):
    frames, poses = _two_sizes()
    extractor = MicroXFeatureExtractor(
        num_frames=4, crop_size=17, landmark_backend="dlib", face_choice=face_choice, **FULL
    )
    clip = extractor.extract_clip(frames)
    assert clip.mask.all()
    assert _followed(clip, poses) == expected
    assert clip.faces_seen == 2 and clip.followed_face == expected
    assert clip.face_choice == (int(face_choice) if str(face_choice).isdigit() else face_choice)


def test_face_choice_central_and_one_face():
    small = media._pose((360.0, 180.0), 1.0, 0.0)  # central but smaller
    large = media._pose((600.0, 180.0), 1.4, 0.0)
    frames = np.stack([media.render_frame((720, 360), [small, large])] * 5)
    clip = MicroXFeatureExtractor(
        num_frames=4, crop_size=17, landmark_backend="dlib", face_choice="central", **FULL
    ).extract_clip(frames)
    assert _followed(clip, [small, large]) == 0 and clip.faces_seen == 2 and clip.followed_face == 0
    one = MicroXFeatureExtractor(num_frames=4, crop_size=17, landmark_backend="dlib").extract_clip(media.face_frames(5))
    assert (one.faces_seen, one.followed_face, one.face_choice) == (1, 0, "auto")


def test_an_index_beyond_the_faces_follows_none():
    clip = MicroXFeatureExtractor(num_frames=4, crop_size=17, landmark_backend="dlib", face_choice=1).extract_clip(
        media.face_frames(5)
    )
    assert not clip.mask.any() and clip.faces_seen == 1 and clip.followed_face is None


def test_bad_face_choice_is_refused():
    for bad in ("biggest", -1, 1.5, True):
        with pytest.raises(ValueError, match="face_choice"):
            MicroXFeatureExtractor(face_choice=bad)


def test_stills_are_refused_unless_asked_for(tmp_path):
    from microx_hf.errors import StillImageError

    path = media.make_still(tmp_path / "photo.png.mp4", size=(640, 360))
    refusing = MicroXFeatureExtractor(num_frames=4, crop_size=17, landmark_backend="dlib")
    with pytest.raises(StillImageError, match="still image"):
        refusing.extract_clip(path)
    clip = MicroXFeatureExtractor(num_frames=4, crop_size=17, landmark_backend="dlib", allow_still=True).extract_clip(
        path
    )
    assert clip.still and clip.padded and clip.num_frames == 1 and clip.mask.all()  # one window repeats it
    video = refusing.extract_clip(media.make_face_video(tmp_path / "v.mp4", n_frames=5))
    assert not video.still and not video.padded
