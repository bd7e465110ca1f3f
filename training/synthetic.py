"""Synthetic expression clips: a neutral face photo animated along facial action units (FACS), written as videos.

No licensed emotion database can be had everywhere, yet the pipeline must prove that it learns and ship a demo
checkpoint. This module makes clips of an expression's *onset* from one neutral photo:

1. The photo's 68 iBUG landmarks come from the project's landmark backend (dlib).
2. Each label is a prototype combination of action units (after Ekman & Friesen's EMFACS): happy = AU6+12,
   sad = AU1+4+15+17, surprise = AU1+2+5+26, fear = AU1+2+4+5+20+26, anger = AU4+5+7+23, contempt = a one-sided
   AU12+14 (disgust, merged into contempt as in BAUM-2's 7 classes, = AU9+10 with a little AU4/15), neutral = none.
   An AU moves a fixed set of landmarks by a displacement measured in inter-ocular distances (IOD), in the face's
   own frame (x along the eye line, y down the face).
3. The intensity follows a smooth onset curve over the clip: it is exactly zero before the onset starts, so a
   single early frame carries no label information, while the motion does. Per-identity and per-clip resting AU
   offsets make a single late frame ambiguous too (a resting smile is not a smile's onset).
4. The image follows the landmarks through a piecewise-affine warp on a Delaunay triangulation of the landmarks
   plus a fixed ring around the face and the photo's border (one `cv2.remap` per frame through a dense map that
   also carries the head motion). An opening mouth gets a dark cavity and upper teeth painted in.
5. Nuisances, drawn identically for every label: head motion (shift, scale, roll), blinks, lighting (gain, tint,
   gradient, gamma, flicker), blur, sensor noise, JPEG compression; the clip is then written with OpenCV's `mp4v`.

Identities: the public-domain photos that ship with installed packages (`skimage.data.astronaut()`, and
matplotlib's `grace_hopper.jpg`, a U.S. Navy photograph), any folder of photos (`--faces-dir`), and cheap
variants of each (random face-shape changes, a resting expression, colour changes, a horizontal flip) so that
held-out "subjects" exist.

Labels are a demonstration, not a model of real emotion: a model trained on these clips learns landmark motion
prototypes, nothing more.

Usage:
    python -m training.synthetic --out-dir data/synthetic --clips-per-label 40 --identities 6 --num-proc 2
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from microx_hf.errors import NoFaceDetectedError

logger = logging.getLogger(__name__)

LABELS: tuple[str, ...] = ("neutral", "anger", "contempt", "surprise", "fear", "happy", "sad")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
FPS = 30.0

# iBUG 68-point indices (0-based; "left" = image left, as everywhere in MicroX).
JAW = list(range(0, 17))
LEFT_BROW, RIGHT_BROW = list(range(17, 22)), list(range(22, 27))
LEFT_EYE, RIGHT_EYE = list(range(36, 42)), list(range(42, 48))
INNER_LIPS = list(range(60, 68))
UPPER_INNER_LIP = [60, 61, 62, 63, 64]

# The index each point takes after a horizontal flip (the subject's left becomes the image left).
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # image-left eye <- image-right eye
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)


# Action units: {landmark: (dx, dy)} for the image-left half (and the midline), in IOD units in the face frame
# (x towards the image right, y down the face). The image-right half is mirrored (dx negated) unless the AU is
# one-sided. Sizes were set by eye on contact sheets so that an AU at intensity 1 is a clear, not extreme, apex.
# fmt: off
_AU_LEFT: dict[str, dict[int, tuple[float, float]]] = {
    # AU1 inner brow raiser.
    "AU1": {21: (0.015, -0.15), 20: (0.01, -0.10), 19: (0.0, -0.045), 18: (0.0, -0.015)},
    # AU2 outer brow raiser.
    "AU2": {17: (-0.01, -0.12), 18: (0.0, -0.13), 19: (0.0, -0.10), 20: (0.0, -0.05), 21: (0.0, -0.02)},
    # AU4 brow lowerer: brows down and together, upper lids a little lower.
    "AU4": {21: (0.07, 0.09), 20: (0.05, 0.08), 19: (0.025, 0.06), 18: (0.01, 0.035), 17: (0.0, 0.015),
            37: (0.0, 0.012), 38: (0.0, 0.015), 27: (0.0, 0.02)},
    # AU5 upper lid raiser: eyes wide.
    "AU5": {37: (0.0, -0.055), 38: (0.0, -0.055), 36: (-0.005, -0.01), 39: (0.005, -0.005)},
    # AU6 cheek raiser: lower lids up, cheeks (upper jaw contour) up.
    "AU6": {40: (0.0, -0.035), 41: (0.0, -0.035), 36: (0.0, -0.012), 1: (0.0, -0.03), 2: (0.0, -0.035),
            3: (0.0, -0.03)},
    # AU7 lid tightener.
    "AU7": {40: (0.0, -0.03), 41: (0.0, -0.03), 37: (0.0, 0.015), 38: (0.0, 0.015)},
    # AU9 nose wrinkler: nostrils and upper lip up, inner brows down.
    "AU9": {31: (0.0, -0.05), 32: (0.0, -0.04), 33: (0.0, -0.03), 30: (0.0, -0.015), 29: (0.0, -0.01),
            21: (0.03, 0.05), 20: (0.015, 0.03), 40: (0.0, -0.02), 41: (0.0, -0.02),
            49: (0.0, -0.04), 50: (0.0, -0.05), 51: (0.0, -0.05), 61: (0.0, -0.04), 62: (0.0, -0.04)},
    # AU10 upper lip raiser.
    "AU10": {49: (0.0, -0.06), 50: (0.0, -0.08), 51: (0.0, -0.07), 61: (0.0, -0.07), 62: (0.0, -0.065),
             48: (0.0, -0.025), 60: (0.0, -0.03), 31: (0.0, -0.02), 32: (0.0, -0.015)},
    # AU12 lip corner puller: corners up and out, cheeks up.
    "AU12": {48: (-0.11, -0.13), 60: (-0.10, -0.12), 49: (-0.04, -0.05), 59: (-0.045, -0.06),
             61: (-0.02, -0.035), 67: (-0.03, -0.05), 50: (-0.01, -0.015), 58: (-0.015, -0.03),
             57: (0.0, -0.015), 66: (0.0, -0.02), 3: (0.0, -0.025), 4: (-0.01, -0.03), 5: (0.0, -0.02)},
    # AU14 dimpler: the corner tightened back and a little up.
    "AU14": {48: (-0.05, -0.03), 60: (-0.045, -0.025), 49: (-0.015, -0.01), 59: (-0.015, -0.015)},
    # AU15 lip corner depressor.
    "AU15": {48: (-0.01, 0.13), 60: (-0.01, 0.10), 49: (0.0, 0.04), 59: (0.0, 0.045), 61: (0.0, 0.02),
             67: (0.0, 0.025), 5: (0.0, 0.015)},
    # AU17 chin raiser: chin and lower lip pushed up.
    "AU17": {57: (0.0, -0.04), 58: (0.0, -0.035), 66: (0.0, -0.03), 67: (0.0, -0.025), 8: (0.0, -0.04),
             7: (0.0, -0.035), 6: (0.0, -0.02)},
    # AU20 lip stretcher: corners pulled sideways, lips flattened.
    "AU20": {48: (-0.10, 0.015), 60: (-0.09, 0.015), 49: (-0.05, 0.01), 59: (-0.05, -0.005), 50: (-0.02, 0.01),
             58: (-0.02, -0.01), 61: (-0.03, 0.01), 67: (-0.03, -0.005), 51: (0.0, 0.01), 57: (0.0, -0.01),
             4: (-0.015, 0.0), 5: (-0.015, 0.0)},
    # AU23 lip tightener (+AU24 pressor): lips thinner and pressed, mouth narrower.
    "AU23": {48: (0.04, 0.0), 60: (0.035, 0.0), 49: (0.015, 0.02), 50: (0.0, 0.03), 51: (0.0, 0.03),
             59: (0.015, -0.02), 58: (0.0, -0.035), 57: (0.0, -0.04), 61: (0.01, 0.01), 62: (0.0, 0.01),
             67: (0.01, -0.01), 66: (0.0, -0.01)},
    # AU26 jaw drop (with AU25 lips part): lower lip and chin down, corners a little inwards.
    "AU26": {8: (0.0, 0.30), 7: (0.0, 0.28), 6: (0.0, 0.22), 5: (0.0, 0.14), 4: (0.0, 0.07), 3: (0.0, 0.02),
             57: (0.0, 0.26), 58: (0.01, 0.25), 59: (0.015, 0.18), 66: (0.0, 0.25), 67: (0.01, 0.22),
             48: (0.012, 0.08), 60: (0.015, 0.09), 61: (0.0, -0.02), 62: (0.0, -0.025), 50: (0.0, -0.01),
             51: (0.0, -0.012), 49: (0.0, -0.005)},
}
# fmt: on
AU_NAMES: tuple[str, ...] = tuple(_AU_LEFT)
# Where the midline sits: these points have no mirror partner to copy a displacement to.
_MIDLINE = {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


def _au_field(name: str, side: str = "both") -> np.ndarray:
    """(68, 2) displacement of one AU at intensity 1; `side` is "both", "left" or "right" (image sides)."""
    disp = np.zeros((68, 2), np.float64)
    for i, (dx, dy) in _AU_LEFT[name].items():
        if side in ("both", "left") or i in _MIDLINE:
            disp[i] += (dx, dy)
        if side in ("both", "right") and i not in _MIDLINE:
            disp[MIRROR[i]] += (-dx, dy)
    return disp


_AU_FIELDS = {name: _au_field(name) for name in AU_NAMES}
_AU_ONE_SIDED = {(name, side): _au_field(name, side) for name in ("AU12", "AU14") for side in ("left", "right")}

# Prototype expressions: AU weights at the apex.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "anger": {"AU4": 1.5, "AU5": 0.35, "AU7": 0.8, "AU23": 1.3},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0},
    "fear": {"AU1": 1.0, "AU2": 0.6, "AU4": 0.6, "AU5": 1.0, "AU20": 1.0, "AU26": 0.35},
    "happy": {"AU6": 1.0, "AU12": 1.0},
    "sad": {"AU1": 1.0, "AU4": 0.45, "AU15": 1.0, "AU17": 0.6},
    # "contempt" is built per clip (a random side; disgust variant), see `_expression_field`.
}
# AUs that an identity or a clip may hold slightly at rest (their sign may be negative: a resting frown).
_REST_AUS = ("AU1", "AU2", "AU4", "AU5", "AU7", "AU10", "AU12", "AU15")


# Faces -------------------------------------------------------------------------------------------------------------


@dataclass
class FaceIdentity:
    """A neutral face photo with its landmarks: one synthetic subject.

    Attributes:
        name: Subject id written to the manifest (e.g. "astronaut-03").
        image: (H, W, 3) RGB uint8 photo.
        landmarks: (68, 2) float (x, y) iBUG points of the photo.
        base: Name of the photo this identity was made from.
        params: How a variant was made (flip, resting AU offsets); empty for a photo itself.
    """

    name: str
    image: np.ndarray
    landmarks: np.ndarray
    base: str = ""
    params: dict = field(default_factory=dict)


_BACKEND = None


def _landmark_backend():
    """The project's dlib landmark backend (offline), loaded once per process."""
    global _BACKEND
    if _BACKEND is None:
        from microx_hf.landmarks import get_backend

        _BACKEND = get_backend("dlib")
    return _BACKEND


def detect_landmarks(image_rgb: np.ndarray, min_score: float = 0.0) -> np.ndarray:
    """The 68 iBUG points (float64 (68, 2)) of the best-scoring face in an RGB image.

    Raises:
        NoFaceDetectedError: No face scored at least `min_score`.
    """
    faces = [f for f in _landmark_backend().detect(image_rgb) if f.score >= min_score]
    if not faces:
        raise NoFaceDetectedError(
            f"no frontal face (score >= {min_score}) found in a {image_rgb.shape[1]}x{image_rgb.shape[0]} image; "
            "use a well-lit, frontal, neutral face photo"
        )
    return np.asarray(max(faces, key=lambda f: f.score).points, np.float64)


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Eye midpoint, unit vectors along the eye line (ex) and down the face (ey), and the inter-ocular distance."""
    left, right = points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0)
    iod = float(np.linalg.norm(right - left))
    ex = (right - left) / max(iod, 1e-6)
    ey = np.array([-ex[1], ex[0]])
    return (left + right) / 2, ex, ey, iod


def _to_image(disp: np.ndarray, ex: np.ndarray, ey: np.ndarray, iod: float) -> np.ndarray:
    """Face-frame displacements (IOD units) -> image pixels."""
    return iod * (disp[:, :1] * ex + disp[:, 1:] * ey)


def _au_combination(weights: dict[str, float]) -> np.ndarray:
    """(68, 2) face-frame displacement of AUs at the given (signed) intensities."""
    return sum((w * _AU_FIELDS[name] for name, w in weights.items()), np.zeros((68, 2)))


def prepare_face(
    image: np.ndarray, name: str, landmarks: np.ndarray | None = None, max_iod: float = 80.0, min_score: float = 0.0
) -> FaceIdentity:
    """Make a `FaceIdentity` from a neutral photo: find its landmarks, shrink big photos, crop around the face.

    Photos are scaled so that the inter-ocular distance is at most `max_iod` px (frames show faces far smaller)
    and cropped to about 4 IODs around the face, which bounds the cost of every warp.

    Args:
        image: (H, W, 3) RGB or (H, W) grey uint8 photo of one frontal face with a neutral (or mild) expression.
        name: Subject name.
        landmarks: Its (68, 2) iBUG points when known; else the landmark backend finds the best-scoring face.
        max_iod: Largest inter-ocular distance kept, in pixels.
        min_score: Smallest detector score accepted (dlib HOG: about 1 for a clear frontal face).

    Raises:
        NoFaceDetectedError: No face scored at least `min_score`.
    """
    image = np.ascontiguousarray(image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, -1))
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image for {name!r}, got {image.dtype}")
    if landmarks is None:
        small = 1.0
        if max(image.shape[:2]) > 1200:  # detect on a smaller copy: the photo is shrunk to `max_iod` anyway
            small = 1200 / max(image.shape[:2])
        points = (
            detect_landmarks(
                cv2.resize(image, None, fx=small, fy=small, interpolation=cv2.INTER_AREA) if small < 1 else image,
                min_score=min_score,
            )
            / small
        )
    else:
        points = np.asarray(landmarks, np.float64).reshape(68, 2)
    center, _, _, iod = _face_frame(points)
    scale = min(1.0, max_iod / iod)
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        points = points * scale
        center, iod = center * scale, iod * scale
    half = 4.0 * iod
    x0, y0 = int(max(0, center[0] - half)), int(max(0, center[1] - half))
    x1, y1 = int(min(image.shape[1], center[0] + half)), int(min(image.shape[0], center[1] + 1.3 * half))
    image = np.ascontiguousarray(image[y0:y1, x0:x1])
    points = points - (x0, y0)
    return FaceIdentity(name=name, image=image, landmarks=points, base=name)


def builtin_faces() -> dict[str, np.ndarray]:
    """Public-domain face photos that ship inside installed packages: {name: RGB uint8 image}.

    - "astronaut": `skimage.data.astronaut()` (Eileen Collins, NASA; public domain).
    - "grace_hopper": matplotlib's sample `grace_hopper.jpg` (U.S. Navy photograph; public domain).
    Checked and left out: scikit-image's `camera()` (a profile; dlib scores it below zero), `lfw_subset` (25x25 px),
    `face()` (a raccoon).
    """
    faces = {}
    try:
        from skimage import data

        faces["astronaut"] = np.ascontiguousarray(data.astronaut())
    except ImportError:
        logger.warning("scikit-image is not installed: the astronaut photo is unavailable")
    try:
        import matplotlib.cbook

        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            faces["grace_hopper"] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    except (ImportError, OSError, ValueError):
        logger.info("matplotlib's grace_hopper.jpg is unavailable")
    return faces


def load_faces(faces_dir: str | Path | None = None, builtin: bool = True, min_score: float = 0.3) -> list[FaceIdentity]:
    """The base faces: the built-in photos and every photo in `faces_dir` in which a face is found.

    Photos without a clear frontal face (dlib HOG score below `min_score`) are skipped with a warning.

    Raises:
        FileNotFoundError: `faces_dir` does not exist.
        NoFaceDetectedError: No usable face at all.
    """
    images: list[tuple[str, np.ndarray]] = list(builtin_faces().items()) if builtin else []
    if faces_dir is not None:
        faces_dir = Path(faces_dir)
        if not faces_dir.is_dir():
            raise FileNotFoundError(f"--faces-dir {faces_dir} is not a folder of face photos")
        for path in sorted(p for p in faces_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                logger.warning("skipping %s: not a readable image", path)
                continue
            images.append((path.stem.replace(" ", "_"), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    faces = []
    for name, image in images:
        try:
            faces.append(prepare_face(image, name, min_score=min_score))
        except NoFaceDetectedError as err:
            logger.warning("skipping face photo %r: %s", name, err)
    if not faces:
        raise NoFaceDetectedError(
            "no usable face photo: install scikit-image (astronaut) or pass --faces-dir with frontal face photos"
        )
    names = [f.name for f in faces]
    if len(set(names)) != len(names):
        for i, face in enumerate(faces):
            face.name = face.base = f"{face.name}-{i}"
    return faces


def _mesh(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mesh vertices (68 landmarks + a fixed ring around the face + the image border) and Delaunay triangles."""
    from scipy.spatial import Delaunay

    height, width = shape
    points = points.copy()
    center, ex, ey, iod = _face_frame(points)
    # Closed lips put the inner lip points on top of each other: part them by half a pixel each way.
    for up, down in ((61, 67), (62, 66), (63, 65)):
        gap = float((points[down] - points[up]) @ ey)
        if gap < 1.0:
            points[up] -= (1.0 - gap) / 2 * ey
            points[down] += (1.0 - gap) / 2 * ey
    face_center = center + 0.55 * iod * ey
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    ring = face_center + np.outer(1.65 * iod * np.cos(angles), ex) + np.outer(2.05 * iod * np.sin(angles), ey)
    ring = np.clip(ring, 1.0, [width - 2.0, height - 2.0])
    xs, ys = [0.0, (width - 1) / 2, width - 1.0], [0.0, (height - 1) / 2, height - 1.0]
    border = np.array([(x, y) for x in xs for y in ys if not (x == xs[1] and y == ys[1])])
    vertices = np.concatenate([points, ring, border])
    triangles = Delaunay(vertices).simplices.astype(np.int32)
    return vertices, triangles


def warp_piecewise_affine(
    image: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    triangles: np.ndarray,
    matrix: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """Warp `image` so that its points `src` land on `dst` mapped by the affine `matrix`, in a (width, height) frame.

    Each output pixel takes the affine map of the destination triangle it falls in (a dense map, one
    `cv2.remap`); pixels outside the mesh follow `matrix` alone.

    Args:
        image: (H, W, C) source image.
        src: (P, 2) mesh vertices in the source image.
        dst: (P, 2) where they go, before `matrix`.
        triangles: (K, 3) vertex indices (a triangulation of `src`).
        matrix: (2, 3) affine from `dst` coordinates to output pixels (head motion, framing).
        size: Output (width, height).
    """
    width, height = size
    dst_out = dst @ matrix[:, :2].T + matrix[:, 2]  # (P, 2)
    d, s = dst_out[triangles], src[triangles]  # (K, 3, 2)
    d_h = np.concatenate([d, np.ones((len(d), 3, 1))], axis=-1)  # (K, 3, 3) rows [x, y, 1]
    inverse = cv2.invertAffineTransform(matrix).T  # (3, 2): [x, y, 1] @ inverse -> source
    coeffs = np.repeat(inverse[None], len(d) + 1, axis=0)  # (K + 1, 3, 2); the last is "outside the mesh"
    det = np.linalg.det(d_h)
    ok = np.abs(det) > 1e-3
    coeffs[:-1][ok] = np.linalg.solve(d_h[ok], s[ok])
    index = np.full((height, width), len(d), np.int32)
    shift = 4
    corners = np.round(d * (1 << shift)).astype(np.int32)
    for k in np.flatnonzero(ok):
        cv2.fillConvexPoly(index, corners[k], int(k), lineType=cv2.LINE_8, shift=shift)
    coeffs = coeffs.astype(np.float32)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    c = coeffs[index]  # (H, W, 3, 2)
    map_x = c[..., 0, 0] * xs + c[..., 1, 0] * ys + c[..., 2, 0]
    map_y = c[..., 0, 1] * xs + c[..., 1, 1] * ys + c[..., 2, 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def flip_face(face: FaceIdentity) -> FaceIdentity:
    """The mirror image, with the landmark indices swapped so that 36-41 stay on the image left."""
    width = face.image.shape[1]
    points = face.landmarks.copy()
    points[:, 0] = width - 1 - points[:, 0]
    return FaceIdentity(
        face.name, np.ascontiguousarray(face.image[:, ::-1]), points[MIRROR], face.base, dict(face.params)
    )


def make_identity(face: FaceIdentity, rng: np.random.Generator, name: str) -> FaceIdentity:
    """A new synthetic subject from a photo: face-shape changes, a resting expression, colour, maybe a flip.

    Shape: face width/height, eye spacing, nose length, mouth width and height, jaw width, brow height, each a few
    percent of the IOD. Rest: small signed AU offsets (a resting frown, a slight smile, droopy lids). Colour: a
    skin-tone shift in Lab, brightness and saturation.
    """
    flipped = bool(rng.random() < 0.5)
    if flipped:
        face = flip_face(face)
    points = face.landmarks
    center, ex, ey, iod = _face_frame(points)
    local = np.stack([(points - center) @ ex, (points - center) @ ey], axis=1) / iod  # (68, 2) face frame
    new = local.copy()
    new[:, 0] *= rng.uniform(0.92, 1.08)
    new[:, 1] *= rng.uniform(0.93, 1.07)
    spread = rng.uniform(-0.04, 0.04)
    new[LEFT_EYE, 0] -= spread
    new[RIGHT_EYE, 0] += spread
    new[17:27, 1] += rng.uniform(-0.06, 0.04)  # brow height
    new[31:36, 1] += rng.uniform(-0.05, 0.05)  # nose length
    mouth = list(range(48, 68))
    mouth_center = new[mouth].mean(0)
    new[mouth, 0] = mouth_center[0] + (new[mouth, 0] - mouth_center[0]) * rng.uniform(0.9, 1.12)
    new[mouth, 1] += rng.uniform(-0.04, 0.05)
    jaw_scale = rng.uniform(0.92, 1.08)
    new[3:14, 0] = new[3:14, 0] * jaw_scale
    rest = {au: float(rng.uniform(-0.3, 0.3)) for au in _REST_AUS}
    rest["AU7"] = abs(rest["AU7"])
    new += _au_combination(rest)
    target = center + _to_image(new, ex, ey, iod)
    vertices, triangles = _mesh(points, face.image.shape[:2])
    dst = vertices.copy()
    dst[:68] = target
    height, width = face.image.shape[:2]
    image = warp_piecewise_affine(face.image, vertices, dst, triangles, np.eye(2, 3), (width, height))
    image = _recolour(image, rng)
    params = {"flip": flipped, "rest": rest}
    return FaceIdentity(name=name, image=image, landmarks=target, base=face.base, params=params)


def _recolour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] = lab[..., 0] * rng.uniform(0.85, 1.12) + rng.uniform(-8, 8)
    lab[..., 1:] = 128 + (lab[..., 1:] - 128) * rng.uniform(0.7, 1.25) + rng.uniform(-7, 7, size=2)
    return cv2.cvtColor(lab.clip(0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def make_identities(faces: Sequence[FaceIdentity], per_face: int, seed: int) -> list[FaceIdentity]:
    """`per_face` subjects per base photo: the photo itself first, then `per_face - 1` random variants."""
    if per_face < 1:
        raise ValueError(f"identities={per_face}: need at least 1 per face photo")
    out = []
    for f_idx, face in enumerate(faces):
        out.append(FaceIdentity(f"{face.name}-00", face.image, face.landmarks, face.base))
        for j in range(1, per_face):
            rng = np.random.default_rng([seed, 1_000_003, f_idx, j])
            out.append(make_identity(face, rng, f"{face.name}-{j:02d}"))
    return out


# Clips --------------------------------------------------------------------------------------------------------------


@dataclass
class RenderedClip:
    """One generated clip.

    Attributes:
        frames: (N, H, W, 3) RGB uint8.
        landmarks: (N, 68, 2) float32 true landmark positions in each frame (before blur/noise/compression).
        intensity: (N,) expression intensity (0 = neutral, the apex value at the end of the onset).
        params: The random choices (onset frames, peak, contempt side, augmentation strengths), JSON-safe.
    """

    frames: np.ndarray
    landmarks: np.ndarray
    intensity: np.ndarray
    params: dict


def _onset(n: int, start: float, stop: float, peak: float) -> np.ndarray:
    t = np.clip((np.arange(n) - start) / max(stop - start, 1e-6), 0.0, 1.0)
    return peak * t * t * (3 - 2 * t)  # smoothstep: zero velocity at both ends


def _expression_field(label: str, side: str, disgust: float, gains: dict[str, float]) -> np.ndarray:
    """(68, 2) face-frame displacement of a label's apex (intensity 1), with per-AU gains."""
    if label == "contempt":
        # A one-sided lip corner raise; disgust (merged into this class) mixes in nose wrinkle and upper lip raise.
        one = 1.0 - 0.6 * disgust
        field_ = (
            one * 0.8 * gains["AU12"] * _AU_ONE_SIDED[("AU12", side)]
            + one * gains["AU14"] * _AU_ONE_SIDED[("AU14", side)]
        )
        if disgust > 0:
            field_ = field_ + disgust * (
                gains["AU9"] * _AU_FIELDS["AU9"]
                + 0.8 * gains["AU10"] * _AU_FIELDS["AU10"]
                + 0.35 * gains["AU4"] * _AU_FIELDS["AU4"]
                + 0.3 * gains["AU15"] * _AU_FIELDS["AU15"]
            )
        return field_
    if label not in EXPRESSIONS:
        raise ValueError(f"unknown label {label!r}; choose one of {LABELS}")
    return _au_combination({au: w * gains[au] for au, w in EXPRESSIONS[label].items()})


def _blink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame (0 open .. 1 shut): at most one blink, as likely in every label."""
    closure = np.zeros(n)
    if rng.random() < 0.35:
        length = int(rng.integers(5, 9))
        start = int(rng.integers(-length // 2, n))
        shape = np.concatenate([np.linspace(0.3, 1.0, length // 3 + 1), np.linspace(1.0, 0.0, length - length // 3)])
        for k, value in enumerate(shape[1:]):
            if 0 <= start + k < n:
                closure[start + k] = value
    return closure


def _close_eyes(points: np.ndarray, amount: float) -> np.ndarray:
    if amount <= 0:
        return points
    points = points.copy()
    for up, down in ((37, 41), (38, 40), (43, 47), (44, 46)):
        meet = points[down] + 0.15 * (points[up] - points[down])
        points[up] += 0.95 * amount * (meet - points[up])
        points[down] += 0.95 * amount * (meet - points[down])
    return points


def _press_lips(points: np.ndarray, amount: float) -> np.ndarray:
    """AU24 lip pressor: the inner lip lines meet (a parted resting mouth closes) as `amount` goes 0 -> 1."""
    if amount <= 0:
        return points
    points = points.copy()
    amount = min(amount, 1.0)
    for up, down in ((61, 67), (62, 66), (63, 65)):
        meet = (points[up] + points[down]) / 2
        points[up] += 0.9 * amount * (meet - points[up])
        points[down] += 0.9 * amount * (meet - points[down])
    return points


def _paint_mouth(frame: np.ndarray, pts: np.ndarray, neutral_gap: float, iod: float, shade: float) -> None:
    """Paint a dark cavity and upper teeth where the inner lips have parted beyond their resting gap (in place)."""
    gap = float(np.mean([np.linalg.norm(pts[d] - pts[u]) for u, d in ((61, 67), (62, 66), (63, 65))]))
    opening = gap - neutral_gap
    alpha = float(np.clip(opening / (0.05 * iod), 0.0, 1.0))
    if alpha <= 0.02:
        return
    shift = 4
    h, w = frame.shape[:2]
    x0, y0 = np.floor(pts[INNER_LIPS].min(0)).astype(int) - 3
    x1, y1 = np.ceil(pts[INNER_LIPS].max(0)).astype(int) + 4
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    local = pts - (x0, y0)
    cavity = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(cavity, [np.round(local[INNER_LIPS] * (1 << shift)).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
    teeth = np.zeros_like(cavity)
    down = (local[66] - local[62]) / max(np.linalg.norm(local[66] - local[62]), 1e-6)
    depth = min(0.35 * gap, 0.09 * iod)
    upper = local[UPPER_INNER_LIP]
    band = np.concatenate([upper, upper[::-1] + depth * down])
    cv2.fillPoly(teeth, [np.round(band * (1 << shift)).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
    cavity = cv2.GaussianBlur(cavity, (0, 0), 0.6)
    teeth = cv2.GaussianBlur(teeth, (0, 0), 0.6) * cavity
    # A darker gradient towards the lower lip reads as depth.
    yy = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[:, None, None]
    dark = np.array([55, 18, 22], np.float32) * (1.0 - 0.5 * yy) * shade
    white = np.array([222, 212, 196], np.float32) * shade
    region = frame[y0:y1, x0:x1].astype(np.float32)
    a_cav, a_teeth = (alpha * cavity)[..., None], (alpha * teeth)[..., None]
    region = region * (1 - a_cav) + dark * (a_cav - a_teeth) + white * a_teeth
    frame[y0:y1, x0:x1] = region.clip(0, 255).astype(np.uint8)


def _smooth_path(n: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random 1-D trajectory over n frames: a drift plus a slow sway, starting anywhere in its range."""
    t = np.arange(n) / FPS
    drift = rng.uniform(-1, 1) * amplitude * 0.6 * t / max(t[-1], 1e-6) if n > 1 else np.zeros(n)
    sway = amplitude * 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 1.2) * t + rng.uniform(0, 2 * np.pi))
    return drift + sway + rng.normal(0, amplitude * 0.02, n)


def render_clip(
    face_image: np.ndarray,
    landmarks: np.ndarray,
    label: str,
    rng: np.random.Generator,
    num_frames: int = 30,
    size: tuple[int, int] = (320, 240),
    augment: bool = True,
) -> RenderedClip:
    """Render an expression-onset clip with its true landmarks (see `generate_clip`)."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; choose one of {LABELS}")
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: need at least 1")
    width, height = size
    n = num_frames
    landmarks = np.asarray(landmarks, np.float64).reshape(68, 2)
    center, ex, ey, iod = _face_frame(landmarks)
    vertices, triangles = _mesh(landmarks, face_image.shape[:2])
    neutral = vertices[:68]

    # Every random draw below happens in the same order for every label, so two clips with the same generator
    # differ only in the expression: before the onset their frames are identical.
    start = rng.uniform(0.0, 0.3) * (n - 1)
    stop = min(start + max(rng.uniform(0.35, 0.6) * (n - 1), 2.0), n - 1.0)
    peak = rng.uniform(0.65, 1.0)
    gains = dict(zip(AU_NAMES, rng.uniform(0.75, 1.25, len(AU_NAMES)), strict=True))
    side = "left" if rng.random() < 0.5 else "right"
    disgust = float(rng.random() < 0.5) * rng.uniform(0.6, 1.0)
    clip_rest = dict(zip(_REST_AUS, rng.uniform(-0.12, 0.12, len(_REST_AUS)), strict=True))
    # A resting look of some other expression (half the clips): a weak smile or frown that is there from the first
    # frame is identity, not emotion, so a single late frame stays ambiguous while the onset's motion does not.
    rest_label = LABELS[1 + int(rng.integers(len(LABELS) - 1))]
    rest_amount = rng.uniform(0.0, 0.4) * float(rng.random() < 0.5)
    rest_side = "left" if rng.random() < 0.5 else "right"
    # Framing and head motion.
    iod_frac = rng.uniform(0.18, 0.26)
    offset = rng.uniform(-0.07, 0.07, 2) * (width, height)
    roll0 = rng.uniform(-8, 8)
    paths = [_smooth_path(n, rng, a) for a in (0.035 * width, 0.035 * height, 0.04, 4.0)]  # dx, dy, log-scale, deg
    blink = _blink(n, rng)
    gain = rng.uniform(0.7, 1.25)
    tint = rng.uniform(0.9, 1.1, 3)
    gamma = rng.uniform(0.8, 1.25)
    grad_angle = rng.uniform(0, 2 * np.pi)
    grad_amp = rng.uniform(0.0, 0.35)
    grad_drift = rng.uniform(-0.1, 0.1)
    flicker = rng.normal(0, 0.012, n)
    blur = rng.uniform(0.3, 1.2) if rng.random() < 0.6 else 0.0
    noise = rng.uniform(0.0, 6.0)
    jpeg = int(rng.integers(30, 96)) if rng.random() < 0.7 else 0
    noise_seed = int(rng.integers(2**31))

    if not augment:
        clip_rest = dict.fromkeys(_REST_AUS, 0.0)
        rest_amount = 0.0
        iod_frac, offset, roll0 = 0.22, np.zeros(2), 0.0
        paths = [np.zeros(n)] * 4
        blink = np.zeros(n)

    intensity = _onset(n, start, stop, peak)
    apex = _to_image(_expression_field(label, side, disgust, gains), ex, ey, iod)
    ones = dict.fromkeys(AU_NAMES, 1.0)
    rest_field = _au_combination(clip_rest) + rest_amount * _expression_field(rest_label, rest_side, 0.0, ones)
    rest = _to_image(rest_field, ex, ey, iod)
    # Pressed lips (anger's AU24) and a raised chin (sad's AU17) close a mouth that is parted at rest.
    press = {"anger": gains["AU23"], "sad": 0.6 * gains["AU17"]}.get(label, 0.0)
    face_center = center + 0.45 * iod * ey
    base_scale = iod_frac * height / iod
    neutral_gap = float(np.mean([np.linalg.norm(neutral[d] - neutral[u]) for u, d in ((61, 67), (62, 66), (63, 65))]))
    lum = (
        float(
            cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY)[
                int(max(center[1], 0)) : int(center[1] + iod),
                int(max(center[0] - iod / 2, 0)) : int(center[0] + iod / 2),
            ].mean()
        )
        if face_image.size
        else 128.0
    )
    shade = float(np.clip(lum / 140.0, 0.55, 1.15))

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = ((xx - width / 2) * np.cos(grad_angle) + (yy - height / 2) * np.sin(grad_angle)) / max(width, height)
    ramp = ramp.astype(np.float32)  # (H, W)
    noise_rng = np.random.default_rng(noise_seed)
    noise_bank = None
    if augment and noise > 0.5:
        bank = noise * noise_rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32)
        noise_bank = bank.round().astype(np.int16)
    gamma_table = (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)
    frames = np.empty((n, height, width, 3), np.uint8)
    out_points = np.empty((n, 68, 2), np.float32)
    for i in range(n):
        points = neutral + rest + intensity[i] * apex
        points = _press_lips(points, intensity[i] * press)
        points = _close_eyes(points, blink[i])
        dst = vertices.copy()
        dst[:68] = points
        scale = base_scale * np.exp(paths[2][i])
        matrix = cv2.getRotationMatrix2D((float(face_center[0]), float(face_center[1])), roll0 + paths[3][i], scale)
        matrix[:, 2] += np.array([width / 2, height / 2]) + offset + (paths[0][i], paths[1][i]) - face_center
        frame = warp_piecewise_affine(face_image, vertices, dst, triangles, matrix, size)
        out = points @ matrix[:, :2].T + matrix[:, 2]
        out_points[i] = out
        _paint_mouth(frame, out, neutral_gap * scale, iod * scale, shade)
        if augment:
            ramp_i = 1 + (grad_amp + grad_drift * i / max(n - 1, 1)) * ramp  # (H, W)
            light = (ramp_i[..., None] * (gain * (1 + flicker[i]) * tint)).astype(np.float32)  # (H, W, 3)
            frame = _degrade(frame, light, gamma_table, blur, noise_bank, jpeg, noise_rng)
        frames[i] = frame
    params = {
        "onset_start": float(start),
        "onset_stop": float(stop),
        "peak": float(peak),
        "side": side,
        "disgust": float(disgust) if label == "contempt" else 0.0,
        "rest_label": rest_label if rest_amount > 0 else "neutral",
        "rest_amount": float(rest_amount),
        "blinks": bool(blink.any()),
        "blur": float(blur),
        "noise": float(noise),
        "jpeg": jpeg,
        "iod_px": float(iod * base_scale),
    }
    return RenderedClip(frames, out_points, intensity.astype(np.float32), params)


def _degrade(
    frame: np.ndarray,
    light: np.ndarray,
    gamma_table: np.ndarray,
    blur: float,
    noise_bank: np.ndarray | None,
    jpeg: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Lighting (per-pixel, per-channel gain), gamma (a lookup table), blur, sensor noise and JPEG of one frame."""
    x = cv2.multiply(frame.astype(np.float32), light)
    out = cv2.LUT(x.clip(0, 255).astype(np.uint8), gamma_table)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if noise_bank is not None:
        # A random window of the clip's noise field: fresh noise per frame for the cost of a slice.
        h, w = out.shape[:2]
        dy, dx = rng.integers(0, noise_bank.shape[0] - h + 1), rng.integers(0, noise_bank.shape[1] - w + 1)
        out = (out.astype(np.int16) + noise_bank[dy : dy + h, dx : dx + w]).clip(0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def generate_clip(
    face_image: np.ndarray,
    landmarks: np.ndarray,
    label: str,
    rng: np.random.Generator,
    num_frames: int = 30,
    size: tuple[int, int] = (320, 240),
    augment: bool = True,
) -> np.ndarray:
    """Frames of one synthetic clip: the face moves from neutral into `label`'s expression.

    The intensity is zero before a random onset start (up to 30% into the clip), rises smoothly over 35-60% of the
    clip to a random peak (0.65-1.0 of the prototype, each AU scaled by 0.75-1.25) and holds. All random choices
    are drawn in the same order for every label, so the same generator state gives the same frames up to the onset.

    Args:
        face_image: (H, W, 3) RGB uint8 neutral face photo.
        landmarks: (68, 2) iBUG points of the photo.
        label: One of `LABELS`.
        rng: Source of every random choice (the clip is a pure function of its state).
        num_frames: Frames N (the clip is 30 fps).
        size: Output (width, height).
        augment: Head motion, blinks, resting-expression jitter, lighting, blur, noise and JPEG; False gives a
            still, centred face with the expression alone (for tests and figures).

    Returns:
        (N, H, W, 3) RGB uint8 frames.
    """
    return render_clip(face_image, landmarks, label, rng, num_frames, size, augment).frames


# Dataset ------------------------------------------------------------------------------------------------------------


def write_video(path: str | Path, frames: np.ndarray, fps: float = FPS, fourcc: str = "mp4v") -> Path:
    """Write RGB frames with OpenCV: MPEG-4 Part 2 (`mp4v`, .mp4) by default, or another FourCC (`VP80`, .webm)."""
    path = Path(path)
    height, width = frames.shape[1:3]
    if width % 2 or height % 2:
        # yuv420p halves the chroma planes: the encoder silently crops odd sizes by one pixel.
        raise ValueError(f"video frames must have an even width and height, got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video to {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


_WORKER_IDENTITIES: list[FaceIdentity] = []


def _init_worker(identities: list[FaceIdentity]) -> None:
    cv2.setNumThreads(1)
    _WORKER_IDENTITIES[:] = identities


def _make_one(task: dict) -> dict:
    identity = _WORKER_IDENTITIES[task["identity"]]
    rng = np.random.default_rng(task["seed"])
    num_frames = int(rng.integers(task["min_frames"], task["max_frames"] + 1))
    clip = render_clip(identity.image, identity.landmarks, task["label"], rng, num_frames, tuple(task["size"]))
    write_video(Path(task["out_dir"]) / task["path"], clip.frames)
    return {
        "path": task["path"],
        "label": task["label"],
        "subject": identity.name,
        "base_face": identity.base,
        "num_frames": num_frames,
        **clip.params,
    }


def generate_dataset(
    out_dir: str | Path,
    clips_per_label: int = 20,
    seed: int = 0,
    identities: int = 4,
    num_frames: tuple[int, int] = (10, 60),
    size: tuple[int, int] = (320, 240),
    num_proc: int = 1,
    faces_dir: str | Path | None = None,
    builtin_faces: bool = True,
    labels: Sequence[str] = LABELS,
    overwrite: bool = False,
) -> Path:
    """Write a plain-folder dataset of synthetic clips: `out_dir/LABEL/SUBJECT/LABEL_IIII.mp4` + `manifest.csv`.

    Both routes of `training.sources.folder` read it with subjects: the folder layout (the level below the label
    is the subject) and the manifest.

    `manifest.csv` has the columns path (relative to `out_dir`), label, subject; `metadata.jsonl` holds every
    clip's random choices (onset frames, peak, augmentations). Clip i of label number k goes to subject
    (i + k) mod (number of subjects), so each subject shows every label about equally often (exactly when
    `clips_per_label` is a multiple of the number of subjects) and subject-independent splits stay balanced. The output is a pure function of the arguments (not of `num_proc`).

    Args:
        out_dir: Folder to write (created; existing clips with the same names are overwritten).
        clips_per_label: Clips per label.
        seed: Seed of every random choice.
        identities: Subjects per base photo (the photo itself plus identities - 1 random variants).
        num_frames: Inclusive (min, max) frames per clip, at 30 fps.
        size: Frame (width, height), both even.
        num_proc: Worker processes ("spawn"; each uses one OpenCV thread).
        faces_dir: Extra folder of neutral frontal face photos.
        builtin_faces: Use the public-domain photos that ship with installed packages.
        labels: Labels to generate (default the paper's 7).
        overwrite: Replace an earlier synthetic dataset in `out_dir` (its label folders, manifest and metadata);
            without it a non-empty `out_dir` is refused, so stale clips never mix with new ones.

    Returns:
        `out_dir`.
    """
    out_dir = Path(out_dir)
    lo, hi = num_frames
    if size[0] % 2 or size[1] % 2 or min(size) < 32:
        raise ValueError(f"size={size}: width and height must be even (yuv420 video) and at least 32")
    if not 1 <= lo <= hi:
        raise ValueError(f"num_frames={num_frames}: need 1 <= min <= max")
    if clips_per_label < 1:
        raise ValueError(f"clips_per_label={clips_per_label}: need at least 1")
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ValueError(f"unknown labels {unknown}; choose from {LABELS}")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty: choose a new folder or pass overwrite=True (--overwrite)")
        if not (out_dir / "manifest.csv").is_file():
            raise FileExistsError(f"{out_dir} is not empty and holds no manifest.csv: refusing to delete it")
        for name in (*LABELS, "manifest.csv", "metadata.jsonl"):
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    subjects = make_identities(load_faces(faces_dir, builtin=builtin_faces), identities, seed)
    tasks = []
    for label in labels:
        label_idx = LABELS.index(label)
        for i in range(clips_per_label):
            subject = (i + label_idx) % len(subjects)
            tasks.append(
                {
                    "identity": subject,
                    "label": label,
                    "seed": [seed, label_idx, i],
                    "min_frames": lo,
                    "max_frames": hi,
                    "size": list(size),
                    "out_dir": str(out_dir),
                    "path": f"{label}/{subjects[subject].name}/{label}_{i:04d}.mp4",
                }
            )
    start = time.perf_counter()
    if num_proc > 1:
        ctx = multiprocessing.get_context("spawn")  # fork after OpenCV's threads started can deadlock
        with ctx.Pool(num_proc, initializer=_init_worker, initargs=(subjects,)) as pool:
            rows = pool.map(_make_one, tasks, chunksize=max(1, len(tasks) // (4 * num_proc)))
    else:
        _init_worker(subjects)
        rows = [_make_one(task) for task in tasks]
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "subject"])
        writer.writerows([row["path"], row["label"], row["subject"]] for row in rows)
    with open(out_dir / "metadata.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    logger.info(
        "wrote %d clips of %d subjects to %s in %.1f s", len(rows), len(subjects), out_dir, time.perf_counter() - start
    )
    return out_dir


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: `python -m training.synthetic --out-dir DIR [--clips-per-label N] [...]`."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out-dir", required=True, type=Path, help="folder to write LABEL/*.mp4 and manifest.csv")
    parser.add_argument("--clips-per-label", type=int, default=20)
    parser.add_argument("--identities", type=int, default=4, help="subjects per face photo (the photo + variants)")
    parser.add_argument("--min-frames", type=int, default=10)
    parser.add_argument("--max-frames", type=int, default=60)
    parser.add_argument("--size", type=_size, default=(320, 240), help="frame WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-proc", type=int, default=1)
    parser.add_argument("--faces-dir", type=Path, default=None, help="extra folder of neutral frontal face photos")
    parser.add_argument("--no-builtin-faces", action="store_true", help="use only the photos in --faces-dir")
    parser.add_argument("--labels", nargs="+", default=list(LABELS), choices=LABELS)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier synthetic dataset in --out-dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return generate_dataset(
        args.out_dir,
        clips_per_label=args.clips_per_label,
        seed=args.seed,
        identities=args.identities,
        num_frames=(args.min_frames, args.max_frames),
        size=args.size,
        num_proc=args.num_proc,
        faces_dir=args.faces_dir,
        builtin_faces=not args.no_builtin_faces,
        labels=args.labels,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    main()
