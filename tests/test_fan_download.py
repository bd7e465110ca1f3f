"""The FAN backend's first-use download, against a server on 127.0.0.1 that this module starts (stdlib
`http.server` in a thread) and that serves a FAN state dict with random weights made here: success, an interrupted
download (nothing left in the cache), a corrupt file (a clear error, then a retry works) and offline mode (no
request made). Nothing reaches the internet: the URL is overridden with ``$MICROX_FAN_WEIGHTS_URL``."""

from __future__ import annotations

import io
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from microx_hf.errors import BackendUnavailableError
from microx_hf.landmarks import available_backends, get_backend, resolve_backend_name
from microx_hf.landmarks.fan_backend import FAN_WEIGHTS_FILE, NETWORK_SIZE, FanBackend, download_weights
from tests import media


class WeightsServer:
    """Serves `body` at /2DFAN4-...pth.tar; `mode` "ok", "truncate" (closes after half the body, Content-Length
    promising all of it) or "corrupt" (as many random bytes). Counts the requests."""

    def __init__(self, body: bytes) -> None:
        self.body, self.mode, self.requests = body, "ok", 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests += 1
                if self.path != f"/{FAN_WEIGHTS_FILE}":
                    self.send_error(404)
                    return
                body = server.body
                if server.mode == "corrupt":
                    body = np.random.default_rng(0).integers(0, 256, len(body), dtype=np.uint8).tobytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/{FAN_WEIGHTS_FILE}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="module")
def weights_bytes() -> bytes:
    from face_alignment.models import FAN

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(FAN(NETWORK_SIZE).state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(weights_bytes):
    s = WeightsServer(weights_bytes)
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch, server) -> Path:
    """An empty torch home whose FAN weights URL is the local server; no offline switch set."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MICROX_FAN_WEIGHTS_URL", server.url)
    for name in ("HF_HUB_OFFLINE", "MICROX_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    server.mode, server.requests = "ok", 0  # built backends are cached per weights path: each test has its own
    return tmp_path / "torch" / "hub" / "checkpoints"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_first_use_downloads_into_the_torch_hub_cache(cache, server, weights_bytes, caplog):
    # "auto" never downloads: without the file it is dlib, and nothing was requested.
    assert "face_alignment" not in available_backends()
    assert resolve_backend_name("auto") == "dlib" and server.requests == 0
    with caplog.at_level(logging.WARNING, logger="microx_hf.landmarks.fan_backend"):
        backend = get_backend("face_alignment")
    assert isinstance(backend, FanBackend) and server.requests == 1
    assert backend.weights_file == cache / FAN_WEIGHTS_FILE
    assert (cache / FAN_WEIGHTS_FILE).read_bytes() == weights_bytes
    assert _leftovers(cache) == [FAN_WEIGHTS_FILE]  # no temporary file left beside it
    assert server.url in caplog.text and str(cache) in caplog.text and "MICROX_OFFLINE" in caplog.text
    face = backend.landmarks(media.astronaut(), np.array([179.0, 83.0, 266.0, 170.0]))
    assert face.points.shape == (68, 2) and np.isfinite(face.points).all()
    # Present now: "auto" prefers it, and a second build downloads nothing.
    assert available_backends()[0] == "face_alignment" and resolve_backend_name("auto") == "face_alignment"
    FanBackend()
    assert server.requests == 1


def test_interrupted_download_leaves_no_file_and_a_retry_works(cache, server):
    server.mode = "truncate"
    with pytest.raises(BackendUnavailableError, match=r"closed after \d+ of \d+ bytes.*nothing was kept.*Try again"):
        get_backend("face_alignment")
    assert _leftovers(cache) == []
    server.mode = "ok"
    assert get_backend("face_alignment").weights_file.is_file()
    assert _leftovers(cache) == [FAN_WEIGHTS_FILE] and server.requests == 2


def test_corrupt_download_is_deleted_with_a_clear_error_and_a_retry_works(cache, server):
    server.mode = "corrupt"
    with pytest.raises(BackendUnavailableError, match=r"is not the FAN weights .*it was deleted\. Try again"):
        download_weights()
    assert _leftovers(cache) == []
    server.mode = "ok"
    assert download_weights() == cache / FAN_WEIGHTS_FILE
    assert isinstance(get_backend("face_alignment"), FanBackend) and server.requests == 2


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "MICROX_OFFLINE"])
def test_offline_makes_no_request_and_says_what_to_place(cache, server, monkeypatch, switch):
    monkeypatch.setenv(switch, "1")
    assert "face_alignment" not in available_backends()
    with pytest.raises(BackendUnavailableError) as info:
        get_backend("face_alignment")
    message = str(info.value)
    assert f"{switch}=1" in message and FAN_WEIGHTS_FILE in message and str(cache) in message
    assert "landmark_backend='dlib'" in message
    assert get_backend("auto").name == "dlib"
    assert server.requests == 0 and _leftovers(cache) == []


def test_download_false_makes_no_request(cache, server):
    with pytest.raises(BackendUnavailableError, match=r"downloads were turned off \(download=False\)"):
        FanBackend(download=False)
    assert server.requests == 0 and _leftovers(cache) == []


def test_unreachable_server_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setenv("MICROX_FAN_WEIGHTS_URL", "http://127.0.0.1:9/nothing-listens-here")
    with pytest.raises(BackendUnavailableError, match=r"downloading the FAN weights from http://127\.0\.0\.1:9/"):
        get_backend("face_alignment")
    assert _leftovers(cache) == []


def test_a_broken_file_in_the_cache_is_not_replaced_silently(cache, server):
    cache.mkdir(parents=True)
    (cache / FAN_WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(BackendUnavailableError, match="cannot load FAN weights.*delete it"):
        get_backend("face_alignment")
    assert server.requests == 0 and (cache / FAN_WEIGHTS_FILE).read_bytes() == b"not a checkpoint"
