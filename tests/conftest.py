"""Shared fixtures. Every test runs on one CPU thread (see docs/MEASUREMENTS.md: two threads on a busy core made steps about
70x slower) and never reaches the internet: the Hub is a local test server (tests/hub_server.py)."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

# --- Test Hub (tests/hub_server.py) ------------------------------------------------------------------------------
# huggingface_hub reads HF_ENDPOINT (and the Xet/offline switches) when it is imported, so the session's Hub starts
# here, before anything imports huggingface_hub, transformers or datasets. Every Hub call of every test then goes to
# 127.0.0.1 and fails fast (404/401) unless the test created the repo; nothing uses a user's token or cache.
if "huggingface_hub" in sys.modules:
    raise RuntimeError("huggingface_hub was imported before tests/conftest.py could point HF_ENDPOINT at the test Hub")

from tests.hub_server import HubServer, start_hub_server  # noqa: E402

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="microx-tests-"))
_HUB = start_hub_server(_SESSION_DIR / "hub")
os.environ.update(
    HF_ENDPOINT=_HUB.url,
    HF_TOKEN=_HUB.token,
    HF_HUB_DISABLE_XET="1",  # the test Hub serves LFS only; with hf_xet installed the client would try Xet
    HF_HOME=str(_SESSION_DIR / "hf_home"),
    HF_DATASETS_CACHE=str(_SESSION_DIR / "hf_home" / "datasets"),
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
)
# A test that builds the FAN backend without weights would download them from the internet: point it at a port where
# nothing listens (tests/test_fan_download.py serves its own weights).
os.environ["MICROX_FAN_WEIGHTS_URL"] = "http://127.0.0.1:9/no-downloads-in-tests"
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
    os.environ.pop(_name, None)


def pytest_unconfigure(config):
    _HUB.stop()
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


# --- End of the test Hub section --------------------------------------------------------------------------------

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow") or os.environ.get("MICROX_SLOW") == "1"
    has_gpu = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow or MICROX_SLOW=1"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(scope="session")
def hub() -> HubServer:
    """The session's test Hub (already in HF_ENDPOINT, token in HF_TOKEN); `hub.new_repo_id(name)` gives a fresh id."""
    return _HUB


@pytest.fixture
def hub_repo_id(hub: HubServer, request: pytest.FixtureRequest) -> str:
    """A repo id unique to this test, e.g. `test-user/test_push-3f2a9c01` (the repo itself is not created)."""
    return hub.new_repo_id(request.node.name)
