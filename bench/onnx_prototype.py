"""A torch-free `predict` prototype for the benchmarks: decode -> landmarks -> crops -> `OnnxRuntime`, streaming.

It imports numpy, OpenCV, onnxruntime and MicroX's extraction only, and scores windows as `microx_hf.scoring`
does (per-frame work once per frame, windows in batches as soon as their frames are in, old frames dropped) but on
numpy arrays through the runtime interface (`encode_frames` / `classify_windows`). The refactor of issue 20 moves
`ClipScorer` onto that interface; this stays a measuring tool, not the library's scorer.

    python bench/onnx_prototype.py VIDEO [--model FOLDER] [--backend dlib] [--no-overlap] [--profile]

prints one JSON object: the label and clip scores, the frames, the wall time from the process start to the first
decoded frame and to the end, and (with --profile) the seconds spent in each stage on one thread.
"""

from __future__ import annotations

import time

T_IMPORT = time.time()  # before anything heavy is imported: the start-up clock of the process

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Stage times are CPU times of the process (one thread of ours in --profile, and the decoder's): on a shared machine the
# wall time of a stage mostly measures the other work.
CLOCK = time.process_time


class StreamScorer:
    """Scores the windows of one clip as its frames arrive (numpy, any runtime of the interface).

    Args:
        runtime: Has `num_frames`, `encode_frames`, `classify_windows` (e.g. `OnnxRuntime`).
        stride: Frames between window starts.
        image_mean, image_std: The extractor's normalisation.
        batch_size: Windows per `classify_windows` call.
        timers: Optional dict, seconds per stage added to it ("encode_frames", "classify_windows").
    """

    def __init__(self, runtime, stride: int, image_mean, image_std, batch_size: int = 8, timers=None) -> None:
        self.runtime = runtime
        self.t = int(runtime.num_frames)
        self.stride = int(stride)
        self.mean = np.asarray(image_mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(image_std, np.float32).reshape(-1, 1, 1)
        self.batch_size = batch_size
        self.timers = timers
        self.base = 0  # absolute index of the first buffered frame
        self.crops: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.encoder_crops: list[np.ndarray | None] = []
        self.features: dict[str, np.ndarray] = {}  # name -> (encoded, ...) of the buffered frames
        self.encoded = 0
        self.next_window = 0
        self.ready: list[int] = []
        self.results: dict[int, np.ndarray | None] = {}

    def _norm(self, crops: np.ndarray) -> np.ndarray:
        return (crops.astype(np.float32) * np.float32(1 / 255) - self.mean) / self.std

    def push(self, crops: np.ndarray, mask: np.ndarray, encoder_crop: np.ndarray | None) -> None:
        self.crops.append(crops)
        self.masks.append(np.asarray(mask, bool))
        self.encoder_crops.append(encoder_crop)
        while self.next_window * self.stride + self.t <= self.base + len(self.crops):
            self.ready.append(self.next_window * self.stride)
            self.next_window += 1
        if len(self.ready) >= self.batch_size:
            self._flush()

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts (W,), probs (W, L), NaN rows without a face)."""
        n = self.base + len(self.crops)
        last = max(n - self.t, 0)
        if last not in self.results and last not in self.ready:
            self.ready.append(last)
        self._flush()
        starts = np.asarray(sorted(self.results))
        labels = len(self.runtime.labels)
        probs = np.stack([self.results[s] if self.results[s] is not None else np.full(labels, np.nan) for s in starts])
        return starts, probs

    def _tick(self, name: str, since: float) -> None:
        if self.timers is not None:
            self.timers[name] += CLOCK() - since

    def _encode(self, upto: int) -> None:
        first = self.base + self.encoded
        if upto <= first:
            return
        lo, hi = first - self.base, upto - self.base
        started = CLOCK()
        crops = self._norm(np.stack(self.crops[lo:hi], axis=1))[None]  # (1, R, M, C, S, S)
        mask = np.stack(self.masks[lo:hi], axis=1)[None]  # (1, R, M)
        encoder = self.encoder_crops[lo:hi]
        encoder_values = self._norm(np.stack(encoder))[None] if all(e is not None for e in encoder) else None
        new = self.runtime.encode_frames(crops, mask, encoder_values)
        self._tick("encode_frames", started)
        for name, value in new.items():
            old = self.features.get(name)
            self.features[name] = value[0] if old is None else np.concatenate([old, value[0]])
        self.encoded = hi

    def _flush(self) -> None:
        ready, self.ready = self.ready, []
        for i in range(0, len(ready), self.batch_size):
            self._score(ready[i : i + self.batch_size])
        keep_from = min(self.next_window * self.stride, self.base + len(self.crops) - self.t)
        drop = min(keep_from - self.base, len(self.crops))
        if drop > 0:
            del self.crops[:drop], self.masks[:drop], self.encoder_crops[:drop]
            cut = min(drop, self.encoded)
            self.features = {k: v[cut:] for k, v in self.features.items()}
            self.encoded -= cut
            self.base += drop

    def _score(self, starts: list[int]) -> None:
        n = self.base + len(self.crops)
        index = np.minimum(np.asarray(starts)[:, None] + np.arange(self.t)[None], n - 1)  # (W, T) absolute
        masks = np.stack(self.masks, axis=1)  # (R, N_buffered)
        local = index - self.base
        has_face = masks[:, local].any(axis=(0, 2))  # (W,)
        for start, face in zip(starts, has_face, strict=True):
            if not face:
                self.results[start] = None
        if not has_face.any():
            return
        self._encode(int(index[has_face].max()) + 1)
        local = local[has_face]
        started = CLOCK()
        windows = {k: v[local] for k, v in self.features.items()}  # (W, T, ...)
        out = self.runtime.classify_windows(windows, masks[:, local].transpose(1, 0, 2))
        self._tick("classify_windows", started)
        logits = out["logits"].astype(np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        for start, p in zip(np.asarray(starts)[has_face], probs, strict=True):
            self.results[int(start)] = p


class TimedBackend:
    """Wraps a landmark backend, adding the seconds of its detection and landmark calls to `timers`."""

    def __init__(self, backend, timers) -> None:
        self._backend, self._timers = backend, timers
        self.name, self.wants_grey = backend.name, backend.wants_grey

    def detect_boxes(self, image):
        started = CLOCK()
        try:
            return self._backend.detect_boxes(image)
        finally:
            self._timers["detect"] += CLOCK() - started

    def landmarks(self, image, box):
        started = CLOCK()
        try:
            return self._backend.landmarks(image, box)
        finally:
            self._timers["landmarks"] += CLOCK() - started


def gated_tracker_class(max_shift: float = 0.02, max_skip: int = 10, patch: int = 64):
    """A `FaceTracker` that skips the landmark model between full passes while the face has not moved.

    After each full pass it keeps a grey patch of the face box; on a following frame it measures the face's shift
    against that patch (phase correlation of the same box in the new frame: about 0.1 ms) and, while the shift stays
    under `max_shift` inter-ocular distances and fewer than `max_skip` frames were skipped, reuses the full pass's
    landmarks moved by that shift instead of running the model (and its similarity check). `stats` counts the
    passes and skips; `errors` holds, at every full pass that follows skipped frames, the distance (in
    inter-ocular distances, median over the 68 points) between where the reused landmarks would have been and where
    the model put them: the price of skipping, measured.
    """
    import cv2

    from microx_hf.landmarks import FaceTracker
    from microx_hf.regions import eye_centers

    class GatedTracker(FaceTracker):
        def reset(self) -> None:
            super().reset()
            self._ref = None  # (patch (P, P) float32, box (4,), points (68, 2), iod)
            self._skipped = 0
            self._last_shift = np.zeros(2)
            self.stats.update(full=0, skipped=0)
            self.errors: list[float] = []

        def _patch(self, grey: np.ndarray, box: np.ndarray) -> np.ndarray | None:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            h, w = grey.shape[:2]
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x1 - x0 < 16 or y1 - y0 < 16:
                return None
            return cv2.resize(grey[y0:y1, x0:x1], (patch, patch), interpolation=cv2.INTER_AREA).astype(np.float32)

        def _remember(self, grey: np.ndarray, face) -> None:
            left, right = eye_centers(face.points)
            iod = float(np.linalg.norm(right - left))
            box = face.box.copy()
            p = self._patch(grey, box)
            self._ref = None if p is None or iod < 2 else (p, box, face.points.copy(), iod)
            self._skipped = 0

        def _shift(self, grey: np.ndarray) -> np.ndarray | None:
            ref, box = self._ref[0], self._ref[1]
            p = self._patch(grey, box)
            if p is None or p.shape != ref.shape:
                return None
            (dx, dy), _ = cv2.phaseCorrelate(ref, p, self._window)
            k = (box[2] - box[0]) / patch, (box[3] - box[1]) / patch
            return np.array([dx * k[0], dy * k[1]])

        def _track(self, grey, image):
            from dataclasses import replace

            if not hasattr(self, "_window"):
                self._window = cv2.createHanningWindow((patch, patch), cv2.CV_32F)
            if self._ref is not None and self._face is not None and self._skipped < max_skip:
                shift = self._shift(grey)
                if shift is not None and np.hypot(*shift) < max_shift * self._ref[3]:
                    self._skipped += 1
                    self._last_shift = shift
                    self.stats["skipped"] += 1
                    points = (self._ref[2] + shift).astype(np.float32)
                    face = replace(self._face, points=points, box=self._ref[1] + np.tile(shift, 2))
                    self._advance(face)
                    return face
            predicted = (self._ref[2] + self._last_shift) if self._ref is not None and self._skipped else None
            face = super()._track(grey, image)
            self.stats["full"] += 1
            if face is not None:
                if predicted is not None:
                    left, right = eye_centers(face.points)
                    iod = max(float(np.linalg.norm(right - left)), 1.0)
                    self.errors.append(float(np.median(np.linalg.norm(predicted - face.points, axis=1)) / iod))
                self._remember(grey, face)
            return face

        def _detect_step(self, grey, image):
            face = super()._detect_step(grey, image)
            self.stats["full"] += 1
            if face is not None:
                self._remember(grey, face)
            return face

    return GatedTracker


def _extract_worker(video: str, folder: str, backend: str | None, gate: float, out) -> None:
    """The extraction stage in its own process: decode, landmarks, crops; each frame's crops go to `out` (a few tens
    of kB a frame, not the frame)."""
    import cv2

    cv2.setNumThreads(1)
    from microx_hf.extraction import MicroXCropper

    fe = MicroXCropper.from_json_file(Path(folder) / "preprocessor_config.json")
    if backend:
        fe.landmark_backend = backend
    if gate > 0:
        from microx_hf import landmarks

        landmarks.FaceTracker = gated_tracker_class(max_shift=gate)
    try:
        batch = []
        for frame in fe.iter_crops(video):
            batch.append((frame.crops, frame.mask, frame.encoder_crop, frame.points))
            if len(batch) == 8:  # a few frames per message: fewer wake-ups of the other side
                out.put(batch)
                batch = []
        out.put(batch)
        out.put(fe.get_backend().name)
    except BaseException as error:  # handed to the consumer
        out.put(error)


def _from_process(video: str, folder: Path, backend: str | None, gate: float):
    """Frames' crops from `_extract_worker` in a spawned process (started before this process loads its model)."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.Queue(maxsize=8)
    worker = context.Process(target=_extract_worker, args=(video, str(folder), backend, gate, queue), daemon=True)
    worker.start()

    def frames():
        from types import SimpleNamespace

        while True:
            item = queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, str):  # the backend's name: the end
                worker.join(timeout=5)
                return
            for crops, mask, encoder_crop, points in item:
                yield SimpleNamespace(crops=crops, mask=mask, encoder_crop=encoder_crop, points=points)

    return frames()


def run(
    video: str,
    model: str | None,
    backend: str | None,
    overlap: bool,
    profile: bool,
    threads: int,
    gate: float = 0.0,
    landmarks_out: str | None = None,
    pipeline: str = "thread",
) -> dict:
    from microx_hf.predict import DEFAULT_MODEL

    folder = Path(model) if model else DEFAULT_MODEL
    process_frames = _from_process(video, folder, backend, gate) if pipeline == "process" else None
    from microx_hf.extraction import MicroXCropper
    from microx_hf.predict import _in_thread
    from microx_hf.runtime_onnx import OnnxRuntime

    t_loaded_imports = time.time()
    fe = MicroXCropper.from_json_file(folder / "preprocessor_config.json")
    if backend:
        fe.landmark_backend = backend
    runtime = OnnxRuntime(folder, threads=threads)
    t_runtime = time.time()
    timers: dict[str, float] = defaultdict(float)
    scorer = StreamScorer(runtime, fe.window_stride, fe.image_mean, fe.image_std, timers=timers if profile else None)
    marks = {}
    if profile:  # time each extraction stage (one thread: no overlap)
        from microx_hf import video as video_module

        timed_backend = TimedBackend(fe.get_backend(), timers)
        fe.get_backend = lambda: timed_backend
        crop_frame = fe._crop_frame

        def timed_crop(*args, **kwargs):
            started = CLOCK()
            try:
                return crop_frame(*args, **kwargs)
            finally:
                timers["crops"] += CLOCK() - started

        fe._crop_frame = timed_crop
        decode = video_module.iter_frames

        def timed_decode(*args, **kwargs):
            frames = decode(*args, **kwargs)
            while True:
                started = CLOCK()
                try:
                    item = next(frames)
                except StopIteration:
                    return
                finally:
                    timers["decode"] += CLOCK() - started
                yield item

        video_module.iter_frames = timed_decode
    trackers = []
    if gate > 0:  # skip the landmark model while the face stays within `gate` inter-ocular distances
        from microx_hf import landmarks

        gated = gated_tracker_class(max_shift=gate)

        def make_tracker(*args, **kwargs):
            trackers.append(gated(*args, **kwargs))
            return trackers[-1]

        landmarks.FaceTracker = make_tracker
    if process_frames is not None:
        frames = process_frames
    else:
        frames = fe.iter_crops(video)
        if overlap:
            frames = _in_thread(frames)
    count = 0
    points = [] if landmarks_out else None
    started, cpu_started = time.perf_counter(), time.process_time()
    for frame in frames:
        if count == 0:
            marks["first_frame"] = time.time()
            marks["first_frame_cpu"] = time.process_time()  # the process's CPU since it started: imports and loads
        count += 1
        scorer.push(frame.crops, frame.mask, frame.encoder_crop)
        if points is not None:
            points.append(np.full((68, 2), np.nan, np.float32) if frame.points is None else frame.points)
    starts, probs = scorer.finish()
    loop_s = time.perf_counter() - started
    loop_cpu_s = time.process_time() - cpu_started
    has_face = np.isfinite(probs).all(axis=1)
    clip = probs[has_face].mean(axis=0) if has_face.any() else np.full(len(runtime.labels), np.nan)
    result = {
        "label": runtime.labels[int(np.nanargmax(clip))] if has_face.any() else None,
        "scores": dict(zip(runtime.labels, np.round(clip, 6).tolist(), strict=True)),
        "frames": count,
        "windows": int(len(starts)),
        "window_probs": np.round(probs, 6).tolist(),
        "imports_s": t_loaded_imports - T_IMPORT,
        "runtime_load_s": t_runtime - t_loaded_imports,
        "first_frame_at": marks.get("first_frame"),
        "first_frame_cpu_s": marks.get("first_frame_cpu"),
        "loop_s": loop_s,
        "loop_cpu_s": loop_cpu_s,
        "t_import": T_IMPORT,
        "torch_imported": "torch" in sys.modules,
        "backend": fe.landmark_backend if process_frames is not None else fe.get_backend().name,
        "pipeline": pipeline if overlap else "none",
    }
    if landmarks_out:
        np.savez_compressed(landmarks_out, points=np.stack(points), probs=probs)
    if trackers:
        errors = np.asarray(trackers[0].errors)
        result["gate"] = {**trackers[0].stats, "max_shift_iod": gate,
                          "error_median_iod": float(np.median(errors)) if len(errors) else None,
                          "error_p90_iod": float(np.percentile(errors, 90)) if len(errors) else None}  # fmt: skip
    if profile:
        result["stages_s"] = {k: round(v, 4) for k, v in timers.items()}
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", default=None, help="landmark backend (default: the model's setting)")
    parser.add_argument("--no-overlap", action="store_true", help="one thread: no extraction thread")
    parser.add_argument("--profile", action="store_true", help="seconds per stage (implies --no-overlap)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--gate", type=float, default=0.0,
                        help="skip the landmark model while the face moved less than this many inter-ocular "
                             "distances since the last full pass (0: never skip)")  # fmt: skip
    parser.add_argument("--landmarks-out", default=None, help="write every frame's 68 points and the window "
                        "probabilities to this .npz (measurements only: keep it out of the repository)")  # fmt: skip
    parser.add_argument("--pipeline", choices=["thread", "process"], default="thread",
                        help="where decoding and landmarks run beside the model: a thread (GIL shared) or a spawned "
                             "process (crops sent over a queue)")  # fmt: skip
    args = parser.parse_args(argv)
    overlap = not (args.no_overlap or args.profile)
    result = run(args.video, args.model, args.backend, overlap, args.profile, args.threads, args.gate,
                 args.landmarks_out, args.pipeline if overlap else "none")  # fmt: skip
    result["end_at"] = time.time()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
