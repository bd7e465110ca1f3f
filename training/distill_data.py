"""The shipped model's training data: real face video learned from the teachers, and synthetic onsets.

Three kinds of clip go into one prepared dataset (`prepare_dataset` with the teachers' per-frame logits), told apart
by the first folder of their `source` path (what `--source_shares` samples by):

- `real/`: the permissively licensed real face video of `training.real_video` (speech, signing, head turns; about
  15 people), unlabelled (-1): the model learns it from the teachers' per-frame soft targets alone. Whole people are
  held out (`real_video.VALIDATION_PEOPLE`) for a label-free validation: the distillation loss and the agreement
  with the teachers on people the model never saw.
- `warp/`: `training.synthetic`'s expression onsets warped onto one neutral frame of each *training* person of the
  real video (more identities and the onset shapes the real video lacks), labelled by the synthetic expression.
- `photo/`: the same onsets on the two public-domain photos and their variants (the previous demo's data), labelled;
  two identities are held out as the test split (accuracy on held-out synthetic identities and the frame-order
  ablation, as before).

The synthetic clips' labels are motion prototypes, not human emotion (the teachers score them at chance): they are
drawn at a low share and never decide what the model says on real faces on their own (the residual fusion starts
from the prior; see `microx_hf/network_microx.py`).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from datasets import DatasetDict, load_from_disk

from . import prepare_dataset, synthetic
from .real_video import VALIDATION_PEOPLE, RealClip
from .schema import RECORD_FILE

logger = logging.getLogger(__name__)

# The photo identities held out as the test split (as in the previous demo).
TEST_IDENTITIES = ("astronaut-01", "grace_hopper-00")


@dataclass
class MixSettings:
    """How much of each kind of clip to make.

    Attributes:
        warp_identities: Identities per real person's face (the face + random variants).
        warp_clips_per_label: Warped clips per label, spread over those identities.
        photo_identities: Identities per public-domain photo.
        photo_clips_per_label: Photo clips per label.
        frames: (min, max) frames of a synthetic clip at 30 fps.
        validation_people: Real people held out for validation.
        landmark_backend: The extractor's landmark backend.
        teachers: The teachers whose per-frame logits are stored.
        num_proc: Processes for rendering and preparation.
        seed: Seed of the synthetic clips.
    """

    warp_identities: int = 2
    warp_clips_per_label: int = 14
    photo_identities: int = 4
    photo_clips_per_label: int = 8
    frames: tuple[int, int] = (20, 40)
    validation_people: tuple[str, ...] = VALIDATION_PEOPLE
    landmark_backend: str = "mediapipe"
    teachers: str = "faceapi,fer"
    num_proc: int = 1
    seed: int = 0


def pick_faces(clips: Sequence[RealClip], out_dir: Path, every: int = 5, min_iod: float = 25.0) -> dict[str, Path]:
    """One frame per person of `clips` for the synthetic warps: among every `every`-th frame where dlib's detector
    finds a clear frontal face (HOG score >= 0.5, inter-ocular distance >= `min_iod` px), the one face-api calls
    most neutral. Written to `out_dir/<person>.png`; people without such a frame are left out.

    Returns:
        person -> the frame's file.
    """
    from microx_hf.landmarks import get_backend
    from microx_hf.regions import eye_centers
    from microx_hf.video import iter_frames

    from .teachers.ensemble import Teachers

    detector = get_backend("dlib")
    teacher = Teachers(["faceapi"], labels=["neutral"])
    out_dir.mkdir(parents=True, exist_ok=True)
    best: dict[str, tuple[float, np.ndarray]] = {}
    for clip in clips:
        for index, (_, frame) in enumerate(iter_frames(clip.path, fps=30.0, max_duration=None)):
            if index % every:
                continue
            faces = [f for f in detector.detect(frame) if f.score >= 0.5]
            if not faces:
                continue
            face = max(faces, key=lambda f: f.score)
            left, right = eye_centers(face.points)
            if float(np.linalg.norm(right - left)) < min_iod:
                continue
            neutral = float(teacher.probs(teacher.logits([frame], [face.points]))["faceapi"][0, 0])
            if neutral > best.get(clip.person, (-1.0, None))[0]:
                best[clip.person] = (neutral, frame)
    paths = {}
    for person, (neutral, frame) in sorted(best.items()):
        paths[person] = out_dir / f"{person}.png"
        cv2.imwrite(str(paths[person]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        logger.info("face of %s for the warps: face-api neutral %.2f", person, neutral)
    return paths


def build_media(out: Path, clips: Sequence[RealClip], settings: MixSettings) -> Path:
    """Lay out the three kinds of clip under `out` (real clips linked, synthetic ones rendered) and write the manifest
    `out/manifest.csv` (path, label, subject) that `prepare_dataset --source folder` reads; returns it."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in clips:
        link = out / "real" / clip.source / clip.path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(clip.path.resolve())
        rows.append((link.relative_to(out).as_posix(), "unlabelled", clip.person))
    training = [c for c in clips if c.person not in settings.validation_people]
    faces = pick_faces(training, out / "faces")
    kinds = (
        ("warp", {"faces_dir": out / "faces", "builtin_faces": False}, settings.warp_identities,
         settings.warp_clips_per_label),
        ("photo", {"faces_dir": None, "builtin_faces": True}, settings.photo_identities,
         settings.photo_clips_per_label),
    )  # fmt: skip
    for kind, faces_args, identities, per_label in kinds:
        if kind == "warp" and not faces:
            continue
        folder = out / kind
        synthetic.generate_dataset(
            folder,
            clips_per_label=per_label,
            seed=settings.seed,
            identities=identities,
            num_frames=settings.frames,
            num_proc=settings.num_proc,
            overwrite=True,
            **faces_args,
        )
        with open(folder / "manifest.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                subject = f"{kind}:{row['subject']}" if kind == "warp" else row["subject"]
                rows.append((f"{kind}/{row['path']}", row["label"], subject))
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "subject"])
        writer.writerows(rows)
    (out / "faces.json").write_text(json.dumps({p: str(f) for p, f in faces.items()}, indent=1))
    return manifest


def prepare(manifest: Path, output_dir: Path, settings: MixSettings, encoder_crop_size: int, crop_size: int) -> Path:
    """The prepared dataset of every clip in `manifest` (one `train` split), with the teachers' logits."""
    shutil.rmtree(output_dir, ignore_errors=True)
    prepare_dataset.run(
        prepare_dataset.PrepareArguments(
            source=["folder"],
            root=[str(manifest)],
            output_dir=str(output_dir),
            landmark_backend=settings.landmark_backend,
            num_proc=settings.num_proc,
            crop_size=crop_size,
            encoder_crop_size=encoder_crop_size,
            teachers=settings.teachers,
        )
    )
    return output_dir


def split(prepared: Path, output_dir: Path, validation_people: Sequence[str]) -> DatasetDict:
    """`prepared`'s clips in three splits: `validation` the real clips of `validation_people`, `test` the photo clips
    of `TEST_IDENTITIES`, `train` the rest; saved to `output_dir` with the preparation record."""
    clips = load_from_disk(str(prepared))
    full = clips["train"]
    subjects, sources = full["subject"], full["source"]
    real = [s.startswith("real/") for s in sources]
    validation = [i for i, (s, r) in enumerate(zip(subjects, real, strict=True)) if r and s in validation_people]
    test = [i for i, (s, src) in enumerate(zip(subjects, sources, strict=True)) if src.startswith("photo/")
            and s in TEST_IDENTITIES]  # fmt: skip
    held = set(validation) | set(test)
    train = [i for i in range(full.num_rows) if i not in held]
    if not validation or not test:
        raise ValueError(f"empty split: {len(validation)} validation clips, {len(test)} test clips")
    splits = DatasetDict(train=full.select(train), validation=full.select(validation), test=full.select(test))
    shutil.rmtree(output_dir, ignore_errors=True)
    splits.save_to_disk(str(output_dir))
    shutil.copy(prepared / RECORD_FILE, output_dir / RECORD_FILE)
    return splits


def counts(splits: DatasetDict) -> dict:
    """Clips, people and minutes (frames at 30 fps) of each kind of clip in each split."""
    out: dict = {}
    for name, rows in splits.items():
        for source, subject, frames in zip(rows["source"], rows["subject"], rows["num_frames"], strict=True):
            kind = source.split("/", 1)[0]
            entry = out.setdefault(name, {}).setdefault(kind, {"clips": 0, "people": set(), "frames": 0})
            entry["clips"] += 1
            entry["people"].add(subject)
            entry["frames"] += int(frames)
    return {
        name: {
            kind: {"clips": e["clips"], "people": len(e["people"]), "minutes": round(e["frames"] / 30 / 60, 2)}
            for kind, e in kinds.items()
        }
        for name, kinds in out.items()
    }


__all__ = ["MixSettings", "TEST_IDENTITIES", "build_media", "counts", "pick_faces", "prepare", "split"]
