"""Write RGB frames as a video file with OpenCV: the one video writer of the project.

The synthetic clips (`training.synthetic`), the test videos (`tests/media.py`) and the Space's example clips
(`space/make_examples.py`) are all written here. MPEG-4 Part 2 (`mp4v`) in `.mp4` is the default because every
OpenCV wheel can write it; `VP80` in `.webm` is what browsers play in the page; `MJPG` in `.avi` keeps every
frame intact enough for decoding tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def write_video(
    path: str | Path, frames: np.ndarray | Sequence[np.ndarray], fps: float = 30.0, fourcc: str = "mp4v"
) -> Path:
    """Write RGB uint8 frames to `path` and return it.

    Args:
        path: Output file; its folder is created. The container follows the suffix (`.mp4`, `.webm`, `.avi`).
        frames: (N, H, W, 3) RGB uint8 array, or a sequence of (H, W, 3) frames of one size.
        fps: Frame rate written into the container.
        fourcc: OpenCV codec code: `mp4v` (default), `VP80` (WebM), `MJPG` (AVI).

    Raises:
        ValueError: No frames, or an odd width or height: the yuv420 codecs halve the chroma planes and the
            encoder would silently crop the frame by one pixel.
        RuntimeError: OpenCV cannot open a writer for this codec and container.
    """
    path = Path(path)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    height, width = np.asarray(frames[0]).shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"video frames must have an even width and height, got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video to {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
