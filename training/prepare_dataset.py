"""Prepare a processed-clip dataset: run the feature extractor over every clip of a corpus, write a `DatasetDict`.

Rows are clips (not windows): per region a uint8 `Array4D((None, 3, S, S))` column of every frame's crop, a
frame-major `region_mask`, `timestamps`, `label` (`ClassLabel`), `subject`, `source`, `corpus`,
`landmark_backend`, `num_frames` (docs/ARCHITECTURE.md). Windows are sampled at load time by `training.data`, so
no window of a clip can leak across splits. The feature-extractor settings go into `info.description` (JSON) so
that training restores the normalisation.

Resumable: each finished clip is checkpointed as one `.npz` in `<work_dir>/clips/`, each failure as one `.json` in
`<work_dir>/failed/`; a rerun with the same settings processes only what is missing. The dataset is then built
from the checkpoints in the sorted order of the clips' source paths, so the output does not depend on the number of
processes or on interruptions. Failed clips (file, reason) are listed in `<output_dir>/prepare_report.json`.

    python -m training.prepare_dataset --source baum1s --root "/data/BAUM1" --output_dir data/baum1s \
        --label_scheme paper7 --num_proc 2 [--test_fraction 0.2] [--push_to_hub user/baum1s-microx]
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
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Array2D, Array4D, Dataset, DatasetDict, Features, Sequence, Value
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from microx_hf.errors import BackendUnavailableError, DatasetFormatError, NoFaceDetectedError

from .labels import LabelScheme, get_scheme
from .sources import SOURCE_NAMES, SourceClip, SourceListing, read_source

logger = logging.getLogger(__name__)

DEFAULT_EXTRACTOR = "microx_hf.feature_extraction_microx:MicroXFeatureExtractor"
FORMAT_VERSION = 1
REPORT_NAME = "prepare_report.json"
SETTINGS_NAME = "microx_dataset.json"


@dataclass
class PrepareArguments:
    """Command-line arguments of `prepare_dataset` (HfArgumentParser)."""

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
    regions: str | None = field(default=None, metadata={"help": "Override: comma-separated region names."})
    landmark_backend: str | None = field(default=None, metadata={"help": "Override: 'auto', 'dlib', 'fan'."})
    max_clips: int | None = field(default=None, metadata={"help": "Use only the first N clips (a quick trial)."})
    retry_failed: bool = field(default=False, metadata={"help": "Process again the clips that failed before."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the dataset and its card to this repo."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    extractor_class: str = field(
        default=DEFAULT_EXTRACTOR, metadata={"help": "module:Class of the feature extractor (advanced)."}
    )
    stop_after: int | None = field(
        default=None, metadata={"help": "Testing: stop as if interrupted after N newly processed clips."}
    )


@dataclass
class PrepareResult:
    """What `prepare` did."""

    dataset: DatasetDict
    output_dir: Path
    processed: int  # clips run through the extractor in this call
    reused: int  # clips taken from checkpoints of an earlier call
    failed: list[dict[str, str]]
    report_path: Path
    extract_seconds: float = 0.0  # worker time spent on the clips processed in this call (start-up excluded)


# Feature extractor ---------------------------------------------------------------------------------------------


def _extractor_cls(spec: str):
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name)


def build_extractor(args: PrepareArguments):
    """The feature extractor: saved settings (if given) with the command line's overrides."""
    cls = _extractor_cls(args.extractor_class)
    overrides: dict[str, Any] = {}
    for key in ("fps", "num_frames", "crop_size", "landmark_backend"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.regions:
        overrides["regions"] = [r.strip() for r in args.regions.split(",") if r.strip()]
    if args.feature_extractor:
        return cls.from_pretrained(args.feature_extractor, **overrides)
    return cls(**overrides)


def extractor_settings(extractor) -> dict[str, Any]:
    """The extractor's saved settings (what `save_pretrained` writes), JSON-safe."""
    settings = json.loads(extractor.to_json_string())
    return {k: v for k, v in settings.items() if k not in ("processor_class",)}


_WORKER: dict[str, Any] = {}


def _init_worker(extractor_class: str, settings: dict[str, Any]) -> None:
    # OpenCV's own thread pool deadlocks or oversubscribes beside process-level parallelism (DESIGN.md).
    import cv2

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    cls = _extractor_cls(extractor_class)
    _WORKER["extractor"] = cls.from_dict(dict(settings))


def _clip_key(clip: SourceClip) -> str:
    digest = hashlib.sha1(f"{clip.corpus}\0{clip.source}".encode()).hexdigest()[:16]
    stem = "".join(ch if ch.isalnum() else "_" for ch in Path(clip.source).stem)[:40]
    return f"{stem}-{digest}"


def _process_clip(task: tuple[str, str, str, str]) -> dict[str, Any]:
    """Run the extractor on one clip and checkpoint it. Never raises for a bad clip: the failure is recorded."""
    key, path, source, work_dir = task
    work = Path(work_dir)
    start = time.perf_counter()
    try:
        clip = _WORKER["extractor"].extract_clip(path)
        crops = np.ascontiguousarray(clip.crops, dtype=np.uint8)  # (R, N, C, S, S)
        mask = np.asarray(clip.mask, dtype=bool)  # (R, N)
        if not mask.any():
            raise NoFaceDetectedError("no face found in any frame; the clip is left out")
        if crops.ndim != 5 or mask.shape != crops.shape[:2]:
            raise ValueError(
                f"extractor returned crops {crops.shape} and mask {mask.shape}; expected (R,N,C,S,S), (R,N)"
            )
        meta = {"regions": list(clip.regions), "landmark_backend": str(clip.landmark_backend),
                "fps": float(clip.fps), "padded": bool(clip.padded)}  # fmt: skip
        tmp = work / "clips" / f".{key}.{os.getpid()}.tmp.npz"
        np.savez(tmp, crops=crops, mask=mask, timestamps=np.asarray(clip.timestamps, np.float32),
                 meta=np.array(json.dumps(meta)))  # fmt: skip
        os.replace(tmp, work / "clips" / f"{key}.npz")  # atomic: a checkpoint is whole or absent
        return {"key": key, "ok": True, "frames": int(crops.shape[1]), "seconds": time.perf_counter() - start}
    except (BackendUnavailableError, MemoryError):
        raise  # the machine, not the clip: stop rather than mark every clip failed
    except Exception as exc:  # one bad clip must not stop the run: it is reported and skipped
        failure = {"file": source, "path": path, "reason": f"{type(exc).__name__}: {exc}"}
        (work / "failed" / f"{key}.json").write_text(json.dumps(failure))
        return {"key": key, "ok": False, "seconds": time.perf_counter() - start, **failure}


# Preparation ------------------------------------------------------------------------------------------------------


def _check_work_dir(work: Path, settings: dict[str, Any]) -> None:
    (work / "clips").mkdir(parents=True, exist_ok=True)
    (work / "failed").mkdir(parents=True, exist_ok=True)
    marker = work / "settings.json"
    record = {"format_version": FORMAT_VERSION, "feature_extractor": settings}
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
    tasks: list[tuple[str, str, str, str]], args: PrepareArguments, settings: dict[str, Any]
) -> tuple[int, float]:
    """Process `tasks`, in parallel when asked; returns how many were processed (ok or failed) and the seconds the
    workers spent on them (excluding process start-up)."""
    done, seconds = 0, 0.0
    bar = tqdm(total=len(tasks), desc="clips", unit="clip", disable=not tasks)
    try:
        if args.num_proc <= 1 or len(tasks) <= 1:
            _init_worker(args.extractor_class, settings)
            results = map(_process_clip, tasks)
            pool = None
        else:
            # "spawn": a forked child inherits OpenCV's thread state and can deadlock (DESIGN.md).
            pool = mp.get_context("spawn").Pool(
                min(args.num_proc, len(tasks)), initializer=_init_worker, initargs=(args.extractor_class, settings)
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


def _features(regions: list[str], crop_size: int, channels: int, scheme: LabelScheme) -> Features:
    return Features(
        {
            **{region: Array4D((None, channels, crop_size, crop_size), "uint8") for region in regions},
            "region_mask": Array2D((None, len(regions)), "bool"),
            "timestamps": Sequence(Value("float32")),
            "label": scheme.class_label(),
            "subject": Value("string"),
            "source": Value("string"),
            "corpus": Value("string"),
            "landmark_backend": Value("string"),
            "num_frames": Value("int32"),
        }
    )


def _rows(items: list[tuple[str, str, str, str, str, int]], regions: list[str], fingerprint: str):
    """Yield dataset rows from checkpoints. `fingerprint` only keys the generator cache."""
    del fingerprint
    for npz_path, subject, source, corpus, _label_name, label_id in items:
        with np.load(npz_path) as data:
            crops, mask, timestamps = data["crops"], data["mask"], data["timestamps"]
            meta = json.loads(str(data["meta"]))
        if tuple(meta["regions"]) != tuple(regions):
            raise DatasetFormatError(
                f"{npz_path}: regions {meta['regions']} differ from {regions}; delete the work folder."
            )
        row = {region: crops[r] for r, region in enumerate(regions)}  # each (N, C, S, S)
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
    sources, roots = list(args.source), list(args.root)
    annotations = list(args.annotations or [])
    if len(roots) == 1:
        roots *= len(sources)
    if len(roots) != len(sources) or len(annotations) not in (0, len(sources)):
        raise ValueError(
            f"{len(sources)} sources need {len(sources)} --root values (or one for all) and as many --annotations "
            f"('-' to find one); got {len(roots)} roots and {len(annotations)} annotations."
        )
    if len(set(sources)) != len(sources):
        raise ValueError(f"--source lists a corpus twice: {sources}")
    annotations = annotations or ["-"] * len(sources)
    return [
        read_source(source, root, annotations=None if table in ("-", "") else table)
        for source, root, table in zip(sources, roots, annotations, strict=True)
    ]


def prepare(args: PrepareArguments) -> PrepareResult:
    """Run the whole preparation (see the module docstring); returns the dataset and what was done."""
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

    extractor = build_extractor(args)
    settings = extractor_settings(extractor)
    _check_work_dir(work, settings)
    if args.retry_failed:
        for key in keys:
            (work / "failed" / f"{key}.json").unlink(missing_ok=True)
    todo = [
        (key, clip.path, clip.source, str(work))
        for key, clip in zip(keys, clips, strict=True)
        if not (work / "clips" / f"{key}.npz").exists() and not (work / "failed" / f"{key}.json").exists()
    ]
    reused = len(clips) - len(todo)
    logger.info("%d clips: %d to process, %d already done", len(clips), len(todo), reused)
    processed, extract_seconds = _run_extractor(todo, args, settings)

    failed, items = [], []
    for key, clip in zip(keys, clips, strict=True):
        npz, fail = work / "clips" / f"{key}.npz", work / "failed" / f"{key}.json"
        if npz.exists():
            label_id = scheme.names.index(clip.label)
            items.append((str(npz), clip.subject, clip.source, clip.corpus, clip.label, label_id))
        elif fail.exists():
            failed.append(json.loads(fail.read_text()))
    if not items:
        raise DatasetFormatError(f"Every clip failed preprocessing; see the reasons in {work / 'failed'}.")

    regions = list(settings.get("regions") or extractor.regions)
    with np.load(items[0][0]) as first:
        channels, crop_size = int(first["crops"].shape[2]), int(first["crops"].shape[3])
    features = _features(regions, crop_size, channels, scheme)
    fingerprint = hashlib.sha1(
        json.dumps([(i[0], os.path.getsize(i[0]), i[5]) for i in items] + [settings, scheme.to_dict()]).encode()
    ).hexdigest()
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
    }
    with tempfile.TemporaryDirectory(prefix="microx-prepare-") as cache:
        full = Dataset.from_generator(
            _rows, features=features, cache_dir=cache,
            gen_kwargs={"items": items, "regions": tuple(regions), "fingerprint": fingerprint},
        )  # fmt: skip
        if args.test_fraction > 0:
            test_subjects = _subject_split(full["subject"], args.test_fraction, args.split_seed)
            is_test = [s in test_subjects for s in full["subject"]]
            dataset = DatasetDict(
                train=full.select([i for i, t in enumerate(is_test) if not t]),
                test=full.select([i for i, t in enumerate(is_test) if t]),
            )
        else:
            dataset = DatasetDict(train=full)
        for split in dataset.values():
            split.info.description = json.dumps(description, sort_keys=True)
        if output_dir.exists() and any(output_dir.iterdir()) and not (output_dir / "dataset_dict.json").exists():
            raise DatasetFormatError(f"{output_dir} exists and is not a dataset folder: choose an empty --output_dir.")
        dataset.save_to_disk(str(output_dir))
    (output_dir / SETTINGS_NAME).write_text(json.dumps(description, indent=2, sort_keys=True))
    report = {
        "source": list(args.source),
        "root": list(args.root),
        "clips": len(clips),
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
    report_path = output_dir / REPORT_NAME
    report_path.write_text(json.dumps(report, indent=2))
    if failed:
        logger.warning("%d clips failed and were left out; see %s", len(failed), report_path)
    from datasets import load_from_disk

    dataset = load_from_disk(str(output_dir))
    if args.push_to_hub:
        push_dataset(dataset, args.push_to_hub, description, private=args.private)
    return PrepareResult(dataset, output_dir, processed, reused, failed, report_path, extract_seconds)


def push_dataset(dataset: DatasetDict, repo_id: str, description: dict[str, Any], private: bool = False) -> None:
    """Push the dataset, its settings file and its card (see `training.dataset_card`)."""
    from huggingface_hub import HfApi

    from .dataset_card import dataset_card_text, push_dataset_card

    dataset.push_to_hub(repo_id, private=private)
    HfApi().upload_file(
        path_or_fileobj=json.dumps(description, indent=2, sort_keys=True).encode(),
        path_in_repo=SETTINGS_NAME, repo_id=repo_id, repo_type="dataset",
        commit_message="Add the MicroX preprocessing settings",
    )  # fmt: skip
    push_dataset_card(repo_id, dataset_card_text(dataset, description, pretty_name=repo_id.split("/")[-1]))


def main(argv: list[str] | None = None) -> PrepareResult:
    """Command-line entry point; `argv` for tests."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = HfArgumentParser(PrepareArguments)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    result = prepare(args)
    counts = {split: ds.num_rows for split, ds in result.dataset.items()}
    logger.info(
        "saved %s to %s (%d failed; report %s)", counts, result.output_dir, len(result.failed), result.report_path
    )
    return result


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        logger.warning("interrupted: finished clips are checkpointed; run the same command again to resume")
        sys.exit(130)
