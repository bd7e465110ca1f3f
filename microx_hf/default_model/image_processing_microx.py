"""The image processor a MicroX checkpoint names in its `preprocessor_config.json` (`auto_map`), for
`AutoImageProcessor` / `AutoFeatureExtractor.from_pretrained(..., trust_remote_code=True)`.

It is the microx-hf package's `MicroXFeatureExtractor`: finding the face in every frame and cutting the region crops
needs OpenCV and a landmark backend, which cannot travel as custom code. This file travels with checkpoints, so it
imports only the standard library and transformers; it imports the package when it is loaded and says what to
install when the package is missing.
"""

import importlib

INSTALL_HINT = (
    'pip install torch==2.13.0, then pip install "microx-hf[dlib]" (microx-hf is not on PyPI yet: build its wheel '
    "from the MicroX repository with `python -m build` and install that file, with the [dlib] extra)"
)


def microx_module(name: str):
    """`microx_hf.<name>`, or an ImportError that says how to install the package."""
    # importlib, not an import statement: transformers refuses to load a custom-code file whose imports are missing,
    # and then the user would not read what to install.
    try:
        return importlib.import_module(f"microx_hf.{name}")
    except ImportError as err:
        raise ImportError(
            "MicroX needs the microx-hf package to find the face in every frame and cut the region crops the model "
            f"reads; it cannot be imported here ({err}). Install it: {INSTALL_HINT}."
        ) from err


class MicroXFeatureExtractor(microx_module("feature_extraction_microx").MicroXFeatureExtractor):
    """The package's `MicroXFeatureExtractor`, under the name this checkpoint's `auto_map` gives."""
