"""BAUM-2 reader (Erdem, Turan, Aydin, "BAUM-2: a multilingual audio-visual affective face database", Multimedia
Tools and Applications 74, 2015): 1047 clips cut from films and TV in several languages, 8 labels.

Layout version followed. We could not find the distribution's own file list in public documentation or published
loaders, so this reader follows the layout the paper describes and accepts the two shapes such a corpus is seen in:

1. **Annotation table (preferred)**: video files anywhere under `root` (typically one folder per language) and one
   spreadsheet/CSV (auto-found: a file under `root` whose name contains "annot" or "label", or pass
   `annotations=`) with a header row. Columns read by name: the clip file ("Clip Name", "Clip", "File", "Video",
   with or without extension, matched by stem, case-insensitive), the emotion *name* ("Emotion", "Label"), and
   optionally the subject ("Subject", "Actor", "Person", "Speaker"), the film ("Film", "Movie", "Source") and the
   language ("Language"). Numeric emotion codes are refused: their order is not published in a form we could
   check, so guessing would silently mislabel clips.
2. **One folder per emotion**: `<root>/<emotion>/**/*.mp4` with the 8 emotion names, used when no table is found.

Assumptions (say so in results): BAUM-2 has no subject ids across films; where the table has no subject column the
film (if given) stands in for the subject, otherwise each clip is its own subject and a warning says that
subject-independent splits are then only clip-independent. Language comes from the table or the first folder
level below `root`.

Labels (the paper's 8): anger, happiness, sadness, surprise, fear, disgust, contempt, neutral.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from microx_hf.errors import DatasetFormatError

from . import SourceClip, SourceListing, find_column, index_videos, normalize_header, read_table, relative

logger = logging.getLogger(__name__)

LABELS_BAUM2 = ("anger", "happiness", "sadness", "surprise", "fear", "disgust", "contempt", "neutral")
SYNONYMS = {
    "angry": "anger",
    "happy": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "surprised": "surprise",
    "fearful": "fear",
    "afraid": "fear",
    "disgusted": "disgust",
    "contemptuous": "contempt",
}

CLIP_ALIASES = ("clip name", "clip", "clipname", "clip id", "file name", "filename", "file", "video", "video name")
EMOTION_ALIASES = ("emotion", "emotion name", "label", "emotion label", "class", "expression")
SUBJECT_ALIASES = ("subject", "subject id", "actor", "person", "speaker", "identity", "person id")
FILM_ALIASES = ("film", "movie", "source", "tv program", "program", "film name", "movie name")
LANGUAGE_ALIASES = ("language", "lang")


def canonical_emotion(name: Any) -> str:
    """ "Happy", "HAPPINESS " -> "happiness"."""
    text = normalize_header(name)
    return SYNONYMS.get(text, text)


def _annotation_file(root: Path) -> Path | None:
    candidates = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in (".xlsx", ".xls", ".csv", ".tsv")
        and ("annot" in p.name.lower() or "label" in p.name.lower())
    )
    if len(candidates) > 1:
        raise DatasetFormatError(
            f"Several possible BAUM-2 annotation files under {root}: {[str(c) for c in candidates]}; pass "
            f"--annotations with the one to use."
        )
    return candidates[0] if candidates else None


def _language(path: Path, root: Path) -> str | None:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def read_baum2(root: Path, annotations: str | Path | None = None) -> SourceListing:
    """Read BAUM-2; see the module docstring for the layout versions accepted and the assumptions."""
    root = Path(root)
    listing = SourceListing(corpus="baum2", root=str(root), label_names=list(LABELS_BAUM2))
    annotations = Path(annotations) if annotations is not None else _annotation_file(root)
    videos = index_videos(root)
    if annotations is None:
        folders = {p.name: p for p in root.iterdir() if p.is_dir() and canonical_emotion(p.name) in LABELS_BAUM2}
        if not folders:
            raise DatasetFormatError(
                f"No BAUM-2 annotation file under {root} (a .xlsx/.xls/.csv whose name contains 'annot' or 'label') "
                f"and no emotion folders ({', '.join(LABELS_BAUM2)}). Pass --annotations with the table's path."
            )
        logger.info("baum2: no annotation table; reading labels from the emotion folders %s", sorted(folders))
        for name, folder in sorted(folders.items()):
            for key, paths in sorted(index_videos(folder).items()):
                path = paths[0]
                listing.clips.append(
                    SourceClip(
                        path=str(path),
                        label=canonical_emotion(name),
                        subject=f"clip:{key}",
                        corpus="baum2",
                        meta={"clip": key},
                        source=relative(path, root),
                    )
                )
        logger.warning("baum2: no subject ids in an emotion-folder layout; every clip is its own subject")
        return listing.finish()

    rows = read_table(annotations)
    if not rows:
        raise DatasetFormatError(f"{annotations} is empty: it should list every clip with its emotion.")
    header = rows[0]
    col = {
        "clip": find_column(header, CLIP_ALIASES),
        "emotion": find_column(header, EMOTION_ALIASES),
        "subject": find_column(header, SUBJECT_ALIASES),
        "film": find_column(header, FILM_ALIASES),
        "language": find_column(header, LANGUAGE_ALIASES),
    }
    if col["clip"] is None or col["emotion"] is None:
        raise DatasetFormatError(
            f"{annotations.name}: needs a header row with a clip column ({CLIP_ALIASES[0]!r}, 'File', 'Video') and an "
            f"emotion column ('Emotion', 'Label'); header seen: {header}."
        )
    if col["subject"] is None:
        logger.warning(
            "baum2: %s has no subject column; using %s as the subject (splits by subject are then by %s)",
            annotations.name,
            "the film" if col["film"] is not None else "each clip",
            "film" if col["film"] is not None else "clip",
        )
    seen: set[str] = set()
    for number, row in enumerate(rows[1:], start=2):
        where = f"{annotations.name} row {number}"
        clip_value = row[col["clip"]]
        if clip_value is None:
            listing.skip("bad_row", f"{where}: empty clip name")
            continue
        key = Path(str(clip_value)).stem.upper()
        if key in seen:
            listing.skip("duplicate_row", f"{where}: {clip_value} is annotated twice; the first row is used")
            continue
        seen.add(key)
        emotion = row[col["emotion"]]
        if isinstance(emotion, int) or (isinstance(emotion, str) and emotion.isdigit()):
            raise DatasetFormatError(
                f"{where}: emotion {emotion!r} is a number; BAUM-2's code order is not published in a form we can "
                f"check. Write the emotion names ({', '.join(LABELS_BAUM2)}) in the column instead."
            )
        label = canonical_emotion(emotion)
        if label not in LABELS_BAUM2:
            listing.skip(
                "unknown_label", f"{where}: {clip_value} has emotion {emotion!r}, not one of {list(LABELS_BAUM2)}"
            )
            continue
        paths = videos.get(key)
        if not paths:
            listing.skip("missing_video", f"{where}: no video file for {clip_value} under {root}")
            continue
        path = paths[0]
        meta: dict[str, Any] = {"clip": key}
        language = row[col["language"]] if col["language"] is not None else _language(path, root)
        if language is not None:
            meta["language"] = str(language)
        film = row[col["film"]] if col["film"] is not None else None
        if film is not None:
            meta["film"] = str(film)
        if col["subject"] is not None and row[col["subject"]] is not None:
            subject = str(row[col["subject"]])
        elif film is not None:
            subject = f"film:{film}"
        else:
            subject = f"clip:{key}"
        listing.clips.append(
            SourceClip(
                path=str(path), label=label, subject=subject, corpus="baum2", meta=meta, source=relative(path, root)
            )
        )
    for key in sorted(set(videos) - seen):
        listing.skip("unannotated", f"{relative(videos[key][0], root)} has no row in {annotations.name}")
    return listing.finish()
