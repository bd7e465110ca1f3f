"""The ``face_alignment`` landmark backend: the FAN 2D network (Bulat & Tzimiropoulos, ICCV 2017) from the
`face-alignment` package, run on boxes from dlib's HOG detector.

It never downloads anything. `face_alignment.FaceAlignment` fetches its weights from the internet on first use
and has no argument for a local landmark-weights file, so this backend builds the network from the package's own
model code (`face_alignment.models.FAN`) and loads the weights file itself, only from
``$TORCH_HOME/hub/checkpoints/2DFAN4-11f355bf06.pth.tar`` (the name and folder the package would have
downloaded to). The package's default S3FD detector costs about 1.9 s per CPU frame and needs a second weights
file, so faces are found with dlib's HOG detector instead (no weights file needed). As in `FaceAlignment` with
`flip_input=False` and `compile=False`: one forward pass per face, no `torch.compile`.

Preprocessing follows `face_alignment.api`: the face box gives a centre (moved up by 0.12 of the box height) and
a scale ((w + h) / 195); the 256x256 input shows a square of side 200 * scale around that centre; the 68 heatmaps
(64x64) are decoded by their argmax with a quarter-pixel step towards the larger neighbour.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import BackendUnavailableError
from . import Face, LandmarkBackend, register_backend
from .dlib_backend import DetectorPool

logger = logging.getLogger(__name__)

FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"
FAN_WEIGHTS_URL = "https://www.adrianbulat.com/downloads/python-fan/" + FAN_WEIGHTS_FILE
NETWORK_SIZE = 4  # 2DFAN-4: four stacked hourglasses
_INPUT = 256
_HEATMAP = 64
_REFERENCE_SCALE = 195.0
_SCALE_FACTOR = 200.0
_CENTER_Y_OFFSET = 0.12


def checkpoints_dir() -> Path:
    """The torch hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/...``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path() -> Path:
    """Where the FAN weights must be (whether they are there or not)."""
    return checkpoints_dir() / FAN_WEIGHTS_FILE


def _missing_message(path: Path) -> str:
    return (
        f"the face_alignment backend needs the FAN weights file {FAN_WEIGHTS_FILE} in {path.parent} "
        f"(not found: {path}). MicroX never downloads weights: fetch it on a machine with internet "
        f"({FAN_WEIGHTS_URL}, or run `face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, "
        f"device='cpu')` once there) and copy it to that folder, or set TORCH_HOME to a folder whose "
        f"hub/checkpoints/ holds it. Or use landmark_backend='dlib'."
    )


@register_backend("face_alignment")
class FanBackend(LandmarkBackend):
    """FAN 2D landmarks on HOG boxes.

    Args:
        device: Torch device for the network.
        upsample: HOG upsampling (see `DlibBackend`).
        threshold: HOG score threshold.
    """

    wants_grey = False

    def __init__(self, device: str = "cpu", upsample: int = 0, threshold: float = -0.2) -> None:
        self.check_available()
        import dlib
        import torch
        from face_alignment.models import FAN

        path = weights_path()
        self._torch = torch
        self.device = torch.device(device)
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        # HOG detectors are not safe to share between threads (see dlib_backend); the network is, in eval mode.
        self._detectors = DetectorPool(dlib.get_frontal_face_detector)
        net = FAN(NETWORK_SIZE)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as err:  # a truncated or wrong file
            raise BackendUnavailableError(
                f"cannot load FAN weights from {path} ({err}); replace it with the original {FAN_WEIGHTS_FILE} "
                f"({FAN_WEIGHTS_URL})"
            ) from err
        self.weights_file = path
        self._net = net.to(self.device).eval()
        logger.info("face_alignment backend: FAN weights from %s on %s", path, self.device)

    @classmethod
    def check_available(cls) -> None:
        if importlib.util.find_spec("face_alignment") is None:
            raise BackendUnavailableError("the face_alignment backend needs `pip install face-alignment`")
        if importlib.util.find_spec("dlib") is None:
            raise BackendUnavailableError(
                'the face_alignment backend finds faces with dlib\'s HOG detector: pip install "microx-hf[dlib]"'
            )
        path = weights_path()
        if not path.is_file():
            raise BackendUnavailableError(_missing_message(path))

    @classmethod
    def cache_token(cls) -> object:
        return (os.fspath(weights_path()),)

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        with self._detectors.borrow() as detector:
            rects, scores, _ = detector.run(np.ascontiguousarray(grey), self.upsample, self.threshold)
        boxes = [
            (np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(boxes, key=lambda b: -b[1])

    def landmarks(self, image_rgb: np.ndarray, box: np.ndarray) -> Face:
        box = np.asarray(box, dtype=np.float64)
        if image_rgb.ndim == 2:
            image_rgb = cv2.cvtColor(image_rgb, cv2.COLOR_GRAY2RGB)
        x0, y0, x1, y1 = box
        center = np.array([(x0 + x1) / 2, (y0 + y1) / 2 - (y1 - y0) * _CENTER_Y_OFFSET])
        side = _SCALE_FACTOR * (x1 - x0 + y1 - y0) / _REFERENCE_SCALE  # frame pixels shown in the input
        k = _INPUT / side
        matrix = np.array([[k, 0.0, _INPUT / 2 - k * center[0]], [0.0, k, _INPUT / 2 - k * center[1]]])
        crop = cv2.warpAffine(image_rgb, matrix, (_INPUT, _INPUT), flags=cv2.INTER_LINEAR)
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
            out = self._net(x)
            heatmaps = (out[-1] if isinstance(out, (list, tuple)) else out)[0].float().cpu().numpy()
        points, peaks = decode_heatmaps(heatmaps)
        points = center + (points / _HEATMAP - 0.5) * side  # heatmap -> frame pixels
        return Face(box, float(peaks.mean()), points.astype(np.float32))


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peaks of (68, H, W) heatmaps, as `face_alignment.utils.get_preds_fromhm` computes them.

    Returns:
        (68, 2) peak positions in heatmap pixels (continuous coordinates, pixel centres at +0.5) and (68,) the
        peak values.
    """
    n, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, h * w)
    idx = flat.argmax(1)
    peaks = flat[np.arange(n), idx]
    ys, xs = np.divmod(idx, w)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    inner = (xs > 0) & (xs < w - 1) & (ys > 0) & (ys < h - 1)
    j = np.nonzero(inner)[0]
    dx = heatmaps[j, ys[j], xs[j] + 1] - heatmaps[j, ys[j], xs[j] - 1]
    dy = heatmaps[j, ys[j] + 1, xs[j]] - heatmaps[j, ys[j] - 1, xs[j]]
    pts[j, 0] += np.sign(dx) * 0.25
    pts[j, 1] += np.sign(dy) * 0.25
    return pts + 0.5, peaks
