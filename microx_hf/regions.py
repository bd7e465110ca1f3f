"""Facial regions from 68 iBUG landmarks: names, index sets and crop geometry.

The MicroX paper (SUTD 2020) crops the full face, both eyes, the nose and the mouth from 68-point (iBUG 300-W)
landmarks; it also tried the eyebrows. Two geometries are offered:

- ``"iod"`` (default): a square centred on the feature whose side is a multiple of the inter-ocular distance
  (IOD, the distance between the two eye centres), optionally rotated so the eyes are level. Measured on BAUM-1s
  frames (docs/MEASUREMENTS.md), these squares stay on their feature through blinks, open mouths and head roll.
- ``"paper"``: the paper's axis-aligned boxes between given landmarks (e.g. the left eye spans x of points 36..39
  and y of points 38..40), padded by 5 px and resized (stretched) to the crop size.

"Left" and "right" are **image** sides throughout: ``left_eye`` is iBUG 36-41, the eye on the image's left
(the subject's right eye). A horizontal flip therefore swaps the left/right index sets (`FLIP_PERMUTATION`,
`flip_landmarks`, `hflip_crops`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# 0-based iBUG 68-point indices of each region. "left"/"right" are image sides.
REGION_INDICES: dict[str, tuple[int, ...]] = {
    "face": tuple(range(68)),
    "left_eye": tuple(range(36, 42)),
    "right_eye": tuple(range(42, 48)),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 68)),
    "left_brow": tuple(range(17, 22)),
    "right_brow": tuple(range(22, 27)),
}
REGION_NAMES: tuple[str, ...] = tuple(REGION_INDICES)

# Richer outlines from MediaPipe's 468-point face mesh (`Face.mesh` of the ``mediapipe`` backend) for the regions
# whose 68-point sets are thin: both edges of each brow (5 points each in iBUG: 10 here), every lip vertex (40).
# `crop_boxes(..., mesh=)` places these regions on them. "left"/"right" are image sides, as above.
MESH_POINTS = 468
MESH_REGION_INDICES: dict[str, tuple[int, ...]] = {
    "left_brow": (70, 63, 105, 66, 107, 46, 53, 52, 65, 55),
    "right_brow": (300, 293, 334, 296, 336, 276, 283, 282, 295, 285),
    "mouth": (
        61,
        185,
        40,
        39,
        37,
        0,
        267,
        269,
        270,
        409,
        291,
        375,
        321,
        405,
        314,
        17,
        84,
        181,
        91,
        146,
        78,
        191,
        80,
        81,
        82,
        13,
        312,
        311,
        310,
        415,
        308,
        324,
        318,
        402,
        317,
        14,
        87,
        178,
        88,
        95,
    ),
}
DEFAULT_REGIONS: tuple[str, ...] = ("face", "left_eye", "right_eye", "nose", "mouth")

# Side of the square crop as a multiple of the inter-ocular distance (measured on BAUM-1s, see docs/MEASUREMENTS.md).
DEFAULT_REGION_SCALES: dict[str, float] = {
    "face": 2.9,
    "left_eye": 0.75,
    "right_eye": 0.75,
    "nose": 1.2,
    "mouth": 1.45,
    "left_brow": 1.2,
    "right_brow": 1.2,
}

# The paper's boxes: (x from point, x to point, y from point, y to point). The paper gives no box for the whole
# face or the brows; those use the bounding box of their points.
PAPER_BOXES: dict[str, tuple[int, int, int, int]] = {
    "left_eye": (36, 39, 38, 40),
    "right_eye": (42, 45, 44, 46),
    "nose": (31, 35, 27, 33),
    "mouth": (48, 54, 51, 57),
}
PAPER_PADDING = 5.0
GEOMETRIES = ("iod", "paper")

# Where each point goes under a horizontal flip (iBUG 68 mirror pairs).
FLIP_PERMUTATION: np.ndarray = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # left eye <- right eye
    + [39, 38, 37, 36, 41, 40]  # right eye <- left eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)
FLIP_REGION: dict[str, str] = {
    "face": "face",
    "nose": "nose",
    "mouth": "mouth",
    "left_eye": "right_eye",
    "right_eye": "left_eye",
    "left_brow": "right_brow",
    "right_brow": "left_brow",
}


def validate_regions(regions: list[str] | tuple[str, ...]) -> list[str]:
    """Check region names.

    Raises:
        ValueError: A name is unknown or repeated.
    """
    regions = list(regions)
    unknown = [r for r in regions if r not in REGION_INDICES]
    if unknown:
        raise ValueError(f"unknown region(s) {unknown}; choose from {list(REGION_NAMES)}")
    if len(set(regions)) != len(regions):
        raise ValueError(f"regions {regions} contain duplicates")
    if not regions:
        raise ValueError(f"regions is empty; choose from {list(REGION_NAMES)}")
    return regions


def eye_centers(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-left (iBUG 36-41) and image-right (42-47) eye centres of a (68, 2) landmark array."""
    points = np.asarray(points, dtype=np.float64)
    return points[36:42].mean(0), points[42:48].mean(0)


def interocular_distance(points: np.ndarray) -> float:
    """Distance between the two eye centres, in pixels."""
    left, right = eye_centers(points)
    return float(np.linalg.norm(right - left))


def roll_angle(points: np.ndarray) -> float:
    """In-plane rotation of the eye line in degrees (positive: the image-right eye sits lower)."""
    left, right = eye_centers(points)
    dx, dy = right - left
    return float(np.degrees(np.arctan2(dy, dx)))


@dataclass(frozen=True)
class CropBox:
    """A rotated rectangle in frame pixels: centre, size and the angle (degrees) of its x axis."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float = 0.0

    def corners(self) -> np.ndarray:
        """The four corners (4, 2) in frame pixels, clockwise from top-left of the crop."""
        theta = np.radians(self.angle)
        ux = np.array([np.cos(theta), np.sin(theta)])
        uy = np.array([-np.sin(theta), np.cos(theta)])
        c = np.array([self.cx, self.cy])
        hw, hh = self.width / 2, self.height / 2
        return np.stack([c - hw * ux - hh * uy, c + hw * ux - hh * uy, c + hw * ux + hh * uy, c - hw * ux + hh * uy])

    def contains(self, points: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
        """Whether each of `points` (K, 2) lies inside the rectangle (grown by `tolerance` px on every side)."""
        theta = np.radians(self.angle)
        d = np.asarray(points, dtype=np.float64) - [self.cx, self.cy]
        u = d[:, 0] * np.cos(theta) + d[:, 1] * np.sin(theta)
        v = -d[:, 0] * np.sin(theta) + d[:, 1] * np.cos(theta)
        return (np.abs(u) <= self.width / 2 + tolerance) & (np.abs(v) <= self.height / 2 + tolerance)


def crop_boxes(
    points: np.ndarray,
    regions: list[str] | tuple[str, ...] = DEFAULT_REGIONS,
    geometry: str = "iod",
    region_scales: dict[str, float] | None = None,
    align: bool = True,
    mesh: np.ndarray | None = None,
) -> dict[str, CropBox]:
    """Crop rectangle of each region from one face's 68 landmarks.

    Args:
        points: (68, 2) landmarks (x, y) in frame pixels.
        regions: Region names, see `REGION_INDICES`.
        geometry: "iod" (squares sized by inter-ocular distance) or "paper" (the paper's padded boxes).
        region_scales: Square side per region as a multiple of the inter-ocular distance ("iod" only); missing
            names use `DEFAULT_REGION_SCALES`.
        align: Rotate the squares with the eye line so the eyes come out level ("iod" only; the paper did not).
        mesh: Optional (468, 2) face-mesh points of the same face (`Face.mesh`): the brows and the mouth are then
            placed on their mesh outlines (`MESH_REGION_INDICES`) instead of their 68-point sets (except the
            paper's own mouth box). Sizes still come from the 68 points' inter-ocular distance.

    Returns:
        Region name -> `CropBox`.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry={geometry!r}; choose one of {GEOMETRIES}")
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {points.shape}")
    if mesh is not None:
        mesh = np.asarray(mesh, dtype=np.float64)
        if mesh.shape != (MESH_POINTS, 2):
            raise ValueError(f"expected ({MESH_POINTS}, 2) mesh points, got {mesh.shape}")
    if geometry == "paper":
        return {name: _paper_box(points, name, mesh) for name in regions}

    scales = {**DEFAULT_REGION_SCALES, **(region_scales or {})}
    left, right = eye_centers(points)
    iod = max(float(np.linalg.norm(right - left)), 1.0)
    angle = roll_angle(points) if align else 0.0
    # Centres are measured in the face's own (eye-level) frame, so a tilted head keeps its crops on the features.
    pivot = (left + right) / 2
    theta = np.radians(angle)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])  # frame -> face frame
    local = (points - pivot) @ rot.T
    mesh_local = None if mesh is None else (mesh - pivot) @ rot.T
    boxes = {}
    for name in regions:
        if mesh_local is not None and name in MESH_REGION_INDICES:
            sel = mesh_local[list(MESH_REGION_INDICES[name])]
        else:
            sel = local[list(REGION_INDICES[name])]
        centre_local = (sel.min(0) + sel.max(0)) / 2
        cx, cy = centre_local @ rot + pivot  # back to the frame (rot is orthonormal)
        side = scales[name] * iod
        boxes[name] = CropBox(float(cx), float(cy), side, side, angle)
    return boxes


def _paper_box(points: np.ndarray, name: str, mesh: np.ndarray | None = None) -> CropBox:
    if name in PAPER_BOXES:
        xa, xb, ya, yb = PAPER_BOXES[name]
        x0, x1 = sorted((points[xa, 0], points[xb, 0]))
        y0, y1 = sorted((points[ya, 1], points[yb, 1]))
    else:
        use_mesh = mesh is not None and name in MESH_REGION_INDICES
        sel = mesh[list(MESH_REGION_INDICES[name])] if use_mesh else points[list(REGION_INDICES[name])]
        (x0, y0), (x1, y1) = sel.min(0), sel.max(0)
    x0, y0, x1, y1 = x0 - PAPER_PADDING, y0 - PAPER_PADDING, x1 + PAPER_PADDING, y1 + PAPER_PADDING
    return CropBox((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, 1.0), max(y1 - y0, 1.0), 0.0)


def crop_region(image: np.ndarray, box: CropBox, size: int | tuple[int, int]) -> np.ndarray:
    """Cut `box` out of `image` and resample it to `size` (outside the frame is black).

    A crop that shrinks the image by 1.5x or more first averages the box's neighbourhood over n x n pixel blocks
    (n, the shrink rounded, is an integer so OpenCV's fast area path applies) and then warps that, so small crops
    of large faces do not alias.

    Args:
        image: (H, W, C) or (H, W) uint8 frame.
        box: The rectangle to cut.
        size: Output side S, or (width, height).

    Returns:
        (S, S, C) or (S, S) (or (height, width, ...)) array of the image's dtype.
    """
    out_w, out_h = (size, size) if isinstance(size, (int, np.integer)) else size
    theta = np.radians(box.angle)
    cos, sin = np.cos(theta), np.sin(theta)
    sx, sy = out_w / box.width, out_h / box.height
    # Frame -> crop: rotate by -angle about the box centre, scale, and put the centre between the middle pixels
    # (pixel centres sit at integer coordinates in OpenCV's warps).
    matrix = np.array([[sx * cos, sx * sin, 0.0], [-sy * sin, sy * cos, 0.0], [0.0, 0.0, 1.0]])
    matrix[:2, 2] = np.array([(out_w - 1) / 2, (out_h - 1) / 2]) - matrix[:2, :2] @ np.array([box.cx, box.cy])
    n = int(np.floor(1.0 / min(sx, sy) + 0.5))
    if n >= 2:
        height, width = image.shape[:2]
        corners = box.corners()
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - n, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + n, [width, height])
        x1, y1 = x0 + (x1 - x0) // n * n, y0 + (y1 - y0) // n * n
        if x1 > x0 and y1 > y0:
            small = cv2.resize(image[y0:y1, x0:x1], ((x1 - x0) // n, (y1 - y0) // n), interpolation=cv2.INTER_AREA)
            # small -> frame (pixel centres: x = n * (xs + 0.5) - 0.5 + x0), then frame -> crop.
            to_frame = np.array([[n, 0, 0.5 * n - 0.5 + x0], [0, n, 0.5 * n - 0.5 + y0], [0, 0, 1]])
            image, matrix = small, matrix @ to_frame
    return cv2.warpAffine(image, matrix[:2], (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def crop_regions(
    image: np.ndarray,
    points: np.ndarray,
    regions: list[str] | tuple[str, ...] = DEFAULT_REGIONS,
    size: int = 48,
    geometry: str = "iod",
    region_scales: dict[str, float] | None = None,
    align: bool = True,
) -> np.ndarray:
    """All region crops of one frame, channels first.

    Args:
        image: (H, W, 3) RGB uint8 frame.
        points: (68, 2) landmarks of the face.
        regions, geometry, region_scales, align: See `crop_boxes`.
        size: Crop side S.

    Returns:
        (R, 3, S, S) uint8, regions in the given order.
    """
    boxes = crop_boxes(points, regions, geometry, region_scales, align)
    crops = [crop_region(image, boxes[name], size) for name in regions]
    return np.stack(crops).transpose(0, 3, 1, 2)  # (R, S, S, C) -> (R, C, S, S)


def flip_landmarks(points: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally flipped frame: mirrored x, with left/right point indices swapped.

    Args:
        points: (..., 68, 2) landmarks.
        width: Frame width in pixels (x -> width - 1 - x).
    """
    points = np.asarray(points)
    flipped = points[..., FLIP_PERMUTATION, :].copy()
    flipped[..., 0] = width - 1 - flipped[..., 0]
    return flipped


def flip_permutation(regions: list[str] | tuple[str, ...]) -> list[int]:
    """Index of the region that takes each slot after a horizontal flip.

    Raises:
        ValueError: A left region is listed without its right partner (or the reverse).
    """
    regions = list(regions)
    missing = [FLIP_REGION[r] for r in regions if FLIP_REGION[r] not in regions]
    if missing:
        raise ValueError(f"cannot flip regions {regions}: their mirror images {missing} are not among them")
    return [regions.index(FLIP_REGION[r]) for r in regions]


def hflip_crops(
    crops: np.ndarray, mask: np.ndarray | None, regions: list[str] | tuple[str, ...], region_axis: int = -5
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror region crops horizontally, swapping the left and right regions (for augmentation).

    Args:
        crops: Array or tensor (..., R, T, C, S, S) (the region axis at `region_axis`, the last axis is x).
        mask: (..., R, T) region mask (region axis at `region_axis + 3`), or None.
        regions: Region names in crop order.
        region_axis: Axis of R in `crops`.

    Returns:
        The flipped crops and the permuted mask.
    """
    perm = flip_permutation(regions)
    if hasattr(crops, "flip"):  # torch
        flipped = crops.flip(-1).index_select(region_axis % crops.ndim, _torch_index(crops, perm))
    else:
        flipped = np.take(np.asarray(crops)[..., ::-1], perm, axis=region_axis)
    if mask is None:
        return flipped, None
    mask_axis = region_axis + 3 if region_axis < 0 else region_axis
    if hasattr(mask, "index_select"):
        return flipped, mask.index_select(mask_axis % mask.ndim, _torch_index(mask, perm))
    return flipped, np.take(np.asarray(mask), perm, axis=mask_axis)


def _torch_index(tensor, perm: list[int]):
    import torch

    return torch.as_tensor(perm, dtype=torch.long, device=tensor.device)
