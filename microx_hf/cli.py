"""The `microx` command line.

    microx predict VIDEO... [--model M] [--json] [--timeline-csv PATH] [--batch-size N]
    microx crops VIDEO -o sheet.png [--window K] [--model M]

`predict` prints a table (or JSON) with the emotion of each video; a video that cannot be used is reported on
stderr and skipped, and the exit code is then 1. `crops` writes a contact sheet of the region crops the model sees.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import MicroXError

logger = logging.getLogger("microx_hf.cli")

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microx", description="Recognise emotion in face videos with MicroX (one ConvLSTM per facial region)."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="the emotion in each video")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("--model", default=None, help="model folder or Hub id (default: $MICROX_MODEL or the bundled one)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per video) instead of a table")
    p.add_argument("--timeline-csv", type=Path, default=None, metavar="PATH",
                   help="write per-window probabilities of every video to this CSV")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default 32)")

    c = sub.add_parser("crops", help="a contact sheet of the region crops of a video")
    c.add_argument("video", metavar="VIDEO")
    c.add_argument("-o", "--output", type=Path, required=True, help="image file to write (.png, .jpg)")
    c.add_argument("--window", type=int, default=None, help="only this window (0-based); default: every frame")
    c.add_argument("--model", default=None, help="take the crop settings from this model (default: bundled/default)")
    return parser


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _write_timeline(path: Path, results: list[tuple[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = None
        for video, prediction in results:
            if writer is None:
                writer = csv.writer(f)
                writer.writerow(["video", "window", "start_s", "has_face", *prediction.labels,
                                 *(f"weight_{r}" for r in prediction.regions)])  # fmt: skip
            for w, start in enumerate(prediction.window_starts):
                has_face = bool(prediction.window_has_face[w])
                probs = [f"{p:.6f}" if has_face else "" for p in prediction.window_probs[w]]
                weights = [f"{x:.6f}" if has_face else "" for x in prediction.region_weights[w]]
                writer.writerow([video, w, f"{start:.4f}", int(has_face), *probs, *weights])


def _predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .predict import load_model, predict

    if args.batch_size < 1:
        print(f"microx: --batch-size must be at least 1, got {args.batch_size}", file=sys.stderr)
        return EXIT_USAGE
    try:
        model, feature_extractor = load_model(args.model)
    except (MicroXError, ValueError) as e:
        print(f"microx: {e}", file=sys.stderr)
        return EXIT_USAGE

    results, failed = [], []
    for video in tqdm(args.videos, desc="videos", unit="video", file=sys.stderr, disable=None):
        try:
            prediction = predict(video, model=model, feature_extractor=feature_extractor, batch_size=args.batch_size)
        except MicroXError as e:
            failed.append((video, e))
            tqdm.write(f"microx: skipped {video}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        except Exception as e:  # a bug or an exotic file: report it, keep going with the other videos
            logger.debug("unexpected error on %s", video, exc_info=True)
            failed.append((video, e))
            tqdm.write(f"microx: skipped {video}: unexpected {type(e).__name__}: {e} (run with -vv for the "
                       "traceback and report it)", file=sys.stderr)  # fmt: skip
            continue
        results.append((video, prediction))

    if args.json:
        items = [{"video": video, **p.to_dict()} for video, p in results]
        items += [{"video": video, "error": type(e).__name__, "message": str(e)} for video, e in failed]
        print(json.dumps(items, indent=2))
    elif results:
        rows = [("video", "emotion", "score", "face", "windows", "top region")]
        for video, p in results:
            top_region = max(p.region_contributions, key=p.region_contributions.get)
            rows.append((
                video, p.label, f"{p.scores[p.label]:.2f}", f"{p.face_fraction:.0%}",
                f"{int(p.window_has_face.sum())}/{len(p.window_starts)}",
                f"{top_region} ({p.region_contributions[top_region]:.0%})",
            ))  # fmt: skip
        print(_table(rows))
    if args.timeline_csv is not None and results:
        _write_timeline(args.timeline_csv, results)
    if failed:
        print(f"microx: {len(failed)} of {len(args.videos)} videos failed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK


def _crops(args: argparse.Namespace) -> int:
    import cv2

    from .feature_extraction_microx import MicroXFeatureExtractor
    from .predict import DEFAULT_MODEL, MODEL_ENV, load_model
    from .visualize import contact_sheet

    try:
        if args.model is not None or os.environ.get(MODEL_ENV) or (DEFAULT_MODEL / "config.json").is_file():
            _, feature_extractor = load_model(args.model)
        else:
            feature_extractor = MicroXFeatureExtractor()
        clip = feature_extractor.extract_clip(args.video)
        sheet = contact_sheet(clip, window=args.window, num_frames=feature_extractor.num_frames,
                              stride=feature_extractor.window_stride)  # fmt: skip
    except (MicroXError, IndexError) as e:
        print(f"microx: {args.video}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_SOME_FAILED
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        print(f"microx: cannot write {args.output} (use a .png or .jpg name)", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]}, {len(clip.regions)} regions)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `microx` command; returns the exit code (0 ok, 1 some video failed, 2 usage or model error)."""
    args = _parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would bury the one over the videos
    if args.verbose < 2:
        # FFmpeg's and OpenCV's own messages ("moov atom not found") repeat what our errors say, less clearly.
        # FFmpeg reads this when OpenCV first opens a file, so setting it here is in time.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    if args.command == "predict":
        return _predict(args)
    return _crops(args)


if __name__ == "__main__":
    sys.exit(main())
