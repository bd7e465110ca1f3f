"""Domain exceptions: each subclasses a built-in, so callers can catch either, and each message says what to do.

The Space and the CLI turn any `MicroXError` into a one-line message instead of a traceback.
"""


class MicroXError(Exception):
    """Base class of every error MicroX raises on purpose."""


class InvalidVideoError(MicroXError, ValueError):
    """The file is not a readable video (not a video, empty, audio only, zero frames)."""


class VideoNotFoundError(InvalidVideoError, FileNotFoundError):
    """The video path does not exist."""


class VideoDecodeError(MicroXError, RuntimeError):
    """The file looked like a video but decoding failed (truncated or corrupt)."""


class VideoLimitError(MicroXError, ValueError):
    """The video exceeds a configured limit (duration, frame count)."""


class NoFaceDetectedError(MicroXError, ValueError):
    """No face was found in any frame of the video."""


class BackendUnavailableError(MicroXError, ImportError):
    """A landmark backend cannot run here; the message names the pip extra or the files to place."""


class DatasetFormatError(MicroXError, ValueError):
    """A dataset folder or annotation file does not have the expected layout."""


class ModelNotFoundError(MicroXError, FileNotFoundError):
    """No model could be loaded from the given name or path."""
