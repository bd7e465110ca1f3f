"""Generation speed of the synthetic expression clips (`training/synthetic.py`), and one contact sheet per label.

Measures, in one process on `--threads` OpenCV threads, clips/s and frames/s for:
- `render`: `render_clip` alone (landmark motion, piecewise-affine warp, mouth painting, lighting, blur, noise, JPEG);
- `render+write`: the same plus writing the mp4v file;
- `generate_dataset`: the whole `generate_dataset(num_proc=1)` call (finding the faces' landmarks, making the
  identities, rendering and writing, the manifest).

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

from training import synthetic as S  # noqa: E402


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


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="OpenCV/torch threads (one per worker in datasets)")
    parser.add_argument("--clips", type=int, default=21, help="clips per timing (spread over the 7 labels)")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=S._size, default=(320, 240), help="WIDTHxHEIGHT")
    parser.add_argument("--sheet-rows", type=int, default=4, help="clips per contact sheet")
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
            S.write_video(Path(tmp) / f"{i}.mp4", render(i).frames)
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
    )
    return rows


if __name__ == "__main__":
    main()
