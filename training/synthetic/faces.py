"""Synthetic subjects: neutral face photos with their landmarks, and random identity variants of each.

The photos are the public-domain ones that ship with installed packages (`skimage.data.astronaut()`, matplotlib's
`grace_hopper.jpg`, a U.S. Navy photograph) and any folder of photos; a variant changes the face's shape, gives it
a resting expression and other colours, and may mirror it, so that held-out "subjects" exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from microx_hf.errors import NoFaceDetectedError
from microx_hf.regions import FLIP_PERMUTATION, REGION_INDICES

from .action_units import REST_AUS, au_combination
from .warp import face_frame, mesh, to_image, warp_piecewise_affine

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Lists, not the library's tuples: a tuple index would address several axes of a (68, 2) array.
LEFT_EYE, RIGHT_EYE = list(REGION_INDICES["left_eye"]), list(REGION_INDICES["right_eye"])


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
    center, _, _, iod = face_frame(points)
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
            raise FileNotFoundError(f"--faces_dir {faces_dir} is not a folder of face photos")
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
            "no usable face photo: install scikit-image (astronaut) or pass --faces_dir with frontal face photos"
        )
    names = [f.name for f in faces]
    if len(set(names)) != len(names):
        for i, face in enumerate(faces):
            face.name = face.base = f"{face.name}-{i}"
    return faces


def flip_face(face: FaceIdentity) -> FaceIdentity:
    """The mirror image, with the landmark indices swapped so that 36-41 stay on the image left."""
    width = face.image.shape[1]
    points = face.landmarks.copy()
    points[:, 0] = width - 1 - points[:, 0]
    return FaceIdentity(
        face.name, np.ascontiguousarray(face.image[:, ::-1]), points[FLIP_PERMUTATION], face.base, dict(face.params)
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
    center, ex, ey, iod = face_frame(points)
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
    rest = {au: float(rng.uniform(-0.3, 0.3)) for au in REST_AUS}
    rest["AU7"] = abs(rest["AU7"])
    new += au_combination(rest)
    target = center + to_image(new, ex, ey, iod)
    vertices, triangles = mesh(points, face.image.shape[:2])
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
