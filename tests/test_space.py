"""The Gradio Space (`space/app.py`): its handler, its HTTP API through `gradio_client`, and the page in a real
Chromium driven by Playwright.

The app runs a tiny random MicroX model saved to a temporary folder (`MICROX_MODEL`), with the real dlib landmark
backend, on real video files made from the public-domain astronaut photo; the server listens on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image

from microx_hf.windows import window_starts
from tests.media import face_frames, make_face_video, make_noface_video, make_text_file, write_video

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
    config = MicroXConfig(num_frames=4, image_size=16, stem_channels=[4], hidden_size=4, head_hidden_size=8)
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
    scores, timeline, gallery, contributions, preview, summary, raw = app.analyze(str(media["face"]))
    labels = [app.model.config.id2label[i] for i in range(app.model.config.num_labels)]
    assert sorted(scores) == sorted(labels)
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-4)
    # 24 frames at 30 fps in windows of 4 frames every 4: one row per window and emotion.
    assert len(timeline) == len(window_starts(24, 4, 4)) * len(labels)
    assert set(timeline["emotion"]) == set(labels)
    assert timeline["probability"].between(0, 1).all()
    assert timeline["time (s)"].is_monotonic_increasing
    assert [caption.split(":")[0] for _, caption in gallery] == app.model.config.regions
    assert sorted(contributions) == sorted(app.model.config.regions)
    assert sum(contributions.values()) == pytest.approx(1.0, abs=1e-3)
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
        ("long", "lasts more than", "Video too long"),
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
    with pytest.raises(gr.Error, match="Upload a video"):
        app.analyze(None)


def test_model_note_says_what_the_model_was_trained_on(app):
    note = app.model_note(str(app.MODEL_ID))
    assert NOTICE in note
    assert f"Training data: {TRAINING_DATA}." in note
    assert "neutral" in note and "happy" in note


def test_model_note_from_a_card_in_prose(tmp_path, app):
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# A model\n\nIt was trained only on RAVDESS actors\n")
    assert app._card_training_summary(str(tmp_path)) == "It was trained only on RAVDESS actors."


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
        scores, timeline, gallery, contributions, preview, summary, raw = client.predict(
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


def test_server_refuses_uploads_over_the_size_limit(server, media):
    import httpx

    with open(media["big"], "rb") as handle:
        response = httpx.post(f"{server}gradio_api/upload", files={"files": ("big.mp4", handle, "video/mp4")})
    assert response.status_code == 413


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
            expect(page.locator("#timeline svg").first).to_be_visible()
            assert page.locator("#timeline svg path").count() > 0
            expect(page.locator("#crops img")).to_have_count(len(app.model.config.regions))
            expect(page.locator("#preview img")).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "space.png"), full_page=True)

            # A text file named like a video passes the browser's type check; the library's message shows.
            page.locator("#video-in button[aria-label='Clear']").click()
            page.locator("#video-in input[type=file]").set_input_files(str(media["fake_mp4"]))
            page.locator("#run").click()
            toast = page.locator("[data-testid=toast-text]").filter(has_text="holiday.mp4 is not a video")
            expect(toast).to_be_visible(timeout=30_000)
            assert "/tmp" not in toast.inner_text(), "the message names the file, not the server's path"
            assert "Traceback" not in toast.inner_text()
            page.screenshot(path=str(ARTIFACTS / "space_error.png"), full_page=True)
        finally:
            browser.close()


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
