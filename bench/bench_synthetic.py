"""Generation speed of the synthetic expression clips (`training/synthetic/`), and one contact sheet per label.

Measures, in one process on `--threads` OpenCV threads, clips/s and frames/s for:
- `render`: `render_clip` alone (landmark motion, piecewise-affine warp, mouth painting, lighting, blur, noise, JPEG);
- `render+write`: the same plus writing the mp4v file;
- `generate_dataset`: the whole `generate_dataset(num_proc=1)` call (finding the faces' landmarks, making the
  identities, rendering and writing, the manifest).

Then checks that time matters: a linear probe on the true landmarks of held-out subjects reads the label from
the first frame at chance, from the last frame well but not perfectly (resting looks and weak apexes confuse it),
and from the motion (last minus first) almost perfectly.

Also writes `bench/results/synthetic_<label>.png` for every label: rows are clips of different subjects (with
every augmentation), columns the first, middle and last frame, so one can check by eye that the expression reads.

    OMP_NUM_THREADS=1 python bench/bench_synthetic.py [--clips 21] [--frames 30] [--size 320x240]

Prints a table and writes `bench/results/synthetic.json`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from common import RESULTS, print_table, set_threads, write_results  # noqa: E402

from microx_hf.video_writer import write_video  # noqa: E402
from training import synthetic as S  # noqa: E402


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def contact_sheet(clips: list[np.ndarray], title: str) -> np.ndarray:
    """Rows of first / middle / last frames (RGB), with a caption strip on top."""
    rows = [np.concatenate([c[0], c[len(c) // 2], c[-1]], axis=1) for c in clips]
    sheet = np.concatenate(rows, axis=0)
    caption = np.full((28, sheet.shape[1], 3), 255, np.uint8)
    cv2.putText(
        caption,
        f"{title}: first | middle | last frame",
        (8, 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    return np.concatenate([caption, sheet], axis=0)


def _face_normalised(points: np.ndarray) -> np.ndarray:
    """(68, 2) points -> 136 face-frame coordinates in IOD units (head position, size and roll removed)."""
    center, ex, ey, iod = S.face_frame(points.astype(np.float64))
    return np.concatenate([(points - center) @ ex, (points - center) @ ey]) / iod


def landmark_probe(subjects: list[S.FaceIdentity], clips: int, frames: int) -> dict[str, float]:
    """How much of the label a linear probe reads from the true landmarks of one frame, or of the motion.

    Renders `clips` clips per label and subject (small frames: only the landmarks are used), then a ridge
    one-vs-rest classifier on face-normalised landmarks is trained on all subjects but one group and tested on
    the held-out group (leave-one-variant-out over the variant index, so test subjects are unseen). Chance is 1/7.
    """
    feats: dict[str, list[np.ndarray]] = {"first": [], "third": [], "last": []}
    labels, groups = [], []
    per_base = {}
    for j, subject in enumerate(subjects):
        group = per_base.setdefault(subject.base, 0)
        per_base[subject.base] += 1
        for k, label in enumerate(S.LABELS):
            for r in range(clips):
                clip = S.render_clip(
                    subject.image, subject.landmarks, label, np.random.default_rng([9, j, k, r]), frames, (64, 48)
                )
                feats["first"].append(_face_normalised(clip.landmarks[0]))
                feats["third"].append(_face_normalised(clip.landmarks[frames // 3]))
                feats["last"].append(_face_normalised(clip.landmarks[-1]))
                labels.append(k)
                groups.append(group)
    y, g = np.array(labels), np.array(groups)
    first, third, last = (np.array(feats[k]) for k in ("first", "third", "last"))

    def accuracy(x: np.ndarray) -> float:
        scores = []
        for held in np.unique(g):
            train, test = g != held, g == held
            mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
            z = np.c_[(x - mu) / sd, np.ones(len(x))]
            target = np.eye(len(S.LABELS))[y]
            w = np.linalg.solve(
                z[train].T @ z[train] + 1e-2 * train.sum() * np.eye(z.shape[1]), z[train].T @ target[train]
            )
            scores.append(float((np.argmax(z[test] @ w, 1) == y[test]).mean()))
        return float(np.mean(scores))

    return {
        "clips": len(y),
        "first_frame": accuracy(first),
        "frame_at_one_third": accuracy(third),
        "last_frame": accuracy(last),
        "last_minus_first": accuracy(last - first),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="OpenCV/torch threads (one per worker in datasets)")
    parser.add_argument("--clips", type=int, default=21, help="clips per timing (spread over the 7 labels)")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=_size, default=(320, 240), help="WIDTHxHEIGHT")
    parser.add_argument("--sheet_rows", type=int, default=4, help="clips per contact sheet")
    parser.add_argument(
        "--probe_clips", type=int, default=6, help="clips per label and subject for the probe (0: skip)"
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)

    start = time.perf_counter()
    faces = S.load_faces()
    subjects = S.make_identities(faces, 3, seed=0)
    setup_s = time.perf_counter() - start

    def render(i: int) -> S.RenderedClip:
        subject = subjects[i % len(subjects)]
        label = S.LABELS[i % len(S.LABELS)]
        return S.render_clip(
            subject.image, subject.landmarks, label, np.random.default_rng([0, i]), args.frames, args.size
        )

    rows = []
    render(0)  # warm-up
    start = time.perf_counter()
    for i in range(args.clips):
        render(i)
    seconds = time.perf_counter() - start
    rows.append({"stage": "render", "clips": args.clips, "seconds": seconds})

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i in range(args.clips):
            write_video(Path(tmp) / f"{i}.mp4", render(i).frames)
        rows.append({"stage": "render+write", "clips": args.clips, "seconds": time.perf_counter() - start})

        per_label = max(1, args.clips // len(S.LABELS))
        start = time.perf_counter()
        S.generate_dataset(
            Path(tmp) / "ds",
            clips_per_label=per_label,
            seed=0,
            identities=3,
            num_frames=(args.frames, args.frames),
            size=args.size,
            num_proc=1,
        )
        rows.append(
            {"stage": "generate_dataset", "clips": per_label * len(S.LABELS), "seconds": time.perf_counter() - start}
        )
    for row in rows:
        row["frames"] = row["clips"] * args.frames
        row["clips_per_s"] = row["clips"] / row["seconds"]
        row["frames_per_s"] = row["frames"] / row["seconds"]
    print_table(rows, ["stage", "clips", "frames", "seconds", "clips_per_s", "frames_per_s"])

    probe = {}
    if args.probe_clips:
        probe = landmark_probe(S.make_identities(faces, 5, seed=0), args.probe_clips, 20)
        print(
            "linear probe on true landmarks, held-out subjects (chance 0.143):",
            ", ".join(f"{k} {v:.3f}" for k, v in probe.items() if k != "clips"),
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    sheets = []
    for k, label in enumerate(S.LABELS):
        clips = []
        for j in range(args.sheet_rows):
            subject = subjects[(j * 2 + k) % len(subjects)]
            clips.append(
                S.generate_clip(
                    subject.image, subject.landmarks, label, np.random.default_rng([1, k, j]), args.frames, args.size
                )
            )
        path = RESULTS / f"synthetic_{label}.png"
        cv2.imwrite(str(path), cv2.cvtColor(contact_sheet(clips, label), cv2.COLOR_RGB2BGR))
        sheets.append(str(path.relative_to(REPO)))
    print("contact sheets:", ", ".join(sheets))

    write_results(
        "synthetic",
        rows,
        frames_per_clip=args.frames,
        size=list(args.size),
        threads=args.threads,
        faces=[f.name for f in faces],
        subjects=len(subjects),
        setup_seconds=setup_s,
        contact_sheets=sheets,
        landmark_probe=probe,
    )
    return rows


if __name__ == "__main__":
    main()
