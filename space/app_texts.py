"""What the Space says, in the visitor's words: the summary, the crops' captions, the low-confidence note, the notes
on stills, short clips and several faces, and the error boxes' titles and messages."""

from __future__ import annotations

from pathlib import Path

from microx_hf.errors import (
    InvalidVideoError,
    MicroXError,
    NoFaceDetectedError,
    StillImageError,
    VideoDecodeError,
    VideoLimitError,
)
from microx_hf.predict import Prediction

# The first matching class gives the heading, so subclasses come before their bases.
ERROR_TITLES = {
    StillImageError: "A photo, not a video",
    InvalidVideoError: "Not a video",
    VideoDecodeError: "The video is damaged",
    VideoLimitError: "Video too long",
    NoFaceDetectedError: "No face found",
}


def error_title(error: MicroXError) -> str:
    """A short heading for the message box."""
    for kind, title in ERROR_TITLES.items():
        if isinstance(error, kind):
            return title
    return "Cannot analyse this video"


def user_message(error: MicroXError, video: str, max_duration_s: float) -> str:
    """The library's message in the visitor's terms: their file's name, and what they can do here."""
    name = Path(video).name
    if isinstance(error, VideoLimitError) and error.limit == "duration":
        lasts = f"lasts {error.value:.0f} s" if error.value is not None else f"is longer than {max_duration_s:g} s"
        return (
            f"{name} {lasts}; this app takes videos up to {max_duration_s:g} s. Trim it to the moment that matters "
            "(most phones and video players can trim a clip) and upload it again."
        )
    if isinstance(error, StillImageError):
        return (
            f"{name} is a photo, not a video: MicroX reads emotion from how a face moves. Upload or record a video "
            "of a few seconds instead."
        )
    # The upload's server path means nothing to the user: name the file as they know it.
    return " ".join(str(error).replace(str(video), name).split())


def window_span(prediction: Prediction, window: int) -> str:
    """A window's time span, "0.17-0.50 s"."""
    start = prediction.window_starts[window]
    return f"{start:.2f}-{start + prediction.num_frames / prediction.clip.fps:.2f} s"


def crop_caption(prediction: Prediction, region: str, weight: float, when: str) -> str:
    """A region strip's caption: its share of that one window's decision (not a probability of an emotion), or, for
    a model whose face network decided (`decided_by_prior`), that the region was read and did not decide."""
    if prediction.decided_by_prior:
        return f"{region}: read, but the face network decided (window {when})"
    return f"{region}: {weight:.0%} of the decision in the window {when}"


def summary(prediction: Prediction, window: int) -> str:
    """The result in a few sentences (Markdown): the emotion, the most telling window, the face and its light, who
    decided, and what the visitor must know (`summary_notes`)."""
    quality = prediction.quality
    top = prediction.window_probs[window].max()
    start = prediction.window_starts[window]
    end = start + prediction.num_frames / prediction.clip.fps
    text = (
        f"**{prediction.label}** over {len(prediction.window_starts)} windows. The most telling window runs from "
        f"{start:.2f} s to {end:.2f} s ({top:.0%} {prediction.label}). "
        f"Face found in {prediction.face_fraction:.0%} of the frames (landmarks: {prediction.landmark_backend})"
    )
    if quality.face_width_px is not None:
        text += (
            f"; the face is {quality.face_width_px:.0f} px wide, brightness {quality.brightness:.0f} of 255, "
            f"contrast {quality.contrast:.0f}"
        )
    text += "."
    if prediction.decided_by_prior:
        text += (
            " The face network (the model's frame encoder) decided: this model's region branches are switched off "
            "(they did not beat it on real labelled faces), so the region crops below show what was read, not what "
            "decided."
        )
    notes = summary_notes(prediction)
    if notes:
        text += "\n\n" + "\n".join(f"- {note}" for note in notes)
    return text


def quality_note(prediction: Prediction) -> str:
    """The low-confidence note in the visitor's words (Markdown), or "" when the prediction is not doubtful."""
    quality = prediction.quality
    if not quality.low_confidence:
        return ""
    reasons = "; ".join(quality.notes)
    return (
        f"**Low confidence.** {reasons[0].upper()}{reasons[1:]}. Take this answer with caution: MicroX reads best a "
        "well-lit face, looking at the camera, filling a good part of the frame."
    )


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def summary_notes(prediction: Prediction) -> list[str]:
    """What the visitor must know to read the result: a still, a clip shorter than one window, several faces."""
    notes = []
    if prediction.still:
        notes.append("**A still image**, analysed as a single frame: there is no motion to read, so take the result "
                     "with care.")  # fmt: skip
    elif prediction.padded:
        span = prediction.num_frames / prediction.clip.fps
        notes.append(f"**Short clip**: shorter than one window ({prediction.num_frames} frames, {span:.2f} s); "
                     "its last frame was repeated to fill it, so the result rests on very little motion.")  # fmt: skip
    faces = prediction.faces_seen
    if faces > 1:
        choice = prediction.face_choice
        followed = prediction.followed_face
        how = {"auto": "the most prominent one (clearest, large and central)", "largest": "the largest one",
               "central": "the most central one"}.get(choice, f"face {choice}")  # fmt: skip
        where = f", the {_ordinal(followed + 1)} from the left" if followed is not None else ""
        notes.append(f"**{faces} faces** seen; MicroX followed {how}{where}. The result is about that face only.")
    return notes
