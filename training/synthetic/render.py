"""Rendering one expression-onset clip: landmark motion over time, the warp, the mouth, and the nuisances.

The intensity follows a smooth onset curve over the clip: it is exactly zero before the onset starts, so a single
early frame carries no label information, while the motion does. Per-identity and per-clip resting AU offsets make
a single late frame ambiguous too (a resting smile is not a smile's onset). An opening mouth gets a dark cavity and
upper teeth painted in. Nuisances, drawn identically for every label: head motion (shift, scale, roll), blinks,
lighting (gain, tint, gradient, gamma, flicker), blur, sensor noise, JPEG compression.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .action_units import AU_NAMES, LABELS, REST_AUS, au_combination, expression_field
from .warp import face_frame, mesh, to_image, warp_piecewise_affine

FPS = 30.0
INNER_LIPS = list(range(60, 68))
UPPER_INNER_LIP = [60, 61, 62, 63, 64]


@dataclass
class RenderedClip:
    """One generated clip.

    Attributes:
        frames: (N, H, W, 3) RGB uint8.
        landmarks: (N, 68, 2) float32 true landmark positions in each frame (before blur/noise/compression).
        intensity: (N,) expression intensity (0 = neutral, the apex value at the end of the onset).
        params: The random choices (onset frames, peak, contempt side, augmentation strengths), JSON-safe.
    """

    frames: np.ndarray
    landmarks: np.ndarray
    intensity: np.ndarray
    params: dict


def _onset(n: int, start: float, stop: float, peak: float) -> np.ndarray:
    t = np.clip((np.arange(n) - start) / max(stop - start, 1e-6), 0.0, 1.0)
    return peak * t * t * (3 - 2 * t)  # smoothstep: zero velocity at both ends


def _blink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame (0 open .. 1 shut): at most one blink, as likely in every label."""
    closure = np.zeros(n)
    if rng.random() < 0.35:
        length = int(rng.integers(5, 9))
        start = int(rng.integers(-length // 2, n))
        shape = np.concatenate([np.linspace(0.3, 1.0, length // 3 + 1), np.linspace(1.0, 0.0, length - length // 3)])
        for k, value in enumerate(shape[1:]):
            if 0 <= start + k < n:
                closure[start + k] = value
    return closure


def _close_eyes(points: np.ndarray, amount: float) -> np.ndarray:
    if amount <= 0:
        return points
    points = points.copy()
    for up, down in ((37, 41), (38, 40), (43, 47), (44, 46)):
        meet = points[down] + 0.15 * (points[up] - points[down])
        points[up] += 0.95 * amount * (meet - points[up])
        points[down] += 0.95 * amount * (meet - points[down])
    return points


def _press_lips(points: np.ndarray, amount: float) -> np.ndarray:
    """AU24 lip pressor: the inner lip lines meet (a parted resting mouth closes) as `amount` goes 0 -> 1."""
    if amount <= 0:
        return points
    points = points.copy()
    amount = min(amount, 1.0)
    for up, down in ((61, 67), (62, 66), (63, 65)):
        meet = (points[up] + points[down]) / 2
        points[up] += 0.9 * amount * (meet - points[up])
        points[down] += 0.9 * amount * (meet - points[down])
    return points


def _paint_mouth(frame: np.ndarray, pts: np.ndarray, neutral_gap: float, iod: float, shade: float) -> None:
    """Paint a dark cavity and upper teeth where the inner lips have parted beyond their resting gap (in place)."""
    gap = float(np.mean([np.linalg.norm(pts[d] - pts[u]) for u, d in ((61, 67), (62, 66), (63, 65))]))
    opening = gap - neutral_gap
    alpha = float(np.clip(opening / (0.05 * iod), 0.0, 1.0))
    if alpha <= 0.02:
        return
    shift = 4
    h, w = frame.shape[:2]
    x0, y0 = np.floor(pts[INNER_LIPS].min(0)).astype(int) - 3
    x1, y1 = np.ceil(pts[INNER_LIPS].max(0)).astype(int) + 4
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    local = pts - (x0, y0)
    cavity = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(cavity, [np.round(local[INNER_LIPS] * (1 << shift)).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
    teeth = np.zeros_like(cavity)
    down = (local[66] - local[62]) / max(np.linalg.norm(local[66] - local[62]), 1e-6)
    depth = min(0.35 * gap, 0.09 * iod)
    upper = local[UPPER_INNER_LIP]
    band = np.concatenate([upper, upper[::-1] + depth * down])
    cv2.fillPoly(teeth, [np.round(band * (1 << shift)).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
    cavity = cv2.GaussianBlur(cavity, (0, 0), 0.6)
    teeth = cv2.GaussianBlur(teeth, (0, 0), 0.6) * cavity
    # A darker gradient towards the lower lip reads as depth.
    yy = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[:, None, None]
    dark = np.array([55, 18, 22], np.float32) * (1.0 - 0.5 * yy) * shade
    white = np.array([222, 212, 196], np.float32) * shade
    region = frame[y0:y1, x0:x1].astype(np.float32)
    a_cav, a_teeth = (alpha * cavity)[..., None], (alpha * teeth)[..., None]
    region = region * (1 - a_cav) + dark * (a_cav - a_teeth) + white * a_teeth
    frame[y0:y1, x0:x1] = region.clip(0, 255).astype(np.uint8)


def _smooth_path(n: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random 1-D trajectory over n frames: a drift plus a slow sway, starting anywhere in its range."""
    t = np.arange(n) / FPS
    drift = rng.uniform(-1, 1) * amplitude * 0.6 * t / max(t[-1], 1e-6) if n > 1 else np.zeros(n)
    sway = amplitude * 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 1.2) * t + rng.uniform(0, 2 * np.pi))
    return drift + sway + rng.normal(0, amplitude * 0.02, n)


def render_clip(
    face_image: np.ndarray,
    landmarks: np.ndarray,
    label: str,
    rng: np.random.Generator,
    num_frames: int = 30,
    size: tuple[int, int] = (320, 240),
    augment: bool = True,
) -> RenderedClip:
    """Render an expression-onset clip with its true landmarks (see `generate_clip`)."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; choose one of {LABELS}")
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: need at least 1")
    width, height = size
    n = num_frames
    landmarks = np.asarray(landmarks, np.float64).reshape(68, 2)
    center, ex, ey, iod = face_frame(landmarks)
    vertices, triangles = mesh(landmarks, face_image.shape[:2])
    neutral = vertices[:68]

    # Every random draw below happens in the same order for every label, so two clips with the same generator
    # differ only in the expression: before the onset their frames are identical.
    start = rng.uniform(0.0, 0.3) * (n - 1)
    stop = min(start + max(rng.uniform(0.35, 0.6) * (n - 1), 2.0), n - 1.0)
    peak = rng.uniform(0.65, 1.0)
    gains = dict(zip(AU_NAMES, rng.uniform(0.75, 1.25, len(AU_NAMES)), strict=True))
    side = "left" if rng.random() < 0.5 else "right"
    disgust = float(rng.random() < 0.5) * rng.uniform(0.6, 1.0)
    clip_rest = dict(zip(REST_AUS, rng.uniform(-0.12, 0.12, len(REST_AUS)), strict=True))
    # A resting look of some other expression (half the clips): a weak smile or frown that is there from the first
    # frame is identity, not emotion, so a single late frame stays ambiguous while the onset's motion does not.
    rest_label = LABELS[1 + int(rng.integers(len(LABELS) - 1))]
    rest_amount = rng.uniform(0.0, 0.4) * float(rng.random() < 0.5)
    rest_side = "left" if rng.random() < 0.5 else "right"
    # Framing and head motion.
    iod_frac = rng.uniform(0.18, 0.26)
    offset = rng.uniform(-0.07, 0.07, 2) * (width, height)
    roll0 = rng.uniform(-8, 8)
    paths = [_smooth_path(n, rng, a) for a in (0.035 * width, 0.035 * height, 0.04, 4.0)]  # dx, dy, log-scale, deg
    blink = _blink(n, rng)
    gain = rng.uniform(0.7, 1.25)
    tint = rng.uniform(0.9, 1.1, 3)
    gamma = rng.uniform(0.8, 1.25)
    grad_angle = rng.uniform(0, 2 * np.pi)
    grad_amp = rng.uniform(0.0, 0.35)
    grad_drift = rng.uniform(-0.1, 0.1)
    flicker = rng.normal(0, 0.012, n)
    blur = rng.uniform(0.3, 1.2) if rng.random() < 0.6 else 0.0
    noise = rng.uniform(0.0, 6.0)
    jpeg = int(rng.integers(30, 96)) if rng.random() < 0.7 else 0
    noise_seed = int(rng.integers(2**31))

    if not augment:
        clip_rest = dict.fromkeys(REST_AUS, 0.0)
        rest_amount = 0.0
        iod_frac, offset, roll0 = 0.22, np.zeros(2), 0.0
        paths = [np.zeros(n)] * 4
        blink = np.zeros(n)

    intensity = _onset(n, start, stop, peak)
    apex = to_image(expression_field(label, side, disgust, gains), ex, ey, iod)
    ones = dict.fromkeys(AU_NAMES, 1.0)
    rest_field = au_combination(clip_rest) + rest_amount * expression_field(rest_label, rest_side, 0.0, ones)
    rest = to_image(rest_field, ex, ey, iod)
    # Pressed lips (anger's AU24) and a raised chin (sad's AU17) close a mouth that is parted at rest.
    press = {"anger": gains["AU23"], "sad": 0.6 * gains["AU17"]}.get(label, 0.0)
    face_center = center + 0.45 * iod * ey
    base_scale = iod_frac * height / iod
    neutral_gap = float(np.mean([np.linalg.norm(neutral[d] - neutral[u]) for u, d in ((61, 67), (62, 66), (63, 65))]))
    lum = (
        float(
            cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY)[
                int(max(center[1], 0)) : int(center[1] + iod),
                int(max(center[0] - iod / 2, 0)) : int(center[0] + iod / 2),
            ].mean()
        )
        if face_image.size
        else 128.0
    )
    shade = float(np.clip(lum / 140.0, 0.55, 1.15))

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = ((xx - width / 2) * np.cos(grad_angle) + (yy - height / 2) * np.sin(grad_angle)) / max(width, height)
    ramp = ramp.astype(np.float32)  # (H, W)
    noise_rng = np.random.default_rng(noise_seed)
    noise_bank = None
    if augment and noise > 0.5:
        bank = noise * noise_rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32)
        noise_bank = bank.round().astype(np.int16)
    gamma_table = (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)
    frames = np.empty((n, height, width, 3), np.uint8)
    out_points = np.empty((n, 68, 2), np.float32)
    for i in range(n):
        points = neutral + rest + intensity[i] * apex
        points = _press_lips(points, intensity[i] * press)
        points = _close_eyes(points, blink[i])
        dst = vertices.copy()
        dst[:68] = points
        scale = base_scale * np.exp(paths[2][i])
        matrix = cv2.getRotationMatrix2D((float(face_center[0]), float(face_center[1])), roll0 + paths[3][i], scale)
        matrix[:, 2] += np.array([width / 2, height / 2]) + offset + (paths[0][i], paths[1][i]) - face_center
        frame = warp_piecewise_affine(face_image, vertices, dst, triangles, matrix, size)
        out = points @ matrix[:, :2].T + matrix[:, 2]
        out_points[i] = out
        _paint_mouth(frame, out, neutral_gap * scale, iod * scale, shade)
        if augment:
            ramp_i = 1 + (grad_amp + grad_drift * i / max(n - 1, 1)) * ramp  # (H, W)
            light = (ramp_i[..., None] * (gain * (1 + flicker[i]) * tint)).astype(np.float32)  # (H, W, 3)
            frame = _degrade(frame, light, gamma_table, blur, noise_bank, jpeg, noise_rng)
        frames[i] = frame
    params = {
        "onset_start": float(start),
        "onset_stop": float(stop),
        "peak": float(peak),
        "side": side,
        "disgust": float(disgust) if label == "contempt" else 0.0,
        "rest_label": rest_label if rest_amount > 0 else "neutral",
        "rest_amount": float(rest_amount),
        "blinks": bool(blink.any()),
        "blur": float(blur),
        "noise": float(noise),
        "jpeg": jpeg,
        "iod_px": float(iod * base_scale),
    }
    return RenderedClip(frames, out_points, intensity.astype(np.float32), params)


def _degrade(
    frame: np.ndarray,
    light: np.ndarray,
    gamma_table: np.ndarray,
    blur: float,
    noise_bank: np.ndarray | None,
    jpeg: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Lighting (per-pixel, per-channel gain), gamma (a lookup table), blur, sensor noise and JPEG of one frame."""
    x = cv2.multiply(frame.astype(np.float32), light)
    out = cv2.LUT(x.clip(0, 255).astype(np.uint8), gamma_table)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if noise_bank is not None:
        # A random window of the clip's noise field: fresh noise per frame for the cost of a slice.
        h, w = out.shape[:2]
        dy, dx = rng.integers(0, noise_bank.shape[0] - h + 1), rng.integers(0, noise_bank.shape[1] - w + 1)
        out = (out.astype(np.int16) + noise_bank[dy : dy + h, dx : dx + w]).clip(0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def generate_clip(
    face_image: np.ndarray,
    landmarks: np.ndarray,
    label: str,
    rng: np.random.Generator,
    num_frames: int = 30,
    size: tuple[int, int] = (320, 240),
    augment: bool = True,
) -> np.ndarray:
    """Frames of one synthetic clip: the face moves from neutral into `label`'s expression.

    The intensity is zero before a random onset start (up to 30% into the clip), rises smoothly over 35-60% of the
    clip to a random peak (0.65-1.0 of the prototype, each AU scaled by 0.75-1.25) and holds. All random choices
    are drawn in the same order for every label, so the same generator state gives the same frames up to the onset.

    Args:
        face_image: (H, W, 3) RGB uint8 neutral face photo.
        landmarks: (68, 2) iBUG points of the photo.
        label: One of `LABELS`.
        rng: Source of every random choice (the clip is a pure function of its state).
        num_frames: Frames N (the clip is 30 fps).
        size: Output (width, height).
        augment: Head motion, blinks, resting-expression jitter, lighting, blur, noise and JPEG; False gives a
            still, centred face with the expression alone (for tests and figures).

    Returns:
        (N, H, W, 3) RGB uint8 frames.
    """
    return render_clip(face_image, landmarks, label, rng, num_frames, size, augment).frames
