"""BAUM-1 reader: BAUM-1s (spontaneous) and BAUM-1a (acted), Zhalehpour et al., IEEE Trans. Affective Computing 2017.

Layout (as distributed and as the published loaders read it)::

    <root>/BAUM1s_MP4 - All/s001/S001_001.mp4 ...     one folder per subject (s001 .. s031), clips S<subj>_<n>
    <root>/BAUM1a_MP4 - All/s001/S001_001.mp4 ...
    <root>/Annotations_BAUM1s.xlsx, Annotations_BAUM1a.xlsx   (often exported to .csv, sometimes saved as .xls)

Annotation columns, read by header name first: the clip name ("Clip Name", "Clip", "File", ...), the emotion or
mental state by name ("Emotion", "Label", "State") and by number ("Code", "Emotion Code", ...), optionally the
subject ("Subject", "Subject No", ...) and gender. Headerless exports are read by content: the column whose cells
look like clip names (S001_001), the first all-integer column after it (the code) and the first text column after
it (the name); the CSV export used by published loaders (subject, ..., clip, ..., code at positions 1, 3, 5) is the
last fallback. Where a row has both a name and a code they must agree, or the row is skipped and reported.

Codes (the databases' documentation; "con" is ambiguous between concentrating and contempt, so full names are
compared, never three-letter prefixes):
    BAUM-1s: 1 anger, 2 boredom, 3 bothered, 4 concentrating, 5 contempt, 6 disgust, 7 fear, 8 happiness,
             9 neutral, 10 sadness, 11 surprise, 12 thinking, 13 unsure.
    BAUM-1a: 1 anger, 2 boredom, 3 disgust, 4 fear, 5 happiness, 6 interest, 7 sadness, 8 surprise, 9 unsure.

Subject ids are "S001"-style, taken from the clip name (the folder name agrees with it in the distribution).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from microx_hf.errors import DatasetFormatError

from . import SourceClip, SourceListing, find_column, find_file, index_videos, normalize_header, read_table, relative

logger = logging.getLogger(__name__)

CODES_BAUM1S = (
    "anger",
    "boredom",
    "bothered",
    "concentrating",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "thinking",
    "unsure",
)
CODES_BAUM1A = ("anger", "boredom", "disgust", "fear", "happiness", "interest", "sadness", "surprise", "unsure")

# Spellings seen in annotation sheets and exports -> the canonical names above (whole words only).
SYNONYMS = {
    "angry": "anger",
    "bored": "boredom",
    "concentrated": "concentrating",
    "concentration": "concentrating",
    "disgusted": "disgust",
    "afraid": "fear",
    "fearful": "fear",
    "happy": "happiness",
    "joy": "happiness",
    "interested": "interest",
    "curious": "interest",
    "curiosity": "interest",
    "sad": "sadness",
    "surprised": "surprise",
    "think": "thinking",
    "unsure confused undecided": "unsure",
    "confused": "unsure",
    "undecided": "unsure",
    "uncertain": "unsure",
    "neutrality": "neutral",
    "contemptuous": "contempt",
}

CLIP_ALIASES = (
    "clip name",
    "clip",
    "clipname",
    "clip id",
    "file name",
    "filename",
    "file",
    "video",
    "video name",
    "name",
)
NAME_ALIASES = (
    "emotion",
    "emotion name",
    "emotion label",
    "label",
    "state",
    "emotion mental state",
    "emotional state",
    "class",
)
CODE_ALIASES = (
    "code",
    "emotion code",
    "label code",
    "emotion no",
    "emotion id",
    "emotion number",
    "class code",
    "emotion nr",
)
SUBJECT_ALIASES = ("subject", "subject no", "subject id", "subject number", "subject nr", "speaker", "participant")
GENDER_ALIASES = ("gender", "sex")

_CLIP_RE = re.compile(r"^s(\d{1,4})_(\d{1,4})$", re.IGNORECASE)


def canonical_state(name: Any) -> str:
    """Normalise an emotion/mental-state name ("Happiness ", "happy") to the code table's spelling ("happiness")."""
    text = normalize_header(name)
    return SYNONYMS.get(text, text)


def _clip_key(value: Any) -> str | None:
    """ "S001_001", "s001_001.mp4", "S1_1" -> "S001_001"; None for anything that is not a BAUM-1 clip name."""
    if value is None:
        return None
    stem = Path(str(value).strip()).stem
    match = _CLIP_RE.match(stem)
    if not match:
        return None
    return f"S{int(match.group(1)):03d}_{int(match.group(2)):03d}"


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.isdigit()


def _columns(rows: list[list[Any]], table: str, codes: tuple[str, ...]) -> tuple[dict[str, int | None], int]:
    """Work out which column holds what. Returns the column map and the index of the first data row."""
    header = rows[0]
    clip = find_column(header, CLIP_ALIASES)
    if clip is not None:
        columns = {
            "clip": clip,
            "name": find_column(header, NAME_ALIASES),
            "code": find_column(header, CODE_ALIASES),
            "subject": find_column(header, SUBJECT_ALIASES),
            "gender": find_column(header, GENDER_ALIASES),
        }
        if columns["name"] is None and columns["code"] is None:
            raise DatasetFormatError(
                f"{table}: found the clip column {header[clip]!r} but no emotion column; name one of the columns "
                f"'Emotion' (the state's name) or 'Code' (its number). Header seen: {header}."
            )
        return columns, 1
    # No recognised header: read by content.
    start = 1 if all(_clip_key(v) is None for v in rows[0]) and any(isinstance(v, str) for v in rows[0]) else 0
    body = rows[start:]
    width = len(rows[0])

    def share(col: int, test) -> float:
        values = [r[col] for r in body if r[col] is not None]
        return sum(1 for v in values if test(v)) / max(len(values), 1) if values else 0.0

    clip_scores = [share(c, lambda v: _clip_key(v) is not None) for c in range(width)]
    clip = max(range(width), key=lambda c: clip_scores[c]) if width else None
    if clip is None or clip_scores[clip] < 0.5:
        if width > 5:  # the CSV export used by published loaders: subject, -, clip, -, code at 1, 3, 5
            logger.warning("%s: no header and no clip-name column found; reading columns 2, 4, 6 by position", table)
            return {"clip": 3, "name": None, "code": 5, "subject": 1, "gender": None}, start
        raise DatasetFormatError(
            f"{table}: cannot find the clip-name column (values like S001_001). Add a header row with 'Clip Name' "
            f"and 'Emotion' or 'Code' columns. First row seen: {rows[0]}."
        )
    after = range(clip + 1, width)
    code = next((c for c in after if share(c, lambda v: _is_int(v) and 1 <= int(v) <= len(codes)) == 1.0), None)
    name = next(
        (c for c in after if share(c, lambda v: isinstance(v, str) and canonical_state(v) in codes) >= 0.8), None
    )
    subject = next((c for c in range(clip) if share(c, _is_int) == 1.0), None)
    if code is None and name is None:
        raise DatasetFormatError(
            f"{table}: found clip names in column {clip + 1} but no emotion code or name after it. Add a header row "
            f"with 'Clip Name' and 'Emotion' or 'Code' columns."
        )
    return {"clip": clip, "name": name, "code": code, "subject": subject, "gender": None}, start


def _read_baum1(root: Path, annotations: str | Path | None, subset: str, codes: tuple[str, ...]) -> SourceListing:
    corpus = f"baum1{subset}"
    listing = SourceListing(corpus=corpus, root=str(root), label_names=list(codes))
    table_names = [f"Annotations_BAUM1{subset}{ext}" for ext in (".xlsx", ".xls", ".csv", ".tsv")]
    if annotations is None:
        found = find_file(root, table_names) or find_file(root.parent, table_names, max_depth=0)
        if found is None:
            raise DatasetFormatError(
                f"No annotation file for BAUM-1{subset} under {root}: expected one of {table_names}; pass "
                f"--annotations with the path of the spreadsheet or its CSV export."
            )
        annotations = found
    annotations = Path(annotations)
    rows = read_table(annotations)
    if not rows:
        raise DatasetFormatError(f"{annotations} is empty: it should list every clip with its emotion.")
    columns, start = _columns(rows, annotations.name, codes)
    video_root = next((p for p in root.glob(f"BAUM1{subset}*") if p.is_dir()), root)
    videos = index_videos(video_root)
    seen: set[str] = set()
    for number, row in enumerate(rows[start:], start=start + 1):
        where = f"{annotations.name} row {number}"
        key = _clip_key(row[columns["clip"]])
        if key is None:
            listing.skip("bad_row", f"{where}: {row[columns['clip']]!r} is not a clip name like S001_001")
            continue
        if key in seen:
            listing.skip("duplicate_row", f"{where}: {key} is annotated twice; the first row is used")
            continue
        seen.add(key)
        code = row[columns["code"]] if columns["code"] is not None else None
        name = row[columns["name"]] if columns["name"] is not None else None
        label_from_code = codes[int(code) - 1] if _is_int(code) and 1 <= int(code) <= len(codes) else None
        label_from_name = canonical_state(name) if name is not None else None
        if code is not None and label_from_code is None:
            listing.skip("bad_code", f"{where}: {key} has code {code!r}, outside 1..{len(codes)} of BAUM-1{subset}")
            continue
        if label_from_name is not None and label_from_name not in codes:
            listing.skip("unknown_label", f"{where}: {key} has emotion {name!r}, not one of {list(codes)}")
            continue
        if label_from_code and label_from_name and label_from_code != label_from_name:
            listing.skip(
                "name_code_mismatch",
                f"{where}: {key} says {name!r} but code {code} means {label_from_code!r}; correct the row",
            )
            continue
        label = label_from_name or label_from_code
        if label is None:
            listing.skip("no_label", f"{where}: {key} has neither an emotion name nor a code")
            continue
        paths = videos.get(key)
        if not paths:
            listing.skip("missing_video", f"{where}: no video file for {key} under {video_root}")
            continue
        if len(paths) > 1:
            logger.warning("%s: several files for %s (%s); using the first", corpus, key, [str(p) for p in paths])
        meta: dict[str, Any] = {"clip": key}
        if code is not None:
            meta["code"] = int(code)
        if columns["gender"] is not None and row[columns["gender"]] is not None:
            meta["gender"] = str(row[columns["gender"]])
        subject = key.split("_")[0]
        if columns["subject"] is not None and _is_int(row[columns["subject"]]):
            sheet_subject = f"S{int(row[columns['subject']]):03d}"
            if sheet_subject != subject:
                logger.warning(
                    "%s: %s lists subject %s; the clip name says %s (kept)", where, key, sheet_subject, subject
                )
        listing.clips.append(
            SourceClip(
                path=str(paths[0]),
                label=label,
                subject=subject,
                corpus=corpus,
                meta=meta,
                source=relative(paths[0], root),
            )
        )
    for key in sorted(set(videos) - seen):
        if _clip_key(key):
            listing.skip("unannotated", f"{relative(videos[key][0], root)} has no row in {annotations.name}")
    return listing.finish()


def read_baum1s(root: Path, annotations: str | Path | None = None) -> SourceListing:
    """Read BAUM-1s (spontaneous): 13 emotional and mental states. See the module docstring for the layout."""
    return _read_baum1(Path(root), annotations, "s", CODES_BAUM1S)


def read_baum1a(root: Path, annotations: str | Path | None = None) -> SourceListing:
    """Read BAUM-1a (acted): 9 states. See the module docstring for the layout."""
    return _read_baum1(Path(root), annotations, "a", CODES_BAUM1A)
