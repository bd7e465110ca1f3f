"""Video decoding with OpenCV: probing, rotation, resampling to a fixed frame rate by timestamps, limits, windows.

MicroX reads faces over time at the paper's 30 fps (10 frames = 1/3 s), whatever rate the file was recorded at.
Phone videos often have a variable frame rate and a frame count in the header that is wrong, and seeking by frame
position can return the wrong frame (docs/MEASUREMENTS.md), so the reader here:

- decodes sequentially, `grab()`-ing every frame and `retrieve()`-ing (converting) only frames it will emit;
- takes each frame's presentation time from `CAP_PROP_POS_MSEC` (falling back to index / fps where the container
  gives no usable time) and emits, at every target time k / fps, the frame on screen at that time;
- applies the container's rotation metadata (`CAP_PROP_ORIENTATION_META`) itself, so portrait phone videos come out
  upright on every OpenCV build;
- downscales frames whose longer side exceeds `max_side`;
- turns every bad input into a `microx_hf.errors` exception with a message that says what to do;
- checks the limits (duration, frame count, frame size) from the container before decoding anything (the
  duration from the header itself, `microx_hf.container`), and again while decoding, since headers can lie;
- refuses still images (PNG, JPEG, ... whatever their name) unless asked to read one as a one-frame clip;
- keeps FFmpeg's and OpenCV's own messages ("moov atom not found") off the terminal: the errors here say the same,
  clearer. Set `OPENCV_FFMPEG_LOGLEVEL` (e.g. 32) or `OPENCV_LOG_LEVEL` yourself to see them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# FFmpeg reads its log level once, when OpenCV first opens a file with it, so this must be set before that; it is
# only a default (a user's own setting wins), and it cannot help if the process opened a video with OpenCV before
# importing MicroX.
_USER_FFMPEG_LOGLEVEL = "OPENCV_FFMPEG_LOGLEVEL" in os.environ
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .container import container_duration, still_image_format  # noqa: E402
from .errors import (  # noqa: E402
    InvalidVideoError,
    StillImageError,
    VideoDecodeError,
    VideoLimitError,
    VideoNotFoundError,
)

logger = logging.getLogger(__name__)

# FFmpeg gives up on opening or reading after this long instead of blocking forever (network mounts, pipes).
OPEN_TIMEOUT_MS = 30_000
READ_TIMEOUT_MS = 30_000
# Frames this large (8K is 33 M pixels) are refused rather than decoded: one would take hundreds of MB.
MAX_PIXELS = 8192 * 8192
# More source frames than this is refused (10 minutes at 240 fps fits).
MAX_SOURCE_FRAMES = 200_000
# A file that decodes fewer than this share of the frames its header promises is reported as truncated.
_MIN_DECODED_SHARE = 0.9
# A duration from the header counts as over the limit beyond this margin (seconds): container durations are exact
# to a millisecond or so, but an audio track may run a little longer than the video.
_DURATION_MARGIN = 0.05
# A duration estimated as frame count / nominal rate is trusted only this far: the count can be a few percent off
# (98 reported, 95 decoded), and with a variable frame rate the nominal rate is the highest one, so the estimate
# errs short.
_COUNT_SLACK = 1.05

_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass
class VideoInfo:
    """What the container says about a video.

    Attributes:
        path: The file.
        width: Width of the frames as displayed (after rotation).
        height: Height of the frames as displayed (after rotation).
        source_fps: The container's nominal frame rate (0.0 where it gives none).
        frame_count: The container's frame count; may be off by a few frames, None where unknown.
        duration: Seconds: the container's own duration where it declares one (`duration_source` "container"),
            else frame_count / source_fps ("frame_count"); None where neither is known.
        rotation: Clockwise rotation in degrees (0, 90, 180, 270) applied to the stored frames for display.
        duration_source: Where `duration` comes from: "container", "frame_count" or None.
    """

    path: str
    width: int
    height: int
    source_fps: float
    frame_count: int | None
    duration: float | None
    rotation: int
    duration_source: str | None = None


# OpenCV's own log level is process-wide; it is lowered while MicroX opens or decodes a file and restored once no
# decode is running (a count, since decodes may overlap in threads).
_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_level: int | None = None


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (e.g. "can't be used to capture by name") while MicroX reads a video.

    Does nothing when the user set `OPENCV_LOG_LEVEL` or `OPENCV_FFMPEG_LOGLEVEL`: they want to see them.
    """
    global _quiet_depth, _saved_level
    if _USER_FFMPEG_LOGLEVEL or "OPENCV_LOG_LEVEL" in os.environ:
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_level is not None:
                cv2.utils.logging.setLogLevel(_saved_level)


def _sniff(path: Path) -> str:
    """Classify a file OpenCV could not open, from its bytes: a reason for the error message."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64)
        if size <= 32 * 2**20:
            f.seek(0)
            body = f.read()
        else:  # the MP4 index sits at the start or at the end
            f.seek(-16 * 2**20, 2)
            body = head + f.read()
    if head[4:8] == b"ftyp":
        if b"moov" not in body:
            return "truncated"  # the index (moov box) of an MP4/MOV is missing: an interrupted copy or recording
        if not re.search(rb"hdlr.{8}vide", body, re.DOTALL):
            return "audio" if re.search(rb"hdlr.{8}soun", body, re.DOTALL) else "no_frames"
        return "corrupt"
    if head[:3] == b"ID3" or head[:4] in (b"fLaC",) or (head[:4] == b"RIFF" and head[8:12] == b"WAVE"):
        return "audio"
    if head[:2] == b"\xff\xfb" or head[:2] == b"\xff\xf3" or head[:2] == b"\xff\xf1":
        return "audio"  # MPEG audio / ADTS AAC frame sync
    video_magic = (
        head[:4] == b"\x1a\x45\xdf\xa3"  # Matroska / WebM
        or (head[:4] == b"RIFF" and head[8:11] == b"AVI")
        or head[:4] in (b"OggS", b"FLV\x01", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")
        or (len(head) > 0 and head[0] == 0x47 and size >= 188)  # MPEG-TS sync byte
    )
    return "corrupt" if video_magic else "not_video"


def _check_path(path: Path) -> None:
    if not path.exists():
        raise VideoNotFoundError(f"Video not found: {path}. Check the path (it is relative to {Path.cwd()}).")
    if not path.is_file():
        raise InvalidVideoError(f"{path} is not a file. Pass the path of a video file (e.g. .mp4, .avi, .mov).")
    if path.stat().st_size == 0:
        raise InvalidVideoError(f"{path} is empty (0 bytes). Re-export or re-download the video.")


def _still_error(path: Path, kind: str) -> StillImageError:
    return StillImageError(
        f"{path} is a still image ({kind}), not a video: MicroX reads emotion from how a face moves over time. Pass "
        "a video of the face (a few seconds), or, to score this single frame anyway, ask for it explicitly: "
        "MicroXFeatureExtractor(allow_still=True) (iter_frames(..., allow_still=True)).",
        path=str(path),
        kind=kind,
    )


def _still_kind(path: Path, allow_still: bool) -> str | None:
    """The still-image format of an existing file (None for anything else), recognised by its content; raises
    `StillImageError` for a still unless `allow_still`. The one place a file is told apart from a video."""
    _check_path(path)
    kind = still_image_format(path)
    if kind is not None and not allow_still:
        raise _still_error(path, kind)
    return kind


def _open(path: Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video (not a still: `_still_kind` first) with OpenCV's FFmpeg backend or raise the matching MicroX
    error."""
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
    try:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    except cv2.error as e:  # pragma: no cover - OpenCV raises only on exotic builds
        raise VideoDecodeError(f"OpenCV failed to open {path}: {e}") from e
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) if cap.isOpened() else 0
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) if cap.isOpened() else 0
    if not cap.isOpened() or width <= 0 or height <= 0:
        cap.release()
        reason = _sniff(path)
        if reason == "audio":
            raise InvalidVideoError(f"{path} has no video stream (audio only). MicroX needs a video of a face.")
        if reason == "no_frames":
            raise InvalidVideoError(
                f"{path} contains no video frames (an empty recording?). Record or export it again."
            )
        if reason == "truncated":
            raise VideoDecodeError(
                f"{path} is an MP4/MOV without its index (moov box): the file is truncated, e.g. an interrupted "
                "download or recording. Copy or export it again."
            )
        if reason == "corrupt":
            raise VideoDecodeError(
                f"{path} looks like a video container but OpenCV/FFmpeg cannot decode it (corrupt, or a codec this "
                "OpenCV build lacks). Re-encode it, e.g. `ffmpeg -i in -c:v libx264 out.mp4`."
            )
        raise InvalidVideoError(
            f"{path} is not a video OpenCV can read (unknown format). Pass a video file such as .mp4, .avi or .mov."
        )
    # Rotation is applied here, not by OpenCV, so every build behaves alike.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    rotation = int(round(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0)) % 360
    if rotation not in (0, *_ROTATIONS):
        logger.warning("%s: rotation %d is not a multiple of 90 degrees; ignored", path, rotation)
        rotation = 0
    # With auto-orientation off OpenCV reports the stored size; report the displayed one.
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if rotation in (90, 270):
        width, height = height, width
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = 0.0
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
    # A file written live has no count: OpenCV then reports garbage (-2^64, 2^30); a frame takes at least a byte.
    frame_count = int(count) if np.isfinite(count) and 0 < count <= path.stat().st_size else None
    duration, source = container_duration(path), "container"
    estimate = frame_count / fps if frame_count and fps else None
    # Some container durations are lower bounds (a file written live: its last fragment's or cluster's start).
    if estimate is not None and (duration is None or estimate > duration):
        duration, source = estimate, "frame_count"
    info = VideoInfo(str(path), width, height, fps, frame_count, duration, rotation, source if duration else None)
    return cap, info


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size, frame rate, frame count, duration and rotation without decoding it.

    Raises:
        VideoNotFoundError: The path does not exist.
        StillImageError: A still image, not a video.
        InvalidVideoError: Not a video (empty, text, audio only).
        VideoDecodeError: A video container that cannot be decoded (truncated, corrupt).
    """
    path = Path(path)
    with quiet_opencv():
        _still_kind(path, allow_still=False)
        cap, info = _open(path)
        cap.release()
    return info


def _seconds(value: float) -> str:
    """A duration for a message: "610 s", "60.06 s" (enough digits to differ from a limit it just exceeds)."""
    return f"{value:.0f} s" if abs(value - round(value)) < 0.005 or value >= 100 else f"{value:.2f} s"


def _too_long(path: str, duration: float | None, max_duration: float) -> VideoLimitError:
    lasts = f"lasts {_seconds(duration)}" if duration is not None else f"lasts more than {_seconds(max_duration)}"
    limit = _seconds(max_duration)
    return VideoLimitError(
        f"{path} {lasts}, over the limit of {limit}. Cut it into clips of at most {limit}, e.g. "
        f"`ffmpeg -ss 0 -t {max_duration:g} -i in.mp4 -c copy part1.mp4` keeps the first {limit}.",
        limit="duration",
        value=duration,
        maximum=max_duration,
    )


def _too_many_frames(path: str, count: int | None, max_frames: int) -> VideoLimitError:
    has = f"has {count} frames" if count is not None else f"has more than {max_frames} frames"
    return VideoLimitError(
        f"{path} {has}, over the limit of {max_frames}. Cut it into shorter clips, or lower its frame rate, e.g. "
        "`ffmpeg -i in.mp4 -r 30 out.mp4`.",
        limit="frames",
        value=count,
        maximum=max_frames,
    )


def _check_limits(info: VideoInfo, max_duration: float | None, max_frames: int | None, max_pixels: int | None):
    """Refuse, before any decoding, a video whose container shows it is over a limit."""
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise VideoLimitError(
            f"{info.path} is {info.width}x{info.height} ({info.width * info.height / 1e6:.0f} M pixels per frame), "
            f"over the limit of {max_pixels / 1e6:.0f} M. Downscale it first, e.g. "
            "`ffmpeg -i in -vf scale=1280:-2 out.mp4`.",
            limit="pixels",
            value=info.width * info.height,
            maximum=max_pixels,
        )
    if max_duration is not None and info.duration is not None:
        # The container's own duration is exact; count / nominal rate only an estimate (see _COUNT_SLACK).
        slack = 1.0 if info.duration_source == "container" else _COUNT_SLACK
        if info.duration > slack * max_duration + _DURATION_MARGIN:
            raise _too_long(info.path, info.duration, max_duration)
    if max_frames is not None and info.frame_count is not None and info.frame_count > max_frames:
        raise _too_many_frames(info.path, info.frame_count, max_frames)


class VideoFrames:
    """The frames of a video file, decoded as they are iterated (what `iter_frames` returns).

    Attributes:
        still: Whether the file is a still image read as one frame (`allow_still`); None until iteration starts.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | None,
        max_duration: float | None,
        max_side: int | None,
        max_frames: int | None,
        max_pixels: int | None,
        allow_still: bool,
    ) -> None:
        self.path = Path(path)
        self.still: bool | None = None
        self._frames = self._decode(fps, max_duration, max_side, max_frames, max_pixels, allow_still)

    def __iter__(self) -> VideoFrames:
        return self

    def __next__(self) -> tuple[float, np.ndarray]:
        return next(self._frames)

    def close(self) -> None:
        """Stop decoding and release the file (also done when iteration ends)."""
        self._frames.close()

    def _decode(self, fps, max_duration, max_side, max_frames, max_pixels, allow_still):
        if fps is not None and not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps={fps!r}: pass a positive frame rate, or None to keep every frame")
        if max_side is not None and max_side < 1:
            raise ValueError(f"max_side={max_side!r}: pass a positive size in pixels, or None")
        with quiet_opencv():
            kind = _still_kind(self.path, allow_still)
            self.still = kind is not None
            if kind is not None:
                yield 0.0, _read_still(self.path, kind, max_side, max_pixels)
                return
            cap, info = _open(self.path)
            try:
                _check_limits(info, max_duration, max_frames, max_pixels)
                yield from _resample(cap, info, fps, max_duration, max_side, max_frames)
            finally:
                cap.release()


def iter_frames(
    path: str | Path,
    fps: float | None = 30.0,
    max_duration: float | None = 600.0,
    max_side: int | None = 1280,
    max_frames: int | None = MAX_SOURCE_FRAMES,
    max_pixels: int | None = MAX_PIXELS,
    allow_still: bool = False,
) -> VideoFrames:
    """Decode a video sequentially, resampled to `fps` by presentation timestamps.

    At each target time k / fps (k = 0, 1, ...; times relative to the first frame) the frame on screen at that
    time is emitted: a 25 fps source repeats every fifth frame, a 60 fps source gives every second frame, and a
    variable-frame-rate source gives the frames a player would show.

    Args:
        path: The video file.
        fps: Target frame rate; None emits every decoded frame with its own timestamp.
        max_duration: Raise `VideoLimitError` for a video longer than this many seconds (None: no limit).
        max_side: Frames whose longer side exceeds this are downscaled to it, keeping the aspect (None: never).
        max_frames: Raise `VideoLimitError` when the source has more frames than this (None: no limit).
        max_pixels: Raise `VideoLimitError` for source frames with more pixels than this (None: no limit).
        allow_still: Read a still image (PNG, JPEG, ...; recognised by its content, not its name) as a single frame
            at time 0 instead of raising `StillImageError`.

    Returns:
        An iterator (`VideoFrames`, whose `still` says whether the file was a still image) of (timestamp in
        seconds, RGB uint8 frame (H, W, 3)), upright and downscaled. A frame emitted at several
        targets is the same array object each time: copy it before changing it in place.

    Raises:
        VideoNotFoundError, StillImageError, InvalidVideoError, VideoDecodeError, VideoLimitError: see
            `probe_video`. Limits are checked from the container before the first frame is decoded, and again on
            the timestamps while decoding; a file that stops decoding well before the frame count its header gives
            raises `VideoDecodeError` after the frames that could be read.
    """
    return VideoFrames(path, fps, max_duration, max_side, max_frames, max_pixels, allow_still)


def _downscale(bgr: np.ndarray, max_side: int | None) -> np.ndarray:
    height, width = bgr.shape[:2]
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return bgr


def _read_still(path: Path, kind: str, max_side: int | None, max_pixels: int | None) -> np.ndarray:
    """A still image as one RGB frame (EXIF orientation applied by OpenCV)."""
    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidVideoError(f"{path} is a {kind} image that OpenCV cannot decode. Convert it to PNG or JPEG.")
    height, width = bgr.shape[:2]
    if max_pixels is not None and width * height > max_pixels:
        raise VideoLimitError(
            f"{path} is {width}x{height}, over the limit of {max_pixels / 1e6:.0f} M pixels. Downscale it first.",
            limit="pixels",
            value=width * height,
            maximum=max_pixels,
        )
    return cv2.cvtColor(_downscale(bgr, max_side), cv2.COLOR_BGR2RGB)


def _resample(
    cap: cv2.VideoCapture,
    info: VideoInfo,
    fps: float | None,
    max_duration: float | None,
    max_side: int | None,
    max_frames: int | None,
) -> Iterator[tuple[float, np.ndarray]]:
    nominal_gap = 1.0 / info.source_fps if info.source_fps else 1.0 / 30.0
    # Timestamps within `eps` of a target count as on time (POS_MSEC is rounded to a microsecond or so).
    eps = min(1e-3, 0.25 / fps) if fps else 0.0
    recent_gaps: deque[float] = deque([nominal_gap], maxlen=8)
    first_ms: float | None = None
    prev_ts: float | None = None
    held: np.ndarray | None = None  # the last retrieved frame, on screen until the next one
    k = 0  # next target index
    decoded = 0

    def convert(bgr: np.ndarray) -> np.ndarray:
        if info.rotation:
            bgr = cv2.rotate(bgr, _ROTATIONS[info.rotation])
        return cv2.cvtColor(_downscale(bgr, max_side), cv2.COLOR_BGR2RGB)

    def retrieve() -> np.ndarray:
        ok, bgr = cap.retrieve()
        if not ok or bgr is None or bgr.size == 0:
            raise VideoDecodeError(f"{info.path}: frame {decoded} could not be decoded (corrupt video?).")
        return convert(bgr)

    while True:
        try:
            if not cap.grab():
                break
        except cv2.error as e:
            raise VideoDecodeError(f"{info.path}: decoding failed at frame {decoded}: {e}") from e
        decoded += 1
        if max_frames is not None and decoded > max_frames:
            raise _too_many_frames(info.path, None, max_frames)
        pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        if first_ms is None:
            first_ms = pos_ms if np.isfinite(pos_ms) else 0.0  # times count from the first frame (edit lists)
        ts = (pos_ms - first_ms) / 1000.0 if np.isfinite(pos_ms) else float("nan")
        if prev_ts is not None:
            if not (ts > prev_ts):
                # No usable timestamp (some containers give none, or repeat one): fall back to index / fps.
                # This also guarantees progress: time always moves on, so the duration limit always ends a
                # reader that keeps returning frames.
                ts = prev_ts + nominal_gap
            recent_gaps.append(ts - prev_ts)
        elif not np.isfinite(ts):
            ts = 0.0
        # The video lasts at least until this frame ends (the rule the header check applies to the duration).
        if max_duration is not None and ts + nominal_gap > max_duration + _DURATION_MARGIN:
            raise _too_long(info.path, None, max_duration)

        if fps is None:
            yield ts, retrieve()
            prev_ts = ts
            continue
        # Targets before this frame's time show the frame held so far.
        while held is not None and k / fps < ts - eps:
            yield k / fps, held
            k += 1
        # Convert this frame only if a target falls while it is on screen; the gap to the next frame is not
        # known yet, so assume the largest recent gap (variable frame rate).
        if k / fps < ts + max(recent_gaps) - eps or held is None:
            held = retrieve()
        prev_ts = ts

    if decoded == 0:
        if info.frame_count:
            raise VideoDecodeError(
                f"{info.path}: the header promises {info.frame_count} frames but none could be decoded (corrupt "
                "video, or a codec this OpenCV build lacks). Re-encode it, e.g. `ffmpeg -i in -c:v libx264 out.mp4`."
            )
        raise InvalidVideoError(f"{info.path} contains no video frames.")
    if fps is not None and held is not None and prev_ts is not None:
        # The last frame stays on screen for one more frame interval.
        while k / fps < prev_ts + recent_gaps[-1] - eps:
            yield k / fps, held
            k += 1
    if info.frame_count and decoded < _MIN_DECODED_SHARE * info.frame_count:
        raise VideoDecodeError(
            f"{info.path}: only {decoded} of the {info.frame_count} frames its header promises could be decoded: "
            "the file is truncated or corrupt. Copy or export it again."
        )
    logger.debug("%s: decoded %d frames, emitted %s", info.path, decoded, k if fps else decoded)


def read_video(
    path: str | Path,
    fps: float | None = 30.0,
    max_duration: float | None = 600.0,
    max_side: int | None = 1280,
    max_frames: int | None = MAX_SOURCE_FRAMES,
    max_pixels: int | None = MAX_PIXELS,
    allow_still: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a whole video into memory; the arguments are those of `iter_frames`.

    Returns:
        frames (N, H, W, 3) RGB uint8 and timestamps (N,) float64 seconds.
    """
    timestamps, frames = [], []
    for ts, frame in iter_frames(path, fps, max_duration, max_side, max_frames, max_pixels, allow_still):
        timestamps.append(ts)
        frames.append(frame)
    return np.stack(frames), np.asarray(timestamps, dtype=np.float64)
