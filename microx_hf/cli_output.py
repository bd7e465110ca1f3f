"""What `microx predict` and `microx crops` print: the table's rows, the notes on stderr (several faces, a doubtful
answer), the timeline CSV, and the command line's words for a photo."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from .errors import StillImageError

# What the table names as the decider of a model that answers with its frame encoder's prior (`decided_by_prior`).
PRIOR_NAME = "face network (prior)"


def still_message(err: StillImageError) -> str:
    """The CLI's words for a photo: its own switch, not the Python option the library's message names."""
    what = f"{err.path} is a still image ({err.kind})" if err.path else "this file is a still image"
    return (f"{what}, not a video: MicroX reads emotion from how a face moves over time. Pass a video of the face "
            "(a few seconds), or add --allow-still to score this single frame anyway.")  # fmt: skip


def faces_note(video: str, faces_seen: int, followed_face: int | None, what: str) -> str | None:
    """A line for stderr when several faces were seen: which one `what` (the row, the sheet) is about."""
    if not faces_seen or faces_seen < 2:
        return None
    if followed_face is None:
        which = "one of them"
    elif faces_seen == 2 and followed_face in (0, 1):
        which = ("the left face", "the right face")[followed_face]
    else:
        which = f"face {followed_face} (counting from 0 at the left)"
    return (f"microx: note: {video}: {faces_seen} faces seen; {what} is for {which}; --face picks another (a number "
            "from 0 at the left, largest or central)")  # fmt: skip


def quality_note(video: str, prediction) -> str | None:
    """A line for stderr when the prediction is doubtful (`Prediction.quality`)."""
    note = prediction.quality.note()
    return f"microx: note: {video}: {note[0].lower()}{note[1:]}" if note else None


def row(video: str, p) -> tuple[str, ...]:
    top_region = max(p.region_contributions, key=p.region_contributions.get)
    # A model whose regions are gated off answers with its face network: no region decided anything.
    decided = PRIOR_NAME if p.decided_by_prior else f"{top_region} ({p.region_contributions[top_region]:.0%})"
    return (video, p.label, f"{p.scores[p.label]:.2f}", f"{p.face_fraction:.0%}",
            f"{int(p.window_has_face.sum())}/{len(p.window_starts)}", decided)  # fmt: skip


class TableWriter:
    """Rows printed as results arrive; the video column is as wide as the longest input path, known in advance."""

    HEADER = ("video", "emotion", "score", "face", "windows", "decided by")

    def __init__(self, videos: list[str], labels: Sequence[str]) -> None:
        self.widths = [max(len(self.HEADER[0]), *(len(v) for v in videos)),
                       max(len(self.HEADER[1]), *(len(label) for label in labels)), 5, 4, 7]  # fmt: skip
        self.started = False

    def line(self, row: tuple[str, ...]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row, self.widths, strict=False)] + list(
            row[len(self.widths) :]
        )
        return "  ".join(cells).rstrip()

    def write(self, row: tuple[str, ...], emit) -> None:
        if not self.started:
            emit(self.line(self.HEADER))
            emit("  ".join("-" * w for w in [*self.widths, len(self.HEADER[-1])]))
            self.started = True
        emit(self.line(row))


def write_timeline(path: Path, results: list[tuple[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = None
        for video, prediction in results:
            if writer is None:
                writer = csv.writer(f)
                writer.writerow(["video", "window", "start_s", "has_face", *prediction.labels,
                                 *(f"weight_{r}" for r in prediction.regions)])  # fmt: skip
            for w, start in enumerate(prediction.window_starts):
                has_face = bool(prediction.window_has_face[w])
                probs = [f"{p:.6f}" if has_face else "" for p in prediction.window_probs[w]]
                weights = [f"{x:.6f}" if has_face else "" for x in prediction.region_weights[w]]
                writer.writerow([video, w, f"{start:.4f}", int(has_face), *probs, *weights])
