"""Tests for `microx_hf.video` on real files written by `tests/media.py` (OpenCV, and ffmpeg from imageio-ffmpeg)."""

import time

import cv2
import numpy as np
import pytest

from microx_hf.errors import (
    InvalidVideoError,
    MicroXError,
    VideoDecodeError,
    VideoLimitError,
    VideoNotFoundError,
)
from microx_hf.video import iter_frames, probe_video, read_video
from tests import media

SMALL = (160, 96)  # odd-ish sizes keep decoding fast and catch width/height swaps


def _source_index(frame: np.ndarray, sources: np.ndarray) -> int:
    """Index of the source frame closest to `frame` (the decoded frame was lossily compressed)."""
    errors = np.abs(sources.astype(np.int16) - frame.astype(np.int16)).mean(axis=(1, 2, 3))
    return int(np.argmin(errors))


@pytest.fixture(scope="module")
def pan_sources() -> np.ndarray:
    return media.face_frames(30, SMALL, motion="pan")


def _pan_video(tmp_path, fps: float, fourcc: str = "mp4v", suffix: str = ".mp4"):
    return media.write_video(tmp_path / f"pan_{fps:g}{suffix}", media.face_frames(30, SMALL, motion="pan"), fps, fourcc)


def test_probe_reports_size_fps_count(tmp_path):
    path = media.make_face_video(tmp_path / "a.mp4", n_frames=12, fps=30.0, size=SMALL)
    info = probe_video(path)
    assert (info.width, info.height) == SMALL
    assert info.source_fps == pytest.approx(30.0)
    assert info.frame_count == 12
    assert info.duration == pytest.approx(0.4)
    assert info.rotation == 0


def test_same_rate_gives_every_frame_in_order(tmp_path, pan_sources):
    frames, ts = read_video(_pan_video(tmp_path, 30.0), fps=30.0)
    assert frames.shape == (30, SMALL[1], SMALL[0], 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(ts, np.arange(30) / 30.0, atol=1e-9)
    assert [_source_index(f, pan_sources) for f in frames] == list(range(30))
    # RGB, not BGR: the decoded frame is close to the source frame, channel for channel.
    assert np.abs(frames[0].astype(int) - pan_sources[0]).mean() < 6


def test_25fps_resampled_to_30_repeats_frames_by_time(tmp_path, pan_sources):
    frames, ts = read_video(_pan_video(tmp_path, 25.0), fps=30.0)
    # 30 frames at 25 fps last 1.2 s: 36 targets at 30 fps.
    assert len(frames) == 36
    np.testing.assert_allclose(ts, np.arange(36) / 30.0, atol=1e-9)
    # At time k/30 the frame on screen is source frame floor(k * 25 / 30).
    expected = [int(np.floor(k * 25 / 30 + 1e-9)) for k in range(36)]
    assert [_source_index(f, pan_sources) for f in frames] == expected


def test_60fps_resampled_to_30_takes_every_second_frame(tmp_path, pan_sources):
    frames, ts = read_video(_pan_video(tmp_path, 60.0), fps=30.0)
    assert len(frames) == 15
    np.testing.assert_allclose(ts, np.arange(15) / 30.0, atol=1e-9)
    assert [_source_index(f, pan_sources) for f in frames] == list(range(0, 30, 2))


def test_fps_none_keeps_every_frame_with_source_timestamps(tmp_path):
    frames, ts = read_video(_pan_video(tmp_path, 25.0), fps=None)
    assert len(frames) == 30
    np.testing.assert_allclose(ts, np.arange(30) / 25.0, atol=1e-3)


def test_mjpg_avi_and_grey(tmp_path):
    path = media.make_face_video(tmp_path / "g.avi", n_frames=8, size=SMALL, grey=True, fourcc="MJPG")
    frames, ts = read_video(path)
    assert frames.shape == (8, SMALL[1], SMALL[0], 3)
    # Grey in, three (nearly) equal channels out.
    assert np.abs(frames[..., 0].astype(int) - frames[..., 2]).mean() < 3


def test_max_side_downscales_keeping_aspect(tmp_path):
    path = media.make_face_video(tmp_path / "a.mp4", n_frames=3, size=(640, 360))
    frames, _ = read_video(path, max_side=320)
    assert frames.shape[1:] == (180, 320, 3)
    frames, _ = read_video(path, max_side=None)
    assert frames.shape[1:] == (360, 640, 3)


def test_iter_frames_is_lazy_and_streams(tmp_path):
    path = media.make_face_video(tmp_path / "a.mp4", n_frames=30, size=SMALL)
    it = iter_frames(path)
    ts, frame = next(it)
    assert ts == 0.0 and frame.shape == (SMALL[1], SMALL[0], 3)
    it.close()  # releases the capture without reading the rest


def test_bad_arguments():
    with pytest.raises(ValueError, match="fps"):
        next(iter_frames("whatever.mp4", fps=0))
    with pytest.raises(ValueError, match="max_side"):
        next(iter_frames("whatever.mp4", max_side=0))


# Limits -------------------------------------------------------------------------------------------------------------


def test_too_long_is_refused_up_front(tmp_path):
    path = media.make_face_video(tmp_path / "a.mp4", n_frames=30, size=SMALL)  # 1.0 s
    start = time.perf_counter()
    with pytest.raises(VideoLimitError, match="limit"):
        next(iter_frames(path, max_duration=0.5))
    assert time.perf_counter() - start < 1.0


def test_too_long_is_caught_while_decoding(tmp_path):
    # 1.0 s is within the header slack of 0.8 s: the timestamps catch it.
    path = media.make_face_video(tmp_path / "a.mp4", n_frames=30, size=SMALL)
    seen = []
    with pytest.raises(VideoLimitError, match="more than 1 s"):
        for ts, _ in iter_frames(path, max_duration=0.8):
            seen.append(ts)
    assert seen and max(seen) <= 0.8


def test_default_limit_refuses_a_ten_minute_video(tmp_path):
    tiny = np.zeros((20, 16, 16, 3), np.uint8)
    # 1000 frames at 1 fps: the header says 1000 s, far over the default 600 s: refused before decoding.
    long = media.write_video(tmp_path / "long.mp4", np.concatenate([tiny] * 50), fps=1.0)
    start = time.perf_counter()
    with pytest.raises(VideoLimitError, match="about 1000 s"):
        next(iter_frames(long))
    assert time.perf_counter() - start < 1.0
    # 620 frames at 1 fps: within the header slack, stopped by the timestamps after 600 s.
    longish = media.write_video(tmp_path / "longish.mp4", np.concatenate([tiny] * 31), fps=1.0)
    with pytest.raises(VideoLimitError, match="more than 600 s"):
        read_video(longish, fps=1.0)


def test_too_many_frames_and_pixels(tmp_path):
    path = media.make_face_video(tmp_path / "a.mp4", n_frames=30, size=SMALL)
    with pytest.raises(VideoLimitError, match="30 frames"):
        read_video(path, max_frames=10)
    with pytest.raises(VideoLimitError, match="160x96"):
        read_video(path, max_pixels=10_000)


# Bad inputs: each a clear MicroX error, fast -------------------------------------------------------------------------


def _assert_clean(excinfo) -> None:
    """The error is ours, says something, and does not chain an OpenCV traceback."""
    assert isinstance(excinfo.value, MicroXError)
    assert len(str(excinfo.value)) > 20
    assert not isinstance(excinfo.value.__cause__, cv2.error)


def test_missing_path(tmp_path):
    with pytest.raises(VideoNotFoundError, match="not found") as excinfo:
        probe_video(tmp_path / "nope.mp4")
    assert isinstance(excinfo.value, FileNotFoundError) and isinstance(excinfo.value, InvalidVideoError)


def test_directory(tmp_path):
    with pytest.raises(InvalidVideoError, match="not a file"):
        probe_video(tmp_path)


def test_empty_file(tmp_path):
    with pytest.raises(InvalidVideoError, match="empty") as excinfo:
        read_video(media.make_empty_file(tmp_path / "e.mp4"))
    _assert_clean(excinfo)


def test_text_file_renamed_mp4(tmp_path):
    with pytest.raises(InvalidVideoError, match="not a video") as excinfo:
        read_video(media.make_text_file(tmp_path / "t.mp4"))
    _assert_clean(excinfo)
    assert not isinstance(excinfo.value, VideoDecodeError)


def test_truncated_mp4_without_index(tmp_path):
    good = media.make_face_video(tmp_path / "a.mp4", n_frames=30, size=SMALL)
    with pytest.raises(VideoDecodeError, match="truncated") as excinfo:
        read_video(media.make_truncated_video(good, tmp_path / "cut.mp4"))
    _assert_clean(excinfo)


def test_corrupt_mp4v(tmp_path):
    good = media.make_face_video(tmp_path / "a.mp4", n_frames=30, size=(320, 180), motion="pan")
    with pytest.raises(VideoDecodeError, match="truncated or corrupt") as excinfo:
        read_video(media.make_corrupt_video(good, tmp_path / "bad.mp4"))
    _assert_clean(excinfo)


def test_zero_frames(tmp_path):
    with pytest.raises(InvalidVideoError, match="no video frames"):
        read_video(media.make_zero_frame_video(tmp_path / "z.mp4"))
    with pytest.raises(InvalidVideoError, match="no video frames"):
        read_video(media.make_zero_frame_video(tmp_path / "z.avi", fourcc="MJPG"))


# ffmpeg-made files (imageio-ffmpeg's static binary) ---------------------------------------------------------------


@media.needs_ffmpeg
def test_audio_only(tmp_path):
    with pytest.raises(InvalidVideoError, match="audio only") as excinfo:
        read_video(media.make_audio_only(tmp_path / "tone.mp4"))
    _assert_clean(excinfo)


@media.needs_ffmpeg
def test_truncated_h264_with_index_first(tmp_path):
    good = media.make_h264_video(
        media.make_face_video(tmp_path / "a.mp4", size=SMALL, motion="pan"), tmp_path / "h.mp4"
    )
    assert len(read_video(good)[0]) == 30
    cut = media.make_truncated_video(good, tmp_path / "cut.mp4", keep=0.5)
    with pytest.raises(VideoDecodeError, match=r"only \d+ of the 30 frames") as excinfo:
        read_video(cut)
    _assert_clean(excinfo)


@media.needs_ffmpeg
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_h264_with_b_frames_resampled_in_presentation_order(tmp_path, pan_sources, suffix):
    path = media.make_h264_video(_pan_video(tmp_path, 25.0), tmp_path / f"b{suffix}", bframes=True)
    frames, ts = read_video(path, fps=30.0)
    assert len(frames) == 36
    expected = [int(np.floor(k * 25 / 30 + 1e-9)) for k in range(36)]
    assert [_source_index(f, pan_sources) for f in frames] == expected


@media.needs_ffmpeg
def test_rotation_metadata_is_applied(tmp_path):
    src = media.make_face_video(tmp_path / "a.mp4", n_frames=5, size=SMALL)
    path = media.make_rotated_video(src, tmp_path / "portrait.mp4", rotation=90)
    info = probe_video(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (SMALL[1], SMALL[0])
    frames, _ = read_video(path)
    assert frames.shape == (5, SMALL[0], SMALL[1], 3)
    upright = np.rot90(media.face_frames(1, SMALL)[0], k=-1)  # displayed = stored turned 90 degrees clockwise
    assert np.abs(frames[0].astype(int) - upright).mean() < 6
    assert np.abs(frames[0].astype(int) - np.rot90(upright, 2)).mean() > 20


@media.needs_ffmpeg
def test_variable_frame_rate_resampled_by_timestamps(tmp_path):
    # Gaps alternate 20 ms and 50 ms (average 28.6 fps): frame indices would drift, timestamps do not.
    source_ts = np.round(np.cumsum([0.0] + [0.02, 0.05] * 15), 6)
    path = media.make_vfr_video(tmp_path / "vfr.mp4", source_ts, size=SMALL, motion="pan")
    sources = media.face_frames(len(source_ts), SMALL, motion="pan")
    raw, raw_ts = read_video(path, fps=None)
    np.testing.assert_allclose(raw_ts, source_ts, atol=1e-3)
    frames, ts = read_video(path, fps=30.0)
    np.testing.assert_allclose(ts, np.arange(len(ts)) / 30.0, atol=1e-9)
    # Each target shows the frame on screen then: the last source frame starting at or before it.
    expected = [int(np.searchsorted(source_ts, t + 1e-6, side="right") - 1) for t in ts]
    assert [_source_index(f, sources) for f in frames] == expected
    assert ts[-1] <= source_ts[-1] + 0.05
