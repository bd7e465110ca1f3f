"""Pictures that show what the model sees: a contact sheet of region crops and a face-track preview (drawn while
the video streams, `TrackPreview`).

Both draw with OpenCV into RGB uint8 arrays (no matplotlib), so the CLI can write a PNG and the Space can show the
arrays directly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .regions import DEFAULT_REGIONS, CropBox, crop_boxes
from .windows import window_starts

if TYPE_CHECKING:  # the extraction imports the landmark backends; only its data classes are needed here
    from .stream import ClipCrops, FrameCrops

logger = logging.getLogger(__name__)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)
_CROSS = (220, 40, 40)
# One colour per region (RGB), in the order of `regions.REGION_NAMES`.
REGION_COLOURS: dict[str, tuple[int, int, int]] = {
    "face": (80, 200, 255),
    "left_eye": (255, 200, 0),
    "right_eye": (255, 120, 0),
    "nose": (120, 255, 120),
    "mouth": (255, 80, 160),
    "left_brow": (200, 140, 255),
    "right_brow": (150, 90, 255),
}


def _frame_indices(n_frames: int, window: int | slice | None, num_frames: int, stride: int) -> list[int]:
    if window is None:
        return list(range(n_frames))
    if isinstance(window, slice):
        indices = list(range(n_frames))[window]
        if not indices:
            raise ValueError(f"window={window} selects no frames of a clip of {n_frames}")
        return indices
    starts = window_starts(n_frames, num_frames, stride)
    if not -len(starts) <= window < len(starts):
        raise IndexError(f"window {window} does not exist: this clip has {len(starts)} windows (0..{len(starts) - 1})")
    start = starts[window]
    return list(range(start, min(start + num_frames, n_frames)))


_HEADER = 20  # pixels above the crops for the time stamps
_GAP = 2  # pixels between crops


def _masked(cell: np.ndarray) -> np.ndarray:
    """A crop whose region was not found: greyed, dimmed and crossed out."""
    grey = cv2.cvtColor(cell, cv2.COLOR_RGB2GRAY)
    out = np.repeat((grey // 3 + 40)[..., None], 3, axis=-1).astype(np.uint8)
    side = out.shape[0]
    thickness = max(1, side // 24)
    cv2.line(out, (0, 0), (side - 1, side - 1), _CROSS, thickness, cv2.LINE_AA)
    cv2.line(out, (side - 1, 0), (0, side - 1), _CROSS, thickness, cv2.LINE_AA)
    return out


def contact_sheet(
    clip: ClipCrops,
    window: int | slice | None = None,
    num_frames: int = 10,
    stride: int = 5,
    cell: int = 64,
    max_columns: int = 60,
) -> np.ndarray:
    """One image of the region crops: a row per region, a column per frame, region names at the left.

    Crops of a region that was not found in a frame (`clip.mask` False) are greyed and crossed out in red.

    Args:
        clip: The crops, from `MicroXFeatureExtractor.extract_clip`.
        window: Which frames: a window index (windows of `num_frames` frames every `stride` frames, as
            `video.window_starts` makes them), a slice of frame indices, or None for every frame.
        num_frames: Frames per window (for an integer `window`).
        stride: Frames between window starts (for an integer `window`).
        cell: Side of each crop in the sheet, in pixels.
        max_columns: At most this many frames are drawn (evenly spaced) when `window` selects more.

    Returns:
        (H, W, 3) RGB uint8 image.
    """
    if clip.crops is None:
        raise ValueError(
            "this clip record keeps no crops (`predict` streams them): draw `prediction.window_clip(window)`, or "
            "the clip `MicroXFeatureExtractor.extract_clip` returns"
        )
    crops = np.asarray(clip.crops)  # (R, N, C, S, S)
    mask = np.asarray(clip.mask, dtype=bool)  # (R, N)
    n_regions, n_frames = crops.shape[:2]
    if n_frames == 0:
        raise ValueError("the clip has no frames")
    indices = _frame_indices(n_frames, window, num_frames, stride)
    if len(indices) > max_columns:
        indices = [indices[int(i)] for i in np.linspace(0, len(indices) - 1, max_columns).round()]
    label_width = 8 + max(cv2.getTextSize(name, _FONT, 0.45, 1)[0][0] for name in clip.regions)
    header, gap = _HEADER, _GAP
    height = header + n_regions * (cell + gap)
    width = label_width + len(indices) * (cell + gap)
    sheet = np.full((height, width, 3), _BACKGROUND, np.uint8)
    for col, i in enumerate(indices):
        x = label_width + col * (cell + gap)
        stamp = f"{float(clip.timestamps[i]):.2f}s" if len(clip.timestamps) > i else str(i)
        cv2.putText(sheet, stamp, (x + 2, header - 6), _FONT, 0.35, _TEXT, 1, cv2.LINE_AA)
    for row, name in enumerate(clip.regions):
        y = header + row * (cell + gap)
        cv2.putText(sheet, name, (4, y + cell // 2 + 4), _FONT, 0.45, REGION_COLOURS.get(name, _TEXT), 1, cv2.LINE_AA)
        for col, i in enumerate(indices):
            x = label_width + col * (cell + gap)
            image = np.ascontiguousarray(crops[row, i].transpose(1, 2, 0))  # (S, S, C)
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            image = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_NEAREST)
            if not mask[row, i]:
                image = _masked(image)
            sheet[y : y + cell, x : x + cell] = image
    return sheet


def _draw_box(frame: np.ndarray, box: CropBox | np.ndarray, colour: tuple[int, int, int], thickness: int) -> None:
    if isinstance(box, CropBox):
        corners = np.round(box.corners()).astype(np.int32)
        cv2.polylines(frame, [corners], True, colour, thickness, cv2.LINE_AA)
    else:
        x0, y0, x1, y1 = (int(round(v)) for v in np.asarray(box, dtype=float)[:4])
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)


def face_track_preview(
    frames: Sequence[np.ndarray] | np.ndarray,
    landmarks: np.ndarray,
    boxes: Sequence[dict[str, CropBox | np.ndarray] | CropBox | np.ndarray | None] | None = None,
    regions: Sequence[str] = DEFAULT_REGIONS,
    geometry: str = "iod",
    region_scales: dict[str, float] | None = None,
    align: bool = True,
) -> list[np.ndarray]:
    """Frames with the tracked landmarks and the region crop boxes drawn on them.

    Args:
        frames: N RGB uint8 frames (H, W, 3).
        landmarks: (N, 68, 2) points in frame pixels, NaN where no face was found.
        boxes: Per frame, what to outline: a dict region -> `CropBox` or (4,) [x0, y0, x1, y1] array, a single
            box, or None. None (the default) computes each frame's crop boxes from its landmarks with
            `regions.crop_boxes(points, regions, geometry, region_scales, align)`.
        regions, geometry, region_scales, align: Used only when `boxes` is None.

    Returns:
        N new RGB uint8 frames (the inputs are not changed). Frames without a face say so.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if len(landmarks) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark sets")
    if boxes is not None and len(boxes) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} box entries")
    out = []
    for i, frame in enumerate(frames):
        canvas = np.ascontiguousarray(frame, dtype=np.uint8).copy()
        scale = max(canvas.shape[:2]) / 640
        thickness = max(1, int(round(2 * scale)))
        points = landmarks[i]
        found = bool(np.isfinite(points).all())
        if boxes is not None:
            frame_boxes = boxes[i]
        elif found:
            frame_boxes = crop_boxes(points, list(regions), geometry, region_scales, align)
        else:
            frame_boxes = None
        if isinstance(frame_boxes, dict):
            for name, box in frame_boxes.items():
                _draw_box(canvas, box, REGION_COLOURS.get(name, _TEXT), thickness)
        elif frame_boxes is not None:
            _draw_box(canvas, frame_boxes, REGION_COLOURS["face"], thickness)
        if found:
            radius = max(1, int(round(2 * scale)))
            for x, y in points:
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
        else:
            cv2.putText(
                canvas,
                "no face",
                (10, int(30 * max(scale, 0.5))),
                _FONT,
                max(scale, 0.5),
                _CROSS,
                thickness,
                cv2.LINE_AA,
            )
        out.append(canvas)
    return out


def region_strips(
    clip: ClipCrops,
    window: int | slice | None = None,
    num_frames: int = 10,
    stride: int = 5,
    cell: int = 64,
    max_columns: int = 60,
) -> list[np.ndarray]:
    """`contact_sheet` cut into one image per region (for a gallery): the arguments are the same.

    Returns:
        One RGB uint8 strip per region, in `clip.regions` order.
    """
    # Rows cut from one sheet share its label column, so the crops line up from one strip to the next.
    sheet = contact_sheet(clip, window, num_frames, stride, cell, max_columns)
    strips = []
    for r in range(len(clip.regions)):
        top = _HEADER + r * (cell + _GAP)
        strips.append(np.concatenate([sheet[:_HEADER], sheet[top : top + cell + _GAP]], axis=0))
    return strips


class TrackPreview:
    """The first `seconds` of a video with its tracked landmarks and crop boxes drawn (`face_track_preview`), made
    while the video streams through `predict` (`predict(video, ..., on_frame=preview.add)`): the video is not decoded
    a second time, and memory is bounded by `seconds * fps` frames of `side` pixels.

    Args:
        extractor: The feature extractor reading the video (its frame rate, regions and crop geometry).
        seconds: How much of the video to draw; None for all of it.
        side: Downscale the drawn frames to this longer side (None: keep).

    Attributes:
        frames: The drawn RGB uint8 frames, at the extractor's `fps`.
        fps: Their frame rate.
    """

    def __init__(self, extractor, seconds: float | None = 3.0, side: int | None = 640) -> None:
        self.extractor = extractor
        self.fps = float(extractor.fps)
        self.limit = None if seconds is None else int(round(seconds * self.fps))
        self.side = side
        self.frames: list[np.ndarray] = []

    def add(self, frame: FrameCrops) -> None:
        """Draws one frame of the stream (the first `seconds` only)."""
        if self.limit is not None and len(self.frames) >= self.limit:
            return
        ex = self.extractor
        points = np.full((1, 68, 2), np.nan) if frame.points is None else frame.points[None]  # (1, 68, 2)
        drawn = face_track_preview([frame.frame], points, None, ex.regions, ex.geometry, ex.region_scales, ex.align)[0]
        scale = 1.0 if self.side is None else self.side / max(drawn.shape[:2])
        if scale < 1:
            drawn = cv2.resize(drawn, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        self.frames.append(drawn)
