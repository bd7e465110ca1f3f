"""Domain exceptions: each subclasses a built-in, so callers can catch either, and each message says what to do.

The Space and the CLI turn any `MicroXError` into a one-line message instead of a traceback.
"""


class MicroXError(Exception):
    """Base class of every error MicroX raises on purpose."""


class InvalidVideoError(MicroXError, ValueError):
    """The file is not a readable video (not a video, empty, audio only, zero frames)."""


class VideoNotFoundError(InvalidVideoError, FileNotFoundError):
    """The video path does not exist."""


class StillImageError(InvalidVideoError):
    """The file is a still image (PNG, JPEG, ...), not a video; analyse it only when asked to (`allow_still`).

    Attributes:
        path: The file (None when not said).
        kind: The image format found in its bytes, e.g. "PNG" (None when not said).

    The message names the Python option; a surface with its own switch (the CLI's ``--allow-still``) words its
    message from `path` and `kind`.
    """

    def __init__(self, message: str, *, path: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind


class VideoDecodeError(MicroXError, RuntimeError):
    """The file looked like a video but decoding failed (truncated or corrupt)."""


class VideoLimitError(MicroXError, ValueError):
    """The video exceeds a configured limit (duration, frame count, frame size).

    Attributes:
        limit: Which limit: "duration" (seconds), "frames" or "pixels" (per frame); None when not said.
        value: The video's value (None where only "more than `maximum`" is known).
        maximum: The limit it exceeds.
    """

    def __init__(
        self, message: str, *, limit: str | None = None, value: float | None = None, maximum: float | None = None
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.maximum = maximum


class NoFaceDetectedError(MicroXError, ValueError):
    """No face was found in any frame of the video."""


class NotAFaceCropError(NoFaceDetectedError):
    """Face-crop mode (`face_crops=True`) was asked for, but no frame of the input is a crop of one face."""


class BackendUnavailableError(MicroXError, ImportError):
    """A landmark backend cannot run here; the message names the pip extra or the files to place."""


class DatasetFormatError(MicroXError, ValueError):
    """A dataset folder or annotation file does not have the expected layout."""


class ModelNotFoundError(MicroXError, FileNotFoundError):
    """No model could be loaded from the given name or path."""


class PickledWeightsError(ModelNotFoundError):
    """The checkpoint has only pickled weights (`pytorch_model.bin`, `.pt`, ...): refused, since unpickling can run
    code; the message says how to convert them to safetensors."""
