"""face-api's face expression network (npm `@vladmandic/face-api` 1.7.15, MIT) as `FaceApiExpressionNet`.

The package ships `model/face_expression_model-weights_manifest.json` and `model/face_expression_model.bin`: a
bare tfjs weights manifest whose filters are uint8-quantised (scale and min per tensor) and whose biases are
float32. The architecture is face-api's own code (`src/faceFeatureExtractor/FaceFeatureExtractor.ts`,
`denseBlock.ts`, `src/faceExpressionNet/`), rewritten in torch in `microx_hf/frame_encoder_faceapi.py` so that it can
travel inside a MicroX checkpoint.

    python -m training.teachers.faceapi [--out PATH]     # fetch the package (npm pack) and convert
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import numpy as np

from microx_hf.frame_encoder_faceapi import FACEAPI_EXPRESSIONS, FACEAPI_TO_LABELS, FaceApiExpressionNet

from . import TeacherSpec, default_cache, register_teacher
from .tfjs import decode_weights, dense_to_linear, depthwise_to_torch, hwio_to_oihw, npm_package, read_manifest

logger = logging.getLogger(__name__)

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
MANIFEST = "model/face_expression_model-weights_manifest.json"
WEIGHTS_FILE = "faceapi.safetensors"
# The converted weights committed for CI (see weights/NOTICE).
COMMITTED_WEIGHTS = Path(__file__).resolve().parent / "weights" / WEIGHTS_FILE


def state_dict_from_tfjs(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """face-api's tfjs tensors -> `FaceApiExpressionNet` state dict (numpy arrays in torch layouts).

    face-api names its tensors `dense{0..3}/conv{0..3}/{filters,depthwise_filter,pointwise_filter,bias}` (only
    `dense0/conv0` is a plain convolution with `filters`) and `fc/{weights,bias}`.

    Raises:
        ValueError: A tensor name or shape is not face-api's.
    """
    state: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        parts = name.split("/")
        if parts[0] == "fc" and len(parts) == 2:
            kinds = {"weights": ("fc.weight", dense_to_linear), "bias": ("fc.bias", np.asarray)}
            key, fn = kinds.get(parts[1], (None, None))
        elif len(parts) == 3 and parts[0].startswith("dense") and parts[1].startswith("conv"):
            prefix = f"{parts[0]}.{parts[1]}"
            plain = parts[0] == "dense0" and parts[1] == "conv0"
            kinds = {
                "filters": (f"{prefix}.weight", hwio_to_oihw),
                "depthwise_filter": (f"{prefix}.depthwise.weight", depthwise_to_torch),
                "pointwise_filter": (f"{prefix}.pointwise.weight", hwio_to_oihw),
                "bias": (f"{prefix}.bias" if plain else f"{prefix}.pointwise.bias", np.asarray),
            }
            key, fn = kinds.get(parts[2], (None, None))
        else:
            key = None
        if key is None:
            raise ValueError(f"unexpected tensor {name!r} in face-api's expression model")
        state[key] = np.ascontiguousarray(fn(value), dtype=np.float32)
    expected = FaceApiExpressionNet().state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"face-api tensors do not fill the torch module: missing {missing}, unexpected {extra}")
    for key, value in state.items():
        if tuple(expected[key].shape) != value.shape:
            raise ValueError(f"{key}: converted shape {value.shape}, module expects {tuple(expected[key].shape)}")
    return state


def convert_files(manifest_path: Path, out: Path, source: str = "") -> Path:
    """Converts a face-api weights manifest (+ the `.bin` shards next to it) into a safetensors file."""
    from safetensors.numpy import save_file

    manifest, _ = read_manifest(manifest_path)
    state = state_dict_from_tfjs(decode_weights(manifest, manifest_path.parent))
    digests = {
        name: hashlib.sha256((manifest_path.parent / name).read_bytes()).hexdigest()
        for group in manifest
        for name in group["paths"]
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"source": source or str(manifest_path), "converter": "training/teachers/faceapi.py"}
    metadata.update({f"sha256:{name}": digest for name, digest in digests.items()})
    save_file(state, str(out), metadata=metadata)
    logger.info("wrote %s (%d tensors)", out, len(state))
    return out


def convert(cache: Path) -> Path:
    """`cache/faceapi.safetensors`, fetching face-api with `npm pack` and converting it when missing."""
    out = Path(cache) / WEIGHTS_FILE
    if out.is_file():
        return out
    package = npm_package(PACKAGE, VERSION, cache)
    return convert_files(package / MANIFEST, out, source=f"npm {PACKAGE}@{VERSION}: {MANIFEST}")


SPEC = register_teacher(
    TeacherSpec(
        name="faceapi",
        classes=FACEAPI_EXPRESSIONS,
        to_microx=FACEAPI_TO_LABELS,
        input_size=112,
        grey=False,
        source=f"npm {PACKAGE}@{VERSION}: model/face_expression_model.bin + -weights_manifest.json",
        licence="MIT",
        training_data=(
            "undisclosed mix: 'a variety of images from publicly available datasets as well as images scraped from "
            "the web' (face-api TUTORIAL.md); datasets not named"
        ),
        build=FaceApiExpressionNet,
        convert=convert,
        notes=(
            "uint8-quantised tfjs weights, dequantised to float32; face-api crops the face from the landmarks' box "
            "padded by 20% and resizes it to 112x112; the package notes that glasses may lower its accuracy"
        ),
        extra={"committed_weights": COMMITTED_WEIGHTS, "feature_size": 256},
    )
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="safetensors path (default: the teachers' cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = default_cache()
    if args.out is None:
        convert(cache)
    else:
        package = npm_package(PACKAGE, VERSION, cache)
        convert_files(package / MANIFEST, args.out, source=f"npm {PACKAGE}@{VERSION}: {MANIFEST}")


if __name__ == "__main__":
    main()
