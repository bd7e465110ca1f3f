"""The Gradio Space (`space/app.py`): its handler, its HTTP API through `gradio_client`, and the page in a real
Chromium driven by Playwright.

The app runs a tiny random MicroX model saved to a temporary folder (`MICROX_MODEL`), with the real dlib landmark
backend, on real video files made from the public-domain astronaut photo; the server listens on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image

from microx_hf import timeline
from microx_hf.windows import window_starts
from tests.media import face_frames, make_face_video, make_noface_video, make_still, make_text_file, write_video

REPO = Path(__file__).resolve().parents[1]
APP_PATH = REPO / "space" / "app.py"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("MICROX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MAX_DURATION_S = 3.0  # the app's limit in these tests, so that a "too long" video stays small
MAX_FILE_SIZE = "2mb"
NOTICE = "A test model, not a validated emotion recogniser: its weights are random."
TRAINING_DATA = "no data at all, in no particular order"
# The layout of the cards that `training/release.py` writes (model_card.md): a notice and a training-data line.
CARD = f"""---
license: apache-2.0
---
# Tiny test model

> **{NOTICE}**

MicroX recognises the emotion a face shows in a short video.

## Training

- Data: {TRAINING_DATA}
- Protocol of this checkpoint: none
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """The files the tests upload: a face video, a face-free video, a text file, one too long and one too big."""
    folder = tmp_path_factory.mktemp("space_media")
    return {
        "face": make_face_video(folder / "face.mp4", n_frames=24, size=(320, 240), motion="pan"),
        # VP8 WebM: a browser plays it in the upload box, as it would a phone's H.264 video.
        "face_webm": write_video(folder / "face.webm", face_frames(24, (320, 240), "zoom"), fourcc="VP80"),
        "noface": make_noface_video(folder / "noface.mp4", n_frames=12, size=(320, 240)),
        "text": make_text_file(folder / "notes.txt"),
        "fake_mp4": make_text_file(folder / "holiday.mp4"),
        "long": make_face_video(folder / "long.mp4", n_frames=120, fps=30.0, size=(160, 120)),
        "big": _big_file(folder / "big.mp4", 3_000_000),
        "photo": make_still(folder / "selfie.jpg.mp4", size=(320, 240)),
        "one_window": make_face_video(folder / "blink.mp4", n_frames=4, size=(320, 240)),
        "short": make_face_video(folder / "short.mp4", n_frames=3, size=(320, 240)),
        "two_faces": make_face_video(folder / "two.mp4", n_frames=8, size=(640, 360), two_faces=True),
        "one_window_webm": write_video(folder / "blink.webm", face_frames(4, (320, 240)), fourcc="VP80"),
        "two_faces_webm": write_video(folder / "two.webm", face_frames(8, (640, 360), two_faces=True), fourcc="VP80"),
        # An unlit room: every pixel times 0.15 (the face is still found).
        "dark": write_video(folder / "dark.mp4", (face_frames(16, (320, 240), "pan") * 0.15).round().astype(np.uint8)),
        "dark_webm": write_video(
            folder / "dark.webm", (face_frames(16, (320, 240), "pan") * 0.15).round().astype(np.uint8), fourcc="VP80"
        ),
        # A phone video whose rotation was lost: stored turned 90 degrees.
        "sideways": write_video(folder / "sideways.mp4", np.ascontiguousarray(np.rot90(face_frames(12), axes=(1, 2)))),
    }


def _big_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random model and its feature extractor, saved like a checkpoint, with a model card."""
    from microx_hf.configuration_microx import MicroXConfig
    from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
    from microx_hf.modeling_microx import MicroXForVideoClassification

    folder = tmp_path_factory.mktemp("tiny_model")
    config = MicroXConfig(
        frame_encoder=None, num_frames=4, image_size=16, stem_channels=[4], hidden_size=4, head_hidden_size=8
    )
    MicroXForVideoClassification(config).save_pretrained(folder)
    MicroXFeatureExtractor(
        num_frames=4, window_stride=4, crop_size=16, regions=config.regions, landmark_backend="dlib"
    ).save_pretrained(folder)
    (folder / "README.md").write_text(CARD)
    return folder


@pytest.fixture(scope="module")
def app(tiny_model_dir):
    """`space/app.py` imported with the tiny model and small limits (its settings are read at import)."""
    settings = {
        "MICROX_MODEL": str(tiny_model_dir),
        "MICROX_MAX_DURATION": str(MAX_DURATION_S),
        "MICROX_MAX_FILE_SIZE": MAX_FILE_SIZE,
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        spec = importlib.util.spec_from_file_location("microx_space_app", APP_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield module
    sys.modules.pop("microx_space_app", None)


@pytest.fixture(scope="module")
def server(app) -> str:
    """The app served on 127.0.0.1 with its own queue and limits; yields its URL."""
    url = app.launch(host="127.0.0.1", port=_free_port(), prevent_thread_lock=True)
    yield url
    app.demo.close()


# The handler ------------------------------------------------------------------------------------------------------


def test_handler_returns_every_output(app, media):
    scores, note, summary, regions, timeline, gallery, preview, raw = app.analyze(str(media["face"]))
    labels = [app.model.config.id2label[i] for i in range(app.model.config.num_labels)]
    assert sorted(scores) == sorted(labels)
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-4)
    with Image.open(timeline) as chart:  # the timeline chart, drawn on the server
        assert chart.format == "PNG" and chart.size[0] >= 800
    # Each crop's caption is its region's share of that one window's decision, and says which window.
    window = max(range(len(raw["window_probs"])), key=lambda w: max(raw["window_probs"][w] or [0]))
    start = raw["window_starts"][window]
    for (_, caption), region in zip(gallery, app.model.config.regions, strict=True):
        assert caption.startswith(f"{region}: ") and f"of the decision in the window {start:.2f}-" in caption
    # The regions' shares over the whole clip, as a table for the bar chart (largest first), in percent.
    assert sorted(regions["region"]) == sorted(app.model.config.regions)
    assert regions["share of the decision (%)"].sum() == pytest.approx(100.0, abs=0.5)
    assert regions["share of the decision (%)"].is_monotonic_decreasing
    assert note == ("" if not raw["quality"]["low_confidence"] else note) and raw["quality"]["notes"] is not None
    with Image.open(preview) as animation:  # the face track: an animated WebP at 15 fps, landmarks in green
        assert animation.n_frames == 12  # 24 frames at 30 fps
        first = np.asarray(animation.convert("RGB"))
    assert first.shape == (240, 320, 3)
    green = (first[..., 1] > 200) & (first[..., 0] < 80) & (first[..., 2] < 80)
    assert green.sum() > 50, "the tracked landmarks are drawn on the preview"
    best = max(scores, key=scores.get)
    assert f"**{best}**" in summary
    assert raw["label"] == best


@pytest.mark.parametrize(
    ("name", "message", "title"),
    [
        ("text", "is not a video", "Not a video"),
        ("fake_mp4", "is not a video", "Not a video"),
        ("noface", "no face was found", "No face found"),
        ("long", "lasts 4 s; this app takes videos up to 3 s. trim it", "Video too long"),
        ("photo", "is a photo, not a video", "A photo, not a video"),
    ],
)
def test_handler_turns_user_errors_into_messages(app, media, name, message, title):
    with pytest.raises(gr.Error) as info:
        app.analyze(str(media[name]))
    assert message in info.value.message.lower()
    assert info.value.title == title
    assert media[name].name in info.value.message, "the message names the file the user uploaded"
    assert str(media[name].parent) not in info.value.message, "and not the server's path"
    assert "Traceback" not in info.value.message


def test_handler_hides_unexpected_failures(app, media, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("internal detail the user should not see")

    monkeypatch.setattr(app, "predict", broken)
    with pytest.raises(gr.Error, match="failed unexpectedly") as info:
        app.analyze(str(media["face"]))
    assert "internal detail" not in info.value.message
    assert "internal detail" in caplog.text, "the server log keeps the real error"


def test_handler_without_a_video(app):
    with pytest.raises(gr.Error, match="Upload a video") as info:
        app.analyze(None)
    assert info.value.title == "No video" and not info.value.print_exception


def test_the_page_shows_errors_in_a_message_that_stays(app, media):
    *results, status = app.analyze_page(str(media["noface"]))
    assert status["visible"] and status["value"].startswith("**No face found.** ")
    assert "no face was found in empty" not in status["value"].lower() and media["noface"].name in status["value"]
    emotion, quality, summary, *rest = results
    assert emotion is None and not quality["visible"] and summary == "" and rest == [None] * 5, "no stale results"
    *_, status = app.analyze_page(None)
    assert status["value"] == "**No video.** Upload a video (or record one) first."
    *results, status = app.analyze_page(str(media["face"]))
    assert not status["visible"] and results[0] and "**" in results[2]


def test_a_one_window_clip_draws_a_segment(app, media):
    prediction = app.predict(str(media["one_window"]), model=app.model, feature_extractor=app.feature_extractor)
    table = timeline.timeline_frame(prediction)
    labels = app.model.config.id2label.values()
    assert len(table) == 2 * len(labels), "two points per emotion: the window's start and end"
    for _, rows in table.groupby("emotion"):
        assert rows["time (s)"].tolist() == pytest.approx([0.0, 4 / 30], abs=1e-3)
        assert rows["probability"].nunique() == 1


def test_the_summary_says_what_to_know(app, media):
    summary = app.analyze(str(media["short"]))[2]
    assert "**Short clip**: shorter than one window (4 frames" in summary
    summary = app.analyze(str(media["two_faces"]))[2]
    assert "**2 faces** seen; MicroX followed the most prominent one" in summary and "from the left" in summary
    summary = app.analyze(str(media["face"]))[2]
    assert "Short clip" not in summary and "faces**" not in summary
    assert "px wide, brightness" in summary  # the face's size and light, from the quality summary


def test_a_dark_clip_gets_the_low_confidence_note(app, media):
    note, *_, raw = app.analyze(str(media["dark"]))[1:]
    assert note.startswith("**Low confidence.** The face is very dark") and raw["quality"]["low_confidence"]
    page = app.analyze_page(str(media["dark"]))
    assert page[1]["visible"] and page[1]["value"] == note  # on the page: the box shows


def test_a_sideways_video_is_told_it_may_be_rotated(app, media):
    with pytest.raises(gr.Error, match="may be rotated") as info:
        app.analyze(str(media["sideways"]))
    assert info.value.title == "No face found"


def test_the_timeline_draws_the_likeliest_emotions_to_the_end_of_the_data(app, media):
    prediction = app.predict(str(media["face"]), model=app.model, feature_extractor=app.feature_extractor)
    axes = timeline.timeline_figure(prediction).axes[0]
    top = sorted(prediction.labels, key=lambda label: -prediction.scores[label])[: timeline.TIMELINE_TOP]
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == [f"{label} {prediction.scores[label]:.0%}" for label in top]
    assert [line.get_color() for line in lines] == [timeline.emotion_colour(label, app.LABELS) for label in top]
    # 24 frames at 30 fps in windows of 4 frames every 4: one point per window, at its centre.
    starts = window_starts(24, 4, 4)
    assert all(len(line.get_xdata()) == len(starts) for line in lines)
    assert axes.get_xlim() == (0.0, pytest.approx((starts[-1] + 2) / 30, abs=1e-3)), "the axis ends at the last point"
    assert axes.get_ylim() == (0.0, 1.0)
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == [line.get_label() for line in lines], "the legend names each line with its share of the clip"


def test_emotion_colours_are_distinct_and_readable_on_white(app):
    colours = [timeline.emotion_colour(label, app.LABELS) for label in app.LABELS]
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours], float) / 255
    linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    contrast = 1.05 / (linear @ [0.2126, 0.7152, 0.0722] + 0.05)  # WCAG's contrast ratio against white
    assert contrast.min() >= 3.0, "no pale colour (a pale yellow line, 1.3:1, is unreadable on white)"
    distance = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)[np.triu_indices(len(rgb), 1)]
    assert distance.min() > 0.25, "every two emotions differ clearly"
    assert app.REGION_COLOUR not in colours, "a region's bar never takes an emotion's colour"


def test_a_model_that_answers_with_its_face_network_says_so(app, media, monkeypatch):
    """A model whose region branches are gated off (the shipped default; its runtimes are tested in test_runtime):
    the chart gives the decision to the face network, the crops are what was read, and the summary says why."""
    real = app.predict
    monkeypatch.setattr(
        app, "predict", lambda *a, **k: dataclasses.replace(real(*a, **k), region_gate=0.0, decided_by_prior=True)
    )
    _, _, summary, regions, _, gallery, _, raw = app.analyze(str(media["face"]))
    shares = dict(zip(regions["region"], regions["share of the decision (%)"], strict=True))
    assert regions["region"].iloc[0] == app.PRIOR_BAR and shares.pop(app.PRIOR_BAR) == 100.0
    assert sorted(shares) == sorted(app.model.config.regions) and set(shares.values()) == {0.0}
    assert all("the face network decided" in caption and "% of the decision" not in caption for _, caption in gallery)
    assert "The face network (the model's frame encoder) decided" in summary
    assert raw["decided_by_prior"] is True and raw["region_gate"] == 0.0


def test_regions_are_a_chart_not_an_emotion_label(app):
    assert isinstance(app.regions_out, gr.BarPlot) and not isinstance(app.regions_out, gr.Label)
    assert app.regions_out.title.startswith("Which regions drove the decision")


def test_the_upload_limit_is_in_plain_words(app):
    assert app.plain_size("50mb") == "50 MB" and app.plain_size("1gb") == "1 GB" and app.plain_size(2048) == "2 KB"
    assert app.video_in.label == "Face video: up to 3 seconds and 2 MB"  # MICROX_MAX_FILE_SIZE=2mb
    with pytest.raises(ValueError, match="MICROX_MAX_FILE_SIZE"):
        app.plain_size("fifty")


def test_model_note_says_what_the_model_was_trained_on(app):
    note = app.model_note(str(app.MODEL_ID))
    assert NOTICE in note
    assert f"Training data: {TRAINING_DATA}." in note
    assert "neutral" in note and "happy" in note


def test_model_note_from_the_card_metadata(tmp_path, app):
    note = "A demonstration trained on synthetic clips, not a validated emotion recogniser"
    (tmp_path / "README.md").write_text(f"---\nlicense: mit\nmicrox_note: {note}\n---\n# A model\n\n> **Other.**\n")
    assert app._card_training_summary(str(tmp_path)) == note + "."


def test_model_note_from_a_card_in_prose(tmp_path, app):
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# A model\n\nIt was trained only on RAVDESS actors\n")
    assert app._card_training_summary(str(tmp_path)) == "It was trained only on RAVDESS actors."


def test_model_note_of_the_shipped_checkpoint_reads_its_card(app):
    # No MICROX_MODEL: the default checkpoint, whose card says what its face branch is built on.
    note = app.model_note(None)
    assert note.startswith("**Model:** the default checkpoint: ") and "faceapi" in note
    assert "does not say" not in note


def test_model_note_without_a_card(app):
    # HF_HUB_OFFLINE=1 (conftest): a Hub id's card cannot be fetched, and the note says so instead of failing.
    assert app._card_training_summary("someone/not-here") is None
    assert "does not say what it was trained on" in app.model_note("someone/not-here")


def test_examples_are_small_public_domain_videos_with_a_face(app):
    assert len(app.EXAMPLES) >= 1
    for example in app.EXAMPLES:
        assert Path(example).stat().st_size < 1_000_000, f"{example} is over 1 MB"
        scores, *_, raw = app.analyze(example)
        assert raw["face_fraction"] > 0.9, f"the face in {example} must be found"


# Over HTTP ----------------------------------------------------------------------------------------------------------


def test_gradio_client_predicts_and_reports_errors(server, media, app):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    try:
        scores, note, summary, regions, timeline, gallery, preview, raw = client.predict(
            handle_file(str(media["face"])), api_name="/analyze"
        )
        assert scores["label"] == raw["label"]
        assert {c["label"] for c in scores["confidences"]} == set(app.model.config.id2label.values())
        assert len(gallery) == len(app.model.config.regions)
        assert Path(preview).is_file() and Path(preview).suffix == ".webp"
        with pytest.raises(Exception, match="(?i)not .*video|video.*(read|open|decode)"):
            client.predict(handle_file(str(media["text"])), api_name="/analyze")
    finally:
        client.close()


def test_every_output_and_endpoint_has_a_name_in_the_api(server, app):
    from gradio_client import Client

    client = Client(server, verbose=False)
    try:
        info = client.view_api(return_format="dict", print_info=False)
    finally:
        client.close()
    assert list(info["named_endpoints"]) == ["/analyze"] and not info["unnamed_endpoints"]
    endpoint = info["named_endpoints"]["/analyze"]
    names = [item["label"].replace(" ", "_") for item in endpoint["returns"]]
    assert names == list(app.OUTPUTS) == [
        "emotion", "quality", "summary", "regions", "timeline", "region_crops", "face_track", "result"
    ]  # fmt: skip
    assert not [item for item in endpoint["returns"] if item["label"].startswith("value_")]
    assert [item["parameter_name"] for item in endpoint["parameters"]] == ["video"]


def test_concurrent_requests_get_the_sequential_answers(server, media):
    """A load test: more requests than the app analyses at once, from several clients; every answer must equal the
    one the same video gets alone (the landmark backend, extractor and model are shared by the worker threads)."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    videos = [media["face"], media["face_webm"], media["two_faces"], media["short"]] * 2
    clients = [Client(server, verbose=False) for _ in range(4)]

    def ask(i: int, path: Path) -> dict:
        return clients[i % len(clients)].predict(handle_file(str(path)), api_name="/analyze")[-1]

    try:
        alone = {path: ask(0, path) for path in set(videos)}
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            together = list(pool.map(ask, range(len(videos)), videos))
    finally:
        for client in clients:
            client.close()
    for path, answer in zip(videos, together, strict=True):
        assert answer == alone[path], path.name


def test_the_api_reports_a_missing_video_without_a_server_traceback(server, capfd):
    from gradio_client import Client

    client = Client(server, verbose=False)
    try:
        with pytest.raises(Exception, match="Upload a video"):
            client.predict(None, api_name="/analyze")
    finally:
        client.close()
    assert "Traceback" not in capfd.readouterr().err


def test_server_refuses_uploads_over_the_size_limit(server, media):
    import httpx

    with open(media["big"], "rb") as handle:
        response = httpx.post(f"{server}gradio_api/upload", files={"files": ("big.mp4", handle, "video/mp4")})
    assert response.status_code == 413


# Memory and disk over many visitors (issue 22) ----------------------------------------------------------------------


def test_a_lone_analysis_takes_a_second_thread_and_concurrent_ones_do_not(app):
    seen = {}

    def second(video):
        seen["second"] = app._overlap()  # while the first is still running

    def first(video):
        seen["first"] = app._overlap()
        app._on_analysis_thread(second, video)

    app._on_analysis_thread(first, None)
    assert seen == {"first": True, "second": False} and app._RUNNING == [0]


def test_analyses_run_on_a_fixed_pool_of_analysis_threads(server, media, app, monkeypatch):
    """Every analysis runs on one of CONCURRENCY_LIMIT long-lived threads of the app's own, not on gradio's pool of
    short-lived workers (each of which would leave a video's working set in a malloc arena of its own)."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    threads = []
    analyze = app.analyze

    def spy(video):
        threads.append(threading.current_thread())
        return analyze(video)

    monkeypatch.setattr(app, "analyze", spy)
    clients = [Client(server, verbose=False, download_files=False) for _ in range(3)]
    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            answers = list(pool.map(lambda i: clients[i % 3].predict(handle_file(str(media["face"])),
                                                                     api_name="/analyze"), range(6)))  # fmt: skip
    finally:
        for client in clients:
            client.close()
    assert len(answers) == len(threads) == 6
    assert all(thread.name.startswith("microx-analysis") for thread in threads), {t.name for t in threads}
    assert len({thread.ident for thread in threads}) <= app.CONCURRENCY_LIMIT == app.ANALYSIS_THREADS._max_workers


def test_previews_live_in_gradios_cache_and_go_with_it(server, media, app):
    """The preview is written once, into gradio's cache, which tracks it, and the app's schedule deletes it (the
    timeline chart and the gallery's images likewise)."""
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False, download_files=False)
    try:
        *_, timeline, gallery, preview, _ = client.predict(handle_file(str(media["face"])), api_name="/analyze")
    finally:
        client.close()
    paths = [Path(preview["path"]), Path(timeline["path"])] + [Path(item["image"]["path"]) for item in gallery]
    assert all(path.is_file() and path.parent == Path(app.demo.GRADIO_CACHE) / "microx" for path in paths), paths
    assert app.demo.delete_cache == (app.CACHE_CHECK_SECONDS, app.CACHE_SECONDS)
    tracked = [files for files in app.demo.temp_file_sets if any(str(path) in files for path in paths)]
    assert all(any(str(path) in files for files in tracked) for path in paths), "delete_cache would miss some"
    # What the app's schedule runs, on the sets that hold these files (not on other tests' files).
    assert app.delete_old_files(0, tracked) >= len(paths)
    assert not any(path.exists() for path in paths)
    assert not any(str(path) in files for files in tracked for path in paths)
    janitors = [thread for thread in threading.enumerate() if thread.name == "microx-cache"]
    assert len(janitors) == 1 and janitors[0].is_alive()


def test_old_files_are_deleted_while_requests_add_files(app, tmp_path):
    """Gradio's own scheduled deletion walks its file sets while requests add to them, raises "Set changed size
    during iteration" and never runs again; the app's works on snapshots."""
    from gradio.route_utils import delete_files_created_by_app

    def busy_set(tag: str) -> tuple[set[str], threading.Event, threading.Thread]:
        files = set()
        for i in range(300):
            (tmp_path / f"{tag}{i}").touch()
            files.add(str(tmp_path / f"{tag}{i}"))
        stop = threading.Event()

        def add() -> None:  # a request's new result every half millisecond
            i = 0
            while not stop.wait(0.0005):
                (tmp_path / f"{tag}new{i}").touch()
                files.add(str(tmp_path / f"{tag}new{i}"))
                i += 1

        thread = threading.Thread(target=add)
        thread.start()
        return files, stop, thread

    files, stop, thread = busy_set("gradio")
    try:
        with pytest.raises(RuntimeError, match="changed size"):  # the control: gradio's deletion under traffic
            for _ in range(20):
                delete_files_created_by_app(SimpleNamespace(blocks={}, temp_file_sets=[files]), age=0)
    finally:
        stop.set()
        thread.join()
    files, stop, thread = busy_set("app")
    try:
        deleted = sum(app.delete_old_files(0, [files]) for _ in range(20))
    finally:
        stop.set()
        thread.join()
    assert deleted >= 300
    assert not any((tmp_path / f"app{i}").exists() for i in range(300))


def test_gradio_keeps_a_bounded_number_of_sessions(server, app):
    holder = app.demo.state_holder
    assert holder.capacity == app.SESSIONS_KEPT
    for _ in range(app.SESSIONS_KEPT + 5):
        holder[uuid.uuid4().hex]  # a visitor's session, as gradio makes one for each new session hash
    assert len(holder.session_data) <= app.SESSIONS_KEPT


def test_the_app_limits_malloc_arenas_before_its_threads_start(tiny_model_dir):
    from microx_hf.memory import malloc_arenas

    if malloc_arenas() is None:
        pytest.skip("glibc's malloc only")
    code = textwrap.dedent(f"""
        import importlib.util, threading
        spec = importlib.util.spec_from_file_location("microx_space_app", {str(APP_PATH)!r})
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        from microx_hf.memory import malloc_arenas
        barrier = threading.Barrier(9)
        def work():
            blocks = [bytearray(200_000) for _ in range(20)]
            barrier.wait()
            barrier.wait()
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        barrier.wait()
        print(malloc_arenas(), app.MALLOC_ARENAS)
        barrier.wait()
    """)  # fmt: skip
    env = dict(os.environ, MICROX_MODEL=str(tiny_model_dir), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    arenas, limit = (int(v) for v in done.stdout.split()[-2:])
    assert arenas <= limit == 2


# In a real browser --------------------------------------------------------------------------------------------------


@pytest.mark.browser
def test_page_in_chromium(server, media, app):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/install_browser.sh (or deselect -m 'not browser')")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    labels = list(app.model.config.id2label.values())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(server)
            expect(page.locator("#model-note")).to_contain_text(NOTICE)

            # Clicking an example analyses it at once (the astronaut, 90 frames in windows of 4 frames every 4).
            assert Path(app.EXAMPLES[0]).name == "astronaut.webm"
            page.locator("#examples button, #examples .gallery-item, #examples td").first.click()
            summary = page.locator("#summary")
            expect(summary).to_contain_text(f"over {len(window_starts(90, 4, 4))} windows", timeout=60_000)

            page.locator("#video-in button[aria-label='Clear']").click()
            page.locator("#video-in input[type=file]").set_input_files(str(media["face_webm"]))
            page.locator("#run").click()
            expect(summary).to_contain_text(f"over {len(window_starts(24, 4, 4))} windows", timeout=60_000)
            best = page.locator("#emotion h2, #emotion .output-class").first.inner_text().strip()
            assert best in labels
            assert best in summary.inner_text()
            # The timeline chart (drawn on the server: `test_the_timeline_draws_...` checks its lines and axis).
            chart = page.locator("#timeline img")
            expect(chart).to_have_count(1)
            assert page.evaluate(NATURAL_WIDTH) >= 800
            first_chart = chart.get_attribute("src")
            expect(page.locator("#crops img")).to_have_count(len(app.model.config.regions))
            # Every row's caption is shown, inside the gallery's visible area (not behind its scroll bar), and says
            # it is the region's share of that window's decision; the gallery's heading names the window.
            captions = page.locator("#crops .caption-label")
            assert [c.split(":")[0] for c in captions.all_inner_texts()] == app.model.config.regions
            assert all("of the decision in the window" in c for c in captions.all_inner_texts())
            expect(page.locator("#crops")).to_contain_text("Region crops of the most telling window")
            assert page.evaluate(CAPTIONS_SHOWN), "a caption is cut off"
            # The regions are a bar chart under its own title, not a label widget like the emotion's.
            expect(page.locator("#regions")).to_contain_text("Which regions drove the decision")
            assert page.locator("#regions .output-class").count() == 0 and page.locator("#regions svg").count() > 0
            expect(page.locator("#preview img")).to_have_count(1)
            # No empty area under the face track: it and the regions' chart share a row and end together.
            bottoms = page.evaluate(BOTTOMS)
            assert abs(bottoms["preview"] - bottoms["regions"]) <= 16, bottoms
            expect(page.locator("#video-in")).to_contain_text("up to 3 seconds and 2 MB")
            page.screenshot(path=str(ARTIFACTS / "space.png"), full_page=True)

            # A very dark clip: the answer comes with the low-confidence note, in its own box.
            _upload(page, media["dark_webm"])
            quality = page.locator("#quality")
            expect(quality).to_contain_text("Low confidence. The face is very dark", timeout=60_000)
            expect(quality).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "space_dark.png"), full_page=True)

            # A clip of one window draws a segment, not an empty plot; two faces are reported in the summary.
            _upload(page, media["one_window_webm"])
            expect(summary).to_contain_text("over 1 windows", timeout=60_000)
            assert chart.get_attribute("src") != first_chart, "each clip gets its own chart"
            _upload(page, media["two_faces_webm"])
            expect(summary).to_contain_text("2 faces seen; MicroX followed", timeout=60_000)

            # A text file named like a video passes the browser's type check; the library's message shows in a box
            # that stays (a toast vanishes after about 15 s), under its plain title, and no result is left standing.
            _upload(page, media["fake_mp4"])
            status = page.locator("#status")
            expect(status).to_contain_text("Not a video. holiday.mp4 is not a video", timeout=30_000)
            assert "/tmp" not in status.inner_text(), "the message names the file, not the server's path"
            assert "Traceback" not in status.inner_text()
            page.screenshot(path=str(ARTIFACTS / "space_error.png"), full_page=True)
            page.wait_for_timeout(16_000)
            expect(status).to_be_visible()
            expect(status).to_contain_text("holiday.mp4 is not a video")
            assert "Error" not in page.locator("#emotion").inner_text(), "no bare error badge"
            assert page.locator("#summary").inner_text().strip() == ""

            # Analysing with no video: the message says what to do.
            page.locator("#video-in button[aria-label='Clear']").click()
            page.locator("#run").click()
            expect(status).to_contain_text("No video. Upload a video (or record one) first.", timeout=30_000)
        finally:
            browser.close()


# In the page: whether every crop caption lies within the gallery's visible box; the widest timeline line (px).
CAPTIONS_SHOWN = """() => {
  const box = document.querySelector("#crops .grid-wrap").getBoundingClientRect();
  const captions = [...document.querySelectorAll("#crops .caption-label")];
  return captions.length > 0 && captions.every(c => {
    const r = c.getBoundingClientRect();
    return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
  });
}"""
NATURAL_WIDTH = """() => document.querySelector("#timeline img").naturalWidth"""
BOTTOMS = """() => Object.fromEntries(["preview", "regions"].map(
  id => [id, document.querySelector("#" + id).getBoundingClientRect().bottom]))"""


def _upload(page, path: Path) -> None:
    page.locator("#video-in button[aria-label='Clear']").click()
    page.locator("#video-in input[type=file]").set_input_files(str(path))
    page.locator("#run").click()


def _write_y4m(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    """Raw YUV 4:2:0 frames in a YUV4MPEG2 file: what Chromium's fake camera plays."""
    height, width = frames.shape[1:3]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            handle.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.mark.browser
def test_webcam_recording_in_chromium(server, tmp_path):
    """Record two seconds from a webcam (Chromium's fake camera showing the astronaut) and analyse them."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/install_browser.sh (or deselect -m 'not browser')")
    from playwright.sync_api import expect, sync_playwright

    camera = _write_y4m(tmp_path / "camera.y4m", face_frames(60, (320, 240), "pan"))
    fake_camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + fake_camera)
        try:
            page = browser.new_context(permissions=["camera", "microphone"]).new_page()
            page.goto(server)
            page.locator("#video-in button[aria-label='Capture from camera']").click()
            page.locator("#video-in button", has_text="Click to Access Webcam").click()
            record = page.locator("#video-in button[aria-label='start recording']")
            record.click()
            page.wait_for_timeout(2000)
            record.click()  # stop
            expect(page.locator("#video-in video")).to_have_count(1, timeout=15_000)
            page.locator("#run").click()
            expect(page.locator("#summary")).to_contain_text("most telling window", timeout=60_000)
            assert page.locator("[data-testid=toast-text]").count() == 0, "no error while analysing a recording"
            # A face was found in (nearly) every frame of the recording; the text says "Face found in N%".
            found = int(page.locator("#summary").inner_text().split("Face found in ")[1].split("%")[0])
            assert found >= 90
        finally:
            browser.close()
