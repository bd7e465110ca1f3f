"""Make the Space's example videos from public-domain material.

The face is the astronaut photo that ships with scikit-image (`skimage.data.astronaut()`, NASA, public domain),
cut out with a soft ellipse and moved over a plain background with gentle head motion (pan, nod, zoom, roll).
When the synthetic expression generator (`training/synthetic.py`) is available, `--synthetic` also writes one of
its clips. Videos are VP8 WebM: browsers play them in the upload box and OpenCV reads them; each stays well
under 1 MB.

Usage (from the repository root):
    python space/make_examples.py            # writes space/examples/astronaut.webm
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
# Where the face sits in the 512x512 photo (dlib's HOG box centre) and the ellipse cut around the head.
FACE_CENTER = (220.0, 121.0)
PATCH_CENTER = (220, 125)
PATCH_AXES = (95, 110)


def _background(width: int, height: int) -> np.ndarray:
    """A face-free RGB gradient, something for the codec to encode."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.stack([70 + 70 * xx / width, 95 + 55 * yy / height, 130 + 40 * (1 - xx / width)], axis=-1)
    return frame.clip(0, 255).astype(np.uint8)


def astronaut_frames(n_frames: int = 90, size: tuple[int, int] = (480, 360)) -> np.ndarray:
    """Frames (N, H, W, 3) RGB uint8 of the astronaut's face moving over a background.

    Args:
        n_frames: Number of frames.
        size: (width, height).
    """
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())
    mask = np.zeros(photo.shape[:2], np.float32)
    cv2.ellipse(mask, PATCH_CENTER, PATCH_AXES, 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 6)
    width, height = size
    back = _background(width, height).astype(np.float32)
    frames = []
    for i in range(n_frames):
        phase = 2 * np.pi * i / n_frames
        # A face about a third of the frame high, drifting, nodding a little, zooming and rolling a few degrees.
        scale = 1.15 * height / 360 * (1.0 + 0.08 * np.sin(phase))
        angle = 8.0 * np.sin(2 * phase)
        center = (width * (0.5 + 0.12 * np.sin(phase)), height * (0.5 + 0.04 * np.sin(3 * phase)))
        matrix = cv2.getRotationMatrix2D(FACE_CENTER, angle, scale)
        matrix[:, 2] += np.asarray(center) - np.asarray(FACE_CENTER)
        face = cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32)
        alpha = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_LINEAR)[..., None]
        frames.append((back * (1 - alpha) + face * alpha).clip(0, 255).astype(np.uint8))
    return np.stack(frames)


def write_webm(path: Path, frames: np.ndarray, fps: float = 30.0) -> Path:
    """Write RGB frames as VP8 WebM with OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write VP8 WebM to {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def synthetic_frames(label: str, seed: int = 0) -> np.ndarray | None:
    """Frames of one synthetic expression clip from `training/synthetic.py`, or None where it is not available."""
    try:
        from training import synthetic
    except ImportError:
        return None
    make_clip = getattr(synthetic, "make_clip", None)
    if make_clip is None:
        logger.warning("training.synthetic has no make_clip(); skipping the synthetic example")
        return None
    clip = make_clip(label=label, seed=seed)
    frames = getattr(clip, "frames", clip)
    return np.asarray(frames, dtype=np.uint8)


def main(argv: list[str] | None = None) -> list[Path]:
    """Write the example videos; returns their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="output folder")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the astronaut clip")
    parser.add_argument("--synthetic", default=None, help="also write a synthetic clip of this expression")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = [write_webm(args.out / "astronaut.webm", astronaut_frames(round(30 * args.seconds)))]
    if args.synthetic:
        frames = synthetic_frames(args.synthetic)
        if frames is not None:
            paths.append(write_webm(args.out / f"synthetic_{args.synthetic}.webm", frames))
    for path in paths:
        logger.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1e3)
    return paths


if __name__ == "__main__":
    main()
