"""Source readers: each turns a corpus on disk into `SourceClip` records (video path, label, subject, metadata).

One small module per corpus (`baum1`, `baum2`, `ravdess`, `folder`); this module holds what they share: the
record, the listing a reader returns (clips plus what it skipped and why), annotation-table reading (xlsx with
openpyxl, xls with xlrd, csv/tsv) and the registry `read_source(name, root, ...)`.

Labels here are each source's *own* names (e.g. BAUM-1s "concentrating"); `training.labels` maps them onto a
label scheme.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microx_hf.errors import DatasetFormatError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


@dataclass
class SourceClip:
    """One video clip of a corpus.

    Attributes:
        path: Absolute path of the video file.
        label: The label in the source's own vocabulary (e.g. "happiness", "concentrating").
        subject: Who is in the clip; clips of one subject never cross a split.
        corpus: Corpus name ("baum1s", "baum1a", "baum2", "ravdess", "folder").
        meta: Extra metadata (codes, gender, language, ...); JSON-serialisable values only.
        source: Path relative to the corpus root (stable across machines; used as the clip's key).
    """

    path: str
    label: str
    subject: str
    corpus: str
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not self.source:
            self.source = Path(self.path).name


@dataclass
class SourceListing:
    """What a reader found: the clips, in a deterministic order, plus everything it skipped.

    Attributes:
        corpus: Corpus name.
        root: The folder that was read.
        clips: The usable clips, sorted by `source`.
        label_names: The source's own label set, in its documented order (its codes' order where it has codes).
        skipped: Reason -> count of items left out (audio-only files, rows without a video, ...).
        problems: One human-readable line per skipped item, naming the file or the annotation row.
    """

    corpus: str
    root: str
    clips: list[SourceClip] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[SourceClip]:
        return iter(self.clips)

    def __len__(self) -> int:
        return len(self.clips)

    def skip(self, reason: str, detail: str) -> None:
        """Count one skipped item under `reason` and remember `detail` for the report."""
        self.skipped[reason] += 1
        self.problems.append(f"{reason}: {detail}")

    def finish(self) -> SourceListing:
        """Sort the clips and log a one-line summary (with the skipped counts)."""
        self.clips.sort(key=lambda clip: clip.source)
        if self.skipped:
            logger.warning("%s: %d clips; skipped %s", self.corpus, len(self.clips), dict(self.skipped))
        else:
            logger.info("%s: %d clips", self.corpus, len(self.clips))
        return self


# Annotation tables ------------------------------------------------------------------------------------------------


def normalize_header(name: Any) -> str:
    """Lower-case a header cell and squeeze punctuation, so "Clip Name", "clip_name" and "ClipName " all match."""
    return re.sub(r"[^a-z0-9]+", " ", str(name or "").lower()).strip()


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # xlrd and some CSV exports give codes as 9.0
    return value


def read_table(path: str | Path) -> list[list[Any]]:
    """Read every non-empty row of an annotation table (first sheet with data for workbooks).

    Args:
        path: An .xlsx/.xlsm (openpyxl), .xls (xlrd) or .csv/.tsv/.txt file (delimiter sniffed).

    Returns:
        Rows of cells; strings stripped, empty cells None, whole floats turned into ints.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"Annotation file {path} does not exist: pass the path of the spreadsheet or CSV.")
    suffix = path.suffix.lower()
    rows: list[list[Any]]
    if suffix in (".xlsx", ".xlsm"):
        try:
            import openpyxl
        except ImportError as exc:  # pragma: no cover - openpyxl is in the train extra
            raise DatasetFormatError("Reading .xlsx needs openpyxl: pip install 'microx-hf[train]'.") from exc
        try:
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise DatasetFormatError(
                f"{path} is not a readable .xlsx workbook ({exc}); re-save it or export CSV."
            ) from exc
        rows = []
        for sheet in workbook.worksheets:
            rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            rows = [r for r in rows if any(v is not None for v in r)]
            if rows:
                break
        workbook.close()
    elif suffix == ".xls":
        try:
            import xlrd
        except ImportError as exc:  # pragma: no cover
            raise DatasetFormatError("Reading .xls needs xlrd: pip install 'microx-hf[train]'.") from exc
        try:
            book = xlrd.open_workbook(str(path))
        except Exception as exc:
            raise DatasetFormatError(
                f"{path} is not a readable .xls workbook ({exc}); re-save it or export CSV."
            ) from exc
        rows = []
        for sheet in book.sheets():
            rows = [[_cell(v) for v in sheet.row_values(i)] for i in range(sheet.nrows)]
            rows = [r for r in rows if any(v is not None for v in r)]
            if rows:
                break
    elif suffix in (".csv", ".tsv", ".txt"):
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
            delimiter = dialect.delimiter
        except csv.Error:
            delimiter = "\t" if suffix == ".tsv" else ","
        rows = [[_cell(v) for v in row] for row in csv.reader(text.splitlines(), delimiter=delimiter)]
        rows = [r for r in rows if any(v is not None for v in r)]
    else:
        raise DatasetFormatError(
            f"Cannot read annotation file {path}: use .xlsx, .xls, .csv or .tsv (export the sheet as CSV if needed)."
        )
    width = max((len(r) for r in rows), default=0)
    return [r + [None] * (width - len(r)) for r in rows]


def find_column(header: Sequence[Any], aliases: Sequence[str]) -> int | None:
    """Index of the first header cell equal to one of `aliases` (compared after `normalize_header`)."""
    names = [normalize_header(h) for h in header]
    for alias in aliases:
        if alias in names:
            return names.index(alias)
    return None


def find_file(root: Path, names: Sequence[str], max_depth: int = 3) -> Path | None:
    """The first file under `root` (or `root` itself) whose name matches one of `names`, case-insensitively."""
    wanted = {n.lower() for n in names}
    if root.is_file():
        return root if root.name.lower() in wanted else None
    for depth in range(max_depth + 1):
        pattern = "/".join(["*"] * (depth + 1))
        hits = sorted(p for p in root.glob(pattern) if p.is_file() and p.name.lower() in wanted)
        if hits:
            return hits[0]
    return None


def index_videos(root: Path) -> dict[str, list[Path]]:
    """Every video file under `root`, keyed by its upper-case stem (BAUM names its clips S001_001 but folders s001)."""
    index: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            index.setdefault(path.stem.upper(), []).append(path)
    return index


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root`, with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# Registry --------------------------------------------------------------------------------------------------------

Reader = Callable[..., SourceListing]


def _readers() -> dict[str, Reader]:
    from . import baum1, baum2, folder, ravdess

    return {
        "baum1s": baum1.read_baum1s,
        "baum1a": baum1.read_baum1a,
        "baum2": baum2.read_baum2,
        "ravdess": ravdess.read_ravdess,
        "folder": folder.read_folder,
    }


SOURCE_NAMES = ("baum1s", "baum1a", "baum2", "ravdess", "folder")


def read_source(name: str, root: str | Path, annotations: str | Path | None = None, **kwargs: Any) -> SourceListing:
    """Read one corpus.

    Args:
        name: One of `SOURCE_NAMES`.
        root: The corpus folder as unpacked (e.g. the folder holding "BAUM1s_MP4 - All").
        annotations: The annotation spreadsheet or manifest; found under `root` when None.
        **kwargs: Passed to the reader.
    """
    readers = _readers()
    if name not in readers:
        raise ValueError(f"Unknown source {name!r}; choose one of {list(readers)}.")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetFormatError(f"Source folder {root} does not exist: pass the folder where the corpus was unpacked.")
    return readers[name](root, annotations=annotations, **kwargs)


__all__ = [
    "SOURCE_NAMES",
    "VIDEO_EXTENSIONS",
    "SourceClip",
    "SourceListing",
    "find_column",
    "find_file",
    "index_videos",
    "normalize_header",
    "read_source",
    "read_table",
    "relative",
]
