"""The processed-clip dataset's schema: its columns, its window rows and its preparation record, defined once.

`training.prepare_dataset` writes datasets of this schema, `training.data` reads them, the tests and benchmarks
build small ones with `clip_features`. Rows are clips, not windows, so no window of a clip can leak across splits:

- one column per region, named like the region (`face`, `left_eye`, ...): uint8 `Array4D((None, C, S, S))`, every
  frame's crop, channels first (stored at about 1.06x raw and read fast, docs/MEASUREMENTS.md);
- `region_mask`: `Array2D((None, R), "bool")`, frame-major (N, R), False where a region was not found;
- `timestamps`: `Sequence(float32)` seconds; `label`: `ClassLabel`; `subject`, `source` (path relative to the
  corpus root), `corpus`, `landmark_backend`: strings; `num_frames`: int32;
- optional per-frame columns (`per_frame=`): `encoder_crops`, the face at a pretrained frame encoder's own input
  size (uint8 `Array4D((None, C, E, E))`), and a teacher's logits `teacher_logits_<name>`:
  `Array2D((None, K), "float32")` (`teacher_logits=`); every per-frame column is frame-major with a variable first
  dimension, so a window is a contiguous slice of each.

The window rows of `training.data.expand_windows` (`window_features`) keep the per-frame columns with a fixed first
dimension T, plus `clip_id`, `start`, `start_time`.

The preparation record (feature-extractor settings, label scheme, sources, failures) is JSON in every split's
`info.description` and in `RECORD_FILE` beside the data; `push_to_hub` drops `info.description`, so the file is what
travels with a Hub dataset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Array2D, Array3D, Array4D, Array5D, ClassLabel, Dataset, DatasetDict, Features, Value
from datasets import Sequence as SequenceFeature

from microx_hf.errors import DatasetFormatError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
RECORD_FILE = "microx_dataset.json"  # the preparation record, beside the data (folder and Hub repo)
REPORT_FILE = "prepare_report.json"  # what a preparation run did: failures, skips, counts
TEACHER_PREFIX = "teacher_logits_"
# The face at the pretrained frame encoder's own input size: uint8 Array4D((None, C, E, E)), frame-major.
ENCODER_COLUMN = "encoder_crops"
# Columns every processed-clip dataset needs to be trained on.
REQUIRED_COLUMNS = ("label", "subject", "region_mask")

_ARRAYS = (Array2D, Array3D, Array4D, Array5D)


def teacher_column(name: str) -> str:
    """The column holding teacher `name`'s per-frame logits."""
    return f"{TEACHER_PREFIX}{name}"


def clip_features(
    regions: Sequence[str],
    crop_size: int,
    labels: ClassLabel | Sequence[str],
    channels: int = 3,
    per_frame: Mapping[str, Any] | None = None,
    teacher_logits: Mapping[str, int] | None = None,
) -> Features:
    """The features of a processed-clip dataset.

    Args:
        regions: Region names, in the extractor's order; each becomes a crop column.
        crop_size: Crop side S in pixels.
        labels: The `ClassLabel`, or its names in id order.
        channels: Colour channels C of the crops.
        per_frame: Extra frame-major columns: name -> an `Array2D`..`Array5D` whose first dimension is None.
        teacher_logits: Teacher name -> number of classes K; adds `teacher_column(name)`:
            `Array2D((None, K), "float32")`.

    Raises:
        ValueError: An extra column clashes with a standard one or is not frame-major.
    """
    regions = list(regions)
    label = labels if isinstance(labels, ClassLabel) else ClassLabel(names=list(labels))
    features = {
        **{region: Array4D((None, channels, crop_size, crop_size), "uint8") for region in regions},
        "region_mask": Array2D((None, len(regions)), "bool"),
        "timestamps": SequenceFeature(Value("float32")),
        "label": label,
        "subject": Value("string"),
        "source": Value("string"),
        "corpus": Value("string"),
        "landmark_backend": Value("string"),
        "num_frames": Value("int32"),
    }
    extra = dict(per_frame or {})
    for name, classes in (teacher_logits or {}).items():
        extra[teacher_column(name)] = Array2D((None, int(classes)), "float32")
    for name, feature in extra.items():
        if name in features:
            raise ValueError(f"per-frame column {name!r} clashes with a standard column of the schema")
        if not (isinstance(feature, _ARRAYS) and feature.shape[0] is None):
            raise ValueError(f"per-frame column {name!r} must be an Array2D..Array5D with first dimension None")
        features[name] = feature
    return Features(features)


def per_frame_columns(features: Features) -> list[str]:
    """The frame-major array columns (crops, `region_mask`, extras such as teacher logits), in feature order."""
    return [name for name, f in features.items() if isinstance(f, _ARRAYS) and f.shape[0] is None]


def extra_frame_columns(features: Features) -> list[str]:
    """The per-frame columns that are neither region crops (uint8 `Array4D`) nor `region_mask`: teacher logits..."""
    return [
        name
        for name in per_frame_columns(features)
        if name != "region_mask"
        and (name == ENCODER_COLUMN or not (isinstance(features[name], Array4D) and features[name].dtype == "uint8"))
    ]


def window_features(clip_features: Features, num_frames: int, regions: Sequence[str]) -> Features:
    """The features of the window rows cut from clips with `clip_features` (`training.data.expand_windows`).

    Args:
        clip_features: The clips' features.
        num_frames: Frames per window T: the first dimension of every per-frame column.
        regions: The region columns to keep, in this order; the extra per-frame columns are always kept.
    """

    def fixed(feature: Any) -> Any:
        return type(feature)((num_frames, *feature.shape[1:]), feature.dtype)

    columns = [*regions, "region_mask", *extra_frame_columns(clip_features)]
    out: dict[str, Any] = {name: fixed(clip_features[name]) for name in columns}
    out.update(
        label=clip_features["label"],
        subject=Value("string"),
        source=Value("string"),
        clip_id=Value("int32"),
        start=Value("int32"),
        start_time=Value("float32"),
        num_frames=Value("int32"),
    )
    return Features(out)


def preparation_record(dataset: Dataset) -> dict[str, Any]:
    """The preparation record stored in `dataset.info.description` (feature-extractor settings, label scheme...).

    Returns an empty dict (and logs a warning) for a dataset that was not made by `training.prepare_dataset`.
    """
    try:
        record = json.loads(dataset.info.description or "")
    except (json.JSONDecodeError, TypeError):
        logger.warning("dataset has no MicroX preparation record in info.description; using defaults")
        return {}
    return record if isinstance(record, dict) else {}


def prepared_extractor_settings(dataset: Dataset) -> dict[str, Any]:
    """The feature-extractor settings the dataset was prepared with (from its preparation record), or {}."""
    settings = preparation_record(dataset).get("feature_extractor", {})
    return settings if isinstance(settings, dict) else {}


def region_columns(dataset: Dataset) -> list[str]:
    """The region columns of a processed-clip dataset, in the order the extractor wrote them."""
    regions = prepared_extractor_settings(dataset).get("regions")
    if regions:
        return list(regions)
    return [
        name for name, feature in dataset.features.items() if isinstance(feature, Array4D) and name != ENCODER_COLUMN
    ]


def check_clips(dataset: DatasetDict, name: str = "the dataset") -> DatasetDict:
    """Raise `DatasetFormatError` unless every split has the columns training needs and a `ClassLabel` label."""
    for split_name, split in dataset.items():
        for column in REQUIRED_COLUMNS:
            if column not in split.column_names:
                raise DatasetFormatError(
                    f"{name} has no {column!r} column in split {split_name!r} (columns: {split.column_names}); "
                    "prepare it with `python -m training.prepare_dataset`"
                )
        if not isinstance(split.features["label"], ClassLabel):
            raise DatasetFormatError(
                f"the 'label' column of {name} must be a ClassLabel; prepare the dataset with prepare_dataset"
            )
    return dataset
