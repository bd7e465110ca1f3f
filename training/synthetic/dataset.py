"""Writing a synthetic dataset: a plain folder of clips (`LABEL/SUBJECT/LABEL_IIII.mp4`) with `manifest.csv` and
`metadata.jsonl`, which `training.sources.folder` reads; and the command line of `python -m training.synthetic`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from microx_hf.parallel import map_videos
from microx_hf.video_writer import write_video

from .action_units import LABELS
from .faces import FaceIdentity, load_faces, make_identities
from .render import FPS, render_clip

logger = logging.getLogger(__name__)


_WORKER_IDENTITIES: list[FaceIdentity] = []


def _init_worker(identities: list[FaceIdentity]) -> None:
    _WORKER_IDENTITIES[:] = identities


def _make_one(task: dict) -> dict:
    identity = _WORKER_IDENTITIES[task["identity"]]
    rng = np.random.default_rng(task["seed"])
    num_frames = int(rng.integers(task["min_frames"], task["max_frames"] + 1))
    clip = render_clip(identity.image, identity.landmarks, task["label"], rng, num_frames, tuple(task["size"]))
    write_video(Path(task["out_dir"]) / task["path"], clip.frames, fps=FPS)
    return {
        "path": task["path"],
        "label": task["label"],
        "subject": identity.name,
        "base_face": identity.base,
        "num_frames": num_frames,
        **clip.params,
    }


def generate_dataset(
    out_dir: str | Path,
    clips_per_label: int = 20,
    seed: int = 0,
    identities: int = 4,
    num_frames: tuple[int, int] = (10, 60),
    size: tuple[int, int] = (320, 240),
    num_proc: int = 1,
    faces_dir: str | Path | None = None,
    builtin_faces: bool = True,
    labels: Sequence[str] = LABELS,
    overwrite: bool = False,
) -> Path:
    """Write a plain-folder dataset of synthetic clips: `out_dir/LABEL/SUBJECT/LABEL_IIII.mp4` + `manifest.csv`.

    Both routes of `training.sources.folder` read it with subjects: the folder layout (the level below the label
    is the subject) and the manifest.

    `manifest.csv` has the columns path (relative to `out_dir`), label, subject; `metadata.jsonl` holds every
    clip's random choices (onset frames, peak, augmentations). Clip i of label number k goes to subject
    (i + k) mod (number of subjects), so each subject shows every label about equally often (exactly when
    `clips_per_label` is a multiple of the number of subjects) and subject-independent splits stay balanced. The output is a pure function of the arguments (not of `num_proc`).

    Args:
        out_dir: Folder to write (created; existing clips with the same names are overwritten).
        clips_per_label: Clips per label.
        seed: Seed of every random choice.
        identities: Subjects per base photo (the photo itself plus identities - 1 random variants).
        num_frames: Inclusive (min, max) frames per clip, at 30 fps.
        size: Frame (width, height), both even.
        num_proc: Clips rendered at once (`microx_hf.parallel.map_videos`: this process and num_proc - 1 more).
        faces_dir: Extra folder of neutral frontal face photos.
        builtin_faces: Use the public-domain photos that ship with installed packages.
        labels: Labels to generate (default the paper's 7).
        overwrite: Replace an earlier synthetic dataset in `out_dir` (its label folders, manifest and metadata);
            without it a non-empty `out_dir` is refused, so stale clips never mix with new ones.

    Returns:
        `out_dir`.
    """
    out_dir = Path(out_dir)
    lo, hi = num_frames
    if size[0] % 2 or size[1] % 2 or min(size) < 32:
        raise ValueError(f"size={size}: width and height must be even (yuv420 video) and at least 32")
    if not 1 <= lo <= hi:
        raise ValueError(f"num_frames={num_frames}: need 1 <= min <= max")
    if clips_per_label < 1:
        raise ValueError(f"clips_per_label={clips_per_label}: need at least 1")
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ValueError(f"unknown labels {unknown}; choose from {LABELS}")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty: choose a new folder or pass overwrite=True (--overwrite)")
        if not (out_dir / "manifest.csv").is_file():
            raise FileExistsError(f"{out_dir} is not empty and holds no manifest.csv: refusing to delete it")
        for name in (*LABELS, "manifest.csv", "metadata.jsonl"):
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    subjects = make_identities(load_faces(faces_dir, builtin=builtin_faces), identities, seed)
    tasks = []
    for label in labels:
        label_idx = LABELS.index(label)
        for i in range(clips_per_label):
            subject = (i + label_idx) % len(subjects)
            tasks.append(
                {
                    "identity": subject,
                    "label": label,
                    "seed": [seed, label_idx, i],
                    "min_frames": lo,
                    "max_frames": hi,
                    "size": list(size),
                    "out_dir": str(out_dir),
                    "path": f"{label}/{subjects[subject].name}/{label}_{i:04d}.mp4",
                }
            )
    start = time.perf_counter()
    rows: list[dict] = [{}] * len(tasks)
    for outcome in map_videos(
        _make_one, tasks, workers=num_proc, init=_init_worker, init_args=(subjects,), desc="clips"
    ):
        if not outcome.ok:
            raise RuntimeError(f"rendering {outcome.item['path']} failed: {outcome.error_type}: {outcome.error}")
        rows[outcome.index] = outcome.result
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "subject"])
        writer.writerows([row["path"], row["label"], row["subject"]] for row in rows)
    with open(out_dir / "metadata.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    logger.info(
        "wrote %d clips of %d subjects to %s in %.1f s", len(rows), len(subjects), out_dir, time.perf_counter() - start
    )
    return out_dir


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: `python -m training.synthetic --out_dir DIR [--clips_per_label N] [...]`."""
    parser = argparse.ArgumentParser(
        prog="python -m training.synthetic",
        description="Write a folder of synthetic expression-onset clips (training.synthetic).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out_dir", required=True, type=Path, help="folder to write LABEL/*.mp4 and manifest.csv")
    parser.add_argument("--clips_per_label", type=int, default=20)
    parser.add_argument("--identities", type=int, default=4, help="subjects per face photo (the photo + variants)")
    parser.add_argument("--min_frames", type=int, default=10)
    parser.add_argument("--max_frames", type=int, default=60)
    parser.add_argument("--size", type=_size, default=(320, 240), help="frame WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_proc", type=int, default=1)
    parser.add_argument("--faces_dir", type=Path, default=None, help="extra folder of neutral frontal face photos")
    parser.add_argument("--no_builtin_faces", action="store_true", help="use only the photos in --faces_dir")
    parser.add_argument("--labels", nargs="+", default=list(LABELS), choices=LABELS)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier synthetic dataset in --out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return generate_dataset(
        args.out_dir,
        clips_per_label=args.clips_per_label,
        seed=args.seed,
        identities=args.identities,
        num_frames=(args.min_frames, args.max_frames),
        size=args.size,
        num_proc=args.num_proc,
        faces_dir=args.faces_dir,
        builtin_faces=not args.no_builtin_faces,
        labels=args.labels,
        overwrite=args.overwrite,
    )
