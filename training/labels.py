"""Label schemes: map each source's own labels onto the classes a model is trained on.

- `paper7`: the MicroX paper's 7 classes (BAUM-2 style): neutral, anger, contempt, surprise, fear, happy, sad.
  Disgust is merged into contempt, as the paper did; states with no counterpart (boredom, thinking, calm, ...)
  are dropped and counted.
- `source`: each corpus's own label set, in its documented order (several corpora: the union, in order of first
  appearance).
- a mapping file: JSON (`{"from": "to", ...}`) or CSV (`from,to` rows, header optional); an empty or null target
  drops the label. Class order is the order targets first appear in the file. Labels the file does not name are
  dropped and counted.

Every scheme keeps clips labelled `UNLABELLED` ("unlabelled"): real face video without an emotion label, which a
model learns from through its teachers only (distillation); their `label` is -1 in the dataset, `datasets`' mark of a
missing label.

The result is a `datasets.ClassLabel`, so `id2label` goes into the dataset's features and from there into the
model config.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from datasets import ClassLabel

from microx_hf.errors import DatasetFormatError

from .sources import SourceClip

logger = logging.getLogger(__name__)

PAPER7 = ("neutral", "anger", "contempt", "surprise", "fear", "happy", "sad")
# The source label of a clip without an emotion label (a manifest row or a folder of that name); its id is -1.
UNLABELLED = "unlabelled"

# Source names (BAUM-1s/1a, BAUM-2, RAVDESS, common folder spellings) -> paper7. Everything else is dropped.
_TO_PAPER7 = {
    "neutral": "neutral",
    "anger": "anger",
    "angry": "anger",
    "contempt": "contempt",
    "disgust": "contempt",
    "disgusted": "contempt",
    "surprise": "surprise",
    "surprised": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "happy": "happy",
    "joy": "happy",
    "sadness": "sad",
    "sad": "sad",
}


@dataclass
class LabelScheme:
    """A mapping from source labels to class names.

    Attributes:
        name: "paper7", "source", or the mapping file's path.
        names: Class names in id order.
        mapping: Source label (lower-case) -> class name; labels absent from it are dropped.
    """

    name: str
    names: list[str]
    mapping: dict[str, str] = field(default_factory=dict)

    def map(self, label: str) -> str | None:
        """The class for a source label (`UNLABELLED` for an unlabelled clip), or None when the scheme drops it."""
        key = label.strip().lower()
        return UNLABELLED if key == UNLABELLED else self.mapping.get(key)

    def label_id(self, name: str) -> int:
        """The class index of a mapped label; -1 for `UNLABELLED`."""
        return -1 if name == UNLABELLED else self.names.index(name)

    def class_label(self) -> ClassLabel:
        """The `datasets.ClassLabel` feature with this scheme's names."""
        return ClassLabel(names=list(self.names))

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def apply(self, clips: Iterable[SourceClip]) -> tuple[list[SourceClip], Counter]:
        """Map every clip's label; return the kept clips (label = class name, the source's label in
        `meta["source_label"]`) and a count of dropped source labels."""
        kept, dropped = [], Counter()
        for clip in clips:
            target = self.map(clip.label)
            if target is None:
                dropped[f"{clip.corpus}:{clip.label}"] += 1
                continue
            kept.append(replace(clip, label=target, meta={**clip.meta, "source_label": clip.label}))
        if dropped:
            logger.warning("label scheme %s dropped %d clips: %s", self.name, sum(dropped.values()), dict(dropped))
        return kept, dropped

    def to_dict(self) -> dict:
        return {"name": self.name, "names": list(self.names), "mapping": dict(self.mapping)}


def paper7_scheme() -> LabelScheme:
    """The paper's 7 classes; disgust -> contempt."""
    return LabelScheme("paper7", list(PAPER7), dict(_TO_PAPER7))


def source_scheme(label_sets: Sequence[Sequence[str]]) -> LabelScheme:
    """Each source's own labels, unchanged; several sets are merged in order of first appearance."""
    names = list(
        dict.fromkeys(label.lower() for labels in label_sets for label in labels if label.lower() != UNLABELLED)
    )
    return LabelScheme("source", names, {n: n for n in names})


def mapping_scheme(path: str | Path) -> LabelScheme:
    """A user mapping file (JSON object or CSV `from,to`); see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"Label mapping file {path} does not exist.")
    pairs: list[tuple[str, str | None]]
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f'{path} is not valid JSON ({exc}); write {{"source label": "class"}}.') from exc
        if not isinstance(data, dict):
            raise DatasetFormatError(f'{path} must hold one JSON object {{"source label": "class" or null}}.')
        pairs = [(str(k), None if v in (None, "") else str(v)) for k, v in data.items()]
    elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [r for r in csv.reader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",") if r]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["from", "to"]:
            rows = rows[1:]
        bad = [r for r in rows if len(r) < 1 or len(r) > 2]
        if bad:
            raise DatasetFormatError(
                f"{path}: every row must be 'from,to' (empty 'to' drops the label); bad rows: {bad[:3]}"
            )
        pairs = [(r[0].strip(), (r[1].strip() or None) if len(r) > 1 else None) for r in rows]
    else:
        raise DatasetFormatError(f"Label mapping {path}: use a .json object or a .csv with from,to rows.")
    mapping = {}
    for source, target in pairs:
        key = source.lower()
        if key in mapping and mapping[key] != target:
            raise DatasetFormatError(f"{path}: {source!r} is mapped twice ({mapping[key]!r} and {target!r}).")
        mapping[key] = target
    names = list(dict.fromkeys(t for t in mapping.values() if t is not None))
    if not names:
        raise DatasetFormatError(f"{path} maps every label to nothing: give at least one target class.")
    return LabelScheme(str(path), names, {k: v for k, v in mapping.items() if v is not None})


def get_scheme(name: str, label_sets: Sequence[Sequence[str]] = ()) -> LabelScheme:
    """`"paper7"`, `"source"` (needs the sources' `label_sets`) or the path of a mapping file."""
    if name == "paper7":
        return paper7_scheme()
    if name == "source":
        return source_scheme(label_sets)
    if Path(name).suffix.lower() in (".json", ".csv", ".tsv", ".txt"):
        return mapping_scheme(name)
    raise ValueError(
        f"Unknown label scheme {name!r}: use 'paper7', 'source', or the path of a .json/.csv mapping file."
    )
