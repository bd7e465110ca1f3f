"""Parity of the torch teachers with their original runtime (TensorFlow.js in node) on fixed inputs.

    python -m training.teachers.parity faceapi|human [--write-reference] [--weights PATH]

runs `tfjs_parity.mjs` (next to this file) in node on `fixed_inputs(...)`, runs the torch module on the same
inputs and prints the largest logit and probability differences and the top-1 agreement. With
`--write-reference` it also writes the tfjs outputs to `training/teachers/references/<name>.npz`, which
`tests/test_teachers.py` compares the committed weights against without node, npm or any download.

The runtime is `@tensorflow/tfjs` (pure JavaScript CPU backend, plus `@tensorflow/tfjs-backend-wasm`, which
face-api's node build imports) installed with npm into `<teachers cache>/npm/tfjs/`, never into the repository.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

TFJS_VERSION = "4.22.0"
SCRIPT = Path(__file__).resolve().parent / "tfjs_parity.mjs"
REFERENCES = Path(__file__).resolve().parent.parent / "references"

# Astronaut face boxes in `skimage.data.astronaut()` (x0, y0, side), centred on the face dlib finds there
# (centre about (225, 133), inter-ocular distance about 43 px): 112 px is face-api's size as it is (2.6 IODs);
# 128 px is block-averaged 2x2 to Human's 64 (3 IODs).
ASTRONAUT_BOXES = {112: (169, 77, 112), 64: (161, 69, 128)}


def _patterns(size: int) -> dict[str, np.ndarray]:
    """Smooth images from integer arithmetic only, so every platform makes the same bytes."""
    i, j = np.mgrid[0:size, 0:size].astype(np.int64)
    c = size // 2
    radial = ((i - c) ** 2 + (j - c) ** 2) * 255 // (2 * c * c)
    return {
        "ramps": np.stack([i * 255 // (size - 1), j * 255 // (size - 1), (i + j) * 255 // (2 * size - 2)], -1),
        "radial": np.stack([255 - radial, radial, (radial + 128) % 256], -1),
        "grey128": np.full((size, size, 3), 128),
        "checker": np.repeat(((i // (size // 8) + j // (size // 8)) % 2 * 200 + 28)[..., None], 3, -1),
    }


def astronaut_face(size: int) -> np.ndarray:
    """The astronaut's face (public-domain NASA photo shipped with scikit-image), (size, size, 3) uint8."""
    from skimage import data

    if size not in ASTRONAUT_BOXES:
        raise ValueError(f"no astronaut box for size {size}; known sizes {sorted(ASTRONAUT_BOXES)}")
    x0, y0, side = ASTRONAUT_BOXES[size]
    crop = data.astronaut()[y0 : y0 + side, x0 : x0 + side].astype(np.int64)
    k = side // size
    blocks = crop.reshape(size, k, size, k, 3).sum(axis=(1, 3))  # (S, k, S, k, 3) -> (S, S, 3)
    return ((blocks + k * k // 2) // (k * k)).astype(np.uint8)


def fixed_inputs(size: int) -> tuple[list[str], np.ndarray]:
    """The parity inputs at side `size`: names and (N, S, S, 3) uint8 RGB images.

    Seeded uniform noise (3 seeds), blocky noise (8x8 cells), four smooth patterns and the astronaut's face.
    """
    names, images = [], []
    for seed in range(3):
        names.append(f"noise{seed}")
        images.append(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))
    cells = np.random.default_rng(100).integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    names.append("blocky_noise")
    images.append(np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1))
    for name, image in _patterns(size).items():
        names.append(name)
        images.append(image.astype(np.uint8))
    names.append("astronaut_face")
    images.append(astronaut_face(size))
    return names, np.stack(images)


def digest(images: np.ndarray) -> str:
    """sha256 of the uint8 inputs, so that a reference is only compared on the inputs it was made from."""
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def to_tensor(images: np.ndarray):
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32 in [0, 1], the teachers' input convention."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0  # (N, 3, S, S)


def tfjs_modules(cache: Path) -> Path:
    """`node_modules` holding @tensorflow/tfjs and tfjs-backend-wasm at `TFJS_VERSION`, installed on first use."""
    root = Path(cache) / "npm" / f"tfjs-{TFJS_VERSION}"
    modules = root / "node_modules"
    if (modules / "@tensorflow" / "tfjs" / "package.json").is_file() and (
        modules / "@tensorflow" / "tfjs-backend-wasm" / "package.json"
    ).is_file():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the parity check needs node and npm (Node.js >= 18) to run TensorFlow.js")
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"name": "microx-tfjs-parity", "private": true}\n')
    packages = [f"@tensorflow/tfjs@{TFJS_VERSION}", f"@tensorflow/tfjs-backend-wasm@{TFJS_VERSION}"]
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(root), *packages], check=True)
    return modules


def run_tfjs(name: str, package: Path, images: np.ndarray, cache: Path) -> dict:
    """Runs `tfjs_parity.mjs` for teacher `name` on `images` (N, S, S, 3) uint8; returns its JSON output."""
    import os

    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the parity check needs node (Node.js >= 18)")
    env = {**os.environ, "NODE_PATH": str(tfjs_modules(cache))}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inputs.u8"
        path.write_bytes(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
        n, s = images.shape[:2]
        done = subprocess.run(
            [node, str(SCRIPT), name, str(package), str(path), str(n), str(s)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"tfjs_parity.mjs failed for {name}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_outputs(name: str, images: np.ndarray, weights: Path | None = None) -> dict[str, np.ndarray]:
    """Logits, probabilities (and face-api's pooled feature) of the torch teacher on `images`."""
    import torch
    from safetensors.torch import load_file

    from .. import get_teacher

    spec = get_teacher(name)
    module = spec.build()
    module.load_state_dict(load_file(str(weights or spec.extra["committed_weights"])))
    module.eval()
    x = to_tensor(images)
    with torch.no_grad():
        logits = module(x)
        out = {"logits": logits.numpy(), "probs": logits.softmax(-1).numpy()}
        if hasattr(module, "forward_features"):
            out["features"] = module.forward_features(x).mean(dim=(2, 3)).numpy()  # (N, 256, h, w) -> (N, 256)
    return out


def compare(reference: dict, ours: dict) -> dict:
    """Largest absolute differences and top-1 agreement between two output sets."""
    report = {}
    for key in ("logits", "probs", "features"):
        if key in reference and key in ours:
            report[f"max_abs_{key}"] = float(np.abs(np.asarray(reference[key]) - ours[key]).max())
    ref_top = np.asarray(reference["logits"]).argmax(-1)
    report["top1_agree"] = int((ref_top == ours["logits"].argmax(-1)).sum())
    report["n"] = int(len(ref_top))
    return report


def package_dir(name: str, cache: Path) -> Path:
    from .. import faceapi, human
    from ..tfjs import npm_package

    module = {"faceapi": faceapi, "human": human}[name]
    return npm_package(module.PACKAGE, module.VERSION, cache)


def reference_path(name: str) -> Path:
    return REFERENCES / f"{name}.npz"


def write_reference(name: str, names: list[str], images: np.ndarray, outputs: dict, package: str) -> Path:
    """Saves the original runtime's outputs (float32) with the inputs' names and digest; a few KB."""
    REFERENCES.mkdir(parents=True, exist_ok=True)
    path = reference_path(name)
    arrays = {key: np.asarray(outputs[key], np.float32) for key in ("logits", "probs", "features") if key in outputs}
    runtime = dict(outputs["runtime"], package=package)
    np.savez_compressed(
        path,
        names=np.array(names),
        digest=np.array(digest(images)),
        runtime=np.array(json.dumps(runtime, sort_keys=True)),
        **arrays,
    )
    return path
