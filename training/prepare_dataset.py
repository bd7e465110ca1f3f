"""Prepare a processed-clip dataset: run the feature extractor over every clip of a corpus, write a `DatasetDict`.

Rows are clips (not windows), in the schema of `training.schema` (per region a uint8 crop column of every frame, a
frame-major `region_mask`, `timestamps`, `label`, `subject`, `source`, ...). Windows are sampled at load time by
`training.data`, so no window of a clip can leak across splits. The preparation record (the feature-extractor
settings, the label scheme, the sources) goes into `info.description` and `microx_dataset.json`, so that training
restores the normalisation.

Resumable: each finished clip is checkpointed as one `.npz` in `<work_dir>/clips/`, each failure as one `.json` in
`<work_dir>/failed/`; a rerun with the same settings processes only what is missing. The dataset is then built
from the checkpoints in the sorted order of the clips' source paths, so the output does not depend on the number of
processes or on interruptions. Failed clips (file, reason) are listed in `<output_dir>/prepare_report.json`.

Several machines: `--num_shards N --shard_index i` prepares the clips of shard i only (a clip's shard is a hash of
its corpus and source path, so it never moves between runs; each shard resumes as above), and the `merge` step
concatenates the shard folders into the `DatasetDict` one machine would have written (same rows in the same order,
same features, the same preparation record), applying `--test_fraction` over all subjects::

    python -m training.prepare_dataset --source baum1s --root "/data/BAUM1" --output_dir data/baum1s \
        --label_scheme paper7 --num_proc 2 [--test_fraction 0.2] [--push_to_hub user/baum1s-microx [--public]]
    python -m training.prepare_dataset ... --output_dir shards/0 --num_shards 2 --shard_index 0   # machine 1
    python -m training.prepare_dataset ... --output_dir shards/1 --num_shards 2 --shard_index 1   # machine 2
    python -m training.prepare_dataset merge --shards shards/0 shards/1 --output_dir data/baum1s

Pushed datasets are private unless `--public` is given: they are derived from licensed corpora.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import HfArgumentParser

from microx_hf.errors import DatasetFormatError
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.landmarks import registered_backends

from .labels import get_scheme
from .prepare_clips import check_work_dir, clip_key, run_extractor, saved_settings, shard_of, teacher_records
from .prepare_output import (
    MergeArguments,
    PrepareResult,
    build_dataset,
    finish,
    merge_shards,
    save_dataset,
    save_shard,
)
from .schema import FORMAT_VERSION, REPORT_FILE
from .scripts import ArgumentsError, run_script
from .sources import SOURCE_NAMES, SourceListing, read_source

logger = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", *registered_backends())


@dataclass
class PrepareArguments:
    """Arguments of `prepare_dataset` (flags through HfArgumentParser, or made in code); checked when made."""

    source: list[str] = field(
        metadata={"help": f"Corpus reader(s): {', '.join(SOURCE_NAMES)}; several (e.g. baum1s baum1a) are merged."}
    )
    root: list[str] = field(
        metadata={"help": "Folder where each corpus was unpacked (or a CSV manifest for 'folder'); one per source."}
    )
    output_dir: str = field(metadata={"help": "Where to save the DatasetDict (save_to_disk)."})
    annotations: list[str] | None = field(
        default=None, metadata={"help": "Annotation spreadsheet/CSV or manifest per source ('-': find it)."}
    )
    label_scheme: str = field(
        default="paper7", metadata={"help": "'paper7', 'source', or a .json/.csv label mapping file."}
    )
    work_dir: str | None = field(
        default=None, metadata={"help": "Checkpoint folder (default: <output_dir>.work); reuse it to resume."}
    )
    num_proc: int = field(default=1, metadata={"help": "Processes running the extractor in parallel."})
    test_fraction: float = field(
        default=0.0, metadata={"help": "Share of subjects held out as a 'test' split (0: one 'train' split)."}
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the subject split."})
    feature_extractor: str | None = field(
        default=None, metadata={"help": "Folder or Hub id of saved extractor settings (preprocessor_config.json)."}
    )
    fps: float | None = field(default=None, metadata={"help": "Override: frame rate clips are resampled to."})
    num_frames: int | None = field(default=None, metadata={"help": "Override: frames per window."})
    crop_size: int | None = field(default=None, metadata={"help": "Override: crop side in pixels."})
    encoder_crop_size: int | None = field(
        default=None,
        metadata={"help": "Override: also store the face at this side for a model's pretrained frame encoder (112)."},
    )
    teachers: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated teachers (training.teachers: faceapi, human, fer, facex) whose per-frame logits "
            "are stored for distillation, computed on each teacher's own face crop from the full frame."
        },
    )
    regions: str | None = field(default=None, metadata={"help": "Override: comma-separated region names."})
    landmark_backend: str | None = field(
        default=None, metadata={"help": f"Override: the landmark backend, one of {', '.join(BACKEND_CHOICES)}."}
    )
    face_crops: bool = field(
        default=False,
        metadata={
            "help": "The clips are already cropped to one face (DFEW, AFEW, FERV39k): the frame is the face box and the "
            "landmarks are found inside it (microx_hf.extraction, face-crop mode); a clip that is not a face crop fails."
        },
    )
    max_clips: int | None = field(default=None, metadata={"help": "Use only the first N clips (a quick trial)."})
    retry_failed: bool = field(default=False, metadata={"help": "Process again the clips that failed before."})
    num_shards: int = field(
        default=1, metadata={"help": "Split the corpus into this many shards, one per machine (then `merge`)."}
    )
    shard_index: int = field(default=0, metadata={"help": "Which shard this run prepares (0-based)."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the dataset and its card to this repo."})
    public: bool = field(
        default=False, metadata={"help": "Make the pushed repo public (default private: the data is licensed)."}
    )
    stop_after: int | None = field(
        default=None, metadata={"help": "Testing: stop as if interrupted after N newly processed clips."}
    )

    def __post_init__(self) -> None:
        self.source = [self.source] if isinstance(self.source, str) else list(self.source)
        self.root = [self.root] if isinstance(self.root, str) else list(self.root)
        unknown = [name for name in self.source if name not in SOURCE_NAMES]
        if unknown:
            raise ArgumentsError(f"--source {unknown} is unknown; choose from {', '.join(SOURCE_NAMES)}")
        if len(set(self.source)) != len(self.source):
            raise ArgumentsError(f"--source lists a corpus twice: {self.source}")
        annotations = list(self.annotations or [])
        if len(self.root) not in (1, len(self.source)) or len(annotations) not in (0, len(self.source)):
            raise ArgumentsError(
                f"{len(self.source)} sources need {len(self.source)} --root values (or one for all) and as many "
                f"--annotations ('-' to find one); got {len(self.root)} roots and {len(annotations)} annotations."
            )
        if not 0.0 <= self.test_fraction < 1.0:
            raise ArgumentsError(
                f"--test_fraction {self.test_fraction}: use a value between 0 and 1 (0 for a single 'train' split)."
            )
        if self.num_proc < 1:
            raise ArgumentsError(f"--num_proc {self.num_proc}: use at least 1 process")
        if self.max_clips is not None and self.max_clips < 1:
            raise ArgumentsError(f"--max_clips {self.max_clips}: use at least 1 (or leave it out for all clips)")
        if self.landmark_backend is not None and self.landmark_backend not in BACKEND_CHOICES:
            raise ArgumentsError(
                f"--landmark_backend {self.landmark_backend!r} is unknown; choose one of {', '.join(BACKEND_CHOICES)}"
            )
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise ArgumentsError(
                f"--num_shards {self.num_shards} --shard_index {self.shard_index}: need num_shards >= 1 and "
                "0 <= shard_index < num_shards"
            )
        if self.teachers:
            from .teachers import teacher_names

            names = [n.strip() for n in self.teachers.split(",") if n.strip()]
            unknown = [n for n in names if n not in teacher_names()]
            if unknown or not names:
                raise ArgumentsError(f"--teachers {self.teachers!r}: choose from {', '.join(teacher_names())}")
        if self.num_shards > 1 and self.push_to_hub:
            raise ArgumentsError("--push_to_hub pushes a whole dataset: push the result of `merge`, not a shard")


# Feature extractor ---------------------------------------------------------------------------------------------


def build_extractor(args: PrepareArguments, extractor_class: type = MicroXFeatureExtractor):
    """The feature extractor: saved settings (if given) with the arguments' overrides."""
    overrides: dict[str, Any] = {}
    for key in ("fps", "num_frames", "crop_size", "encoder_crop_size", "landmark_backend"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.regions:
        overrides["regions"] = [r.strip() for r in args.regions.split(",") if r.strip()]
    if args.face_crops:
        overrides["face_crops"] = True
    if args.feature_extractor:
        return extractor_class.from_pretrained(args.feature_extractor, **overrides)
    return extractor_class(**overrides)


def teacher_list(args: PrepareArguments) -> list[str]:
    """The teachers `--teachers` names, in order."""
    return [n.strip() for n in (args.teachers or "").split(",") if n.strip()]


def read_sources(args: PrepareArguments) -> list[SourceListing]:
    """Read every `--source` with its `--root` (one root may serve all) and `--annotations` ('-' or absent: find)."""
    roots = args.root * len(args.source) if len(args.root) == 1 else args.root
    annotations = args.annotations or ["-"] * len(args.source)
    return [
        read_source(source, root, annotations=None if table in ("-", "") else table)
        for source, root, table in zip(args.source, roots, annotations, strict=True)
    ]


def run(args: PrepareArguments, extractor_class: type = MicroXFeatureExtractor) -> PrepareResult:
    """Run the whole preparation (see the module docstring), or one shard of it; returns what was done.

    Args:
        args: What to prepare and how.
        extractor_class: The feature extractor (a `MicroXFeatureExtractor` subclass, picklable for the workers).
    """
    output_dir = Path(args.output_dir)
    work = Path(args.work_dir) if args.work_dir else output_dir.with_name(output_dir.name + ".work")
    listings = read_sources(args)
    scheme = get_scheme(args.label_scheme, [listing.label_names for listing in listings])
    clips, dropped = scheme.apply([clip for listing in listings for clip in listing.clips])
    if args.max_clips is not None:
        clips = clips[: args.max_clips]
    if not clips:
        raise DatasetFormatError(
            f"No clips left to prepare from {args.root}: the readers found "
            f"{sum(len(listing.clips) for listing in listings)} (skipped "
            f"{[dict(listing.skipped) for listing in listings]}) and the label scheme dropped {dict(dropped)}."
        )
    keys = [clip_key(c) for c in clips]
    if len(set(keys)) != len(keys):
        raise DatasetFormatError("Two clips share a source path; every clip needs a distinct file.")
    # Positions in the whole corpus of the clips this run prepares (all of them on one machine).
    mine = [i for i, clip in enumerate(clips) if shard_of(clip, args.num_shards) == args.shard_index]

    extractor = build_extractor(args, extractor_class)
    settings = saved_settings(extractor)
    check_work_dir(work, settings, teacher_list(args))
    if args.retry_failed:
        for i in mine:
            (work / "failed" / f"{keys[i]}.json").unlink(missing_ok=True)
    todo = [
        (keys[i], clips[i].path, clips[i].source, str(work))
        for i in mine
        if not (work / "clips" / f"{keys[i]}.npz").exists() and not (work / "failed" / f"{keys[i]}.json").exists()
    ]
    reused = len(mine) - len(todo)
    logger.info("%d clips: %d to process, %d already done", len(mine), len(todo), reused)
    processed, extract_seconds = run_extractor(
        todo, args.num_proc, extractor_class, settings, teacher_list(args), args.stop_after
    )

    failed, items, positions, failed_positions = [], [], [], []
    for i in mine:
        npz, fail = work / "clips" / f"{keys[i]}.npz", work / "failed" / f"{keys[i]}.json"
        if npz.exists():
            clip = clips[i]
            items.append((str(npz), clip.subject, clip.source, clip.corpus, clip.label, scheme.label_id(clip.label)))
            positions.append(i)
        elif fail.exists():
            failed.append(json.loads(fail.read_text()))
            failed_positions.append(i)
    if not items and args.num_shards == 1:
        raise DatasetFormatError(f"Every clip failed preprocessing; see the reasons in {work / 'failed'}.")

    regions = list(settings.get("regions") or extractor.regions)
    backend_used = None
    if items:
        with np.load(items[0][0]) as first:
            backend_used = json.loads(str(first["meta"]))["landmark_backend"]
    description = {
        "microx_dataset": FORMAT_VERSION,
        "feature_extractor": {**settings, "landmark_backend_used": backend_used},
        "label_scheme": scheme.to_dict(),
        "sources": [
            {
                "corpus": listing.corpus,
                "clips": sum(c.corpus == listing.corpus for c in clips),
                "skipped": dict(listing.skipped),
            }
            for listing in listings
        ],
        "dropped_labels": dict(dropped),
        "failed": len(failed),
        **({"teachers": teacher_records(teacher_list(args))} if args.teachers else {}),
    }
    report = {
        "source": list(args.source),
        "root": list(args.root),
        "clips": len(mine),
        "prepared": len(items),
        "processed_now": processed,
        "reused": reused,
        "failed": failed,
        "skipped_by_reader": {listing.corpus: dict(listing.skipped) for listing in listings},
        "reader_problems": [problem for listing in listings for problem in listing.problems],
        "dropped_labels": dict(dropped),
        "label_scheme": scheme.to_dict(),
        "work_dir": str(work),
    }
    with tempfile.TemporaryDirectory(prefix="microx-prepare-") as cache:
        full = build_dataset(items, regions, scheme.class_label(), settings, cache) if items else None
        if args.num_shards > 1:
            shard = {
                "format_version": FORMAT_VERSION,
                "num_shards": args.num_shards,
                "shard_index": args.shard_index,
                "num_clips": len(clips),
                "positions": positions,
                "failed_positions": failed_positions,
                "test_fraction": args.test_fraction,
                "split_seed": args.split_seed,
                "description": description,
                "report": report,
            }
            return save_shard(full, shard, output_dir, processed, reused, extract_seconds)
        save_dataset(full, description, args.test_fraction, args.split_seed, output_dir)
    dataset = finish(output_dir, report, description, args.push_to_hub, args.public)
    return PrepareResult(dataset, output_dir, processed, reused, failed, output_dir / REPORT_FILE, extract_seconds)


def main(argv: list[str] | None = None) -> PrepareResult:
    """Command-line entry point (`merge` as the first argument merges shards); `argv` for tests."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        (merge_args,) = HfArgumentParser(MergeArguments).parse_args_into_dataclasses(args=argv[1:])
        result = merge_shards(merge_args)
    else:
        (args,) = HfArgumentParser(PrepareArguments).parse_args_into_dataclasses(args=argv)
        result = run(args)
    counts = {split: ds.num_rows for split, ds in result.dataset.items()}
    logger.info(
        "saved %s to %s (%d failed; report %s)", counts, result.output_dir, len(result.failed), result.report_path
    )
    return result


if __name__ == "__main__":
    run_script(main, interrupted="interrupted: finished clips are checkpointed; run the same command again to resume")
