"""Plain folders: `<root>/<LABEL>/*.mp4` (any depth below the label folder), or a CSV manifest.

Manifest: a CSV with a header `path,label[,subject]` (extra columns go into `meta`); `path` relative to the
manifest's folder or absolute. Without a subject column (or in the folder layout) each clip is its own subject,
unless the folder layout has `<root>/<LABEL>/<SUBJECT>/*.mp4`, where the second level is the subject.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from microx_hf.errors import DatasetFormatError

from . import VIDEO_EXTENSIONS, SourceClip, SourceListing, relative

logger = logging.getLogger(__name__)


def read_folder(root: Path, annotations: str | Path | None = None) -> SourceListing:
    """Read a label-per-folder tree, or the manifest `annotations` (or `root` itself when it is a .csv file)."""
    root = Path(root)
    if annotations is None and root.is_file():
        annotations, root = root, root.parent
    if annotations is not None:
        return _read_manifest(Path(annotations), root)
    listing = SourceListing(corpus="folder", root=str(root))
    labels = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not labels:
        raise DatasetFormatError(
            f"{root} has no label folders: put clips in <root>/<LABEL>/*.mp4, or pass a CSV manifest with columns "
            f"path,label[,subject]."
        )
    without_subject = 0
    for folder in labels:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                if not path.name.startswith("."):
                    listing.skip("not_a_video", relative(path, root))
                continue
            parts = path.relative_to(folder).parts
            if len(parts) > 1:
                subject = parts[0]
            else:
                subject, without_subject = f"clip:{relative(path, root)}", without_subject + 1
            listing.clips.append(
                SourceClip(
                    path=str(path), label=folder.name, subject=subject, corpus="folder", source=relative(path, root)
                )
            )
    listing.label_names = sorted({c.label for c in listing.clips})
    if without_subject:
        logger.warning("folder: %d clips have no subject folder; each is its own subject", without_subject)
    return listing.finish()


def _read_manifest(manifest: Path, root: Path) -> SourceListing:
    if not manifest.is_file():
        raise DatasetFormatError(f"Manifest {manifest} does not exist: pass a CSV with columns path,label[,subject].")
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "path" not in fields or "label" not in fields:
            raise DatasetFormatError(
                f"{manifest}: the first row must be a header with columns path,label[,subject]; found {reader.fieldnames}."
            )
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    base = manifest.parent
    listing = SourceListing(corpus="folder", root=str(base))
    for number, row in enumerate(rows, start=2):
        if not row.get("path") or not row.get("label"):
            listing.skip("bad_row", f"{manifest.name} row {number}: empty path or label")
            continue
        path = Path(row["path"])
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            listing.skip("missing_video", f"{manifest.name} row {number}: {row['path']} does not exist")
            continue
        subject = row.get("subject") or f"clip:{row['path']}"
        meta = {k: v for k, v in row.items() if k not in ("path", "label", "subject") and v}
        listing.clips.append(
            SourceClip(
                path=str(path),
                label=row["label"],
                subject=subject,
                corpus="folder",
                meta=meta,
                source=relative(path, base),
            )
        )
    if not listing.clips:
        raise DatasetFormatError(f"{manifest} lists no existing video ({dict(listing.skipped)}); check the paths.")
    listing.label_names = list(dict.fromkeys(c.label for c in listing.clips))
    return listing.finish()
