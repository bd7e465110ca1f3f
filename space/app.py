"""MicroX Space: upload a face video and see the emotion it shows, its course over time, and why.

A thin consumer of the `microx_hf` library (the shape of hysts' Space apps: constants, load once, one typed
handler, a `gr.Blocks` layout). All decoding, landmarks, region crops and the model live in the library:
`microx_hf.predict.predict` turns a video into a `Prediction`, `microx_hf.visualize` draws the crops and the face
track. Any `MicroXError` (not a video, a photo, no face, too long) is shown as a plain message that stays in the
page (`#status`), and the `/analyze` API endpoint raises it as a `gr.Error` with the same text.

Settings come from the environment, else from `settings.json` beside this file (which `space/deploy.py` writes into a
deployed Space: the model it runs), else the defaults:
    MICROX_MODEL           Hub id or local folder of the model (default: the checkpoint committed with the project)
    MICROX_MAX_DURATION    longest video accepted, in seconds (default 60)
    MICROX_MAX_FILE_SIZE   largest upload accepted (default "50mb": 50 MB; gradio's units, kb/mb/gb, are binary)
    MICROX_CONCURRENCY     videos analysed at the same time (default 2; more queue up, up to MICROX_QUEUE_SIZE)
    MICROX_CACHE_SECONDS   uploads, results and previews older than this are deleted (default 900)
    MICROX_SESSIONS_KEPT   visitor sessions gradio keeps in memory (default 64)
    MICROX_MALLOC_ARENAS   glibc malloc arenas for the whole server (default 2)

Memory stays flat over any number of visitors (issue 22, `bench/bench_space_soak.py`): the analyses run on
MICROX_CONCURRENCY threads of their own, glibc's malloc arenas are bounded and trimmed after each analysis
(`microx_hf.memory`), gradio keeps a bounded number of sessions, and every file the app writes goes once into
gradio's cache, which deletes it after MICROX_CACHE_SECONDS.

The `/analyze` endpoint returns, by name: `emotion` (the clip's scores), `quality` (a low-confidence note, empty when
the prediction is not doubtful), `summary`, `regions` (each region's share of the decision), `timeline` (every
emotion's probability per window), `region_crops`, `face_track` and `result` (the whole prediction as JSON).

Run locally (from the repository root): `python space/app.py --port 7860`, then open http://127.0.0.1:7860.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

try:
    import microx_hf  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from microx_hf.card import training_summary
from microx_hf.container import VIDEO_EXTENSIONS
from microx_hf.errors import MicroXError
from microx_hf.memory import limit_malloc_arenas, release_free_memory
from microx_hf.predict import DEFAULT_MODEL, Prediction, predict
from microx_hf.runtime import load_runtime
from microx_hf.timeline import timeline_figure
from microx_hf.visualize import TrackPreview, region_strips

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the app's own modules, here and in a deployed Space
import app_texts as texts  # noqa: E402

logger = logging.getLogger("microx_space")

# glibc's malloc arenas: at most this many for the whole server, set before any worker thread starts (see
# `microx_hf.memory`: with glibc's default of 8 per core, every thread that runs a request ends up holding a video's
# working set of its own, and the server's memory climbs with its visitors).
MALLOC_ARENAS = int(os.environ.get("MICROX_MALLOC_ARENAS", "2"))
limit_malloc_arenas(MALLOC_ARENAS)

TITLE = "MicroX: emotion from face videos, region by region"
DESCRIPTION = """\
Upload a short video of one face (or record one with your webcam). MicroX cuts it into 1/3-second windows, crops
the face, eyes, nose and mouth in every frame, and reads each region's motion with its own ConvLSTM. You see the
emotion of the whole clip, how far to trust it, which regions drove the decision, how the likeliest emotions move
over time, and the region crops of the window that decided the most.
"""
APP_DIR = Path(__file__).resolve().parent
SETTINGS_FILE = APP_DIR / "settings.json"
DEPLOYED = json.loads(SETTINGS_FILE.read_text()) if SETTINGS_FILE.is_file() else {}


def setting(name: str, default: str | None) -> str | None:
    """A setting from the environment, else from `settings.json`, else `default`."""
    return os.environ.get(name) or DEPLOYED.get(name) or default


def _model_setting() -> str | None:
    """MICROX_MODEL; a relative folder in `settings.json` (a model deployed beside the app) is relative to this file."""
    value = setting("MICROX_MODEL", None)
    if value and not os.environ.get("MICROX_MODEL") and (APP_DIR / value / "config.json").is_file():
        return str(APP_DIR / value)
    return value


MODEL_ID = _model_setting()  # None: the checkpoint that ships with the library
MAX_DURATION_S = float(setting("MICROX_MAX_DURATION", "60"))
MAX_FILE_SIZE = setting("MICROX_MAX_FILE_SIZE", "50mb")


def plain_size(size: str | int) -> str:
    """An upload limit as gradio takes it ("50mb", "2 gb" or a number of bytes) in plain words: "50 MB"."""
    if isinstance(size, int) or str(size).strip().isdigit():
        count, unit = float(size), "bytes"
        for name in ("KB", "MB", "GB"):
            if count < 1024:
                break
            count, unit = count / 1024, name
        return f"{count:.0f} {unit}" if unit != "bytes" else f"{int(count)} bytes"
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?b)\s*", str(size), re.IGNORECASE)
    if not match:
        raise ValueError(f"MICROX_MAX_FILE_SIZE={size!r}: give a size such as 50mb or 1gb")
    return f"{match.group(1)} {match.group(2).upper()}"


# Two at a time: measured on 2 cores, two 10 s videos finished in 3.5 s together (4.0 s one after the other), and a
# short clip no longer waits behind a long one (0.8 s instead of 2.6 s).
CONCURRENCY_LIMIT = int(os.environ.get("MICROX_CONCURRENCY", "2"))
QUEUE_SIZE = int(os.environ.get("MICROX_QUEUE_SIZE", "16"))
PREVIEW_SECONDS = 2.0  # length of the face-track preview (drawing and encoding cost about 0.1 s a second)
PREVIEW_SIDE = 480  # its longer side, pixels
PREVIEW_FPS = 15.0  # an animated WebP encodes in about 4 ms a frame at this size (VP8 video took 11 ms)
REGION_COLOUR = "#3d5a80"  # the regions' bars: a colour no emotion has, so that a region never reads as an emotion
# The bar of a model that answered with its face network's prior (`regions_frame`).
PRIOR_BAR = "face network (prior)"
PLOT_HEIGHT = 300  # px, the regions' chart; the face track beside it takes the same height
EXAMPLES_DIR = APP_DIR / "examples"
EXAMPLES = sorted(str(path) for path in EXAMPLES_DIR.glob("*.webm"))
# Gallery cells are square by default; region strips are wide rows, so let each cell take its image's shape.
CSS = """
#crops .grid-container { grid-template-rows: none; grid-auto-rows: auto; }
#crops .thumbnail-item { aspect-ratio: auto; height: auto; }
/* A strip of few frames would otherwise be blown up to the page's width: keep every row at most 140 px high. */
#crops .thumbnail-item > img { height: auto; max-height: 140px; width: auto; max-width: 100%; object-fit: contain;
  object-position: left; align-self: flex-start; }
#crops .caption-label { position: static; max-width: 100%; border: none; white-space: normal; }
/* The gallery otherwise keeps a fixed height and hides the last rows (and their captions) behind a scroll bar. */
#crops .grid-wrap { height: auto !important; max-height: none !important; overflow: visible !important;
  padding-top: 1.5rem; }
#quality { border: 2px solid #c98a00; border-radius: 8px; padding: 0 12px; background: #fff6dd; color: #4d3800; }
#status { border: 2px solid #d9534f; border-radius: 8px; padding: 0 12px; background: #fdf2f2; color: #611a15; }
"""
# Uploads, results and previews live in gradio's cache folder (`GRADIO_TEMP_DIR`, else <temp>/gradio); every
# CACHE_CHECK_SECONDS those older than CACHE_SECONDS are deleted (`delete_old_files`), so the disk they take is bounded
# by the traffic of that span (about 0.3 MB a request besides the upload itself; a page keeps showing its results
# once loaded).
CACHE_SECONDS = int(os.environ.get("MICROX_CACHE_SECONDS", "900"))
CACHE_CHECK_SECONDS = max(1, min(300, CACHE_SECONDS // 3))
# Gradio keeps the component values of every visitor's session, about 100 KB each (the timeline, the JSON, the
# page's configuration), for its 10,000 most recent sessions; this app keeps nothing between events, so a few
# sessions beyond those being served are enough.
SESSIONS_KEPT = int(os.environ.get("MICROX_SESSIONS_KEPT", "64"))
# The analyses run on this many long-lived threads of their own (not gradio's pool of up to 40 short-lived workers):
# the threads, their torch/OpenMP teams and what their allocations leave in the malloc arenas stay the same however
# many visitors come and go.
ANALYSIS_THREADS = ThreadPoolExecutor(max_workers=CONCURRENCY_LIMIT, thread_name_prefix="microx-analysis")
# How many analyses are running (`_on_analysis_thread`). A lone analysis decodes and finds landmarks in a second thread
# (`predict`'s overlap: about 1.3 cores busy); when others run beside it, the cores are taken already and that second
# thread only adds hand-offs, so each analysis keeps to its own thread (`_overlap`).
_RUNNING = [0]
_RUNNING_LOCK = threading.Lock()

# ONNX Runtime where the checkpoint carries an onnx/ export (no torch: faster start, less memory), else torch.
model, feature_extractor = load_runtime(MODEL_ID)
LABELS = list(model.labels)
if feature_extractor.max_duration is None or feature_extractor.max_duration > MAX_DURATION_S:
    feature_extractor.max_duration = MAX_DURATION_S


def model_note(model_name: str | None) -> str:
    """A short Markdown note on which model runs and what it was trained on, from its model card.

    Reads the card (`README.md`) of a local model folder, or of a Hub repo when the Hub can be reached: the
    `microx_note` key of its YAML header, or for older cards what its text says; falls back to the model's label
    set when there is no card.
    """
    labels = ", ".join(model.config.id2label[i] for i in range(model.config.num_labels))
    if model_name is None:  # the checkpoint that ships with the library, and its card
        summary, shown = _card_training_summary(str(DEFAULT_MODEL)), "the default checkpoint"
    else:
        summary = _card_training_summary(model_name)
        shown = f"`{Path(model_name).name if Path(model_name).is_dir() else model_name}`"
    trained_on = summary or "its model card does not say what it was trained on."
    return f"**Model:** {shown}: {trained_on} **Emotions:** {labels}."


def _card_training_summary(name: str) -> str | None:
    """What the model card says about the model and its training data (`microx_hf.card.training_summary`)."""
    return training_summary(name)


def write_timeline(prediction: Prediction) -> str:
    """The timeline chart as a PNG file of its own in gradio's cache (`timeline_figure`)."""
    path = _cache_file("timeline_", ".png")
    timeline_figure(prediction).savefig(path, format="png")
    return path


def regions_frame(prediction: Prediction) -> pd.DataFrame:
    """Each region's share of the clip's decision (its mean fusion weight over the windows with a face), in percent,
    for the `regions` bar chart; largest first. A model that answered with its face network's prior
    (`Prediction.decided_by_prior`: its region branches are gated off) shows that: the face network 100%, each region
    0%, not the weights of a correction that was switched off."""
    if prediction.decided_by_prior:
        shares = [(PRIOR_BAR, 1.0)] + [(region, 0.0) for region in prediction.regions]
    else:
        shares = sorted(prediction.region_contributions.items(), key=lambda item: -item[1])
    return pd.DataFrame(
        {
            "region": [region for region, _ in shares],
            "share of the decision (%)": [round(100 * share, 1) for _, share in shares],
            "what": ["share"] * len(shares),  # one series, one colour (REGION_COLOUR)
        }
    )


def _cache_file(prefix: str, suffix: str) -> str:
    """A new, empty file of this app's in gradio's cache folder (served without a copy, deleted on the schedule of
    `delete_cache`)."""
    folder = Path(demo.GRADIO_CACHE) / "microx"
    folder.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=folder)
    os.close(handle)
    return path


def delete_old_files(age: float = CACHE_SECONDS, file_sets: list[set[str]] | None = None) -> int:
    """Delete the uploads and results gradio tracks (`file_sets`, default all of the app's) that are older than `age`
    seconds, and this app's own files of that age that were never handed to gradio; returns how many went. (The
    empty folders gradio names after each file's hash stay, as with gradio's own deletion: removing one could race
    with a new upload of the same file.)

    Gradio's own `delete_cache` schedule does the same, but it walks each set while requests add to it: under
    traffic it soon raises "Set changed size during iteration" and never runs again, and the cache then grows with
    every request (seen in the soak benchmark). This walks snapshots of the sets instead.
    """
    sets = demo.temp_file_sets if file_sets is None else file_sets
    keep = set().union(*(getattr(block, "keep_in_cache", set()) for block in demo.blocks.values()))
    cache = Path(demo.GRADIO_CACHE)
    now = time.time()
    deleted = 0

    def old(path: Path) -> bool:
        return now - path.lstat().st_ctime > age  # ctime: gradio touches a cached copy when it hands it out again

    for files in sets:
        gone = set()
        for name in list(files):  # a snapshot (one call, so no request can add to the set midway)
            path = Path(name)
            try:
                if name not in keep and old(path):
                    path.unlink()
                    deleted += 1
                    gone.add(name)
            except FileNotFoundError:
                gone.add(name)
        files.difference_update(gone)
    if file_sets is None:
        for path in (cache / "microx").glob("*"):  # written by a request that failed before returning them
            try:
                if old(path):
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                pass
    return deleted


def _delete_old_files_forever() -> None:
    while True:
        time.sleep(CACHE_CHECK_SECONDS)
        try:
            deleted = delete_old_files()
        except Exception:  # the next round tries again
            logger.exception("deleting old files failed")
        else:
            logger.debug("deleted %d old files", deleted)


def write_image(image: np.ndarray) -> str:
    """Write an RGB image as a WebP file of its own in gradio's cache (what `gr.Gallery` would write for an array).

    Gradio's own writer names the file after its content and rewrites it in place, so two visitors whose videos
    give the same crops (an example clicked twice at once) could be served a half-written image.
    """
    path = _cache_file("crops_", ".webp")
    Image.fromarray(image).save(path, format="WEBP")
    return path


def write_preview(frames: list[np.ndarray], fps: float) -> str:
    """Write RGB frames as an animated WebP at `PREVIEW_FPS` (every browser plays it in an <img>).

    The file goes straight into gradio's cache folder (`_cache_file`).
    """
    step = max(1, round(fps / PREVIEW_FPS))
    images = [Image.fromarray(frame) for frame in frames[::step]]
    path = _cache_file("track_", ".webp")
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000 * step / fps), loop=0, quality=70, method=0
    )
    return path


# The outputs of `analyze`, in order: the names the API gives them (the components' labels) and what they hold.
OUTPUTS = {
    "emotion": "the clip's emotion scores",
    "quality": "a low-confidence note (Markdown), empty when the prediction is not doubtful",
    "summary": "what the result rests on (Markdown)",
    "regions": "each region's share of the clip's decision, percent",
    "timeline": "a chart of the likeliest emotions' probabilities over time (PNG; the numbers are in `result`)",
    "region_crops": "the crops of the most telling window, one image per region, captioned with its share",
    "face_track": "the first seconds with the tracked face and crop boxes (animated WebP)",
    "result": "the whole prediction as JSON (`Prediction.to_dict`, with its `quality`)",
}


def analyze(video: str | None) -> tuple:
    """Analyse one uploaded video (the `/analyze` API endpoint; the page calls `analyze_page`).

    Returns:
        The values of `OUTPUTS`, in its order: the clip's emotion scores, the quality note, the summary, the regions'
        shares (a table), the timeline chart (a PNG file), the region crops of the most telling window (one gallery item per
        region), the face-track preview's path, and the JSON-safe prediction.

    Raises:
        gr.Error: A plain message (and a short `title`) for a video that cannot be analysed.
    """
    return _analysis(video)[0]


def _analysis(video: str | None) -> tuple[tuple, Prediction, str]:
    """`analyze`'s outputs, the prediction, and the crops' heading."""
    if not video:
        raise gr.Error("Upload a video (or record one) first.", title="No video", print_exception=False)
    if Path(video).is_dir():
        raise gr.Error(
            f"{Path(video).name} is a folder, not a video file: upload one ({', '.join(sorted(VIDEO_EXTENSIONS))}).",
            title="Not a video",
            print_exception=False,
        )
    # The face-track preview is drawn as the video streams through predict(): no second decoding.
    preview = TrackPreview(feature_extractor, seconds=PREVIEW_SECONDS, side=PREVIEW_SIDE)
    try:
        prediction = predict(
            video, model=model, feature_extractor=feature_extractor, on_frame=preview.add, overlap=_overlap()
        )
    except MicroXError as error:
        logger.info("rejected %s: %s", Path(video).name, error)
        raise gr.Error(texts.user_message(error, video, MAX_DURATION_S), title=texts.error_title(error),
                       print_exception=False) from None  # fmt: skip
    except Exception:
        logger.exception("analysis of %s failed", video)
        raise gr.Error(
            "Analysing this video failed unexpectedly. Try another file, or report the problem with the video "
            "attached.",
            title="Something went wrong",
            print_exception=False,
        ) from None

    window = prediction.telling_window()
    when = texts.window_span(prediction, window)
    strips = region_strips(prediction.window_clip(window))
    # A region's weight is its share of that one window's decision, not a probability of an emotion.
    gallery = [
        (write_image(strip), texts.crop_caption(prediction, region, weight, when))
        for region, strip, weight in zip(prediction.regions, strips, prediction.region_weights[window], strict=True)
    ]
    heading = (
        f"Region crops of the most telling window, {when} ({prediction.window_probs[window].max():.0%} "
        f"{prediction.label} in that window)"
    )
    preview_path = write_preview(preview.frames, preview.fps)
    summary = texts.summary(prediction, window)
    outputs = (
        prediction.scores,
        texts.quality_note(prediction),
        summary,
        regions_frame(prediction),
        write_timeline(prediction),
        gallery,
        preview_path,
        prediction.to_dict(),
    )
    return outputs, prediction, heading


def _on_analysis_thread(handler, video: str | None):
    """Run `handler(video)` on one of the analysis threads, then give the free memory it left back to the system."""
    with _RUNNING_LOCK:
        _RUNNING[0] += 1
    try:
        return handler(video)
    finally:
        with _RUNNING_LOCK:
            _RUNNING[0] -= 1
        release_free_memory()


def _overlap() -> bool:
    """Whether this analysis may take a second thread: only while it is the only one running."""
    with _RUNNING_LOCK:
        return _RUNNING[0] <= 1


async def analyze_api(video: str | None) -> tuple:
    """The `/analyze` endpoint: `analyze` on an analysis thread (gradio's worker thread only waits for it)."""
    return await asyncio.wrap_future(ANALYSIS_THREADS.submit(_on_analysis_thread, analyze, video))


async def analyze_page_async(video: str | None) -> tuple:
    """`analyze_page` on an analysis thread, for the page and its examples."""
    return await asyncio.wrap_future(ANALYSIS_THREADS.submit(_on_analysis_thread, analyze_page, video))


def _blank_outputs(status: str) -> tuple:
    """Cleared results and a visible message: the previous video's results must not stand under a new error."""
    cleared = (None, gr.update(value="", visible=False), "", None, None, None, None, None)
    return (*cleared, gr.update(value=status, visible=True))


def analyze_page(video: str | None) -> tuple:
    """`analyze` for the page: its outputs as the page shows them, plus the message box, which shows an error in
    plain words and stays.

    On the page the quality note is a box that shows only when there is a note, and the crops' heading names the
    window they come from.
    """
    try:
        outputs, prediction, heading = _analysis(video)
    except gr.Error as error:
        title = error.title if error.title and error.title != "Error" else "Cannot analyse this video"
        return _blank_outputs(f"**{title}.** {error.message}")
    scores, note, summary, regions, timeline, gallery, preview, result = outputs
    return (
        scores,
        gr.update(value=note, visible=bool(note)),
        summary,
        regions,
        timeline,
        gr.update(value=gallery, label=heading),
        preview,
        result,
        gr.update(value="", visible=False),
    )


with gr.Blocks(title="MicroX", delete_cache=(CACHE_CHECK_SECONDS, CACHE_SECONDS)) as demo:
    gr.Markdown(f"# {TITLE}\n{DESCRIPTION}")
    gr.Markdown(model_note(MODEL_ID), elem_id="model-note")
    # Outputs are made first (unrendered) so that the examples, placed beside the input, can fill them. Their labels
    # are the names the API gives them (`OUTPUTS`).
    emotion_out = gr.Label(label="emotion", num_top_classes=model.config.num_labels, elem_id="emotion", render=False)
    quality_out = gr.Markdown(label="quality", visible=False, elem_id="quality", render=False)
    summary_out = gr.Markdown(label="summary", elem_id="summary", render=False)
    regions_out = gr.BarPlot(
        x="region",
        y="share of the decision (%)",
        color="what",
        color_map={"share": REGION_COLOUR},
        colors_in_legend=[],
        sort="-y",
        y_lim=[0, 100],
        title="Which regions drove the decision (whole clip)",
        label="regions",
        show_label=False,
        height=PLOT_HEIGHT,
        elem_id="regions",
        render=False,
    )
    timeline_out = gr.Image(label="timeline", show_label=False, type="filepath", elem_id="timeline", render=False)
    crops_out = gr.Gallery(
        label="region crops",
        columns=1,
        object_fit="contain",
        height="auto",
        elem_id="crops",
        render=False,
    )
    preview_out = gr.Image(
        label="face track", show_label=False, type="filepath", height=PLOT_HEIGHT - 40, elem_id="preview", render=False
    )
    json_out = gr.JSON(label="result", show_label=False, elem_id="raw", render=False)
    status_out = gr.Markdown(visible=False, elem_id="status", render=False)
    outputs = [emotion_out, quality_out, summary_out, regions_out, timeline_out, crops_out, preview_out, json_out]
    page_outputs = [*outputs, status_out]

    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            video_in = gr.Video(
                label=f"Face video: up to {MAX_DURATION_S:g} seconds and {plain_size(MAX_FILE_SIZE)}",
                sources=["upload", "webcam"],
                include_audio=True,  # keep uploads as they are: no ffmpeg re-encode on the server
                elem_id="video-in",
            )
            run_button = gr.Button("Analyse", variant="primary", elem_id="run")
            # Clicking an example analyses it; on a Space the results are cached after the first click.
            gr.Examples(
                examples=EXAMPLES,
                inputs=video_in,
                outputs=page_outputs,
                fn=analyze_page_async,
                run_on_click=True,
                cache_mode="lazy",
                label="Examples (public-domain faces; click one)",
                elem_id="examples",
            )
        with gr.Column(scale=1):
            status_out.render()
            emotion_out.render()
            quality_out.render()
            summary_out.render()
    # The regions' chart and the face track side by side, at one height: neither leaves a gap under the other.
    with gr.Row(equal_height=True):
        with gr.Column(scale=1):
            regions_out.render()
        with gr.Column(scale=1):
            gr.Markdown(f"**Face track and crop boxes**, the first {PREVIEW_SECONDS:g} s", elem_id="preview-title")
            preview_out.render()
    timeline_out.render()
    crops_out.render()
    with gr.Accordion("Raw result (JSON)", open=False):
        json_out.render()

    # The page: clear the previous summary and message at once, then analyse; errors land in the message box.
    run_button.click(
        lambda: ("", gr.update(value="", visible=False)),
        outputs=[summary_out, status_out],
        queue=False,
        api_visibility="private",
    ).then(
        analyze_page_async,
        inputs=video_in,
        outputs=page_outputs,
        api_visibility="private",
        concurrency_id="analysis",
        concurrency_limit=CONCURRENCY_LIMIT,
    )
    # The API (`gradio_client`): the same analysis, raising `gr.Error` for a video it cannot use. It shares the
    # page's concurrency limit, so the two together never analyse more than CONCURRENCY_LIMIT videos at once.
    api_trigger = gr.Button(visible=False)
    api_trigger.click(
        analyze_api,
        inputs=video_in,
        outputs=outputs,
        api_name="analyze",
        concurrency_id="analysis",
        concurrency_limit=CONCURRENCY_LIMIT,
    )
    assert [block.label.replace(" ", "_") for block in outputs] == list(OUTPUTS)  # the API names them by label


_janitor: threading.Thread | None = None


def launch(host: str = "127.0.0.1", port: int = 7860, prevent_thread_lock: bool = False) -> str:
    """Serve the app with its queue and upload limit; returns its URL (blocks unless `prevent_thread_lock`).

    A thread of its own (`microx-cache`) deletes old uploads and results every CACHE_CHECK_SECONDS.
    """
    global _janitor
    if _janitor is None:
        _janitor = threading.Thread(target=_delete_old_files_forever, name="microx-cache", daemon=True)
        _janitor.start()
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(EXAMPLES_DIR)],
        state_session_capacity=SESSIONS_KEPT,
        prevent_thread_lock=prevent_thread_lock,
        css=CSS,
        quiet=prevent_thread_lock,
    )
    return url


def main(argv: list[str] | None = None) -> None:
    """Launch the app (on 127.0.0.1 unless GRADIO_SERVER_NAME or --host says otherwise)."""
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    launch(args.host, args.port)


if __name__ == "__main__":
    main()
