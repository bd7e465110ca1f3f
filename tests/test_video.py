"""Tests for `microx_hf.video` on real files written by `tests/media.py` (OpenCV, and ffmpeg from imageio-ffmpeg)."""

import subprocess
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


@media.needs_ffmpeg
def test_too_long_is_caught_while_decoding_when_the_header_says_nothing(tmp_path):
    # A Matroska file written live declares no duration (its first and only cluster starts at 0) and OpenCV's frame
    # count is garbage: the timestamps stop it at the limit.
    path = media.make_long_video(tmp_path / "live.mkv", 4.0, fps=10.0, live=True)
    info = probe_video(path)
    assert info.frame_count is None and info.duration in (None, 0.0)
    seen = []
    with pytest.raises(VideoLimitError, match="more than 1 s") as excinfo:
        for ts, _ in iter_frames(path, fps=10.0, max_duration=1.0):
            seen.append(ts)
    assert seen and max(seen) <= 1.0
    assert excinfo.value.limit == "duration" and excinfo.value.maximum == 1.0


def test_a_header_that_lies_is_caught_while_decoding(tmp_path, monkeypatch):
    from microx_hf import video

    path = media.make_face_video(tmp_path / "a.mp4", n_frames=30, size=SMALL)  # 1.0 s
    monkeypatch.setattr(video, "container_duration", lambda _: 0.2)
    monkeypatch.setattr(video.cv2, "CAP_PROP_FRAME_COUNT", video.cv2.CAP_PROP_POS_FRAMES)  # "0 frames": unknown
    seen = []
    with pytest.raises(VideoLimitError, match="more than 0.50 s"):
        for ts, _ in iter_frames(path, max_duration=0.5):
            seen.append(ts)
    assert seen and max(seen) <= 0.5


def test_default_limit_refuses_a_ten_minute_video(tmp_path):
    tiny = np.zeros((20, 16, 16, 3), np.uint8)
    # 1000 frames at 1 fps: the header says 1000 s, over the default 600 s: refused before decoding.
    long = media.write_video(tmp_path / "long.mp4", np.concatenate([tiny] * 50), fps=1.0)
    start = time.perf_counter()
    with pytest.raises(VideoLimitError, match="lasts 1000 s, over the limit of 600 s. Cut it") as excinfo:
        next(iter_frames(long))
    assert time.perf_counter() - start < 1.0
    assert "max_duration" not in str(excinfo.value) and "ffmpeg -ss 0 -t 600" in str(excinfo.value)
    assert (excinfo.value.limit, excinfo.value.value, excinfo.value.maximum) == ("duration", 1000.0, 600.0)
    # 620 s is also refused up front now: the container's own duration is exact.
    longish = media.write_video(tmp_path / "longish.mp4", np.concatenate([tiny] * 31), fps=1.0)
    start = time.perf_counter()
    with pytest.raises(VideoLimitError, match="lasts 620 s"):
        next(iter_frames(longish, fps=1.0))
    assert time.perf_counter() - start < 1.0


@media.needs_ffmpeg
@pytest.mark.parametrize("name", ["long.mp4", "long.mkv", "long.webm", "live.mkv", "live.webm", "live.mp4"])
def test_over_long_videos_are_refused_within_two_seconds(tmp_path, name):
    path = media.make_long_video(tmp_path / name, 610.0, live=name.startswith("live"))
    start = time.perf_counter()
    with pytest.raises(VideoLimitError, match="over the limit of 600 s|more than 600 s"):
        for _ in iter_frames(path, fps=30.0, max_duration=600.0):
            pass
    assert time.perf_counter() - start < 2.0


@media.needs_ffmpeg
def test_a_video_just_over_the_limit_is_refused_up_front_and_one_at_it_is_read(tmp_path):
    # The Space's case: 60.06 s uploaded with a 60 s limit was decoded for 16 s before being refused.
    over = media.make_long_video(tmp_path / "over.mp4", 60.5, fps=2.0)
    start = time.perf_counter()
    with pytest.raises(VideoLimitError, match="lasts 60.50 s, over the limit of 60 s"):
        next(iter_frames(over, max_duration=60.0))
    assert time.perf_counter() - start < 1.0
    at = media.make_long_video(tmp_path / "at.mp4", 60.0, fps=2.0)
    assert probe_video(at).duration == pytest.approx(60.0) and probe_video(at).duration_source == "container"
    frames = list(iter_frames(at, fps=2.0, max_duration=60.0))
    assert len(frames) == 120


@media.needs_ffmpeg
def test_a_garbage_frame_count_is_not_taken_for_a_limit(tmp_path):
    # An AVI written to a pipe has no frame count in its header: OpenCV reports 2^30 frames.
    exe = media.ffmpeg_exe()
    src = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "2", "-c:v", "mjpeg", "-f", "avi", "pipe:1"]
    out = subprocess.run([exe, "-hide_banner", "-loglevel", "error", *src], capture_output=True, check=True).stdout
    path = tmp_path / "live.avi"
    path.write_bytes(out)
    assert probe_video(path).frame_count is None
    frames, _ = read_video(path, fps=10.0)
    assert len(frames) == 20


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


# Still images ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("photo.png", "PNG"), ("photo.jpg", "JPEG"), ("photo.png.mp4", "PNG")])
def test_still_images_are_refused_by_content(tmp_path, name, kind):
    from microx_hf.container import still_image_format
    from microx_hf.errors import StillImageError

    path = media.make_still(tmp_path / name)
    assert still_image_format(path) == kind
    with pytest.raises(StillImageError, match=f"is a still image \\({kind}\\), not a video") as excinfo:
        next(iter_frames(path))
    assert isinstance(excinfo.value, InvalidVideoError) and "allow_still=True" in str(excinfo.value)
    with pytest.raises(StillImageError):
        probe_video(path)


def test_a_still_is_read_as_one_frame_when_asked(tmp_path):
    path = media.make_still(tmp_path / "photo.jpg.mp4", size=(320, 240))
    frames = list(iter_frames(path, allow_still=True, max_side=160))
    assert len(frames) == 1 and frames[0][0] == 0.0
    assert frames[0][1].shape == (120, 160, 3)  # downscaled like video frames
    assert np.abs(frames[0][1].astype(int) - cv2.resize(media.face_frames(1, (320, 240))[0], (160, 120))).mean() < 8
    video = media.make_face_video(tmp_path / "clip.mp4", n_frames=5, size=SMALL)
    assert len(list(iter_frames(video, allow_still=True))) == 5  # videos are unaffected


def test_videos_are_not_taken_for_stills(tmp_path):
    from microx_hf.container import still_image_format

    assert still_image_format(media.make_face_video(tmp_path / "a.mp4", n_frames=3, size=SMALL)) is None
    assert still_image_format(media.make_face_video(tmp_path / "a.avi", n_frames=3, size=SMALL, fourcc="MJPG")) is None
    assert still_image_format(media.make_text_file(tmp_path / "t.png")) is None


# What the container says -------------------------------------------------------------------------------------------


@media.needs_ffmpeg
@pytest.mark.parametrize(
    ("name", "live", "low", "high"),
    [
        ("a.mp4", False, 30.0, 30.0),
        ("a.mov", False, 30.0, 30.0),
        ("a.mkv", False, 30.0, 30.0),
        ("a.webm", False, 30.0, 30.0),
        ("live.mkv", True, 20.0, 30.0),  # the last cluster's start: a lower bound
        ("live.webm", True, 20.0, 30.0),
        ("live.mp4", True, 10.0, 30.0),  # the last fragment's start
    ],
)
def test_container_duration(tmp_path, name, live, low, high):
    from microx_hf.container import container_duration

    path = media.make_long_video(tmp_path / name, 30.0, fps=10.0, live=live)
    assert low - 1e-6 <= container_duration(path) <= high + 1e-6


def test_container_duration_of_opencv_files_and_non_videos(tmp_path):
    from microx_hf.container import container_duration

    assert container_duration(media.make_face_video(tmp_path / "a.mp4", n_frames=15, size=SMALL)) == 0.5
    assert container_duration(media.make_text_file(tmp_path / "t.mp4")) is None
    assert container_duration(media.make_empty_file(tmp_path / "e.mp4")) is None
    assert container_duration(media.make_zero_frame_video(tmp_path / "z.mp4")) in (None, 0.0)
    truncated = media.make_truncated_video(media.make_face_video(tmp_path / "b.mp4", size=SMALL), tmp_path / "c.mp4")
    assert container_duration(truncated) is None  # OpenCV's writer puts the index last: cut off


# FFmpeg's and OpenCV's own messages stay off the terminal -----------------------------------------------------------


def _stderr_of_reading(path, env_extra: dict | None = None) -> tuple[str, str]:
    import os
    import sys

    code = (
        "import sys\nfrom microx_hf.video import read_video\nfrom microx_hf.errors import MicroXError\n"
        f"try:\n    read_video({str(path)!r})\nexcept MicroXError as e:\n    print(type(e).__name__)\n"
    )
    env = {**os.environ, **(env_extra or {})}
    for key in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL"):
        if key not in (env_extra or {}):
            env.pop(key, None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


@media.needs_ffmpeg
def test_decoder_messages_do_not_reach_the_terminal(tmp_path):
    good = media.make_face_video(tmp_path / "good.mp4", n_frames=20, size=SMALL)
    no_index = media.make_truncated_video(good, tmp_path / "no_index.mp4")
    h264 = media.make_h264_video(good, tmp_path / "h264.mp4")
    cut = media.make_truncated_video(h264, tmp_path / "cut.mp4", keep=0.5)
    for path, error in [
        (no_index, "VideoDecodeError"),
        (cut, "VideoDecodeError"),
        (media.make_text_file(tmp_path / "t.mp4"), "InvalidVideoError"),
    ]:
        out, err = _stderr_of_reading(path)
        assert out == error
        assert err == "", f"{path.name}: {err}"
    # The user's own setting wins: FFmpeg's message is what the test would see without the library's default.
    out, err = _stderr_of_reading(no_index, {"OPENCV_FFMPEG_LOGLEVEL": "16"})
    assert out.splitlines()[-1] == "VideoDecodeError" and "moov atom not found" in out + err
