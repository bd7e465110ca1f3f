"""The `microx` command line.

    microx predict VIDEO_OR_FOLDER... [--model M] [--json | --jsonl] [--timeline-csv PATH] [--workers N]
                   [--batch-size N] [--max-duration SECONDS] [--face WHICH] [--allow-still] [--face-crops]
                   [--runtime R]
    microx crops VIDEO -o sheet.png [--window K] [--columns N] [--model M] [--face WHICH] [--allow-still]
                 [--face-crops]
    microx export onnx MODEL OUT [--torchscript] [--no-check] [--mediapipe]
    microx --version

Options such as ``-v`` and ``--model`` work before and after the subcommand. `predict` prints one row (or JSON
line) per video as soon as it is done; a video that cannot be used is reported on stderr and skipped. `crops` writes
a contact sheet of the region crops the model sees. Every error ends in one line on stderr (``-vv`` adds the
traceback of unexpected ones) and the exit code says what happened (`EXIT_CODES`). Everything that can be checked
without decoding a frame (input paths, output paths, options, `--window` against the video's header) is checked
before the model loads or the first frame is decoded. A video in which several faces were seen gets a note on stderr
saying which face the result is for, and a doubtful result (a dark, small or blurred face, few frames with a face,
nearly flat scores: `Prediction.quality`) a low-confidence note; the JSON carries the whole `quality` summary.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .cli_output import TableWriter, faces_note, quality_note, row, still_message, write_timeline
from .container import VIDEO_EXTENSIONS
from .errors import MicroXError, ModelNotFoundError, StillImageError
from .scoring import WINDOW_BATCH

logger = logging.getLogger("microx_hf.cli")

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_SOME_FAILED: "some video could not be used (predict: the others were still analysed)",
    EXIT_USAGE: "usage error: bad option, input path not found, no videos found, unusable output path, model not found",
    EXIT_INTERNAL: "unexpected internal error (a bug: rerun with -vv and report the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class UsageError(Exception):
    """A bad command line: printed as one line, exit code 2."""


def _one_line(message: object) -> str:
    """A message on one line (MicroX's messages may list reasons on several)."""
    return " ".join(part.strip() for part in str(message).strip().splitlines() if part.strip())


# --- arguments ----------------------------------------------------------------------------------------------------
def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    # The same options before and after the subcommand. After it they must not reset what was given before it, so
    # the subcommand's copies have no default (SUPPRESS) and -v counts into its own field.
    parser.add_argument("-v", "--verbose", action="count", dest="verbose" if top else "verbose_after",
                        default=0 if top else argparse.SUPPRESS,
                        help="more logging (-v info, -vv debug and tracebacks)")  # fmt: skip
    parser.add_argument("--model", default=None if top else argparse.SUPPRESS, metavar="M",
                        help="model folder or Hub id (default: $MICROX_MODEL, else the model bundled with the "
                             "package)")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:<4}{text}" for code, text in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="microx",
        description="Recognise emotion in face videos with MicroX (one ConvLSTM per facial region).",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version",
                        version=f"microx {__version__} (microx_hf from {Path(__file__).resolve().parent})")  # fmt: skip
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{predict,crops,export}")

    p = sub.add_parser(
        "predict",
        help="the emotion in each video",
        description="The emotion in each video: one table row (or JSON line with --jsonl) per video, printed as "
        "soon as it is done. A folder stands for every video file in it and in its subfolders (by extension: "
        f"{', '.join(sorted(VIDEO_EXTENSIONS))}; hidden files skipped), in name order. A video that cannot be used "
        "is reported on stderr and skipped.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or folders of videos")
    _add_common(p, top=False)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="print one JSON array (an object per video, in input order) at the end")  # fmt: skip
    fmt.add_argument("--jsonl", action="store_true", help="print one JSON object per line, as each video finishes")
    p.add_argument("--timeline-csv", type=Path, default=None, metavar="PATH",
                   help="write per-window probabilities of every video to this CSV")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="analyse N videos at once: this process and N-1 more, one thread each (default 1; "
                        "about one per CPU core pays)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=WINDOW_BATCH,
                   help=f"windows per forward pass (default {WINDOW_BATCH})")  # fmt: skip
    p.add_argument("--max-duration", type=float, default=None, metavar="SECONDS",
                   help="refuse videos longer than this (default: the model's setting, 600 s)")  # fmt: skip
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto",
                   help="what runs the network: onnx (ONNX Runtime, the model's onnx/ export: fast to start, no "
                        "torch), torch, or auto (default: onnx where the model has an export)")  # fmt: skip
    _add_extraction_options(p)

    c = sub.add_parser(
        "crops",
        help="a contact sheet of the region crops of a video",
        description="A contact sheet of the region crops the model sees: one row per region, one column per frame "
        "(stamped with its time); a region not found in a frame is greyed and crossed out in red. Without --window "
        "it draws at most --columns frames (default 60) spread evenly over the whole video, so a long video is "
        "sampled, not shown frame by frame; with --window K it draws the frames of window K (10 frames for the "
        "default model).",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("video", metavar="VIDEO")
    _add_common(c, top=False)
    c.add_argument("-o", "--output", type=Path, required=True,
                   help=f"image file to write ({', '.join(IMAGE_EXTENSIONS)})")  # fmt: skip
    c.add_argument("--window", type=int, default=None, metavar="K", help="only window K (0-based)")
    c.add_argument("--columns", type=int, default=60, metavar="N",
                   help="at most N frame columns without --window (default 60)")  # fmt: skip
    _add_extraction_options(c)

    e = sub.add_parser(
        "export",
        help="export the model's networks for inference without torch",
        description="Export a MicroX model's networks: `onnx` writes OUT/frames.onnx (the per-frame part), "
        "OUT/windows.onnx (the per-window part) and OUT/manifest.json, checked against torch (max |probability "
        'difference| <= 1e-4) before they are kept. Needs torch and `pip install "microx-hf[export]"`.',
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("format", choices=["onnx"], help="the format to write")
    add_export_arguments(e)
    return parser


def _add_extraction_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--face", default=None, metavar="WHICH",
                        help="which face to follow when several people are in the video: auto (default: the surest "
                             "detection, a little favouring large and central faces), largest, central, or a "
                             "number counting faces from the left from 0")  # fmt: skip
    parser.add_argument("--allow-still", action="store_true",
                        help="read a photo (PNG, JPEG, ...) as a one-frame video instead of refusing it; there is no "
                             "motion in one frame, so the result rests on the face alone")  # fmt: skip
    parser.add_argument("--face-crops", action="store_true",
                        help="the input is already cropped to one face (e.g. CK+48's 48x48 crops, DFEW/AFEW face "
                             "videos): the frame is the face box and the landmarks are found inside it; refused when "
                             "it is not a face crop (add --allow-still for images)")  # fmt: skip


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `microx export onnx` (and `python -m microx_hf.onnx_export`), here so that `--help` imports no
    torch."""
    parser.add_argument("export_model", metavar="MODEL", help="model folder or Hub id")
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write (by convention MODEL/onnx)")
    parser.add_argument("--torchscript", action="store_true",
                        help="torch's TorchScript-based exporter (fast; only models without a pooled head)")  # fmt: skip
    parser.add_argument("--no-check", action="store_true", help="skip the parity check against torch")
    parser.add_argument("--mediapipe", action="store_true",
                        help="also export the mediapipe landmark backend's networks into OUT")  # fmt: skip


# --- checks before any work -----------------------------------------------------------------------------------------
def _expand_videos(inputs: Sequence[str]) -> list[str]:
    """Video paths from files and folders (folders recursively, hidden entries skipped, in name order)."""
    videos: list[str] = []
    _check_inputs_exist(inputs)
    for name in inputs:
        path = Path(name)
        if not path.is_dir():
            videos.append(name)  # a bad file is reported like any other failing video
            continue
        found = sorted(
            p
            for p in path.rglob("*")
            if p.suffix.lower() in VIDEO_EXTENSIONS
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not found and len(inputs) > 1:
            videos.append(name)  # one input of several: reported and skipped like a failing video, not fatal
            continue
        if not found:
            raise UsageError(f"{name}: no video files in this folder or below (looked for "
                             f"{', '.join(sorted(VIDEO_EXTENSIONS))})")  # fmt: skip
        logger.info("%s: %d videos", name, len(found))
        videos += [str(p) for p in found]
    return videos


def _check_inputs_exist(inputs: Sequence[str]) -> None:
    """A path on the command line that does not exist is a usage error (exit 2), found before any work: a typo in
    one of several inputs stops the run before the model loads, rather than after the others were analysed."""
    missing = [name for name in inputs if not Path(name).exists()]
    if missing:
        where = "" if all(Path(m).is_absolute() for m in missing) else f" (relative paths start at {Path.cwd()})"
        raise UsageError(f"no such file or folder: {', '.join(missing)}{where}")


def _check_output(path: Path, what: str) -> None:
    """Raise `UsageError` unless a file can be written at `path` (its folder is created now).

    The file is really opened (for appending, so nothing there is lost; a file created by the check is removed):
    permission bits say little to root, and a folder such as /proc refuses new files whatever they say.
    """
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a folder; give a file name")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{what} {path}: cannot create the folder {parent} ({err.strerror or err})") from err
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except PermissionError as err:
        raise UsageError(f"{what} {path}: not writable (permission denied)") from err
    except OSError as err:
        raise UsageError(f"{what} {path}: cannot write ({err.strerror or err})") from err
    if not existed:
        path.unlink(missing_ok=True)


def _check_image_output(path: Path) -> None:
    import cv2

    suffix = path.suffix.lower()
    if not suffix:
        raise UsageError(f"-o {path}: the name has no extension; use an image name such as {path}.png")
    if suffix not in IMAGE_EXTENSIONS or not cv2.haveImageWriter(str(path)):
        raise UsageError(f"-o {path}: cannot write a {suffix} image; use one of {', '.join(IMAGE_EXTENSIONS)}")
    _check_output(path, "-o")


def _looks_local(name: str) -> bool:
    """Whether a missing --model argument was surely meant as a local folder, not a Hub id ('owner/name')."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.endswith("/") or name.count("/") > 1:
        return True
    # "runs/mdoel" where runs/ is a local folder: a typo of a folder in it.
    return "/" in name and Path(name.split("/", 1)[0]).is_dir()


def _close_matches(name: str) -> list[str]:
    path = Path(name).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    try:
        siblings = [p.name for p in parent.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    except OSError:
        return []
    matches = difflib.get_close_matches(path.name, siblings, n=3, cutoff=0.6)
    return [str(parent / m) if str(parent) != "." else m for m in matches]


def _load(model: str | None, runtime: str = "auto"):
    """`load_runtime(model, runtime)`, with a missing or mistyped --model turned into one `UsageError` line."""
    from .runtime import load_runtime

    if model is not None and not Path(model).expanduser().exists():
        matches = _close_matches(model)
        hint = f" Did you mean {' or '.join(matches)}?" if matches else ""
        if _looks_local(model) or (matches and "/" not in model):
            raise UsageError(f"--model {model}: no such folder ({Path(model).expanduser().absolute()}).{hint}"
                             + ("" if "/" in model else " (For a Hub model, pass its full id: owner/name.)"))  # fmt: skip
        try:
            return load_runtime(model, runtime)
        except ModelNotFoundError as err:
            # The cause (transformers' OSError) runs to several lines; its first says what went wrong.
            cause = str(err.__cause__ or err).strip().splitlines()[0]
            endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
            raise UsageError(f"--model {model}: not a local folder, and not loadable from the Hub ({endpoint}): "
                             f"{cause}{hint}") from err  # fmt: skip
        except (MicroXError, ValueError) as err:
            raise UsageError(f"--model {model}: {_one_line(err)}") from err
    try:
        return load_runtime(model, runtime)
    except (MicroXError, ValueError) as err:
        raise UsageError(f"--model {model or '(default)'}: {_one_line(err)}") from err


def _face_choice(value: str | None) -> str | int | None:
    """`--face` checked now (None: the model's own setting)."""
    if value is None:
        return None
    from .landmarks.tracking import validate_face_choice

    try:
        return validate_face_choice(value)
    except ValueError as err:
        raise UsageError(f"--face {value}: choose auto, largest, central or a number from 0 (faces counted from the "
                         "left)") from err  # fmt: skip


def _apply_options(
    feature_extractor, face_choice: str | int | None, allow_still: bool, face_crops: bool = False
) -> None:
    if face_choice is not None:
        feature_extractor.face_choice = face_choice
    if allow_still:
        feature_extractor.allow_still = True
    if face_crops:
        feature_extractor.face_crops = True


# --- predict ------------------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def init_predict_worker(
    model: str | None,
    max_duration: float | None,
    batch_size: int,
    verbose: int = 0,
    face_choice: str | int | None = None,
    allow_still: bool = False,
    face_crops: bool = False,
    runtime: str = "auto",
) -> None:
    """Load the model once in this (worker) process, for `predict_worker`."""
    if _WORKER:  # the main process, which loaded it already
        return
    from .parallel import limit_threads
    from .runtime import load_runtime

    _quiet_native_logs(verbose)
    _configure_logging(verbose)
    model_, extractor = load_runtime(model, runtime)
    limit_threads()  # again: torch, where the model runs in it, was imported just now
    if max_duration is not None:
        extractor.max_duration = max_duration
    _apply_options(extractor, face_choice, allow_still, face_crops)
    # Several worker processes use the cores already: no second (extraction) thread in each.
    _WORKER.update(model=model_, feature_extractor=extractor, batch_size=batch_size, overlap=False)


def predict_worker(video: str):
    """`predict` one video with the worker's model; the result without the crops of its telling windows (they are
    large to send back)."""
    from .predict import predict

    try:
        prediction = predict(video, model=_WORKER["model"], feature_extractor=_WORKER["feature_extractor"],
                             batch_size=_WORKER["batch_size"], overlap=_WORKER.get("overlap"))  # fmt: skip
    except StillImageError as err:  # worded for the command line (this runs in the worker processes too)
        raise StillImageError(still_message(err), path=err.path, kind=err.kind) from None
    prediction.window_crops = {}
    return prediction


def _predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .parallel import map_videos

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.max_duration is not None and not args.max_duration > 0:
        raise UsageError(f"--max-duration must be a positive number of seconds, got {args.max_duration}")
    face_choice = _face_choice(args.face)
    videos = _expand_videos(args.videos)
    if args.timeline_csv is not None:
        _check_output(args.timeline_csv, "--timeline-csv")
    # Loaded here also with workers: a bad --model is one line now, not one failure per video later.
    model, feature_extractor = _load(args.model, args.runtime)
    labels = list(model.labels)
    if args.max_duration is not None:
        feature_extractor.max_duration = args.max_duration
    _apply_options(feature_extractor, face_choice, args.allow_still, args.face_crops)
    _WORKER.update(model=model, feature_extractor=feature_extractor, batch_size=args.batch_size,
                   overlap=None if args.workers == 1 else False)  # fmt: skip
    # This process works too (map_videos); the spawned workers load their own copy of the model.
    init = None if args.workers == 1 else init_predict_worker
    init_args = (args.model, args.max_duration, args.batch_size, args.verbose, face_choice, args.allow_still,
                 args.face_crops, args.runtime)  # fmt: skip

    def emit(line: str) -> None:
        tqdm.write(line, file=sys.stdout)  # above the progress bar, which is on stderr
        sys.stdout.flush()

    table = TableWriter(videos, labels)
    results: dict[int, tuple[str, object]] = {}
    failed: dict[int, tuple[str, str, str]] = {}
    for outcome in map_videos(predict_worker, videos, workers=args.workers, init=init, init_args=init_args):
        video = outcome.item
        if outcome.ok:
            results[outcome.index] = (video, outcome.result)
            note = faces_note(video, outcome.result.faces_seen, outcome.result.followed_face,
                               "the JSON" if args.json or args.jsonl else "the row")  # fmt: skip
            if note:
                tqdm.write(note, file=sys.stderr)
            note = quality_note(video, outcome.result)
            if note:
                tqdm.write(note, file=sys.stderr)
            if args.jsonl:
                emit(json.dumps({"video": video, **outcome.result.to_dict()}))
            elif not args.json:
                table.write(row(video, outcome.result), emit)
            continue
        failed[outcome.index] = (video, outcome.error_type, outcome.error)
        message = _one_line(outcome.error or "")
        if outcome.expected:
            tqdm.write(f"microx: skipped {video}: {outcome.error_type}: {message}", file=sys.stderr)
        else:  # a bug or an exotic file
            logger.debug("unexpected error on %s:\n%s", video, outcome.traceback)
            tqdm.write(f"microx: skipped {video}: unexpected {outcome.error_type}: {message} (run with -vv for "
                       "the traceback and report it)", file=sys.stderr)  # fmt: skip
        if args.jsonl:
            emit(json.dumps({"video": video, "error": outcome.error_type, "message": outcome.error}))

    ordered = [results[i] for i in sorted(results)]
    if args.json:
        items = [{"video": video, **p.to_dict()} for video, p in ordered]
        items += [{"video": v, "error": t, "message": m} for v, t, m in (failed[i] for i in sorted(failed))]
        print(json.dumps(items, indent=2))
    if args.timeline_csv is not None and ordered:
        try:
            write_timeline(args.timeline_csv, ordered)
        except OSError as err:
            raise UsageError(f"--timeline-csv {args.timeline_csv}: cannot write ({err.strerror or err})") from err
    if failed:
        print(f"microx: {len(failed)} of {len(videos)} videos failed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK


# --- crops --------------------------------------------------------------------------------------------------------
def _crops(args: argparse.Namespace) -> int:
    import cv2

    from .feature_extraction_microx import MicroXFeatureExtractor
    from .predict import DEFAULT_MODEL, MODEL_ENV
    from .visualize import contact_sheet

    _check_inputs_exist([args.video])
    if Path(args.video).is_dir():
        raise UsageError(f"{args.video}: is a folder; crops draws one video")
    if args.columns < 1:
        raise UsageError(f"--columns must be at least 1, got {args.columns}")
    if args.window is not None and args.window < 0:
        raise UsageError(f"--window must be 0 or more (windows are counted from 0), got {args.window}")
    face_choice = _face_choice(args.face)
    _check_image_output(args.output)
    if args.model is not None or os.environ.get(MODEL_ENV) or (DEFAULT_MODEL / "config.json").is_file():
        _, feature_extractor = _load(args.model)
    else:
        feature_extractor = MicroXFeatureExtractor()
    _apply_options(feature_extractor, face_choice, args.allow_still, args.face_crops)
    try:
        _check_window(args.video, args.window, feature_extractor)
        clip = feature_extractor.extract_clip(args.video)
        sheet = contact_sheet(clip, window=args.window, num_frames=feature_extractor.num_frames,
                              stride=feature_extractor.window_stride, max_columns=args.columns)  # fmt: skip
    except StillImageError as e:
        print(f"microx: {args.video}: StillImageError: {still_message(e)}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except MicroXError as e:
        print(f"microx: {args.video}: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except IndexError as e:  # a --window past the end that the header could not rule out
        raise UsageError(f"--window {args.window}: {_one_line(e)}") from e
    note = faces_note(args.video, clip.faces_seen, clip.followed_face, "the sheet")
    if note:
        print(note, file=sys.stderr)
    ok, encoded = cv2.imencode(args.output.suffix.lower(), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UsageError(f"-o {args.output}: OpenCV could not encode a {args.output.suffix} image")
    try:
        args.output.write_bytes(encoded.tobytes())
    except OSError as err:
        raise UsageError(f"-o {args.output}: cannot write ({err.strerror or err})") from err
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]}, {len(clip.regions)} regions)")
    return EXIT_OK


def _check_window(video: str, window: int | None, feature_extractor) -> None:
    """Refuse a `--window` past the video's end from its header, before a frame is decoded.

    The container's own duration bounds the frames the extractor can emit at its frame rate from above (they are
    resampled by time), so a window refused here surely does not exist; one inside the bound that still does not
    exist, or any window of a video whose container gives no duration (frame count / nominal rate errs short on a
    variable frame rate), is refused after extraction. Raises the video's own `MicroXError` for a file that is not
    a video.
    """
    if window is None:
        return
    from .container import still_image_format
    from .video import probe_video
    from .windows import window_starts

    if feature_extractor.allow_still and still_image_format(video) is not None:
        frames = 1
    else:
        info = probe_video(video)
        if info.duration is None or info.duration_source != "container":
            return
        frames = math.floor(info.duration * feature_extractor.fps) + 1
    count = len(window_starts(frames, feature_extractor.num_frames, feature_extractor.window_stride))
    if window < count:
        return
    if frames == 1:
        raise UsageError(f"--window {window}: {video} is one frame, so it has one window (0)")
    raise UsageError(f"--window {window}: {video} lasts {info.duration:.2f} s, so it has at most {count} windows "
                     f"(0..{count - 1}) of {feature_extractor.num_frames} frames every "
                     f"{feature_extractor.window_stride}")  # fmt: skip


# --- export -------------------------------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    try:
        from . import onnx_export
    except ImportError as err:
        raise UsageError(f'export needs torch: {err}; pip install "microx-hf[export]"') from err
    try:
        return onnx_export.run(args)
    except ImportError as err:  # onnx / onnxscript, imported by torch.onnx.export
        raise UsageError(f'export onnx needs {err.name or err}: pip install "microx-hf[export]"') from err


# --- main ---------------------------------------------------------------------------------------------------------
def _quiet_native_logs(verbose: int) -> None:
    if verbose >= 2:
        return
    # FFmpeg's and OpenCV's own messages ("moov atom not found") repeat what our errors say, less clearly.
    # FFmpeg reads this when OpenCV first opens a file, so setting it here is in time (spawned workers inherit it).
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _configure_logging(verbose: int) -> None:
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; `verbose` counts ``-v`` before and after the subcommand."""
    args = _parser().parse_args(argv)
    args.verbose = args.verbose + getattr(args, "verbose_after", 0)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `microx` command; returns the exit code (`EXIT_CODES`)."""
    args = parse_args(argv)
    _quiet_native_logs(args.verbose)
    _configure_logging(args.verbose)
    try:
        return {"predict": _predict, "crops": _crops, "export": _export}[args.command](args)
    except UsageError as err:
        print(f"microx: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("microx: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MicroXError as err:  # e.g. no landmark backend can run here
        print(f"microx: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except Exception as err:
        logger.debug("unexpected error", exc_info=True)
        print(f"microx: unexpected {type(err).__name__}: {_one_line(err)[:300]} (run with -vv for the traceback "
              "and report it)", file=sys.stderr)  # fmt: skip
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
