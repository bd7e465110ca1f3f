"""Feature-extractor throughput: decode, detect, landmarks, crop and the whole `MicroXFeatureExtractor`.

A 480p (854x480) 30 fps video of `--seconds` seconds is made from the astronaut photo (the face panning across the
frame). Each stage is timed per available landmark backend, against the decode-only ceiling measured in the
same run (the machine is shared, so the ratios matter more than the absolute numbers):

- decode: `microx_hf.video.iter_frames` (OpenCV, resampled to 30 fps), nothing else;
- detect: the detector alone on every frame (grey, downscaled to `detect_max_side`);
- landmarks: the 68-point model alone from a known box;
- crop: cutting the regions from known landmarks;
- track: `FaceTracker.update` (detect every k-th frame, landmarks every frame) on decoded frames;
- extract_clip / __call__: the whole extractor on the file (decode included), and with windows + normalisation.

Then on real camera footage (854x480 H.264, `bench/real_media.py`), in the same run: decode-only, the whole
extractor per landmark backend (with and without `landmark_skip_shift`), and the whole `predict` in this process per
runtime (`--runtimes`: onnx, torch) and backend, its model already loaded: two threads (decoding and landmarks beside
the crops and the network, as `predict` runs by default) and one.

    python bench/bench_extractor.py [--seconds 10] [--threads 2] [--backends dlib mediapipe face_alignment]
                                    [--runtimes onnx torch] [--skip-shifts 0.02]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, set_threads, timed, write_results  # noqa: E402

GOAL_FPS = 300.0


def _rate(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else float("inf")


def _time(fn, repeat: int) -> float:
    """Best of `repeat` wall times of `fn()` in seconds (no warm-up: the first call is part of the cost)."""
    return timed(fn, repeat=repeat, warmup=0)


def bench_backend(name: str, path: Path, frames, boxes, points, n_total: int, repeat: int, args) -> list[dict]:
    import cv2

    from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
    from microx_hf.landmarks import FaceTracker, get_backend
    from microx_hf.regions import REGION_NAMES, crop_regions

    backend = get_backend(name)
    random_weights = name == "face_alignment" and args.fan_random_weights
    # FAN takes about 0.3 s per face on a CPU: time it on fewer frames.
    n = len(frames) if name == "dlib" else min(len(frames), 10)
    sub = frames[:n]
    rows = []

    def add(stage: str, count: int, seconds: float, note: str = "") -> None:
        if random_weights:
            note += " (random FAN weights: timing only)"
        rows.append(
            {
                "backend": name,
                "stage": stage,
                "frames": count,
                "seconds": round(seconds, 4),
                "frames_per_s": round(_rate(count, seconds), 1),
                "ms_per_frame": round(1000 * seconds / count, 3),
                "note": note,
            }
        )

    def detect_all() -> None:
        for frame in sub:
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            scale = args.detect_max_side / max(grey.shape)
            small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            backend.detect_boxes(small)

    add("detect", n, _time(detect_all, repeat), f"grey at {args.detect_max_side} px, every frame")

    def landmarks_all() -> None:
        for frame, box in zip(sub, boxes, strict=False):
            image = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if backend.wants_grey else frame
            backend.landmarks(image, box)

    add("landmarks", n, _time(landmarks_all, repeat), "from a known box (grey conversion included)")
    regions = list(args.regions)

    def crop_all() -> None:
        for frame, pts in zip(frames, points, strict=False):
            crop_regions(frame, pts, regions, args.crop_size)

    add("crop", len(frames), _time(crop_all, repeat), f"{len(regions)} regions at {args.crop_size} px, aligned")

    def track_all() -> None:
        tracker = FaceTracker(backend, detect_every=args.detect_every, detect_max_side=args.detect_max_side)
        for frame in sub:
            tracker.update(frame)

    if random_weights:
        return rows  # random landmarks lose the face at once: tracking times would mean nothing
    add("track", n, _time(track_all, repeat), f"detect every {args.detect_every}, landmarks every frame")

    def track_whole_frame() -> None:
        tracker = FaceTracker(
            backend, detect_every=args.detect_every, detect_max_side=args.detect_max_side, roi_margin=None
        )
        for frame in sub:
            tracker.update(frame)

    add("track", n, _time(track_whole_frame, repeat), "the same, re-detecting on the whole frame")
    if name != "dlib":
        return rows  # the whole extractor with FAN on a 10 s video would take minutes

    settings = dict(
        landmark_backend=name,
        regions=regions,
        crop_size=args.crop_size,
        detect_every=args.detect_every,
        detect_max_side=args.detect_max_side,
    )
    extractor = MicroXFeatureExtractor(**settings)
    add("extract_clip", n_total, _time(lambda: extractor.extract_clip(path), repeat), "decode included")
    add(
        "__call__",
        n_total,
        _time(lambda: extractor(path, return_tensors="pt"), repeat),
        "extract_clip + windows + normalise",
    )
    fast = MicroXFeatureExtractor(**{**settings, "detect_every": 10})
    add("extract_clip", n_total, _time(lambda: fast.extract_clip(path), repeat), "detect every 10")
    all_regions = MicroXFeatureExtractor(**{**settings, "regions": list(REGION_NAMES)})
    add("extract_clip", n_total, _time(lambda: all_regions.extract_clip(path), repeat), "all 7 regions")
    return rows


def _time_and_cpu(fn, repeat: int) -> tuple[float, float]:
    """(best wall seconds, median CPU seconds of this process) over `repeat` calls of `fn`. On a machine shared with
    other work, the CPU seconds hold up far better than the wall time; wall time shows what two threads gain."""
    import statistics
    import time

    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), statistics.median(cpus)


def bench_real(args, backends: list[str]) -> list[dict]:
    """Decode-only, the whole extractor and the whole `predict` on real camera footage (854x480 29.97 fps H.264,
    `bench/real_media.py`), in the same run as the synthetic rows: camera footage decodes 2-3x slower than the
    synthetic clips."""
    from real_media import real_480p

    from microx_hf.extraction import MicroXExtraction
    from microx_hf.predict import DEFAULT_MODEL, predict
    from microx_hf.runtime import load_runtime
    from microx_hf.video import iter_frames

    path = real_480p(args.seconds)
    decoded = sum(1 for _ in iter_frames(path, fps=30.0))
    decode_s, decode_cpu = _time_and_cpu(lambda: sum(1 for _ in iter_frames(path, fps=30.0)), args.repeat)
    rows = [{"backend": "-", "stage": "decode", "frames": decoded, "seconds": round(decode_s, 4),
             "frames_per_s": round(_rate(decoded, decode_s), 1), "ms_per_frame": round(1000 * decode_s / decoded, 3),
             "cpu_frames_per_s": round(_rate(decoded, decode_cpu), 1), "note": "REAL footage, iter_frames: the ceiling",
             "vs_decode": 1.0, "cpu_vs_decode": 1.0}]  # fmt: skip

    def add(backend: str, stage: str, timing: tuple[float, float], note: str, runtime: str = "-") -> None:
        seconds, cpu = timing
        rate, cpu_rate = _rate(decoded, seconds), _rate(decoded, cpu)
        rows.append({"backend": backend, "runtime": runtime, "stage": stage, "frames": decoded,
                     "seconds": round(seconds, 4), "frames_per_s": round(rate, 1),
                     "ms_per_frame": round(1000 * seconds / decoded, 3), "cpu_frames_per_s": round(cpu_rate, 1),
                     "note": f"REAL footage, {note}", "vs_decode": round(rate / rows[0]["frames_per_s"], 3),
                     "cpu_vs_decode": round(cpu_rate / rows[0]["cpu_frames_per_s"], 3)})  # fmt: skip
        print(rows[-1], flush=True)

    shipped = MicroXExtraction.from_json_file(DEFAULT_MODEL / "preprocessor_config.json")
    for name in [b for b in backends if b != "face_alignment"]:
        for skip in [None, *args.skip_shifts]:
            extractor = MicroXExtraction.from_json_file(DEFAULT_MODEL / "preprocessor_config.json")
            extractor.landmark_backend, extractor.landmark_skip_shift = name, skip
            extractor.get_backend()  # built before the clock starts
            seconds = _time_and_cpu(lambda ex=extractor: ex.extract_clip(path), args.repeat)
            skipped = f", landmark_skip_shift={skip:g}" if skip else ""
            add(name + (f"+skip{skip:g}" if skip else ""), "extract_clip", seconds, f"decode included{skipped}")
    for runtime in args.runtimes:
        engine, _ = load_runtime(DEFAULT_MODEL, runtime)
        for name in [b for b in backends if b != "face_alignment"]:
            for skip in [None, *args.skip_shifts] if runtime == "onnx" else [None]:
                extractor = MicroXExtraction.from_json_file(DEFAULT_MODEL / "preprocessor_config.json")
                extractor.landmark_backend, extractor.landmark_skip_shift = name, skip
                extractor.get_backend()
                label = name + (f"+skip{skip:g}" if skip else "")
                for overlap in (True, False):
                    seconds = _time_and_cpu(
                        lambda e=engine, x=extractor, o=overlap: predict(path, e, x, overlap=o), args.repeat
                    )
                    add(label, "predict", seconds, f"model loaded, {2 if overlap else 1} threads", runtime)
    rows[0]["shipped_backend"] = shipped.landmark_backend
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="854x480")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads (decoding, resizing)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads (the FAN network)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", "--backend", nargs="+", default=None, help="default: every available backend")
    parser.add_argument("--runtimes", "--runtime", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"],
                        help="runtimes of the whole predict() on real footage")  # fmt: skip
    parser.add_argument("--skip-shifts", type=float, nargs="*", default=[0.02],
                        help="also measure the real-footage rows with this landmark_skip_shift")  # fmt: skip
    parser.add_argument("--crop-size", type=int, default=48)
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--detect-max-side", type=int, default=480)
    parser.add_argument("--regions", nargs="+", default=["face", "left_eye", "right_eye", "nose", "mouth"])
    parser.add_argument(
        "--no-fan-random-weights",
        dest="fan_random_weights",
        action="store_false",
        help="without FAN weights, skip face_alignment instead of timing it with random weights",
    )
    parser.add_argument(
        "--codec",
        choices=["h264", "mp4v"],
        default=None,
        help="default: h264 (what real clips use) when ffmpeg is available, else mp4v",
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)
    import torch

    # FAN on 2 threads of a shared, busy machine ran 10x slower than on one (docs/MEASUREMENTS.md: 70x for training).
    torch.set_num_threads(args.torch_threads)
    logging.basicConfig(level=logging.WARNING)

    from microx_hf.landmarks import available_backends

    fan_home = None
    if args.fan_random_weights and "face_alignment" not in available_backends():
        fan_home = _random_fan_weights()
    else:
        args.fan_random_weights = False
    from microx_hf.video import iter_frames
    from tests.media import face_poses, ffmpeg_exe, make_face_video, make_h264_video

    width, height = (int(v) for v in args.size.split("x"))
    n_frames = int(round(args.seconds * 30))
    backends = args.backends or available_backends()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        codec = args.codec or ("h264" if ffmpeg_exe() else "mp4v")
        path = make_face_video(Path(tmp) / "astronaut_480p.mp4", n_frames=n_frames, size=(width, height), motion="pan")
        if codec == "h264":
            path = make_h264_video(path, Path(tmp) / "astronaut_480p_h264.mp4")

        def decode() -> int:
            return sum(1 for _ in iter_frames(path, fps=30.0))

        decoded = decode()
        decode_s = _time(decode, args.repeat)
        decode_fps = _rate(decoded, decode_s)
        rows.append(
            {
                "backend": "-",
                "stage": "decode",
                "frames": decoded,
                "seconds": round(decode_s, 4),
                "frames_per_s": round(decode_fps, 1),
                "ms_per_frame": round(1000 * decode_s / decoded, 3),
                "note": f"iter_frames, {codec}: the ceiling",
            }
        )
        # Stage timings run on decoded frames held in memory: at most 150 of them (~180 MB at 480p).
        frames = [f.copy() for _, (_, f) in zip(range(150), iter_frames(path, fps=30.0), strict=False)]
        poses = face_poses(n_frames, (width, height), "pan")[: len(frames)]
        from microx_hf.landmarks import get_backend

        reference = get_backend("dlib") if "dlib" in available_backends() else get_backend(backends[0])
        boxes = [p[0].box for p in poses]
        grey = [f.mean(-1).astype("uint8") for f in frames] if reference.wants_grey else frames
        points = [reference.landmarks(g, b).points for g, b in zip(grey, boxes, strict=True)]
        for name in backends:
            rows += bench_backend(name, path, frames, boxes, points, decoded, args.repeat, args)
    for row in rows:
        row["vs_decode"] = round(row["frames_per_s"] / decode_fps, 3)
    rows += bench_real(args, backends)
    print(
        f"{width}x{height} {codec}, {args.seconds:g} s at 30 fps, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print_table(rows, ["backend", "runtime", "stage", "frames", "frames_per_s", "ms_per_frame", "vs_decode",
                       "cpu_frames_per_s", "cpu_vs_decode", "note"])  # fmt: skip
    whole = [r for r in rows if r["stage"] == "extract_clip" and r["note"] == "decode included"]
    real = [r for r in rows if r["note"].startswith("REAL")]
    summary = {
        "goal_frames_per_s": GOAL_FPS,
        "decode_frames_per_s": round(decode_fps, 1),
        "real_decode_frames_per_s": real[0]["frames_per_s"],
        "real_extract_clip_frames_per_s": {r["backend"]: r["frames_per_s"] for r in real if r["stage"] == "extract_clip"},
        "real_decode_cpu_frames_per_s": real[0]["cpu_frames_per_s"],
        "real_extract_clip_cpu_frames_per_s": {r["backend"]: r["cpu_frames_per_s"] for r in real
                                               if r["stage"] == "extract_clip"},
        "real_predict_cpu_frames_per_s": {f"{r['runtime']}/{r['backend']} {r['note'].split(', ')[-1]}":
                                          r["cpu_frames_per_s"] for r in real if r["stage"] == "predict"},
        "real_predict_frames_per_s": {f"{r['runtime']}/{r['backend']} {r['note'].split(', ')[-1]}": r["frames_per_s"]
                                      for r in real if r["stage"] == "predict"},
        "extract_clip_frames_per_s": whole[0]["frames_per_s"] if whole else None,
        "decode_over_extract": round(decode_fps / whole[0]["frames_per_s"], 2) if whole else None,
        "load_average": os.getloadavg(),
        "threads": args.threads,
        "torch_threads": args.torch_threads,
        "video": {"size": [width, height], "frames": n_frames, "fps": 30.0, "motion": "pan", "codec": codec},
    }  # fmt: skip
    if whole:
        print(
            f"whole extractor {summary['extract_clip_frames_per_s']:.0f} frames/s "
            f"({summary['decode_over_extract']:.2f}x below decode; goal {GOAL_FPS:.0f} frames/s, within 3x)"
        )
    write_results("extractor", rows, summary=summary)
    if fan_home is not None:
        fan_home.cleanup()
    return rows


def _random_fan_weights() -> tempfile.TemporaryDirectory:
    """A torch home holding FAN weights drawn at random under the real file name: the speed of the network does not
    depend on its weights, so the backend can be timed where the real file cannot be downloaded."""
    import torch
    from face_alignment.models import FAN

    from microx_hf.landmarks.fan_backend import FAN_WEIGHTS_FILE, NETWORK_SIZE

    home = tempfile.TemporaryDirectory()
    folder = Path(home.name) / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(FAN(NETWORK_SIZE).state_dict(), folder / FAN_WEIGHTS_FILE)
    os.environ["TORCH_HOME"] = home.name
    return home


if __name__ == "__main__":
    main()
