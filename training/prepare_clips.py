"""The per-clip work of `training.prepare_dataset`: each clip through the feature extractor (and the teachers), one
checkpoint per clip, resumable.

Each finished clip is checkpointed as one `.npz` in `<work_dir>/clips/`, each failure as one `.json` in
`<work_dir>/failed/`; a rerun with the same settings processes only what is missing. Clips run in the processes of
`microx_hf.parallel.map_videos` (`--num_proc`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from microx_hf.errors import BackendUnavailableError, DatasetFormatError, NoFaceDetectedError
from microx_hf.parallel import map_videos
from microx_hf.stream import ClipCrops

from .schema import FORMAT_VERSION
from .sources import SourceClip

logger = logging.getLogger(__name__)

_WORKER: dict[str, Any] = {}


def saved_settings(extractor) -> dict[str, Any]:
    """The extractor's saved settings (what `save_pretrained` writes), JSON-safe."""
    settings = json.loads(extractor.to_json_string())
    return {k: v for k, v in settings.items() if k not in ("processor_class",)}


def teacher_records(names: list[str]) -> list[dict[str, Any]]:
    """What the preparation record says of each teacher: its classes (the logits' order), source and licence."""
    from .teachers import get_teacher

    out = []
    for name in names:
        spec = get_teacher(name)
        out.append(
            {
                "name": name,
                "classes": list(spec.classes),
                "source": spec.source,
                "licence": spec.licence,
                "training_data": spec.training_data,
            }
        )
    return out


def init_worker(extractor_class: type, settings: dict[str, Any], teachers: tuple[str, ...] = ()) -> None:
    """Build this process's extractor (and teachers) once, for `process_clip`."""
    _WORKER["extractor"] = extractor_class.from_dict(dict(settings))
    _WORKER["teachers"] = None
    if teachers:
        from .teachers.ensemble import Teachers

        _WORKER["teachers"] = Teachers(list(teachers), labels=[])


def extract_with_teachers(extractor, path: str, teachers=None, chunk: int = 32) -> tuple[ClipCrops, dict[str, Any]]:
    """Run the extractor on one clip; with `teachers`, also each teacher's logits for every frame with a face
    (NaN rows without one), on its own face crop cut from the full frame. Frames are kept only `chunk` at a time.

    Returns:
        The clip's record (`ClipCrops`, with its crops) and, per teacher, `teacher_<name>`: (N, K) float32 logits.
    """
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

    stream = extractor.stream(path, keep_crops=True)
    for index, frame in enumerate(stream):
        if teachers is None:
            continue
        for spec in teachers.specs:
            logits[spec.name].append(np.full(len(spec.classes), np.nan, np.float32))
        if frame.points is not None:
            pending.append((index, frame.frame, frame.points))
            if len(pending) >= chunk:
                run_teachers()
    if teachers is not None:
        run_teachers()
    return stream.clip, {f"teacher_{name}": np.stack(rows) for name, rows in logits.items()}


def _clip_digest(clip: SourceClip) -> str:
    """A stable hash of the clip's identity (corpus and path relative to the corpus root), hex."""
    return hashlib.sha1(f"{clip.corpus}\0{clip.source}".encode()).hexdigest()


def clip_key(clip: SourceClip) -> str:
    """The name of a clip's checkpoint: its file name's stem and its digest."""
    stem = "".join(ch if ch.isalnum() else "_" for ch in Path(clip.source).stem)[:40]
    return f"{stem}-{_clip_digest(clip)[:16]}"


def shard_of(clip: SourceClip, num_shards: int) -> int:
    """The shard a clip belongs to: its digest modulo `num_shards`, the same on every machine and every run."""
    return int(_clip_digest(clip)[:16], 16) % num_shards


def process_clip(task: tuple[str, str, str, str]) -> dict[str, Any]:
    """Run the extractor on one clip and checkpoint it. Never raises for a bad clip: the failure is recorded."""
    key, path, source, work_dir = task
    work = Path(work_dir)
    start = time.perf_counter()
    try:
        clip, teacher_logits = extract_with_teachers(_WORKER["extractor"], path, _WORKER.get("teachers"))
        crops = np.ascontiguousarray(clip.crops, dtype=np.uint8)  # (R, N, C, S, S)
        mask = np.asarray(clip.mask, dtype=bool)  # (R, N)
        if not mask.any():
            raise NoFaceDetectedError("no face found in any frame; the clip is left out")
        meta = {
            "regions": clip.regions,
            "landmark_backend": clip.landmark_backend,
            "fps": clip.fps,
            "padded": clip.padded,
        }
        extra = dict(teacher_logits)
        if clip.encoder_crops is not None:
            extra["encoder_crops"] = clip.encoder_crops
        tmp = work / "clips" / f".{key}.{os.getpid()}.tmp.npz"
        timestamps = clip.timestamps.astype(np.float32)
        np.savez(tmp, crops=crops, mask=mask, timestamps=timestamps, meta=np.array(json.dumps(meta)), **extra)
        os.replace(tmp, work / "clips" / f"{key}.npz")  # atomic: a checkpoint is whole or absent
        return {"key": key, "ok": True, "frames": int(crops.shape[1]), "seconds": time.perf_counter() - start}
    except (BackendUnavailableError, MemoryError):
        raise  # the machine, not the clip: stop rather than mark every clip failed
    except Exception as exc:  # one bad clip must not stop the run: it is reported and skipped
        failure = {"file": source, "path": path, "reason": f"{type(exc).__name__}: {exc}"}
        (work / "failed" / f"{key}.json").write_text(json.dumps(failure))
        return {"key": key, "ok": False, "seconds": time.perf_counter() - start, **failure}


def check_work_dir(work: Path, settings: dict[str, Any], teachers: list[str] | None = None) -> None:
    """Create the work folder, or check that its clips were made with the same settings."""
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


def run_extractor(
    tasks: list[tuple[str, str, str, str]],
    num_proc: int,
    extractor_class: type,
    settings: dict[str, Any],
    teachers: list[str],
    stop_after: int | None = None,
) -> tuple[int, float]:
    """Process `tasks` in `num_proc` processes; returns how many were processed (ok or failed) and the seconds the
    workers spent on them (excluding process start-up).

    Args:
        stop_after: Stop as if interrupted after this many clips (for tests of resuming).
    """
    done, seconds = 0, 0.0
    outcomes = map_videos(
        process_clip,
        tasks,
        workers=num_proc,
        init=init_worker,
        init_args=(extractor_class, settings, tuple(teachers)),
        desc="clips",
    )
    with contextlib.closing(outcomes):
        for outcome in outcomes:
            if not outcome.ok:  # raised for the machine, not the clip (`process_clip`)
                kind = BackendUnavailableError if outcome.expected else RuntimeError
                raise kind(f"{outcome.error_type}: {outcome.error}")
            result = outcome.result
            done += 1
            seconds += result["seconds"]
            if not result["ok"]:
                logger.warning("failed: %s (%s)", result["file"], result["reason"])
            if stop_after is not None and done >= stop_after:
                raise KeyboardInterrupt(f"stop_after={stop_after}")
    return done, seconds
