"""Decoding speed with OpenCV on a 480p (854x480, the BAUM-1s size) video made like the test media, and the cost
of `microx_hf.video.iter_frames` (RGB conversion, timestamps, resampling) over a bare `cv2.VideoCapture.read()` loop.

Rows: the raw OpenCV loop (read every frame; grab only), then `iter_frames` keeping every frame, and resampling
30, 60 and 25 fps sources to 30 fps (60 -> 30 converts only every second frame; 25 -> 30 repeats frames).
Frames/s and ms/frame count *source* frames; vs_read is the cost per source frame relative to the bare read()
loop; x real time is source seconds per wall second.

    python bench/bench_video.py [--threads 2] [--seconds 10] [--codec mp4v h264]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from common import print_table, set_threads, timed, write_results  # noqa: E402

SIZE = (854, 480)


def _make(path: Path, fps: float, seconds: float, codec: str) -> Path:
    from tests import media

    n = int(round(fps * seconds))
    # A moving face, rendered once at 30 distinct positions and cycled: rendering is not what is measured.
    frames = media.face_frames(30, SIZE, motion="pan")
    cycle = [frames[i % 30] if (i // 30) % 2 == 0 else frames[29 - i % 30] for i in range(n)]
    mp4v = media.write_video(path.with_suffix(".mp4v.mp4"), cycle, fps=fps, fourcc="mp4v")
    if codec == "mp4v":
        return mp4v
    return media.make_h264_video(mp4v, path.with_suffix(".h264.mp4"))


def _opencv_loop(path: Path, grab_only: bool) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab() if grab_only else cap.read()[0]:
        n += 1
    cap.release()
    return n


def _iter(path: Path, fps: float | None) -> int:
    from microx_hf.video import iter_frames

    return sum(1 for _ in iter_frames(path, fps=fps, max_side=None))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each test video")
    parser.add_argument("--codec", nargs="+", default=["mp4v", "h264"], choices=["mp4v", "h264"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    from tests import media

    codecs = [c for c in args.codec if c == "mp4v" or media.ffmpeg_exe() is not None]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for codec in codecs:
            videos = {fps: _make(Path(tmp) / f"v{fps:g}", fps, args.seconds, codec) for fps in (30.0, 60.0, 25.0)}
            cases = [
                ("cv2 read() every frame", 30.0, lambda v=videos[30.0]: _opencv_loop(v, grab_only=False)),
                ("cv2 grab() only", 30.0, lambda v=videos[30.0]: _opencv_loop(v, grab_only=True)),
                ("iter_frames fps=None", 30.0, lambda v=videos[30.0]: _iter(v, None)),
                ("iter_frames 30 -> 30", 30.0, lambda v=videos[30.0]: _iter(v, 30.0)),
                ("iter_frames 60 -> 30", 60.0, lambda v=videos[60.0]: _iter(v, 30.0)),
                ("iter_frames 25 -> 30", 25.0, lambda v=videos[25.0]: _iter(v, 30.0)),
            ]
            read_ms = None
            for name, source_fps, fn in cases:
                emitted = fn()
                seconds = timed(fn, repeat=args.repeat, warmup=1)
                source_frames = int(round(source_fps * args.seconds))
                ms = 1000 * seconds / source_frames
                read_ms = read_ms or ms  # the first case is the bare read() loop
                rows.append(
                    {
                        "codec": codec,
                        "case": name,
                        "source_fps": source_fps,
                        "frames_out": emitted,
                        "seconds": round(seconds, 4),
                        "frames_per_s": round(source_frames / seconds, 1),
                        "ms_per_frame": round(ms, 3),
                        "vs_read": round(ms / read_ms, 2),
                        "x_real_time": round(args.seconds / seconds, 1),
                    }
                )
    print(f"{SIZE[0]}x{SIZE[1]}, {args.seconds:g} s per video, {args.threads} OpenCV threads, best of {args.repeat}")
    print_table(
        rows, ["codec", "case", "source_fps", "frames_out", "frames_per_s", "ms_per_frame", "vs_read", "x_real_time"]
    )
    write_results("video", rows, size=list(SIZE), seconds_per_video=args.seconds, threads=args.threads)
    return rows


if __name__ == "__main__":
    main()
