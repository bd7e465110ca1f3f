"""Face geometry and the piecewise-affine warp that moves a photo's pixels with its landmarks.

`face_frame` gives the face's own frame (eye midpoint, axes along and across the eye line, inter-ocular distance);
`mesh` triangulates the 68 landmarks with a fixed ring around the face and the image border; `warp_piecewise_affine`
maps every output pixel through the affine map of the destination triangle it falls in (one `cv2.remap`).
"""

from __future__ import annotations

import cv2
import numpy as np

from microx_hf.regions import eye_centers


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Eye midpoint, unit vectors along the eye line (ex) and down the face (ey), and the inter-ocular distance."""
    left, right = eye_centers(points)
    iod = float(np.linalg.norm(right - left))
    ex = (right - left) / max(iod, 1e-6)
    ey = np.array([-ex[1], ex[0]])
    return (left + right) / 2, ex, ey, iod


def to_image(disp: np.ndarray, ex: np.ndarray, ey: np.ndarray, iod: float) -> np.ndarray:
    """Face-frame displacements (IOD units) -> image pixels."""
    return iod * (disp[:, :1] * ex + disp[:, 1:] * ey)


def mesh(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mesh vertices (68 landmarks + a fixed ring around the face + the image border) and Delaunay triangles."""
    from scipy.spatial import Delaunay

    height, width = shape
    points = points.copy()
    center, ex, ey, iod = face_frame(points)
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
