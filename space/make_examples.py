"""Make the Space's example videos from public-domain material.

`astronaut.webm`: the astronaut photo that ships with scikit-image (`skimage.data.astronaut()`, NASA, public
domain), cut out with a soft ellipse and moved over a plain background with gentle head motion (pan, nod, zoom,
roll), with no change of expression. `happy_grace_hopper.webm`, `surprise_astronaut.webm`: expression-onset clips
from the project's synthetic generator (`training/synthetic/`), on the public-domain photos that ship with
scikit-image and matplotlib (Grace Hopper, a U.S. Navy photograph). Videos are VP8 WebM: browsers play them in the
upload box and OpenCV reads them; each stays well under 1 MB.

Usage (from the repository root, so that `training` is importable as a package; the Space itself never imports
this script or `training`):
    python -m space.make_examples            # writes space/examples/*.webm
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from microx_hf.video_writer import write_video

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
    """Write RGB frames as VP8 WebM (browsers play it in the page)."""
    return write_video(path, frames, fps=fps, fourcc="VP80")


def synthetic_frames(label: str, face: str = "grace_hopper", seconds: float = 2.0, seed: int = 0) -> np.ndarray | None:
    """Frames of one synthetic expression-onset clip from `training.synthetic`, or None where it is unavailable.

    Args:
        label: One of the seven emotions.
        face: A built-in public-domain photo: "grace_hopper" (U.S. Navy) or "astronaut" (NASA).
        seconds: Length at 30 fps.
        seed: The clip's random head motion and lighting.
    """
    try:
        from training import synthetic
    except ImportError as error:
        logger.warning(
            "no synthetic example: training.synthetic is not importable (%s); run `python -m space.make_examples` "
            "from the repository root",
            error,
        )
        return None
    faces = {identity.name: identity for identity in synthetic.load_faces(builtin=True)}
    if face not in faces:
        logger.warning("face photo %r is unavailable (have %s); no synthetic example", face, sorted(faces))
        return None
    identity = faces[face]
    rng = np.random.default_rng(seed)
    # augment=False: a still, clean face. The generator's sensor noise and JPEG artefacts made 2-second clips of
    # 1-2.5 MB in VP8 (OpenCV sets no bitrate); without them a clip is about 0.3 MB.
    return synthetic.generate_clip(
        identity.image, identity.landmarks, label, rng, num_frames=round(30 * seconds), size=(400, 300), augment=False
    )


def main(argv: list[str] | None = None) -> list[Path]:
    """Write the example videos; returns their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="output folder")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the astronaut clip")
    parser.add_argument(
        "--synthetic",
        nargs="*",
        default=["happy:grace_hopper", "surprise:astronaut"],
        help="synthetic expression clips to write, as LABEL:FACE (needs the training package)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = [write_webm(args.out / "astronaut.webm", astronaut_frames(round(30 * args.seconds)))]
    for spec in args.synthetic:
        label, _, face = spec.partition(":")
        frames = synthetic_frames(label, face or "grace_hopper")
        if frames is not None:
            paths.append(write_webm(args.out / f"{label}_{face or 'grace_hopper'}.webm", frames))
    for path in paths:
        logger.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1e3)
    return paths


if __name__ == "__main__":
    main()
