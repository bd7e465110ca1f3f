"""The ``face_alignment`` landmark backend: the FAN 2D network (Bulat & Tzimiropoulos, ICCV 2017) from the
`face-alignment` package, run on boxes from dlib's HOG detector.

Weights: ``2DFAN4-11f355bf06.pth.tar`` in ``$TORCH_HOME/hub/checkpoints/`` (the name, folder and URL that
face-alignment 1.5.0 itself uses, so a file it downloaded serves here and the other way round). When the file is
missing, building this backend by name downloads it once from `FAN_WEIGHTS_URL` (override: ``$MICROX_FAN_WEIGHTS_URL``),
as face-alignment would, unless the machine is offline (``HF_HUB_OFFLINE=1`` or ``MICROX_OFFLINE=1``) or the caller
passed ``download=False``; then the error says which file to place where. The download goes to a temporary file in the
same folder that is renamed only once it is complete and loads as FAN weights, so an interrupted or corrupt download
leaves nothing behind and the next attempt starts afresh. ``get_backend("auto")`` picks this backend only when the
weights are already there: "auto" never downloads.

The network is built from the package's own model code (`face_alignment.models.FAN`) because
`face_alignment.FaceAlignment` has no argument for a local weights file. The package's default S3FD detector costs
about 1.9 s per CPU frame and needs a second weights file, so faces are found with dlib's HOG detector instead (no
weights file needed). As in `FaceAlignment` with `flip_input=False` and `compile=False`: one forward pass per face,
no `torch.compile`.

Preprocessing follows `face_alignment.api`: the face box gives a centre (moved up by 0.12 of the box height) and
a scale ((w + h) / 195); the 256x256 input shows a square of side 200 * scale around that centre; the 68 heatmaps
(64x64) are decoded by their argmax with a quarter-pixel step towards the larger neighbour.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import BackendUnavailableError
from . import Face, LandmarkBackend, register_backend
from .dlib_backend import HogDetector

logger = logging.getLogger(__name__)

FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"
# face_alignment.api.models_urls["2DFAN-4"] in face-alignment 1.5.0.
FAN_WEIGHTS_URL = "https://www.adrianbulat.com/downloads/python-fan/" + FAN_WEIGHTS_FILE
URL_ENV = "MICROX_FAN_WEIGHTS_URL"  # a mirror (or a test's local server) instead of FAN_WEIGHTS_URL
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "MICROX_OFFLINE")
NETWORK_SIZE = 4  # 2DFAN-4: four stacked hourglasses
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
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


def weights_url() -> str:
    """Where the weights are downloaded from: ``$MICROX_FAN_WEIGHTS_URL``, else face-alignment's own URL."""
    return os.environ.get(URL_ENV) or FAN_WEIGHTS_URL


def offline_switch() -> str | None:
    """The environment variable that forbids downloads here (``HF_HUB_OFFLINE``/``MICROX_OFFLINE``), or None."""
    for name in OFFLINE_ENVS:
        # The values huggingface_hub treats as true.
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return name
    return None


def _missing_message(path: Path, why: str) -> str:
    return (
        f"the face_alignment backend needs the FAN weights file {FAN_WEIGHTS_FILE} in {path.parent} (not found: "
        f"{path}), and {why}. Fetch it on a machine with internet ({weights_url()}, or run "
        "`face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device='cpu')` once there) and copy it to "
        "that folder, or set TORCH_HOME to a folder whose hub/checkpoints/ holds it. Or use landmark_backend='dlib'."
    )


def _download_refused(download: bool = True) -> str | None:
    """Why a download may not happen now (for the error message), or None when it may."""
    if not download:
        return "downloads were turned off (download=False)"
    switch = offline_switch()
    if switch is not None:
        return f"{switch}=1 says this machine is offline, so MicroX does not download it"
    return None


def _load_state(path: Path) -> dict:
    """The FAN state dict in `path`, checked against the network's layout (raises on anything else)."""
    import torch
    from face_alignment.models import FAN

    state = torch.load(path, map_location="cpu", weights_only=True)
    FAN(NETWORK_SIZE).load_state_dict(state)  # strict: every key and shape must match
    return state


@contextlib.contextmanager
def _folder_lock(folder: Path):
    # Several worker processes may build the backend at once: one downloads, the others wait and then find the file.
    try:
        import fcntl
    except ImportError:  # Windows: no lock; each process downloads to its own temporary file, the last rename wins
        yield
        return
    with open(folder / f".{FAN_WEIGHTS_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def download_weights(url: str | None = None, path: Path | None = None, timeout: float = _TIMEOUT_S) -> Path:
    """Download the FAN weights to the torch hub cache, as face-alignment does on first use.

    The file is written to a temporary name in the same folder and renamed to `path` only once it is complete (as
    long as the server's Content-Length) and loads as FAN weights; on any failure the temporary file is removed,
    so the cache never holds half a file and calling again retries from the start.

    Args:
        url: Where from; default `weights_url()`.
        path: Where to; default `weights_path()`.
        timeout: Seconds without data before giving up.

    Returns:
        `path`.

    Raises:
        BackendUnavailableError: The download failed or did not give FAN weights; nothing was kept.
    """
    return _download(url, path, timeout)[0]


def _download(url: str | None, path: Path | None, timeout: float = _TIMEOUT_S) -> tuple[Path, dict | None]:
    """`download_weights`, also returning the state dict it checked (None when another process fetched the file)."""
    url = url or weights_url()
    path = Path(path) if path is not None else weights_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        if path.is_file():  # another process finished it while this one waited
            return path, None
        # WARNING, not INFO: about 95 MB leave the machine's network unasked, so say so even without -v.
        logger.warning(
            "Downloading the FAN landmark weights %s from %s to %s (once; HF_HUB_OFFLINE=1 or "
            "MICROX_OFFLINE=1 turns downloads off)",
            FAN_WEIGHTS_FILE,
            url,
            path.parent,
        )
        import urllib.request  # here, not at the top: http.client and email cost every start-up 0.05-0.2 s

        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{FAN_WEIGHTS_FILE}.", suffix=".partial")
        tmp = Path(tmp_name)
        received, expected, started = 0, None, time.perf_counter()
        try:
            with os.fdopen(fd, "wb") as f:
                request = urllib.request.Request(url, headers={"User-Agent": "microx-hf (torch.hub)"})
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    expected = int(length) if length and length.isdigit() else None
                    while chunk := response.read(_CHUNK):
                        f.write(chunk)
                        received += len(chunk)
            # http.client's read(n) returns b"" when the server closes early instead of raising: compare sizes.
            if expected is not None and received != expected:
                raise ConnectionError(f"the connection closed after {received} of {expected} bytes")
        except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts and resets are OSErrors
            tmp.unlink(missing_ok=True)
            raise BackendUnavailableError(
                f"downloading the FAN weights from {url} failed ({type(err).__name__}: {err}); nothing was kept in "
                f"{path.parent}. Try again (it starts afresh), or place {FAN_WEIGHTS_FILE} there by hand, or use "
                "landmark_backend='dlib'."
            ) from err
        except BaseException:  # Ctrl-C mid-download: still no half file in the cache
            tmp.unlink(missing_ok=True)
            raise
        try:
            state = _load_state(tmp)
        except Exception as err:
            tmp.unlink(missing_ok=True)
            raise BackendUnavailableError(
                f"the file downloaded from {url} ({received} bytes) is not the FAN weights {FAN_WEIGHTS_FILE} "
                f"({type(err).__name__}: {str(err)[:200]}); it was deleted. Try again, or fetch the file by hand from "
                f"{FAN_WEIGHTS_URL} into {path.parent}."
            ) from err
        os.replace(tmp, path)
    logger.warning(
        "Saved the FAN weights to %s (%.0f MB in %.1f s)", path, received / 1e6, time.perf_counter() - started
    )
    return path, state


@register_backend("face_alignment")
class FanBackend(LandmarkBackend):
    """FAN 2D landmarks on HOG boxes.

    Args:
        device: Torch device for the network.
        upsample: HOG upsampling (see `DlibBackend`).
        threshold: HOG score threshold.
        download: Whether missing weights may be downloaded (once, into the torch hub cache); even when True,
            nothing is downloaded while ``HF_HUB_OFFLINE`` or ``MICROX_OFFLINE`` is set.
    """

    wants_grey = False

    def __init__(self, device: str = "cpu", upsample: int = 0, threshold: float = -0.2, download: bool = True) -> None:
        self._check_packages()
        import torch
        from face_alignment.models import FAN

        path, state = weights_path(), None
        if not path.is_file():
            refused = _download_refused(download)
            if refused is not None:
                raise BackendUnavailableError(_missing_message(path, refused))
            path, state = _download(None, path)
        self._torch = torch
        self.device = torch.device(device)
        self._hog = HogDetector(upsample, threshold)  # thread-safe; so is the network, in eval mode
        net = FAN(NETWORK_SIZE)
        try:
            net.load_state_dict(state if state is not None else _load_state(path))
        except Exception as err:  # a truncated or wrong file that someone placed there
            raise BackendUnavailableError(
                f"cannot load FAN weights from {path} ({type(err).__name__}: {str(err)[:200]}); delete it (it is then "
                f"downloaded again when online) or replace it with the original {FAN_WEIGHTS_FILE} ({FAN_WEIGHTS_URL})"
            ) from err
        self.weights_file = path
        self._net = net.to(self.device).eval()
        logger.info("face_alignment backend: FAN weights from %s on %s", path, self.device)

    @staticmethod
    def _check_packages() -> None:
        if importlib.util.find_spec("face_alignment") is None:
            raise BackendUnavailableError("the face_alignment backend needs `pip install face-alignment`")
        if importlib.util.find_spec("dlib") is None:
            raise BackendUnavailableError(
                'the face_alignment backend finds faces with dlib\'s HOG detector: pip install "microx-hf[dlib]"'
            )

    @classmethod
    def check_available(cls) -> None:
        # Ready now, nothing to fetch: what "auto" and available_backends() ask.
        cls._check_packages()
        path = weights_path()
        if not path.is_file():
            why = _download_refused() or "it is downloaded only when this backend is asked for by name"
            raise BackendUnavailableError(_missing_message(path, why))

    @classmethod
    def check_usable(cls) -> None:
        cls._check_packages()
        path = weights_path()
        refused = _download_refused()
        if not path.is_file() and refused is not None:
            raise BackendUnavailableError(_missing_message(path, refused))

    @classmethod
    def cache_token(cls) -> object:
        return (os.fspath(weights_path()),)

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return self._hog(image)

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
