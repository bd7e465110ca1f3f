"""The output of `training.prepare_dataset`: clip checkpoints -> a `DatasetDict` in the schema of `training.schema`,
split by subject, saved with its preparation record; the shards of a several-machine run and their `merge`; the
push to the Hub (private unless asked otherwise: the data is derived from licensed corpora).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Array4D, ClassLabel, Dataset, DatasetDict, concatenate_datasets, load_from_disk

from microx_hf.errors import DatasetFormatError

from .schema import ENCODER_COLUMN, RECORD_FILE, REPORT_FILE, clip_features, teacher_column
from .scripts import ArgumentsError

logger = logging.getLogger(__name__)

SHARD_FILE = "microx_shard.json"  # beside one shard's data: which clips it holds, for `merge`


@dataclass
class MergeArguments:
    """Arguments of `prepare_dataset merge`: the shard folders of one corpus, in any order."""

    shards: list[str] = field(metadata={"help": "The output folders of every shard's prepare_dataset run."})
    output_dir: str = field(metadata={"help": "Where to save the merged DatasetDict."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the dataset and its card to this repo."})
    public: bool = field(
        default=False, metadata={"help": "Make the pushed repo public (default private: the data is licensed)."}
    )

    def __post_init__(self) -> None:
        self.shards = [self.shards] if isinstance(self.shards, str) else list(self.shards)
        if not self.shards:
            raise ArgumentsError("give the shard folders to merge: --shards DIR [DIR ...]")


@dataclass
class PrepareResult:
    """What `run` (or `merge_shards`) did."""

    dataset: DatasetDict
    output_dir: Path
    processed: int  # clips run through the extractor in this call
    reused: int  # clips taken from checkpoints of an earlier call
    failed: list[dict[str, str]]
    report_path: Path
    extract_seconds: float = 0.0  # worker time spent on the clips processed in this call (start-up excluded)


def _rows(items: list[tuple[str, str, str, str, str, int]], regions: list[str], fingerprint: str):
    """Yield dataset rows from checkpoints. `fingerprint` only keys the generator cache."""
    del fingerprint
    for npz_path, subject, source, corpus, _label_name, label_id in items:
        with np.load(npz_path) as data:
            crops, mask, timestamps = data["crops"], data["mask"], data["timestamps"]
            meta = json.loads(str(data["meta"]))
            extra = {name: data[name] for name in data.files if name.startswith("teacher_") or name == "encoder_crops"}
        if tuple(meta["regions"]) != tuple(regions):
            raise DatasetFormatError(
                f"{npz_path}: regions {meta['regions']} differ from {regions}; delete the work folder."
            )
        row = {region: crops[r] for r, region in enumerate(regions)}  # each (N, C, S, S)
        for name, values in extra.items():
            column = teacher_column(name.removeprefix("teacher_")) if name.startswith("teacher_") else ENCODER_COLUMN
            row[column] = values
        row.update(
            region_mask=mask.T,  # (N, R): frame-major, so a window is a contiguous slice
            timestamps=timestamps,
            label=label_id,
            subject=subject,
            source=source,
            corpus=corpus,
            landmark_backend=meta["landmark_backend"],
            num_frames=int(crops.shape[1]),
        )
        yield row


def _subject_split(subjects: list[str], fraction: float, seed: int) -> set[str]:
    unique = sorted(set(subjects))
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction={fraction}: use a value between 0 and 1 (0 for a single 'train' split).")
    if len(unique) < 2:
        raise DatasetFormatError(f"Cannot split by subject: only {len(unique)} subject(s) in the data.")
    random.Random(seed).shuffle(unique)
    n_test = min(max(1, math.ceil(fraction * len(unique))), len(unique) - 1)
    return set(unique[:n_test])


def build_dataset(
    items: list[tuple[str, str, str, str, str, int]],
    regions: list[str],
    labels: ClassLabel,
    settings: dict[str, Any],
    cache: str,
) -> Dataset:
    """The clips' `Dataset`, built from their checkpoints in the order of `items` (cached under `cache`)."""
    with np.load(items[0][0]) as first:
        channels, crop_size = int(first["crops"].shape[2]), int(first["crops"].shape[3])
        teachers = {n.removeprefix("teacher_"): int(first[n].shape[1]) for n in first.files if n.startswith("teacher_")}
        per_frame = {}
        if "encoder_crops" in first.files:
            per_frame[ENCODER_COLUMN] = Array4D((None, *first["encoder_crops"].shape[1:]), "uint8")
    fingerprint = hashlib.sha1(
        json.dumps([(i[0], os.path.getsize(i[0]), i[5]) for i in items] + [settings, labels.names]).encode()
    ).hexdigest()
    return Dataset.from_generator(
        _rows,
        features=clip_features(regions, crop_size, labels, channels, per_frame, teachers),
        cache_dir=cache,
        gen_kwargs={"items": items, "regions": tuple(regions), "fingerprint": fingerprint},
    )


def check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and any(output_dir.iterdir()) and not (output_dir / "dataset_dict.json").exists():
        raise DatasetFormatError(f"{output_dir} exists and is not a dataset folder: choose an empty --output_dir.")


def save_dataset(full: Dataset, description: dict[str, Any], test_fraction: float, seed: int, output_dir: Path) -> None:
    """Split by subject (when asked), record the preparation in every split, save the folder and its record file."""
    if test_fraction > 0:
        test_subjects = _subject_split(full["subject"], test_fraction, seed)
        is_test = [s in test_subjects for s in full["subject"]]
        dataset = DatasetDict(
            train=full.select([i for i, t in enumerate(is_test) if not t]),
            test=full.select([i for i, t in enumerate(is_test) if t]),
        )
    else:
        dataset = DatasetDict(train=full)
    for split in dataset.values():
        split.info.description = json.dumps(description, sort_keys=True)
    check_output_dir(output_dir)
    dataset.save_to_disk(str(output_dir))
    (output_dir / RECORD_FILE).write_text(json.dumps(description, indent=2, sort_keys=True))


def finish(output_dir: Path, report: dict[str, Any], description: dict[str, Any], push_to_hub, public) -> DatasetDict:
    """Write the report, reload the saved dataset and push it when asked."""
    report_path = output_dir / REPORT_FILE
    report_path.write_text(json.dumps(report, indent=2))
    if report["failed"]:
        logger.warning("%d clips failed and were left out; see %s", len(report["failed"]), report_path)
    dataset = load_from_disk(str(output_dir))
    if push_to_hub:
        push_dataset(dataset, push_to_hub, description, private=not public)
    return dataset


def save_shard(
    full: Dataset | None, shard: dict[str, Any], output_dir: Path, processed: int, reused: int, seconds: float
) -> PrepareResult:
    """Save one shard's clips (no subject split: `merge` splits over all subjects) with its `SHARD_FILE`."""
    check_output_dir(output_dir)
    dataset = DatasetDict()
    if full is not None:
        full.info.description = json.dumps(shard["description"], sort_keys=True)
        DatasetDict(train=full).save_to_disk(str(output_dir))
        dataset = load_from_disk(str(output_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / SHARD_FILE).write_text(json.dumps(shard, indent=2, sort_keys=True))
    report_path = output_dir / REPORT_FILE
    report_path.write_text(json.dumps(shard["report"], indent=2))
    logger.info(
        "shard %d of %d: %d clips saved to %s; merge the shards with `python -m training.prepare_dataset merge`",
        shard["shard_index"] + 1,
        shard["num_shards"],
        len(shard["positions"]),
        output_dir,
    )
    return PrepareResult(dataset, output_dir, processed, reused, shard["report"]["failed"], report_path, seconds)


def _read_shard(folder: Path) -> dict[str, Any]:
    path = folder / SHARD_FILE
    if not path.is_file():
        raise DatasetFormatError(
            f"{folder} is not a shard folder (no {SHARD_FILE}): give the --output_dir of each "
            "`prepare_dataset --num_shards N --shard_index i` run"
        )
    return json.loads(path.read_text())


def _comparable(shard: dict[str, Any]) -> str:
    """What every shard of one corpus must share: the record without its own counts, and the split settings."""
    description = {**shard["description"], "failed": None}
    description["feature_extractor"] = {**description["feature_extractor"], "landmark_backend_used": None}
    same = {key: shard[key] for key in ("format_version", "num_shards", "num_clips", "test_fraction", "split_seed")}
    return json.dumps({**same, "description": description}, sort_keys=True)


def merge_shards(args: MergeArguments) -> PrepareResult:
    """Concatenate the shard folders into the dataset one machine would have written, and save it.

    Raises:
        DatasetFormatError: A shard is missing or repeated, or the shards were prepared differently.
    """
    folders = [Path(folder) for folder in args.shards]
    shards = [_read_shard(folder) for folder in folders]
    num_shards = shards[0]["num_shards"]
    indices = sorted(shard["shard_index"] for shard in shards)
    if indices != list(range(num_shards)):
        missing = sorted(set(range(num_shards)) - set(indices))
        raise DatasetFormatError(
            f"merging needs each of the {num_shards} shards once; got shard indices {indices}"
            + (f" (missing {missing})" if missing else "")
        )
    if len({_comparable(shard) for shard in shards}) > 1:
        raise DatasetFormatError(
            "the shards were prepared with different sources, settings, labels or split arguments; prepare every "
            "shard with the same command line but --shard_index"
        )
    backends = {shard["description"]["feature_extractor"]["landmark_backend_used"] for shard in shards}
    backends.discard(None)
    if len(backends) > 1:
        raise DatasetFormatError(
            f"the shards used different landmark backends {sorted(backends)}; pass the same --landmark_backend "
            "to every shard"
        )
    filled = [(folder, shard) for folder, shard in zip(folders, shards, strict=True) if shard["positions"]]
    if not filled:
        raise DatasetFormatError("Every clip of every shard failed preprocessing; see the shards' prepare_report.json.")
    positions = [p for _, shard in filled for p in shard["positions"]]
    order = np.argsort(positions, kind="stable")
    full = concatenate_datasets([load_from_disk(str(folder))["train"] for folder, _ in filled]).select(order)

    first = shards[0]
    failures = sorted(
        (p, failure)
        for shard in shards
        for p, failure in zip(shard["failed_positions"], shard["report"]["failed"], strict=True)
    )
    failed = [failure for _, failure in failures]
    description = {
        **first["description"],
        "feature_extractor": {**first["description"]["feature_extractor"], "landmark_backend_used": backends.pop()},
        "failed": len(failed),
    }
    output_dir = Path(args.output_dir)
    save_dataset(full, description, first["test_fraction"], first["split_seed"], output_dir)
    reports = [shard["report"] for shard in shards]
    report = {
        **first["report"],
        "clips": first["num_clips"],
        "prepared": len(full),
        "processed_now": sum(r["processed_now"] for r in reports),
        "reused": sum(r["reused"] for r in reports),
        "failed": failed,
        "work_dir": [r["work_dir"] for r in reports],
        "shards": [str(folder) for folder in folders],
    }
    dataset = finish(output_dir, report, description, args.push_to_hub, args.public)
    logger.info("merged %d shards (%d clips) into %s", num_shards, len(full), output_dir)
    return PrepareResult(dataset, output_dir, 0, report["reused"], failed, output_dir / REPORT_FILE)


def push_dataset(dataset: DatasetDict, repo_id: str, description: dict[str, Any], private: bool = True) -> None:
    """Push the dataset, its record file and its card (see `training.dataset_card`), privately unless told otherwise.

    Raises:
        ArgumentsError: `private` and the repo already exists as a public one (pushing would publish the data).
    """
    from huggingface_hub import HfApi

    from .dataset_card import dataset_card_text, push_dataset_card

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if private and not api.repo_info(repo_id, repo_type="dataset").private:
        raise ArgumentsError(
            f"the dataset repo {repo_id} exists and is public, and this data is derived from licensed corpora: "
            "make the repo private first, or pass --public if its licence allows publishing it"
        )
    dataset.push_to_hub(repo_id, private=private)
    api.upload_file(
        path_or_fileobj=json.dumps(description, indent=2, sort_keys=True).encode(),
        path_in_repo=RECORD_FILE,
        repo_id=repo_id,
        repo_type="dataset",
        commit_message="Add the MicroX preprocessing settings",
    )
    push_dataset_card(repo_id, dataset_card_text(dataset, description, pretty_name=repo_id.split("/")[-1]))
