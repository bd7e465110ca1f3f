"""The action-unit table: how each facial action unit (FACS) moves the 68 iBUG landmarks, and the seven labels'
prototype combinations (after Ekman & Friesen's EMFACS).

Displacements are in inter-ocular distances (IOD) in the face's own frame (x along the eye line towards the image
right, y down the face); `training.synthetic.warp.to_image` turns them into pixels. "Left" is the image left, as
everywhere in MicroX.
"""

from __future__ import annotations

import numpy as np

from microx_hf.configuration_microx import PAPER_LABELS
from microx_hf.regions import FLIP_PERMUTATION

LABELS: tuple[str, ...] = tuple(PAPER_LABELS)

# Action units: {landmark: (dx, dy)} for the image-left half (and the midline), in IOD units in the face frame
# (x towards the image right, y down the face). The image-right half is mirrored (dx negated) unless the AU is
# one-sided. Sizes were set by eye on contact sheets so that an AU at intensity 1 is a clear, not extreme, apex.
# fmt: off
AU_LEFT: dict[str, dict[int, tuple[float, float]]] = {
    # AU1 inner brow raiser.
    "AU1": {21: (0.015, -0.15), 20: (0.01, -0.10), 19: (0.0, -0.045), 18: (0.0, -0.015)},
    # AU2 outer brow raiser.
    "AU2": {17: (-0.01, -0.12), 18: (0.0, -0.13), 19: (0.0, -0.10), 20: (0.0, -0.05), 21: (0.0, -0.02)},
    # AU4 brow lowerer: brows down and together, upper lids a little lower.
    "AU4": {21: (0.07, 0.09), 20: (0.05, 0.08), 19: (0.025, 0.06), 18: (0.01, 0.035), 17: (0.0, 0.015),
            37: (0.0, 0.012), 38: (0.0, 0.015), 27: (0.0, 0.02)},
    # AU5 upper lid raiser: eyes wide.
    "AU5": {37: (0.0, -0.055), 38: (0.0, -0.055), 36: (-0.005, -0.01), 39: (0.005, -0.005)},
    # AU6 cheek raiser: lower lids up, cheeks (upper jaw contour) up.
    "AU6": {40: (0.0, -0.035), 41: (0.0, -0.035), 36: (0.0, -0.012), 1: (0.0, -0.03), 2: (0.0, -0.035),
            3: (0.0, -0.03)},
    # AU7 lid tightener.
    "AU7": {40: (0.0, -0.03), 41: (0.0, -0.03), 37: (0.0, 0.015), 38: (0.0, 0.015)},
    # AU9 nose wrinkler: nostrils and upper lip up, inner brows down.
    "AU9": {31: (0.0, -0.05), 32: (0.0, -0.04), 33: (0.0, -0.03), 30: (0.0, -0.015), 29: (0.0, -0.01),
            21: (0.03, 0.05), 20: (0.015, 0.03), 40: (0.0, -0.02), 41: (0.0, -0.02),
            49: (0.0, -0.04), 50: (0.0, -0.05), 51: (0.0, -0.05), 61: (0.0, -0.04), 62: (0.0, -0.04)},
    # AU10 upper lip raiser.
    "AU10": {49: (0.0, -0.06), 50: (0.0, -0.08), 51: (0.0, -0.07), 61: (0.0, -0.07), 62: (0.0, -0.065),
             48: (0.0, -0.025), 60: (0.0, -0.03), 31: (0.0, -0.02), 32: (0.0, -0.015)},
    # AU12 lip corner puller: corners up and out, cheeks up.
    "AU12": {48: (-0.11, -0.13), 60: (-0.10, -0.12), 49: (-0.04, -0.05), 59: (-0.045, -0.06),
             61: (-0.02, -0.035), 67: (-0.03, -0.05), 50: (-0.01, -0.015), 58: (-0.015, -0.03),
             57: (0.0, -0.015), 66: (0.0, -0.02), 3: (0.0, -0.025), 4: (-0.01, -0.03), 5: (0.0, -0.02)},
    # AU14 dimpler: the corner tightened back and a little up.
    "AU14": {48: (-0.05, -0.03), 60: (-0.045, -0.025), 49: (-0.015, -0.01), 59: (-0.015, -0.015)},
    # AU15 lip corner depressor.
    "AU15": {48: (-0.01, 0.13), 60: (-0.01, 0.10), 49: (0.0, 0.04), 59: (0.0, 0.045), 61: (0.0, 0.02),
             67: (0.0, 0.025), 5: (0.0, 0.015)},
    # AU17 chin raiser: chin and lower lip pushed up.
    "AU17": {57: (0.0, -0.04), 58: (0.0, -0.035), 66: (0.0, -0.03), 67: (0.0, -0.025), 8: (0.0, -0.04),
             7: (0.0, -0.035), 6: (0.0, -0.02)},
    # AU20 lip stretcher: corners pulled sideways, lips flattened.
    "AU20": {48: (-0.10, 0.015), 60: (-0.09, 0.015), 49: (-0.05, 0.01), 59: (-0.05, -0.005), 50: (-0.02, 0.01),
             58: (-0.02, -0.01), 61: (-0.03, 0.01), 67: (-0.03, -0.005), 51: (0.0, 0.01), 57: (0.0, -0.01),
             4: (-0.015, 0.0), 5: (-0.015, 0.0)},
    # AU23 lip tightener (+AU24 pressor): lips thinner and pressed, mouth narrower.
    "AU23": {48: (0.04, 0.0), 60: (0.035, 0.0), 49: (0.015, 0.02), 50: (0.0, 0.03), 51: (0.0, 0.03),
             59: (0.015, -0.02), 58: (0.0, -0.035), 57: (0.0, -0.04), 61: (0.01, 0.01), 62: (0.0, 0.01),
             67: (0.01, -0.01), 66: (0.0, -0.01)},
    # AU26 jaw drop (with AU25 lips part): lower lip and chin down, corners a little inwards.
    "AU26": {8: (0.0, 0.30), 7: (0.0, 0.28), 6: (0.0, 0.22), 5: (0.0, 0.14), 4: (0.0, 0.07), 3: (0.0, 0.02),
             57: (0.0, 0.26), 58: (0.01, 0.25), 59: (0.015, 0.18), 66: (0.0, 0.25), 67: (0.01, 0.22),
             48: (0.012, 0.08), 60: (0.015, 0.09), 61: (0.0, -0.02), 62: (0.0, -0.025), 50: (0.0, -0.01),
             51: (0.0, -0.012), 49: (0.0, -0.005)},
}
# fmt: on
AU_NAMES: tuple[str, ...] = tuple(AU_LEFT)
# Where the midline sits: these points have no mirror partner to copy a displacement to.
MIDLINE = {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


def au_field(name: str, side: str = "both") -> np.ndarray:
    """(68, 2) displacement of one AU at intensity 1; `side` is "both", "left" or "right" (image sides)."""
    disp = np.zeros((68, 2), np.float64)
    for i, (dx, dy) in AU_LEFT[name].items():
        if side in ("both", "left") or i in MIDLINE:
            disp[i] += (dx, dy)
        if side in ("both", "right") and i not in MIDLINE:
            disp[FLIP_PERMUTATION[i]] += (-dx, dy)
    return disp


AU_FIELDS = {name: au_field(name) for name in AU_NAMES}
AU_ONE_SIDED = {(name, side): au_field(name, side) for name in ("AU12", "AU14") for side in ("left", "right")}

# Prototype expressions: AU weights at the apex.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "anger": {"AU4": 1.5, "AU5": 0.35, "AU7": 0.8, "AU23": 1.3},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0},
    "fear": {"AU1": 1.0, "AU2": 0.6, "AU4": 0.6, "AU5": 1.0, "AU20": 1.0, "AU26": 0.35},
    "happy": {"AU6": 1.0, "AU12": 1.0},
    "sad": {"AU1": 1.0, "AU4": 0.45, "AU15": 1.0, "AU17": 0.6},
    # "contempt" is built per clip (a random side; disgust variant), see `expression_field`.
}
# AUs that an identity or a clip may hold slightly at rest (their sign may be negative: a resting frown).
REST_AUS = ("AU1", "AU2", "AU4", "AU5", "AU7", "AU10", "AU12", "AU15")


def au_combination(weights: dict[str, float]) -> np.ndarray:
    """(68, 2) face-frame displacement of AUs at the given (signed) intensities."""
    return sum((w * AU_FIELDS[name] for name, w in weights.items()), np.zeros((68, 2)))


def expression_field(label: str, side: str, disgust: float, gains: dict[str, float]) -> np.ndarray:
    """(68, 2) face-frame displacement of a label's apex (intensity 1), with per-AU gains."""
    if label == "contempt":
        # A one-sided lip corner raise; disgust (merged into this class) mixes in nose wrinkle and upper lip raise.
        one = 1.0 - 0.6 * disgust
        field_ = (
            one * 0.8 * gains["AU12"] * AU_ONE_SIDED[("AU12", side)]
            + one * gains["AU14"] * AU_ONE_SIDED[("AU14", side)]
        )
        if disgust > 0:
            field_ = field_ + disgust * (
                gains["AU9"] * AU_FIELDS["AU9"]
                + 0.8 * gains["AU10"] * AU_FIELDS["AU10"]
                + 0.35 * gains["AU4"] * AU_FIELDS["AU4"]
                + 0.3 * gains["AU15"] * AU_FIELDS["AU15"]
            )
        return field_
    if label not in EXPRESSIONS:
        raise ValueError(f"unknown label {label!r}; choose one of {LABELS}")
    return au_combination({au: w * gains[au] for au, w in EXPRESSIONS[label].items()})
