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

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Array4D, ClassLabel, Dataset, DatasetDict, concatenate_datasets, load_from_disk
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from microx_hf.errors import BackendUnavailableError, DatasetFormatError, NoFaceDetectedError
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.landmarks import registered_backends

from .labels import get_scheme
from .schema import ENCODER_COLUMN, FORMAT_VERSION, RECORD_FILE, REPORT_FILE, clip_features, teacher_column
from .scripts import ArgumentsError, run_script
from .sources import SOURCE_NAMES, SourceClip, SourceListing, read_source

logger = logging.getLogger(__name__)

SHARD_FILE = "microx_shard.json"  # beside one shard's data: which clips it holds, for `merge`
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


# Feature extractor ---------------------------------------------------------------------------------------------


def build_extractor(args: PrepareArguments, extractor_class: type = MicroXFeatureExtractor):
    """The feature extractor: saved settings (if given) with the arguments' overrides."""
    overrides: dict[str, Any] = {}
    for key in ("fps", "num_frames", "crop_size", "encoder_crop_size", "landmark_backend"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.regions:
        overrides["regions"] = [r.strip() for r in args.regions.split(",") if r.strip()]
    if args.feature_extractor:
        return extractor_class.from_pretrained(args.feature_extractor, **overrides)
    return extractor_class(**overrides)


def saved_settings(extractor) -> dict[str, Any]:
    """The extractor's saved settings (what `save_pretrained` writes), JSON-safe."""
    settings = json.loads(extractor.to_json_string())
    return {k: v for k, v in settings.items() if k not in ("processor_class",)}


_WORKER: dict[str, Any] = {}


def teacher_records(names: list[str]) -> list[dict[str, Any]]:
    """What the preparation record says of each teacher: its classes (the logits' order), source and licence."""
    from .teachers import get_teacher

    out = []
    for name in names:
        spec = get_teacher(name)
        out.append({"name": name, "classes": list(spec.classes), "source": spec.source, "licence": spec.licence,
                    "training_data": spec.training_data})  # fmt: skip
    return out


def teacher_list(args: PrepareArguments) -> list[str]:
    """The teachers `--teachers` names, in order."""
    return [n.strip() for n in (args.teachers or "").split(",") if n.strip()]


def _init_worker(extractor_class: type, settings: dict[str, Any], teachers: tuple[str, ...] = ()) -> None:
    # OpenCV's own thread pool deadlocks or oversubscribes beside process-level parallelism (docs/MEASUREMENTS.md).
    import cv2

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER["extractor"] = extractor_class.from_dict(dict(settings))
    _WORKER["teachers"] = None
    if teachers:
        from .teachers.ensemble import Teachers

        _WORKER["teachers"] = Teachers(list(teachers), labels=[])


def extract_with_teachers(extractor, path: str, teachers=None, chunk: int = 32) -> dict[str, Any]:
    """Run the extractor on one clip; with `teachers`, also each teacher's logits for every frame with a face
    (NaN rows without one), on its own face crop cut from the full frame. Frames are kept only `chunk` at a time.

    Returns:
        crops (R, N, C, S, S) uint8, mask (R, N), timestamps (N,), the clip's regions/backend/fps/padded,
        encoder_crops (N, C, E, E) uint8 or None, and teacher_<name> (N, K) float32 per teacher.
    """
    from microx_hf.windows import is_padded

    crops, masks, stamps, encoder = [], [], [], []
    logits: dict[str, list[np.ndarray]] = {name: [] for name in (teachers.names if teachers else [])}
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (frame index, frame, points) awaiting the teachers

    def run_teachers() -> None:
        if not pending:
            return
        out = teachers.logits([f for _, f, _ in pending], [p for _, _, p in pending])
        for name, values in out.items():
            for (index, _, _), row in zip(pending, values, strict=True):
                logits[name][index] = row.astype(np.float32)
        pending.clear()

    for frame in extractor.iter_crops(path):
        crops.append(frame.crops)
        masks.append(frame.mask)
        stamps.append(frame.timestamp)
        if frame.encoder_crop is not None:
            encoder.append(frame.encoder_crop)
        if teachers is not None:
            for spec in teachers.specs:
                logits[spec.name].append(np.full(len(spec.classes), np.nan, np.float32))
            if frame.points is not None:
                pending.append((len(stamps) - 1, frame.frame, frame.points))
                if len(pending) >= chunk:
                    run_teachers()
    if teachers is not None:
        run_teachers()
    return {
        "crops": np.stack(crops, axis=1),
        "mask": np.stack(masks, axis=1),
        "timestamps": np.asarray(stamps, np.float32),
        "regions": list(extractor.regions),
        "landmark_backend": extractor.get_backend().name,
        "fps": float(extractor.fps),
        "padded": is_padded(len(stamps), extractor.num_frames),
        "encoder_crops": np.stack(encoder) if encoder else None,
        **{f"teacher_{name}": np.stack(rows) for name, rows in logits.items()},
    }


def _clip_digest(clip: SourceClip) -> str:
    """A stable hash of the clip's identity (corpus and path relative to the corpus root), hex."""
    return hashlib.sha1(f"{clip.corpus}\0{clip.source}".encode()).hexdigest()


def _clip_key(clip: SourceClip) -> str:
    stem = "".join(ch if ch.isalnum() else "_" for ch in Path(clip.source).stem)[:40]
    return f"{stem}-{_clip_digest(clip)[:16]}"


def shard_of(clip: SourceClip, num_shards: int) -> int:
    """The shard a clip belongs to: its digest modulo `num_shards`, the same on every machine and every run."""
    return int(_clip_digest(clip)[:16], 16) % num_shards


def _process_clip(task: tuple[str, str, str, str]) -> dict[str, Any]:
    """Run the extractor on one clip and checkpoint it. Never raises for a bad clip: the failure is recorded."""
    key, path, source, work_dir = task
    work = Path(work_dir)
    start = time.perf_counter()
    try:
        clip = extract_with_teachers(_WORKER["extractor"], path, _WORKER.get("teachers"))
        crops = np.ascontiguousarray(clip["crops"], dtype=np.uint8)  # (R, N, C, S, S)
        mask = np.asarray(clip["mask"], dtype=bool)  # (R, N)
        if not mask.any():
            raise NoFaceDetectedError("no face found in any frame; the clip is left out")
        if crops.ndim != 5 or mask.shape != crops.shape[:2]:
            raise ValueError(
                f"extractor returned crops {crops.shape} and mask {mask.shape}; expected (R,N,C,S,S), (R,N)"
            )
        meta = {"regions": clip["regions"], "landmark_backend": clip["landmark_backend"], "fps": clip["fps"],
                "padded": bool(clip["padded"])}  # fmt: skip
        extra = {k: v for k, v in clip.items() if k.startswith("teacher_")}
        if clip["encoder_crops"] is not None:
            extra["encoder_crops"] = clip["encoder_crops"]
        tmp = work / "clips" / f".{key}.{os.getpid()}.tmp.npz"
        np.savez(tmp, crops=crops, mask=mask, timestamps=clip["timestamps"], meta=np.array(json.dumps(meta)),
                 **extra)  # fmt: skip
        os.replace(tmp, work / "clips" / f"{key}.npz")  # atomic: a checkpoint is whole or absent
        return {"key": key, "ok": True, "frames": int(crops.shape[1]), "seconds": time.perf_counter() - start}
    except (BackendUnavailableError, MemoryError):
        raise  # the machine, not the clip: stop rather than mark every clip failed
    except Exception as exc:  # one bad clip must not stop the run: it is reported and skipped
        failure = {"file": source, "path": path, "reason": f"{type(exc).__name__}: {exc}"}
        (work / "failed" / f"{key}.json").write_text(json.dumps(failure))
        return {"key": key, "ok": False, "seconds": time.perf_counter() - start, **failure}


# Preparation ------------------------------------------------------------------------------------------------------


def _check_work_dir(work: Path, settings: dict[str, Any], teachers: list[str] | None = None) -> None:
    (work / "clips").mkdir(parents=True, exist_ok=True)
    (work / "failed").mkdir(parents=True, exist_ok=True)
    marker = work / "settings.json"
    record = {"format_version": FORMAT_VERSION, "feature_extractor": settings}
    if teachers:
        record["teachers"] = list(teachers)
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous != json.loads(json.dumps(record)):
            raise DatasetFormatError(
                f"The work folder {work} holds clips made with other feature-extractor settings; resuming would mix "
                f"them. Pass a new --work_dir, or delete {work} to start over."
            )
    else:
        marker.write_text(json.dumps(record, indent=2, sort_keys=True))
    for stale in (work / "clips").glob(".*.tmp.npz"):  # half-written by an interrupted run
        stale.unlink(missing_ok=True)


def _run_extractor(
    tasks: list[tuple[str, str, str, str]], args: PrepareArguments, settings: dict[str, Any], extractor_class: type
) -> tuple[int, float]:
    """Process `tasks`, in parallel when asked; returns how many were processed (ok or failed) and the seconds the
    workers spent on them (excluding process start-up)."""
    done, seconds = 0, 0.0
    bar = tqdm(total=len(tasks), desc="clips", unit="clip", disable=not tasks)
    try:
        if args.num_proc <= 1 or len(tasks) <= 1:
            _init_worker(extractor_class, settings, tuple(teacher_list(args)))
            results = map(_process_clip, tasks)
            pool = None
        else:
            # "spawn": a forked child inherits OpenCV's thread state and can deadlock (docs/MEASUREMENTS.md).
            pool = mp.get_context("spawn").Pool(
                min(args.num_proc, len(tasks)),
                initializer=_init_worker,
                initargs=(extractor_class, settings, tuple(teacher_list(args))),
            )
            results = pool.imap_unordered(_process_clip, tasks, chunksize=1)
        try:
            for result in results:
                done += 1
                seconds += result["seconds"]
                bar.update(1)
                if not result["ok"]:
                    logger.warning("failed: %s (%s)", result["file"], result["reason"])
                if args.stop_after is not None and done >= args.stop_after:
                    raise KeyboardInterrupt(f"stop_after={args.stop_after}")
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        bar.close()
    return done, seconds


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


def read_sources(args: PrepareArguments) -> list[SourceListing]:
    """Read every `--source` with its `--root` (one root may serve all) and `--annotations` ('-' or absent: find)."""
    roots = args.root * len(args.source) if len(args.root) == 1 else args.root
    annotations = args.annotations or ["-"] * len(args.source)
    return [
        read_source(source, root, annotations=None if table in ("-", "") else table)
        for source, root, table in zip(args.source, roots, annotations, strict=True)
    ]


def _build(
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
        _rows, features=clip_features(regions, crop_size, labels, channels, per_frame, teachers), cache_dir=cache,
        gen_kwargs={"items": items, "regions": tuple(regions), "fingerprint": fingerprint},
    )  # fmt: skip


def _check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and any(output_dir.iterdir()) and not (output_dir / "dataset_dict.json").exists():
        raise DatasetFormatError(f"{output_dir} exists and is not a dataset folder: choose an empty --output_dir.")


def _save(full: Dataset, description: dict[str, Any], test_fraction: float, seed: int, output_dir: Path) -> None:
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
    _check_output_dir(output_dir)
    dataset.save_to_disk(str(output_dir))
    (output_dir / RECORD_FILE).write_text(json.dumps(description, indent=2, sort_keys=True))


def _finish(output_dir: Path, report: dict[str, Any], description: dict[str, Any], push_to_hub, public) -> DatasetDict:
    """Write the report, reload the saved dataset and push it when asked."""
    report_path = output_dir / REPORT_FILE
    report_path.write_text(json.dumps(report, indent=2))
    if report["failed"]:
        logger.warning("%d clips failed and were left out; see %s", len(report["failed"]), report_path)
    dataset = load_from_disk(str(output_dir))
    if push_to_hub:
        push_dataset(dataset, push_to_hub, description, private=not public)
    return dataset


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
    keys = [_clip_key(c) for c in clips]
    if len(set(keys)) != len(keys):
        raise DatasetFormatError("Two clips share a source path; every clip needs a distinct file.")
    # Positions in the whole corpus of the clips this run prepares (all of them on one machine).
    mine = [i for i, clip in enumerate(clips) if shard_of(clip, args.num_shards) == args.shard_index]

    extractor = build_extractor(args, extractor_class)
    settings = saved_settings(extractor)
    _check_work_dir(work, settings, teacher_list(args))
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
    processed, extract_seconds = _run_extractor(todo, args, settings, extractor_class)

    failed, items, positions, failed_positions = [], [], [], []
    for i in mine:
        npz, fail = work / "clips" / f"{keys[i]}.npz", work / "failed" / f"{keys[i]}.json"
        if npz.exists():
            clip = clips[i]
            items.append((str(npz), clip.subject, clip.source, clip.corpus, clip.label, scheme.names.index(clip.label)))
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
        ],  # fmt: skip
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
        full = _build(items, regions, scheme.class_label(), settings, cache) if items else None
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
            return _save_shard(full, shard, output_dir, processed, reused, extract_seconds)
        _save(full, description, args.test_fraction, args.split_seed, output_dir)
    dataset = _finish(output_dir, report, description, args.push_to_hub, args.public)
    return PrepareResult(dataset, output_dir, processed, reused, failed, output_dir / REPORT_FILE, extract_seconds)


# Shards -----------------------------------------------------------------------------------------------------------


def _save_shard(
    full: Dataset | None, shard: dict[str, Any], output_dir: Path, processed: int, reused: int, seconds: float
) -> PrepareResult:
    """Save one shard's clips (no subject split: `merge` splits over all subjects) with its `SHARD_FILE`."""
    _check_output_dir(output_dir)
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
        shard["shard_index"] + 1, shard["num_shards"], len(shard["positions"]), output_dir,
    )  # fmt: skip
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
    )  # fmt: skip
    failed = [failure for _, failure in failures]
    description = {
        **first["description"],
        "feature_extractor": {**first["description"]["feature_extractor"], "landmark_backend_used": backends.pop()},
        "failed": len(failed),
    }
    output_dir = Path(args.output_dir)
    _save(full, description, first["test_fraction"], first["split_seed"], output_dir)
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
    dataset = _finish(output_dir, report, description, args.push_to_hub, args.public)
    logger.info("merged %d shards (%d clips) into %s", num_shards, len(full), output_dir)
    return PrepareResult(dataset, output_dir, 0, report["reused"], failed, output_dir / REPORT_FILE)


# Hub --------------------------------------------------------------------------------------------------------------


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
        path_in_repo=RECORD_FILE, repo_id=repo_id, repo_type="dataset",
        commit_message="Add the MicroX preprocessing settings",
    )  # fmt: skip
    push_dataset_card(repo_id, dataset_card_text(dataset, description, pretty_name=repo_id.split("/")[-1]))


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
