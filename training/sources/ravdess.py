"""RAVDESS reader (Livingstone & Russo, PLoS ONE 2018): labels and actors from seven-part file names.

`MM-VV-EE-II-SS-RR-AA.mp4`: modality (01 audio-video, 02 video only, 03 audio only), vocal channel (01 speech,
02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised),
intensity (01 normal, 02 strong), statement (01, 02), repetition (01, 02), actor (01-24; odd male, even female).
Files are usually under `Actor_01/` ... folders (`Video_Speech_Actor_01.zip` unpacked); any depth is accepted.
Audio-only files (modality 03, usually .wav) are skipped and counted; the actor is the subject.
"""

from __future__ import annotations

import re
from pathlib import Path

from microx_hf.errors import DatasetFormatError

from . import VIDEO_EXTENSIONS, SourceClip, SourceListing, relative

EMOTIONS_RAVDESS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
CHANNELS = {1: "speech", 2: "song"}
_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def read_ravdess(root: Path, annotations: str | Path | None = None) -> SourceListing:
    """Read RAVDESS video files under `root` (any depth). `annotations` is not used: labels are in the names."""
    root = Path(root)
    if annotations is not None:
        raise DatasetFormatError("RAVDESS takes its labels from the file names: do not pass --annotations.")
    listing = SourceListing(corpus="ravdess", root=str(root), label_names=list(EMOTIONS_RAVDESS))
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and (p.suffix.lower() in VIDEO_EXTENSIONS or p.suffix.lower() == ".wav")
    )
    for path in files:
        match = _NAME_RE.match(path.stem)
        if not match:
            listing.skip("bad_name", f"{relative(path, root)} is not named MM-VV-EE-II-SS-RR-AA")
            continue
        modality, channel, emotion, intensity, statement, repetition, actor = (int(g) for g in match.groups())
        if modality == 3 or path.suffix.lower() == ".wav":
            listing.skip("audio_only", relative(path, root))
            continue
        if modality not in MODALITIES or channel not in CHANNELS or not 1 <= emotion <= len(EMOTIONS_RAVDESS):
            listing.skip("bad_code", f"{relative(path, root)}: modality/channel/emotion code out of range")
            continue
        listing.clips.append(
            SourceClip(
                path=str(path),
                label=EMOTIONS_RAVDESS[emotion - 1],
                subject=f"actor_{actor:02d}",
                corpus="ravdess",
                meta={
                    "modality": MODALITIES[modality],
                    "channel": CHANNELS[channel],
                    "intensity": intensity,
                    "statement": statement,
                    "repetition": repetition,
                    "gender": "male" if actor % 2 else "female",
                },
                source=relative(path, root),
            )
        )
    if not listing.clips:
        raise DatasetFormatError(
            f"No RAVDESS video files under {root} (names like 01-01-03-01-01-01-05.mp4; found {len(files)} files, "
            f"skipped {dict(listing.skipped)}). Unpack the Video_Speech/Video_Song archives there."
        )
    return listing.finish()
