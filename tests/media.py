"""Test media: real video files made from `skimage.data.astronaut()` (public domain), written with OpenCV.

The astronaut's face (dlib HOG box (175, 76)-(265, 166) in the 512x512 photo, eyes at about (203, 102) and
(246, 104): image-left first) is cut out with a soft elliptical mask and warped into each frame of a plain,
face-free background, moved per frame by `motion`. `face_poses` gives the true position of every face in every
frame, so tests can check landmarks and crops against it.

Everything here is small and fast: a 30-frame 640x360 video takes about 0.1 s to write.

Files that need ffmpeg (rotation metadata, variable frame rate, audio only, H.264) use the static binary that the
`imageio-ffmpeg` wheel ships (`ffmpeg_exe()` returns None without it; tests skip with `needs_ffmpeg`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from microx_hf.video_writer import write_video

# Where the face sits in `astronaut()` (measured with dlib's HOG detector and 68-point model).
FACE_BOX = np.array([175.0, 76.0, 265.0, 166.0])
FACE_CENTER = np.array([220.0, 121.0])
LEFT_EYE = np.array([203.2, 101.5])  # image left: iBUG 36-41
RIGHT_EYE = np.array([246.5, 104.2])  # image right: iBUG 42-47
# The patch pasted into frames: head and a little of the suit, as an ellipse around the face.
_PATCH_CENTER = (220.0, 125.0)
_PATCH_AXES = (95.0, 110.0)

MOTIONS = ("none", "pan", "zoom", "rotate")


@lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    from skimage import data

    image = np.ascontiguousarray(data.astronaut())
    image.setflags(write=False)
    return image


def astronaut() -> np.ndarray:
    """The 512x512 RGB uint8 astronaut photo (a fresh, writable copy)."""
    return _astronaut().copy()


@lru_cache(maxsize=1)
def _patch_mask() -> np.ndarray:
    """Soft elliptical alpha (512, 512) float32 around the astronaut's head."""
    mask = np.zeros((512, 512), np.float32)
    cv2.ellipse(
        mask,
        (int(_PATCH_CENTER[0]), int(_PATCH_CENTER[1])),
        (int(_PATCH_AXES[0]), int(_PATCH_AXES[1])),
        0,
        0,
        360,
        1.0,
        -1,
    )
    return cv2.GaussianBlur(mask, (0, 0), 6)


@dataclass
class FacePose:
    """Where one face sits in one frame (frame pixel coordinates)."""

    center: np.ndarray  # (2,) x, y of the face box centre
    box: np.ndarray  # (4,) x0, y0, x1, y1: the axis-aligned box around the rotated face box
    left_eye: np.ndarray  # (2,) image-left eye centre
    right_eye: np.ndarray  # (2,) image-right eye centre
    scale: float  # size relative to the photo
    angle: float  # degrees, counter-clockwise in the image (OpenCV's convention)
    matrix: np.ndarray  # (2, 3) affine map from astronaut() to the frame

    @property
    def iod(self) -> float:
        """Inter-ocular distance in pixels."""
        return float(np.linalg.norm(self.right_eye - self.left_eye))


def _pose(center: tuple[float, float], scale: float, angle: float) -> FacePose:
    matrix = cv2.getRotationMatrix2D((float(FACE_CENTER[0]), float(FACE_CENTER[1])), angle, scale)
    matrix[:, 2] += np.asarray(center) - FACE_CENTER

    def warp(points: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(points)
        return points @ matrix[:, :2].T + matrix[:, 2]

    x0, y0, x1, y1 = FACE_BOX
    corners = warp(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    box = np.concatenate([corners.min(0), corners.max(0)])
    return FacePose(
        center=warp(FACE_CENTER)[0],
        box=box,
        left_eye=warp(LEFT_EYE)[0],
        right_eye=warp(RIGHT_EYE)[0],
        scale=scale,
        angle=angle,
        matrix=matrix,
    )


def face_poses(
    n_frames: int = 30,
    size: tuple[int, int] = (640, 360),
    motion: str = "none",
    absent_frames: tuple[int, ...] | list[int] = (),
    two_faces: bool = False,
) -> list[list[FacePose]]:
    """The true face positions in each frame of `make_face_video` with the same arguments.

    Returns:
        One list per frame: empty for an absent frame, one pose (two with `two_faces`, left face first).
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion={motion!r}; choose one of {MOTIONS}")
    width, height = size
    # A face about 0.3 of the frame height: big enough for HOG after downscaling to 480 px.
    base = 1.2 * height / 360
    absent = set(absent_frames)
    poses: list[list[FacePose]] = []
    for i in range(n_frames):
        if i in absent:
            poses.append([])
            continue
        t = i / max(n_frames - 1, 1)  # 0 .. 1 over the clip
        if two_faces:
            scale = 0.5 * base * min(1.0, width / (1.8 * height))
            y = height * 0.5
            poses.append([_pose((width * 0.27, y), scale * 1.6, 0.0), _pose((width * 0.73, y), scale * 1.6, 0.0)])
            continue
        center, scale, angle = (width / 2, height / 2), base, 0.0
        if motion == "pan":
            center = (width * (0.35 + 0.3 * t), height / 2 + height * 0.05 * np.sin(2 * np.pi * t))
        elif motion == "zoom":
            scale = base * (0.8 + 0.4 * t)
        elif motion == "rotate":
            angle = -20.0 + 40.0 * t
        poses.append([_pose(center, scale, angle)])
    return poses


def background(size: tuple[int, int] = (640, 360), seed: int = 0) -> np.ndarray:
    """A face-free RGB background: a colour gradient with a few soft shapes (something for a codec to encode)."""
    return _background(tuple(size), seed).copy()


@lru_cache(maxsize=8)
def _background(size: tuple[int, int], seed: int) -> np.ndarray:
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.stack([60 + 80 * xx / width, 90 + 60 * yy / height, 120 + 40 * (1 - xx / width)], axis=-1)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(40, 220, 3))
        cv2.rectangle(frame, (x, y), (x + width // 8, y + height // 10), colour, -1)
    return cv2.GaussianBlur(frame, (0, 0), 2).clip(0, 255).astype(np.uint8)


def render_frame(size: tuple[int, int], poses: list[FacePose], grey: bool = False, seed: int = 0) -> np.ndarray:
    """One RGB frame: the background with the astronaut's face warped in at each pose."""
    frame = _background(tuple(size), seed).astype(np.float32)
    for pose in poses:
        face = cv2.warpAffine(_astronaut(), pose.matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32)
        alpha = cv2.warpAffine(_patch_mask(), pose.matrix, size, flags=cv2.INTER_LINEAR)[..., None]
        frame = frame * (1 - alpha) + face * alpha
    frame = frame.clip(0, 255).astype(np.uint8)
    if grey:
        frame = np.repeat(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)
    return frame


def face_frames(
    n_frames: int = 30,
    size: tuple[int, int] = (640, 360),
    motion: str = "none",
    absent_frames: tuple[int, ...] | list[int] = (),
    grey: bool = False,
    two_faces: bool = False,
) -> np.ndarray:
    """The frames of `make_face_video` in memory: (N, H, W, 3) RGB uint8, before any compression."""
    poses = face_poses(n_frames, size, motion, absent_frames, two_faces)
    return np.stack([render_frame(size, p, grey) for p in poses])


def make_face_video(
    path: str | Path,
    n_frames: int = 30,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 360),
    motion: str = "none",
    absent_frames: tuple[int, ...] | list[int] = (),
    grey: bool = False,
    two_faces: bool = False,
    fourcc: str = "mp4v",
) -> Path:
    """Write a video of the astronaut's face; `face_poses(n_frames, size, motion, absent_frames, two_faces)`
    gives where the face is in each frame.

    Args:
        path: Output file (.mp4 for `mp4v`, .avi for `MJPG`).
        n_frames: Number of frames.
        fps: Frame rate written in the container.
        size: (width, height).
        motion: "none", "pan" (left to right with a small bob), "zoom" (0.8x to 1.2x) or "rotate" (-20 to +20 deg).
        absent_frames: Frame indices that show only the background.
        grey: Write grey frames (three equal channels).
        two_faces: Two smaller faces side by side (motion is ignored).
        fourcc: OpenCV codec code.
    """
    frames = face_frames(n_frames, size, motion, absent_frames, grey, two_faces)
    return write_video(path, frames, fps, fourcc)


def make_noface_video(
    path: str | Path, n_frames: int = 30, fps: float = 30.0, size: tuple[int, int] = (640, 360), fourcc: str = "mp4v"
) -> Path:
    """Write a video of the background alone, with a shape sliding across it so the frames differ."""
    frames = []
    for i in range(n_frames):
        frame = background(size)
        x = int(size[0] * i / max(n_frames, 1))
        cv2.circle(frame, (x, size[1] // 2), size[1] // 8, (230, 200, 40), -1)
        frames.append(frame)
    return write_video(path, frames, fps, fourcc)


# Bad files ------------------------------------------------------------------------------------------------------


def make_text_file(path: str | Path) -> Path:
    """A text file with a video's name."""
    path = Path(path)
    path.write_text("this is not a video\n" * 20)
    return path


def make_empty_file(path: str | Path) -> Path:
    """A zero-byte file with a video's name."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_zero_frame_video(path: str | Path, fourcc: str = "mp4v") -> Path:
    """A video container with a header but no frames (a writer opened and closed at once)."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, (64, 48))
    writer.release()
    return path


def make_truncated_video(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """Copy the first `keep` fraction of the bytes of a good video (a cut-off download)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def make_corrupt_video(src: str | Path, dst: str | Path, seed: int = 0) -> Path:
    """Copy a good video with its middle third overwritten by random bytes."""
    data = bytearray(Path(src).read_bytes())
    start, stop = len(data) // 3, 2 * len(data) // 3
    data[start:stop] = np.random.default_rng(seed).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


# Files that need ffmpeg -------------------------------------------------------------------------------------------


def ffmpeg_exe() -> str | None:
    """The ffmpeg binary shipped by `imageio-ffmpeg`, or one on PATH, or None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


needs_ffmpeg = pytest.mark.skipif(ffmpeg_exe() is None, reason="needs ffmpeg: pip install imageio-ffmpeg (dev extra)")


def _ffmpeg(*args: str) -> None:
    exe = ffmpeg_exe()
    if exe is None:
        raise RuntimeError("ffmpeg not found: pip install imageio-ffmpeg")
    result = subprocess.run(
        [exe, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.strip()}")


def make_rotated_video(src: str | Path, dst: str | Path, rotation: int = 90) -> Path:
    """Copy a video's stream unchanged and tag it with display rotation, the way phones store portrait video.

    `rotation` is the clockwise rotation a player applies (the old `rotate` tag's convention): a 640x360 source
    tagged 90 displays as 360x640, with the top of the stored frame on the right.
    """
    # -display_rotation takes counter-clockwise degrees.
    _ffmpeg("-display_rotation", str(-rotation), "-i", str(src), "-c", "copy", str(dst))
    return Path(dst)


def make_h264_video(src: str | Path, dst: str | Path, bframes: bool = False) -> Path:
    """Re-encode a video as H.264 (yuv420p), the codec of most real clips; an .mp4 gets its index (moov) first.

    With `bframes` the encoder reorders frames (3 B-frames, as phone and camera encoders do), so decode order
    differs from presentation order. `dst` may be .mp4, .mov or .mkv.
    """
    speed = ["-preset", "medium", "-bf", "3"] if bframes else ["-preset", "ultrafast"]
    flags = ["-movflags", "+faststart"] if Path(dst).suffix.lower() in (".mp4", ".mov", ".m4v") else []
    _ffmpeg("-i", str(src), "-c:v", "libx264", *speed, "-pix_fmt", "yuv420p", *flags, str(dst))
    return Path(dst)


def make_vfr_video(
    path: str | Path, timestamps: list[float] | np.ndarray, size: tuple[int, int] = (320, 180), motion: str = "pan"
) -> Path:
    """Write an H.264 .mp4 whose frame i is shown at `timestamps[i]` seconds (a variable frame rate).

    Frame i shows the face at `face_poses(len(timestamps), size, motion)[i]`.
    """
    timestamps = np.asarray(timestamps, dtype=float)
    frames = face_frames(len(timestamps), size, motion)
    # setpts gives frame N its time; a nested if() is plain ffmpeg expression syntax and fine for short clips.
    expr = f"{timestamps[-1]:.6f}"
    for i in range(len(timestamps) - 2, -1, -1):
        expr = f"if(eq(N,{i}),{timestamps[i]:.6f},{expr})"
    with tempfile.TemporaryDirectory() as tmp:
        for i, frame in enumerate(frames):
            cv2.imwrite(str(Path(tmp) / f"f{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        _ffmpeg(
            "-framerate",
            "1",
            "-i",
            str(Path(tmp) / "f%05d.png"),
            "-vf",
            f"settb=1/90000,setpts='({expr})/TB'",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "1/90000",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-video_track_timescale",
            "90000",
            str(path),
        )
    return Path(path)


def make_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An AAC sine tone in an .mp4/.m4a container: no video stream."""
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", str(path))
    return Path(path)


def make_long_video(
    path: str | Path, seconds: float, size: tuple[int, int] = (64, 48), fps: float = 2.0, live: bool = False
) -> Path:
    """A long but cheap video (ffmpeg's test pattern; H.264, or VP8 in .webm): 600 s takes about 0.2 s to write.

    Args:
        path: .mp4, .mov, .mkv or .webm.
        seconds: Its duration.
        size: (width, height).
        fps: Frame rate.
        live: Make the header say nothing about the duration, as in a live recording (a browser's MediaRecorder
            writes WebM without a duration; a stream dump is a fragmented MP4): Matroska gets its Duration and Tags
            blanked out (EBML Void), MP4 is written fragmented to a pipe.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    codec = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "50k"] if suffix == ".webm" else [
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]  # fmt: skip
    width, height = size
    source = ["-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate={fps:g}", "-t", f"{seconds:g}", *codec]
    if live and suffix in (".mp4", ".mov"):
        exe = ffmpeg_exe()
        if exe is None:
            raise RuntimeError("ffmpeg not found: pip install imageio-ffmpeg")
        flags = ["-movflags", "frag_keyframe+empty_moov", "-f", suffix[1:]]
        result = subprocess.run(
            [exe, "-hide_banner", "-loglevel", "error", "-y", *source, *flags, "pipe:1"],
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg failed: {result.stderr.decode(errors='replace').strip()}")
        path.write_bytes(result.stdout)
        return path
    _ffmpeg(*source, str(path))
    if live:
        _blank_matroska_duration(path)
    return path


def _blank_matroska_duration(path: Path) -> None:
    """Overwrite a Matroska file's Info/Duration and its Tags (ffmpeg writes per-track DURATION tags there) with
    EBML Void elements of the same length, as if the file had been written live."""
    data = bytearray(path.read_bytes())
    info = data.find(bytes.fromhex("1549a966"), data.find(bytes.fromhex("1549a966")) + 4)  # after the SeekHead
    duration = data.find(bytes.fromhex("4489"), info)
    if info < 0 or duration < 0 or data[duration + 2] not in (0x84, 0x88):
        raise RuntimeError(f"no Matroska duration found in {path}")
    total = 3 + (data[duration + 2] & 0x0F)
    data[duration : duration + total] = bytes([0xEC, 0x80 | (total - 2)]) + bytes(total - 2)
    tags = data.rfind(bytes.fromhex("1254c367"))
    if tags > info:
        first = data[tags + 4]
        n = 9 - first.bit_length()
        size = int.from_bytes(data[tags + 4 : tags + 4 + n], "big") & ((1 << (7 * n)) - 1)
        total = 4 + n + size
        data[tags : tags + total] = b"\xec\x01" + (total - 9).to_bytes(7, "big") + bytes(total - 9)
    path.write_bytes(bytes(data))


def make_still(path: str | Path, size: tuple[int, int] = (320, 240)) -> Path:
    """A still image of the astronaut's face, encoded by content type whatever its name says (.png / .jpg, or
    `name.png.mp4` for a PNG renamed .mp4)."""
    path = Path(path)
    kinds = [s for s in path.suffixes if s.lower() in (".png", ".jpg", ".jpeg")]
    ext = kinds[0].lower() if kinds else ".png"
    frame = face_frames(1, size)[0]
    ok, data = cv2.imencode(ext, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {ext}")
    path.write_bytes(data.tobytes())
    return path


def make_portrait_video(path: str | Path, n_frames: int = 8, size: tuple[int, int] = (320, 240)) -> Path:
    """A phone-style portrait video: frames stored turned 90 degrees and tagged for display rotation, so that a
    player (and MicroX) shows an upright face; `size` is the stored (width, height)."""
    path = Path(path)
    width, height = size
    upright = face_frames(n_frames, (height, width))  # displayed size: height x width
    stored = np.ascontiguousarray(np.rot90(upright, k=1, axes=(1, 2)))  # displayed = stored turned clockwise
    with tempfile.TemporaryDirectory() as tmp:
        src = write_video(Path(tmp) / "stored.mp4", stored)
        return make_rotated_video(src, path, rotation=90)


# Two different people -------------------------------------------------------------------------------------------

# Where the face sits in matplotlib's sample `grace_hopper.jpg` (U.S. Navy photograph, public domain; 512x600), as
# dlib's HOG detector boxes it.
HOPPER_FACE_BOX = np.array([161.0, 137.0, 376.0, 352.0])


@lru_cache(maxsize=1)
def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    image.setflags(write=False)
    return image


@lru_cache(maxsize=4)
def _sprite(person: str, side: float) -> tuple[np.ndarray, np.ndarray]:
    """A person's face with its box `side` px wide, centred in a square canvas, and a soft elliptical alpha a little
    larger than the box (head, no shoulders): (S, S, 3) float32 RGB and (S, S, 1) float32."""
    photo, face_box = (_astronaut(), FACE_BOX) if person == "astronaut" else (_grace_hopper(), HOPPER_FACE_BOX)
    canvas = int(2 * side)
    scale = side / float(face_box[2] - face_box[0])
    box_center = (face_box[:2] + face_box[2:]) / 2
    matrix = np.array(
        [[scale, 0.0, canvas / 2 - scale * box_center[0]], [0.0, scale, canvas / 2 - scale * box_center[1]]]
    )
    face = cv2.warpAffine(photo, matrix, (canvas, canvas), flags=cv2.INTER_AREA).astype(np.float32)
    alpha = np.zeros((canvas, canvas), np.float32)
    cv2.ellipse(alpha, (canvas // 2, canvas // 2), (int(0.62 * side), int(0.78 * side)), 0, 0, 360, 1.0, -1)
    return face, cv2.GaussianBlur(alpha, (0, 0), max(1.0, side / 25))[..., None]


def _paste(frame: np.ndarray, person: str, center: np.ndarray, side: float) -> None:
    """Blend a person's face (`_sprite`) into `frame` (float32, in place), its face box centred at `center`."""
    face, alpha = _sprite(person, side)
    canvas = face.shape[0]
    x0, y0 = (np.round(center) - canvas // 2).astype(int)
    fx0, fy0 = max(0, -x0), max(0, -y0)
    x1, y1 = min(frame.shape[1], x0 + canvas), min(frame.shape[0], y0 + canvas)
    region = frame[max(0, y0) : y1, max(0, x0) : x1]
    a = alpha[fy0 : fy0 + region.shape[0], fx0 : fx0 + region.shape[1]]
    region *= 1 - a
    region += face[fy0 : fy0 + region.shape[0], fx0 : fx0 + region.shape[1]] * a


def two_people_frames(
    n_frames: int = 30, size: tuple[int, int] = (640, 360), second_from: int = 0, side: float = 120.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two different real people side by side: the astronaut (`skimage.data.astronaut()`, NASA) on the left and
    Grace Hopper (matplotlib's `grace_hopper.jpg`, U.S. Navy) on the right, both public domain, drifting a few
    pixels per frame. Grace Hopper is in the frame from frame `second_from` on (a second person who walks in).

    Returns:
        frames (N, H, W, 3) RGB uint8, and the true face centres of each person (N, 2): left, right.
    """
    width, height = size
    frames, left, right = [], [], []
    for i in range(n_frames):
        t = 2 * np.pi * i / 30
        a = np.array([0.27 * width + 4 * np.sin(t), 0.5 * height + 3 * np.cos(t)])
        g = np.array([0.73 * width - 4 * np.sin(t), 0.5 * height + 3 * np.sin(t)])
        frame = _background(tuple(size), 0).astype(np.float32)
        _paste(frame, "astronaut", a, side)
        if i >= second_from:
            _paste(frame, "grace_hopper", g, side)
        frames.append(frame.clip(0, 255).astype(np.uint8))
        left.append(a)
        right.append(g)
    return np.stack(frames), np.stack(left), np.stack(right)


def make_two_people_video(
    path: str | Path, n_frames: int = 30, size: tuple[int, int] = (640, 360), second_from: int = 0, fps: float = 30.0
) -> Path:
    """Write `two_people_frames(n_frames, size, second_from)` as a video."""
    frames, _, _ = two_people_frames(n_frames, size, second_from)
    return write_video(path, frames, fps)
